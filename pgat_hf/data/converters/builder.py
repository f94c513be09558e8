"""Build prompt-group configs from a raw source folder into a dataset repo folder.

For every config a converter returns: pick the seeded training subset (``train_fraction`` of
the *images* of split ``train``; other splits are kept whole), load each image (errors name the
file), cut it into tiles, make one row per tile with seeded prompt groups, then write the config
atomically (pgat_hf.data.dataset.write_dataset_repo) with a ``build.json`` of counts beside the parquet,
and re-render the README dataset card from every config in the folder.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from pgat_hf.data.dataset import write_dataset_repo
from pgat_hf.data import synthetic
from pgat_hf.data.synthetic import PROMPTS_FILE
from pgat_hf.data.vocabulary import default_vocabulary, missing_categories
from pgat_hf.data.converters.card import BUILD_FILE, update_card
from pgat_hf.data.converters.readers import ConversionError
from pgat_hf.data.converters.registry import SOURCES
from pgat_hf.data.converters.spec import ConfigSpec, RawImage, make_row
from pgat_hf.data.converters.tiling import cut_tiles


def select_fraction(images: list[RawImage], fraction: float, seed: int) -> list[RawImage]:
    """A seeded subset of ``ceil(fraction * N)`` images (at least one), in the original order."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0 or not images:
        return list(images)
    keep = max(1, math.ceil(fraction * len(images) - 1e-9))
    order = np.random.default_rng(int(seed)).permutation(len(images))
    chosen = set(order[:keep].tolist())
    return [image for index, image in enumerate(images) if index in chosen]


def _empty_stats(categories: list[str]) -> dict:
    return {"images": 0, "rows": 0, "nuclei": 0,
            "nuclei_per_category": dict.fromkeys(categories, 0),
            "rows_with_category": dict.fromkeys(categories, 0)}


def _count(stats: dict, instances: np.ndarray, classes: np.ndarray, categories: list[str]) -> None:
    stats["rows"] += 1
    ids = np.unique(instances[instances > 0])
    stats["nuclei"] += int(ids.size)
    for index, name in enumerate(categories, start=1):
        members = np.unique(instances[(classes == index) & (instances > 0)])
        stats["nuclei_per_category"][name] += int(members.size)
        stats["rows_with_category"][name] += int(members.size > 0)


IMAGE_COLUMNS = ("image", "instance_map", "class_map")


def hold_as_png(row: dict) -> dict:
    """Keep each image column as the PNG bytes the parquet file stores, not as decoded pixels.

    A decoded 256-px row holds about 0.6 MiB and a build keeps every row of every split until it
    writes, so PanNuke's 7,901 rows would need 4-5 GiB; their PNGs need a fraction of that. The
    bytes are what `datasets` would encode from the image (PNG, default settings), so the written
    files are unchanged.
    """
    for column in IMAGE_COLUMNS:
        buffer = io.BytesIO()
        row[column].save(buffer, format="PNG")
        row[column] = {"bytes": buffer.getvalue(), "path": None}
    return row


def build_config(spec: ConfigSpec, source: str, out_dir, *, train_fraction: float = 1.0,
                 seed: int = 0, tile_size: int = 256, overlap: int = 0, vocabulary=None) -> dict:
    """Convert and write one config; returns its build record (also saved as build.json).

    The prompt vocabulary the groups come from is saved beside the data as prompts.yaml.
    """
    from tqdm.auto import tqdm

    vocabulary = vocabulary or default_vocabulary()
    missing = missing_categories(vocabulary, spec.categories)
    if missing:  # e.g. a key spelt spindle_shaped for CoNSeP's spindle-shaped: its synonyms go unused
        warnings.warn(f"{vocabulary.source}: no entry for categor{'y' if len(missing) == 1 else 'ies'} "
                      f"{', '.join(map(repr, missing))} of {spec.name}; the category name is its only "
                      f"synonym and it has no held-out synonyms (entries: {', '.join(vocabulary.categories)})",
                      stacklevel=2)
    splits, split_stats = {}, {}
    for split, images in spec.splits.items():
        chosen = select_fraction(images, train_fraction, seed) if split == "train" else images
        rows, stats = [], _empty_stats(spec.categories)
        stats["images"], stats["images_available"] = len(chosen), len(images)
        for raw in tqdm(chosen, desc=f"{spec.name}/{split}", unit="image"):
            image = raw.load()
            for tile_id, rgb, instances, classes in cut_tiles(
                raw.image_id, image.rgb, image.instances, image.classes, tile_size, overlap
            ):
                rows.append(hold_as_png(make_row(tile_id, rgb, instances, classes, spec.categories, source,
                                                 raw.tissue, spec.name, seed, vocabulary)))
                _count(stats, instances, classes, spec.categories)
        splits[split], split_stats[split] = rows, stats
    record = {
        "source": source,
        "config": spec.name,
        "categories": list(spec.categories),
        "build": {"train_fraction": train_fraction, "seed": seed, "tile_size": tile_size,
                  "overlap": overlap, "prompts_sha256": vocabulary.sha256},
        "splits": split_stats,
    }
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    write_dataset_repo(out_dir, spec.name, splits, spec.categories,
                       extra_files={BUILD_FILE: text, PROMPTS_FILE: vocabulary.text})
    return record


def build_source(source: str, raw_dir=None, out_dir="data/pgat", *, train_fraction: float = 1.0,
                 seed: int = 0, tile_size: int = 256, overlap: int = 0,
                 config_name: str | None = None, vocabulary=None) -> list[str]:
    """Build every config of ``source`` into ``out_dir``; returns the config names written.

    ``vocabulary`` (a `PromptVocabulary`, default the shipped one) supplies the prompt text.

    Every converter finds all its files before any config is written, so a missing file never
    leaves a partial set of configs behind.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose from {sorted(SOURCES)}")
    if tile_size > 0 and not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, tile size), got {overlap} for tile size {tile_size}")
    entry = SOURCES[source]
    if entry.convert is None:  # synthetic: generated, not converted
        name = config_name or "synthetic"
        synthetic.generate_synthetic_dataset(out_dir, seed=seed, config_name=name, vocabulary=vocabulary,
                                             num_validation=synthetic.DEMO_VALIDATION_TILES)
        update_card(out_dir)
        return [name]
    if raw_dir is None or not Path(raw_dir).is_dir():
        raise ConversionError(f"{raw_dir}: raw folder not found (--raw)")
    kwargs = {"config_name": config_name} if entry.takes_config_name else {}
    specs = entry.convert(Path(raw_dir), **kwargs)
    if config_name and not entry.takes_config_name:
        if len(specs) != 1:
            raise ValueError(f"--config-name needs a one-config source; {source} builds {len(specs)}")
        specs[0].name = config_name
    os.makedirs(out_dir, exist_ok=True)
    for spec in specs:
        build_config(spec, source, out_dir, train_fraction=train_fraction, seed=seed,
                     tile_size=tile_size, overlap=overlap, vocabulary=vocabulary)
    update_card(out_dir)
    return [spec.name for spec in specs]
