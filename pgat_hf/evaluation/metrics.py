"""Segmentation metrics on numpy masks, and prompt-robustness statistics.

Semantic metrics (one binary mask per prompt):

- ``dice`` / ``iou`` per image; ``pooled_dice`` / ``pooled_iou`` sum intersections and areas over
  all images first (large images weigh more, empty ones add nothing).
- Empty convention: a prediction that is empty where the truth is empty scores 1.0 (the model
  correctly found nothing: what an absent category's prompt should give). The same holds for every
  instance metric below when neither map has an instance; one side empty and the other not is 0.0.

Instance metrics (instance-id maps, 0 = background, ids need not be consecutive):

- ``aji``: Aggregated Jaccard Index of Kumar et al. (2017), as in HoVer-Net's ``get_fast_aji``.
  Every true nucleus G_i is paired with the predicted instance S_j of highest IoU (a predicted
  instance may be used by several true nuclei; ties go to the lowest predicted id); true nuclei
  that overlap nothing stay unpaired. AJI = Σ|G_i∩S_j| / (Σ|G_i∪S_j| + Σ|unpaired G| + Σ|unused S|).
- ``aji_plus``: AJI+ of Graham et al. (2019): the same sums, but the pairing is one-to-one
  (Hungarian on IoU, pairs with IoU > 0), so a merged prediction is not counted twice.
- ``panoptic_quality``: PQ of Kirillov et al. as used for nuclei by Graham et al. (HoVer-Net).
  A true and a predicted instance match when IoU > 0.5; at that threshold a match is unique by
  construction (two disjoint segments cannot both overlap a third by more than half). Below 0.5
  the pairing is one-to-one by Hungarian on IoU, keeping pairs above the threshold.
  DQ = TP / (TP + FP/2 + FN/2), SQ = mean IoU of the TP pairs, PQ = DQ · SQ.
- ``detection_f1``: detection F1 on centroids (Sirinukunwattana et al. 2016; HoVer-Net's
  ``pair_coordinates``): one-to-one Hungarian pairing on centroid distance, a pair counts when its
  distance is ≤ ``radius`` pixels (6 px here; HoVer-Net uses 12 px at 40× / 0.25 µm per pixel).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist


# ------------------------------------------------------------------------------------------
# Semantic (binary mask) metrics
# ------------------------------------------------------------------------------------------
def _binary_pair(pred_mask, true_mask) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred_mask, bool), np.asarray(true_mask, bool)
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {true.shape}")
    return pred, true


def overlap_counts(pred_mask: np.ndarray, true_mask: np.ndarray) -> tuple[int, int, int]:
    """Binary HxW masks -> (|P∩T|, |P|, |T|): what pooled metrics sum over images."""
    pred, true = _binary_pair(pred_mask, true_mask)
    return int(np.logical_and(pred, true).sum()), int(pred.sum()), int(true.sum())


def _dice_from_counts(intersection, pred_area, true_area) -> float:
    total = pred_area + true_area
    return 1.0 if total == 0 else float(2.0 * intersection / total)


def _iou_from_counts(intersection, pred_area, true_area) -> float:
    union = pred_area + true_area - intersection
    return 1.0 if union == 0 else float(intersection / union)


def dice(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Binary HxW masks -> 2|P∩T| / (|P|+|T|); both empty -> 1.0."""
    return _dice_from_counts(*overlap_counts(pred_mask, true_mask))


def iou(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Binary HxW masks -> |P∩T| / |P∪T|; both empty -> 1.0."""
    return _iou_from_counts(*overlap_counts(pred_mask, true_mask))


def pooled_dice(counts) -> float:
    """Dice over a set of images from their ``overlap_counts`` [(∩, |P|, |T|), ...]: 2Σ∩ / (Σ|P|+Σ|T|)."""
    return _dice_from_counts(*np.asarray(counts, dtype=np.int64).reshape(-1, 3).sum(0))


def pooled_iou(counts) -> float:
    """IoU over a set of images from their ``overlap_counts``: Σ∩ / (Σ|P| + Σ|T| − Σ∩)."""
    return _iou_from_counts(*np.asarray(counts, dtype=np.int64).reshape(-1, 3).sum(0))


# ------------------------------------------------------------------------------------------
# Instance metrics
# ------------------------------------------------------------------------------------------
def pairwise_overlaps(pred_instances: np.ndarray, true_instances: np.ndarray):
    """Instance maps -> (intersection [T, P], true areas [T], pred areas [P]) over the nonzero ids.

    One bincount over combined (true index, pred index) codes; no per-instance loops.
    """
    pred = np.asarray(pred_instances)
    true = np.asarray(true_instances)
    if pred.shape != true.shape:
        raise ValueError(f"instance map shapes differ: {pred.shape} vs {true.shape}")
    # compact ids: index 0 is background whenever present (ids are >= 0)
    true_ids, true_index = np.unique(true, return_inverse=True)
    pred_ids, pred_index = np.unique(pred, return_inverse=True)
    true_index = true_index.ravel() + (0 if true_ids[0] == 0 else 1)
    pred_index = pred_index.ravel() + (0 if pred_ids[0] == 0 else 1)
    num_true, num_pred = int(np.count_nonzero(true_ids)), int(np.count_nonzero(pred_ids))
    joint = np.bincount(true_index * (num_pred + 1) + pred_index, minlength=(num_true + 1) * (num_pred + 1))
    joint = joint.reshape(num_true + 1, num_pred + 1)  # row/col 0 = background
    return joint[1:, 1:], joint[1:].sum(1), joint[:, 1:].sum(0)


def _iou_matrix(intersection, true_areas, pred_areas) -> np.ndarray:
    union = true_areas[:, None] + pred_areas[None, :] - intersection
    return intersection / np.maximum(union, 1)


def _empty_score(num_true: int, num_pred: int) -> float | None:
    """1.0 when both maps are empty, 0.0 when exactly one is, None when both hold instances."""
    if num_true == 0 and num_pred == 0:
        return 1.0
    if num_true == 0 or num_pred == 0:
        return 0.0
    return None


def _aji_sums(intersection, true_areas, pred_areas, paired_true, paired_pred) -> float:
    union = true_areas[paired_true] + pred_areas[paired_pred] - intersection[paired_true, paired_pred]
    unpaired_true = np.setdiff1d(np.arange(len(true_areas)), paired_true)
    unused_pred = np.setdiff1d(np.arange(len(pred_areas)), paired_pred)
    denominator = union.sum() + true_areas[unpaired_true].sum() + pred_areas[unused_pred].sum()
    return float(intersection[paired_true, paired_pred].sum() / denominator)


def _aji_from_overlaps(intersection, true_areas, pred_areas) -> float:
    empty = _empty_score(len(true_areas), len(pred_areas))
    if empty is not None:
        return empty
    ious = _iou_matrix(intersection, true_areas, pred_areas)
    paired_true = np.flatnonzero(ious.max(1) > 0)
    paired_pred = ious.argmax(1)[paired_true]
    return _aji_sums(intersection, true_areas, pred_areas, paired_true, paired_pred)


def _aji_plus_from_overlaps(intersection, true_areas, pred_areas) -> float:
    empty = _empty_score(len(true_areas), len(pred_areas))
    if empty is not None:
        return empty
    ious = _iou_matrix(intersection, true_areas, pred_areas)
    rows, cols = linear_sum_assignment(-ious)
    keep = ious[rows, cols] > 0
    return _aji_sums(intersection, true_areas, pred_areas, rows[keep], cols[keep])


def _pq_from_overlaps(intersection, true_areas, pred_areas, iou_threshold: float) -> dict:
    num_true, num_pred = len(true_areas), len(pred_areas)
    empty = _empty_score(num_true, num_pred)
    if empty is not None:
        return {"pq": empty, "dq": empty, "sq": empty, "tp": 0, "fp": num_pred, "fn": num_true}
    ious = _iou_matrix(intersection, true_areas, pred_areas)
    if iou_threshold >= 0.5:
        matched_ious = ious[ious > iou_threshold]  # unique by construction
    else:
        rows, cols = linear_sum_assignment(-ious)
        matched_ious = ious[rows, cols][ious[rows, cols] > iou_threshold]
    tp = len(matched_ious)
    fp, fn = num_pred - tp, num_true - tp
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(matched_ious.mean()) if tp else 0.0
    return {"pq": dq * sq, "dq": dq, "sq": sq, "tp": tp, "fp": fp, "fn": fn}


def aji(pred_instances: np.ndarray, true_instances: np.ndarray) -> float:
    """Aggregated Jaccard Index (Kumar et al.): best-IoU pairing per true nucleus, see module doc."""
    return _aji_from_overlaps(*pairwise_overlaps(pred_instances, true_instances))


def aji_plus(pred_instances: np.ndarray, true_instances: np.ndarray) -> float:
    """AJI+ (Graham et al.): like ``aji`` but with one-to-one Hungarian pairing on IoU."""
    return _aji_plus_from_overlaps(*pairwise_overlaps(pred_instances, true_instances))


def panoptic_quality(pred_instances: np.ndarray, true_instances: np.ndarray, iou_threshold: float = 0.5) -> dict:
    """Instance maps -> {pq, dq, sq, tp, fp, fn}; matching rule in the module docstring."""
    return _pq_from_overlaps(*pairwise_overlaps(pred_instances, true_instances), iou_threshold)


def instance_centroids(instances: np.ndarray) -> np.ndarray:
    """Instance map -> (N, 2) row/col centroids of its nonzero ids, in ascending id order."""
    instances = np.asarray(instances)
    ids = np.unique(instances)
    ids = ids[ids != 0]
    if len(ids) == 0:
        return np.zeros((0, 2))
    return np.asarray(ndimage.center_of_mass(np.ones(instances.shape), instances, ids)).reshape(-1, 2)


def detection_f1(pred_instances: np.ndarray, true_instances: np.ndarray, radius: float = 6.0) -> dict:
    """Centroid detection -> {f1, precision, recall, tp, fp, fn}; Hungarian pairs within `radius` px."""
    true_points, pred_points = instance_centroids(true_instances), instance_centroids(pred_instances)
    num_true, num_pred = len(true_points), len(pred_points)
    empty = _empty_score(num_true, num_pred)
    if empty is not None:
        return {"f1": empty, "precision": empty if num_pred == 0 else 0.0,
                "recall": empty if num_true == 0 else 0.0, "tp": 0, "fp": num_pred, "fn": num_true}
    distances = cdist(true_points, pred_points)
    rows, cols = linear_sum_assignment(distances)
    tp = int((distances[rows, cols] <= radius).sum())
    fp, fn = num_pred - tp, num_true - tp
    return {"f1": tp / (tp + 0.5 * fp + 0.5 * fn), "precision": tp / num_pred, "recall": tp / num_true,
            "tp": tp, "fp": fp, "fn": fn}


INSTANCE_METRIC_NAMES = ("aji", "aji_plus", "pq", "dq", "sq", "f1")


def instance_metrics(pred_instances: np.ndarray, true_instances: np.ndarray, iou_threshold: float = 0.5,
                     radius: float = 6.0) -> dict[str, float]:
    """All instance scores of one image: aji, aji_plus, pq, dq, sq, f1 (names in INSTANCE_METRIC_NAMES)."""
    overlaps = pairwise_overlaps(pred_instances, true_instances)  # shared by AJI, AJI+ and PQ
    quality = _pq_from_overlaps(*overlaps, iou_threshold)
    return {"aji": _aji_from_overlaps(*overlaps), "aji_plus": _aji_plus_from_overlaps(*overlaps),
            "pq": quality["pq"], "dq": quality["dq"], "sq": quality["sq"],
            "f1": detection_f1(pred_instances, true_instances, radius)["f1"]}


# ------------------------------------------------------------------------------------------
# Prompt robustness
# ------------------------------------------------------------------------------------------
def group_robustness(dices: list[float], qualities: list[str], pred_masks: list[np.ndarray]) -> dict:
    """Statistics over one group's prompts: spread of Dice and agreement between their masks.

    dice_std: population std of the prompts' Dice; worst_dice: the lowest; low_high_gap: mean Dice
    of the high prompts minus that of the low ones (nan if either level is missing);
    pairwise_agreement: mean Dice between the masks of every pair of prompts (1.0 for one prompt).
    """
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
