"""The paired comparison of finished runs: tables, intervals, plateau, figures.

Reads OUT/NAME/seedS/robustness_report.json (and each run's trainer state for the validation curve)
written by `pgat-hf compare` (`pgat_hf.commands.compare`), and writes OUT/comparison.md,
comparison.json, per_prompt_dice.png and validation_curve.png. Seed s of every recipe starts from
the same weights, so recipes are compared by per-seed differences: for each contrast [a, b] and
each column, the mean of a_s − b_s over the seeds finished in both, with its 95 % t interval and
whether that interval is narrow enough to resolve a 0.02 difference.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from pgat_hf.atomic import write_text_atomic
from pgat_hf.evaluation.synonyms import synonym_dice, synonyms_markdown

REPORT = "robustness_report.json"
STATE = "trainer_state.json"
SEED_FOLDER = re.compile(r"seed(\d+)")
CURVE_KEY, CURVE_METRIC = "eval_dice_T2", "T2 Dice"  # the validation metric the plateau curve follows
CONFIDENCE = 0.95
PLATEAU = 0.02  # a validation curve that moves at most this much over its last quarter has plateaued
RESOLUTION = 0.02  # the smallest recipe difference the benchmark is meant to tell from none
SENTENCE_COLUMNS = ("T2 Dice", "T2 std ↓")  # the columns spelled out in words under the paired table
COLUMNS = (  # (header, task, section, key): section "dice" or "robustness" of the report summary
    ("T1 Dice", "T1", "dice", "all"), ("T1 held-out", "T1", "dice", "held_out"),
    ("T2 Dice", "T2", "dice", "all"), ("T2 held-out framings", "T2", "dice", "held_out"),
    ("T2 held-out synonyms", "T2", "dice", "held_out_synonym"),
    ("T2 std ↓", "T2", "robustness", "dice_std"), ("T2 worst ↑", "T2", "robustness", "worst_dice"),
    ("T2 agreement ↑", "T2", "robustness", "pairwise_agreement"),
    ("T1 std ↓", "T1", "robustness", "dice_std"), ("T1 worst ↑", "T1", "robustness", "worst_dice"),
    ("T1 agreement ↑", "T1", "robustness", "pairwise_agreement"),
)


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
