"""Raw nuclei datasets → prompt-group dataset configs (docs/design.md §3), one converter per source.

    from pgat_hf.converters import build_source, validate_dataset_folder
    build_source("consep", raw_dir="CoNSeP", out_dir="data/pgat", train_fraction=0.1, seed=0)

The command line is ``python dataset_scripts/build.py --source NAME --raw DIR --out DIR``.
Each converter module's docstring names the files it expects.
"""

from __future__ import annotations

from . import consep, cpm, cryonuseg, folder, monuseg, pannuke
from .builder import build_source
from .readers import ConversionError
from .registry import SOURCES, Source
from .validate import validate_dataset_folder

__all__ = [
    "SOURCES", "Source", "ConversionError", "build_source", "validate_dataset_folder",
    "consep", "cpm", "cryonuseg", "folder", "monuseg", "pannuke",
]
