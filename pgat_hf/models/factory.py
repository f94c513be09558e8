"""Build or load what training needs: the segmenter, its tokenizer and image preprocessing."""

from __future__ import annotations

import os

import torch
from transformers import AutoTokenizer, CLIPSegForImageSegmentation, Sam3Model
from transformers.utils import cached_file

from pgat_hf.models.backends.clipseg import CLIPSegBackend, load_clipseg
from pgat_hf.models.backends.sam3 import Sam3Backend, tiny_sam3_config
from pgat_hf.models.image_processing import NucleiImageProcessor
from pgat_hf.models.modeling import PromptGroupSegmenter
from pgat_hf.data.prompts import prompt_vocabulary
from pgat_hf.sam3_ops import INFERENCE_DEFAULTS, read_preprocessing
from pgat_hf.models.inference import inference_settings_from_args
from pgat_hf.models.tokenizer import train_word_tokenizer


TEXT_SIDES = ("minilm", "words")
STATIC_TEXT_SIDE = "minilm-static"  # config.pgat_text_side of a checkpoint with the frozen static table


def build_tiny_model(seed: int = 0, hidden_size: int = 32, image_size: int = 128, max_text_length: int = 32,
                     text_side: str = "minilm", text_hidden_size: int | None = None, **config_overrides):
    """Random-init tiny SAM3 and its tokenizer (docs/design.md §6).

    text_side "minilm": MiniLM's WordPiece tokenizer and its static token vectors, frozen, in the
    text encoder's token embedding (`models.text_side`; text width default 64, the table's).
    "words": a word-level tokenizer fitted to the prompt vocabulary, random embeddings, trained.
    """
    if text_side not in TEXT_SIDES:
        raise ValueError(f"text_side must be one of {TEXT_SIDES}, got {text_side!r}")
    if text_side == "minilm":
        from pgat_hf.models import text_side as static

        tokenizer = static.load_tokenizer(max_length=max_text_length)
        config = tiny_sam3_config(vocab_size=len(tokenizer), hidden_size=hidden_size, image_size=image_size,
                                  max_text_length=max_text_length, text_hidden_size=text_hidden_size or static.TABLE_DIMS,
                                  pad_token_id=static.PAD_ID, bos_token_id=static.CLS_ID,
                                  eos_token_id=static.SEP_ID, **config_overrides)
        config.pgat_text_side = STATIC_TEXT_SIDE
    else:
        tokenizer = train_word_tokenizer(prompt_vocabulary(), max_length=max_text_length)
        config = tiny_sam3_config(vocab_size=len(tokenizer), hidden_size=hidden_size, image_size=image_size,
                                  max_text_length=max_text_length, text_hidden_size=text_hidden_size,
                                  **config_overrides)
    torch.manual_seed(seed)  # same seed, same initial weights: recipes compared from one start
    model = Sam3Model(config)
    if text_side == "minilm":
        static.install_static_text_side(model)
    return model, tokenizer, NucleiImageProcessor(image_size=image_size)


def freeze_static_text_side(model) -> None:
    """A checkpoint built with the static table keeps it frozen when it is trained further."""
    if getattr(model.config, "pgat_text_side", None) == STATIC_TEXT_SIDE:
        model.text_encoder.text_model.embeddings.token_embedding.weight.requires_grad_(False)


def load_image_processor(model_name_or_path: str, image_size: int) -> NucleiImageProcessor:
    """The checkpoint's preprocessing (preprocessor_config.json of a folder or Hub repo); SAM3's defaults else."""
    return NucleiImageProcessor.from_settings(read_preprocessing(model_name_or_path, image_size))


def load_pretrained_model(model_name_or_path: str, dtype: torch.dtype | None = None, base_model: str | None = None):
    """A stock Sam3Model checkpoint (folder or Hub id, e.g. facebook/sam3) with its tokenizer.

    An adapter-only LoRA folder (adapter_config.json, no model.safetensors) is loaded onto its base
    (`base_model`, else the adapter's base_model_name_or_path) and merged, so callers get a stock model.
    """
    if is_adapter_only(model_name_or_path):
        model = load_merged_adapter(model_name_or_path, dtype=dtype, base_model=base_model)
    else:
        model = Sam3Model.from_pretrained(model_name_or_path, dtype=dtype)
    freeze_static_text_side(model)
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    image_size = int(model.config.vision_config.backbone_config.image_size)
    return model, tokenizer, load_image_processor(model_name_or_path, image_size)


def is_adapter_only(path: str) -> bool:
    return (os.path.isfile(os.path.join(path, "adapter_config.json"))
            and not os.path.isfile(os.path.join(path, "model.safetensors")))


def load_merged_adapter(adapter_dir: str, dtype: torch.dtype | None = None, base_model: str | None = None) -> Sam3Model:
    """Base Sam3Model + LoRA adapter folder -> stock Sam3Model with the adapter merged in."""
    import json

    from peft import PeftConfig, PeftModel

    base_path = base_model or PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
    if not base_path:
        raise ValueError(f"{adapter_dir} is an adapter-only checkpoint whose base model is unknown: pass base_model "
                         "(a stock Sam3Model folder or Hub id), or train with lora_save_merged=true")
    model = PeftModel.from_pretrained(Sam3Model.from_pretrained(base_path, dtype=dtype), adapter_dir).merge_and_unload()
    args_path = os.path.join(adapter_dir, "pgat_training_args.json")
    if os.path.isfile(args_path):  # the adapter has no config.json of its own: recover how it infers
        with open(args_path) as handle:
            args = json.load(handle)
        model.config.pgat_inference = inference_settings_from_args(args)
    return model


BACKENDS = ("sam3", "clipseg")


def checkpoint_backend(model_name_or_path: str) -> str:
    """"clipseg" when config.json says model_type clipseg, else "sam3" (adapter-only LoRA folders are SAM3)."""
    import json

    path = cached_file(model_name_or_path, "config.json", _raise_exceptions_for_missing_entries=False)
    if path is None:
        return "sam3"
    with open(path) as handle:
        return "clipseg" if json.load(handle).get("model_type") == "clipseg" else "sam3"


def make_segmenter(model, mask_source: str = "semantic", mask_topk: int = 5,
                   train_clip: bool = False) -> PromptGroupSegmenter:
    """Stock Sam3Model or CLIPSegForImageSegmentation -> segmenter (mask_source/topk: SAM3 only)."""
    if isinstance(model, CLIPSegForImageSegmentation):
        return PromptGroupSegmenter(CLIPSegBackend(model, train_clip=train_clip))
    return PromptGroupSegmenter(Sam3Backend(model, mask_source=mask_source, mask_topk=mask_topk))


def inference_settings(model: Sam3Model) -> dict:
    return {**INFERENCE_DEFAULTS, **(getattr(model.config, "pgat_inference", None) or {})}


def load_segmenter(model_name_or_path: str, dtype: torch.dtype | None = None, base_model: str | None = None):
    """Checkpoint folder or Hub id -> (segmenter in eval mode, tokenizer, image processor, settings)."""
    if checkpoint_backend(model_name_or_path) == "clipseg":
        model, tokenizer, image_processor = load_clipseg(model_name_or_path, dtype=dtype)
    else:
        model, tokenizer, image_processor = load_pretrained_model(model_name_or_path, dtype=dtype,
                                                                  base_model=base_model)
    settings = inference_settings(model)
    segmenter = make_segmenter(model, settings["mask_source"], settings["mask_topk"]).eval()
    return segmenter, tokenizer, image_processor, settings
