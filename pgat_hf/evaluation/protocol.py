"""Per-prompt robustness evaluation: every prompt of every group on its own, one mask each.

No ensembling: each prompt's mask is what inference gives for that prompt alone
(`inference.predict_masks` with the checkpoint's threshold: the image encoded once per tile, its
prompts decoded in chunks). Scores are aggregated by source × task (T1/T2) × quality
(low/medium/high, held_out: held-out framings, held_out_synonym: held-out category synonyms);
"all" is the mean over the training qualities (low/medium/high).
T1 prompts also get instance metrics: the predicted mask is split into 8-connected components
(`inference.mask_to_instances`) and compared with the tile's `instance_map`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from tqdm.auto import tqdm

from pgat_hf.data.vocabulary import TASKS
from pgat_hf.data.dataset import class_array, group_mask, instance_array
from pgat_hf.models.inference import mask_to_instances, predict_masks
from pgat_hf.evaluation.metrics import (INSTANCE_METRIC_NAMES, dice, group_robustness, instance_metrics, iou, overlap_counts,
                      pooled_dice)

QUALITY_ORDER = ("low", "medium", "high", "held_out", "held_out_synonym")
QUALITY_LABELS = {"held_out": "held-out framings", "held_out_synonym": "held-out synonyms"}
STAT_NAMES = ("dice_std", "worst_dice", "low_high_gap", "pairwise_agreement")
TRAINING_QUALITIES = ("low", "medium", "high")


def evaluate_robustness(segmenter, dataset, tokenizer, image_processor, max_text_length=32, threshold=0.5,
                        max_images=0, tasks=TASKS, progress=True, instance_scores=True, min_area=0,
                        presence_threshold=0.0,
                        min_instance_area=0, iou_threshold=0.5, match_radius=6.0, desc="robustness eval") -> dict:
    """Run the protocol on a dataset split; returns {"summary", "records", "groups"}.

    records: one dict per (image, prompt); groups: one dict per (image, group) with its robustness
    statistics. `threshold`, `min_area` and `presence_threshold` are the checkpoint's inference
    settings (the mask a user gets). `instance_scores` adds AJI/PQ/F1 to T1 records (connected components of masks
    of at least `min_instance_area` pixels).
    """
    was_training = segmenter.training
    segmenter.eval()
    records, group_stats = [], []
    count = len(dataset) if not max_images else min(max_images, len(dataset))
    for index in tqdm(range(count), desc=desc, disable=not progress, leave=False):
        row = dataset[index]
        groups = [g for g in row["prompt_groups"] if g["task"] in tasks]
        prompts = [p for g in groups for p in g["prompts"]]
        pred, presence = predict_masks(segmenter, image_processor, tokenizer, row["image"].convert("RGB"),
                                       prompts, max_text_length, threshold, min_area, presence_threshold)
        instances, classes = instance_array(row["instance_map"]), class_array(row["class_map"])
        where = {"image_id": row["image_id"], "source": row.get("source", "")}
        offset = 0
        for group in groups:
            truth = group_mask(group, instances, classes)
            n = len(group["prompts"])
            what = {**where, "task": group["task"], "category": group["category"], "present": bool(group["present"])}
            dices = []
            for i, (prompt, quality) in enumerate(zip(group["prompts"], group["quality"])):
                mask = pred[offset + i]
                record = {**what, "quality": quality, "prompt": prompt, "dice": dice(mask, truth),
                          "iou": iou(mask, truth), "counts": overlap_counts(mask, truth),
                          "presence_score": float(presence[offset + i])}
                if instance_scores and group["task"] == "T1":
                    record.update(instance_metrics(mask_to_instances(mask, min_instance_area), instances,
                                                   iou_threshold, match_radius))
                records.append(record)
                dices.append(record["dice"])
            group_stats.append({**what, **group_robustness(dices, group["quality"], list(pred[offset:offset + n]))})
            offset += n
    if was_training:
        segmenter.train()
    return {"summary": summarize(records, group_stats), "records": records, "groups": group_stats}


def _by_quality(records: list[dict], value) -> dict:
    """{task: {"all" | quality: mean of value(records)}}; value maps a list of records to a float."""
    selected = defaultdict(list)
    for record in records:
        selected[(record["task"], record["quality"])].append(record)
        if record["quality"] in TRAINING_QUALITIES:
            selected[(record["task"], "all")].append(record)
    out: dict = {}
    for task in sorted({task for task, _ in selected}):
        for quality in ("all",) + QUALITY_ORDER:
            if (task, quality) in selected:
                out.setdefault(task, {})[quality] = value(selected[(task, quality)])
    return out


def _aggregate(records: list[dict], group_stats: list[dict]) -> dict:
    summary = {
        "num_prompts_evaluated": len(records),
        "num_images": len({r["image_id"] for r in records}),
        "dice": _by_quality(records, lambda rows: float(np.mean([r["dice"] for r in rows]))),
        "iou": _by_quality(records, lambda rows: float(np.mean([r["iou"] for r in rows]))),
        "pooled_dice": _by_quality(records, lambda rows: pooled_dice([r["counts"] for r in rows])),
        "robustness": {},
    }
    with_instances = [r for r in records if "aji" in r]
    if with_instances:
        summary["instance"] = _by_quality(with_instances, lambda rows: {
            name: float(np.mean([r[name] for r in rows])) for name in INSTANCE_METRIC_NAMES})
    for task in sorted({g["task"] for g in group_stats}):
        rows = [g for g in group_stats if g["task"] == task]
        stats = {}
        for name in STAT_NAMES:
            values = np.array([r[name] for r in rows], dtype=float)
            stats[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        summary["robustness"][task] = stats
    return summary


def summarize(records: list[dict], group_stats: list[dict]) -> dict:
    """Aggregates over everything, plus the same per source under "by_source".

    Keys: num_prompts_evaluated, num_images, dice / iou / pooled_dice ({task: {"all" | quality:
    value}}), instance ({"T1": {quality: {aji, aji_plus, pq, dq, sq, f1}}}, when computed),
    robustness ({task: mean of each group statistic}), by_source ({source: the same keys}).
    """
    summary = _aggregate(records, group_stats)
    sources = sorted({r.get("source", "") for r in records})
    summary["by_source"] = {
        source: _aggregate([r for r in records if r.get("source", "") == source],
                           [g for g in group_stats if g.get("source", "") == source])
        for source in sources
    }
    return summary


def flat_metrics(summary: dict) -> dict[str, float]:
    """Trainer-loggable scalars: dice_T1, dice_T2_low, dice_std_T2, aji_T1, pq_T1, ..."""
    flat = {}
    for task, by_quality in summary["dice"].items():
        for quality, value in by_quality.items():
            flat[f"dice_{task}" if quality == "all" else f"dice_{task}_{quality}"] = value
    for task, stats in summary["robustness"].items():
        for name, value in stats.items():
            flat[f"{name}_{task}"] = value
    for task, by_quality in summary.get("instance", {}).items():
        for name, value in by_quality.get("all", {}).items():
            flat[f"{name}_{task}"] = value
    return flat


def report_markdown(summary: dict, title: str = "Prompt-robustness report") -> str:
    """Tables a person reads: Dice per task × quality, robustness statistics, T1 instance metrics."""
    qualities = [q for q in QUALITY_ORDER if any(q in v for v in summary["dice"].values())]
    lines = [f"# {title}", "", f"{summary['num_prompts_evaluated']} prompts evaluated, each on its own.", "",
             "## Dice by task and prompt quality", "",
             "| task | all (train qualities) | " + " | ".join(QUALITY_LABELS.get(q, q) for q in qualities) + " |",
             "|---|---|" + "---|" * len(qualities)]
    for task, by_quality in summary["dice"].items():
        cells = [f"{by_quality[q]:.3f}" if q in by_quality else "–" for q in qualities]
        lines.append(f"| {task} | {by_quality.get('all', float('nan')):.3f} | " + " | ".join(cells) + " |")
    lines += ["", "## Robustness across a group's prompts (mean over groups)", "",
              "| task | Dice std ↓ | worst-prompt Dice ↑ | high − low gap | pairwise mask agreement ↑ |",
              "|---|---|---|---|---|"]
    for task, stats in summary["robustness"].items():
        lines.append(f"| {task} | {stats['dice_std']:.3f} | {stats['worst_dice']:.3f} | "
                     f"{stats['low_high_gap']:+.3f} | {stats['pairwise_agreement']:.3f} |")
    if summary.get("instance"):
        lines += ["", "## Instance metrics of T1 prompts (connected components vs instance_map)", "",
                  "| prompts | " + " | ".join(INSTANCE_METRIC_NAMES) + " |", "|---|" + "---|" * len(INSTANCE_METRIC_NAMES)]
        for task, by_quality in summary["instance"].items():
            for quality, scores in by_quality.items():
                label = f"{task} {'train qualities' if quality == 'all' else quality}"
                lines.append(f"| {label} | " + " | ".join(f"{scores[n]:.3f}" for n in INSTANCE_METRIC_NAMES) + " |")
    return "\n".join(lines) + "\n"


def qualitative_examples(segmenter, dataset, tokenizer, image_processor, max_text_length=32, threshold=0.5,
                         num_tiles=4, task="both", min_area=0, presence_threshold=0.0) -> list[dict]:
    """Masks that one prompt of each quality gave on a few tiles (for `plots.qualitative_grid`).

    Per tile one group whose target is present: task "T1", "T2" (rows cycle through the present
    categories; T1 if none is present) or "both" (T1 and T2 rows alternate). Returns
    [{image_id, image [H,W,3] uint8, truth [H,W] bool, task, category,
      columns: [{quality, prompt, mask [H,W] bool, dice}]}].
    """
    segmenter.eval()
    examples = []
    for index in range(min(num_tiles, len(dataset))):
        row = dataset[index]
        wanted = ("T1" if index % 2 == 0 else "T2") if task == "both" else task
        candidates = [g for g in row["prompt_groups"] if g["task"] == wanted and g["present"]]
        candidates = candidates or [g for g in row["prompt_groups"] if g["task"] == "T1"]
        group = candidates[(index // 2 if task == "both" else index) % len(candidates)]
        chosen = [(q, group["prompts"][group["quality"].index(q)]) for q in QUALITY_ORDER if q in group["quality"]]
        image = row["image"].convert("RGB")
        masks, _ = predict_masks(segmenter, image_processor, tokenizer, image, [p for _, p in chosen],
                                 max_text_length, threshold, min_area, presence_threshold)
        truth = group_mask(group, instance_array(row["instance_map"]), class_array(row["class_map"]))
        examples.append({
            "image_id": row["image_id"], "image": np.asarray(image), "truth": truth, "task": group["task"],
            "category": group["category"],
            "columns": [{"quality": q, "prompt": p, "mask": m, "dice": dice(m, truth)} for (q, p), m in zip(chosen, masks)],
        })
    return examples
