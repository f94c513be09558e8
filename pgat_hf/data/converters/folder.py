"""Generic sources: anyone's "images + instance masks" folder, and the paper's Histology set.

``folder`` layout (docs/design.md §4), one split or several:

    DIR/images/<stem>.<png|tif|jpg|...>      RGB, grey or 16-bit images (wide ranges stretched)
    DIR/masks/<stem>.<png|tif|mat|npy>       instance ids, 0 = background (same stem)
    DIR/classes/<stem>.<png|tif|npy>         optional per-pixel class ids 0..C
    DIR/categories.json                      optional ["name of class 1", ...]; needed with classes/
or  DIR/train/images + DIR/train/masks, DIR/test/..., DIR/validation/...  (one split each;
    ``training``, ``val``, ``valid`` and ``testing`` are read as those splits)

Without split folders everything goes to split ``train``. A folder with split folders and images/
beside them, or with a subfolder holding images/ that names no split, stops with an error rather
than leaving images out. The config name defaults to the
folder's name (lower case, non-alphanumerics → "_"); ``--config-name`` overrides it.

``histology``: the paper's "Histology" zero-shot set is not tied to one public download we could
confirm, so it takes the common paired layout: ``RAW/Images/*`` with ``RAW/Labels/*.mat``
(``inst_map``, HoVer-Net style) or ``RAW/images`` + ``RAW/masks`` label images. Config
``histology``, split test, no classes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pgat_hf.data.converters.files import child_dir, require_dir
from pgat_hf.data.converters.paired import paired_images
from pgat_hf.data.converters.readers import fail
from pgat_hf.data.converters.spec import ConfigSpec, SourceInfo

# Split → the folder names read as that split (any case), first match wins.
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("validation", "val", "valid"),
                 "test": ("test", "testing")}

INFO_FOLDER = SourceInfo(
    name="folder", title="Local image/mask folder", homepage="",
    licence="other", licence_note="Set by whoever owns the images.",
    citation="", description="Converted with the generic folder converter.",
)
INFO_HISTOLOGY = SourceInfo(
    name="histology", title="Histology (zero-shot test set)", homepage="",
    licence="other", licence_note="See the licence of the download you converted.",
    citation="", description="H&E tiles with instance labels; no classes.",
)


def config_name_for(folder: Path) -> str:
    return re.sub(r"[^a-z0-9]+", "_", folder.resolve().name.lower()).strip("_") or "folder"


def _categories(root: Path) -> list[str]:
    path = root / "categories.json"
    if not path.exists():
        return []
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        fail(path, f"not valid JSON ({err})")
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        fail(path, "must be a JSON list of category names")
    seen = set()
    for name in names:
        if name.strip().lower() in seen:
            fail(path, f"names category {name!r} twice; class ids 1..C need one name each")
        seen.add(name.strip().lower())
    return names


def _split(folder: Path, prefix: str, num_categories: int, root: Path):
    images, masks = child_dir(folder, "images"), child_dir(folder, "masks")
    if images is None or masks is None:
        fail(folder, "expected images/ and masks/ folders with the same file stems inside")
    classes = child_dir(folder, "classes")
    if classes is not None and num_categories == 0:
        fail(root / "categories.json", "classes/ given but no categories.json naming the classes")
    return paired_images(images, masks, prefix, "unknown", classes, num_categories)


def convert_folder(raw: Path, config_name: str | None = None) -> list[ConfigSpec]:
    raw = require_dir(raw)
    name = config_name or config_name_for(raw)
    categories = _categories(raw)
    spec = ConfigSpec(name, categories)
    split_dirs = {s: child_dir(raw, *names) for s, names in SPLIT_FOLDERS.items()}
    if any(split_dirs.values()):
        _check_no_stray_images(raw, [d for d in split_dirs.values() if d is not None])
        for split, folder in split_dirs.items():
            if folder is not None:
                spec.splits[split] = _split(folder, f"{name}-{split}", len(categories), raw)
    else:
        spec.splits["train"] = _split(raw, name, len(categories), raw)
    return [spec]


def _check_no_stray_images(raw: Path, split_dirs: list[Path]) -> None:
    """With split folders, images anywhere else would be left out without a word: stop instead."""
    if child_dir(raw, "images") is not None:
        fail(raw, "holds both split folders and images/: move images/ and masks/ into train/ "
                  "(or another split folder)")
    known = ", ".join(n for names in SPLIT_FOLDERS.values() for n in names)
    for child in sorted(raw.iterdir()):
        if child.is_dir() and child not in split_dirs and child_dir(child, "images") is not None:
            fail(child, f"holds images/ but names no split (read as splits: {known})")


def convert_histology(raw: Path) -> list[ConfigSpec]:
    raw = require_dir(raw)
    images = child_dir(raw, "images")
    labels = child_dir(raw, "labels", "masks")
    if images is None or labels is None:
        fail(raw, "expected Images/ and Labels/ (or images/ and masks/) folders inside")
    return [ConfigSpec("histology", [], {"test": paired_images(images, labels, "histology")})]
