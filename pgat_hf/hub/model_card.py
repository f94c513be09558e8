"""Render a training output folder's model card (README.md) from pgat_hf/hub/templates/model_card.md.

    pgat-hf card --model outputs/pgat-demo [--repo-id ORG/NAME] [--out PATH] [--he-figure]

Everything on the card is read from files training wrote: config.json, model.safetensors (parameter
count), pgat_training_args.json (hyperparameters), pgat_run.json (base model and data, when
present), robustness_report.json (tables and model-index metrics) and *.png plots in the folder.

A LoRA adapter saved alone (lora_save_merged=false) has no config.json or model.safetensors: its card
reads the base model from adapter_config.json, the parameter count from adapter_model.safetensors
and the inference settings from pgat_training_args.json, says how to load the adapter onto its
base, and never loads the base (it may be a Hub id such as facebook/sam3, out of reach offline).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from pgat_hf.atomic import write_text_atomic
from pgat_hf.evaluation.protocol import report_markdown
from pgat_hf.models.factory import is_adapter_only
from pgat_hf.models.inference import inference_settings_from_args
from pgat_hf.sam3_ops import INFERENCE_DEFAULTS, read_preprocessing

TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"  # package data: ships in the wheel
SAM_LICENCE = ("other", "sam-license", "https://huggingface.co/facebook/sam3/blob/main/LICENSE")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
QUALITY_NAMES = {"all": "training-phrasing", "held_out": "held-out framing", "held_out_synonym": "held-out synonym"}
HYPERPARAMETERS = (  # (label, key in pgat_training_args.json)
    ("prompts per group K", "num_prompts"), ("groups per image G", "groups_per_image"),
    ("λ (group loss)", "lambda_group"), ("β (consistency)", "beta_consistency"), ("τ", "tau"),
    ("group_loss_mode", "group_loss_mode"), ("consistency_mode", "consistency_mode"),
    ("mask loss", "mask_loss"), ("mask loss weight", "mask_loss_weight"), ("dice loss weight", "dice_loss_weight"),
    ("presence loss weight", "presence_loss_weight"), ("BCE pos_weight", "bce_pos_weight"), ("tasks", "tasks"),
    ("frozen text encoder", "freeze_text_encoder"), ("optimizer", "optim"), ("learning rate", "learning_rate"),
    ("weight decay", "weight_decay"), ("scheduler", "lr_scheduler_type"), ("warm-up steps (below 1: fraction)", "warmup_steps"),
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


def count_parameters(weights_path: Path) -> int:
    """Sum of tensor sizes in a safetensors file, read from the header only."""
    total = 0
    with safe_open(str(weights_path), framework="pt") as weights:
        for name in weights.keys():
            shape = weights.get_slice(name).get_shape()
            size = 1
            for dim in shape:
                size *= dim
            total += size
    return total


def is_adapter_folder(folder: str | os.PathLike) -> bool:
    """A LoRA adapter saved alone (lora_save_merged=false): adapter_config.json and its weights,
    no model.safetensors."""
    return is_adapter_only(str(folder)) and (Path(folder) / ADAPTER_WEIGHTS).is_file()


def adapter_base_model(folder: str | os.PathLike) -> str | None:
    """The base model an adapter folder names (adapter_config.json's base_model_name_or_path), or None."""
    return (read_json(Path(folder), "adapter_config.json") or {}).get("base_model_name_or_path") or None


def read_checkpoint(folder: Path, args: dict, run: dict) -> dict:
    """What the card needs from the weights' side of the folder: a full checkpoint's config.json, or for
    an adapter folder (no config.json) adapter_config.json plus the training arguments.

    Returns {"adapter", "config", "base_model", "inference", "num_parameters", "image_size"}.
    """
    config = read_json(folder, "config.json")
    if config is not None and (folder / "model.safetensors").is_file():
        vision = config["vision_config"] if config.get("model_type") == "clipseg" else \
            config["vision_config"]["backbone_config"]
        return {"adapter": False, "config": config, "base_model": run.get("model_name_or_path"),
                "inference": {**INFERENCE_DEFAULTS, **(config.get("pgat_inference") or {})},
                "num_parameters": count_parameters(folder / "model.safetensors"),
                "image_size": int(vision.get("image_size") or 0)}
    if is_adapter_folder(folder):  # the base is named, never loaded: it may be a Hub id out of reach
        base_model = adapter_base_model(folder) or run.get("model_name_or_path")
        return {"adapter": True, "config": {}, "base_model": base_model,
                "inference": inference_settings_from_args(args),
                "num_parameters": count_parameters(folder / ADAPTER_WEIGHTS), "image_size": 0}
    raise FileNotFoundError(f"{folder} is not a checkpoint folder (needs config.json and model.safetensors, or a "
                            f"LoRA adapter's adapter_config.json and {ADAPTER_WEIGHTS})")


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
    template = Path(template_path) if template_path else TEMPLATE
    args = read_json(folder, "pgat_training_args.json") or {}
    run = read_json(folder, "pgat_run.json") or {}
    checkpoint = read_checkpoint(folder, args, run)
    if not template.is_file():
        raise FileNotFoundError(f"model card template not found: {template} (pass --template)")
    report = read_json(folder, "robustness_report.json")
    config, inference, base_model = checkpoint["config"], checkpoint["inference"], checkpoint["base_model"]
    adapter = checkpoint["adapter"]

    dataset_path = run.get("dataset_path", "pgat-synthetic")
    dataset_config = run.get("dataset_config", "synthetic")
    sources = run.get("dataset_configs") or [dataset_config]
    licence, licence_name, licence_link, licence_text = licence_terms(base_model, adapter, sources)
    if adapter:
        base_text = (f"{base_model_markdown(base_model) if base_model else 'not named in adapter_config.json'} "
                     "(this folder is a LoRA adapter on it; the base weights are not included)")
    elif base_model:
        base_text = f"{base_model_markdown(base_model)} (fine-tuned)"
    else:
        base_text = "none: SAM3 architecture, random initial weights (pgat_hf's tiny demo configuration)"

    name = repo_id.split("/")[-1] if repo_id else folder.resolve().name
    clipseg = config.get("model_type") == "clipseg"
    card_data = ModelCardData(
        model_name=name, base_model=base_model, license=licence, license_name=licence_name,
        license_link=licence_link, library_name="peft" if adapter else "transformers",
        pipeline_tag="image-segmentation",
        tags=["pgat", "nuclei-segmentation", "histopathology", "clipseg" if clipseg else "sam3",
              "text-guided-segmentation"] + (["lora", "peft"] if adapter else []),
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
    if clipseg:  # CLIPSeg: one logit map per prompt from its decoder, no mask source to choose
        mask_source_text = "CLIPSeg's decoder output (one logit map per prompt)"
    else:
        mask_source_text = ("SAM3's `semantic_seg` head" if inference["mask_source"] == "semantic" else
                            f"the pixel-wise max over the top-{inference['mask_topk']} query masks ranked by score")
    preprocessing = read_preprocessing(str(folder), checkpoint["image_size"])
    num_parameters = f"{checkpoint['num_parameters']:,}"
    if adapter:
        num_parameters += " in the adapter (LoRA matrices and the heads trained in full); the base model's are not here"
    train_command = run.get("command") or "accelerate launch pgat_hf/train.py --config pgat_hf/recipes/demo.yaml"
    template_text = template.read_text(encoding="utf-8")
    card = ModelCard.from_template(
        card_data, template_str=template_text, adapter=adapter,
        repo_id=repo_id or f"<your-org>/{name}", model_name=name,
        summary="Text-guided nuclei segmentation (all nuclei or one category, from a sentence) for H&E tiles.",
        base_model_text=base_text, num_parameters=num_parameters,
        adapter_base=base_model or "BASE_MODEL", adapter_weights=ADAPTER_WEIGHTS,
        image_size=preprocessing["size"], image_mean=preprocessing["mean"],
        image_std=preprocessing["std"], mask_source_text=mask_source_text,
        threshold=inference["threshold"],
        postprocessing_text=postprocessing_text(inference),
        tokenizer_text="the base model's" if adapter else tokenizer_text(config, base_model), model_class=(
            "CLIPSegForImageSegmentation" if clipseg else "Sam3Model"),
        dataset_text=f"`{dataset_path}` (configs: {', '.join(sources)}), prompt groups in the pgat_hf schema.",
        hyperparameters=card_hyperparameters(args),
        train_command=train_command, evaluation_text=evaluation_text,
        plots=sorted(p.name for p in folder.glob("*.png")),
        limitations_text=limitations(random_init=not (base_model or adapter), report=report),
        licence_text=licence_text,
    )
    return card


def base_model_markdown(base_model: str) -> str:
    """A Hub id as a link to its page; a local folder as code (a link would point nowhere)."""
    if os.path.exists(base_model):
        return f"`{base_model}`"
    return f"[{base_model}](https://huggingface.co/{base_model})"


def licence_terms(base_model: str | None, adapter: bool, sources: list[str]) -> tuple:
    """(licence, licence_name, licence_link, text): the card's licence metadata and its Licences section."""
    infos = [source_info(s) for s in sources]
    data_licences = [f"{i.title}: {i.licence_note.rstrip('.')}" if i else f"{s}: see the source dataset's terms"
                     for s, i in zip(sources, infos)]
    if base_model:
        licence, licence_name, licence_link = SAM_LICENCE
        what = "The adapter applies to" if adapter else "Weights derived from"
        text = f"{what} {base_model}: the SAM License applies ({licence_link})."
    elif adapter:  # base unknown: so is its licence, which governs the adapted weights
        licence, licence_name, licence_link = None, None, None
        text = ("The adapter's base model is not named in adapter_config.json: its licence applies to the "
                "adapted weights.")
    else:
        licence, licence_name, licence_link = "apache-2.0", None, None
        text = "Trained from random weights: Apache-2.0, like pgat_hf."
    text += " Training data: " + "; ".join(data_licences) + "."
    if any(i and i.licence.startswith("cc-by-nc") for i in infos):
        text += " Because of the non-commercial data licence, use these weights for non-commercial research only."
    return licence, licence_name, licence_link, text


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


def limitations(random_init: bool, report: dict | None) -> str:
    notes = []
    if random_init:
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


# An absent category's Dice is 1 for an empty mask and 0 for any marked pixel, so a category's mean
# is the share of its absent-category prompts left empty. Below 0.99, more than 1 in 100 of them
# marks something: a pattern worth a warning, not the odd stray prediction.
MARKS_ABSENT_BELOW = 0.99


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
    scores = (f"{sum(absent) / len(absent):.3f} Dice (1 = empty) against {sum(present) / len(present):.3f} "
              f"for present categories")
    if worst_value >= MARKS_ABSENT_BELOW:
        return [f"Prompts naming a category that is absent from the tile get an empty mask: they score {scores}."]
    return [f"Prompts naming a category that is absent from the tile should give an empty mask; they score "
            f"{scores}, worst for {worst} ({worst_value:.3f}): the model marks look-alike nuclei. Gating on "
            f"the presence score (`presence_threshold`) or on mask area is a possible remedy; check it on your data."]


def write_model_card(model_dir: str | os.PathLike, repo_id: str | None = None, out: str | None = None,
                     template_path: str | None = None) -> str:
    """Render and save the card (default: MODEL_DIR/README.md); returns the path."""
    card = render_model_card(model_dir, repo_id=repo_id, template_path=template_path)
    path = out or os.path.join(model_dir, "README.md")
    return write_text_atomic(path, str(card))
