"""Build or load what training needs: the segmenter, its tokenizer and image preprocessing."""

from __future__ import annotations

import os

import torch
from transformers import AutoTokenizer, Sam3Model
from transformers.utils import cached_file

from .backends.sam3 import Sam3Backend, tiny_sam3_config
from .image_processing import CONFIG_NAME, NucleiImageProcessor
from .modeling import PromptGroupSegmenter
from .prompts import prompt_vocabulary
from .tokenizer import train_word_tokenizer


def build_tiny_model(seed: int = 0, hidden_size: int = 32, image_size: int = 128, max_text_length: int = 32,
                     **config_overrides):
    """Random-init tiny SAM3 + word-level tokenizer trained on the prompt vocabulary (DESIGN.md §6)."""
    tokenizer = train_word_tokenizer(prompt_vocabulary(), max_length=max_text_length)
    config = tiny_sam3_config(vocab_size=len(tokenizer), hidden_size=hidden_size, image_size=image_size,
                              max_text_length=max_text_length, **config_overrides)
    torch.manual_seed(seed)  # same seed, same initial weights: recipes compared from one start
    model = Sam3Model(config)
    return model, tokenizer, NucleiImageProcessor(image_size=image_size)


def load_image_processor(model_name_or_path: str, image_size: int) -> NucleiImageProcessor:
    """Read preprocessor_config.json from a folder or Hub repo; fall back to SAM3's defaults."""
    path = cached_file(model_name_or_path, CONFIG_NAME, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return NucleiImageProcessor(image_size=image_size)
    return NucleiImageProcessor.from_pretrained(os.path.dirname(path))


def load_pretrained_model(model_name_or_path: str, dtype: torch.dtype | None = None):
    """A stock Sam3Model checkpoint (folder or Hub id, e.g. facebook/sam3) with its tokenizer."""
    model = Sam3Model.from_pretrained(model_name_or_path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    image_size = int(model.config.vision_config.backbone_config.image_size)
    return model, tokenizer, load_image_processor(model_name_or_path, image_size)


def make_segmenter(model: Sam3Model, mask_source: str = "semantic", mask_topk: int = 5) -> PromptGroupSegmenter:
    return PromptGroupSegmenter(Sam3Backend(model, mask_source=mask_source, mask_topk=mask_topk))


# How a checkpoint turns logits into a mask. Training stores these in config.json under
# `pgat_inference` (an extra key that stock Sam3Config keeps and ignores), so the evaluator and the
# pipeline infer the way the model was trained; a plain SAM3 checkpoint gets the defaults.
INFERENCE_DEFAULTS = {"mask_source": "semantic", "mask_topk": 5, "max_text_length": 32, "threshold": 0.5}


def inference_settings(model: Sam3Model) -> dict:
    return {**INFERENCE_DEFAULTS, **(getattr(model.config, "pgat_inference", None) or {})}


def load_segmenter(model_name_or_path: str, dtype: torch.dtype | None = None):
    """Checkpoint folder or Hub id -> (segmenter in eval mode, tokenizer, image processor, settings)."""
    model, tokenizer, image_processor = load_pretrained_model(model_name_or_path, dtype=dtype)
    settings = inference_settings(model)
    segmenter = make_segmenter(model, settings["mask_source"], settings["mask_topk"]).eval()
    return segmenter, tokenizer, image_processor, settings
