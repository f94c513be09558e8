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

Seed s of every recipe starts from the same weights, so recipes are compared by per-seed
differences: for each contrast [a, b] of the sweep (default: every run against the first) and
each column, the mean of a_s − b_s over the seeds finished in both, with its 95 % t interval and
whether that interval is narrow enough to resolve a 0.02 difference. OUT gets comparison.md (the
mean ± sd table, the paired table with a sentence per contrast, the plateau of each validation
curve), comparison.json, per_prompt_dice.png (per-prompt Dice of the contrasted runs, pooled over
seeds) and validation_curve.png (validation T2 Dice logged during training).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from pgat_hf.atomic import copy_file_atomic, write_text_atomic
from pgat_hf.evaluation.synonyms import synonym_dice, synonyms_markdown

REPORT = "robustness_report.json"
STATE = "trainer_state.json"
# What --export copies, no weights; REPORT last: it marks a run finished, so it lands after the rest.
EXPORTED = ("robustness_report.md", STATE, "pgat_run.json", "pgat_training_args.json", REPORT)
CURVE_KEY, CURVE_METRIC = "eval_dice_T2", "T2 Dice"  # the validation metric the plateau curve follows
CONFIDENCE = 0.95
PLATEAU = 0.02  # a validation curve that moves at most this much over its last quarter has plateaued
RESOLUTION = 0.02  # the smallest recipe difference the benchmark is meant to tell from none
SENTENCE_COLUMNS = ("T2 Dice", "T2 std ↓")  # the columns spelled out in words under the paired table
SEED_FOLDER = re.compile(r"seed(\d+)")
COLUMNS = (  # (header, task, section, key): section "dice" or "robustness" of the report summary
    ("T1 Dice", "T1", "dice", "all"), ("T1 held-out", "T1", "dice", "held_out"),
    ("T2 Dice", "T2", "dice", "all"), ("T2 held-out framings", "T2", "dice", "held_out"),
    ("T2 held-out synonyms", "T2", "dice", "held_out_synonym"),
    ("T2 std ↓", "T2", "robustness", "dice_std"), ("T2 worst ↑", "T2", "robustness", "worst_dice"),
    ("T2 agreement ↑", "T2", "robustness", "pairwise_agreement"),
    ("T1 std ↓", "T1", "robustness", "dice_std"), ("T1 worst ↑", "T1", "robustness", "worst_dice"),
    ("T1 agreement ↑", "T1", "robustness", "pairwise_agreement"),
)


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


def finished_seeds(out: Path, name: str) -> dict[int, Path]:
    """{seed: run folder} for every OUT/NAME/seedS that holds a robustness report, seeds ascending."""
    found = {}
    for report in (out / name).glob(f"seed*/{REPORT}"):
        match = SEED_FOLDER.fullmatch(report.parent.name)
        if match:
            found[int(match.group(1))] = report.parent
    return dict(sorted(found.items()))


def read_report(path: Path) -> tuple[dict, list[dict]]:
    """(summary, per-prompt records reduced to task, quality, Dice, prompt and category) of one report."""
    with open(path) as handle:
        report = json.load(handle)
    records = [{"task": r["task"], "quality": r["quality"], "dice": r["dice"], "prompt": r.get("prompt", ""),
                "category": r.get("category", "")} for r in report.get("records", [])]
    return report["summary"], records


def collect(out: Path, names: list[str]) -> dict:
    """{name: [summary of each finished seed]} from OUT/NAME/seed*/robustness_report.json."""
    results = {}
    for name in names:
        summaries = [read_report(folder / REPORT)[0] for folder in finished_seeds(out, name).values()]
        if summaries:
            results[name] = summaries
    return results


def column_value(summary: dict, column: tuple) -> float | None:
    """One table cell's raw value from a report summary; None when the summary lacks it."""
    _, task, section, key = column
    return summary.get(section, {}).get(task, {}).get(key)


def aggregate(summaries: list[dict]) -> dict:
    """Mean, sd (ddof=1; 0 for one seed) and n of every table column over seeds."""
    row = {}
    for column in COLUMNS:
        values = [column_value(s, column) for s in summaries]
        values = np.asarray([v for v in values if v is not None], dtype=float)
        if values.size:
            row[column[0]] = {"mean": float(values.mean()),
                              "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0, "n": int(values.size)}
    return row


def table_markdown(rows: dict[str, dict]) -> str:
    headers = [c[0] for c in COLUMNS]
    lines = ["| recipe | seeds | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(headers)]
    for name, row in rows.items():
        seeds = max((cell["n"] for cell in row.values()), default=0)
        cells = [f"{row[h]['mean']:.3f} ± {row[h]['sd']:.3f}" if h in row else "–" for h in headers]
        lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pair_contrast(a: str, b: str, summaries: dict[str, dict[int, dict]]) -> dict:
    """Paired differences a − b of every column over the seeds finished in both runs.

    summaries: {name: {seed: report summary}}. Returns {"a", "b", "seeds", "metrics": {header: result}},
    each result a `paired_difference` dict plus its "resolves" (at RESOLUTION) and "excludes_zero" verdicts
    and "seeds_to_resolve": the paired seeds that would resolve RESOLUTION at the observed sd.
    """
    from pgat_hf.evaluation.paired_stats import excludes_zero, paired_difference, resolves, seeds_to_resolve  # scipy
    by_seed_a, by_seed_b = summaries.get(a, {}), summaries.get(b, {})
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    metrics = {}
    for column in COLUMNS:
        result = paired_difference([column_value(by_seed_a[s], column) for s in seeds],
                                   [column_value(by_seed_b[s], column) for s in seeds], CONFIDENCE)
        metrics[column[0]] = {**result, "resolves": resolves(result, RESOLUTION),
                              "excludes_zero": excludes_zero(result),
                              "seeds_to_resolve": seeds_to_resolve(result["sd"], RESOLUTION, CONFIDENCE)}
    return {"a": a, "b": b, "seeds": seeds, "metrics": metrics}


def signed(value: float) -> str:
    """+0.012 / −0.004 with a typographic minus, three decimals; a value that rounds to zero reads +0.000."""
    text = f"{value:+.3f}"
    return "+0.000" if text == "-0.000" else text.replace("-", "−")


def interval_cell(result: dict) -> str:
    """`+0.012 [−0.004, +0.028]`, the mean alone for one pair, – for none."""
    if result["n"] == 0:
        return "–"
    if not math.isfinite(result["half_width"]):
        return signed(result["mean"])
    return f"{signed(result['mean'])} [{signed(result['low'])}, {signed(result['high'])}]"


def _seed_count_text(contrasts: list[dict]) -> str:
    """`3 seeds`, `1 seed`, or `3–5 seeds` when contrasts pair different numbers of seeds."""
    counts = sorted({len(c["seeds"]) for c in contrasts})
    if len(counts) == 1:
        return f"{counts[0]} seed{'' if counts[0] == 1 else 's'}"
    return f"{counts[0]}–{counts[-1]} seeds"


def paired_markdown(contrasts: list[dict]) -> str:
    """The paired-difference table, one row per (contrast, column), then a sentence per contrast for
    SENTENCE_COLUMNS. Empty when there is no contrast."""
    if not contrasts:
        return ""
    lines = [f"## Paired differences (a − b), mean and {CONFIDENCE:.0%} t interval over "
             f"{_seed_count_text(contrasts)}", "",
             f"Seeds are paired by number; a seed counts only where both runs finished. "
             f"\"resolves {RESOLUTION:g}\": the interval's half-width is at most {RESOLUTION:g}.", "",
             f"| a − b | metric | seeds | mean [{CONFIDENCE:.0%} interval] | resolves {RESOLUTION:g} | excludes 0 |",
             "|---|---|---|---|---|---|"]
    for contrast in contrasts:
        for header, result in contrast["metrics"].items():
            finite = math.isfinite(result["half_width"])
            resolved = (f"{'yes' if result['resolves'] else 'no'} (±{result['half_width']:.3f})" if finite else "–")
            excluded = ("yes" if result["excludes_zero"] else "no") if finite else "–"
            lines.append(f"| {contrast['a']} − {contrast['b']} | {header} | {result['n']} | {interval_cell(result)} "
                         f"| {resolved} | {excluded} |")
    lines.append("")
    lines += [f"- {contrast_sentence(contrast, header)}" for contrast in contrasts for header in SENTENCE_COLUMNS]
    return "\n".join(lines) + "\n"


def contrast_sentence(contrast: dict, header: str) -> str:
    """One plain sentence: the difference, its interval, and whether it excludes 0 and resolves RESOLUTION."""
    result = contrast["metrics"][header]
    what = f"{contrast['a']} − {contrast['b']}, {header.rstrip(' ↑↓')}"
    if result["n"] == 0:
        return f"{what}: no seed has this metric in both runs."
    if result["n"] == 1:
        return f"{what}: {signed(result['mean'])} over 1 seed: one seed gives no interval."
    head = f"{what}: {interval_cell(result)} over {result['n']} seeds: the interval"
    limit, width = f"{RESOLUTION:g}", f"half-width {result['half_width']:.3f}"
    needed = result.get("seeds_to_resolve")
    if needed is not None and not result["resolves"]:
        width += f"; at this spread, {needed} paired seeds would resolve it"
    if result["resolves"]:
        return f"{head} {'excludes' if result['excludes_zero'] else 'includes'} 0 and resolves {limit}."
    if result["excludes_zero"]:
        return f"{head} excludes 0 but is too wide to resolve a {limit} difference ({width})."
    return f"{head} is too wide to resolve a {limit} difference ({width})."


def trainer_state_path(run_dir: Path) -> Path | None:
    """The run's trainer_state.json: at its root, else in its highest-numbered checkpoint-* folder."""
    if (run_dir / STATE).is_file():
        return run_dir / STATE
    checkpoints = [(int(p.parent.name.split("-", 1)[1]), p) for p in run_dir.glob(f"checkpoint-*/{STATE}")
                   if p.parent.name.split("-", 1)[1].isdigit()]
    return max(checkpoints)[1] if checkpoints else None


def read_validation_curve(run_dir: Path, key: str = CURVE_KEY) -> list[tuple[int, float]]:
    """[(step, value)] of the validation evaluations logged during training, steps ascending.

    A step logged twice (a resumed run re-evaluating) keeps its last value.
    """
    path = trainer_state_path(run_dir)
    if path is None:
        return []
    with open(path) as handle:
        history = json.load(handle).get("log_history", [])
    by_step = {int(entry["step"]): float(entry[key]) for entry in history if key in entry and "step" in entry}
    return sorted(by_step.items())


def plateau_line(recipe: str, mean: dict[int, float], metric: str = CURVE_METRIC) -> str:
    """`recipe: validation METRIC v at step s/2, v' at the last step s (change over the last half: ±d,
    over the last quarter: ±q: plateaued | still changing)`.

    The changes over the second half and the last quarter of training say whether the curve has
    flattened: it has plateaued when the last quarter moves it by at most PLATEAU. The midpoint
    (three-quarter point) is the logged step nearest half (three quarters of) the last one.
    """
    steps = sorted(mean)
    last = steps[-1]
    if len(steps) == 1:
        return f"{recipe}: validation {metric} {mean[last]:.3f} at step {last} (one evaluation: no curve to judge)"

    def nearest(fraction: float) -> int:
        return min(steps[:-1], key=lambda step: (abs(step - last * fraction), step))

    middle, quarter = nearest(0.5), nearest(0.75)
    late = mean[last] - mean[quarter]
    verdict = "plateaued" if abs(late) <= PLATEAU else "still changing"
    return (f"{recipe}: validation {metric} {mean[middle]:.3f} at step {middle}, {mean[last]:.3f} at the last step "
            f"{last} (change over the last half: {signed(mean[last] - mean[middle])}, over the last quarter: "
            f"{signed(late)}: {verdict})")


def curves_markdown(means: dict[str, dict[int, float]], without: list[str]) -> str:
    """A line per recipe with a validation curve, and which recipes logged none."""
    if not means and not without:
        return ""
    lines = [f"## Validation {CURVE_METRIC} during training (mean over seeds)", ""]
    lines += [f"- {plateau_line(recipe, mean)}" for recipe, mean in means.items()]
    if without:
        lines.append(f"- no validation {CURVE_METRIC} in {STATE} (eval_strategy \"no\", or no state saved): "
                     + ", ".join(without))
    return "\n".join(lines) + "\n"


def json_ready(value):
    """NaN and infinities as null (strict JSON), tuples as lists, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def run_vocabulary(folder: Path):
    """The prompt vocabulary of the data a finished run trained on (pgat_run.json), or None."""
    from pgat_hf.evaluation.synonyms import training_vocabulary

    path = folder / "pgat_run.json"
    if not path.is_file():
        return None
    run = json.loads(path.read_text())
    return training_vocabulary(run.get("dataset_path"), run.get("dataset_configs") or [run.get("dataset_config")])


def write_comparison(out: Path, names: list[str], contrasts: list[tuple[str, str]], header: dict,
                     json_path: str | None = None) -> str:
    """Read every finished run under OUT and write comparison.md, comparison.json and the two figures.

    header: the JSON's leading entries (sweep, overrides). Returns the markdown.
    """
    from pgat_hf.evaluation.plots import mean_curve, per_prompt_dice_distributions, validation_curves

    contrasted = {name for pair in contrasts for name in pair}
    plotted = [name for name in names if name in contrasted] or list(names)  # names' order: stable colours
    summaries, records, curves, synonyms, vocabulary = {}, {}, {}, {}, None
    for name in names:
        for seed, folder in finished_seeds(out, name).items():
            summary, seed_records = read_report(folder / REPORT)
            summaries.setdefault(name, {})[seed] = summary
            synonyms.setdefault(name, []).extend(seed_records)
            vocabulary = vocabulary or run_vocabulary(folder)
            if name in plotted:
                records.setdefault(name, []).extend(seed_records)
            curves.setdefault(name, []).append(read_validation_curve(folder))
    rows = {name: aggregate(list(by_seed.values())) for name, by_seed in summaries.items()}
    paired = [pair_contrast(a, b, summaries) for a, b in contrasts]
    means = {name: mean_curve(seed_curves) for name, seed_curves in curves.items()}
    without = [name for name, mean in means.items() if not mean]
    means = {name: mean for name, mean in means.items() if mean}

    out.mkdir(parents=True, exist_ok=True)
    if any(records.values()):
        per_prompt_dice_distributions({name: records[name] for name in plotted if name in records},
                                      out / "per_prompt_dice.png", title="Dice per prompt, pooled over seeds")
    if means:
        validation_curves({name: curves[name] for name in means}, out / "validation_curve.png", metric=CURVE_METRIC)
    if vocabulary is None:
        from pgat_hf.data.vocabulary import default_vocabulary

        vocabulary = default_vocabulary()
    by_synonym = {name: synonym_dice(seed_records, vocabulary) for name, seed_records in synonyms.items()}
    markdown = "\n".join(part for part in (table_markdown(rows), paired_markdown(paired),
                                            curves_markdown(means, without), synonyms_markdown(by_synonym)) if part)
    document = json_ready({**header, "confidence": CONFIDENCE, "resolution": RESOLUTION, "rows": rows,
                           "contrasts": paired, "curves": means,
                           "held_out_synonyms": {name: {f"{c}/{s}": v for (c, s), v in table.items()}
                                                 for name, table in by_synonym.items()}})
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False)
    write_text_atomic(out / "comparison.md", markdown)
    write_text_atomic(out / "comparison.json", text)
    if json_path:
        write_text_atomic(Path(json_path), text)
    return markdown


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
    markdown = write_comparison(out, names, resolve_contrasts(sweep, names),
                                {"sweep": args.sweep, "overrides": extra}, args.json)
    print(markdown)
    if args.export:
        print(f"exported {export_runs(out, names, Path(args.export))} finished runs to {args.export}")
    return 0
