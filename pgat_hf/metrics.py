"""Segmentation metrics on numpy masks, and prompt-robustness statistics.

Convention: a prediction that is empty where the truth is empty scores 1.0 (the model correctly
found nothing: what an absent category's prompt should give).
"""

from __future__ import annotations

import itertools

import numpy as np


def dice(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Binary HxW masks -> 2|P∩T| / (|P|+|T|); both empty -> 1.0."""
    pred, true = np.asarray(pred_mask, bool), np.asarray(true_mask, bool)
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {true.shape}")
    total = pred.sum() + true.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, true).sum() / total)


def iou(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Binary HxW masks -> |P∩T| / |P∪T|; both empty -> 1.0."""
    pred, true = np.asarray(pred_mask, bool), np.asarray(true_mask, bool)
    union = np.logical_or(pred, true).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, true).sum() / union)


def group_robustness(dices: list[float], qualities: list[str], pred_masks: list[np.ndarray]) -> dict:
    """Statistics over one group's prompts: spread of Dice and agreement between their masks."""
    values = np.asarray(dices, dtype=float)
    by_quality = {q: values[[i for i, x in enumerate(qualities) if x == q]] for q in set(qualities)}
    low, high = by_quality.get("low"), by_quality.get("high")
    pairs = list(itertools.combinations(range(len(pred_masks)), 2))
    agreement = [dice(pred_masks[i], pred_masks[j]) for i, j in pairs]
    return {
        "dice_std": float(values.std()),
        "worst_dice": float(values.min()),
        "low_high_gap": float(high.mean() - low.mean()) if low is not None and high is not None else float("nan"),
        "pairwise_agreement": float(np.mean(agreement)) if agreement else 1.0,
    }
