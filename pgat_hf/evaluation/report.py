"""The evaluation report of `pgat-hf eval`: the protocol over models x configs, tables, files.

`evaluate_models(...)` runs the per-prompt robustness protocol (protocol.py) for one or more
models and writes into OUT: eval_results.json (summaries per model x config and overall),
eval_report.md (the paper's Table 1 / 2 / 4 / 5 shapes plus instance metrics, models as rows),
records.jsonl (one line per model x image x prompt), dice_by_quality.png and qualitative_<model>.png;
it returns the same results dict. The command line is commands/eval.py.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import re

from tqdm.auto import tqdm

from pgat_hf.data.vocabulary import TASKS
from pgat_hf.atomic import write_json_atomic, write_text_atomic
from pgat_hf.evaluation.protocol import QUALITY_ORDER, STAT_NAMES, evaluate_robustness, qualitative_examples, summarize
from pgat_hf.evaluation.metrics import INSTANCE_METRIC_NAMES


class EvalError(ValueError):
    """A user-facing problem with the arguments (missing model, dataset, config or split)."""


# ------------------------------------------------------------------------------------------
# Loading, with errors that name what is missing
# ------------------------------------------------------------------------------------------
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "name" or "org/name"


def _missing_folder(name: str) -> bool:
    """True for a name that means a local path that does not exist (then the Hub is never asked).

    That is any name that cannot be a Hub id, and an `org/name` whose `org` is a local folder
    (`outputs/nope` when `outputs/` exists): a typo in a local path fails at once.
    """
    path = os.path.expanduser(name)
    if os.path.exists(path):
        return False
    return not _HUB_ID.fullmatch(name) or os.path.isdir(name.split("/")[0])


def check_model(name: str) -> None:
    """EvalError for a model name that is a missing folder or a folder without a checkpoint."""
    if _missing_folder(name):
        raise EvalError(f"model not found: no folder {name!r}")
    if os.path.isdir(name) and not any(os.path.isfile(os.path.join(name, f)) for f in ("config.json", "adapter_config.json")):
        raise EvalError(f"model folder {name!r} has no config.json: pass a checkpoint folder (a training output_dir)")


def load_model(name: str):
    """Folder or Hub id -> (segmenter, tokenizer, image processor, settings); EvalError if absent."""
    from pgat_hf.models.factory import load_segmenter

    check_model(name)
    try:
        return load_segmenter(os.path.expanduser(name))
    except OSError as error:  # transformers raises OSError for missing repos / files, offline included
        raise EvalError(f"model {name!r} could not be loaded (not a folder, not in the Hub cache): {error}") from error


def dataset_configs(dataset: str, config_flag: str = "--configs") -> list[str]:
    """The configs of a dataset folder or Hub id; EvalError if it is missing or is one config's folder.

    config_flag: the flag that names a config, for the hint when `dataset` is a config folder.
    """
    import datasets

    from pgat_hf.data.dataset import CATEGORIES_FILE

    if _missing_folder(dataset):
        raise EvalError(f"dataset not found: no folder {dataset!r}")
    folder = Path(dataset).expanduser()
    if (folder / CATEGORIES_FILE).is_file():  # DATASET/CONFIG/categories.json: a config inside a dataset
        parent = folder.resolve().parent
        raise EvalError(f"{dataset} looks like a config folder; pass its parent {parent} and "
                        f"{config_flag} {folder.resolve().name}")
    try:
        return datasets.get_dataset_config_names(dataset)
    except Exception as error:  # datasets raises several types (FileNotFoundError, ConnectionError, ...)
        raise EvalError(f"dataset {dataset!r} could not be read (not a dataset folder, not in the Hub cache): "
                        f"{error}") from error


def resolve_configs(dataset: str, configs: list[str] | None, split: str, config_flag: str = "--configs") -> list[str]:
    """Check the dataset, its configs and the split exist; default to every config."""
    import datasets

    available = dataset_configs(dataset, config_flag)
    missing = [c for c in configs or [] if c not in available]
    if missing:
        raise EvalError(f"dataset {dataset!r} has no config {', '.join(map(repr, missing))}; "
                        f"available: {', '.join(available)}")
    chosen = list(configs or available)
    for config in chosen:
        splits = datasets.get_dataset_split_names(dataset, config)
        if split not in splits:
            raise EvalError(f"config {config!r} of {dataset!r} has no split {split!r}; available: {', '.join(splits)}")
    return chosen


def load_split(dataset: str, config: str, split: str):
    """One split of one config, EvalError naming the files when they cannot be read."""
    from pgat_hf.data.dataset import load_prompt_dataset

    try:
        return load_prompt_dataset(dataset, config, split=split)
    except (FileNotFoundError, ValueError) as error:  # a README.md without the config, a missing parquet file
        raise EvalError(f"dataset {dataset!r} config {config!r}: {error}") from error


def check_output_path(path: str, flag: str, folder: bool) -> None:
    """EvalError unless `path` can be written: an existing folder (a file for folder=False) or a new
    name whose nearest existing ancestor is a writable folder. Checked before any model runs."""
    target = Path(path).expanduser().absolute()
    if target.exists() and target.is_dir() != folder:
        raise EvalError(f"{flag} {path} is {'a file' if folder else 'a folder'}; pass "
                        f"{'a folder' if folder else 'a file path'}")
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise EvalError(f"{flag} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise EvalError(f"{flag} {path}: {ancestor} is not writable")


def model_labels(names: list[str]) -> list[str]:
    """Short labels: a folder's last part, more of its path while two would read the same
    (`pgat/seed0`, `baseline/seed0`); a Hub id as it is; labels still equal get -2, -3, ..."""
    for depth in range(1, 6):
        labels = ["/".join(Path(name).resolve().parts[-depth:]) if os.path.isdir(name) else name for name in names]
        if len(set(labels)) == len(labels):
            return labels
    seen, unique = {}, []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return unique


def trained_on(name: str) -> list[str] | None:
    """Configs a checkpoint records as its training data (pgat_run.json: dataset_configs or dataset_config)."""
    from transformers.utils import cached_file

    path = cached_file(name, "pgat_run.json", _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)
    if path is None:
        return None
    with open(path) as handle:
        run = json.load(handle)
    configs = run.get("dataset_configs") or run.get("dataset_config")
    return [configs] if isinstance(configs, str) else configs


# ------------------------------------------------------------------------------------------
# Markdown tables (models as rows)
# ------------------------------------------------------------------------------------------
def _cell(value, signed=False) -> str:
    if value is None or value != value:  # None or nan
        return "–"
    value = 0.0 if abs(value) < 5e-4 else value  # no "-0.000"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(results: dict) -> str:
    """Tables 1 (Dice per source), 2 (robustness), 4 (per quality), 5 (zero-shot), instance metrics."""
    models, configs = results["models"], results["configs"]
    tasks = sorted({t for m in models.values() for t in m["overall"]["dice"]})
    tiles = ", ".join(f"{label}: {m['overall']['num_images']} tiles" for label, m in models.items())
    lines = [f"# Prompt-robustness evaluation: {results['dataset']} ({results['split']} split)", "",
             f"Every prompt of every group evaluated on its own with the model's own inference; "
             f"{tiles}. "
             f"Dice is the mean over prompts of the training qualities (low/medium/high) unless a column says otherwise.",
             "", "## Table 1: Dice per source", ""]
    header = ["model"] + [f"{c} {t}" for c in configs for t in tasks]
    if len(configs) > 1:
        header += [f"all {t}" for t in tasks]
    rows = []
    for label, model in models.items():
        row = [label] + [_cell(model["by_config"][c]["dice"].get(t, {}).get("all")) for c in configs for t in tasks]
        if len(configs) > 1:
            row += [_cell(model["overall"]["dice"].get(t, {}).get("all")) for t in tasks]
        rows.append(row)
    lines += _table(header, rows)

    lines += ["", "## Table 2: robustness across a group's prompts (mean over groups, all sources)", ""]
    rows = [[label, task] + [_cell(m["overall"]["robustness"].get(task, {}).get(s), signed=s == "low_high_gap")
                             for s in STAT_NAMES]
            for label, m in models.items() for task in tasks]
    lines += _table(["model", "task", "Dice std ↓", "worst-prompt Dice ↑", "high − low gap", "pairwise agreement ↑"],
                    rows)

    lines += ["", "## Table 4: Dice per prompt quality (all sources)", ""]
    rows = [[label, task] + [_cell(m["overall"]["dice"].get(task, {}).get(q)) for q in QUALITY_ORDER]
            for label, m in models.items() for task in tasks]
    lines += _table(["model", "task", "low", "medium", "high", "held-out framings", "held-out synonyms"], rows)

    zero_shot = results.get("zero_shot_configs")
    lines += ["", "## Table 5: zero-shot Dice per dataset", ""]
    if zero_shot is None:
        lines += ["--zero-shot was not given, so every evaluated config is listed; (seen) marks a config that "
                  "a checkpoint's pgat_run.json names as training data.", ""]
    shown = configs if zero_shot is None else [c for c in configs if c in zero_shot]
    header = (["model"] + [f"{c} {t}" for c in shown for t in tasks] + [f"{c} held-out framings" for c in shown]
              + [f"{c} held-out synonyms" for c in shown])
    rows = []
    for label, m in models.items():
        seen = m.get("trained_on") or []
        mark = {c: " (seen)" if c in seen else "" for c in shown}
        row = [label] + [_cell(m["by_config"][c]["dice"].get(t, {}).get("all")) + mark[c] for c in shown for t in tasks]
        row += [_cell(m["by_config"][c].get("held_out_dice")) + mark[c] for c in shown]
        row += [_cell(m["by_config"][c].get("held_out_synonym_dice")) + mark[c] for c in shown]
        rows.append(row)
    lines += _table(header, rows) if shown else ["(no evaluated config is in --zero-shot)"]

    lines += ["", "## Instance metrics of T1 prompts per source (train qualities; masks split into "
              "8-connected components)", ""]
    rows = []
    for label, m in models.items():
        for config in configs:
            scores = m["by_config"][config].get("instance", {}).get("T1", {}).get("all")
            if scores:
                rows.append([label, config] + [_cell(scores[n]) for n in INSTANCE_METRIC_NAMES])
    lines += _table(["model", "source"] + [n.upper().replace("_PLUS", "+") for n in INSTANCE_METRIC_NAMES], rows) \
        if rows else ["(no T1 prompts evaluated)"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Python API
# ------------------------------------------------------------------------------------------
def _json_safe(value):
    """nan/inf -> None, so the file is strict JSON (jq, JavaScript) and not Python's NaN extension."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)


def evaluate_models(models: list[str], dataset: str, configs: list[str] | None = None, split: str = "test",
                    max_images: int = 0, out_dir: str | None = None, json_path: str | None = None,
                    zero_shot: list[str] | None = None, tasks=TASKS, grid_tiles: int = 4,
                    grid_task: str = "both", min_instance_area: int = 0, match_radius: float = 6.0,
                    progress: bool = True) -> dict:
    """Evaluate each model on each config's split; write JSON, markdown, records and plots.

    Returns the results dict written to JSON, plus "markdown" (the report) and "files" (paths).
    """
    from pgat_hf.evaluation.plots import dice_by_quality, qualitative_grid
    from pgat_hf.evaluation.synonyms import dataset_vocabulary, synonym_dice, synonyms_markdown

    if not models:
        raise EvalError("pass at least one --model")
    if max_images < 0 or grid_tiles < 0:
        raise EvalError(f"max_images and grid_tiles must be >= 0 (0: all tiles, no grid), got {max_images}, "
                        f"{grid_tiles}")
    if out_dir:
        check_output_path(out_dir, "--out", folder=True)
    if json_path:
        check_output_path(json_path, "--json", folder=False)
    configs = resolve_configs(dataset, configs, split)
    splits = {config: load_split(dataset, config, split) for config in configs}
    vocabularies = {config: dataset_vocabulary(dataset, config) for config in configs}  # None: not a local build
    by_synonym = {config: {} for config in configs}  # {config: {model: {(category, synonym): Dice}}}
    labels = model_labels(models)
    results = {"dataset": dataset, "split": split, "configs": configs, "max_images": max_images,
               "zero_shot_configs": list(zero_shot) if zero_shot is not None else None, "models": {}}
    files, all_records, grids = {}, [], {}
    bar = tqdm(total=len(models) * len(configs), desc="eval", unit="model×config", disable=not progress)
    for name, label in zip(models, labels):
        segmenter, tokenizer, image_processor, settings = load_model(name)
        records, groups, by_config = [], [], {}
        for config in configs:
            bar.set_postfix_str(f"{label} / {config}")
            result = evaluate_robustness(
                segmenter, splits[config], tokenizer, image_processor, settings["max_text_length"],
                settings["threshold"], max_images=max_images, tasks=tuple(tasks), progress=progress,
                min_area=settings["min_area"], presence_threshold=settings["presence_threshold"],
                min_instance_area=min_instance_area, match_radius=match_radius, desc=f"{label} / {config}")
            for item in result["records"] + result["groups"]:
                item["source"] = config  # a config is a source; rows may spell it differently
            by_config[config] = summarize(result["records"], result["groups"])
            for quality in ("held_out", "held_out_synonym"):  # held-out framings (both tasks), synonyms (T2)
                held = [r["dice"] for r in result["records"] if r["quality"] == quality]
                by_config[config][f"{quality}_dice"] = sum(held) / len(held) if held else None
            if vocabularies[config] is not None:
                by_synonym[config][label] = synonym_dice(result["records"], vocabularies[config])
                by_config[config]["held_out_synonyms"] = {f"{c}/{w}": v for (c, w), v in by_synonym[config][label].items()}
            records += result["records"]
            groups += result["groups"]
            bar.update(1)
        overall = summarize(records, groups)
        overall.pop("by_source")  # the same numbers are under by_config
        for summary in by_config.values():
            summary.pop("by_source")
        results["models"][label] = {"path": name, "settings": settings, "trained_on": trained_on(name),
                                    "overall": overall, "by_config": by_config}
        all_records += [{"model": label, **r} for r in records]
        if out_dir and grid_tiles:
            grids[label] = qualitative_examples(segmenter, splits[configs[0]], tokenizer, image_processor,
                                                settings["max_text_length"], settings["threshold"],
                                                num_tiles=grid_tiles, task=grid_task, min_area=settings["min_area"],
                                                presence_threshold=settings["presence_threshold"])
        del segmenter
    bar.close()

    markdown = render_markdown(results)
    for config, tables in by_synonym.items():
        table = synonyms_markdown(tables, title=f"T2 Dice by held-out synonym ({config}, models as columns)")
        markdown += "\n" + table if table else ""
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        # Every file is written whole (temporary name, then rename), the report last: an
        # eval_report.md on disk means the evaluation and all its files finished.
        files["records"] = write_text_atomic(os.path.join(out_dir, "records.jsonl"),
                                             "".join(json.dumps(_json_safe(r)) + "\n" for r in all_records))
        dice_by_model = {label: m["overall"]["dice"] for label, m in results["models"].items()}
        files["dice_by_quality_plot"] = dice_by_quality(
            dice_by_model, os.path.join(out_dir, "dice_by_quality.png"),
            title=f"Dice per prompt quality ({', '.join(configs)}, {split})")
        for label, examples in grids.items():
            files[f"qualitative_grid/{label}"] = qualitative_grid(
                examples, os.path.join(out_dir, f"qualitative_{_safe_name(label)}.png"),
                title=f"{label}: one prompt per quality level ({configs[0]}, {split})")
        json_path = json_path or os.path.join(out_dir, "eval_results.json")
    if json_path:
        files["json"] = json_path
        if out_dir:
            files["markdown"] = os.path.join(out_dir, "eval_report.md")
        write_json_atomic(json_path, _json_safe({**results, "files": files}), allow_nan=False)
    if out_dir:
        write_text_atomic(files["markdown"], markdown)
    return {**results, "markdown": markdown, "files": files}


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------
