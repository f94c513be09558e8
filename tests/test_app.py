"""The prompt-robustness explorer: its agreement maths on known masks, its handler on a real
checkpoint, and the page itself driven in headless Chromium (Debian's /usr/bin/chromium through
Playwright, which downloads no browser here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgat_hf.hub.agreement import agreement_matrix, parse_phrasings, summarize_agreement

gr = pytest.importorskip("gradio", reason="the app needs Gradio: pip install -e '.[dev]'")
from pgat_hf.hub import app as explorer  # noqa: E402  (needs gradio)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/app_browser.py
from app_browser import CHROMIUM  # noqa: E402

ARTIFACTS = Path(os.environ.get("PGAT_TEST_ARTIFACTS", REPO / "test-artifacts"))
PHRASINGS = ["all nuclei", "segment every cell nucleus in the image", "outline all nuclear profiles in the specimen"]


def square(top: int, left: int, side: int, size: int = 10) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_agreement_is_the_dice_of_every_pair():
    a, b, c = square(0, 0, 4), square(0, 0, 4), square(0, 2, 4)  # c overlaps a on 4 x 2 = 8 of 16 pixels
    empty = np.zeros((10, 10), bool)
    matrix = agreement_matrix([a, b, c, empty])
    assert matrix.shape == (4, 4) and np.allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] == 1.0 and matrix[0, 2] == pytest.approx(2 * 8 / 32) and matrix[2, 3] == 0.0
    assert np.allclose(matrix, matrix.T)
    assert agreement_matrix([empty, empty])[0, 1] == 1.0  # both empty: they agree


def test_summary_names_the_odd_one_out_and_says_how_robust():
    names = ["all nuclei", "every nucleus", "stroma"]
    a, c = square(0, 0, 4), square(6, 6, 4)
    summary = summarize_agreement(names, agreement_matrix([a, a, c]))
    assert summary["mean"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert summary["odd_one_out"] == "stroma" and summary["odd_one_out_mean"] == 0.0
    assert "sensitive to wording" in summary["sentence"] and "'stroma'" in summary["sentence"]
    assert "robust to wording" in summarize_agreement(names, agreement_matrix([a, a, a]))["sentence"]
    assert summarize_agreement(["x"], np.ones((1, 1)))["odd_one_out"] is None
    empty = np.zeros((10, 10), bool)
    nothing = summarize_agreement(names, agreement_matrix([empty] * 3), areas=[0, 0, 0])
    assert nothing["mean"] == 1.0 and "Every mask is empty" in nothing["sentence"]
    assert "empty" not in summarize_agreement(names, agreement_matrix([a, a, a]), areas=[16, 16, 16])["sentence"]


def test_panel_labels_tell_two_folders_of_one_name_apart(tmp_path):
    for name in ("pgat/seed0", "baseline/seed0", "other"):
        (tmp_path / name).mkdir(parents=True)
    assert explorer.model_labels([str(tmp_path / "pgat/seed0"), str(tmp_path / "baseline/seed0")]) == [
        "pgat/seed0", "baseline/seed0"]
    assert explorer.model_labels([str(tmp_path / "other"), "org/model"]) == ["other", "org/model"]
    assert explorer.model_labels(["org/model", "org/model"]) == ["org/model", "org/model-2"]


def test_phrasings_are_one_per_line_with_empty_lines_counted():
    assert parse_phrasings("all nuclei\n\n  every   cell \nALL NUCLEI\n") == (["all nuclei", "every cell"], 1)
    assert parse_phrasings(None) == ([], 0)


def test_only_the_newest_download_folders_are_kept():
    page = explorer.Explorer(["a"], load=lambda name: None)
    made = [page.new_download_folder() for _ in range(explorer.KEEP_RUNS + 3)]
    kept = sorted(page.downloads.glob("run*"))
    assert kept == sorted(made[-explorer.KEEP_RUNS:])
    shutil.rmtree(page.downloads)


@pytest.fixture(scope="module")
def explorer_on_checkpoint(trained_checkpoint):
    return explorer.Explorer([str(trained_checkpoint[0])])


def test_handler_gives_a_mask_per_phrasing_and_downloads_that_read_back(explorer_on_checkpoint, synthetic_splits,
                                                                        tmp_path):
    from transformers import pipeline

    tile_path = tmp_path / "tile.png"
    synthetic_splits["test"][0]["image"].convert("RGB").save(tile_path)
    summary, gallery, heat, files, comparison = explorer_on_checkpoint.run(str(tile_path), "\n".join(PHRASINGS),
                                                                           progress=lambda *a, **k: None)
    assert len(gallery) == 3 and comparison == ""
    assert "Mean pairwise mask agreement" in summary and heat.ndim == 3 and heat.shape[2] == 3
    # the instance maps downloaded are the pipeline's, bit for bit (16-bit PNG)
    expected = pipeline("text-guided-nuclei-segmentation", model=explorer_on_checkpoint.names[0])(
        Image.open(tile_path), prompts=PHRASINGS)
    instance_files = sorted(f for f in files if f.endswith("_instances.png"))
    mask_files = sorted(f for f in files if f.endswith("_mask.png"))
    assert len(instance_files) == len(mask_files) == 3
    for index, (path, mask_path, result) in enumerate(zip(instance_files, mask_files, expected)):
        saved = np.asarray(Image.open(path))
        assert saved.dtype == np.uint16
        np.testing.assert_array_equal(saved, result["label_map"])
        np.testing.assert_array_equal(np.asarray(Image.open(mask_path)) > 0, result["label_map"] > 0)
        assert f"{int(result['label_map'].max())} nuclei" in gallery[index][1]


def test_bad_input_is_a_message_not_a_stack_trace(explorer_on_checkpoint, tmp_path):
    quiet = lambda *a, **k: None  # noqa: E731
    with pytest.raises(gr.Error, match="Upload an H&E tile"):
        explorer_on_checkpoint.run(None, "all nuclei", progress=quiet)
    with pytest.raises(gr.Error, match="at least one phrasing"):
        explorer_on_checkpoint.run(str(tmp_path / "x.png"), "\n \n", progress=quiet)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(gr.Error, match="cannot be used as a tile"):
        explorer_on_checkpoint.run(str(broken), "all nuclei", progress=quiet)
    # a 16-bit grey tile is converted as build.py converts it, not refused
    grey = tmp_path / "grey16.png"
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 8)).save(grey)
    summary, gallery, *_ = explorer_on_checkpoint.run(str(grey), "all nuclei\n\nnuclei", progress=quiet)
    assert len(gallery) == 2 and "1 empty line skipped" in summary


def test_when_every_mask_is_empty_the_page_says_nothing_was_found(trained_checkpoint, synthetic_splits, tmp_path):
    """A copy of the checkpoint whose mask threshold (a probability) is 1.0: no pixel passes it."""
    import json
    import shutil

    copy = tmp_path / "never-finds"
    shutil.copytree(trained_checkpoint[0], copy)
    config = json.loads((copy / "config.json").read_text())
    config["pgat_inference"]["threshold"] = 1.0
    (copy / "config.json").write_text(json.dumps(config))
    tile_path = tmp_path / "tile.png"
    synthetic_splits["test"][0]["image"].convert("RGB").save(tile_path)
    quiet = lambda *a, **k: None  # noqa: E731
    summary, gallery, *_ = explorer.Explorer([str(copy)]).run(str(tile_path), "\n".join(PHRASINGS), progress=quiet)
    assert all("| 0 nuclei" in caption for _, caption in gallery) and len(gallery) == 3
    assert "No phrasing found nuclei on this tile: every mask is empty" in summary
    assert "robust" not in summary and "sensitive" not in summary and "Most different" not in summary
    single, *_ = explorer.Explorer([str(copy)]).run(str(tile_path), "all nuclei", progress=quiet)
    assert "The phrasing found no nuclei on this tile: its mask is empty." in single


def test_the_tile_input_hands_the_uploaded_file_over_unconverted(trained_checkpoint, tmp_path):
    """Gradio's own preprocessing of an upload, as the page runs it: with image_mode=None a 16-bit grey
    PNG reaches load_image as the file; Gradio's default mode "RGB" would hand over a white picture."""
    from gradio import image_utils
    from gradio.data_classes import ImageData

    from pgat_hf.hub.pipeline import load_image

    grey = tmp_path / "grey16.png"
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 8) + 1000).save(grey)  # 1000..33760
    upload = ImageData(path=str(grey), orig_name="grey16.png")
    page = explorer.build_app([str(trained_checkpoint[0])])
    tile_input = next(block for block in page.blocks.values()
                      if isinstance(block, gr.Image) and block.elem_id == "tile")
    assert tile_input.image_mode is None and tile_input.type == "filepath"
    handed_over = tile_input.preprocess(upload)
    assert handed_over == str(grey)
    pixels = np.asarray(load_image(handed_over))
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 200  # stretched, not white
    as_rgb = image_utils.preprocess_image(upload, cache_dir=str(tmp_path / "cache"), format="webp",
                                          image_mode="RGB", type="filepath")
    assert np.asarray(load_image(as_rgb)).min() == 255  # what the default would have shown the model


def test_two_checkpoints_are_compared_side_by_side(trained_checkpoint, synthetic_splits, tmp_path):
    tile_path = tmp_path / "tile.png"
    synthetic_splits["test"][1]["image"].convert("RGB").save(tile_path)
    both = explorer.Explorer([str(trained_checkpoint[0]), str(trained_checkpoint[0])])
    outputs = both.run(str(tile_path), "\n".join(PHRASINGS), progress=lambda *a, **k: None)
    assert len(outputs) == 9
    assert "+0.000; equal on this tile" in outputs[-1]


def test_without_a_checkpoint_the_page_and_the_command_say_how_to_get_one(tmp_path, monkeypatch):
    page = explorer.build_app([])
    texts = [block.value for block in page.blocks.values() if isinstance(block, gr.Markdown)]
    assert any("No checkpoint to run" in text and "pgat_hf/recipes/demo.yaml" in text for text in texts)
    result = subprocess.run([sys.executable, "-m", "pgat_hf.commands.app"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "accelerate launch" in result.stderr and "--model" in result.stderr


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="the browser test needs Debian's chromium (apt-get install chromium); .ci/run installs it")
def test_the_page_in_a_real_browser(trained_checkpoint, synthetic_splits, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[dev]'")
    from app_browser import drive_explorer, serve_app

    tile_path = tmp_path / "tile.png"
    synthetic_splits["test"][2]["image"].convert("RGB").save(tile_path)
    screenshot = ARTIFACTS / "app_explorer.png"
    with serve_app([str(trained_checkpoint[0])], cwd=tmp_path) as url:
        texts = drive_explorer(url, tile_path, PHRASINGS, screenshot)
    assert "Mean pairwise mask agreement" in texts["summaries"][0]
    for phrasing in PHRASINGS:
        assert phrasing in texts["captions"][0]
    with Image.open(screenshot) as picture:
        assert picture.width == 1500 and picture.height >= 1000
