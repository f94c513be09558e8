"""What a converter hands the builder: configs of splits of lazily loaded raw images.

A converter only *finds* files (cheap, so a missing file fails before any work) and returns
:class:`ConfigSpec` objects; each :class:`RawImage` loads its pixels when the builder asks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pgat_hf.data.dataset import encode_class_map, encode_image, encode_instance_map
from pgat_hf.data.prompts import make_prompt_groups
from pgat_hf.data.converters.readers import fail


@dataclass(frozen=True)
class LoadedImage:
    """One raw image: rgb uint8 (H, W, 3); instances int32 (H, W) ids 1..N; classes int32
    (H, W) with 0 = unlabelled and c = the c-th category (all zero for class-free sources)."""

    rgb: np.ndarray
    instances: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class RawImage:
    """A not-yet-loaded image. ``path`` names it in errors; ``load`` reads and checks it."""

    image_id: str
    tissue: str
    path: str
    load: Callable[[], LoadedImage]


@dataclass
class ConfigSpec:
    """One config of the output repo: its category names and its splits' images."""

    name: str
    categories: list[str]
    splits: dict[str, list[RawImage]] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceInfo:
    """What the dataset card says about a source."""

    name: str
    title: str
    homepage: str
    licence: str  # SPDX-like id, e.g. "cc-by-nc-sa-4.0"
    licence_note: str
    citation: str
    description: str


def loaded(rgb: np.ndarray, instances: np.ndarray, classes: np.ndarray | None,
           num_categories: int, path) -> LoadedImage:
    """Check class ids against the category count and bundle the arrays."""
    if classes is None:
        classes = np.zeros(instances.shape, np.int32)
    classes = np.asarray(classes).astype(np.int32)
    if classes.size and (classes.min() < 0 or classes.max() > num_categories):
        bad = sorted(set(np.unique(classes).tolist()) - set(range(num_categories + 1)))
        fail(path, f"unknown class ids {bad}; expected 0..{num_categories}")
    classes = np.where(instances > 0, classes, 0).astype(np.int32)  # classes live on nuclei only
    return LoadedImage(rgb=rgb, instances=instances.astype(np.int32), classes=classes)


def prompt_seed(seed: int, config: str, image_id: str) -> int:
    """Per-row prompt seed from (seed, config, id) only: stable across runs, machines and the
    order rows are built in (Python's hash() is salted, so it is not used)."""
    digest = hashlib.sha256(f"{int(seed)}\0{config}\0{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def make_row(tile_id: str, rgb, instances, classes, categories: list[str], source: str,
             tissue: str, config: str, seed: int, vocabulary=None) -> dict:
    """One dataset row (pgat_hf.data.dataset.FEATURES): a T1 group and one T2 group per category."""
    present = [bool((classes == index + 1).any()) for index in range(len(categories))]
    return {
        "image": encode_image(rgb),
        "instance_map": encode_instance_map(instances),
        "class_map": encode_class_map(classes),
        "prompt_groups": make_prompt_groups(categories, present, seed=prompt_seed(seed, config, tile_id),
                                            vocabulary=vocabulary),
        "image_id": tile_id,
        "source": source,
        "tissue": tissue,
    }
