"""Metric values on small hand-drawn masks (expected numbers worked out by hand in the comments)."""

import numpy as np
import pytest

from pgat_hf.evaluation import metrics
from pgat_hf.evaluation.metrics import aji, aji_plus, detection_f1, dice, iou, panoptic_quality, pooled_dice, pooled_iou


def canvas():
    return np.zeros((10, 10), np.int32)


@pytest.fixture
def two_nuclei():
    """True map: nucleus 1 = rows 1-2 × cols 1-2 (4 px), nucleus 2 = rows 6-7 × cols 6-7 (4 px)."""
    true = canvas()
    true[1:3, 1:3] = 1
    true[6:8, 6:8] = 2
    return true


def test_perfect_match_with_other_ids(two_nuclei):
    pred = np.where(two_nuclei == 1, 7, np.where(two_nuclei == 2, 3, 0))  # ids need not agree
    assert dice(pred > 0, two_nuclei > 0) == 1.0 and iou(pred > 0, two_nuclei > 0) == 1.0
    assert aji(pred, two_nuclei) == 1.0 and aji_plus(pred, two_nuclei) == 1.0
    assert panoptic_quality(pred, two_nuclei) == {"pq": 1.0, "dq": 1.0, "sq": 1.0, "tp": 2, "fp": 0, "fn": 0}
    assert detection_f1(pred, two_nuclei)["f1"] == 1.0


def test_partial_overlap_sets_sq():
    true, pred = canvas(), canvas()
    true[1:3, 1:3] = 1
    pred[1:3, 1:4] = 1  # IoU 4/6
    assert dice(pred, true) == pytest.approx(8 / 10)
    assert aji(pred, true) == pytest.approx(4 / 6)
    assert panoptic_quality(pred, true) == pytest.approx({"pq": 2 / 3, "dq": 1.0, "sq": 2 / 3, "tp": 1, "fp": 0, "fn": 0})


def test_merge_of_two_nuclei():
    true, pred = canvas(), canvas()
    true[0:2, 0:2] = 1
    true[0:2, 2:4] = 2
    pred[0:2, 0:4] = 1  # one blob over both: IoU 4/8 with each
    assert dice(pred, true) == 1.0  # the semantic mask is perfect
    # AJI: both true nuclei pair with the blob: (4 + 4) / (8 + 8)
    assert aji(pred, true) == pytest.approx(0.5)
    # AJI+: one-to-one, nucleus 2 unpaired: 4 / (8 + 4)
    assert aji_plus(pred, true) == pytest.approx(1 / 3)
    # PQ: IoU 0.5 is not > 0.5 -> no match, 1 FP, 2 FN
    assert panoptic_quality(pred, true) == {"pq": 0.0, "dq": 0.0, "sq": 0.0, "tp": 0, "fp": 1, "fn": 2}
    # centroids (0.5, 0.5), (0.5, 2.5) vs (0.5, 1.5): one pair within 6 px -> F1 = 1 / (1 + 0.5)
    assert detection_f1(pred, true) == pytest.approx(
        {"f1": 2 / 3, "precision": 1.0, "recall": 0.5, "tp": 1, "fp": 0, "fn": 1})
    # below 0.5 the pairing is one-to-one (Hungarian): one TP of IoU 0.5
    assert panoptic_quality(pred, true, iou_threshold=0.4) == pytest.approx(
        {"pq": 0.5 * 2 / 3, "dq": 2 / 3, "sq": 0.5, "tp": 1, "fp": 0, "fn": 1})


def test_split_of_one_nucleus():
    true, pred = canvas(), canvas()
    true[0:2, 0:4] = 1
    pred[0:2, 0:2] = 1
    pred[0:2, 2:4] = 2
    # tie in IoU (0.5 each) -> the lowest predicted id; the other piece is unused: 4 / (8 + 4)
    assert aji(pred, true) == pytest.approx(1 / 3)
    assert aji_plus(pred, true) == pytest.approx(1 / 3)
    assert panoptic_quality(pred, true)["tp"] == 0 and panoptic_quality(pred, true)["pq"] == 0.0
    assert detection_f1(pred, true)["f1"] == pytest.approx(2 / 3)


def test_missed_nucleus(two_nuclei):
    pred = np.where(two_nuclei == 1, 1, 0)
    assert dice(pred, two_nuclei) == pytest.approx(2 * 4 / (4 + 8))
    assert aji(pred, two_nuclei) == pytest.approx(4 / (4 + 4))  # the missed nucleus adds its area to U
    assert panoptic_quality(pred, two_nuclei) == pytest.approx(
        {"pq": 2 / 3, "dq": 2 / 3, "sq": 1.0, "tp": 1, "fp": 0, "fn": 1})
    assert detection_f1(pred, two_nuclei)["recall"] == 0.5


def test_false_positive(two_nuclei):
    pred = two_nuclei.copy()
    pred[1:4, 6:9] = 9  # 9 px where there is no nucleus
    assert aji(pred, two_nuclei) == pytest.approx(8 / (8 + 9))  # unused prediction adds its area to U
    assert panoptic_quality(pred, two_nuclei) == pytest.approx(
        {"pq": 0.8, "dq": 0.8, "sq": 1.0, "tp": 2, "fp": 1, "fn": 0})
    assert detection_f1(pred, two_nuclei)["precision"] == pytest.approx(2 / 3)


def test_far_detection_is_not_a_match():
    true, pred = canvas(), canvas()
    true[0, 0] = 1
    pred[9, 9] = 1  # 12.7 px away
    assert detection_f1(pred, true)["f1"] == 0.0
    assert detection_f1(pred, true, radius=13)["f1"] == 1.0


def test_empty_cases(two_nuclei):
    empty = canvas()
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0  # nothing to find, nothing found
    assert aji(empty, empty) == 1.0 and aji_plus(empty, empty) == 1.0
    assert panoptic_quality(empty, empty)["pq"] == 1.0 and detection_f1(empty, empty)["f1"] == 1.0
    for pred, true in ((empty, two_nuclei), (two_nuclei, empty)):
        assert dice(pred, true) == 0.0 and aji(pred, true) == 0.0 and aji_plus(pred, true) == 0.0
        assert panoptic_quality(pred, true)["pq"] == 0.0 and detection_f1(pred, true)["f1"] == 0.0


def test_pooled_sums_before_dividing():
    counts = [metrics.overlap_counts(np.ones((1, 1)), np.ones((1, 1))),  # (1, 1, 1): Dice 1
              (0, 10, 10)]  # Dice 0
    assert pooled_dice(counts) == pytest.approx(2 / 22)
    assert pooled_iou(counts) == pytest.approx(1 / 21)
    assert pooled_dice([(0, 0, 0)]) == 1.0


def test_pairwise_overlaps_matches_brute_force():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, (12, 12)) * 3  # ids 0, 3, 6, 9, 12
    pred = rng.integers(1, 4, (12, 12))  # no background at all
    intersection, true_areas, pred_areas = metrics.pairwise_overlaps(pred, true)
    true_ids, pred_ids = [3, 6, 9, 12], [1, 2, 3]
    expected = [[np.sum((true == t) & (pred == p)) for p in pred_ids] for t in true_ids]
    np.testing.assert_array_equal(intersection, expected)
    np.testing.assert_array_equal(true_areas, [np.sum(true == t) for t in true_ids])
    np.testing.assert_array_equal(pred_areas, [np.sum(pred == p) for p in pred_ids])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        aji(np.zeros((2, 2), int), np.zeros((3, 3), int))


def test_group_robustness():
    masks = [np.array([1, 1, 0, 0], bool), np.array([1, 1, 1, 0], bool), np.array([1, 1, 1, 0], bool)]
    stats = metrics.group_robustness([0.5, 0.7, 0.9], ["low", "medium", "high"], masks)
    assert stats["dice_std"] == pytest.approx(np.std([0.5, 0.7, 0.9]))
    assert stats["worst_dice"] == 0.5 and stats["low_high_gap"] == pytest.approx(0.4)
    assert stats["pairwise_agreement"] == pytest.approx((0.8 + 0.8 + 1.0) / 3)  # Dice of each mask pair
    assert np.isnan(metrics.group_robustness([1.0], ["medium"], masks[:1])["low_high_gap"])


def test_evaluate_module_offline(two_nuclei, monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    from pgat_hf.evaluation.evaluate_metrics import NUCLEI_SEGMENTATION

    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    metric = evaluate.load(NUCLEI_SEGMENTATION)
    missed = np.where(two_nuclei == 1, 1, 0)
    result = metric.compute(predictions=[two_nuclei, missed], references=[two_nuclei, two_nuclei])
    assert result["dice"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert result["pooled_dice"] == pytest.approx(2 * 12 / (12 + 16))
    assert result["aji"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["pq"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert set(result) >= {"iou", "pooled_iou", "aji_plus", "dq", "sq", "f1"}
    # binary predictions are split into connected components first: the same numbers
    binary = metric.compute(predictions=[(two_nuclei > 0).astype(np.int32)], references=[two_nuclei],
                            binary_predictions=True)
    assert binary["aji"] == 1.0 and binary["pq"] == 1.0
