"""`pgat-hf bench`: what sharing one image encoding across K prompts saves, measured (step_benchmark.py)."""

from __future__ import annotations

import argparse
import sys

from pgat_hf.commands.cli import whole_number

CONFIG_NAMES = ("tiny", "mid")  # step_benchmark.CONFIGS: a test checks they agree


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgat-hf bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,mid",
                        help="comma list of: " + ", ".join(CONFIG_NAMES) + " ('': only the data-wait share)")
    parser.add_argument("--prompts", type=whole_number(1), default=3, help="K prompts per image")
    parser.add_argument("--repeats", type=whole_number(1), default=7, help="timed steps per variant (median reported)")
    parser.add_argument("--warmup", type=whole_number(0), default=2, help="untimed steps first")
    parser.add_argument("--data-steps", type=whole_number(0), default=12,
                        help="steps for the data-wait share (0: skip)")
    parser.add_argument("--data-image-size", type=whole_number(16), default=128,
                        help="tile size for the data-wait share (demo: 128)")
    parser.add_argument("--device", default="auto", help="auto: cuda when available, else cpu; or cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=whole_number(0), default=0,
                        help="torch CPU threads (0: torch's default); 1 is steadier on a shared machine")
    parser.add_argument("--json", dest="json_path", help="write the results here as JSON")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIG_NAMES]  # none at all: the data-wait share alone
    if unknown:
        parser.error(f"argument --configs: unknown config(s) {unknown}; choose from {', '.join(CONFIG_NAMES)}")
    error = device_error(args.device)
    if error:
        parser.error(f"argument --device: {error}")
    return args


def device_error(device: str) -> str | None:
    """Why torch cannot run on `device` here, or None (auto always can)."""
    if device == "auto":
        return None
    import torch  # after --help: `pgat-hf bench --help` imports no torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        return f"{device!r} is not a device; use auto, cpu, cuda or cuda:N"
    if parsed.type not in ("cpu", "cuda"):
        return f"{device!r}: the benchmark times cpu and cuda only"
    if parsed.type == "cuda" and not torch.cuda.is_available():
        return f"{device!r}: this torch ({torch.__version__}) sees no CUDA device; use --device cpu or auto"
    count = torch.cuda.device_count() if parsed.type == "cuda" else 0
    if parsed.type == "cuda" and (parsed.index or 0) >= count:
        return f"{device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json_path:  # a path that cannot be written stops before the benchmark runs, not after
        from pgat_hf.evaluation.report import EvalError, check_output_path

        try:
            check_output_path(args.json_path, "--json", folder=False)
        except EvalError as error:
            print(f"pgat-hf bench: error: {error}", file=sys.stderr)
            return 2
    from pgat_hf.commands.step_benchmark import run  # torch: after --help

    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
