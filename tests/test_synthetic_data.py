"""pgat_hf.data.synthetic + pgat_hf.data.dataset: tiles, dataset folder round trip, validation, determinism."""

import hashlib
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from pgat_hf.data.dataset import (
    FEATURES,
    class_array,
    encode_class_map,
    encode_instance_map,
    group_mask,
    has_config,
    instance_array,
    load_categories,
    validate_row,
    write_dataset_repo,
)
from pgat_hf.data.synthetic import (
    DEMO_VALIDATION_TILES,
    SYNTHETIC_CATEGORIES,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    generate_tile,
    make_synthetic_row,
)

BUILD = dict(num_train=6, num_test=3, image_size=64, seed=0)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic_ds")
    generate_synthetic_dataset(out, **BUILD)
    cache = tmp_path_factory.mktemp("hf_cache")
    return out, datasets.load_dataset(str(out), "synthetic", cache_dir=str(cache))


def test_generate_tile_shapes_and_labels():
    rng = np.random.default_rng(0)
    for _ in range(5):
        rgb, instances, classes, present = generate_tile(rng, 128)
        assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8
        assert instances.shape == classes.shape == (128, 128)
        assert instances.dtype == classes.dtype == np.int32
        ids = np.unique(instances[instances > 0])
        assert np.array_equal(ids, np.arange(1, len(ids) + 1))  # ids 1..N, no gaps
        assert np.array_equal(instances > 0, classes > 0)  # every nucleus has a class
        for nucleus in ids:  # one class per nucleus
            assert len(np.unique(classes[instances == nucleus])) == 1
        assert present == [bool((classes == c).any()) for c in range(1, 5)]
        assert any(present)
        # H&E look: stroma pinker than blue (R > B on background), nuclei darker than stroma.
        background, nuclei = rgb[instances == 0].mean(0), rgb[instances > 0].mean(0)
        assert background[0] > background[2] and nuclei.sum() < background.sum() - 100


def test_categories_have_their_characteristic_shapes():
    rng = np.random.default_rng(1)
    areas = {c: [] for c in range(1, 5)}
    darkness = {c: [] for c in range(1, 5)}
    for _ in range(12):
        rgb, instances, classes, _ = generate_tile(rng, 128)
        gray = rgb.mean(2)
        for nucleus in np.unique(instances[instances > 0]):
            pixels = instances == nucleus
            c = int(classes[pixels][0])
            areas[c].append(pixels.sum())
            darkness[c].append(gray[pixels].mean())
    mean_area = {c: np.mean(v) for c, v in areas.items()}
    mean_gray = {c: np.mean(v) for c, v in darkness.items()}
    assert mean_area[1] > mean_area[4] > mean_area[2]  # neoplastic > epithelial > inflammatory
    assert mean_gray[2] < mean_gray[4]  # inflammatory darker than vesicular epithelial


def test_tile_generation_is_fast():
    rng = np.random.default_rng(2)
    generate_tile(rng, 128)
    start = time.perf_counter()
    for _ in range(10):
        generate_tile(rng, 128)
    assert (time.perf_counter() - start) / 10 < 0.1  # ~20 ms here; generous for slow CI


def test_reopen_with_load_dataset(built):
    out, ds = built
    assert set(ds) == {"train", "test"}
    assert (ds["train"].num_rows, ds["test"].num_rows) == (6, 3)
    assert ds["train"].features == FEATURES
    assert load_categories(out, "synthetic") == SYNTHETIC_CATEGORIES
    assert has_config(out, "synthetic")
    row = ds["test"][2]
    assert row["image_id"] == "synthetic-test-00002"
    assert (row["source"], row["tissue"]) == ("synthetic", "synthetic")
    assert row["instance_map"].mode.startswith("I")  # 16-bit PNG survives the round trip
    assert row["class_map"].mode == "L"


def test_rows_masks_and_present_flags(built):
    _, ds = built
    for split in ("train", "test"):
        for index, row in enumerate(ds[split]):
            validate_row(row, index)
            instances, classes = instance_array(row["instance_map"]), class_array(row["class_map"])
            assert row["image"].size == (64, 64)
            assert instances.min() >= 0 and classes.min() >= 0
            ids = np.unique(instances[instances > 0])
            assert np.array_equal(ids, np.arange(1, len(ids) + 1))
            groups = row["prompt_groups"]
            assert [g["task"] for g in groups] == ["T1"] + ["T2"] * 4
            assert np.array_equal(group_mask(groups[0], instances, classes), instances > 0)
            for group in groups[1:]:
                expected = classes == group["category_id"]
                assert group["present"] == bool(expected.any())
                assert group["category"] == SYNTHETIC_CATEGORIES[group["category_id"] - 1]
                assert np.array_equal(group_mask(group, instances, classes), expected)


def test_rebuild_is_byte_identical(built, tmp_path):
    out, _ = built
    generate_synthetic_dataset(tmp_path / "again", **BUILD)
    first, second = _digests(out), _digests(tmp_path / "again")
    assert any(name.endswith(".parquet") for name in first)
    assert first == second
    generate_synthetic_dataset(tmp_path / "other_seed", **{**BUILD, "seed": 1})
    assert _digests(tmp_path / "other_seed") != first


def test_ensure_builds_only_when_missing(tmp_path):
    small = dict(num_train=2, num_test=1, image_size=32)
    ensure_synthetic_dataset(tmp_path, **small)
    parquet = tmp_path / "synthetic" / "train-00000-of-00001.parquet"
    stamp = parquet.stat().st_mtime_ns
    ensure_synthetic_dataset(tmp_path, **small)
    assert parquet.stat().st_mtime_ns == stamp


def test_a_split_of_zero_tiles_is_left_out(tmp_path):
    # A validation-only build (the validation-word selection in docs/experiments.md needs no train tiles).
    generate_synthetic_dataset(tmp_path, num_train=0, num_test=0, num_validation=2, image_size=32)
    ds = datasets.load_dataset(str(tmp_path), "synthetic", cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"validation"} and ds["validation"].num_rows == 2
    assert ds["validation"][1]["image_id"] == "synthetic-validation-00001"
    with pytest.raises(ValueError, match="at least one tile"):
        generate_synthetic_dataset(tmp_path / "none", num_train=0, num_test=0, image_size=32)
    with pytest.raises(ValueError, match=r"split\(s\) test have no rows"):
        write_dataset_repo(tmp_path / "empty", "c", {"train": [make_synthetic_row(0, "train", 0, 32)], "test": []},
                           SYNTHETIC_CATEGORIES)
    assert not (tmp_path / "empty").exists()


def test_second_config_is_merged_into_readme(tmp_path):
    generate_synthetic_dataset(tmp_path, num_train=2, num_test=1, image_size=32)
    extra = make_synthetic_row(5, "train", 0, 32)
    extra["source"] = "other"
    write_dataset_repo(tmp_path, "other", {"train": [extra]}, SYNTHETIC_CATEGORIES)
    cache = str(tmp_path / "cache")
    assert datasets.load_dataset(str(tmp_path), "other", cache_dir=cache)["train"][0]["source"] == "other"
    assert datasets.load_dataset(str(tmp_path), "synthetic", cache_dir=cache)["test"].num_rows == 1
    # Rewriting a config replaces it and keeps the other.
    write_dataset_repo(tmp_path, "other", {"train": [extra, extra]}, ["a", "b", "c", "d"])
    assert load_categories(tmp_path, "other") == ["a", "b", "c", "d"]
    assert has_config(tmp_path, "synthetic") and has_config(tmp_path, "other")


def test_killed_write_leaves_nothing_complete(tmp_path, monkeypatch):
    row = make_synthetic_row(0, "train", 0, 32)
    calls = []

    def failing_to_parquet(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return original(self, path, *args, **kwargs)

    original = datasets.Dataset.to_parquet
    monkeypatch.setattr(datasets.Dataset, "to_parquet", failing_to_parquet)
    with pytest.raises(KeyboardInterrupt):
        write_dataset_repo(tmp_path, "synthetic", {"train": [row], "test": [row]}, SYNTHETIC_CATEGORIES)
    assert not has_config(tmp_path, "synthetic")
    assert list(tmp_path.iterdir()) == []


def _good_row():
    return make_synthetic_row(0, "train", 3, 32)


def _bad(row, **changes):
    return {**row, **changes}


def test_validate_row_accepts_good_and_rejects_bad_rows():
    row = _good_row()
    validate_row(row, 3)
    instances = instance_array(row["instance_map"])
    classes = class_array(row["class_map"])
    flipped = [dict(g) for g in row["prompt_groups"]]
    flipped[1]["present"] = not flipped[1]["present"]
    no_prompts = [dict(g) for g in row["prompt_groups"]]
    no_prompts[0].update(prompts=[], quality=[])
    short_quality = [dict(g) for g in row["prompt_groups"]]
    short_quality[0]["quality"] = short_quality[0]["quality"][:-1]
    odd_quality = [dict(g) for g in row["prompt_groups"]]
    odd_quality[0]["quality"] = ["excellent"] * len(odd_quality[0]["prompts"])
    negative = instances.copy()
    negative[0, 0] = -1
    cases = {
        "RGB": _bad(row, image={"bytes": b"not an image", "path": None}),
        "size mismatch": _bad(row, class_map=encode_class_map(np.zeros((16, 16), np.int32))),
        "negative": _bad(row, instance_map=Image.fromarray(negative.astype(np.int32))),
        "present": _bad(row, prompt_groups=flipped),
        "no prompts": _bad(row, prompt_groups=no_prompts),
        "quality labels": _bad(row, prompt_groups=short_quality),
        "unknown quality": _bad(row, prompt_groups=odd_quality),
    }
    for expected, bad in cases.items():
        with pytest.raises(ValueError, match=expected) as info:
            validate_row(bad, 3)
        assert "row 3" in str(info.value) and "synthetic-train-00003" in str(info.value)
    assert classes.max() <= 4


def test_label_image_round_trip():
    arr = np.array([[0, 1, 300], [65535, 2, 0]], np.int32)
    assert np.array_equal(instance_array(encode_instance_map(arr)), arr)
    assert encode_instance_map(arr).format == "PNG"  # datasets keeps PNG bytes, not TIFF
    assert np.array_equal(instance_array(Image.fromarray(arr)), arr)  # mode "I" too
    assert np.array_equal(class_array(encode_class_map(arr % 5)), arr % 5)
    with pytest.raises(ValueError):
        encode_instance_map(arr + 70000)
    with pytest.raises(ValueError):
        instance_array(Image.new("RGB", (3, 2)))


def test_the_documented_build_is_the_folder_the_demo_trains_on(tmp_path):
    """synthetic.py's defaults are the demo's tile counts: training reuses the folder, never rebuilds it."""
    import importlib.util

    import yaml

    script = Path(__file__).resolve().parents[1] / "dataset_scripts" / "synthetic.py"
    spec = importlib.util.spec_from_file_location("synthetic_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    demo = yaml.safe_load((script.parents[1] / "pgat_hf" / "recipes" / "demo.yaml").read_text())
    out = tmp_path / "data"
    module.main(["--out", str(out), "--num-train", "3", "--num-test", "2", "--image-size", "32"])
    parquet = out / "synthetic" / "validation-00000-of-00001.parquet"
    assert demo["synthetic_num_validation"] == DEMO_VALIDATION_TILES and parquet.is_file()
    before = parquet.stat().st_mtime_ns
    ensure_synthetic_dataset(out, num_train=3, num_test=2, num_validation=demo["synthetic_num_validation"], image_size=32)
    assert parquet.stat().st_mtime_ns == before
