"""``--validate``: check a built dataset folder end to end, reporting every problem found.

Checks: README.md lists configs; no leftover temporary folders of an interrupted build; each
config has categories.json and parquet files for every listed split; every row passes
pgat_hf.data.dataset.validate_row; class ids stay within the category list; each row has one T1 group
and one T2 group per category, named as in categories.json.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import datasets

from pgat_hf.data.dataset import CATEGORIES_FILE, _read_card, class_array, validate_row


def _check_config(root: Path, entry: dict, problems: list[str], cache_dir: str) -> dict:
    name = entry["config_name"]
    folder = root / name
    counts: dict[str, int] = {}
    if not (folder / CATEGORIES_FILE).exists():
        problems.append(f"{folder / CATEGORIES_FILE}: missing")
        return counts
    categories = json.loads((folder / CATEGORIES_FILE).read_text(encoding="utf-8"))
    for files in entry.get("data_files") or []:
        if not list(root.glob(files["path"])):
            problems.append(f"{root / files['path']}: no parquet file for split {files['split']!r}")
    if problems:
        return counts
    splits = datasets.load_dataset(str(root), name, cache_dir=cache_dir)
    for split, rows in splits.items():
        counts[split] = rows.num_rows
        for index, row in enumerate(rows):
            where = f"{name}/{split} row {index} ({row['image_id']})"
            try:
                validate_row(row, index)
            except ValueError as err:
                problems.append(f"{name}/{split}: {err}")
                continue
            top = int(class_array(row["class_map"]).max(initial=0))
            if top > len(categories):
                problems.append(f"{where}: class id {top} but only {len(categories)} categories")
            groups = row["prompt_groups"]
            tasks = [(g["task"], g["category"], g["category_id"]) for g in groups]
            expected = [("T1", "nuclei", 0)] + [("T2", c, i + 1) for i, c in enumerate(categories)]
            if tasks != expected:
                problems.append(f"{where}: prompt groups {tasks} do not match categories {categories}")
    return counts


def validate_dataset_folder(out_dir) -> dict[str, dict[str, int]]:
    """Check ``out_dir``; returns {config: {split: rows}} or raises ValueError listing problems."""
    root = Path(out_dir)
    problems: list[str] = []
    if not (root / "README.md").exists():
        raise ValueError(f"{root / 'README.md'}: missing; not a built dataset folder")
    meta, _ = _read_card(root / "README.md")
    configs = meta.get("configs") or []
    if not configs:
        problems.append(f"{root / 'README.md'}: lists no configs")
    for leftover in sorted(root.glob(".*.tmp-*")) + sorted(root.glob(".*.old-*")):
        problems.append(f"{leftover}: left by an interrupted build (delete it and rebuild)")
    summary = {}
    cache_dir = tempfile.mkdtemp(prefix="pgat_validate_")
    try:
        for entry in configs:
            summary[entry["config_name"]] = _check_config(root, entry, problems, cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    if problems:
        raise ValueError(f"{root}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return summary
