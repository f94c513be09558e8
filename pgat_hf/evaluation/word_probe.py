"""Which nuclei does a word prompt? Dice of one template filled with each word against every
category's mask and against all nuclei, over a dataset's tiles.

A word the model reads as a category scores high against that category's mask and about 0
against the others; a word it cannot place usually gets the model's default instead (often all
nuclei, or a mixture of categories). Run it on training or validation tiles when the answer
chooses words or settings: the test tiles stay for the report.

A word may name the category it should prompt for (`epithelial:acinar`); the table then gives
each such word's Dice against that category and their mean, a score for how well a checkpoint
carries categories over to words it never trained on. With words that are neither training
nor held-out synonyms, it chooses settings without touching the held-out words the report uses.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from pgat_hf.data.dataset import class_array, instance_array
from pgat_hf.evaluation.metrics import dice

ALL_NUCLEI = "all nuclei"
PLACED_DICE = 0.5  # below this against every target, a word prompts for nothing in particular


@dataclass(frozen=True)
class WordResult:
    word: str
    prompt: str
    dice: dict[str, float]  # target ("all nuclei" or a category) -> mean Dice over the tiles that hold it
    tiles: dict[str, int]  # target -> how many tiles were averaged
    expected: str | None = None  # the category the word should prompt for, if given

    @property
    def prompts_for(self) -> str:
        """The target this word's masks match best, or "none" where no target reaches `PLACED_DICE`."""
        best = max(self.dice, key=lambda t: -1.0 if np.isnan(self.dice[t]) else self.dice[t])
        return best if self.dice[best] >= PLACED_DICE else "none"


def parse_word(spec: str, categories: list[str]) -> tuple[str, str | None]:
    """`"epithelial:acinar"` -> ("acinar", "epithelial"); a spec without a category prefix -> (spec, None)."""
    prefix, sep, word = spec.partition(":")
    if not sep:
        return spec, None
    if prefix not in categories or not word.strip():
        raise ValueError(f"{spec!r}: write CATEGORY:WORD with CATEGORY one of {categories}, or the word alone")
    return word.strip(), prefix


def check_template(template: str, name: str = "template") -> None:
    """ValueError unless `template` is a format string whose one placeholder is `{word}`.

    name: how the message names the template (`--template` on the command line).
    """
    braces = "write {{ and }} for literal braces"
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:  # "Single '}' encountered in format string", ...
        raise ValueError(f"{name} {template!r} is not a format string ({error}); {braces}") from None
    others = ", ".join("{" + field + "}" for field in fields if field != "word")
    if others:
        raise ValueError(f"{name} {template!r} has a placeholder other than {{word}}: {others}; {braces}")
    if "word" not in fields:
        raise ValueError(f"{name} {template!r} has no {{word}} placeholder")
    try:
        template.format(word="nuclei")
    except ValueError as error:  # a format spec that does not apply to text: {word:d}
        raise ValueError(f"{name} {template!r} is not a format string ({error}); {braces}") from None


def transfer_dice(results: list[WordResult]) -> float | None:
    """Mean Dice of the words that name a category against that category (None if none do)."""
    scores = [r.dice[r.expected] for r in results if r.expected is not None]
    return float(np.mean(scores)) if scores else None


def probe_words(segmenter, rows, categories: list[str], words: list[str],
                template: str = "segment the {word} nuclei", progress: bool = True) -> list[WordResult]:
    """`segmenter`: a text-guided-nuclei-segmentation pipeline; `rows`: dataset rows (image,
    instance_map, class_map); `categories`: the config's names (class_map value i + 1 is the i-th)."""
    from tqdm.auto import tqdm

    check_template(template)
    parsed = [parse_word(spec, categories) for spec in words]  # [(word, expected category or None)]
    words = [w for w, _ in parsed]
    prompts = [template.format(word=w) for w in words]
    targets = [ALL_NUCLEI, *categories]
    scores = {w: {t: [] for t in targets} for w in words}
    for row in tqdm(rows, desc="tiles", disable=not progress):
        instances, classes = instance_array(row["instance_map"]), class_array(row["class_map"])
        masks = {ALL_NUCLEI: instances > 0}
        masks.update({c: (classes == i + 1) & (instances > 0) for i, c in enumerate(categories)})
        outputs = segmenter(row["image"], prompts=prompts)  # one vision pass for every word
        for word, output in zip(words, outputs):
            predicted = np.asarray(output["mask"]) > 0
            for target, mask in masks.items():
                if mask.any():
                    scores[word][target].append(dice(predicted, mask))
    return [WordResult(w, p, {t: float(np.mean(v)) if v else float("nan") for t, v in scores[w].items()},
                       {t: len(v) for t, v in scores[w].items()}, expected)
            for (w, expected), p in zip(parsed, prompts)]


def format_word_table(results: list[WordResult]) -> str:
    targets = list(results[0].dice)
    expects = any(r.expected for r in results)
    extra = ["should prompt for"] if expects else []
    lines = ["| word | " + " | ".join(targets + ["prompts for"] + extra) + " |",
             "|---|" + "---|" * (len(targets) + 1 + len(extra))]
    for r in results:
        cells = [f"{r.dice[t]:.2f}" for t in targets] + [r.prompts_for] + ([r.expected or ""] if expects else [])
        lines.append(f"| {r.word} | " + " | ".join(cells) + " |")
    counts = results[0].tiles
    lines.append("| (tiles) | " + " | ".join([str(counts[t]) for t in targets] + [""] * (1 + len(extra))) + " |")
    score = transfer_dice(results)
    if score is not None:
        named = [r for r in results if r.expected]
        hits = sum(r.prompts_for == r.expected for r in named)
        lines.append(f"\nWords that name their category: mean Dice against it {score:.3f} over {len(named)} words; "
                     f"{hits} of {len(named)} prompt for it.")
    return "\n".join(lines)
