"""Files that appear complete or not at all: write to a temporary name beside the target, then rename.

A reader (or a resumed run) never sees half a report, and a kill mid-write leaves the previous
version in place (docs/design.md §8).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path


def _temporary_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp")
    os.close(fd)
    return Path(name)


def write_text_atomic(path: str | os.PathLike, text: str) -> str:
    """Write `text` (UTF-8) to `path` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(path)
    try:
        temporary.write_text(text, encoding="utf-8")
        os.chmod(temporary, 0o644)  # mkstemp files are private
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return str(path)


def copy_file_atomic(source: str | os.PathLike, path: str | os.PathLike) -> str:
    """Copy `source` to `path` (contents and times) through a temporary file in the target's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(path)
    try:
        shutil.copy2(source, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return str(path)


def write_json_atomic(path: str | os.PathLike, value, **dump_kwargs) -> str:
    return write_text_atomic(path, json.dumps(value, **{"indent": 1, **dump_kwargs}) + "\n")


def save_figure_atomic(figure, path: str | os.PathLike, dpi: int = 120) -> str:
    """Save a matplotlib figure (format from the suffix) through a temporary file; closes the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        figure.savefig(temporary, dpi=dpi)
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        temporary.unlink(missing_ok=True)
    return str(path)
