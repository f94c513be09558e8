"""PanNuke (Gamper et al. 2019/2020): 256×256 tiles from 19 tissues, five nucleus types.

Expected raw layout (the three fold zips from https://warwick.ac.uk/fac/cross_fac/tia/data/pannuke,
unpacked into one folder; any nesting, fold number read from a "fold N" / "Fold N" folder name, or
"Part N" as the widely used Kaggle copy names them, ``Part 1/Images/images.npy``):

    RAW/Fold 1/images/fold1/images.npy   float or uint8 (N, 256, 256, 3), RGB 0..255
    RAW/Fold 1/images/fold1/types.npy    str (N,), tissue names ("Breast", "Colon", ...)
    RAW/Fold 1/masks/fold1/masks.npy     (N, 256, 256, 6): channels 0..4 are instance maps of
                                         neoplastic, inflammatory, connective/soft tissue, dead,
                                         epithelial; channel 5 is background (ignored)
    RAW/Fold 2/...  RAW/Fold 3/...

Splits follow the usual protocol: fold 1 → train, fold 2 → validation, fold 3 → test (folds that
are missing are skipped). One config, ``pannuke``, categories in PanNuke's channel order.
Arrays are memory-mapped, so a 2,600-image fold is never loaded whole.
"""

from __future__ import annotations

import re
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from pgat_hf.data.converters.readers import as_instance_ids, as_rgb, fail
from pgat_hf.data.converters.spec import ConfigSpec, RawImage, SourceInfo, loaded

CATEGORIES = ["neoplastic", "inflammatory", "connective", "dead", "epithelial"]
FOLD_SPLITS = {1: "train", 2: "validation", 3: "test"}
_FILES = ("images.npy", "masks.npy", "types.npy")
_FOLD = re.compile(r"(?:fold|part)[\s_-]*(\d+)", re.IGNORECASE)  # "Fold 1", "fold1"; Kaggle's "Part 1"

INFO = SourceInfo(
    name="pannuke",
    title="PanNuke",
    homepage="https://warwick.ac.uk/fac/cross_fac/tia/data/pannuke",
    licence="cc-by-nc-sa-4.0",
    licence_note="CC BY-NC-SA 4.0 (non-commercial, share-alike): derived data keeps that licence.",
    citation=(
        "Gamper J, Koohbanani NA, Benes K, Khuram A, Rajpoot N. PanNuke: an open pan-cancer "
        "histology dataset for nuclei instance segmentation and classification. ECDP 2019; and "
        "Gamper J et al. PanNuke Dataset Extension, Insights and Baselines. arXiv:2003.10778 (2020)."
    ),
    description="256×256 H&E tiles at 40×, 19 tissues; five nucleus types.",
)


def _fold_number(path: Path, raw: Path) -> int | None:
    for part in reversed(path.relative_to(raw).parts[:-1]):
        match = _FOLD.search(part)
        if match:
            return int(match.group(1))
    return None


def find_folds(raw: Path) -> dict[int, dict[str, Path]]:
    """fold number → {"images.npy": path, "masks.npy": path, "types.npy": path}."""
    folds: dict[int, dict[str, Path]] = {}
    for name in _FILES:
        for path in sorted(raw.rglob(name)):
            fold = _fold_number(path, raw)
            if fold is None:
                fail(path, "cannot tell which fold this is: put it under a 'Fold N' (or 'Part N') folder")
            if name in folds.setdefault(fold, {}):
                fail(path, f"fold {fold} has two {name} files (also {folds[fold][name]})")
            folds[fold][name] = path
    if not folds:
        fail(raw, "no PanNuke images.npy / masks.npy / types.npy found below this folder")
    for fold, files in sorted(folds.items()):
        for name in _FILES:
            if name not in files:
                fail(raw, f"fold {fold}: {name} not found (found {sorted(files)})")
    return folds


@lru_cache(maxsize=8)
def _array(path: str) -> np.ndarray:
    try:
        # Memory-mapped: a fold is several GB of float64. Pickled (object) arrays are refused
        # rather than unpickled: the official files are plain numeric / unicode arrays.
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        fail(path, f"cannot read .npy file ({err})")


def _check_shapes(files: dict[str, Path]) -> int:
    images, masks, types = (_array(str(files[name])) for name in _FILES)
    if images.ndim != 4 or images.shape[-1] != 3:
        fail(files["images.npy"], f"expected (N, H, W, 3), got shape {images.shape}")
    if masks.ndim != 4 or masks.shape[-1] != 6:
        fail(files["masks.npy"], f"expected (N, H, W, 6) instance channels, got shape {masks.shape}")
    if masks.shape[:3] != images.shape[:3]:
        fail(files["masks.npy"], f"shape {masks.shape[:3]} does not match images.npy {images.shape[:3]}")
    if types.shape[0] != images.shape[0]:
        fail(files["types.npy"], f"{types.shape[0]} tissue names for {images.shape[0]} images")
    return images.shape[0]


def combine_channels(masks: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 6) per-type instance channels → (instances, classes), both int32 (H, W).

    Ids are made unique across channels (a nucleus id may repeat in two channels); where two
    channels claim a pixel, the first channel wins.
    """
    instances = np.zeros(masks.shape[:2], np.int64)
    classes = np.zeros(masks.shape[:2], np.int32)
    offset = 0
    for channel in range(len(CATEGORIES)):
        ids = as_instance_ids(masks[..., channel], f"{path} (channel {channel})")
        free = (ids > 0) & (instances == 0)
        instances[free] = ids[free] + offset
        classes[free] = channel + 1
        offset += int(ids.max()) if ids.size else 0
    return as_instance_ids(instances, path), classes


def _load(files: dict[str, Path], index: int):
    where = f"{files['masks.npy']}[{index}]"
    rgb = as_rgb(np.asarray(_array(str(files["images.npy"]))[index]), f"{files['images.npy']}[{index}]")
    instances, classes = combine_channels(np.asarray(_array(str(files["masks.npy"]))[index]), where)
    return loaded(rgb, instances, classes, len(CATEGORIES), where)


def convert(raw: Path) -> list[ConfigSpec]:
    spec = ConfigSpec("pannuke", list(CATEGORIES))
    for fold, files in sorted(find_folds(raw).items()):
        split = FOLD_SPLITS.get(fold, f"fold{fold}")
        count = _check_shapes(files)
        types = _array(str(files["types.npy"]))
        spec.splits[split] = [
            RawImage(
                image_id=f"pannuke-fold{fold}-{index:05d}",
                tissue=str(types[index]).strip().lower().replace("_", " "),
                path=f"{files['images.npy']}[{index}]",
                load=partial(_load, files, index),
            )
            for index in range(count)
        ]
    return [spec]
