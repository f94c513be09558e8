"""`pgat-hf bench`: what sharing one image encoding across K prompts saves, measured (step_benchmark.py)."""

from __future__ import annotations

import argparse

CONFIG_NAMES = ("tiny", "mid")  # step_benchmark.CONFIGS: a test checks they agree


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="pgat-hf bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,mid", help="comma list of: " + ", ".join(CONFIG_NAMES))
    parser.add_argument("--prompts", type=int, default=3, help="K prompts per image")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--data-steps", type=int, default=12, help="steps for the data-wait share (0: skip)")
    parser.add_argument("--data-image-size", type=int, default=128, help="tile size for the data-wait share (demo: 128)")
    parser.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 is steadier on a shared machine")
    parser.add_argument("--json", dest="json_path", help="write the results here as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pgat_hf.commands.step_benchmark import run  # torch: after --help

    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
