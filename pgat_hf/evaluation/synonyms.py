"""Dice per held-out synonym: which category words a model carries over and which it does not."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pgat_hf.data.vocabulary import HELD_OUT_SYNONYM, PromptVocabulary, load_vocabulary


def synonym_dice(records: list[dict], vocabulary: PromptVocabulary) -> dict[tuple[str, str], float]:
    """{(category, held-out synonym): mean Dice} over the `held_out_synonym` prompt records.

    A prompt's synonym is the category's held-out synonym it contains as a whole word (so "spindle"
    is not found in "spindle-shaped"); prompts matching none are left out.
    """
    found: dict[tuple[str, str], list[float]] = {}
    for record in records:
        if record["quality"] != HELD_OUT_SYNONYM or record["category"] not in vocabulary.categories:
            continue
        for synonym in vocabulary.categories[record["category"]].held_out:
            if re.search(rf"(?<![\w-]){re.escape(synonym)}(?![\w-])", record["prompt"]):
                found.setdefault((record["category"], synonym), []).append(record["dice"])
                break
    return {key: float(np.mean(values)) for key, values in sorted(found.items())}


def synonyms_markdown(by_column: dict[str, dict[tuple[str, str], float]],
                      title: str = "T2 Dice by held-out synonym (pooled over seeds and prompts)") -> str:
    """A row per held-out synonym, a column per model or recipe; empty when there is none."""
    keys = sorted({key for table in by_column.values() for key in table})
    if not keys:
        return ""
    names = list(by_column)
    lines = [f"## {title}", "",
             "| category | held-out synonym | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for category, synonym in keys:
        cells = [f"{by_column[name][(category, synonym)]:.3f}" if (category, synonym) in by_column[name] else "–"
                 for name in names]
        lines.append(f"| {category} | {synonym} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def dataset_vocabulary(dataset_path: str, config: str) -> PromptVocabulary | None:
    """The vocabulary a built dataset config's prompts came from (its prompts.yaml), if saved."""
    from pgat_hf.data.synthetic import PROMPTS_FILE  # here: the generator imports datasets and scipy

    path = Path(dataset_path) / config / PROMPTS_FILE
    return load_vocabulary(path) if path.is_file() else None


def training_vocabulary(dataset_path: str | None, configs: list[str]) -> PromptVocabulary | None:
    """The vocabulary of a run's data: that of its one config; None for several configs or none saved."""
    return dataset_vocabulary(dataset_path, configs[0]) if dataset_path and len(configs) == 1 else None
