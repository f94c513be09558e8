"""Dataset schema (docs/design.md §3): Features, row validation, mask derivation and repo writing.

One row is one image tile:

- ``image``: RGB tile (H, W, 3).
- ``instance_map``: 16-bit PNG (H, W), 0 = background, 1..N nucleus ids.
- ``class_map``: 8-bit PNG (H, W), 0 = unlabelled, c >= 1 = the c-th name of the config's category
  list (``<config>/categories.json``).
- ``prompt_groups``: list of groups from :func:`pgat_hf.data.prompts.make_prompt_groups`.
- ``image_id``, ``source``, ``tissue``: provenance strings.

Group masks are derived, never stored (:func:`group_mask`). Each source is one config of a
dataset folder/repo: ``<config>/<split>-00000-of-00001.parquet`` plus a README.md whose YAML
front matter lists the configs, so ``datasets.load_dataset(folder, config)`` works offline.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import datasets
import numpy as np
import yaml
from PIL import Image

from pgat_hf.atomic import write_text_atomic
from pgat_hf.data.prompts import ALL_QUALITIES
from pgat_hf.data.vocabulary import TASKS

# datasets >= 4 spells lists ``List``; ``Sequence`` of a dict would turn into a dict of lists.
PROMPT_GROUP_FEATURE = {
    "task": datasets.Value("string"),
    "category": datasets.Value("string"),
    "category_id": datasets.Value("int32"),
    "present": datasets.Value("bool"),
    "prompts": datasets.List(datasets.Value("string")),
    "quality": datasets.List(datasets.Value("string")),
}

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "instance_map": datasets.Image(),
        "class_map": datasets.Image(),
        "prompt_groups": datasets.List(PROMPT_GROUP_FEATURE),
        "image_id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "tissue": datasets.Value("string"),
    }
)

CATEGORIES_FILE = "categories.json"


# ------------------------------------------------------------------------------------------
# Image <-> array
# ------------------------------------------------------------------------------------------
def _to_pil(value) -> Image.Image:
    """Accept a PIL image, an ndarray, or a datasets ``{"bytes", "path"}`` dict."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        return Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
    raise TypeError(f"expected a PIL image, ndarray or image dict, got {type(value).__name__}")


def _label_array(img, what: str) -> np.ndarray:
    """Single-channel label image → int32 (H, W); multi-channel images are rejected."""
    if isinstance(img, np.ndarray):
        arr = img
    else:
        img = _to_pil(img)
        if img.mode == "P":  # palette PNGs hold the label in the index, not the colour
            arr = np.asarray(img)
        elif img.mode in ("1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
            arr = np.asarray(img)
        else:
            raise ValueError(f"{what} must be a single-channel image, got mode {img.mode!r}")
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (H, W), got shape {arr.shape}")
    return arr.astype(np.int32)


def instance_array(img) -> np.ndarray:
    """Instance map image (16-bit PNG, mode I;16 or I) → int32 (H, W), 0 = background."""
    return _label_array(img, "instance_map")


def class_array(img) -> np.ndarray:
    """Class map image (8-bit PNG, mode L) → int32 (H, W), 0 = unlabelled."""
    return _label_array(img, "class_map")


def _png_roundtrip(img: Image.Image) -> Image.Image:
    # Re-open from PNG bytes so ``img.format == "PNG"``: datasets then re-encodes it as PNG
    # instead of falling back to TIFF for 16-bit modes (datasets.features.image.image_to_bytes).
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    out = Image.open(io.BytesIO(buffer.getvalue()))
    out.load()
    return out


def encode_instance_map(arr: np.ndarray) -> Image.Image:
    """int (H, W) instance ids in [0, 65535] → 16-bit PNG-backed PIL image (mode I;16)."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"instance map must be 2-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max):
        raise ValueError("instance ids must lie in [0, 65535] to fit a 16-bit PNG")
    return _png_roundtrip(Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint16)))


def encode_class_map(arr: np.ndarray) -> Image.Image:
    """int (H, W) class ids in [0, 255] → 8-bit PNG-backed PIL image (mode L)."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"class map must be 2-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("class ids must lie in [0, 255] to fit an 8-bit PNG")
    return _png_roundtrip(Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)))


def encode_image(arr: np.ndarray) -> Image.Image:
    """uint8 (H, W, 3) RGB → PNG-backed PIL image (lossless, so rebuilds are byte-identical)."""
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {arr.shape}")
    return _png_roundtrip(Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)))


# ------------------------------------------------------------------------------------------
# Masks and validation
# ------------------------------------------------------------------------------------------
def group_mask(group: dict, instance_map: np.ndarray, class_map: np.ndarray) -> np.ndarray:
    """Ground-truth mask of one prompt group → bool (H, W).

    T1 → ``instance_map > 0``; T2 → ``class_map == category_id`` (all False if not present).
    """
    task = group["task"]
    if task == "T1":
        return np.asarray(instance_map) > 0
    if task == "T2":
        if not group.get("present", True):
            return np.zeros(np.shape(class_map), dtype=bool)
        return np.asarray(class_map) == int(group["category_id"])
    raise ValueError(f"unknown task {task!r}; expected 'T1' or 'T2'")


def validate_row(row: dict, index: int) -> None:
    """Raise ``ValueError`` naming the row (index and image_id) if it breaks the schema.

    Checks: RGB-convertible image; image / instance / class sizes agree; no negative ids; every
    group has prompts, one quality label per prompt, known labels; a T2 group's ``present`` agrees
    with its class map.
    """
    name = f"row {index} (image_id={row.get('image_id')!r})"

    def fail(message: str) -> None:
        raise ValueError(f"{name}: {message}")

    try:
        image = _to_pil(row["image"])
        image.convert("RGB")
    except Exception as err:  # noqa: BLE001 - any decode/convert failure means a bad row
        fail(f"image is not an RGB-convertible image ({err})")
    try:
        instances = instance_array(row["instance_map"])
        classes = class_array(row["class_map"])
    except Exception as err:  # noqa: BLE001
        fail(f"cannot read instance/class map ({err})")
    height_width = (image.height, image.width)
    if instances.shape != height_width or classes.shape != height_width:
        fail(
            f"size mismatch: image {height_width}, instance_map {instances.shape}, "
            f"class_map {classes.shape}"
        )
    if instances.size and instances.min() < 0:
        fail("instance_map has negative ids")
    if classes.size and classes.min() < 0:
        fail("class_map has negative ids")
    for g, group in enumerate(row.get("prompt_groups") or []):
        prompts, quality = group.get("prompts") or [], group.get("quality") or []
        if not prompts:
            fail(f"prompt group {g} has no prompts")
        if len(prompts) != len(quality):
            fail(f"prompt group {g} has {len(prompts)} prompts but {len(quality)} quality labels")
        unknown = sorted(set(quality) - set(ALL_QUALITIES))
        if unknown:
            fail(f"prompt group {g} has unknown quality labels {unknown}")
        if group.get("task") not in TASKS:
            fail(f"prompt group {g} has unknown task {group.get('task')!r}")
        if group["task"] == "T2":
            actual = bool((classes == int(group["category_id"])).any())
            if bool(group["present"]) != actual:
                fail(
                    f"prompt group {g} ({group.get('category')!r}, id {group['category_id']}) says "
                    f"present={group['present']} but the class map says {actual}"
                )


def validate_training_rows(dataset, tasks=TASKS, where: str = "train split") -> None:
    """Check every row before training reads it (once, at load): the schema checks of
    `validate_row`, non-empty prompt strings, and at least one training-quality prompt in every
    group of the trained tasks. The first bad row stops with an error naming it and the problem.
    """
    from tqdm.auto import tqdm

    from pgat_hf.data.prompts import QUALITIES

    for index in tqdm(range(len(dataset)), desc=f"checking {where}", leave=False, disable=len(dataset) < 2000):
        row = dataset[index]
        try:
            validate_row(row, index)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        name = f"{where}: row {index} (image_id={row.get('image_id')!r})"
        groups = [g for g in row["prompt_groups"] if g["task"] in tasks]
        if not groups:
            raise ValueError(f"{name}: no prompt group of tasks {list(tasks)}")
        for g, group in enumerate(row["prompt_groups"]):
            for prompt in group["prompts"]:
                if not isinstance(prompt, str) or not prompt.strip():
                    raise ValueError(f"{name}: prompt group {g} has an empty prompt {prompt!r}")
            if group["task"] in tasks and not any(q in QUALITIES for q in group["quality"]):
                raise ValueError(f"{name}: prompt group {g} ({group['task']} {group['category']!r}) has no "
                                 f"training prompt (only {sorted(set(group['quality']))})")


# ------------------------------------------------------------------------------------------
# Writing / reading a dataset folder
# ------------------------------------------------------------------------------------------
def _split_file(split: str) -> str:
    return f"{split}-00000-of-00001.parquet"


def _read_card(readme: Path) -> tuple[dict, str]:
    """README.md → (YAML front matter dict, body text)."""
    if not readme.exists():
        return {}, ""
    text = readme.read_text(encoding="utf-8")
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            meta = yaml.safe_load(text[4:end]) or {}
            body = text[end + 4 :].lstrip("\n")
            return meta, body
    return {}, text


def has_config(dataset_dir: str | os.PathLike, config_name: str) -> bool:
    """True when the config folder and its README.md ``configs:`` entry are both present."""
    root = Path(dataset_dir)
    if not (root / config_name / CATEGORIES_FILE).exists():
        return False
    meta, _ = _read_card(root / "README.md")
    return any(c.get("config_name") == config_name for c in meta.get("configs") or [])


def write_dataset_repo(
    out_dir: str | os.PathLike,
    config_name: str,
    splits: dict[str, list[dict]],
    categories: list[str],
    card_text: str = "",
    extra_files: dict[str, str] | None = None,
) -> str:
    """Write one config of a dataset folder loadable with ``load_dataset(out_dir, config_name)``.

    Layout: ``out_dir/{config_name}/{split}-00000-of-00001.parquet``,
    ``out_dir/{config_name}/categories.json`` and ``out_dir/README.md`` (YAML ``configs:`` merged
    with any configs already listed; ``card_text`` replaces the body, else the old body is kept).
    ``extra_files`` (name → text) are written into the config folder too (e.g. build statistics),
    inside the same atomic rename. The config is written to a temporary folder and renamed into
    place, so a killed run never leaves a folder that looks complete. Returns ``str(out_dir)``.
    """
    root = Path(out_dir)
    empty = [split for split, rows in splits.items() if not rows]
    if empty or not splits:
        # A parquet split without rows cannot be loaded back (datasets: "corresponds to no data").
        raise ValueError(f"{root / config_name}: split(s) {', '.join(empty) or '(none)'} have no rows; leave them out")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{config_name}.tmp-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the final folder should read like any other
    try:
        for split, rows in splits.items():
            dataset = datasets.Dataset.from_list(rows, features=FEATURES)
            dataset.to_parquet(str(tmp / _split_file(split)))
        (tmp / CATEGORIES_FILE).write_text(json.dumps(list(categories), indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        final = root / config_name
        if final.exists():
            # Move the old copy aside first: os.replace cannot overwrite a non-empty folder.
            trash = Path(tempfile.mkdtemp(dir=root, prefix=f".{config_name}.old-"))
            os.replace(final, trash / config_name)
            shutil.rmtree(trash)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    meta, body = _read_card(root / "README.md")
    entry = {
        "config_name": config_name,
        "data_files": [
            {"split": split, "path": f"{config_name}/{split}-*.parquet"} for split in splits
        ],
    }
    configs = [c for c in meta.get("configs") or [] if c.get("config_name") != config_name]
    meta["configs"] = sorted(configs + [entry], key=lambda c: c["config_name"])
    if card_text:
        body = card_text
    elif not body:
        body = "# Nuclei segmentation prompt-group dataset\n\nSchema: see pgat_hf/data/dataset.py.\n"
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    write_text_atomic(root / "README.md", f"---\n{front}---\n\n{body.rstrip()}\n")
    return str(root)


def load_prompt_dataset(path: str | os.PathLike, config_name: str, split: str | None = None):
    """Load a config of a dataset folder (or Hub repo) as exactly the files on disk.

    `datasets.load_dataset(folder, config)` caches a local folder under the folder's *name* and
    its relative file patterns (`<name>/<config>/0.0.0/<hash>`), so two folders of one name, or a
    folder rebuilt in place, can be served the first one's cached rows. A local folder is
    therefore read through the `parquet` builder with the resolved file paths, whose cache key
    includes each file's absolute path and modification time.
    """
    root = Path(path)
    if not root.exists():
        return datasets.load_dataset(str(path), config_name, split=split)
    meta, _ = _read_card(root / "README.md")
    entry = next((c for c in meta.get("configs") or [] if c.get("config_name") == config_name), None)
    if entry is None:
        known = [c.get("config_name") for c in meta.get("configs") or []]
        raise FileNotFoundError(f"{root / 'README.md'} lists no config {config_name!r} (configs: {known})")
    data_files = {}
    for item in entry.get("data_files") or []:
        files = sorted(str(f.resolve()) for f in root.glob(item["path"]))
        if not files:
            raise FileNotFoundError(f"{root}: config {config_name!r} split {item['split']!r}: no file matches "
                                    f"{item['path']!r}")
        data_files[item["split"]] = files
    if split is not None and split not in data_files:
        raise ValueError(f"{root}: config {config_name!r} has no split {split!r} (splits: {list(data_files)})")
    return datasets.load_dataset("parquet", data_files=data_files, split=split)


def load_categories(dataset_dir: str | os.PathLike, config_name: str) -> list[str]:
    """Category names of a config (class id c ↔ ``categories[c - 1]``).

    ``dataset_dir`` is a local folder or, if no such folder exists, a Hub dataset repo id.
    """
    local = Path(dataset_dir) / config_name / CATEGORIES_FILE
    if local.exists():
        path = local
    elif Path(dataset_dir).exists():
        raise FileNotFoundError(f"{local} not found")
    else:
        from huggingface_hub import hf_hub_download

        path = Path(
            hf_hub_download(str(dataset_dir), f"{config_name}/{CATEGORIES_FILE}", repo_type="dataset")
        )
    return list(json.loads(path.read_text(encoding="utf-8")))
