"""pgat_hf.data.converters + dataset_scripts/build.py: every source from a tiny fixture in its real
raw format (npy, .mat via scipy, MoNuSeg XML, label images), reopened with load_dataset.

All fixtures are built here, in-process, from discs and squares whose pixels we know, so derived
masks, categories, presence flags and prompt counts are checked against the fixture itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import scipy.io
from PIL import Image
from skimage.draw import disk

from pgat_hf.data.converters import SOURCES, ConversionError, build_source, validate_dataset_folder
from pgat_hf.data.converters.tiling import tile_starts
from pgat_hf.data.dataset import class_array, group_mask, has_config, instance_array, load_categories
from pgat_hf.data.prompts import HELD_OUT, HELD_OUT_SYNONYM, QUALITIES
from pgat_hf.data.vocabulary import default_vocabulary

ROOT = Path(__file__).resolve().parents[1]
PROMPTS_PER_GROUP = 2 * len(QUALITIES) + 2  # make_prompt_groups defaults: 2 per quality + 2 held out


# ------------------------------------------------------------------------------------------
# Fixture helpers
# ------------------------------------------------------------------------------------------
def discs(shape, centres, radius=3, ids=None) -> np.ndarray:
    """int32 instance map with one disc per centre, ids 1..N (or the given ids)."""
    out = np.zeros(shape, np.int32)
    for k, centre in enumerate(centres):
        rr, cc = disk(centre, radius, shape=shape)
        out[rr, cc] = ids[k] if ids else k + 1
    return out


def rgb(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_mat(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, arrays)
    return path


def monuseg_xml(path: Path, squares) -> Path:
    """MoNuSeg-style XML: one Region per (x0, y0, x1, y1) square, vertices as X/Y attributes."""
    regions = []
    for k, (x0, y0, x1, y1) in enumerate(squares, start=1):
        vertices = "".join(f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in
                           ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
        regions.append(f'<Region Id="{k}" Type="0"><Attributes/><Vertices>{vertices}</Vertices></Region>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('<?xml version="1.0"?><Annotations><Annotation Id="1"><Attributes/><Regions>'
                    + "".join(regions) + "</Regions></Annotation></Annotations>")
    return path


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------
# Raw fixtures, one per source, in the source's own layout
# ------------------------------------------------------------------------------------------
PANNUKE_TYPES = {1: ["Breast", "Colon"], 2: ["Kidney"], 3: ["Liver"]}


def make_pannuke(raw: Path) -> dict:
    """Three folds; fold 1 image 0 has neoplastic + inflammatory nuclei that reuse id 1."""
    expected = {}
    for fold, tissues in PANNUKE_TYPES.items():
        n = len(tissues)
        images = np.stack([rgb((32, 32), fold * 10 + i) for i in range(n)]).astype(np.float64)
        masks = np.zeros((n, 32, 32, 6), np.float64)
        for i in range(n):
            masks[i, ..., 0] = discs((32, 32), [(8, 8)], ids=[1])  # neoplastic, id 1
            if fold == 1 and i == 0:
                masks[i, ..., 1] = discs((32, 32), [(20, 20), (8, 24)], ids=[1, 7])  # inflammatory
            masks[i, ..., 5] = (masks[i, ..., :5].sum(-1) == 0)  # background channel
        folder = raw / f"Fold {fold}"
        for sub, name, array in (("images", "images.npy", images), ("masks", "masks.npy", masks),
                                 ("images", "types.npy", np.array(tissues))):
            (folder / sub / f"fold{fold}").mkdir(parents=True, exist_ok=True)
            np.save(folder / sub / f"fold{fold}" / name, array)
        expected[fold] = (images.astype(np.uint8), masks)
    return expected


CONSEP_TRAIN_TYPES = [1, 2, 3, 4, 5, 6, 7]  # one nucleus of each raw CoNSeP type
CONSEP_CENTRES = [(6, 6), (6, 20), (6, 34), (20, 6), (20, 20), (20, 34), (34, 20)]


def make_consep(raw: Path) -> None:
    root = raw / "CoNSeP"
    inst = discs((40, 40), CONSEP_CENTRES).astype(np.float64)
    types = np.array(CONSEP_TRAIN_TYPES, np.float64)[:, None]
    type_map = np.zeros((40, 40)); type_map[inst > 0] = types[inst[inst > 0].astype(int) - 1, 0]
    rgba = np.concatenate([rgb((40, 40), 1), np.full((40, 40, 1), 255, np.uint8)], -1)
    save_png(root / "Train" / "Images" / "train_1.png", rgba)  # CoNSeP ships RGBA PNGs
    save_mat(root / "Train" / "Labels" / "train_1.mat", inst_map=inst, type_map=type_map, inst_type=types)
    test_inst = discs((24, 24), [(6, 6), (16, 16)]).astype(np.float64)
    test_types = np.array([[2.0], [2.0]])
    save_png(root / "Test" / "Images" / "test_1.png", rgb((24, 24), 2))
    save_mat(root / "Test" / "Labels" / "test_1.mat", inst_map=test_inst,
             type_map=np.where(test_inst > 0, 2.0, 0.0), inst_type=test_types)
    save_png(root / "Test" / "Overlay" / "test_1.png", rgb((24, 24), 3))  # ignored


MONUSEG_TRAIN = ["TCGA-21-5786-01Z-00-DX1", "TCGA-AY-A8YK-01A-01-TS1", "TCGA-18-5592-01Z-00-DX1"]
MONUSEG_SQUARES = [(4, 4, 12, 10), (20, 20, 28, 30), (22, 2, 30, 8)]


def make_monuseg(raw: Path) -> None:
    train = raw / "MoNuSeg 2018 Training Data"
    for k, stem in enumerate(MONUSEG_TRAIN):
        save_png(train / "Tissue Images" / f"{stem}.tif", rgb((36, 36), k))
        monuseg_xml(train / "Annotations" / f"{stem}.xml", MONUSEG_SQUARES[: k + 1])
    test = raw / "MoNuSegTestData"
    save_png(test / "TCGA-2Z-A9J9-01A-01-TS1.tif", rgb((36, 36), 9))
    monuseg_xml(test / "TCGA-2Z-A9J9-01A-01-TS1.xml", MONUSEG_SQUARES)


def make_cpm(raw15: Path, raw17: Path) -> None:
    for k in range(2):
        save_png(raw15 / "Images" / f"image_0{k}.png", rgb((30, 30), k))
        save_mat(raw15 / "Labels" / f"image_0{k}.mat", inst_map=discs((30, 30), [(8, 8), (20, 20)][: k + 1]))
    for split in ("train", "test"):
        save_png(raw17 / split / "Images" / "image_00.png", rgb((30, 30), 5))
        save_mat(raw17 / split / "Labels" / "image_00.mat", inst_map=discs((30, 30), [(15, 15)]))


CRYO_A1 = "Annotator 1 (biologist second round of manual marks up)"


def make_cryonuseg(raw: Path) -> None:
    save_png(raw / "tissue images" / "Human_AdrenalGland_01.tif", rgb((32, 32), 4))
    labels = discs((32, 32), [(8, 8), (20, 20), (8, 24)]).astype(np.uint16)
    save_png(raw / CRYO_A1 / CRYO_A1 / "label masks modify" / "Human_AdrenalGland_01.tif", labels)
    other = raw / "Annotator 2 (bioinformatician)" / "label masks modify" / "Human_AdrenalGland_01.tif"
    save_png(other, discs((32, 32), [(16, 16)]).astype(np.uint16))  # must NOT be used


def make_histology(raw: Path) -> None:
    save_png(raw / "Images" / "h1.png", rgb((28, 28), 6))
    save_mat(raw / "Labels" / "h1.mat", inst_map=discs((28, 28), [(7, 7), (20, 20)]))


def make_folder(raw: Path) -> None:
    """Own data with classes: images/ + masks/ (16-bit PNG) + classes/ + categories.json."""
    masks = discs((32, 32), [(8, 8), (22, 22)]).astype(np.uint16)
    save_png(raw / "images" / "a.png", rgb((32, 32), 7))
    save_png(raw / "masks" / "a.png", masks)
    save_png(raw / "classes" / "a.png", np.where(masks == 1, 2, 0).astype(np.uint8))
    (raw / "categories.json").write_text(json.dumps(["mitotic", "inflammatory"]))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every source built into ONE repo folder (several configs), then reopened per config."""
    raw = tmp_path_factory.mktemp("raw")
    out = tmp_path_factory.mktemp("repo")
    pannuke = make_pannuke(raw / "pannuke")
    make_consep(raw / "consep")
    make_monuseg(raw / "monuseg")
    make_cpm(raw / "cpm15", raw / "cpm17")
    make_cryonuseg(raw / "cryonuseg")
    make_histology(raw / "histology")
    make_folder(raw / "my_slides")
    configs = {}
    for source in ("pannuke", "consep", "monuseg", "cpm15", "cpm17", "cryonuseg", "histology", "folder"):
        folder = raw / ("my_slides" if source == "folder" else source)
        tile = 32 if source == "consep" else 256
        for name in build_source(source, folder, out, tile_size=tile, overlap=8):
            configs[name] = source
    cache = str(tmp_path_factory.mktemp("hf_cache"))
    loaded = {name: datasets.load_dataset(str(out), name, cache_dir=cache) for name in configs}
    return {"raw": raw, "out": out, "configs": configs, "ds": loaded, "pannuke": pannuke}


def arrays(row):
    return instance_array(row["instance_map"]), class_array(row["class_map"])


def check_groups(row, categories):
    """T1 + one T2 group per category; prompt counts; present flags and derived masks."""
    instances, classes = arrays(row)
    groups = row["prompt_groups"]
    assert [g["task"] for g in groups] == ["T1"] + ["T2"] * len(categories)
    for group in groups:
        # + 2 held-out-synonym prompts for a T2 category the vocabulary lists held-out synonyms for
        synonyms = 2 if group["task"] == "T2" and default_vocabulary().category(group["category"]).held_out else 0
        assert len(group["prompts"]) == PROMPTS_PER_GROUP + synonyms
        assert group["quality"].count(HELD_OUT) == 2 and group["quality"].count(HELD_OUT_SYNONYM) == synonyms
    assert np.array_equal(group_mask(groups[0], instances, classes), instances > 0)
    for index, (group, name) in enumerate(zip(groups[1:], categories), start=1):
        expected = classes == index
        assert (group["category"], group["category_id"]) == (name, index)
        assert group["present"] == bool(expected.any())
        assert np.array_equal(group_mask(group, instances, classes), expected)


# ------------------------------------------------------------------------------------------
# One test per source
# ------------------------------------------------------------------------------------------
def test_all_sources_are_configs_of_one_repo(built):
    out = built["out"]
    assert set(built["configs"]) == {"pannuke", "consep", "monuseg", "kumar_same", "kumar_diff",
                                     "cpm15", "cpm17", "cryonuseg", "histology", "my_slides"}
    assert all(has_config(out, name) for name in built["configs"])
    card = (out / "README.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "PanNuke" in card and "MoNuSeg" in card
    assert "## Per-category counts" in card and "## Citation" in card and "Graham S" in card
    assert validate_dataset_folder(out)["consep"] == {"train": 4, "test": 1}


def test_pannuke_channels_become_instances_and_classes(built):
    ds = built["ds"]["pannuke"]
    assert set(ds) == {"train", "validation", "test"}
    assert [ds[s].num_rows for s in ("train", "validation", "test")] == [2, 1, 1]
    assert load_categories(built["out"], "pannuke") == ["neoplastic", "inflammatory", "connective", "dead", "epithelial"]
    row = ds["train"][0]
    images, masks = built["pannuke"][1]
    instances, classes = arrays(row)
    assert np.array_equal(np.asarray(row["image"]), images[0])
    assert len(np.unique(instances[instances > 0])) == 3  # id 1 in two channels = two nuclei
    assert np.array_equal(classes == 1, masks[0, ..., 0] > 0)
    assert np.array_equal(classes == 2, masks[0, ..., 1] > 0)
    assert (row["tissue"], row["source"], row["image_id"]) == ("breast", "pannuke", "pannuke-fold1-00000")
    check_groups(row, load_categories(built["out"], "pannuke"))
    assert [g["present"] for g in row["prompt_groups"][1:]] == [True, True, False, False, False]


def test_consep_types_merge_to_four_and_tiles_are_cut(built):
    ds = built["ds"]["consep"]
    categories = load_categories(built["out"], "consep")
    assert categories == ["other", "inflammatory", "epithelial", "spindle-shaped"]
    # 40 px image, 32 px tiles, overlap 8 → starts 0 and 8 on each axis.
    assert sorted(ds["train"]["image_id"]) == [f"consep-train_1_y{r:04d}_x{c:04d}" for r in (0, 8) for c in (0, 8)]
    full = scipy.io.loadmat(built["raw"] / "consep/CoNSeP/Train/Labels/train_1.mat")
    expected_classes = np.array([0, 1, 2, 3, 3, 4, 4, 4])[full["inst_map"].astype(int)]
    for row in ds["train"]:
        top, left = (int(part[1:]) for part in row["image_id"].split("_")[-2:])
        instances, classes = arrays(row)
        assert np.array_equal(classes, expected_classes[top:top + 32, left:left + 32])
        ids = np.unique(instances[instances > 0])
        assert np.array_equal(ids, np.arange(1, len(ids) + 1))  # renumbered per tile
        check_groups(row, categories)
    test_row = ds["test"][0]  # two inflammatory nuclei only: three absent categories
    assert [g["present"] for g in test_row["prompt_groups"][1:]] == [False, True, False, False]
    assert np.asarray(test_row["image"]).shape == (24, 24, 3)  # RGBA dropped, small image whole


def test_monuseg_xml_polygons_and_kumar_splits(built):
    ds = built["ds"]
    assert {s: ds["monuseg"][s].num_rows for s in ds["monuseg"]} == {"train": 3, "test": 1}
    assert ds["kumar_same"]["test"]["image_id"] == ["monuseg-TCGA-21-5786-01Z-00-DX1"]
    assert ds["kumar_diff"]["test"]["image_id"] == ["monuseg-TCGA-AY-A8YK-01A-01-TS1"]
    assert ds["kumar_diff"]["test"][0]["tissue"] == "colon"
    row = ds["monuseg"]["test"][0]
    instances, classes = arrays(row)
    assert len(np.unique(instances[instances > 0])) == 3 and not classes.any()
    rows, cols = np.nonzero(instances == 1)  # square X 4..12, Y 4..10
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 10, 4, 12)
    check_groups(row, [])


@pytest.mark.parametrize("config, splits, nuclei", [
    ("cpm15", {"test": 2}, [1, 2]), ("cpm17", {"train": 1, "test": 1}, [1, 1]),
    ("cryonuseg", {"test": 1}, [3]), ("histology", {"test": 1}, [2]),
])
def test_class_free_sources(built, config, splits, nuclei):
    ds = built["ds"][config]
    assert {s: ds[s].num_rows for s in ds} == splits
    counts = sorted(len(np.unique(arrays(r)[0])) - 1 for s in ds for r in ds[s])
    assert counts == sorted(nuclei)
    for split in ds:
        for row in ds[split]:
            check_groups(row, [])
    if config == "cryonuseg":
        assert ds["test"][0]["tissue"] == "adrenal gland"  # and Annotator 2's single disc was not used


def test_folder_with_classes_and_categories(built):
    row = built["ds"]["my_slides"]["train"][0]
    assert load_categories(built["out"], "my_slides") == ["mitotic", "inflammatory"]
    instances, classes = arrays(row)
    assert np.array_equal(classes == 2, instances == 1) and not (classes == 1).any()
    check_groups(row, ["mitotic", "inflammatory"])


def stardist_files() -> tuple[Path, Path]:
    """The real image/mask bundled with stardist 0.9.2, read as files (no stardist import)."""
    spec = importlib.util.find_spec("stardist")
    if spec is None:
        pytest.skip("stardist 0.9.2 not installed (pip install -e '.[dev]')")
    images = Path(spec.submodule_search_locations[0]) / "data" / "images"
    return images / "img2d.tif", images / "mask2d.tif"


def test_stardist_real_image_through_folder_converter(tmp_path):
    import tifffile

    image_file, mask_file = stardist_files()
    raw = tmp_path / "stardist_nuclei"
    (raw / "images").mkdir(parents=True)
    (raw / "masks").mkdir()
    shutil.copy(image_file, raw / "images" / "nuclei2d.tif")
    shutil.copy(mask_file, raw / "masks" / "nuclei2d.tif")
    assert build_source("folder", raw, tmp_path / "out", tile_size=0) == ["stardist_nuclei"]
    row = datasets.load_dataset(str(tmp_path / "out"), "stardist_nuclei", cache_dir=str(tmp_path / "c"))["train"][0]
    mask = tifffile.imread(mask_file)
    instances, _ = arrays(row)
    assert np.asarray(row["image"]).shape == (512, 512, 3)  # 16-bit grey stretched to RGB
    assert np.array_equal(instances > 0, mask > 0)
    assert len(np.unique(instances)) - 1 == len(np.unique(mask)) - 1 > 100
    check_groups(row, [])


# ------------------------------------------------------------------------------------------
# Determinism, fraction, tiling
# ------------------------------------------------------------------------------------------
def test_rebuild_is_byte_identical_and_fraction_is_seeded(built, tmp_path):
    raw = built["raw"] / "pannuke"
    for name in ("a", "b"):
        build_source("pannuke", raw, tmp_path / name, train_fraction=0.5, seed=3)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    record = json.loads((tmp_path / "a" / "pannuke" / "build.json").read_text())
    assert record["splits"]["train"]["images"] == 1 and record["splits"]["train"]["images_available"] == 2
    assert record["splits"]["validation"]["images"] == 1  # only train is subsampled


def test_synthetic_source_joins_a_converted_repo(built, tmp_path, monkeypatch):
    import functools

    import pgat_hf.data.synthetic as synthetic

    small = functools.partial(synthetic.generate_synthetic_dataset, num_train=2, num_test=1, image_size=32)
    monkeypatch.setattr(synthetic, "generate_synthetic_dataset", small)  # the default is 464 tiles
    out = tmp_path / "repo"
    shutil.copytree(built["out"] / "cpm15", out / "cpm15")
    shutil.copy(built["out"] / "README.md", out / "README.md")
    assert build_source("synthetic", None, out) == ["synthetic"]
    card = (out / "README.md").read_text()
    assert "| `synthetic` |" in card and "train: 2 rows" in card and "| `cpm15` |" in card


def test_tile_starts_cover_the_axis():
    assert tile_starts(1000, 256, 0) == [0, 256, 512, 744]
    assert tile_starts(1000, 256, 64) == [0, 192, 384, 576, 744]
    assert tile_starts(200, 256, 0) == [0] and tile_starts(500, 0, 0) == [0]
    with pytest.raises(ValueError):
        tile_starts(1000, 256, 256)


def test_cpm15_challenge_ascii_masks(tmp_path):
    """The original CPM-15 download: imageXX.png + imageXX_mask.txt ("width height", then ids)."""
    labels = discs((6, 8), [(3, 3)], radius=2)
    save_png(tmp_path / "image01.png", rgb((6, 8)))
    save_png(tmp_path / "image01_poly.png", rgb((6, 8)))  # rendering shipped beside it: skipped
    (tmp_path / "image01_mask.txt").write_text("8 6\n" + "\n".join(map(str, labels.ravel())))
    (spec,) = SOURCES["cpm15"].convert(tmp_path)
    (image,) = spec.splits["test"]
    assert np.array_equal(image.load().instances, labels)


# ------------------------------------------------------------------------------------------
# Bad input: clear errors naming the file; nothing half-written
# ------------------------------------------------------------------------------------------
def _folder_raw(root: Path, image=None, mask=None, name="a") -> Path:
    save_png(root / "images" / f"{name}.png", rgb((16, 16)) if image is None else image)
    if mask is not None:
        (root / "masks").mkdir(parents=True, exist_ok=True)
        if isinstance(mask, np.ndarray):
            np.save(root / "masks" / f"{name}.npy", mask)
    return root


def test_bad_input_errors_name_the_file(tmp_path):
    good = discs((16, 16), [(8, 8)])
    cases = {
        "missing": (_folder_raw(tmp_path / "missing", mask="dir-only"), "no label file a.*"),
        "mismatch": (_folder_raw(tmp_path / "mismatch", mask=good[:12]), "does not match image"),
        "fraction": (_folder_raw(tmp_path / "fraction", mask=good * 0.5), "non-integer ids"),
        "negative": (_folder_raw(tmp_path / "negative", mask=good - 1), "negative ids"),
    }
    corrupt = _folder_raw(tmp_path / "corrupt", mask=good)
    (corrupt / "images" / "a.png").write_bytes(b"\x89PNG not really")
    cases["corrupt"] = (corrupt, "cannot read image")
    for name, (raw, message) in cases.items():
        with pytest.raises(ConversionError, match=message) as info:
            build_source("folder", raw, tmp_path / f"out_{name}")
        assert str(raw) in str(info.value), name
        assert not (tmp_path / f"out_{name}" / "README.md").exists()  # nothing written


def test_unknown_class_ids_and_missing_pannuke_file(tmp_path):
    raw = tmp_path / "consep"
    make_consep(raw)
    label = raw / "CoNSeP" / "Test" / "Labels" / "test_1.mat"
    contents = scipy.io.loadmat(label)
    save_mat(label, inst_map=contents["inst_map"], type_map=contents["type_map"], inst_type=np.array([[2.0], [9.0]]))
    with pytest.raises(ConversionError, match=r"unknown CoNSeP type ids \[9\]") as info:
        build_source("consep", raw, tmp_path / "out")
    assert str(label) in str(info.value)
    folder = tmp_path / "folder"
    make_folder(folder)
    (folder / "categories.json").write_text(json.dumps(["only-one"]))  # class id 2 is now unknown
    with pytest.raises(ConversionError, match=r"unknown class ids \[2\]"):
        build_source("folder", folder, tmp_path / "out")
    pannuke = tmp_path / "pannuke"
    make_pannuke(pannuke)
    (pannuke / "Fold 2" / "masks" / "fold2" / "masks.npy").unlink()
    with pytest.raises(ConversionError, match="fold 2: masks.npy not found"):
        build_source("pannuke", pannuke, tmp_path / "out")
    assert not has_config(tmp_path / "out", "consep") and not has_config(tmp_path / "out", "my_slides")


def test_validate_reports_tampered_folder(built, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(built["out"], out)
    (out / ".consep.tmp-x").mkdir()
    (out / "cpm15" / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(ValueError) as info:
        validate_dataset_folder(out)
    assert "interrupted build" in str(info.value) and "cpm15" in str(info.value)


# ------------------------------------------------------------------------------------------
# Command line and push
# ------------------------------------------------------------------------------------------
def load_build_script():
    """dataset_scripts/build.py as a module (in-process: a subprocess re-imports torch, ~10 s)."""
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "dataset_scripts" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line_build_validate_and_error(built, tmp_path, capsys):
    build = load_build_script()
    raw = str(built["raw"] / "cpm15")
    assert build.main(["--source", "cpm15", "--raw", raw, "--out", str(tmp_path / "out"), "--validate"]) == 0
    assert "ok cpm15: test 2 rows" in capsys.readouterr().out
    assert build.main(["--validate", "--out", str(tmp_path / "out")]) == 0  # check-only mode
    missing = str(tmp_path / "nope")
    assert build.main(["--source", "cpm15", "--raw", missing, "--out", str(tmp_path / "out2")]) == 1
    assert missing in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build.main(["--source", "consep", "--out", str(tmp_path / "out3")])  # --raw required


def user_vocabulary_file(tmp_path) -> Path:
    """A user's vocabulary: its own T1 templates and its own synonyms for "inflammatory"."""
    import yaml

    data = yaml.safe_load(default_vocabulary().text)
    data["templates"]["T1"]["low"] = ["every nucleus", "each nucleus", "all the nuclei"]
    data["categories"]["inflammatory"] = {"train": ["tumour-infiltrating lymphocyte", "til"],
                                          "held_out": ["intratumoral lymphocyte"]}
    path = tmp_path / "my_prompts.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("source", ["pannuke", "consep", "monuseg", "cpm15", "cpm17", "cryonuseg", "histology",
                                    "folder", "synthetic"])
def test_build_with_a_prompts_file_works_for_every_source(built, tmp_path, source, monkeypatch):
    build = load_build_script()
    prompts = user_vocabulary_file(tmp_path)
    out = tmp_path / "out"
    argv = ["--source", source, "--out", str(out), "--prompts", str(prompts), "--tile-size", "256"]
    if source != "synthetic":
        argv += ["--raw", str(built["raw"] / ("my_slides" if source == "folder" else source))]
    else:  # the synthetic source builds its default 400 + 64 tiles: keep the test small
        import pgat_hf.data.synthetic as synthetic

        real = synthetic.generate_synthetic_dataset
        monkeypatch.setattr(synthetic, "generate_synthetic_dataset",
                            lambda out_dir, **kw: real(out_dir, num_train=2, num_test=1, image_size=64, **kw))
    assert build.main(argv) == 0
    configs = sorted(p.parent for p in out.glob("*/prompts.yaml"))
    assert configs and all((c / "prompts.yaml").read_text() == prompts.read_text() for c in configs)  # provenance
    rows = [row for c in configs for f in sorted(c.glob("*.parquet")) for row in datasets.Dataset.from_parquet(str(f))]
    assert rows
    for row in rows:
        t1 = row["prompt_groups"][0]
        low = [p for p, q in zip(t1["prompts"], t1["quality"]) if q == "low"]
        assert low and set(low) <= {"every nucleus", "each nucleus", "all the nuclei"}
        for group in row["prompt_groups"][1:]:
            if group["category"] == "inflammatory":
                for prompt, quality in zip(group["prompts"], group["quality"]):
                    wanted = "intratumoral lymphocyte" if quality == HELD_OUT_SYNONYM else ("til", "tumour-infiltrating")
                    assert any(w in prompt for w in ([wanted] if isinstance(wanted, str) else wanted)), prompt


def test_build_with_a_bad_prompts_file_names_file_and_entry(built, tmp_path, capsys):
    import yaml

    build = load_build_script()
    data = yaml.safe_load(default_vocabulary().text)
    data["templates"]["T2"]["high"][0] = "segment every nucleus"  # no {syn}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    argv = ["--source", "cpm15", "--raw", str(built["raw"] / "cpm15"), "--out", str(tmp_path / "o"), "--prompts", str(path)]
    assert build.main(argv) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "templates.T2.high[0]" in err and "placeholder" in err
    assert not (tmp_path / "o").exists()


def test_push_to_hub_uploads_the_folder(built, monkeypatch):
    # Offline: only the two HfApi calls that would reach the Hub are patched.
    from huggingface_hub import HfApi

    from pgat_hf.data.converters.hub import push_dataset_folder

    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.setdefault("upload", kw) and "url")
    push_dataset_folder(built["out"], "org/nuclei-prompts")
    assert calls["create"] == ("org/nuclei-prompts", {"repo_type": "dataset", "private": False, "exist_ok": True})
    assert calls["upload"]["folder_path"] == str(built["out"]) and calls["upload"]["repo_type"] == "dataset"
