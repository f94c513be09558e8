"""The `text-guided-nuclei-segmentation` pipeline on a trained tiny checkpoint: inputs, outputs, errors, cost."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from transformers import pipeline

import pgat_hf  # noqa: F401  (registers the task)
from pgat_hf.evaluation.report import load_model
from pgat_hf.models.inference import predict_instances, predict_masks, predict_probabilities
from pgat_hf.sam3_ops import mask_to_instances

PROMPTS = ["all nuclei", "inflammatory nuclei", "segment every neoplastic cell nucleus"]


@pytest.fixture(scope="module")
def seg(trained_checkpoint):
    folder = trained_checkpoint[0]
    return pipeline("text-guided-nuclei-segmentation", model=str(folder))


@pytest.fixture(scope="module")
def tile(synthetic_splits):
    return synthetic_splits["test"][0]["image"].convert("RGB")


def check_result(result, prompt, size):
    assert result["prompt"] == prompt
    assert result["mask"].mode == "L" and result["mask"].size == size
    mask = np.asarray(result["mask"]) > 0
    assert set(np.unique(np.asarray(result["mask"]))) <= {0, 255}
    assert 0.0 <= result["score"] <= 1.0
    label_map = result["label_map"]
    assert label_map.shape == (size[1], size[0]) and label_map.dtype == np.int32
    np.testing.assert_array_equal(label_map > 0, mask)
    assert len(result["instances"]) == label_map.max()
    assert sum(item["area"] for item in result["instances"]) == mask.sum()
    for item in result["instances"]:
        x0, y0, x1, y1 = item["bbox"]
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
        assert (label_map[y0:y1, x0:x1] == item["id"]).sum() == item["area"]


def test_one_prompt_returns_one_dict_and_several_return_a_list(seg, tile):
    single = seg(tile, prompts="all nuclei")
    assert isinstance(single, dict)
    check_result(single, "all nuclei", tile.size)
    several = seg(tile, prompts=PROMPTS)
    assert [r["prompt"] for r in several] == PROMPTS
    for result, prompt in zip(several, PROMPTS):
        check_result(result, prompt, tile.size)
    np.testing.assert_array_equal(np.asarray(single["mask"]), np.asarray(several[0]["mask"]))


def test_masks_are_the_evaluators_masks(seg, tile, trained_checkpoint):
    """Pipeline and evaluator share one inference path: same probabilities, same masks."""
    _, segmenter, tokenizer, image_processor = trained_checkpoint
    probabilities, presence = predict_probabilities(segmenter, image_processor, tokenizer, tile, PROMPTS)
    results = seg(tile, prompts=PROMPTS)
    instances, _ = predict_instances(segmenter, image_processor, tokenizer, tile, PROMPTS)
    for index, result in enumerate(results):
        np.testing.assert_array_equal(np.asarray(result["mask"]) > 0, probabilities[index] > 0.5)
        np.testing.assert_array_equal(result["label_map"], instances[index][1])
        assert result["score"] == pytest.approx(float(presence[index]), abs=1e-5)


def test_input_kinds_and_sizes(seg, tile, tmp_path):
    rgb = np.asarray(tile)
    wide = Image.fromarray(rgb).resize((96, 40))  # not square, not the model's size
    path = tmp_path / "tile.png"
    tile.save(path)
    by_pil = seg(tile, prompts="all nuclei")
    for image in (str(path), path, rgb, Image.fromarray(rgb).convert("RGBA"), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])):
        result = seg(image, prompts="all nuclei")
        np.testing.assert_array_equal(np.asarray(result["mask"]), np.asarray(by_pil["mask"]))
    check_result(seg(wide, prompts="all nuclei"), "all nuclei", (96, 40))
    grey = seg(np.asarray(tile.convert("L")), prompts="all nuclei")
    check_result(grey, "all nuclei", tile.size)


def test_several_images(seg, tile):
    flipped = tile.transpose(Image.FLIP_LEFT_RIGHT)
    results = seg([tile, flipped], prompts=PROMPTS[:2])
    assert len(results) == 2 and all(len(r) == 2 for r in results)
    np.testing.assert_array_equal(np.asarray(results[0][1]["mask"]), np.asarray(seg(tile, prompts=PROMPTS[1])["mask"]))
    np.testing.assert_array_equal(np.asarray(results[1][0]["mask"]),
                                  np.asarray(seg(flipped, prompts=PROMPTS[0])["mask"]))


def test_thresholds_are_call_parameters(seg, tile):
    assert not np.asarray(seg(tile, prompts="all nuclei", threshold=1.0)["mask"]).any()
    assert np.asarray(seg(tile, prompts="all nuclei", threshold=0.0)["mask"]).all()
    gated = seg(tile, prompts="all nuclei", threshold=0.0, presence_threshold=1.01)
    assert not np.asarray(gated["mask"]).any() and gated["instances"] == []
    loose = seg(tile, prompts="all nuclei", threshold=0.3)
    big_only = seg(tile, prompts="all nuclei", threshold=0.3, min_instance_area=10_000)
    assert len(big_only["instances"]) <= len(loose["instances"])
    assert all(item["area"] >= 10_000 for item in big_only["instances"])


def test_k_prompts_cost_one_vision_pass(seg, tile, monkeypatch):
    calls = []
    original = seg.model.get_vision_features

    def counting(*args, **kwargs):
        calls.append(kwargs.get("pixel_values", args[0] if args else None).shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(seg.model, "get_vision_features", counting)
    seg(tile, prompts=PROMPTS, prompt_batch_size=1)  # three decode chunks, still one encoding
    assert calls == [1]
    seg([tile, tile], prompts=PROMPTS)
    assert calls == [1, 1, 1]


@pytest.mark.parametrize("prompts, message", [("", "non-empty"), ("   ", "non-empty"), ([], "non-empty"),
                                               (["all nuclei", ""], "non-empty"), ([3], "non-empty"),
                                               (None, "prompts=")])
def test_bad_prompts_raise_clear_errors(seg, tile, prompts, message):
    with pytest.raises(ValueError, match=message):
        seg(tile, prompts=prompts)


def test_bad_images_raise_clear_errors(seg, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        seg(str(tmp_path / "missing.png"), prompts="all nuclei")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ValueError, match="corrupt.png"):
        seg(str(corrupt), prompts="all nuclei")
    with pytest.raises(ValueError, match="binary mask"):
        seg(Image.new("1", (32, 32)), prompts="all nuclei")
    with pytest.raises(ValueError, match="NaN"):
        seg(np.full((32, 32, 3), np.nan, np.float32), prompts="all nuclei")
    with pytest.raises(ValueError, match="integer or float"):
        seg(np.zeros((32, 32, 3), bool), prompts="all nuclei")
    with pytest.raises(ValueError, match="shape"):
        seg(np.zeros((4, 32, 32, 3), np.uint8), prompts="all nuclei")
    with pytest.raises(TypeError, match="PIL image"):
        seg(12, prompts="all nuclei")
    with pytest.raises(ValueError, match="image is empty: 5x0 pixels"):
        seg(np.zeros((0, 5, 3), np.uint8), prompts="all nuclei")


def drop_small_components(mask, min_area):
    return mask_to_instances(mask, min_area) > 0


def test_min_area_counts_diagonal_neighbours():
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # one 3-pixel component, joined corner to corner
    mask[5:7, 4:8] = True  # 8 pixels
    np.testing.assert_array_equal(drop_small_components(mask, 4), mask & (np.arange(8)[:, None] >= 5))
    np.testing.assert_array_equal(drop_small_components(mask, 3), mask)
    np.testing.assert_array_equal(drop_small_components(mask, 0), mask)
    assert not drop_small_components(mask, 9).any()


def test_checkpoint_post_processing_is_the_pipelines_and_the_evaluators_default(trained_checkpoint, tile, tmp_path):
    """config.json pgat_inference min_area / presence_threshold: the mask a user gets and the evaluator scores."""
    folder, segmenter, tokenizer, image_processor = trained_checkpoint
    probabilities, _ = predict_probabilities(segmenter, image_processor, tokenizer, tile, PROMPTS)
    threshold = float(np.quantile(probabilities[0], 0.6))  # a speckled mask, so there is something to drop
    copy = tmp_path / "checkpoint"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config["pgat_inference"].update(threshold=threshold, min_area=30)
    (copy / "config.json").write_text(json.dumps(config))

    raw = probabilities > threshold
    expected = np.stack([drop_small_components(mask, 30) for mask in raw])
    assert (expected != raw).any() and expected.any()
    results = pipeline("text-guided-nuclei-segmentation", model=str(copy))(tile, prompts=PROMPTS)
    for result, want in zip(results, expected):
        np.testing.assert_array_equal(np.asarray(result["mask"]) > 0, want)
        assert all(item["area"] >= 30 for item in result["instances"])
    _, _, _, settings = load_model(str(copy))
    assert settings["min_area"] == 30
    masks, _ = predict_masks(segmenter, image_processor, tokenizer, tile, PROMPTS, threshold=threshold,
                             min_area=settings["min_area"])
    np.testing.assert_array_equal(masks, expected)
    unfiltered = pipeline("text-guided-nuclei-segmentation", model=str(copy))(tile, prompts=PROMPTS,
                                                                               min_instance_area=0)
    np.testing.assert_array_equal(np.asarray(unfiltered[0]["mask"]) > 0, raw[0])  # a call parameter overrides it

    # presence gating: the prompt with the lowest presence score is emptied, the others are not
    _, presence = predict_probabilities(segmenter, image_processor, tokenizer, tile, PROMPTS)
    gate = float(np.sort(presence)[:2].mean())
    config["pgat_inference"].update(presence_threshold=gate)
    (copy / "config.json").write_text(json.dumps(config))
    gated = pipeline("text-guided-nuclei-segmentation", model=str(copy))(tile, prompts=PROMPTS)
    masks, _ = predict_masks(segmenter, image_processor, tokenizer, tile, PROMPTS, threshold=threshold,
                             min_area=30, presence_threshold=load_model(str(copy))[3]["presence_threshold"])
    for result, score, want, mask in zip(gated, presence, expected, masks):
        expected_mask = want if score >= gate else np.zeros_like(want)
        np.testing.assert_array_equal(np.asarray(result["mask"]) > 0, expected_mask)
        np.testing.assert_array_equal(mask, expected_mask)


def test_truncated_and_unknown_prompts_are_named_in_a_warning(seg, tile, caplog):
    long_prompt = "segment " + " ".join(["every inflammatory nucleus"] * 20)
    with caplog.at_level("WARNING", logger="pgat_hf.hub.pipeline"):
        results = seg(tile, prompts=["all nuclei", long_prompt, "細胞核"])
    messages = [r.getMessage() for r in caplog.records if r.name == "pgat_hf.hub.pipeline"]
    assert len(results) == 3 and len(messages) == 2
    assert repr(long_prompt) in messages[0] and "has 63 tokens; the model reads the first 32" in messages[0]
    assert "'細胞核' is made only of tokens the tokenizer does not know" in messages[1]
    caplog.clear()
    with caplog.at_level("WARNING", logger="pgat_hf.hub.pipeline"):
        seg(tile, prompts=["lymphoid nuclei", "noyaux"])  # unseen words, all known WordPiece tokens
    assert not [r for r in caplog.records if r.name == "pgat_hf.hub.pipeline"]


def test_sixteen_bit_grey_images_are_converted_as_build_py_converts_them(seg, tmp_path):
    from pgat_hf.data.converters.readers import read_rgb

    grey = (np.random.default_rng(0).random((48, 40)) * 3000 + 500).astype(np.uint16)  # fluorescence-like range
    path = tmp_path / "fluorescence.tif"
    Image.fromarray(grey).save(path)
    as_built = read_rgb(path)  # what build.py stores for this file
    assert as_built.dtype == np.uint8 and as_built.min() == 0 and as_built.max() == 255
    from_path = seg(str(path), prompts="all nuclei")
    from_array = seg(grey, prompts="all nuclei")
    reference = seg(Image.fromarray(as_built), prompts="all nuclei")
    for result in (from_path, from_array):
        assert result["mask"].size == (40, 48)
        np.testing.assert_array_equal(np.asarray(result["mask"]), np.asarray(reference["mask"]))
        assert result["score"] == pytest.approx(reference["score"])


def test_many_prompts_keep_logits_at_the_model_resolution(seg):
    image = Image.new("RGB", (600, 400), (200, 120, 180))
    prompts = [f"nuclei number {i}" for i in range(20)]
    import torch

    inputs = seg.preprocess(image, prompts=prompts, tile_size=0, tile_overlap=0)  # one pass, no windows
    with torch.no_grad():  # as Pipeline.forward runs it
        outputs = seg._forward(inputs, prompt_batch_size=8)
    size = seg.model.config.vision_config.backbone_config.image_size
    # [windows, P, h, w] at the mask decoder's resolution, not [P, 400, 600]: memory is P·h·w plus
    # one full-size prompt at a time in postprocess.
    assert tuple(outputs["logits"].shape) == (1, 20, size // 2, size // 2)
    results = seg.postprocess(outputs)
    assert len(results) == 20 and all(r["mask"].size == (600, 400) for r in results)
