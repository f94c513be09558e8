"""PNG figures of an evaluation (Dice per prompt quality per model, a qualitative mask grid) and of a
comparison (per-prompt Dice distributions per recipe, validation curves over training)."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from pgat_hf.atomic import save_figure_atomic  # noqa: E402

QUALITY_LABELS = {"low": "low", "medium": "medium", "high": "high", "held_out": "held-out framings",
                  "held_out_synonym": "held-out synonyms"}
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
    save_figure_atomic(fig, path, dpi=120)
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
    save_figure_atomic(fig, path, dpi=110)
    return path


PROMPT_QUALITIES = ("low", "medium", "high", "held_out", "held_out_synonym")
PROMPT_QUALITY_LABELS = {"low": "low", "medium": "medium", "high": "high", "held_out": "held-out\nframings",
                         "held_out_synonym": "held-out\nsynonyms"}


def per_prompt_dice_distributions(records_by_recipe: dict[str, list[dict]], path, title: str = "") -> str:
    """Side-by-side box plots of per-prompt Dice: one panel per task, prompt quality on x, one box per recipe.

    records_by_recipe: {recipe: [{"task": "T1" | "T2", "quality": ..., "dice": float}, ...]}; qualities
    follow PROMPT_QUALITIES and a panel shows only those its task has. Written atomically.
    """
    recipes = list(records_by_recipe)
    tasks = sorted({r["task"] for records in records_by_recipe.values() for r in records})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / max(len(recipes), 1)
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(1.2 + 3.6 * max(len(tasks), 1) + 0.3 * len(recipes),
                                                              4.2), squeeze=False, sharey=True)
    for axis, task in zip(axes[0], tasks):
        present = {r["quality"] for records in records_by_recipe.values() for r in records if r["task"] == task}
        qualities = [q for q in PROMPT_QUALITIES if q in present]
        for m, recipe in enumerate(recipes):
            values = [[float(r["dice"]) for r in records_by_recipe[recipe]
                       if r["task"] == task and r["quality"] == q and r["dice"] is not None and np.isfinite(r["dice"])]
                      for q in qualities]
            kept = [(i, v) for i, v in enumerate(values) if v]
            if not kept:
                continue
            positions = [i + (m - (len(recipes) - 1) / 2) * width for i, _ in kept]
            colour = colours[m % len(colours)]
            axis.boxplot([v for _, v in kept], positions=positions, widths=width * 0.85, patch_artist=True,
                         showmeans=True, manage_ticks=False,
                         boxprops={"facecolor": colour, "alpha": 0.55, "edgecolor": colour},
                         medianprops={"color": "black"}, whiskerprops={"color": colour}, capprops={"color": colour},
                         meanprops={"marker": "D", "markersize": 3.5, "markerfacecolor": "white",
                                    "markeredgecolor": "black"},
                         flierprops={"marker": ".", "markersize": 2.5, "alpha": 0.4, "markeredgecolor": colour})
        axis.set_xticks(np.arange(len(qualities)), [PROMPT_QUALITY_LABELS.get(q, q) for q in qualities], fontsize=8)
        axis.set_xlim(-0.6, len(qualities) - 0.4)
        axis.set_title(f"{task} ({'all nuclei' if task == 'T1' else 'one category'})")
        axis.set_ylim(-0.03, 1.05)
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    axes[0][0].set_ylabel("Dice per prompt")
    handles = [Patch(facecolor=colours[m % len(colours)], alpha=0.55, label=recipe)
               for m, recipe in enumerate(recipes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(recipes), 4), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    legend_rows = -(-len(recipes) // 4)
    fig.tight_layout(rect=(0, 0.04 + 0.05 * legend_rows, 1, 1))  # room for the legend below the panels
    return save_figure_atomic(fig, path, dpi=120)


def mean_curve(curves: list[list[tuple[int, float]]]) -> dict[int, float]:
    """{step: mean value over the seeds that logged that step}, steps ascending; NaN values are skipped."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            if value is not None and np.isfinite(value):
                by_step.setdefault(int(step), []).append(float(value))
    return {step: float(np.mean(by_step[step])) for step in sorted(by_step)}


def validation_curves(curves_by_recipe: dict[str, list[list[tuple[int, float]]]], path, metric: str = "T2 Dice") -> str:
    """Validation metric against training step: a thin line per seed, a thick line for the mean, one colour per recipe.

    curves_by_recipe: {recipe: [one [(step, value), ...] list per seed]}. Written atomically.
    """
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axis = plt.subplots(figsize=(6.4, 4.2))
    for m, (recipe, curves) in enumerate(curves_by_recipe.items()):
        colour = colours[m % len(colours)]
        seeds = [sorted(curve) for curve in curves if curve]
        for curve in seeds:
            axis.plot([s for s, _ in curve], [v for _, v in curve], color=colour, linewidth=0.8, alpha=0.35)
        mean = mean_curve(seeds)
        if mean:
            axis.plot(list(mean), list(mean.values()), color=colour, linewidth=2.2, marker="o", markersize=3,
                      label=f"{recipe} (mean of {len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
    axis.set_xlabel("training step")
    axis.set_ylabel(f"validation {metric}")
    axis.grid(alpha=0.3)
    axis.set_axisbelow(True)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=120)
