"""`pgat-hf words`: which nuclei does each word prompt? One template, each word, every tile.

    pgat-hf words --model outputs/pgat-demo --dataset data/pgat-synthetic WORD [WORD ...] \
        [--config synthetic] [--split train] [--max-images 40] [--template "segment the {word} nuclei"]

Prints a table: mean Dice of each word's masks against all nuclei and against each category's
nuclei (over the tiles that hold them), and which one the word prompts for. `CATEGORY:WORD`
(`epithelial:acinar`) also scores the word against the category it should prompt for. Use it to check a
new category word before relying on it; it defaults to training tiles so the test tiles stay
unseen.
"""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgat-hf words", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("words", nargs="*", metavar="WORD",
                        help="category words or phrases to try; CATEGORY:WORD also scores it against that category")
    parser.add_argument("--words-file", metavar="FILE",
                        help="more words, one per line (CATEGORY:WORD or WORD; '#' starts a comment)")
    parser.add_argument("--model", required=True, metavar="DIR_OR_REPO", help="checkpoint folder or Hub id")
    parser.add_argument("--dataset", required=True, metavar="DIR_OR_REPO", help="prompt-group dataset folder or Hub id")
    parser.add_argument("--config", default="synthetic", help="the dataset config (source)")
    parser.add_argument("--split", default="train", help="tiles to use (keep the test split for the report)")
    parser.add_argument("--max-images", type=int, default=40, help="tiles (0 = all)")
    parser.add_argument("--template", default="segment the {word} nuclei", help="prompt with a {word} placeholder")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.words_file:
        try:
            lines = open(args.words_file, encoding="utf-8").read().splitlines()
        except OSError as error:
            print(f"pgat-hf words: error: {error}", file=sys.stderr)
            return 2
        args.words += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if not args.words:
        print("pgat-hf words: error: no words: give WORD arguments or --words-file", file=sys.stderr)
        return 2
    if "{word}" not in args.template:
        print(f"pgat-hf words: error: --template {args.template!r} has no {{word}} placeholder", file=sys.stderr)
        return 2
    import pgat_hf  # noqa: F401  registers the pipeline task
    from transformers import pipeline

    from pgat_hf.data.dataset import load_categories, load_prompt_dataset
    from pgat_hf.evaluation.word_probe import format_word_table, parse_word, probe_words, transfer_dice

    categories = load_categories(args.dataset, args.config)
    try:
        for spec in args.words:
            parse_word(spec, categories)
    except ValueError as error:
        print(f"pgat-hf words: error: {error}", file=sys.stderr)
        return 2
    rows = load_prompt_dataset(args.dataset, args.config, args.split)
    if args.max_images:
        rows = rows.select(range(min(args.max_images, len(rows))))
    segmenter = pipeline("text-guided-nuclei-segmentation", model=args.model)
    results = probe_words(segmenter, rows, categories, args.words, args.template, progress=not args.no_progress)
    print(format_word_table(results))
    if args.json:
        from pgat_hf.atomic import write_text_atomic

        words = [{"word": r.word, "prompt": r.prompt, "dice": r.dice, "tiles": r.tiles, "prompts_for": r.prompts_for,
                  "expected": r.expected} for r in results]
        write_text_atomic(args.json, json.dumps({"model": args.model, "split": args.split, "template": args.template,
                                                 "transfer_dice": transfer_dice(results), "words": words}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
