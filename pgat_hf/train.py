"""Train a text-guided nuclei segmenter with prompt group-aware training.

    accelerate launch pgat_hf/train.py --config pgat_hf/recipes/demo.yaml [--output_dir DIR] [--key value ...]

Recipe keys are the dataclass fields below and PGATTrainingArguments; command-line flags override
the recipe. With no --model_name_or_path a tiny SAM3-architecture model is built from random
weights (the embedded default); with --model_name_or_path facebook/sam3 the real model is tuned.
LoRA: --use_peft true [--lora_target vision,detr_decoder] (saved merged into a stock checkpoint
unless --lora_save_merged false). Other launchers: accelerate_configs/*.yaml (DDP, FSDP, DeepSpeed).
Resume: --resume_from_checkpoint DIR, or `last` / `auto` for the newest complete checkpoint in
--output_dir (a folder whose writing a kill interrupted is removed, never resumed).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from dataclasses import dataclass, field

if __package__ in (None, ""):  # `accelerate launch pgat_hf/train.py` runs this file as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml
from datasets import concatenate_datasets
from transformers import HfArgumentParser, set_seed

from pgat_hf.atomic import write_json_atomic, write_text_atomic
from pgat_hf.training.checkpoints import resolve_resume
from pgat_hf.training.collator import PromptGroupCollator
from pgat_hf.data.dataset import load_prompt_dataset, validate_training_rows
from pgat_hf.evaluation.protocol import report_markdown
from pgat_hf.models.backends.clipseg import build_tiny_clipseg, load_clipseg
from pgat_hf.models.factory import BACKENDS, build_tiny_model, load_pretrained_model, make_segmenter
from pgat_hf.data.synthetic import ensure_synthetic_dataset
from pgat_hf.training.trainer import PGATTrainer
from pgat_hf.training.arguments import PGATTrainingArguments
from pgat_hf.data.vocabulary import load_vocabulary

logger = logging.getLogger("pgat_hf.train")


@dataclass
class ModelArguments:
    backend: str = field(
        default="sam3", metadata={"help": "Model family: sam3 (Sam3Model) or clipseg (CLIPSegForImageSegmentation, "
                                          "e.g. CIDAS/clipseg-rd64-refined, the paper's CLIPSeg baseline)."}
    )
    clipseg_train_clip: bool = field(
        default=False, metadata={"help": "CLIPSeg: fine-tune CLIP too. Its stock forward freezes CLIP and trains the "
                                         "decoder only; a tiny random CLIPSeg needs CLIP trained."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Stock Sam3Model folder or Hub id (facebook/sam3); empty: tiny random model."}
    )
    tiny_hidden_size: int = field(default=32, metadata={"help": "Tiny model: hidden size (multiple of 8)."})
    tiny_image_size: int = field(default=128, metadata={"help": "Tiny model: input size; must match the tiles."})
    tiny_vision_layers: int = field(default=2, metadata={"help": "Tiny model: ViT layers."})
    tiny_vision_hidden_size: int | None = field(
        default=None, metadata={"help": "Tiny SAM3: ViT width (default: tiny_hidden_size). The ViT runs once per "
                                        "image, the decoder G·K times, so a wider ViT costs little."}
    )
    tiny_patch_size: int = field(
        default=8, metadata={"help": "Tiny SAM3: ViT patch size, 8 or 4. The decoder stays at image/2 either way; "
                                     "4 gives the ViT 4x the tokens and costs up to 16 percent more per step (docs/experiments.md)."}
    )
    tiny_text_layers: int = field(
        default=1, metadata={"help": "Tiny SAM3: CLIP text encoder layers over the token vectors (0: the frozen "
                                     "vectors reach SAM3's text projection through the final layer norm alone)."}
    )
    model_seed: int = field(default=0, metadata={"help": "Seed of the tiny model's random initial weights."})
    text_side: str = field(
        default="minilm", metadata={"help": "Tiny SAM3's text input: minilm (MiniLM's tokenizer and static token "
                                            "vectors, frozen: reads any English word) or words (a word list fitted to "
                                            "the prompt vocabulary, random embeddings)."}
    )
    tiny_text_hidden_size: int | None = field(
        default=None, metadata={"help": "Tiny SAM3: text encoder width (default: 64 with minilm, the static table's "
                                        "width; tiny_hidden_size with words)."}
    )

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")


@dataclass
class DataArguments:
    dataset_path: str = field(
        default="data/pgat-synthetic", metadata={"help": "Dataset folder or Hub repo in the pgat_hf schema."}
    )
    dataset_config: str = field(
        default="synthetic", metadata={"help": "Config (source) name inside the dataset; a comma list (pannuke,consep) "
                                               "trains on their splits together."}
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str = field(default="test", metadata={"help": "Split for the final robustness report."})
    validation_split: str = field(
        default="validation", metadata={"help": "Split for evaluations during training (eval_strategy); the eval "
                                                "split when the dataset has no such split."}
    )
    synthetic_num_train: int = field(default=400, metadata={"help": "Synthetic tiles to generate for training."})
    synthetic_num_test: int = field(default=64, metadata={"help": "Held-out synthetic test tiles to generate."})
    synthetic_num_validation: int = field(default=0, metadata={"help": "Synthetic validation tiles to generate."})
    prompts_file: str | None = field(
        default=None, metadata={"help": "Prompt vocabulary YAML for the synthetic set (default: the shipped one, "
                                        "pgat_hf/data/vocabularies/default.yaml)."}
    )
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of the synthetic generator."})
    synthetic_image_size: int = field(default=128, metadata={"help": "Side of the generated synthetic tiles."})
    max_train_samples: int = field(default=0, metadata={"help": "Use at most this many training rows (0: all)."})
    report_max_images: int = field(default=0, metadata={"help": "Final report on at most this many images (0: all)."})


def mapping_to_argv(mapping: dict) -> list[str]:
    """{'key': value} -> ['--key', 'value', ...]; lists expand, booleans become true/false."""
    argv = []
    for key, value in mapping.items():
        if isinstance(value, list):
            argv += [f"--{key}", *map(str, value)]
        elif isinstance(value, bool):
            argv += [f"--{key}", "true" if value else "false"]
        elif value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def make_parser() -> HfArgumentParser:
    # allow_abbrev=False: `--num_prompt 2` is an error, not silently `--num_prompts 2`.
    return HfArgumentParser((ModelArguments, DataArguments, PGATTrainingArguments), allow_abbrev=False)


def known_keys(parser: HfArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions if action.option_strings}


def recipe_to_argv(path: str, known: set[str] | None = None) -> list[str]:
    """YAML recipe -> ['--key', 'value', ...] so that later command-line flags win.

    A key that is no argument stops with an error naming the file and the closest argument.
    """
    import difflib

    if not os.path.isfile(path):
        raise FileNotFoundError(f"recipe not found: {path}")
    with open(path) as handle:
        recipe = yaml.safe_load(handle) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe {path} must be a YAML mapping of argument names to values")
    for key in recipe if known is not None else ():
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{path}: unknown recipe key {key!r}{hint}")
    return mapping_to_argv(recipe)


def parse_args(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 == len(argv):
            raise ValueError("--config needs a recipe file, e.g. --config pgat_hf/recipes/demo.yaml")
        argv = recipe_to_argv(argv[at + 1], known_keys(parser)) + argv[:at] + argv[at + 2:]
    *parsed, leftover = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if leftover:
        raise ValueError(unknown_flags_message(leftover, known_keys(parser)))
    return tuple(parsed)


def unknown_flags_message(leftover: list[str], known: set[str]) -> str:
    """"unknown flag --num_prompt (did you mean --num_prompts?)" for every flag the parser left over."""
    import difflib

    notes = []
    for flag in (item for item in leftover if item.startswith("--")):
        close = difflib.get_close_matches(flag[2:].split("=")[0], sorted(known), n=1)
        notes.append(f"{flag}" + (f" (did you mean --{close[0]}?)" if close else ""))
    return "unknown flag " + ", ".join(notes) if notes else f"unexpected arguments {leftover}"


def dataset_configs(data_args: DataArguments) -> list[str]:
    """`dataset_config` as a list: "pannuke,consep" -> ["pannuke", "consep"]."""
    return [c.strip() for c in data_args.dataset_config.split(",") if c.strip()]


def load_splits(data_args: DataArguments, training_args: PGATTrainingArguments):
    """(train, validation, test) splits; validation is the test split when the dataset has none."""
    # The main process generates the embedded default if absent; the others wait, then read it.
    with training_args.main_process_first(desc="load dataset"):
        if data_args.dataset_config == "synthetic":
            vocabulary = load_vocabulary(data_args.prompts_file) if data_args.prompts_file else None
            ensure_synthetic_dataset(data_args.dataset_path, num_train=data_args.synthetic_num_train,
                                     num_test=data_args.synthetic_num_test,
                                     num_validation=data_args.synthetic_num_validation, seed=data_args.synthetic_seed,
                                     image_size=data_args.synthetic_image_size, vocabulary=vocabulary)
        loaded = {config: load_config(data_args.dataset_path, config) for config in dataset_configs(data_args)}
    for config, dataset in loaded.items():
        for split in (data_args.train_split, data_args.eval_split):
            if split not in dataset:
                raise ValueError(f"{data_args.dataset_path} ({config}) has no split {split!r}; splits: {list(dataset)}")
    train = concatenate_datasets([d[data_args.train_split] for d in loaded.values()])
    test = concatenate_datasets([d[data_args.eval_split] for d in loaded.values()])
    # Each config's own validation split, or its test split where it has none (said, since settings
    # chosen on those evaluations are then chosen on the tiles the final report scores).
    without = [config for config, d in loaded.items() if data_args.validation_split not in d]
    if without and training_args.eval_strategy != "no":
        logger.warning(f"{', '.join(without)}: no {data_args.validation_split!r} split, so the evaluations during "
                       f"training run on {data_args.eval_split!r}, the split the final report scores; do not choose "
                       "settings on them (PanNuke's validation split is fold 2)")
    validation = concatenate_datasets([d[data_args.validation_split] if data_args.validation_split in d
                                       else d[data_args.eval_split] for d in loaded.values()])
    if data_args.max_train_samples:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    validate_training_rows(train, tuple(training_args.tasks), where=f"{data_args.dataset_path} {data_args.train_split}")
    return train, validation, test


def load_config(path: str, config: str):
    """One config of a local dataset folder, or of a Hub dataset when no such folder exists."""
    if os.path.exists(path):
        return load_prompt_dataset(path, config)
    try:
        return load_prompt_dataset(path, config)
    except Exception as error:  # noqa: BLE001 - offline, unknown repo, no access: one message for all
        raise FileNotFoundError(
            f"dataset {path}: no such folder, and the Hub did not serve it ({type(error).__name__}); build it with "
            f"`python dataset_scripts/build.py --source ... --out {path}` or pass --dataset_path") from error


def build_model(model_args: ModelArguments, training_args: PGATTrainingArguments):
    if model_args.backend == "clipseg":
        if training_args.use_peft:
            raise ValueError("LoRA presets name SAM3 modules; train CLIPSeg without use_peft")
        if model_args.model_name_or_path:
            model, tokenizer, image_processor = load_clipseg(model_args.model_name_or_path)
        else:
            model, tokenizer, image_processor = build_tiny_clipseg(
                seed=model_args.model_seed, image_size=model_args.tiny_image_size,
                hidden_size=model_args.tiny_hidden_size, vision_layers=model_args.tiny_vision_layers,
                max_text_length=training_args.max_text_length,
            )
        return make_segmenter(model, train_clip=model_args.clipseg_train_clip), tokenizer, image_processor
    if model_args.model_name_or_path:
        model, tokenizer, image_processor = load_pretrained_model(model_args.model_name_or_path)
    else:
        model, tokenizer, image_processor = build_tiny_model(
            seed=model_args.model_seed, hidden_size=model_args.tiny_hidden_size,
            image_size=model_args.tiny_image_size, vision_layers=model_args.tiny_vision_layers,
            vision_hidden_size=model_args.tiny_vision_hidden_size, patch_size=model_args.tiny_patch_size,
            max_text_length=training_args.max_text_length, text_side=model_args.text_side,
            text_hidden_size=model_args.tiny_text_hidden_size, text_layers=model_args.tiny_text_layers,
        )
    segmenter = make_segmenter(model, training_args.mask_source, training_args.mask_topk)
    return segmenter, tokenizer, image_processor


def write_report(trainer: PGATTrainer, output_dir: str, dataset, max_images: int, vocabulary=None) -> str:
    """Evaluate every prompt of the held-out split; write robustness_report.{json,md}; return markdown.

    With the vocabulary the prompts came from, the report adds T2 Dice per held-out synonym."""
    from pgat_hf.evaluation.synonyms import synonym_dice, synonyms_markdown

    trainer.args.eval_max_images = max_images
    trainer.evaluate(eval_dataset=dataset, metric_key_prefix="test")
    result = trainer.last_robustness
    markdown = report_markdown(result["summary"], title=f"Prompt-robustness report ({len(dataset)} held-out tiles)")
    if vocabulary is not None:
        by_synonym = synonym_dice(result["records"], vocabulary)
        result["held_out_synonyms"] = {f"{c}/{s}": dice for (c, s), dice in by_synonym.items()}
        table = synonyms_markdown({"Dice": by_synonym}, title="T2 Dice by held-out synonym (mean over its prompts)")
        markdown += "\n" + table if table else ""
    if trainer.is_world_process_zero():
        write_json_atomic(os.path.join(output_dir, "robustness_report.json"), result)
        write_text_atomic(os.path.join(output_dir, "robustness_report.md"), markdown)
    return markdown


def report_vocabulary(data_args: DataArguments):
    """The prompt vocabulary of the evaluated dataset config (its saved prompts.yaml), or None."""
    from pgat_hf.evaluation.synonyms import training_vocabulary

    return training_vocabulary(data_args.dataset_path, dataset_configs(data_args))


def write_run_files(trainer: PGATTrainer, model_args, data_args, argv: list[str]) -> None:
    """pgat_run.json (what the card and `pgat-hf eval` read: base model, data, command), the
    Dice-per-quality plot and the model card, beside the checkpoint."""
    from pgat_hf.hub.model_card import write_model_card
    from pgat_hf.evaluation.plots import dice_by_quality

    output_dir = trainer.args.output_dir
    run = {
        "model_name_or_path": model_args.model_name_or_path, "backend": model_args.backend,
        "dataset_path": data_args.dataset_path, "dataset_config": data_args.dataset_config,
        "dataset_configs": dataset_configs(data_args), "train_split": data_args.train_split,
        "eval_split": data_args.eval_split, "train_rows": len(trainer.train_dataset),
        "global_steps": trainer.state.global_step,
        "command": "accelerate launch pgat_hf/train.py " + " ".join(shlex.quote(a) for a in argv),
    }
    write_json_atomic(os.path.join(output_dir, "pgat_run.json"), run, indent=2)
    summary = trainer.last_robustness["summary"]
    dice_by_quality({os.path.basename(os.path.normpath(output_dir)): summary["dice"]},
                    os.path.join(output_dir, "dice_by_quality.png"))
    write_model_card(output_dir)


def main(argv: list[str] | None = None) -> PGATTrainer:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        model_args, data_args, training_args = parse_args(argv)
    except (FileNotFoundError, ValueError) as error:  # a bad recipe or flag: one line, no traceback
        raise SystemExit(f"train.py: error: {error}") from error
    set_seed(training_args.seed)
    try:
        train_dataset, validation_dataset, eval_dataset = load_splits(data_args, training_args)
    except (FileNotFoundError, ValueError) as error:  # no folder, no config or split, a bad row: one line
        raise SystemExit(f"train.py: error: {error}") from error
    segmenter, tokenizer, image_processor = build_model(model_args, training_args)
    collator = PromptGroupCollator(
        tokenizer=tokenizer, image_processor=image_processor, num_prompts=training_args.num_prompts,
        groups_per_image=training_args.groups_per_image, tasks=tuple(training_args.tasks),
        seed=training_args.prompt_seed, max_text_length=training_args.max_text_length, augment=training_args.augment,
    )
    trainer = PGATTrainer(
        model=segmenter, args=training_args, train_dataset=train_dataset, eval_dataset=validation_dataset,
        data_collator=collator, processing_class=tokenizer, image_processor=image_processor,
    )
    with training_args.main_process_first(desc="find the checkpoint to resume"):  # one process removes, all read
        resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json at the root: the validation curve that `pgat-hf compare` plots
    markdown = write_report(trainer, training_args.output_dir, eval_dataset, data_args.report_max_images,
                            vocabulary=report_vocabulary(data_args))
    if trainer.is_world_process_zero():
        write_run_files(trainer, model_args, data_args, argv)
        print(markdown)
    return trainer


if __name__ == "__main__":
    main()
