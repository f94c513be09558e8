"""Raw nuclei datasets → prompt-group dataset configs (docs/design.md §3), one converter per source.

    from pgat_hf.data.converters import build_source, validate_dataset_folder
    build_source("consep", raw_dir="CoNSeP", out_dir="data/pgat", train_fraction=0.1, seed=0)

The command line is ``python dataset_scripts/build.py --source NAME --raw DIR --out DIR``.
Each converter module's docstring names the files it expects.
"""

from __future__ import annotations

from pgat_hf.data.converters import consep
from pgat_hf.data.converters import cpm
from pgat_hf.data.converters import cryonuseg
from pgat_hf.data.converters import folder
from pgat_hf.data.converters import monuseg
from pgat_hf.data.converters import pannuke
from pgat_hf.data.converters.builder import build_source
from pgat_hf.data.converters.readers import ConversionError
from pgat_hf.data.converters.registry import SOURCES, Source
from pgat_hf.data.converters.validate import validate_dataset_folder

__all__ = [
    "SOURCES", "Source", "ConversionError", "build_source", "validate_dataset_folder",
    "consep", "cpm", "cryonuseg", "folder", "monuseg", "pannuke",
]
