"""Inference as a user gets it: one prompt, one mask; shared by the pipeline and the evaluator.

The image is encoded once and its prompts are decoded against the shared features in chunks.
Each prompt's mask is sigmoid(mask logits) upsampled to the image size, > threshold, without
connected components under the checkpoint's `min_area` pixels, and empty when the prompt's presence
score is below `presence_threshold`; nothing is ensembled across prompts.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pgat_hf.sam3_ops import INFERENCE_DEFAULTS, mask_to_instances, prompt_instances, upsample_probability
from pgat_hf.models.tokenizer import tokenize_prompts

__all__ = ["inference_settings_from_args", "mask_to_instances", "predict_instances", "predict_logits", "predict_masks",
           "predict_probabilities"]

# pgat_inference setting -> the training argument that sets it, where the names differ.
SETTING_ARGUMENTS = {"min_area": "inference_min_area", "presence_threshold": "inference_presence_threshold",
                     "tile_size": "inference_tile_size"}


def inference_settings_from_args(args: dict) -> dict:
    """config.json's pgat_inference from training arguments (vars(args) or pgat_training_args.json)."""
    settings = {}
    for key, default in INFERENCE_DEFAULTS.items():
        value = args.get(SETTING_ARGUMENTS.get(key, key))
        settings[key] = default if value is None else value
    return settings


@torch.no_grad()
def predict_logits(segmenter, image_processor, tokenizer, image: Image.Image, prompts: list[str],
                   max_text_length: int = 32, prompt_batch_size: int = 16) -> tuple[torch.Tensor, np.ndarray]:
    """One image, P prompts -> mask logits [P, h, w] at the model's resolution, presence probabilities [P]."""
    device = next(segmenter.parameters()).device
    pixel_values = image_processor.preprocess(image)[None].to(device=device, dtype=segmenter.model.dtype)
    vision = segmenter.backend.encode_image(pixel_values)  # once for all P prompts
    logits, presence = [], []
    for start in range(0, len(prompts), prompt_batch_size):
        chunk = prompts[start:start + prompt_batch_size]
        tokens = tokenize_prompts(tokenizer, chunk, max_text_length).to(device)
        outputs = segmenter.decode_prompts(vision, tokens["input_ids"][None], tokens["attention_mask"][None])
        logits.append(outputs.mask_logits[0].float().cpu())  # [1, P, h, w] -> [P, h, w]
        presence.append(outputs.presence_logits[0].float().sigmoid().cpu().numpy())
    return torch.cat(logits), np.concatenate(presence)


def predict_probabilities(segmenter, image_processor, tokenizer, image: Image.Image, prompts: list[str],
                          max_text_length: int = 32, prompt_batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """One image, P prompts -> mask probabilities [P, H, W] float32 at the image's size, presence [P]."""
    logits, presence = predict_logits(segmenter, image_processor, tokenizer, image, prompts, max_text_length,
                                      prompt_batch_size)
    return np.stack([upsample_probability(prompt_logits, image.size) for prompt_logits in logits]), presence


def predict_instances(segmenter, image_processor, tokenizer, image: Image.Image, prompts: list[str],
                      max_text_length: int = 32, threshold: float = 0.5, min_area: int = 0,
                      presence_threshold: float = 0.0, prompt_batch_size: int = 16):
    """One image, P prompts -> per prompt (probability [H, W], instance map [H, W]) at the image's
    size, and presence probabilities [P]; post-processing is the pipeline's (sam3_ops)."""
    logits, presence = predict_logits(segmenter, image_processor, tokenizer, image, prompts, max_text_length,
                                      prompt_batch_size)
    results = []
    for prompt_logits, score in zip(logits, presence):
        probability = upsample_probability(prompt_logits, image.size)
        results.append((probability, prompt_instances(probability, float(score), threshold, presence_threshold,
                                                      min_area)))
    return results, presence


def predict_masks(segmenter, image_processor, tokenizer, image: Image.Image, prompts: list[str],
                  max_text_length: int = 32, threshold: float = 0.5, min_area: int = 0,
                  presence_threshold: float = 0.0, prompt_batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """One image, P prompts -> masks [P, H, W] bool at the image's size, presence probabilities [P].

    Components of a mask under `min_area` pixels are dropped (specks smaller than any nucleus);
    a prompt whose presence probability is below `presence_threshold` gets an empty mask.
    """
    results, presence = predict_instances(segmenter, image_processor, tokenizer, image, prompts, max_text_length,
                                          threshold, min_area, presence_threshold, prompt_batch_size)
    return np.stack([label_map > 0 for _, label_map in results]), presence
