"""Per-prompt robustness evaluation: every prompt of every group on its own, one mask each.

No ensembling: each prompt's mask is what inference gives for that prompt alone
(`inference.predict_masks`: the image encoded once per tile, its prompts decoded in chunks).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from tqdm.auto import tqdm

from .data import class_array, group_mask, instance_array
from .inference import predict_masks
from .metrics import dice, group_robustness

QUALITY_ORDER = ("low", "medium", "high", "held_out")
STAT_NAMES = ("dice_std", "worst_dice", "low_high_gap", "pairwise_agreement")


def evaluate_robustness(segmenter, dataset, tokenizer, image_processor, max_text_length=32, threshold=0.5,
                        max_images=0, tasks=("T1", "T2"), progress=True) -> dict:
    """Run the protocol on a dataset split; returns {"summary", "records", "groups"}."""
    was_training = segmenter.training
    segmenter.eval()
    records, group_stats = [], []
    count = len(dataset) if not max_images else min(max_images, len(dataset))
    for index in tqdm(range(count), desc="robustness eval", disable=not progress):
        row = dataset[index]
        groups = [g for g in row["prompt_groups"] if g["task"] in tasks]
        prompts = [p for g in groups for p in g["prompts"]]
        pred, presence = predict_masks(segmenter, image_processor, tokenizer, row["image"].convert("RGB"),
                                       prompts, max_text_length, threshold)
        instances, classes = instance_array(row["instance_map"]), class_array(row["class_map"])
        offset = 0
        for group in groups:
            truth = group_mask(group, instances, classes)
            n = len(group["prompts"])
            dices = [dice(pred[offset + i], truth) for i in range(n)]
            for i, (prompt, quality) in enumerate(zip(group["prompts"], group["quality"])):
                records.append({"image_id": row["image_id"], "task": group["task"], "category": group["category"],
                                "present": bool(group["present"]), "quality": quality, "prompt": prompt,
                                "dice": dices[i], "presence_score": float(presence[offset + i])})
            stats = group_robustness(dices, group["quality"], list(pred[offset:offset + n]))
            group_stats.append({"image_id": row["image_id"], "task": group["task"], "category": group["category"],
                                **stats})
            offset += n
    if was_training:
        segmenter.train()
    return {"summary": summarize(records, group_stats), "records": records, "groups": group_stats}


def summarize(records: list[dict], group_stats: list[dict]) -> dict:
    """Mean Dice by task and by task × quality; mean robustness statistics by task."""
    dice_by = defaultdict(list)
    for record in records:
        dice_by[(record["task"], "all" if record["quality"] != "held_out" else "held_out")].append(record["dice"])
        dice_by[(record["task"], record["quality"])].append(record["dice"])
    summary: dict = {"dice": {}, "robustness": {}, "num_prompts_evaluated": len(records)}
    for (task, quality), values in sorted(dice_by.items()):
        summary["dice"].setdefault(task, {})[quality] = float(np.mean(values))
    for task in sorted({g["task"] for g in group_stats}):
        rows = [g for g in group_stats if g["task"] == task]
        summary["robustness"][task] = {name: float(np.nanmean([r[name] for r in rows])) for name in STAT_NAMES}
    return summary


def flat_metrics(summary: dict) -> dict[str, float]:
    """Trainer-loggable scalars: dice_T1, dice_T2_low, dice_std_T2, ..."""
    flat = {}
    for task, by_quality in summary["dice"].items():
        for quality, value in by_quality.items():
            flat[f"dice_{task}" if quality == "all" else f"dice_{task}_{quality}"] = value
    for task, stats in summary["robustness"].items():
        for name, value in stats.items():
            flat[f"{name}_{task}"] = value
    return flat


def report_markdown(summary: dict, title: str = "Prompt-robustness report") -> str:
    """Tables a person reads: Dice per task × quality, then robustness statistics per task."""
    qualities = [q for q in QUALITY_ORDER if any(q in v for v in summary["dice"].values())]
    lines = [f"# {title}", "", f"{summary['num_prompts_evaluated']} prompts evaluated, each on its own.", "",
             "## Dice by task and prompt quality", "",
             "| task | all (train qualities) | " + " | ".join(qualities) + " |",
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
    return "\n".join(lines) + "\n"
