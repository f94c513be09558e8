"""Cutting large tiles (e.g. 1000×1000 Kumar / CoNSeP images) into model-size tiles."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from skimage.segmentation import relabel_sequential


def tile_starts(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``size`` that overlap by at least
    ``overlap`` pixels; the last window is aligned to the end, so nothing is dropped and no
    padding is needed. ``size <= 0`` or ``length <= size`` gives one window (the whole axis)."""
    if size <= 0 or length <= size:
        return [0]
    stride = size - overlap
    if stride <= 0:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile size ({size})")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def cut_tiles(
    image_id: str,
    rgb: np.ndarray,
    instances: np.ndarray,
    classes: np.ndarray,
    size: int,
    overlap: int = 0,
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(tile_id, rgb, instances, classes)`` windows of at most ``size``×``size``.

    An image that already fits is yielded whole under its own id; cut tiles are named
    ``{image_id}_y{row}_x{col}`` and their instance ids are renumbered 1..N (nuclei cut by the
    border stay as partial nuclei, as in PanNuke's own 256 px tiles).
    """
    height, width = instances.shape
    rows, cols = tile_starts(height, size, overlap), tile_starts(width, size, overlap)
    if len(rows) == 1 and len(cols) == 1:
        yield image_id, rgb, instances, classes
        return
    for top in rows:
        for left in cols:
            window = (slice(top, top + size), slice(left, left + size))
            tile_instances, _, _ = relabel_sequential(instances[window])
            yield (
                f"{image_id}_y{top:04d}_x{left:04d}",
                np.ascontiguousarray(rgb[window]),
                tile_instances.astype(np.int32),
                np.ascontiguousarray(classes[window]),
            )
