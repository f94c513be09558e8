"""The dataset card (README.md) of a repo folder holding one or more configs.

Re-rendered from what is on disk after every build, so a folder built from several sources
describes all of them: YAML ``configs:`` (kept from pgat_hf.data.dataset.write_dataset_repo), licence,
``dataset_info`` features; a body with configs, features, per-category counts, build settings,
sources, licences and citations. Counts come from each config's ``build.json``; configs without
one (e.g. written by dataset_scripts/synthetic.py) show parquet row counts only.
"""

from __future__ import annotations

import json
from pathlib import Path

from pgat_hf.atomic import write_text_atomic
from pgat_hf.data.dataset import CATEGORIES_FILE, FEATURES, _read_card

BUILD_FILE = "build.json"
PAPER_CITATION = (
    "Wu Y, Liang Z, Zeng W, Xie X, Yu J. Prompt Group-Aware Training for Robust Text-Guided "
    "Nuclei Segmentation. arXiv:2603.06384 (2026)."
)
_FEATURE_ROWS = [
    ("image", "Image", "RGB tile"),
    ("instance_map", "Image (16-bit PNG)", "0 = background, 1..N nucleus ids"),
    ("class_map", "Image (8-bit PNG)", "0 = unlabelled, c = c-th name in `<config>/categories.json`"),
    ("prompt_groups", "list of {task, category, category_id, present, prompts, quality}",
     "T1: all nuclei; T2: one per category (`present` false ⇒ empty mask)"),
    ("image_id, source, tissue", "string", "provenance"),
]


def _config_record(root: Path, name: str) -> dict:
    """build.json of a config, or a minimal record from its parquet metadata."""
    folder = root / name
    build = folder / BUILD_FILE
    if build.exists():
        return json.loads(build.read_text(encoding="utf-8"))
    import pyarrow.parquet as pq

    categories = json.loads((folder / CATEGORIES_FILE).read_text()) if (folder / CATEGORIES_FILE).exists() else []
    splits = {p.name.split("-")[0]: {"rows": pq.read_metadata(p).num_rows}
              for p in sorted(folder.glob("*.parquet"))}
    return {"source": name, "config": name, "categories": categories, "splits": splits}


def _source_info(source: str):
    from pgat_hf.data.converters.registry import SOURCES

    entry = SOURCES.get(source)
    return entry.info if entry else None


def _split_text(stats: dict) -> str:
    if "images" in stats:
        return f"{stats['rows']} rows ({stats['images']} of {stats.get('images_available', stats['images'])} images)"
    return f"{stats['rows']} rows"


def render_body(records: list[dict]) -> str:
    lines = [
        "# Nuclei segmentation prompt-group datasets (pgat_hf)", "",
        "One row per image tile: the tile, its instance and class maps, and seeded prompt groups "
        "(T1 all nuclei, T2 one group per category, low/medium/high prompts plus held-out "
        "phrasings used only for evaluation). Group masks are derived: T1 → `instance_map > 0`, "
        "T2 → `class_map == category_id`.", "",
        "```python", "from datasets import load_dataset",
        f"ds = load_dataset(PATH_OR_REPO, \"{records[0]['config'] if records else 'CONFIG'}\")", "```", "",
        "## Configs", "", "| config | source | categories | splits | licence |", "|---|---|---|---|---|",
    ]
    for rec in records:
        info = _source_info(rec["source"])
        splits = "; ".join(f"{s}: {_split_text(st)}" for s, st in rec["splits"].items())
        cats = ", ".join(rec["categories"]) or "— (T1 only)"
        lines.append(f"| `{rec['config']}` | {info.title if info else rec['source']} | {cats} | {splits} | "
                     f"{info.licence if info else 'see source'} |")
    lines += ["", "## Features", "", "| column | feature | meaning |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _FEATURE_ROWS]
    counted = [r for r in records if r["categories"] and any("nuclei_per_category" in s for s in r["splits"].values())]
    if counted:
        lines += ["", "## Per-category counts", "",
                  "Nuclei per category (tiles may overlap, so a nucleus on a shared border counts "
                  "once per tile) and rows where the category is present."]
        for rec in counted:
            lines += ["", f"`{rec['config']}`", "", "| category | " + " | ".join(rec["splits"]) + " |",
                      "|---|" + "---|" * len(rec["splits"])]
            for name in rec["categories"]:
                cells = [f"{st['nuclei_per_category'][name]} nuclei / {st['rows_with_category'][name]} rows"
                         for st in rec["splits"].values()]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    built = [r for r in records if "build" in r]
    if built:
        lines += ["", "## Build settings", ""]
        for rec in built:
            b = rec["build"]
            lines.append(f"- `{rec['config']}`: `python dataset_scripts/build.py --source {rec['source']} "
                         f"--raw RAW --out OUT --train-fraction {b['train_fraction']} --seed {b['seed']} "
                         f"--tile-size {b['tile_size']} --overlap {b['overlap']}` (same arguments, "
                         "byte-identical parquet)")
    infos = {}
    for rec in records:
        info = _source_info(rec["source"])
        if info is not None:
            infos[info.name] = info
    lines += ["", "## Sources and licences", ""]
    for info in infos.values():
        where = f" ({info.homepage})" if info.homepage else ""
        lines.append(f"- **{info.title}**{where}: {info.description} Licence: {info.licence_note}")
    share_alike = [i.title for i in infos.values() if i.licence == "cc-by-nc-sa-4.0"]
    if share_alike:
        lines += ["", f"**Configs from {' and '.join(share_alike)} are CC BY-NC-SA 4.0: non-commercial "
                  "use only, and anything derived from them must carry the same licence.**"]
    lines += ["", "## Citation", "", f"- pgat_hf method: {PAPER_CITATION}"]
    lines += [f"- {info.title}: {info.citation}" for info in infos.values() if info.citation]
    return "\n".join(lines) + "\n"


def update_card(out_dir) -> str:
    """Re-render README.md of ``out_dir`` from its configs; returns the body written."""
    root = Path(out_dir)
    meta, _ = _read_card(root / "README.md")
    names = [c["config_name"] for c in meta.get("configs") or []]
    records = [_config_record(root, name) for name in names if (root / name).is_dir()]
    licences = sorted({i.licence for i in (_source_info(r["source"]) for r in records) if i})
    meta["license"] = licences[0] if len(licences) == 1 else (licences or "other")
    meta["task_categories"] = ["image-segmentation"]
    meta["tags"] = ["histopathology", "nuclei", "text-guided-segmentation", "pgat_hf"]
    meta["dataset_info"] = [
        {"config_name": name, "features": FEATURES._to_yaml_list()} for name in names
    ]
    body = render_body(records)
    import yaml

    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    write_text_atomic(root / "README.md", f"---\n{front}---\n\n{body.rstrip()}\n")
    return body
