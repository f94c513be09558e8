"""Render a training output folder's model card (README.md) from pgat_hf/hub/templates/model_card.md.

    pgat-hf card --model outputs/pgat-demo [--repo-id ORG/NAME] [--out PATH] [--he-figure]

Everything on the card is read from files training wrote: config.json, model.safetensors (parameter
count), pgat_training_args.json (hyperparameters), pgat_run.json (base model and data, when
present), robustness_report.json (tables and model-index metrics) and *.png plots in the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from pgat_hf.atomic import write_text_atomic
from pgat_hf.evaluation.protocol import report_markdown
from pgat_hf.sam3_ops import INFERENCE_DEFAULTS, read_preprocessing

TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"  # package data: ships in the wheel
SAM_LICENCE = ("other", "sam-license", "https://huggingface.co/facebook/sam3/blob/main/LICENSE")
QUALITY_NAMES = {"all": "training-phrasing", "held_out": "held-out framing", "held_out_synonym": "held-out synonym"}
HYPERPARAMETERS = (  # (label, key in pgat_training_args.json)
    ("prompts per group K", "num_prompts"), ("groups per image G", "groups_per_image"),
    ("λ (group loss)", "lambda_group"), ("β (consistency)", "beta_consistency"), ("τ", "tau"),
    ("group_loss_mode", "group_loss_mode"), ("consistency_mode", "consistency_mode"),
    ("mask loss", "mask_loss"), ("mask loss weight", "mask_loss_weight"), ("dice loss weight", "dice_loss_weight"),
    ("presence loss weight", "presence_loss_weight"), ("BCE pos_weight", "bce_pos_weight"), ("tasks", "tasks"),
    ("frozen text encoder", "freeze_text_encoder"), ("optimizer", "optim"), ("learning rate", "learning_rate"),
    ("weight decay", "weight_decay"), ("scheduler", "lr_scheduler_type"), ("warm-up ratio", "warmup_ratio"),
    ("batch size per device", "per_device_train_batch_size"), ("max steps", "max_steps"),
    ("epochs", "num_train_epochs"), ("seed", "seed"),
)


def card_hyperparameters(args: dict) -> list[tuple[str, object]]:
    """(label, value) rows of pgat_training_args.json that apply to the run.

    Epochs are left out when max_steps bounds the run, BCE's pos_weight when the mask loss is focal.
    """
    def applies(key: str) -> bool:
        if key == "num_train_epochs":
            return args.get("max_steps", -1) <= 0
        if key == "bce_pos_weight":
            return args.get("mask_loss", "bce") == "bce"
        return True

    return [(label, args[key]) for label, key in HYPERPARAMETERS if key in args and applies(key)]


def source_info(config: str):
    """The converters' card information for a dataset config (kumar_* configs come from monuseg)."""
    from pgat_hf.data.converters.registry import SOURCES

    source = SOURCES.get("monuseg" if config.startswith("kumar") else config)
    return source.info if source else None


def read_json(folder: Path, name: str) -> dict | None:
    path = folder / name
    if not path.is_file():
        return None
    with open(path) as handle:
        return json.load(handle)


def count_parameters(folder: Path) -> int:
    """Sum of tensor sizes in model.safetensors, read from the header only."""
    total = 0
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        for name in weights.keys():
            shape = weights.get_slice(name).get_shape()
            size = 1
            for dim in shape:
                size *= dim
            total += size
    return total


def eval_results(report: dict, dataset_name: str, dataset_config: str | None) -> list[EvalResult]:
    """model-index entries: mean Dice per task × prompt quality from the robustness report."""
    results = []
    for task, by_quality in report["summary"]["dice"].items():
        for quality, value in by_quality.items():
            results.append(EvalResult(
                task_type="image-segmentation", dataset_type=dataset_name, dataset_name=dataset_name,
                dataset_config=dataset_config, dataset_split="test", metric_type="dice",
                metric_name=f"Dice {task} ({QUALITY_NAMES.get(quality, quality)} prompts)",
                metric_value=round(float(value), 4)))
    return results


def render_model_card(model_dir: str | os.PathLike, repo_id: str | None = None,
                      template_path: str | os.PathLike | None = None) -> ModelCard:
    """Build the card for a training output folder (see module docstring for what it reads)."""
    folder = Path(model_dir)
    config = read_json(folder, "config.json")
    if config is None or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} is not a checkpoint folder (needs config.json and model.safetensors)")
    template = Path(template_path) if template_path else TEMPLATE
    if not template.is_file():
        raise FileNotFoundError(f"model card template not found: {template} (pass --template)")
    args = read_json(folder, "pgat_training_args.json") or {}
    run = read_json(folder, "pgat_run.json") or {}
    report = read_json(folder, "robustness_report.json")
    inference = {**INFERENCE_DEFAULTS, **(config.get("pgat_inference") or {})}

    base_model = run.get("model_name_or_path")
    dataset_path = run.get("dataset_path", "pgat-synthetic")
    dataset_config = run.get("dataset_config", "synthetic")
    sources = run.get("dataset_configs") or [dataset_config]
    infos = [source_info(s) for s in sources]
    data_licences = [f"{i.title}: {i.licence_note.rstrip('.')}" if i else f"{s}: see the source dataset's terms"
                     for s, i in zip(sources, infos)]
    non_commercial = any(i and i.licence.startswith("cc-by-nc") for i in infos)
    if base_model:
        licence, licence_name, licence_link = SAM_LICENCE
        base_text = f"[{base_model}](https://huggingface.co/{base_model}) (fine-tuned)"
        licence_text = f"Weights derived from {base_model}: the SAM License applies ({licence_link})."
    else:
        licence, licence_name, licence_link = "apache-2.0", None, None
        base_text = "none: SAM3 architecture, random initial weights (pgat_hf's tiny demo configuration)"
        licence_text = "Trained from random weights: Apache-2.0, like pgat_hf."
    licence_text += " Training data: " + "; ".join(data_licences) + "."
    if non_commercial:
        licence_text += " Because of the non-commercial data licence, use these weights for non-commercial research only."

    name = repo_id.split("/")[-1] if repo_id else folder.resolve().name
    card_data = ModelCardData(
        model_name=name, base_model=base_model, license=licence, license_name=licence_name,
        license_link=licence_link, library_name="transformers", pipeline_tag="image-segmentation",
        tags=["pgat", "nuclei-segmentation", "histopathology", "clipseg" if config.get("model_type") == "clipseg" else "sam3",
              "text-guided-segmentation"],
        datasets=[dataset_path] if "/" in str(dataset_path) and not os.path.exists(dataset_path) else None,
        metrics=["dice"], eval_results=eval_results(report, str(dataset_path), dataset_config) if report else None,
    )
    if report:
        tables = report_markdown(report["summary"]).split("\n", 2)[2]  # drop the report's own title line
        evaluation_text = (f"Every prompt of every group evaluated on its own (one prompt, one mask) on the "
                           f"`{dataset_config}` test split of `{dataset_path}`.\n\n"
                           + tables.replace("## ", "### "))
    else:
        evaluation_text = "No robustness_report.json in the folder: run `pgat-hf eval` and regenerate the card."
    clipseg = config.get("model_type") == "clipseg"
    if clipseg:  # CLIPSeg: one logit map per prompt from its decoder, no mask source to choose
        mask_source_text = "CLIPSeg's decoder output (one logit map per prompt)"
        vision = config["vision_config"]
    else:
        mask_source_text = ("SAM3's `semantic_seg` head" if inference["mask_source"] == "semantic" else
                            f"the pixel-wise max over the top-{inference['mask_topk']} query masks ranked by score")
        vision = config["vision_config"]["backbone_config"]
    preprocessing = read_preprocessing(str(folder), int(vision.get("image_size") or 0))
    train_command = run.get("command") or "accelerate launch pgat_hf/train.py --config pgat_hf/recipes/demo.yaml"
    card = ModelCard.from_template(
        card_data, template_path=str(template), repo_id=repo_id or f"<your-org>/{name}", model_name=name,
        summary="Text-guided nuclei segmentation (all nuclei or one category, from a sentence) for H&E tiles.",
        base_model_text=base_text, num_parameters=f"{count_parameters(folder):,}",
        image_size=preprocessing["size"], image_mean=preprocessing["mean"],
        image_std=preprocessing["std"], mask_source_text=mask_source_text,
        threshold=inference["threshold"],
        postprocessing_text=postprocessing_text(inference),
        tokenizer_text=tokenizer_text(config, base_model), model_class=(
            "CLIPSegForImageSegmentation" if clipseg else "Sam3Model"),
        dataset_text=f"`{dataset_path}` (configs: {', '.join(sources)}), prompt groups in the pgat_hf schema.",
        hyperparameters=card_hyperparameters(args),
        train_command=train_command, evaluation_text=evaluation_text,
        plots=sorted(p.name for p in folder.glob("*.png")),
        limitations_text=limitations(base_model, report),
        licence_text=licence_text,
    )
    return card


def tokenizer_text(config: dict, base_model: str | None) -> str:
    if base_model:
        return "the base model's"
    if config.get("pgat_text_side") == "minilm-static":
        return ("all-MiniLM-L6-v2's WordPiece tokenizer (30,522 tokens: any English prompt, no `[UNK]`); the token "
                "embedding holds frozen static vectors distilled from MiniLM (pgat_hf docs/design.md §10.1)")
    return "word-level, trained on the prompt vocabulary (words outside it are `<unk>`)"


def postprocessing_text(inference: dict) -> str:
    """The clause after "foreground above probability T": the checkpoint's min_area / presence gate / windows."""
    text = ""
    if inference["min_area"] > 1:
        text += f", and connected components smaller than {inference['min_area']} pixels are dropped"
    if inference["presence_threshold"] > 0:
        text += f"; a prompt whose presence score is below {inference['presence_threshold']} gets an empty mask"
    if inference["tile_size"] > 0:
        text += (f". The pipeline segments an image larger than the {inference['tile_size']}-pixel training tiles "
                 f"in overlapping windows of that side (`tile_size=0`: one pass)")
    return text


def limitations(base_model: str | None, report: dict | None) -> str:
    notes = []
    if not base_model:
        notes.append("This checkpoint is the tiny demo model (random initial weights) trained on synthetic "
                     "H&E-like tiles only: it shows the method end to end. On real tissue it finds many nuclei "
                     "but merges touching ones, and its category prompts are not meaningful there.")
    if report:
        trained = {t: q.get("all") for t, q in report["summary"]["dice"].items()}
        for quality, what in (("held_out", "framings"), ("held_out_synonym", "category synonyms")):
            held_out = {t: q[quality] for t, q in report["summary"]["dice"].items() if quality in q}
            for task, value in held_out.items():
                if trained.get(task) is not None and value < trained[task] - 0.05:
                    notes.append(f"{task} Dice on {what} never seen in training ({value:.3f}) is below that on "
                                 f"training phrasings ({trained[task]:.3f}): check new wordings before relying on them.")
    notes += absent_category_notes(report)
    return "\n".join(f"- {note}" for note in notes)


def absent_category_notes(report: dict | None) -> list[str]:
    """What the records say about prompts naming a category the tile does not contain."""
    records = [r for r in (report or {}).get("records", []) if r["task"] == "T2" and r["quality"] in ("low", "medium", "high")]
    absent = [r["dice"] for r in records if not r["present"]]
    present = [r["dice"] for r in records if r["present"]]
    if not absent or not present:
        return []
    by_category = {}
    for record in records:
        if not record["present"]:
            by_category.setdefault(record["category"], []).append(record["dice"])
    worst = min(by_category, key=lambda c: sum(by_category[c]) / len(by_category[c]))
    worst_value = sum(by_category[worst]) / len(by_category[worst])
    return [f"Prompts naming a category that is absent from the tile should give an empty mask; they score "
            f"{sum(absent) / len(absent):.3f} Dice (1 = empty) against {sum(present) / len(present):.3f} for present "
            f"categories, worst for {worst} ({worst_value:.3f}): the model marks look-alike nuclei. Gating on "
            f"the presence score (`presence_threshold`) or on mask area is a possible remedy; check it on your data."]


def write_model_card(model_dir: str | os.PathLike, repo_id: str | None = None, out: str | None = None,
                     template_path: str | None = None) -> str:
    """Render and save the card (default: MODEL_DIR/README.md); returns the path."""
    card = render_model_card(model_dir, repo_id=repo_id, template_path=template_path)
    path = out or os.path.join(model_dir, "README.md")
    return write_text_atomic(path, str(card))
