"""`pgat-hf` command line: one subcommand per module, each module exposing `main(argv) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with main(argv), one-line help). Modules import lazily: `pgat-hf push`
# should not pay for importing the trainer.
COMMANDS = {
    "train": ("pgat_hf.train", "train a checkpoint (same flags as pgat_hf/train.py, incl. --config)"),
    "eval": ("pgat_hf.commands.eval", "per-prompt robustness evaluation of one or more models"),
    "bench": ("pgat_hf.commands.bench", "step-time benchmark: shared encoding vs repeated / separate forwards"),
    "compare": ("pgat_hf.commands.compare", "train recipes x seeds from one start; paired differences with 95% intervals (cached runs)"),
    "words": ("pgat_hf.commands.words", "which nuclei each word prompts: Dice against every category, on training tiles"),
    "card": ("pgat_hf.commands.card", "(re)generate the model card of a training output folder"),
    "push": ("pgat_hf.commands.push", "upload a checkpoint folder with its card and plots to the Hub"),
    "app": ("pgat_hf.commands.app", "the prompt-robustness explorer: several phrasings, one tile, how much the masks agree"),
}


def whole_number(minimum: int):
    """An argparse `type`: an int of at least `minimum`; otherwise argparse stops with exit code 2 and
    `PROG: error: argument --FLAG: ...`, before any work starts."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"  # what argparse names in its messages
    return parse


def usage() -> str:
    lines = ["usage: pgat-hf COMMAND [ARGS]  (pgat-hf COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name:<8} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"pgat-hf: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    result = module.main(rest)
    return result if isinstance(result, int) else 0  # train.main returns its Trainer


if __name__ == "__main__":
    sys.exit(main())
