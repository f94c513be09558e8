"""Finding a dataset's folders and pairing each image with its label file.

Downloads unpack with varying capitalisation and nesting ("CoNSeP/Train/Images",
"MoNuSeg 2018 Training Data/Tissue Images"), so folders are matched by name case-insensitively
anywhere below the raw folder, and images are paired with labels by file stem.
"""

from __future__ import annotations

from pathlib import Path

from pgat_hf.data.converters.readers import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, fail


def require_dir(path) -> Path:
    path = Path(path)
    if not path.is_dir():
        fail(path, "folder not found")
    return path


def child_dir(parent: Path, *names: str) -> Path | None:
    """The direct child folder of ``parent`` called one of ``names`` (any case), or None."""
    wanted = [n.lower() for n in names]
    children = {c.name.lower(): c for c in sorted(Path(parent).iterdir()) if c.is_dir()}
    for name in wanted:
        if name in children:
            return children[name]
    return None


def find_dirs(root: Path, name: str) -> list[Path]:
    """Every folder called ``name`` (any case) at or below ``root``, shallowest first."""
    root = Path(root)
    hits = [root] if root.name.lower() == name.lower() else []
    hits += [p for p in root.rglob("*") if p.is_dir() and p.name.lower() == name.lower()]
    return sorted(hits, key=lambda p: (len(p.parts), str(p)))


def find_dir(root: Path, *names: str, required: bool = True) -> Path | None:
    """The shallowest folder at or below ``root`` called one of ``names`` (any case)."""
    for name in names:
        hits = find_dirs(root, name)
        if hits:
            return hits[0]
    if required:
        fail(root, f"no folder named {' or '.join(repr(n) for n in names)} below it")
    return None


def list_images(folder: Path, extensions=IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    folder = require_dir(folder)
    files = [
        p for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")
    ]
    if not files:
        fail(folder, f"no image files ({', '.join(extensions)}) in this folder")
    return files


def label_for(image: Path, label_dir: Path, suffixes=("", "_mask", "_label", "_labels"),
              extensions=LABEL_EXTENSIONS) -> Path:
    """The label file for ``image`` in ``label_dir``: same stem (+ optional suffix), any label
    extension. Raises naming the image and the folder searched when none exists."""
    candidates = {p.name.lower(): p for p in Path(label_dir).iterdir() if p.is_file()}
    for suffix in suffixes:
        for ext in extensions:
            hit = candidates.get(f"{image.stem}{suffix}{ext}".lower())
            if hit is not None and hit != image:  # one folder for both: never the image itself
                return hit
    fail(image, f"no label file {image.stem}.* found in {label_dir}")
