"""Comparison runner: recipes × seeds from the same initial weights, as mean ± sd and paired differences.

    pgat-hf compare --sweep pgat_hf/recipes/comparison.yaml --out runs/comparison [--only NAME ...]
                    [--seeds 0 1 2] [--set max_steps=600 ...] [--workers 2 [--threads 1]]
                    [--report-only] [--json PATH] [--export DIR]

Each (recipe, seed) trains in its own process (`python -m pgat_hf.train`) into OUT/NAME/seedS. A
run whose robustness_report.json exists is cached and skipped, and a killed run resumes from its
last checkpoint, so a long sweep can be run in parts. Runs go seed by seed (a partial sweep holds
whole seeds), the most prompts per step first; --workers N trains N at once, each child with
--threads OpenMP threads (default: the cores divided among the workers). The report reads every
finished run; --export DIR copies each finished run's reports and trainer state, without weights,
to DIR/NAME/seedS, where `--out DIR --report-only` tabulates them and a sweep continues from them.

Seed s of every recipe starts from the same weights; `pgat_hf.evaluation.comparison` turns the
finished runs into OUT/comparison.md and .json (mean ± sd, paired differences with 95 % intervals
per contrast, default: every run against the first; the plateau of each validation curve),
per_prompt_dice.png and validation_curve.png.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from pgat_hf.atomic import copy_file_atomic
from pgat_hf.evaluation.comparison import REPORT, STATE, finished_seeds, trainer_state_path, write_comparison

# What --export copies, no weights; REPORT last: it marks a run finished, so it lands after the rest.
EXPORTED = ("robustness_report.md", STATE, "pgat_run.json", "pgat_training_args.json", REPORT)


def load_sweep(path: str | Path) -> dict:
    """The sweep YAML with `base` resolved beside it and defaults for seeds, common and contrasts.

    contrasts: optional [[a, b], ...] of run names; None (absent) means every run against the first one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file not found: {path}")
    with open(path) as handle:
        sweep = yaml.safe_load(handle) or {}
    if not isinstance(sweep, dict):
        raise ValueError(f"sweep file {path} must be a YAML mapping with `base` and `runs`")
    for key in ("base", "runs"):
        if key not in sweep:
            raise ValueError(f"sweep file {path} needs a `{key}` entry")
    sweep["base"] = str((path.parent / sweep["base"]).resolve())
    if not Path(sweep["base"]).is_file():
        raise FileNotFoundError(f"sweep file {path}: its base recipe {sweep['base']} does not exist")
    sweep.setdefault("seeds", [0])
    sweep["common"] = sweep.get("common") or {}
    contrasts = sweep.get("contrasts")
    if contrasts is not None:
        for pair in contrasts:
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or pair[0] == pair[1]
                    or any(name not in sweep["runs"] for name in pair)):
                raise ValueError(f"sweep file {path}: each contrast is [a, b], two different names from `runs`; "
                                 f"got {pair!r}")
        sweep["contrasts"] = [[str(a), str(b)] for a, b in contrasts]
    return sweep


def resolve_contrasts(sweep: dict, names: list[str]) -> list[tuple[str, str]]:
    """The (a, b) pairs to report among `names`: the sweep's own, or each name against the reference.

    The reference is the first run of the sweep, or the first of `names` when --only leaves it out.
    """
    if sweep.get("contrasts") is not None:
        return [(a, b) for a, b in sweep["contrasts"] if a in names and b in names]
    if not names:
        return []
    reference = next(iter(sweep["runs"]))
    reference = reference if reference in names else names[0]
    return [(name, reference) for name in names if name != reference]


def run_argv(sweep: dict, name: str, seed: int, output_dir: Path, extra: dict) -> list[str]:
    """Flags for one run: the base recipe, then common, the run's own and --set overrides, then seeds."""
    overrides = {**sweep["common"], **(sweep["runs"][name] or {}), **extra}
    seeds = {"seed": seed, "model_seed": seed, "prompt_seed": seed}  # one start for every recipe of a seed
    from pgat_hf.train import mapping_to_argv  # imports the trainer: not needed for --help or --report-only

    return ["--config", sweep["base"], *mapping_to_argv({**overrides, **seeds}), "--output_dir", str(output_dir),
            "--resume_from_checkpoint", "auto", "--disable_tqdm", "true"]


def run_one(argv: list[str], output_dir: Path, threads: int | None = None) -> float:
    """Train in a child process (a crash or kill cannot take the sweep down); returns seconds.

    threads: the child's OMP_NUM_THREADS; None keeps this process's environment.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(output_dir / "train.log", "a") as log:
        result = subprocess.run([sys.executable, "-m", "pgat_hf.train", *argv], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
    if result.returncode != 0:
        raise RuntimeError(f"run in {output_dir} failed (exit {result.returncode}); see {output_dir / 'train.log'}")
    return time.perf_counter() - start


def prompts_per_step(sweep: dict, name: str, extra: dict) -> int:
    """K of a run (its decodes per tile and group): the run's, common's or --set value, else the base recipe's."""
    overrides = {**sweep["common"], **(sweep["runs"][name] or {}), **extra}
    if "num_prompts" in overrides:
        return int(overrides["num_prompts"])
    with open(sweep["base"]) as handle:
        return int((yaml.safe_load(handle) or {}).get("num_prompts", 3))  # 3: TrainingArguments' default K


def training_order(sweep: dict, todo: list[tuple[str, int]], extra: dict) -> list[tuple[str, int]]:
    """(name, seed) pairs seed by seed in the sweep's seed order, the most prompts per step first within a seed.

    Seed by seed, a sweep stopped part way holds whole paired seeds; longest first keeps workers busy.
    """
    seed_rank = {seed: rank for rank, seed in enumerate(dict.fromkeys(seed for _, seed in todo))}
    return sorted(todo, key=lambda run: (seed_rank[run[1]], -prompts_per_step(sweep, run[0], extra)))


def train_all(sweep: dict, todo: list[tuple[str, int]], out: Path, extra: dict, workers: int = 1,
              threads: int | None = None) -> None:
    """Train every (name, seed) of `todo` in training_order, `workers` at a time.

    A failed run stops no other; the failures are raised together once every run has ended.
    """
    order = training_order(sweep, todo, extra)
    failures = []

    def train(index: int, name: str, seed: int) -> None:
        run_dir = out / name / f"seed{seed}"
        print(f"[{index}/{len(order)}] {name} seed {seed} -> {run_dir}", flush=True)
        try:
            seconds = run_one(run_argv(sweep, name, seed, run_dir, extra), run_dir, threads)
        except RuntimeError as error:
            failures.append(str(error))
            print(f"    {name} seed {seed} failed: {error}", flush=True)
        else:
            print(f"    {name} seed {seed} done in {seconds / 60:.1f} min", flush=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda job: train(*job), [(index, *run) for index, run in enumerate(order, 1)]))
    if failures:
        raise RuntimeError("; ".join(failures))


def export_runs(out: Path, names: list[str], target: Path) -> int:
    """Copy each finished run's report files (EXPORTED, no weights) to TARGET/NAME/seedS; returns the run count.

    Each file is copied whole or not at all, the report last, so a killed export never leaves a run
    that a later sweep would take for finished without its trainer state.
    """
    count = 0
    for name in names:
        for seed, folder in finished_seeds(out, name).items():
            destination = target / name / f"seed{seed}"
            state = trainer_state_path(folder)
            for filename in EXPORTED:
                source = state if filename == STATE else folder / filename
                if source is not None and source.is_file() and source.resolve() != (destination / filename).resolve():
                    copy_file_atomic(source, destination / filename)
            count += 1
    return count


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
    parser.add_argument("--sweep", default=str(Path(__file__).parents[1] / "recipes" / "comparison.yaml"))
    parser.add_argument("--out", default="runs/comparison", help="one folder per recipe and seed")
    parser.add_argument("--only", nargs="*", default=None,
                        help="recipe names to run and report (default: all); contrasts outside them are left out")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="override the sweep's seeds")
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides for every run, e.g. max_steps=600")
    parser.add_argument("--report-only", action="store_true", help="train nothing; tabulate finished runs")
    parser.add_argument("--json", default=None, help="also write comparison.json here")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenMP threads per run (default: with --workers > 1, the cores divided among the "
                             "workers; with one worker, this shell's setting)")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="copy each finished run's reports and trainer state (no weights) to DIR/NAME/seedS")
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        raise SystemExit("--workers and --threads take a whole number of at least 1")

    try:
        sweep = load_sweep(args.sweep)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"pgat-hf compare: error: {error}") from error
    names = args.only or list(sweep["runs"])
    unknown = [n for n in names if n not in sweep["runs"]]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; the sweep has {list(sweep['runs'])}")
    out, extra = Path(args.out), parse_set(args.set)
    seeds = args.seeds if args.seeds is not None else sweep["seeds"]
    if not args.report_only:
        todo = [(n, s) for n in names for s in seeds if not (out / n / f"seed{s}" / REPORT).is_file()]
        print(f"{len(names) * len(seeds) - len(todo)} runs cached, {len(todo)} to train")
        threads = args.threads
        if threads is None and args.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // args.workers)
        train_all(sweep, todo, out, extra, args.workers, threads)
    if not any(finished_seeds(out, name) for name in names):  # a mistyped --out: no empty report, no folder
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        print(f"pgat-hf compare: error: no finished runs under {out} (looked for NAME/seedS/{REPORT}, NAME one of "
              f"{shown})", file=sys.stderr)
        return 2
    markdown = write_comparison(out, names, resolve_contrasts(sweep, names),
                                {"sweep": args.sweep, "overrides": extra}, args.json)
    print(markdown)
    if args.export:
        print(f"exported {export_runs(out, names, Path(args.export))} finished runs to {args.export}")
    return 0
