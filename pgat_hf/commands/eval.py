"""`pgat-hf eval`: the per-prompt robustness protocol for one or more models, tables and plots.

    pgat-hf eval --model outputs/pgat-demo [--model outputs/baseline ...] --dataset data/pgat-synthetic \
        [--configs synthetic ...] [--split test] [--max-images N] [--out DIR] [--json PATH]

Writes into --out: eval_results.json (summaries per model × config and overall), eval_report.md
(the paper's Table 1 / 2 / 4 / 5 shapes plus instance metrics, models as rows), records.jsonl
(one line per model × image × prompt), dice_by_quality.png and qualitative_<model>.png.
Python API: `pgat_hf.evaluation.report.evaluate_models(...)` returns the same results dict.
"""

from __future__ import annotations

import argparse
import sys

from pgat_hf.commands.cli import whole_number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgat-hf eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="DIR_OR_REPO",
                        help="checkpoint folder or Hub id; repeat for several models (rows of every table)")
    parser.add_argument("--dataset", required=True, metavar="DIR_OR_REPO", help="prompt-group dataset folder or Hub id")
    parser.add_argument("--configs", nargs="+", default=None, help="configs (sources) to evaluate; default: all")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-images", type=whole_number(0), default=0, help="tiles per config (0 = all)")
    parser.add_argument("--out", default="pgat_eval", help="folder for the report, records and plots")
    parser.add_argument("--json", default=None, metavar="PATH", help="results JSON (default: OUT/eval_results.json)")
    parser.add_argument("--zero-shot", nargs="*", default=None, metavar="CONFIG",
                        help="configs no model saw in training: Table 5 lists only these")
    parser.add_argument("--tasks", nargs="+", default=["T1", "T2"], choices=["T1", "T2"])
    parser.add_argument("--grid-tiles", type=whole_number(0), default=4,
                        help="rows of the qualitative grid (0 = no grid)")
    parser.add_argument("--grid-task", default="both", choices=["T1", "T2", "both"],
                        help="which groups the grid shows (both: T1 and T2 rows alternate)")
    parser.add_argument("--min-instance-area", type=whole_number(0), default=0,
                        help="connected components smaller than this (pixels) are dropped before AJI/PQ/F1")
    parser.add_argument("--match-radius", type=float, default=6.0, help="centroid distance (pixels) for detection F1")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pgat_hf.evaluation.report import EvalError, evaluate_models  # torch and the models: after --help

    try:
        result = evaluate_models(args.model, args.dataset, args.configs, args.split, args.max_images, args.out,
                                 args.json, args.zero_shot, tuple(args.tasks), args.grid_tiles, args.grid_task,
                                 args.min_instance_area, args.match_radius, progress=not args.no_progress)
    except EvalError as error:
        print(f"pgat-hf eval: error: {error}", file=sys.stderr)
        return 2
    print(result["markdown"])
    print("wrote: " + ", ".join(result["files"].values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
