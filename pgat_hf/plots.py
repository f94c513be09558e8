"""PNG figures of an evaluation: Dice per prompt quality per model, and a qualitative mask grid."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

QUALITY_LABELS = {"low": "low", "medium": "medium", "high": "high", "held_out": "held-out"}
TRUTH_COLOUR = np.array([255, 215, 0])  # gold
MASK_COLOUR = np.array([0, 200, 255])  # cyan: readable on pink/purple H&E


def dice_by_quality(dice_by_model: dict[str, dict[str, dict[str, float]]], path: str,
                    title: str = "Dice per prompt quality") -> str:
    """Grouped bars: one panel per task, quality levels on x, one bar per model.

    dice_by_model: {model: {task: {quality: mean Dice}}} (the evaluator's summary["dice"] per model).
    """
    tasks = sorted({task for by_task in dice_by_model.values() for task in by_task})
    qualities = [q for q in QUALITY_LABELS if any(q in by_task.get(t, {}) for by_task in dice_by_model.values()
                                                  for t in tasks)]
    models = list(dice_by_model)
    width = 0.8 / max(len(models), 1)
    fig, axes = plt.subplots(1, len(tasks), figsize=(1.2 + 3.2 * len(tasks) + 0.3 * len(models), 4.0),
                             squeeze=False, sharey=True)
    for axis, task in zip(axes[0], tasks):
        for m, model in enumerate(models):
            values = [dice_by_model[model].get(task, {}).get(q, np.nan) for q in qualities]
            x = np.arange(len(qualities)) + (m - (len(models) - 1) / 2) * width
            bars = axis.bar(x, values, width, label=model)
            axis.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        axis.set_xticks(np.arange(len(qualities)), [QUALITY_LABELS[q] for q in qualities])
        axis.set_title(f"{task} ({'all nuclei' if task == 'T1' else 'one category'})")
        axis.set_ylim(0, 1.08)
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    axes[0][0].set_ylabel("mean Dice per prompt")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(models), 4), fontsize=8, frameon=False)
    fig.suptitle(title)
    legend_rows = -(-len(models) // 4)
    fig.tight_layout(rect=(0, 0.04 + 0.05 * legend_rows, 1, 1))  # room for the legend below the panels
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _overlay(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Tint the mask's pixels of an RGB uint8 image (alpha 0.55); the rest is dimmed a little."""
    out = image.astype(float) * 0.8
    out[mask] = 0.45 * out[mask] + 0.55 * colour
    return out.clip(0, 255).astype(np.uint8)


def qualitative_grid(examples: list[dict], path: str, title: str = "") -> str:
    """Rows = tiles; columns = image, ground truth, then one prompt per quality (low … held-out).

    examples: `evaluation.qualitative_examples` output. Titles give the prompt text and its Dice.
    """
    qualities = [q for q in QUALITY_LABELS if any(c["quality"] == q for e in examples for c in e["columns"])]
    num_columns = 2 + len(qualities)
    fig, axes = plt.subplots(len(examples), num_columns, figsize=(2.4 * num_columns, 3.0 * len(examples) + 0.4),
                             squeeze=False, layout="constrained")  # constrained: 4-line titles never overlap
    for row, example in enumerate(examples):
        target = "all nuclei" if example["task"] == "T1" else f"{example['category']} nuclei"
        panels = [(example["image"], f"{example['image_id']}\ntarget: {target}"),
                  (_overlay(example["image"], example["truth"], TRUTH_COLOUR), "ground truth")]
        by_quality = {c["quality"]: c for c in example["columns"]}
        for quality in qualities:
            column = by_quality.get(quality)
            if column is None:
                panels.append((np.full_like(example["image"], 255), f"{QUALITY_LABELS[quality]}: –"))
                continue
            prompt = textwrap.fill(f"“{column['prompt']}”", 32, max_lines=3, placeholder=" …”")
            panels.append((_overlay(example["image"], column["mask"], MASK_COLOUR),
                           f"{QUALITY_LABELS[quality]} · Dice {column['dice']:.2f}"
                           f"{'' if column['mask'].any() else ' · empty mask'}\n{prompt}"))
        for axis, (picture, caption) in zip(axes[row], panels):
            axis.imshow(picture, interpolation="nearest")
            axis.set_title(caption, fontsize=7.5, loc="left")
            axis.set_xticks([])
            axis.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
