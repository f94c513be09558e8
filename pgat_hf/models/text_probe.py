"""Where a static text table places the held-out synonyms of a vocabulary, before any training.

A phrase's vector is the mean of its tokens' static vectors (no special tokens). Each held-out
synonym is scored against every category by its best cosine to one of that category's training
synonyms; it is placed when the best-scoring category lists it as held out (categories that share
held-out words, such as `connective` and `spindle-shaped`, count as one, and each such word is
probed once). The margin is its own category's score minus the best other category's: negative
means misplaced.

    python -m pgat_hf.models.text_probe [--table FILE --tokenizer FILE] [--dims 16 32 64] [--prompts YAML]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Placement:
    category: str
    held_out: str
    nearest: str
    margin: float  # own category's score - best other category's

    @property
    def placed(self) -> bool:
        return self.margin > 0


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def place_held_out_synonyms(table: np.ndarray, tokenizer, vocabulary, categories=None) -> list[Placement]:
    """One Placement per (category, held-out synonym) of `vocabulary`; `table` is [vocab, dims]."""
    names = list(categories or vocabulary.categories)
    entries = {name: vocabulary.categories[name] for name in names}

    def vector(text: str) -> np.ndarray:
        return table[tokenizer(text, add_special_tokens=False)["input_ids"]].mean(0)

    placements, seen = [], set()
    for name, entry in entries.items():
        for held in entry.held_out:
            if held in seen:  # a twin category's word, placed once
                continue
            seen.add(held)
            held_vector = vector(held)
            scores = {other: max(_cosine(held_vector, vector(s)) for s in c.train) for other, c in entries.items()}
            own = [n for n, c in entries.items() if held in c.held_out]  # the category and its twins
            best_other = max(s for n, s in scores.items() if n not in own)
            placements.append(Placement(name, held, max(scores, key=scores.get), scores[name] - best_other))
    return placements


def format_placements(placements_by_dims: dict[int, list[Placement]]) -> str:
    """A Markdown table: one row per held-out synonym, the margin (and nearest category when misplaced) per width."""
    widths = list(placements_by_dims)
    lines = ["| category | held-out synonym | " + " | ".join(f"{d} columns" for d in widths) + " |",
             "|---|---|" + "---|" * len(widths)]
    rows = zip(*placements_by_dims.values())
    for row in rows:
        cells = [f"{p.margin:+.3f}" + ("" if p.placed else f" ({p.nearest})") for p in row]
        lines.append(f"| {row[0].category} | {row[0].held_out} | " + " | ".join(cells) + " |")
    lines.append("| | placed | " + " | ".join(
        f"{sum(p.placed for p in ps)} of {len(ps)}" for ps in placements_by_dims.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from safetensors.numpy import load_file
    from transformers import PreTrainedTokenizerFast

    from pgat_hf.data.vocabulary import load_vocabulary
    from pgat_hf.models import text_side

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(text_side.TABLE_FILE), help="static table (safetensors, key 'vectors')")
    parser.add_argument("--tokenizer", default=str(text_side.TOKENIZER_FILE), help="its tokenizer.json")
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 32, 64], help="leading columns to probe")
    parser.add_argument("--prompts", help="vocabulary YAML (default: the shipped one)")
    args = parser.parse_args(argv)
    table = load_file(args.table)["vectors"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=args.tokenizer)
    vocabulary = load_vocabulary(args.prompts)
    print(format_placements({d: place_held_out_synonyms(table[:, :d], tokenizer, vocabulary) for d in args.dims}))


if __name__ == "__main__":
    main()
