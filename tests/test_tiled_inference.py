"""Window-by-window inference of images larger than the model's tiles (`tile_size` in the pipeline)."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from pgat_hf.hub.pipeline import blend_windows, window_boxes, window_weight

PROMPTS = ["all nuclei", "inflammatory nuclei", "epithelial nuclei"]


@pytest.fixture(scope="module")
def seg(trained_checkpoint):
    return pipeline("text-guided-nuclei-segmentation", model=str(trained_checkpoint[0]))


@pytest.fixture(scope="module")
def tiles(synthetic_splits):
    return [synthetic_splits["test"][i]["image"].convert("RGB") for i in range(4)]


def mosaic(tiles):
    side = tiles[0].width
    image = Image.new("RGB", (2 * side, 2 * side))
    for index, tile in enumerate(tiles):
        image.paste(tile, ((index % 2) * side, (index // 2) * side))
    return image


def test_window_boxes_cover_the_image_and_end_at_its_edges():
    assert window_boxes(300, 200, 128, 32) == [(x, y, x + 128, y + 128) for y in (0, 72) for x in (0, 96, 172)]
    assert window_boxes(256, 256, 128, 0) == [(0, 0, 128, 128), (128, 0, 256, 128), (0, 128, 128, 256),
                                              (128, 128, 256, 256)]
    assert window_boxes(100, 90, 128, 32) == [(0, 0, 100, 90)]  # fits in one tile: the whole image
    assert window_boxes(129, 64, 128, 0) == [(0, 0, 128, 64), (1, 0, 129, 64)]


def test_window_weight_falls_off_towards_the_edges():
    weight = window_weight(6, 5, ramp=2)  # [5, 6]
    assert np.allclose(weight[2], [1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3])  # the middle row
    assert np.allclose(weight[:, 2], [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
    assert weight[0, 0] == pytest.approx(1 / 9)
    assert np.array_equal(window_weight(4, 3, ramp=0), np.ones((3, 4), np.float32))


def test_blending_averages_overlaps_by_weight_and_drops_absent_windows():
    # Two 4x4 windows over a 6-wide image, overlapping in columns 2-3; constant logits 0 and ln 3
    # (probability 0.5 and 0.75).
    logits = torch.stack([torch.zeros(4, 4), torch.full((4, 4), float(np.log(3.0)))])
    boxes = [(0, 0, 4, 4), (2, 0, 6, 4)]
    blended = blend_windows(logits, np.array([True, True]), boxes, (6, 4), ramp=0)
    assert np.allclose(blended[:, :2], 0.5) and np.allclose(blended[:, 4:], 0.75)
    assert np.allclose(blended[:, 2:4], 0.625)  # equal weights: the mean
    ramped = blend_windows(logits, np.array([True, True]), boxes, (6, 4), ramp=1)
    # ramp 1: a window's edge pixels weigh 1/2. Column 2 is window 0's third column (1) and window 1's
    # first (1/2); column 3 the reverse. Row 1 is no window's edge row.
    assert np.allclose(ramped[1, 2], (1.0 * 0.5 + 0.5 * 0.75) / 1.5)
    assert np.allclose(ramped[1, 3], (0.5 * 0.5 + 1.0 * 0.75) / 1.5)
    absent = blend_windows(logits, np.array([True, False]), boxes, (6, 4), ramp=0)
    assert np.allclose(absent[:, 4:], 0.0) and np.allclose(absent[:, 2:4], 0.25) and np.allclose(absent[:, :2], 0.5)


def test_windows_without_overlap_give_each_tiles_own_masks(seg, tiles):
    side = tiles[0].width
    whole = seg(mosaic(tiles), prompts=PROMPTS, tile_size=side, tile_overlap=0)
    alone = [seg(tile, prompts=PROMPTS) for tile in tiles]
    for p, result in enumerate(whole):
        assert result["mask"].size == (2 * side, 2 * side)
        mask = np.asarray(result["mask"])
        for index, tile_results in enumerate(alone):
            x, y = (index % 2) * side, (index // 2) * side
            assert np.array_equal(mask[y:y + side, x:x + side], np.asarray(tile_results[p]["mask"])), (p, index)
        assert result["score"] == pytest.approx(max(r[p]["score"] for r in alone), abs=1e-6)
        assert len(result["instances"]) == int(result["label_map"].max())


def test_overlapping_windows_agree_with_the_tiles_where_one_window_covers(seg, tiles):
    side = tiles[0].width
    overlap = side // 4
    options = {"prompts": "all nuclei", "min_instance_area": 0}  # component sizes differ across seams
    whole = np.asarray(seg(mosaic(tiles), tile_size=side, tile_overlap=overlap, **options)["mask"]) > 0
    covered = np.zeros(whole.shape, int)
    for x0, y0, x1, y1 in window_boxes(2 * side, 2 * side, side, overlap):
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1 and covered.max() > 1
    for index, tile in enumerate(tiles):  # the four corner windows are the four tiles
        alone = np.asarray(seg(tile, **options)["mask"]) > 0
        x, y = (index % 2) * side, (index // 2) * side
        single = covered[y:y + side, x:x + side] == 1
        assert single.sum() >= (side // 4) ** 2  # the bottom-right tile: its last quarter-tile only
        assert np.array_equal(whole[y:y + side, x:x + side][single], alone[single]), index


def test_the_checkpoint_records_its_training_tile_side_and_the_pipeline_uses_it(seg, tiles, trained_checkpoint):
    import json

    side = tiles[0].width
    config = json.loads((trained_checkpoint[0] / "config.json").read_text())
    assert config["pgat_inference"]["tile_size"] == side  # the fixture's training tiles
    image = mosaic(tiles)
    default = seg(image, prompts=PROMPTS)
    explicit = seg(image, prompts=PROMPTS, tile_size=side, tile_overlap=side // 4)
    one_pass = seg(image, prompts=PROMPTS, tile_size=0)
    for a, b, c in zip(default, explicit, one_pass):
        assert np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"])) and a["score"] == b["score"]
        assert c["mask"].size == a["mask"].size
    assert any(not np.array_equal(np.asarray(a["mask"]), np.asarray(c["mask"])) for a, c in zip(default, one_pass))


def test_an_image_that_fits_in_one_tile_is_one_pass(seg, tiles):
    plain = seg(tiles[0], prompts=PROMPTS)
    tiled = seg(tiles[0], prompts=PROMPTS, tile_size=tiles[0].width * 2)
    for a, b in zip(plain, tiled):
        assert np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"])) and a["score"] == b["score"]


@pytest.mark.parametrize("kwargs, message", [
    ({"tile_size": 8}, r"tile_size must be 0 \(one pass\) or a whole number of pixels, at least 16"),
    ({"tile_size": 64.0}, "tile_size must be 0"),
    ({"tile_size": 64, "tile_overlap": 64}, "tile_overlap must be a whole number of pixels from 0 to tile_size - 1"),
    ({"tile_size": 64, "tile_overlap": -1}, "tile_overlap must be"),
    ({"tile_size": 0, "tile_overlap": 8}, "tile_overlap needs a tile_size"),
])
def test_bad_tiling_raises_clear_errors(seg, tiles, kwargs, message):
    with pytest.raises(ValueError, match=message):
        seg(tiles[0], prompts="all nuclei", **kwargs)
