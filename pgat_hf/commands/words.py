"""`pgat-hf words`: which nuclei does each word prompt? One template, each word, every tile.

    pgat-hf words --model outputs/pgat-demo --dataset data/pgat-synthetic WORD [WORD ...] \
        [--config NAME] [--split train] [--max-images 40] [--template "segment the {word} nuclei"]

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

from pgat_hf.commands.cli import whole_number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgat-hf words", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("words", nargs="*", metavar="WORD",
                        help="category words or phrases to try; CATEGORY:WORD also scores it against that category")
    parser.add_argument("--words-file", metavar="FILE",
                        help="more words, one per line (CATEGORY:WORD or WORD; '#' starts a comment)")
    parser.add_argument("--model", required=True, metavar="DIR_OR_REPO", help="checkpoint folder or Hub id")
    parser.add_argument("--dataset", required=True, metavar="DIR_OR_REPO", help="prompt-group dataset folder or Hub id")
    parser.add_argument("--config", default=None,
                        help="the dataset config (source); default: the dataset's only config")
    parser.add_argument("--split", default="train", help="tiles to use (keep the test split for the report)")
    parser.add_argument("--max-images", type=whole_number(0), default=40, help="tiles (0 = all)")
    parser.add_argument("--template", default="segment the {word} nuclei", help="prompt with a {word} placeholder")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def read_words(args) -> list[str]:
    """The WORD arguments, then --words-file's lines without comments; OSError if the file is unreadable."""
    words = list(args.words)
    if args.words_file:
        with open(args.words_file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        words += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if not words:
        raise ValueError("no words: give WORD arguments or --words-file")
    return words


def choose_config(dataset: str, config: str | None, split: str) -> str:
    """--config, or the dataset's only config; EvalError naming the available configs or splits."""
    from pgat_hf.evaluation.report import EvalError, dataset_configs, resolve_configs

    if config is None:
        available = dataset_configs(dataset, config_flag="--config")
        if len(available) != 1:
            raise EvalError(f"dataset {dataset!r} has {len(available)} configs ({', '.join(available)}): "
                            f"pass --config NAME")
        config = available[0]
    return resolve_configs(dataset, [config], split, config_flag="--config")[0]


def load_inputs(args, words: list[str]):
    """(config, categories, rows, segmenter) after every check that needs no model run; ValueError or OSError."""
    import pgat_hf  # noqa: F401  registers the pipeline task
    from transformers import pipeline

    from pgat_hf.data.dataset import load_categories
    from pgat_hf.evaluation.report import EvalError, check_model, check_output_path, load_split
    from pgat_hf.evaluation.word_probe import parse_word

    config = choose_config(args.dataset, args.config, args.split)
    categories = load_categories(args.dataset, config)
    for spec in words:
        parse_word(spec, categories)
    check_model(args.model)
    if args.json:
        check_output_path(args.json, "--json", folder=False)
    rows = load_split(args.dataset, config, args.split)
    if args.max_images:
        rows = rows.select(range(min(args.max_images, len(rows))))
    try:
        segmenter = pipeline("text-guided-nuclei-segmentation", model=args.model)
    except (OSError, ValueError) as error:  # transformers: a missing Hub repo, a config.json of another model
        raise EvalError(f"model {args.model!r} could not be loaded: {error}") from error
    return config, categories, rows, segmenter


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        words = read_words(args)
        from pgat_hf.evaluation.word_probe import check_template  # datasets and numpy: after --help

        check_template(args.template, name="--template")
        config, categories, rows, segmenter = load_inputs(args, words)
    except (OSError, ValueError) as error:  # EvalError is a ValueError
        print(f"pgat-hf words: error: {error}", file=sys.stderr)
        return 2
    from pgat_hf.evaluation.word_probe import format_word_table, probe_words, transfer_dice

    results = probe_words(segmenter, rows, categories, words, args.template, progress=not args.no_progress)
    print(format_word_table(results))
    if args.json:
        from pgat_hf.atomic import write_text_atomic

        records = [{"word": r.word, "prompt": r.prompt, "dice": r.dice, "tiles": r.tiles, "prompts_for": r.prompts_for,
                    "expected": r.expected} for r in results]
        write_text_atomic(args.json, json.dumps({"model": args.model, "config": config, "split": args.split,
                                                 "template": args.template,
                                                 "transfer_dice": transfer_dice(results), "words": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
