"""CPM-15 and CPM-17 (Vu et al. 2019, MICCAI Computational Precision Medicine challenges).

Expected raw layouts (HoVer-Net's redistribution, https://drive.google.com/drive/folders/
1l55cv3DuY-f7-JotDN7N5nbNnjbLWchK, any nesting, folder names in any case):

    cpm15:  RAW/Images/image_00.png ...  RAW/Labels/image_00.mat ...   (15 tiles, ~400-600 px)
    cpm17:  RAW/train/Images/*.png + RAW/train/Labels/*.mat            (32 tiles, 500-600 px)
            RAW/test/Images/*.png  + RAW/test/Labels/*.mat             (32 tiles)

``.mat`` labels hold ``inst_map``. The original CPM-15 challenge files (``imageXX.png`` next to
``imageXX_mask.txt``, ASCII ids) are read too: point ``--raw`` at that folder. No classes.
CPM-15 is test-only (config ``cpm15``, split test); CPM-17 keeps its train/test (config ``cpm17``).
"""

from __future__ import annotations

from pathlib import Path

from pgat_hf.data.converters.files import child_dir, find_dir, find_dirs, require_dir
from pgat_hf.data.converters.paired import paired_images
from pgat_hf.data.converters.readers import fail
from pgat_hf.data.converters.spec import ConfigSpec, SourceInfo

_CITATION = (
    "Vu QD, Graham S, Kurc T, et al. Methods for segmentation and classification of digital "
    "microscopy tissue images. Frontiers in Bioengineering and Biotechnology 7:53 (2019)."
)
INFO_CPM15 = SourceInfo(
    name="cpm15", title="CPM-15", homepage="https://github.com/vqdang/hover_net#datasets",
    licence="other", licence_note="Challenge data for research use; see the homepage.",
    citation=_CITATION, description="15 H&E tiles (GBM, LGG) at 20×/40×; no classes.",
)
INFO_CPM17 = SourceInfo(
    name="cpm17", title="CPM-17", homepage="https://github.com/vqdang/hover_net#datasets",
    licence="other", licence_note="Challenge data for research use; see the homepage.",
    citation=_CITATION, description="64 H&E tiles (GBM, LGG, HNSCC, NSCLC) at 20×/40×; no classes.",
)


def _tile_folders(folder: Path) -> tuple[Path, Path] | None:
    """(Images/, Labels/) inside ``folder``, the folder itself for the ASCII challenge layout, or None."""
    images, labels = child_dir(folder, "images"), child_dir(folder, "labels")
    if images is not None and labels is not None:
        return images, labels
    if any(p.name.lower().endswith("_mask.txt") for p in folder.iterdir()):
        return folder, folder
    return None


def _images_and_labels(folder: Path) -> tuple[Path, Path]:
    found = _tile_folders(folder)
    if found is None:
        fail(folder, "expected Images/ and Labels/ folders (or imageXX.png + imageXX_mask.txt) inside")
    return found


def convert_cpm15(raw: Path) -> list[ConfigSpec]:
    # The shallowest folder called cpm15 that holds the tiles: HoVer-Net's zip unpacks to cpm15/cpm15/.
    candidates = [d for d in find_dirs(require_dir(raw), "cpm15") if _tile_folders(d) is not None]
    images, labels = _images_and_labels(candidates[0] if candidates else raw)
    return [ConfigSpec("cpm15", [], {"test": paired_images(images, labels, "cpm15")})]


def convert_cpm17(raw: Path) -> list[ConfigSpec]:
    spec = ConfigSpec("cpm17", [])
    for split in ("train", "test"):
        folder = find_dir(require_dir(raw), split, required=False)
        if folder is not None:
            spec.splits[split] = paired_images(*_images_and_labels(folder), f"cpm17-{split}")
    if not spec.splits:
        fail(raw, "no CPM-17 train/ or test/ folder below this folder")
    return [spec]
