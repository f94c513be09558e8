"""Comparison runner: several recipes × seeds from the same initial weights, reported as mean ± sd.

    pgat-hf compare --sweep pgat_hf/recipes/comparison.yaml --out runs/comparison [--only NAME ...]
                    [--seeds 0 1 2] [--set max_steps=600 ...] [--report-only] [--json PATH]

Each (recipe, seed) trains in its own process (`python -m pgat_hf.train`) into OUT/NAME/seedS. A
run whose robustness_report.json exists is cached and skipped, and a killed run resumes from its
last checkpoint, so a long sweep can be run in parts. The table reads every finished run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from .train import mapping_to_argv

REPORT = "robustness_report.json"
COLUMNS = (  # (header, task, section, key): section "dice" or "robustness" of the report summary
    ("T1 Dice", "T1", "dice", "all"), ("T1 held-out", "T1", "dice", "held_out"),
    ("T2 Dice", "T2", "dice", "all"), ("T2 low", "T2", "dice", "low"), ("T2 medium", "T2", "dice", "medium"),
    ("T2 high", "T2", "dice", "high"), ("T2 held-out", "T2", "dice", "held_out"),
    ("T2 std ↓", "T2", "robustness", "dice_std"), ("T2 worst ↑", "T2", "robustness", "worst_dice"),
    ("T2 agreement ↑", "T2", "robustness", "pairwise_agreement"),
)


def load_sweep(path: str | Path) -> dict:
    path = Path(path)
    with open(path) as handle:
        sweep = yaml.safe_load(handle) or {}
    for key in ("base", "runs"):
        if key not in sweep:
            raise ValueError(f"sweep file {path} needs a `{key}` entry")
    sweep["base"] = str((path.parent / sweep["base"]).resolve())
    sweep.setdefault("seeds", [0])
    sweep["common"] = sweep.get("common") or {}
    return sweep


def run_argv(sweep: dict, name: str, seed: int, output_dir: Path, extra: dict) -> list[str]:
    """Flags for one run: the base recipe, then common, the run's own and --set overrides, then seeds."""
    overrides = {**sweep["common"], **(sweep["runs"][name] or {}), **extra}
    seeds = {"seed": seed, "model_seed": seed, "prompt_seed": seed}  # one start for every recipe of a seed
    return ["--config", sweep["base"], *mapping_to_argv({**overrides, **seeds}), "--output_dir", str(output_dir),
            "--resume_from_checkpoint", "auto", "--disable_tqdm", "true"]


def run_one(argv: list[str], output_dir: Path) -> float:
    """Train in a child process (a crash or kill cannot take the sweep down); returns seconds."""
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(output_dir / "train.log", "a") as log:
        result = subprocess.run([sys.executable, "-m", "pgat_hf.train", *argv], stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"run in {output_dir} failed (exit {result.returncode}); see {output_dir / 'train.log'}")
    return time.perf_counter() - start


def collect(out: Path, names: list[str]) -> dict:
    """{name: [summary of each finished seed]} from OUT/NAME/seed*/robustness_report.json."""
    results = {}
    for name in names:
        summaries = []
        for report in sorted((out / name).glob(f"seed*/{REPORT}")):
            with open(report) as handle:
                summaries.append(json.load(handle)["summary"])
        if summaries:
            results[name] = summaries
    return results


def aggregate(summaries: list[dict]) -> dict:
    """Mean, sd (ddof=1; 0 for one seed) and n of every table column over seeds."""
    row = {}
    for header, task, section, key in COLUMNS:
        values = [s[section].get(task, {}).get(key) for s in summaries]
        values = np.asarray([v for v in values if v is not None], dtype=float)
        if values.size:
            row[header] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                           "n": int(values.size)}
    return row


def table_markdown(rows: dict[str, dict]) -> str:
    headers = [c[0] for c in COLUMNS]
    lines = ["| recipe | seeds | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(headers)]
    for name, row in rows.items():
        seeds = max((cell["n"] for cell in row.values()), default=0)
        cells = [f"{row[h]['mean']:.3f} ± {row[h]['sd']:.3f}" if h in row else "–" for h in headers]
        lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_set(items: list[str]) -> dict:
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {item!r}")
        extra[key] = yaml.safe_load(value)
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgat-hf compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default=str(Path(__file__).parent / "recipes" / "comparison.yaml"))
    parser.add_argument("--out", default="runs/comparison", help="one folder per recipe and seed")
    parser.add_argument("--only", nargs="*", default=None, help="recipe names to run (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="override the sweep's seeds")
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides for every run, e.g. max_steps=600")
    parser.add_argument("--report-only", action="store_true", help="train nothing; tabulate finished runs")
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)

    sweep = load_sweep(args.sweep)
    names = args.only or list(sweep["runs"])
    unknown = [n for n in names if n not in sweep["runs"]]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; the sweep has {list(sweep['runs'])}")
    out, extra = Path(args.out), parse_set(args.set)
    seeds = args.seeds if args.seeds is not None else sweep["seeds"]
    if not args.report_only:
        todo = [(n, s) for n in names for s in seeds if not (out / n / f"seed{s}" / REPORT).is_file()]
        print(f"{len(names) * len(seeds) - len(todo)} runs cached, {len(todo)} to train")
        for index, (name, seed) in enumerate(todo, 1):
            run_dir = out / name / f"seed{seed}"
            print(f"[{index}/{len(todo)}] {name} seed {seed} -> {run_dir}", flush=True)
            seconds = run_one(run_argv(sweep, name, seed, run_dir, extra), run_dir)
            print(f"    done in {seconds / 60:.1f} min", flush=True)
    rows = {name: aggregate(summaries) for name, summaries in collect(out, names).items()}
    markdown = table_markdown(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(markdown)
    with open(args.json or out / "comparison.json", "w") as handle:
        json.dump({"sweep": args.sweep, "overrides": extra, "rows": rows}, handle, indent=1)
    print(markdown)
    return 0
