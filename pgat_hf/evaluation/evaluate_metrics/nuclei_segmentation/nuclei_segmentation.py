"""Nuclei segmentation metrics as a local `evaluate` module (works offline).

    import evaluate
    from pgat_hf.evaluation.evaluate_metrics import NUCLEI_SEGMENTATION
    metric = evaluate.load(NUCLEI_SEGMENTATION)
    metric.compute(predictions=[pred_instance_map, ...], references=[true_instance_map, ...])

The numbers come from `pgat_hf.evaluation.metrics`, so they equal what `pgat-hf eval` reports. Definitions and
the matching rules are documented there.
"""

import datasets
import evaluate
import numpy as np
from pgat_hf.evaluation import metrics
from pgat_hf.models.inference import mask_to_instances

_DESCRIPTION = """Dice and IoU (mean per image and pooled over images) and the nuclei instance metrics
AJI (Kumar et al.), AJI+, PQ / DQ / SQ (IoU > 0.5 unique matching, HoVer-Net) and centroid detection F1.
An empty prediction on an empty truth scores 1.0."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted HxW maps: instance ids (0 = background), or binary masks with
        `binary_predictions=True` (then split into 8-connected components).
    references: true HxW instance-id maps (0 = background).
    binary_predictions: label the predictions' connected components first (default False).
    iou_threshold: PQ matching threshold (default 0.5).
    match_radius: centroid distance in pixels for detection F1 (default 6.0).
Returns:
    dice, iou (mean per image), pooled_dice, pooled_iou, and the per-image means of
    aji, aji_plus, pq, dq, sq, f1.
"""

_CITATION = """Kumar et al., IEEE TMI 2017 (AJI); Graham et al., Medical Image Analysis 2019 (HoVer-Net, PQ)."""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NucleiSegmentation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("int32"))),
                "references": datasets.Sequence(datasets.Sequence(datasets.Value("int32"))),
            }),
        )

    def _compute(self, predictions, references, binary_predictions=False, iou_threshold=0.5, match_radius=6.0):
        counts, dices, ious, per_image = [], [], [], []
        for prediction, reference in zip(predictions, references):
            pred_instances = np.asarray(prediction)
            true_instances = np.asarray(reference)
            if binary_predictions:
                pred_instances = mask_to_instances(pred_instances > 0)
            counts.append(metrics.overlap_counts(pred_instances > 0, true_instances > 0))
            dices.append(metrics.dice(pred_instances > 0, true_instances > 0))
            ious.append(metrics.iou(pred_instances > 0, true_instances > 0))
            per_image.append(metrics.instance_metrics(pred_instances, true_instances, iou_threshold, match_radius))
        result = {"dice": float(np.mean(dices)), "iou": float(np.mean(ious)),
                  "pooled_dice": metrics.pooled_dice(counts), "pooled_iou": metrics.pooled_iou(counts)}
        for name in metrics.INSTANCE_METRIC_NAMES:
            result[name] = float(np.mean([scores[name] for scores in per_image]))
        return result
