"""`pgat-hf` command line: train (more subcommands arrive with their issues)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="pgat-hf", description=__doc__)
    parser.add_argument("command", choices=["train"], help="train: same flags as pgat_hf/train.py")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    command, rest = argv[0], argv[1:]
    parser.parse_args([command])
    if command == "train":
        from .train import main as train_main

        train_main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
