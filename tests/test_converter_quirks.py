"""Raw folders as real downloads and real users leave them: macOS metadata, mask folders beside the
images, nested zips, split folders with other names, binary masks, rotated JPEGs. Each either
converts to the right tiles or stops with an error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgat_hf.data.converters import SOURCES, ConversionError, build_source
from pgat_hf.data.converters.monuseg import KUMAR_DIFF, KUMAR_SAME, ORGANS
from pgat_hf.data.converters.readers import read_instance_map, read_rgb
from pgat_hf.data.dataset import instance_array, load_prompt_dataset
from tests.test_converters import discs, load_build_script, monuseg_xml, rgb, save_mat, save_png

TRAIN_STEM = "TCGA-E2-A14V-01Z-00-DX1"
TEST_STEM = "TCGA-2Z-A9J9-01A-01-TS1"


def test_kumar_test_lists_are_the_published_split():
    """HoVer-Net's Kumar split: two tiles of each training organ, two of each unseen one."""
    assert sorted(KUMAR_SAME) == sorted([
        "TCGA-E2-A1B5-01Z-00-DX1", "TCGA-E2-A14V-01Z-00-DX1", "TCGA-B0-5698-01Z-00-DX1",
        "TCGA-B0-5710-01Z-00-DX1", "TCGA-21-5784-01Z-00-DX1", "TCGA-21-5786-01Z-00-DX1",
        "TCGA-CH-5767-01Z-00-DX1", "TCGA-G9-6362-01Z-00-DX1"])
    organs = lambda stems: sorted(ORGANS["-".join(s.split("-")[:3])] for s in stems)  # noqa: E731
    assert organs(KUMAR_SAME) == ["breast"] * 2 + ["kidney"] * 2 + ["liver"] * 2 + ["prostate"] * 2
    assert organs(KUMAR_DIFF) == ["bladder"] * 2 + ["colon"] * 2 + ["stomach"] * 2


def make_monuseg_as_unzipped(raw: Path) -> tuple[np.ndarray, np.ndarray]:
    """One training and one test tile, plus what macOS and users leave beside them."""
    train = raw / "MoNuSeg 2018 Training Data"
    image = rgb((36, 36), 1)
    save_png(train / "Tissue Images" / f"{TRAIN_STEM}.tif", image)
    monuseg_xml(train / "Annotations" / f"{TRAIN_STEM}.xml", [(4, 4, 12, 10)])
    save_png(train / "masks" / f"{TRAIN_STEM}.png", np.zeros((36, 36), np.uint8))  # a user's masks
    test_image = rgb((36, 36), 2)
    save_png(raw / "MoNuSegTestData" / f"{TEST_STEM}.tif", test_image)
    monuseg_xml(raw / "MoNuSegTestData" / f"{TEST_STEM}.xml", [(4, 4, 12, 10), (20, 20, 28, 30)])
    mac = raw / "__MACOSX" / "MoNuSegTestData"
    mac.mkdir(parents=True)
    for suffix in (".tif", ".xml"):  # AppleDouble files: not images, not XML
        (mac / f"._{TEST_STEM}{suffix}").write_bytes(b"\x00\x05\x16\x07 Mac OS X metadata")
    (raw / "MoNuSegTestData" / f"._{TEST_STEM}.xml").write_bytes(b"\x00\x05\x16\x07")
    return image, test_image


def test_monuseg_skips_macos_metadata_and_user_mask_folders(tmp_path):
    image, test_image = make_monuseg_as_unzipped(tmp_path / "raw")
    build_source("monuseg", tmp_path / "raw", tmp_path / "out", tile_size=0)
    train = load_prompt_dataset(tmp_path / "out", "monuseg", "train")
    test = load_prompt_dataset(tmp_path / "out", "monuseg", "test")
    assert np.array_equal(np.asarray(train[0]["image"]), image)  # the .tif, not the mask PNG
    assert np.array_equal(np.asarray(test[0]["image"]), test_image)
    assert (train.num_rows, test.num_rows) == (1, 1)
    assert int(instance_array(test[0]["instance_map"]).max()) == 2
    assert (train[0]["tissue"], test[0]["tissue"]) == ("breast", "kidney")
    kumar = load_prompt_dataset(tmp_path / "out", "kumar_same", "test")
    assert kumar["image_id"] == [f"monuseg-{TRAIN_STEM}"]


def test_monuseg_raw_at_the_test_folder_keeps_its_tiles_in_test(tmp_path):
    make_monuseg_as_unzipped(tmp_path / "raw")
    (spec, *_) = SOURCES["monuseg"].convert(tmp_path / "raw" / "MoNuSegTestData")
    assert {split: [r.image_id for r in rows] for split, rows in spec.splits.items()} == {
        "test": [f"monuseg-{TEST_STEM}"]}


def test_monuseg_two_candidate_images_or_annotations_stop_naming_both(tmp_path):
    raw = tmp_path / "raw"
    make_monuseg_as_unzipped(raw)
    save_png(raw / "MoNuSegTestData" / "copy" / f"{TEST_STEM}.tif", rgb((36, 36), 3))
    with pytest.raises(ConversionError, match="2 images could be this annotation's tile") as err:
        SOURCES["monuseg"].convert(raw)
    assert "copy" in str(err.value)
    (raw / "MoNuSegTestData" / "copy" / f"{TEST_STEM}.tif").unlink()
    monuseg_xml(raw / "old" / f"{TEST_STEM}.xml", [(1, 1, 5, 5)])
    with pytest.raises(ConversionError, match=f"a second annotation of {TEST_STEM}"):
        SOURCES["monuseg"].convert(raw)


def test_cpm15_as_hovernet_zip_unpacks(tmp_path):
    nested = tmp_path / "cpm15" / "cpm15"
    save_png(nested / "Images" / "image_00.png", rgb((30, 30)))
    save_mat(nested / "Labels" / "image_00.mat", inst_map=discs((30, 30), [(8, 8), (20, 20)]))
    (spec,) = SOURCES["cpm15"].convert(tmp_path / "cpm15")
    (image,) = spec.splits["test"]
    assert int(image.load().instances.max()) == 2


def folder_split(root: Path, name: str = "a", seed: int = 0) -> None:
    save_png(root / "images" / f"{name}.png", rgb((16, 16), seed))
    save_png(root / "masks" / f"{name}.png", discs((16, 16), [(8, 8)]).astype(np.uint8))


def test_folder_reads_val_and_training_as_splits(tmp_path):
    for folder in ("training", "val", "Test"):
        folder_split(tmp_path / "raw" / folder)
    (spec,) = SOURCES["folder"].convert(tmp_path / "raw")
    assert sorted(spec.splits) == ["test", "train", "validation"]


@pytest.mark.parametrize("stray, message", [
    ("images", "holds both split folders and images/"),
    ("extra", "holds images/ but names no split"),
])
def test_folder_never_leaves_images_out_silently(tmp_path, stray, message):
    folder_split(tmp_path / "raw" / "train")
    folder_split(tmp_path / "raw" if stray == "images" else tmp_path / "raw" / stray)
    with pytest.raises(ConversionError, match=message):
        SOURCES["folder"].convert(tmp_path / "raw")


def test_folder_two_images_with_one_stem_stop(tmp_path):
    folder_split(tmp_path / "raw")
    save_png(tmp_path / "raw" / "images" / "a.tif", rgb((16, 16), 1))
    with pytest.raises(ConversionError, match="a.tif: has the same name as a.png"):
        SOURCES["folder"].convert(tmp_path / "raw")


def test_categories_json_naming_a_class_twice_stops(tmp_path):
    folder_split(tmp_path / "raw")
    (tmp_path / "raw" / "categories.json").write_text(json.dumps(["tumour", "Tumour"]))
    with pytest.raises(ConversionError, match="categories.json: names category 'Tumour' twice"):
        SOURCES["folder"].convert(tmp_path / "raw")


def test_binary_mask_stops_but_a_nucleus_cut_in_two_passes(tmp_path):
    binary = (discs((32, 32), [(6, 6), (6, 24), (24, 6), (24, 24)]) > 0).astype(np.uint8) * 255
    path = save_png(tmp_path / "binary.png", binary)
    with pytest.raises(ConversionError, match="holds one id \\(255\\) over 4 separate regions: a binary mask"):
        read_instance_map(path)
    cut = (discs((32, 32), [(6, 6), (6, 24)]) > 0).astype(np.uint8) * 7  # one id, two pieces
    assert np.array_equal(read_instance_map(save_png(tmp_path / "cut.png", cut)), (cut > 0).astype(np.int32))


def test_jpeg_exif_orientation_is_applied(tmp_path):
    """A phone or scanner JPEG stored landscape with orientation 6 (rotate 90° clockwise to view)."""
    stored = rgb((20, 40), 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "tile.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=100)
    shown = read_rgb(path)
    assert shown.shape == (40, 20, 3)
    with Image.open(path) as raw:
        expected = np.asarray(raw.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    assert np.array_equal(shown, expected)


@pytest.mark.parametrize("name", ["a/b", "../x", "x*", ".hidden"])
def test_bad_config_name_stops_before_any_work(tmp_path, capsys, name):
    build = load_build_script()
    with pytest.raises(SystemExit) as exit_info:
        build.main(["--source", "folder", "--raw", str(tmp_path), "--out", str(tmp_path / "out"),
                    "--config-name", name])
    assert exit_info.value.code == 2
    assert f"--config-name {name!r}: use letters, digits" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_vocabulary_without_an_entry_for_a_category_warns(tmp_path):
    folder_split(tmp_path / "raw")
    save_png(tmp_path / "raw" / "classes" / "a.png", discs((16, 16), [(8, 8)]).astype(np.uint8))
    (tmp_path / "raw" / "categories.json").write_text(json.dumps(["spindle_shaped"]))
    with pytest.warns(UserWarning, match="no entry for category 'spindle_shaped' of raw; the category name is its only"):
        build_source("folder", tmp_path / "raw", tmp_path / "out", tile_size=0)


def test_rows_held_as_png_write_the_same_files_in_a_fraction_of_the_memory(tmp_path):
    import copy
    import hashlib

    from pgat_hf.data.converters.builder import hold_as_png
    from pgat_hf.data.converters.spec import make_row
    from pgat_hf.data.dataset import write_dataset_repo
    from pgat_hf.data.vocabulary import default_vocabulary

    smooth = np.clip(180 + 20 * np.sin(np.arange(256)[:, None, None] / 9.0) + rgb((256, 256)) // 32, 0, 255)
    instances = discs((256, 256), [(40, 40), (120, 200), (200, 90)], radius=9)
    row = make_row("t0", smooth.astype(np.uint8), instances, (instances > 0).astype(np.int32), ["neoplastic"],
                   "folder", "t", "c", 0, default_vocabulary())
    held = hold_as_png(copy.deepcopy(row))
    decoded = sum(np.asarray(row[c]).nbytes for c in ("image", "instance_map", "class_map"))
    assert sum(len(held[c]["bytes"]) for c in ("image", "instance_map", "class_map")) < decoded / 2
    for name, rows in (("pil", [row]), ("png", [held])):
        write_dataset_repo(tmp_path / name, "c", {"train": rows}, ["neoplastic"])
    digest = lambda name: hashlib.sha256((tmp_path / name / "c" / "train-00000-of-00001.parquet").read_bytes()).digest()  # noqa: E731
    assert digest("pil") == digest("png")


@pytest.mark.parametrize("mode, suffix", [("LA", ".png"), ("CMYK", ".jpg"), ("LAB", ".tif"), ("1", ".png")])
def test_build_and_the_pipeline_read_an_image_file_alike(tmp_path, mode, suffix):
    from pgat_hf.hub.pipeline import load_image

    path = tmp_path / f"tile{suffix}"
    Image.fromarray(rgb((12, 10), 5)).convert(mode).save(path)
    if mode == "1":  # a binary mask given as the image: both refuse it
        with pytest.raises(ConversionError, match="tile.png: image mode '1' is a binary mask"):
            read_rgb(path)
        with pytest.raises(ValueError, match="binary mask"):
            load_image(path)
        return
    with Image.open(path) as saved:
        assert saved.mode == mode
    assert np.array_equal(read_rgb(path), np.asarray(load_image(path)))
    assert read_rgb(path).std() > 10  # colours, not a flat or stretched-away image


def test_pannuke_as_the_kaggle_copy_names_its_folds(tmp_path):
    """Kaggle's PanNuke: Part 1/Images/{images,types}.npy and Part 1/Masks/masks.npy."""
    images = np.stack([rgb((32, 32), 1)]).astype(np.float64)
    masks = np.zeros((1, 32, 32, 6), np.float64)
    masks[0, ..., 1] = discs((32, 32), [(8, 8), (20, 20)], ids=[3, 9])  # two inflammatory nuclei
    for part in (1, 3):
        folder = tmp_path / "raw" / f"Part {part}"
        (folder / "Images").mkdir(parents=True)
        (folder / "Masks").mkdir()
        np.save(folder / "Images" / "images.npy", images)
        np.save(folder / "Images" / "types.npy", np.array(["Breast"]))
        np.save(folder / "Masks" / "masks.npy", masks)
    (spec,) = SOURCES["pannuke"].convert(tmp_path / "raw")
    assert sorted(spec.splits) == ["test", "train"]
    loaded = spec.splits["train"][0].load()
    assert int(loaded.instances.max()) == 2 and set(np.unique(loaded.classes)) == {0, 2}
