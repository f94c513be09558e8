"""The prompt-robustness explorer: a Gradio page where several phrasings of one target are segmented
on one H&E tile and their masks compared.

    pgat-hf app [--model DIR_OR_REPO] [--compare DIR_OR_REPO] [--port N]     # commands/app.py
    python app.py                                                            # a Hugging Face Space

Per phrasing: the mask over the tile, SAM3's presence score and the number of nuclei (connected
components); per group: the pairwise mask agreement as a heat map, the phrasing that disagrees
most and one sentence on how robust the group is (hub/agreement.py). Masks download as 0/255 PNGs
and instance maps as 16-bit PNGs. With a second checkpoint (`--compare`, e.g. the plain
fine-tuned baseline) both run on the same tile and phrasings, side by side. All phrasings of a
tile share one vision pass (the pipeline's). Bad input is a message in the page (`gr.Error`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import matplotlib

matplotlib.use("Agg")  # rendered to arrays, no display
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from skimage.segmentation import find_boundaries

from pgat_hf.evaluation.report import model_labels
from pgat_hf.hub.agreement import agreement_matrix, parse_phrasings, summarize_agreement

DEFAULT_MODEL = "outputs/pgat-demo"  # where the README's main command writes the demo checkpoint
MAX_PHRASINGS = 12
# Download folders kept, one per button press: a Space runs for weeks, and a press's files are
# fetched right after it, so older ones are removed.
KEEP_RUNS = 8
T1_GROUP = ("all nuclei", "segment every cell nucleus in the image", "outline all nuclear profiles in the specimen")
T2_GROUP = ("inflammatory nuclei", "segment all lymphocyte nuclei", "highlight the lymphoid nuclei")
NO_MODEL_TEXT = (f"**No checkpoint to run.** Train the demo one (about 6 minutes on 2 CPU cores), which "
                 f"writes `{DEFAULT_MODEL}`:\n\n"
                 "    accelerate launch --config_file accelerate_configs/cpu.yaml --num_cpu_threads_per_process 2 \\\n"
                 "        pgat_hf/train.py --config pgat_hf/recipes/demo.yaml\n\n"
                 "then run `pgat-hf app`, or name any checkpoint folder or Hub repo: `pgat-hf app --model DIR_OR_REPO` "
                 "(on a Space: the `PGAT_MODEL` variable).")
MASK_COLOUR = np.array([0, 200, 90], np.float32)
EDGE_COLOUR = np.array([255, 230, 0], np.uint8)


@dataclass
class PhrasingResult:
    phrasing: str
    score: float
    label_map: np.ndarray  # [H, W] int32 instance ids, 0 = background

    @property
    def mask(self) -> np.ndarray:
        return self.label_map > 0

    @property
    def count(self) -> int:
        return int(self.label_map.max())


def overlay(tile: np.ndarray, label_map: np.ndarray) -> np.ndarray:
    """Tile [H, W, 3] uint8 with the mask tinted green and each nucleus outlined in yellow."""
    picture = tile.astype(np.float32)
    mask = label_map > 0
    picture[mask] = 0.55 * picture[mask] + 0.45 * MASK_COLOUR
    picture = picture.round().astype(np.uint8)
    picture[find_boundaries(label_map, mode="inner")] = EDGE_COLOUR
    return picture


def heatmap(phrasings: list[str], matrix: np.ndarray, title: str) -> np.ndarray:
    """The [P, P] agreement matrix as an RGB picture [h, w, 3] uint8, values written in the cells."""
    size = 2.4 + 0.5 * len(phrasings)
    figure, axes = plt.subplots(figsize=(size + 0.9, size), dpi=100)
    image = axes.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    numbers = [str(i + 1) for i in range(len(phrasings))]  # as in the masks' captions
    axes.set_xticks(range(len(numbers)), numbers)
    axes.set_yticks(range(len(numbers)), numbers)
    axes.set_xlabel("phrasing (numbered as the masks)", fontsize=8)
    for i in range(len(phrasings)):
        for j in range(len(phrasings)):
            axes.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                      color="black" if matrix[i, j] > 0.6 else "white")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046, label="mask Dice")
    figure.tight_layout()
    figure.canvas.draw()
    picture = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return picture


def save_downloads(results: list[PhrasingResult], folder: Path, prefix: str) -> list[str]:
    """Per phrasing: NAME_mask.png (0/255) and NAME_instances.png (16-bit instance ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, result in enumerate(results, 1):
        stem = f"{prefix}{index:02d}_" + "".join(c if c.isalnum() else "_" for c in result.phrasing)[:40].strip("_")
        mask_path, instances_path = folder / f"{stem}_mask.png", folder / f"{stem}_instances.png"
        Image.fromarray(result.mask.astype(np.uint8) * 255, mode="L").save(mask_path)
        if result.label_map.max() > np.iinfo(np.uint16).max:
            raise gr.Error(f"{result.phrasing!r}: more than 65,535 nuclei do not fit a 16-bit instance map")
        Image.fromarray(result.label_map.astype(np.uint16)).save(instances_path)
        paths += [str(mask_path), str(instances_path)]
    return paths


def load_segmenter(name: str):
    """The text-guided-nuclei-segmentation pipeline of a checkpoint folder or Hub repo, on CPU or the first GPU."""
    import torch
    from transformers import pipeline

    import pgat_hf  # noqa: F401  registers the task

    return pipeline("text-guided-nuclei-segmentation", model=name, device=0 if torch.cuda.is_available() else -1)


class Explorer:
    """One or two checkpoints and what the page's button runs on them."""

    def __init__(self, models: list[str], load=load_segmenter):
        self.names = list(models)
        self.labels = model_labels(self.names)
        self.segmenters = [load(name) for name in self.names]
        self.downloads = Path(tempfile.mkdtemp(prefix="pgat_app_"))

    def new_download_folder(self) -> Path:
        """A fresh folder for this press's files; all but the newest KEEP_RUNS are removed."""
        call = Path(tempfile.mkdtemp(prefix="run", dir=self.downloads))
        earlier = sorted((folder for folder in self.downloads.glob("run*") if folder != call),
                         key=lambda folder: folder.stat().st_mtime_ns)
        for old in earlier[:max(0, len(earlier) - (KEEP_RUNS - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        return call

    def run(self, image, text: str, progress=gr.Progress()):
        """Gradio handler: one tuple (summary, gallery, heat map, files) per model, then the comparison line."""
        from pgat_hf.hub.pipeline import load_image

        if image is None:
            raise gr.Error("Upload an H&E tile, or pick one of the examples below the inputs.")
        phrasings, empty = parse_phrasings(text)
        if not phrasings:
            raise gr.Error("Type at least one phrasing, one per line (e.g. 'all nuclei').")
        if len(phrasings) > MAX_PHRASINGS:
            raise gr.Error(f"{len(phrasings)} phrasings: the explorer compares at most {MAX_PHRASINGS}")
        try:
            rgb = load_image(image)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise gr.Error(f"This file cannot be used as a tile: {error}") from error
        tile = np.asarray(rgb)
        call = self.new_download_folder()
        outputs, means = [], []
        for index, (label, segmenter) in enumerate(zip(self.labels, self.segmenters)):
            progress((index + 0.1) / len(self.segmenters),
                     desc=f"{label}: {len(phrasings)} phrasings on one image encoding")
            results = [PhrasingResult(r["prompt"], r["score"], r["label_map"])
                       for r in segmenter(rgb, prompts=phrasings)]
            matrix = agreement_matrix([r.mask for r in results])
            areas = [int(r.mask.sum()) for r in results]
            summary = summarize_agreement(phrasings, matrix, areas=areas)
            means.append(summary["mean"])
            gallery = [(overlay(tile, r.label_map),
                        f"{i}. {r.phrasing} | presence {r.score:.2f} | {r.count} nuclei")
                       for i, r in enumerate(results, 1)]
            note = f" ({empty} empty line{'s' if empty != 1 else ''} skipped)" if empty else ""
            text_out = f"**{label}** — {group_sentence(summary, areas)}{note}"
            outputs += [text_out, gallery, heatmap(phrasings, matrix, "pairwise mask agreement (Dice)"),
                        save_downloads(results, call, prefix=f"{index + 1}_")]
        progress(1.0, desc="done")
        return (*outputs, comparison_line(self.labels, means))


def group_sentence(summary: dict, areas: list[int]) -> str:
    """The page's verdict on a group. Empty masks agree perfectly (Dice 1.0), so when every mask is
    empty the agreement reflects that nothing was found, not robustness: the page says so instead of
    "robust to wording"."""
    if not areas or any(areas):
        return summary["sentence"]
    if len(areas) == 1:
        return "The phrasing found no nuclei on this tile: its mask is empty."
    return (f"No phrasing found nuclei on this tile: every mask is empty. Mean pairwise mask agreement "
            f"{summary['mean']:.3f} only says that empty masks match; it says nothing about the wording. "
            "Try another tile, or phrasings of a target the tile shows.")


def comparison_line(labels: list[str], means: list[float]) -> str:
    if len(means) < 2:
        return ""
    difference = means[0] - means[1]
    better = labels[0] if difference > 0 else labels[1]
    return (f"Mean pairwise agreement: **{labels[0]} {means[0]:.3f}**, **{labels[1]} {means[1]:.3f}** "
            f"({difference:+.3f}; " + ("equal" if difference == 0 else f"{better} agrees more") + " on this tile).")


def example_tiles(folder: Path) -> list[str]:
    """Two synthetic tiles (deterministic; the second holds inflammatory nuclei, for the T2 example) and
    stardist's real H&E tile when stardist is installed."""
    from pgat_hf.data.synthetic import SYNTHETIC_CATEGORIES, generate_tile

    folder.mkdir(parents=True, exist_ok=True)
    inflammatory = SYNTHETIC_CATEGORIES.index("inflammatory")
    paths = []
    for first_seed, needs_inflammatory in ((101, False), (202, True)):
        seed = first_seed
        while True:
            rgb, _, _, present = generate_tile(np.random.default_rng(seed))
            if present[inflammatory] or not needs_inflammatory:
                break
            seed += 1
        path = folder / f"synthetic_tile_{seed}.png"
        if not path.is_file():
            Image.fromarray(rgb).save(path)
        paths.append(str(path))
    try:
        from pgat_hf.hub.showcase import load_he_tile

        path = folder / "stardist_he_tile.png"
        if not path.is_file():
            Image.fromarray(load_he_tile()).save(path)
        paths.append(str(path))
    except ImportError:  # stardist is a dev dependency
        pass
    return paths


def build_app(models: list[str], load=load_segmenter) -> gr.Blocks:
    """The page for one or two checkpoints; with none, a page that says how to get one."""
    examples_dir = Path(tempfile.gettempdir()) / "pgat_app_examples"
    with gr.Blocks(title="pgat_hf: does the wording change the mask?") as page:
        gr.Markdown("# Does the wording change the mask?\nType several phrasings of one target, one per line. "
                    "Each is segmented on its own; the heat map shows how much their masks agree.")
        if not models:
            gr.Markdown(NO_MODEL_TEXT, elem_id="no-model")
            return page
        explorer = Explorer(models, load=load)
        gr.Markdown("Checkpoint" + ("s" if len(models) > 1 else "") + ": "
                    + ", ".join(f"`{name}`" for name in models), elem_id="models")
        with gr.Row():
            # image_mode=None: the uploaded file reaches load_image as it is. Gradio's default, "RGB",
            # re-encodes it first, and PIL's 16-bit-to-RGB conversion clips, so a 16-bit grey PNG turns white.
            image = gr.Image(type="filepath", image_mode=None, label="H&E tile", elem_id="tile", height=320)
            text = gr.Textbox(value="\n".join(T1_GROUP), lines=7, label="Phrasings of one target, one per line",
                              elem_id="phrasings")
        tiles = example_tiles(examples_dir)
        gr.Examples(examples=[[tiles[0], "\n".join(T1_GROUP)], [tiles[1], "\n".join(T2_GROUP)]]
                    + [[tile, "\n".join(T1_GROUP)] for tile in tiles[2:]],
                    inputs=[image, text], label="Examples: synthetic test tiles, stardist's H&E tile")
        button = gr.Button("Segment every phrasing", variant="primary", elem_id="run")
        comparison = gr.Markdown(elem_id="comparison")
        outputs = []
        with gr.Row():
            for index, label in enumerate(explorer.labels):
                with gr.Column():
                    outputs += [gr.Markdown(f"**{label}**", elem_id=f"summary-{index}"),
                                gr.Gallery(label=f"{label}: mask per phrasing", columns=3, height="auto",
                                           elem_id=f"masks-{index}"),
                                gr.Image(label=f"{label}: agreement", type="numpy", interactive=False,
                                         elem_id=f"agreement-{index}"),
                                gr.File(label="masks (PNG) and instance maps (16-bit PNG)", file_count="multiple",
                                        elem_id=f"downloads-{index}")]
        button.click(explorer.run, inputs=[image, text], outputs=[*outputs, comparison])
    page.pgat_allowed_paths = [str(examples_dir), str(explorer.downloads)]
    return page


def launch(models: list[str], port: int | None = None, host: str = "127.0.0.1") -> None:
    page = build_app(models)
    page.queue().launch(server_name=host, server_port=port, show_error=False,
                        allowed_paths=getattr(page, "pgat_allowed_paths", None))


def demo_models() -> list[str]:
    """[the demo checkpoint folder] when the README's main command has written it, else []."""
    return [DEFAULT_MODEL] if Path(DEFAULT_MODEL, "config.json").is_file() else []


def space_models() -> list[str]:
    """A Space's checkpoints: $PGAT_MODEL (and $PGAT_COMPARE), else the demo folder when it exists."""
    names = [os.environ[key] for key in ("PGAT_MODEL", "PGAT_COMPARE") if os.environ.get(key)]
    return names or demo_models()
