"""The seeded prompt-group generator over a prompt vocabulary (`pgat_hf.data.vocabulary`).

A *prompt group* is a set of prompts that mean the same segmentation target and so share one
ground-truth mask (docs/design.md §1, §3). Two tasks, following the paper's Table 3:

- T1: all nuclei in the tile (``category == "nuclei"``, ``category_id == 0``).
- T2: the nuclei of one category (``category_id`` = 1-based index into the config's category list).

Each group holds training prompts at three quality levels (low / medium / high) and two kinds of
held-out prompts that training never samples:

- ``held_out``: held-out framings (wording no training template uses) with training synonyms;
- ``held_out_synonym`` (T2): training templates with synonyms no training prompt uses.

All text is generated from ``random.Random(seed)`` so a rebuilt dataset is byte-identical.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Iterable

from pgat_hf.data.vocabulary import (HELD_OUT, HELD_OUT_PER_GROUP, HELD_OUT_SYNONYM, PROMPTS_PER_QUALITY,
                                     TRAINING_QUALITIES, PromptVocabulary, default_vocabulary, normalize_prompt)

QUALITIES = TRAINING_QUALITIES
ALL_QUALITIES = QUALITIES + (HELD_OUT, HELD_OUT_SYNONYM)

__all__ = ["ALL_QUALITIES", "CATEGORY_SYNONYMS", "HELD_OUT", "HELD_OUT_SYNONYM", "QUALITIES", "T1_HELD_OUT",
           "T1_TEMPLATES", "T2_HELD_OUT", "T2_TEMPLATES", "category_synonyms", "expand_templates",
           "make_prompt_groups", "normalize_prompt", "prompt_pool", "prompt_vocabulary", "training_prompts"]

_DEFAULT = default_vocabulary()
# Views of the shipped vocabulary (pgat_hf/data/vocabularies/default.yaml).
CATEGORY_SYNONYMS: dict[str, list[str]] = {name: list(c.train) for name, c in _DEFAULT.categories.items()}
T1_TEMPLATES = {q: list(_DEFAULT.templates["T1"][q]) for q in QUALITIES}
T2_TEMPLATES = {q: list(_DEFAULT.templates["T2"][q]) for q in QUALITIES}
T1_HELD_OUT = list(_DEFAULT.templates["T1"][HELD_OUT])
T2_HELD_OUT = list(_DEFAULT.templates["T2"][HELD_OUT])


def category_synonyms(category: str, vocabulary: PromptVocabulary | None = None) -> list[str]:
    """Training synonyms of a category; an unknown name is its own only synonym."""
    return list((vocabulary or _DEFAULT).category(category).train)


def expand_templates(vocabulary: PromptVocabulary, task: str, qualities: Iterable[str],
                     category: str = "nuclei") -> list[str]:
    """Every distinct prompt of `task` at the given qualities, in a deterministic order."""
    out: dict[str, None] = {}
    for quality in qualities:
        for prompt in _pool(vocabulary, task, quality, category):
            out[prompt] = None
    return list(out)


@lru_cache(maxsize=None)
def _pool(vocabulary: PromptVocabulary, task: str, quality: str, category: str) -> tuple[str, ...]:
    return vocabulary.pool(task, quality, category)


def prompt_pool(task: str, quality: str, category: str = "nuclei",
                vocabulary: PromptVocabulary | None = None) -> list[str]:
    """The candidate prompts for one task/quality/category (used by eval code and tests)."""
    return list(_pool(vocabulary or _DEFAULT, task, quality, category))


def _sample_group(vocabulary, task, category, rng: random.Random, counts: list[tuple[str, int]]):
    prompts: list[str] = []
    qualities: list[str] = []
    for quality, count in counts:
        # Exclude strings already chosen at another quality so a group never repeats a prompt.
        pool = [p for p in _pool(vocabulary, task, quality, category) if p not in prompts]
        if quality == HELD_OUT_SYNONYM:
            count = min(count, len(pool))  # T1 and categories without held-out synonyms have none
        elif count > len(pool):
            raise ValueError(f"asked for {count} {quality} prompts for {task}/{category}, only {len(pool)} exist "
                             f"in {vocabulary.source}")
        prompts += rng.sample(pool, count)
        qualities += [quality] * count
    return prompts, qualities


def make_prompt_groups(
    categories: list[str],
    present: list[bool] | None,
    seed: int,
    prompts_per_quality: int = PROMPTS_PER_QUALITY,
    held_out_per_group: int = HELD_OUT_PER_GROUP,
    held_out_synonyms_per_group: int = 2,
    vocabulary: PromptVocabulary | None = None,
) -> list[dict]:
    """Build one T1 group and one T2 group per category for a single image.

    Args:
        categories: the config's category names; T2 group i gets ``category_id = i + 1``.
        present: per category, whether the image holds at least one nucleus of it (None → all
            True). T2 groups are made for absent categories too: their target is the empty mask.
        seed: seeds a private ``random.Random`` (no global state is touched).
        prompts_per_quality: distinct prompts drawn at each of low / medium / high.
        held_out_per_group: held-out framings (quality ``"held_out"``).
        held_out_synonyms_per_group: T2 prompts with held-out synonyms (``"held_out_synonym"``),
            fewer where the category has none.
        vocabulary: templates and synonyms (default: the shipped vocabulary).

    Returns:
        ``1 + len(categories)`` dicts with keys task, category, category_id, present, prompts,
        quality; ``prompts`` is ordered low×n, medium×n, high×n, held_out×m, held_out_synonym×s
        and ``quality`` is the parallel list of labels.
    """
    if present is not None and len(present) != len(categories):
        raise ValueError(f"present has {len(present)} entries for {len(categories)} categories")
    vocabulary = vocabulary or _DEFAULT
    rng = random.Random(seed)
    counts = [(q, prompts_per_quality) for q in QUALITIES] + [(HELD_OUT, held_out_per_group)]
    prompts, qualities = _sample_group(vocabulary, "T1", "nuclei", rng, counts)
    groups = [
        {"task": "T1", "category": "nuclei", "category_id": 0, "present": True,
         "prompts": prompts, "quality": qualities}
    ]
    for index, category in enumerate(categories):
        prompts, qualities = _sample_group(vocabulary, "T2", category, rng,
                                           counts + [(HELD_OUT_SYNONYM, held_out_synonyms_per_group)])
        groups.append(
            {"task": "T2", "category": category, "category_id": index + 1,
             "present": True if present is None else bool(present[index]),
             "prompts": prompts, "quality": qualities}
        )
    return groups


def _names(vocabulary: PromptVocabulary, categories: Iterable[str] | None) -> list[str]:
    return list(vocabulary.categories) + [c for c in (categories or []) if c not in vocabulary.categories]


def prompt_vocabulary(categories: Iterable[str] | None = None, vocabulary: PromptVocabulary | None = None) -> list[str]:
    """Every string the vocabulary can produce (training and held-out), sorted and unique.

    Trains the word-level tokenizer of `text_side: words`. Covers every category of the
    vocabulary plus any extra ``categories`` given (an unknown name is its own synonym).
    """
    vocabulary = vocabulary or _DEFAULT
    out = set(expand_templates(vocabulary, "T1", ALL_QUALITIES))
    for name in _names(vocabulary, categories):
        out.update(expand_templates(vocabulary, "T2", ALL_QUALITIES, name))
    return sorted(out)


def training_prompts(categories: Iterable[str] | None = None, vocabulary: PromptVocabulary | None = None) -> set[str]:
    """Every low/medium/high prompt (no held-out ones); tests check the held-out pools are disjoint."""
    vocabulary = vocabulary or _DEFAULT
    out = set(expand_templates(vocabulary, "T1", QUALITIES))
    for name in _names(vocabulary, categories):
        out.update(expand_templates(vocabulary, "T2", QUALITIES, name))
    return out
