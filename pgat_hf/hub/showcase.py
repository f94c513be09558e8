"""A picture of the pipeline on a real H&E tile: the one stardist ships (`test_image_he_2d`).

    pgat-hf card --model DIR --he-figure      # writes DIR/he_tile_pipeline.png, then the card embeds it

A grid: the tile, then the mask each prompt gave, drawn as an outline over the tile, with the
prompt and its presence score as the title. Prompts span the qualities (low / medium / high /
held-out phrasing) of "all nuclei" and one category, so the figure shows whether wording matters.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from skimage.segmentation import find_boundaries

from pgat_hf.atomic import save_figure_atomic

FIGURE_NAME = "he_tile_pipeline.png"
DEFAULT_PROMPTS = (
    "all cells",  # T1, low
    "segment the nuclei in this tissue",  # T1, medium
    "segment all nuclei in the image with tight boundaries and exclude the surrounding cytoplasm",  # T1, high
    "outline all nuclear profiles in the specimen",  # T1, held-out phrasing
    "segment all lymphocyte nuclei",  # T2 inflammatory
    "highlight the lymphoid nuclei",  # T2 inflammatory, a held-out synonym in a held-out framing
)


def load_he_tile() -> np.ndarray:
    """stardist's real H&E tile (300x500), centre square crop 300x300x3 uint8.

    Square, so the pipeline's square resize does not squash the nuclei. stardist is a dev
    dependency (`pip install -e .[dev]`).
    """
    try:
        from stardist.data import test_image_he_2d
    except ImportError as error:
        raise ImportError("the H&E figure needs stardist (pip install stardist==0.9.2, or the dev extra)") from error
    tile = np.asarray(test_image_he_2d(), dtype=np.uint8)
    side = min(tile.shape[:2])
    top, left = (tile.shape[0] - side) // 2, (tile.shape[1] - side) // 2
    return tile[top:top + side, left:left + side]


def wrap(text: str, width: int = 28) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def render_he_figure(model_dir: str, out_path: str | None = None, prompts=DEFAULT_PROMPTS) -> str:
    """Run the pipeline on the stardist H&E tile with each prompt; save the figure; return its path."""
    import pgat_hf  # noqa: F401  (registers the task)
    from transformers import pipeline

    tile = load_he_tile()
    seg = pipeline("text-guided-nuclei-segmentation", model=model_dir)
    results = seg(tile, prompts=list(prompts))
    columns = 3
    rows = -(-(len(results) + 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 4.1 * rows))
    axes = axes.ravel()
    axes[0].imshow(tile)
    axes[0].set_title("H&E tile (stardist test image)", fontsize=8)
    for axis, result in zip(axes[1:], results):
        mask = np.asarray(result["mask"]) > 0
        overlay = tile.copy()
        overlay[find_boundaries(result["label_map"], mode="inner")] = (0, 255, 64)
        axis.imshow(overlay)
        axis.set_title(f"{wrap(result['prompt'])}\n{mask.mean():.0%} of pixels, "
                       f"{len(result['instances'])} objects, presence {result['score']:.2f}", fontsize=7)
    for axis in axes:
        axis.axis("off")
    figure.tight_layout()
    out_path = out_path or os.path.join(model_dir, FIGURE_NAME)
    return save_figure_atomic(figure, out_path, dpi=80)
