"""Prompt vocabulary and the seeded prompt-group generator.

A *prompt group* is a set of prompts that mean the same segmentation target and so share one
ground-truth mask (DESIGN.md §1, §3). Two tasks, following the paper's Table 3:

- T1: all nuclei in the tile (``category == "nuclei"``, ``category_id == 0``).
- T2: the nuclei of one category (``category_id`` = 1-based index into the config's category list).

Each task has templates at three quality levels:

- low: short and underspecified ("nuclei", "{syn} nuclei");
- medium: paraphrase / partial specification, optional spatial context;
- high: explicit, richer verbs, spatial constraints, occasional exclusion clauses;

plus a separate pool of *held-out* phrasings (quality ``"held_out"``) whose wording differs from
every training template. Held-out prompts are stored in the dataset for robustness evaluation and
must never be sampled for training.

All text is generated from ``random.Random(seed)`` so a rebuilt dataset is byte-identical.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Iterable

QUALITIES = ("low", "medium", "high")
HELD_OUT = "held_out"
ALL_QUALITIES = QUALITIES + (HELD_OUT,)

# Modifier forms: each must read naturally before "nucleus", "nuclei" and "cells". The first entry
# is the category name itself so the plainest prompt ("neoplastic nuclei") is always reachable.
CATEGORY_SYNONYMS: dict[str, list[str]] = {
    "neoplastic": ["neoplastic", "tumor", "cancer", "malignant", "tumour", "carcinoma"],
    "inflammatory": ["inflammatory", "lymphocyte", "immune", "lymphocytic", "leukocyte", "lymphoid"],
    "connective": ["connective", "spindle-shaped", "fibroblast", "stromal", "connective tissue", "mesenchymal"],
    "epithelial": ["epithelial", "glandular", "benign epithelial", "normal epithelial", "luminal"],
    "dead": ["dead", "necrotic", "apoptotic", "dying", "pyknotic", "degenerating"],
    "other": ["other", "unclassified", "miscellaneous", "other type"],
    # CoNSeP's merged class (fibroblast + muscle + endothelial). Its synonyms are a subset of
    # "connective"'s on purpose: every prompt they produce already exists, so prompt_vocabulary()
    # (and the word tokenizer trained on it) stays exactly as it was.
    "spindle-shaped": ["spindle-shaped", "fibroblast", "stromal", "mesenchymal", "connective tissue"],
}

# ---------------------------------------------------------------------------------------------
# Training templates. T1 templates take no placeholder; every T2 template contains "{syn}".
# Strings are already in normalize_prompt() form (lowercase, single spaces, no trailing stop).
# ---------------------------------------------------------------------------------------------
T1_TEMPLATES: dict[str, list[str]] = {
    "low": [
        "nuclei",
        "cells",
        "nucleus",
        "cell nuclei",
        "all nuclei",
        "the nuclei",
        "every cell",
        "nuclei in tissue",
        "cell nucleus",
        "all cells",
    ],
    "medium": [
        "segment the nuclei in this tissue",
        "find all cells in the image",
        "segment all nuclei",
        "find the nuclei in this image",
        "locate the cell nuclei in the tissue",
        "segment every cell in the image",
        "detect all nuclei in this patch",
        "find nuclei in the tissue section",
        "segment the cell nuclei",
        "locate all nuclei in the picture",
    ],
    "high": [
        "delineate every nucleus across the whole tile and exclude stroma and background",
        "precisely segment all cell nuclei in the entire image, excluding cytoplasm and background",
        "outline the boundary of each individual nucleus across the full tissue tile",
        "segment every nucleus regardless of type from edge to edge of the image",
        "delineate all nuclei in the tissue and leave the extracellular matrix unlabelled",
        "trace the contour of every cell nucleus in this tile, including nuclei touching the border",
        "produce a precise mask of all nuclei across the whole slide tile, excluding background",
        "accurately delineate each nucleus of every cell type throughout the entire tile",
        "segment all nuclei in the image with tight boundaries and exclude the surrounding cytoplasm",
        "outline every nucleus in the tissue, covering both dense clusters and isolated cells",
    ],
}

T2_TEMPLATES: dict[str, list[str]] = {
    "low": [
        "{syn} nuclei",
        "{syn} cells",
        "{syn}",
        "{syn} nucleus",
        "the {syn} nuclei",
        "{syn} cell nuclei",
        "all {syn} nuclei",
        "{syn} cells only",
    ],
    "medium": [
        "find {syn} cells in the image",
        "segment the {syn} nuclei in this tissue",
        "segment all {syn} nuclei",
        "locate {syn} nuclei in the image",
        "find the {syn} nuclei in this patch",
        "detect {syn} cells in the tissue section",
        "segment {syn} cells in this image",
        "locate the {syn} cell nuclei in the tissue",
    ],
    "high": [
        "delineate every {syn} nucleus across the whole tile and exclude stroma and background",
        "precisely segment each {syn} nucleus in the entire image, excluding all other cell types",
        "outline the boundary of every {syn} nucleus throughout the full tissue tile",
        "segment only the {syn} nuclei from edge to edge of the image and ignore other nuclei",
        "delineate all {syn} nuclei in the tissue with tight contours, excluding cytoplasm",
        "trace the contour of each {syn} nucleus in this tile, including those touching the border",
        "produce a precise mask of all {syn} nuclei across the whole tile, excluding background",
        "accurately delineate every {syn} cell nucleus throughout the tile and leave other nuclei out",
    ],
}

# Held-out pools: verbs and framings ("highlight", "mark", "show me", "pick out", questions) that
# no training template uses, so robustness to unseen wording can be measured.
T1_HELD_OUT: list[str] = [
    "highlight nuclear regions",
    "mark each nucleus you can see",
    "show me where the nuclei are",
    "pick out the nuclei",
    "outline all nuclear profiles in the specimen",
    "label every nucleus in this histology patch",
    "which pixels belong to a nucleus",
    "identify cell nuclei present in the slide region",
    "nuclear segmentation of the whole field",
    "give me a mask covering the nuclei in this microscopy view",
]

T2_HELD_OUT: list[str] = [
    "highlight {syn} nuclear regions",
    "mark each {syn} nucleus you can see",
    "show me where the {syn} nuclei are",
    "pick out the {syn} nuclei",
    "outline {syn} nuclear profiles in the specimen",
    "label every {syn} nucleus in this histology patch",
    "which pixels belong to {syn} nuclei",
    "identify {syn} cell nuclei present in the slide region",
    "{syn} nuclear segmentation of the whole field",
    "give me a mask covering the {syn} nuclei in this microscopy view",
]

_TRAILING_PUNCT = re.compile(r"[\s.,;:!?]+$")
_WHITESPACE = re.compile(r"\s+")


def normalize_prompt(text: str) -> str:
    """Lowercase, strip, collapse whitespace and drop trailing punctuation (". , ; : ! ?").

    Applied to every prompt before tokenizing so "Segment the nuclei." and "segment the nuclei"
    map to the same token ids.
    """
    text = _WHITESPACE.sub(" ", str(text).lower().strip())
    return _TRAILING_PUNCT.sub("", text)


def category_synonyms(category: str) -> list[str]:
    """Synonyms (modifier forms) of a category; an unknown name is its own only synonym."""
    key = normalize_prompt(category.replace("_", " "))
    if key in CATEGORY_SYNONYMS:
        return list(CATEGORY_SYNONYMS[key])
    return [key]


def _expand(templates: Iterable[str], synonyms: list[str]) -> list[str]:
    """All distinct ``template.format(syn=s)`` strings, in a fixed (template-major) order."""
    out: dict[str, None] = {}  # ordered set: a deterministic order keeps sampling reproducible
    for template in templates:
        for syn in synonyms:
            out[normalize_prompt(template.format(syn=syn))] = None
    return list(out)


@lru_cache(maxsize=None)
def _pool(task: str, quality: str, category: str) -> tuple[str, ...]:
    """Every distinct prompt for (task, quality, category) in a deterministic order."""
    if task == "T1":
        templates = T1_HELD_OUT if quality == HELD_OUT else T1_TEMPLATES[quality]
        return tuple(_expand(templates, [""]))
    if task == "T2":
        templates = T2_HELD_OUT if quality == HELD_OUT else T2_TEMPLATES[quality]
        return tuple(_expand(templates, category_synonyms(category)))
    raise ValueError(f"unknown task {task!r}; expected 'T1' or 'T2'")


def prompt_pool(task: str, quality: str, category: str = "nuclei") -> list[str]:
    """Public view of the candidate prompts for one task/quality/category (used by eval code)."""
    if quality not in ALL_QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; expected one of {ALL_QUALITIES}")
    return list(_pool(task, quality, category))


def _sample_group(task: str, category: str, rng: random.Random, per_quality: int, held_out: int):
    prompts: list[str] = []
    qualities: list[str] = []
    for quality, count in [(q, per_quality) for q in QUALITIES] + [(HELD_OUT, held_out)]:
        # Exclude strings already chosen at another quality so a group never repeats a prompt.
        pool = [p for p in _pool(task, quality, category) if p not in prompts]
        if count > len(pool):
            raise ValueError(
                f"asked for {count} {quality} prompts for {task}/{category}, only {len(pool)} exist"
            )
        prompts += rng.sample(pool, count)
        qualities += [quality] * count
    return prompts, qualities


def make_prompt_groups(
    categories: list[str],
    present: list[bool] | None,
    seed: int,
    prompts_per_quality: int = 2,
    held_out_per_group: int = 2,
) -> list[dict]:
    """Build one T1 group and one T2 group per category for a single image.

    Args:
        categories: the config's category names; T2 group i gets ``category_id = i + 1``.
        present: per category, whether the image holds at least one nucleus of it (None → all
            True). T2 groups are made for absent categories too: their target is the empty mask.
        seed: seeds a private ``random.Random`` (no global state is touched).
        prompts_per_quality: distinct prompts drawn at each of low / medium / high.
        held_out_per_group: held-out prompts appended last (quality ``"held_out"``).

    Returns:
        ``1 + len(categories)`` dicts with keys task, category, category_id, present, prompts,
        quality; ``prompts`` is ordered low×n, medium×n, high×n, held_out×m and ``quality`` is the
        parallel list of labels.
    """
    if present is not None and len(present) != len(categories):
        raise ValueError(f"present has {len(present)} entries for {len(categories)} categories")
    rng = random.Random(seed)
    prompts, qualities = _sample_group("T1", "nuclei", rng, prompts_per_quality, held_out_per_group)
    groups = [
        {"task": "T1", "category": "nuclei", "category_id": 0, "present": True,
         "prompts": prompts, "quality": qualities}
    ]
    for index, category in enumerate(categories):
        prompts, qualities = _sample_group("T2", category, rng, prompts_per_quality, held_out_per_group)
        groups.append(
            {"task": "T2", "category": category, "category_id": index + 1,
             "present": True if present is None else bool(present[index]),
             "prompts": prompts, "quality": qualities}
        )
    return groups


def prompt_vocabulary(categories: Iterable[str] | None = None) -> list[str]:
    """Every string the templates can produce (training and held-out), sorted and unique.

    Used to train the word-level tokenizer (DESIGN.md §6). Covers all categories in
    CATEGORY_SYNONYMS plus any extra ``categories`` given (an unknown name is its own synonym).
    """
    names = list(CATEGORY_SYNONYMS) + [c for c in (categories or []) if c not in CATEGORY_SYNONYMS]
    out: set[str] = set()
    for quality in ALL_QUALITIES:
        out.update(_pool("T1", quality, "nuclei"))
        for name in names:
            out.update(_pool("T2", quality, name))
    return sorted(out)


def training_prompts(categories: Iterable[str] | None = None) -> set[str]:
    """Every low/medium/high prompt (no held-out ones); tests check the held-out pool is disjoint."""
    names = list(CATEGORY_SYNONYMS) + [c for c in (categories or []) if c not in CATEGORY_SYNONYMS]
    out: set[str] = set()
    for quality in QUALITIES:
        out.update(_pool("T1", quality, "nuclei"))
        for name in names:
            out.update(_pool("T2", quality, name))
    return out
