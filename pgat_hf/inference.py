"""Inference as a user gets it: one prompt, one mask; shared by the pipeline and the evaluator.

The image is encoded once and its prompts are decoded against the shared features in chunks.
Each prompt's mask is sigmoid(mask logits) upsampled to the image size, > threshold, without
connected components under the checkpoint's `min_area` pixels, and empty when the prompt's presence
score is below `presence_threshold`; nothing is ensembled across prompts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .sam3_ops import drop_small_components, mask_to_instances
from .tokenizer import tokenize_prompts

__all__ = ["mask_to_instances", "predict_masks", "predict_probabilities"]


@torch.no_grad()
def predict_probabilities(segmenter, image_processor, tokenizer, image: Image.Image, prompts: list[str],
                          max_text_length: int = 32, prompt_batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """One image, P prompts -> mask probabilities [P, H, W] float32 at the image's size, presence [P]."""
    device = next(segmenter.parameters()).device
    width, height = image.size
    pixel_values = image_processor.preprocess(image)[None].to(device=device, dtype=segmenter.model.dtype)
    vision = segmenter.backend.encode_image(pixel_values)  # once for all P prompts
    probabilities, presence = [], []
    for start in range(0, len(prompts), prompt_batch_size):
        chunk = prompts[start:start + prompt_batch_size]
        tokens = tokenize_prompts(tokenizer, chunk, max_text_length).to(device)
        outputs = segmenter.decode_prompts(vision, tokens["input_ids"][None], tokens["attention_mask"][None])
        mask_logits = F.interpolate(outputs.mask_logits.float(), size=(height, width), mode="bilinear",
                                    align_corners=False)[0]  # [1, P, h, w] -> [P, H, W]
        probabilities.append(mask_logits.sigmoid().cpu().numpy())
        presence.append(outputs.presence_logits[0].float().sigmoid().cpu().numpy())
    return np.concatenate(probabilities), np.concatenate(presence)


def predict_masks(segmenter, image_processor, tokenizer, image: Image.Image, prompts: list[str],
                  max_text_length: int = 32, threshold: float = 0.5, min_area: int = 0,
                  presence_threshold: float = 0.0, prompt_batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """One image, P prompts -> masks [P, H, W] bool at the image's size, presence probabilities [P].

    Components of a mask under `min_area` pixels are dropped (specks smaller than any nucleus);
    a prompt whose presence probability is below `presence_threshold` gets an empty mask.
    """
    probabilities, presence = predict_probabilities(segmenter, image_processor, tokenizer, image, prompts,
                                                    max_text_length, prompt_batch_size)
    masks = probabilities > threshold
    if min_area > 1:  # np.stack needs at least one prompt
        masks = np.stack([drop_small_components(mask, min_area) for mask in masks])
    masks[presence < presence_threshold] = False
    return masks, presence
