"""CryoNuSeg (Mahbod et al. 2021): 30 cryosectioned (frozen-section) H&E tiles, 10 organs.

Expected raw layout (the Kaggle download "segmentation-of-nuclei-in-cryosectioned-he-images",
https://www.kaggle.com/datasets/ipateam/segmentation-of-nuclei-in-cryosectioned-he-images,
any nesting, folder names in any case):

    RAW/tissue images/Human_AdrenalGland_01.tif ...            512×512 RGB
    RAW/Annotator 1 (biologist second round of manual marks up)/.../label masks modify/
        Human_AdrenalGland_01.tif ...                          instance ids (16-bit TIFF)

The first annotator's ``label masks modify`` folder is used (falling back to ``label masks``);
the other mark-ups (Annotator 2, the first round) measure inter/intra-observer variability and
are not converted. Tissue = the organ in the file name ("AdrenalGland" → "adrenal gland").
One config, ``cryonuseg``, split test; no classes.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgat_hf.data.converters.files import find_dir, find_dirs, require_dir
from pgat_hf.data.converters.paired import paired_images
from pgat_hf.data.converters.readers import fail
from pgat_hf.data.converters.spec import ConfigSpec, SourceInfo

INFO = SourceInfo(
    name="cryonuseg",
    title="CryoNuSeg",
    homepage="https://github.com/masih4/CryoNuSeg",
    licence="other",
    licence_note="Terms as stated on the Kaggle dataset page; check them before reuse.",
    citation=(
        "Mahbod A, Schaefer G, Bancher B, Löw C, Dorffner G, Ecker R, Ellinger I. CryoNuSeg: A "
        "dataset for nuclei instance segmentation of cryosectioned H&E-stained histological "
        "images. Computers in Biology and Medicine 132 (2021) 104349."
    ),
    description="30 frozen-section H&E tiles, 512×512 at 40×, 10 human organs; no classes.",
)


def organ(image: Path) -> str:
    """'Human_AdrenalGland_01' → 'adrenal gland' (CamelCase split, lower case)."""
    parts = image.stem.split("_")
    name = parts[1] if len(parts) >= 3 else image.stem
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()


def label_folder(raw: Path) -> Path:
    """Annotator 1's instance-label folder."""
    annotators = sorted(p for p in raw.rglob("*") if p.is_dir() and p.name.lower().startswith("annotator 1"))
    for root in annotators or [raw]:
        for name in ("label masks modify", "label masks"):
            hits = find_dirs(root, name)
            if hits:
                return hits[0]
    fail(raw, "no 'label masks modify' or 'label masks' folder (of Annotator 1) below this folder")


def convert(raw: Path) -> list[ConfigSpec]:
    raw = require_dir(raw)
    images = find_dir(raw, "tissue images", "tissue_images", "images")
    return [ConfigSpec("cryonuseg", [], {"test": paired_images(images, label_folder(raw), "cryonuseg", organ)})]
