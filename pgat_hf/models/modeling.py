"""PromptGroupSegmenter: one image encoding, G groups x K prompts decoded against it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from pgat_hf.models.backends.clipseg import CLIPSegBackend
from pgat_hf.models.backends.sam3 import Sam3Backend


@dataclass
class PromptGroupOutput(ModelOutput):
    """mask_logits [B, G, K, h, w]; presence_logits [B, G, K]."""

    mask_logits: torch.Tensor | None = None
    presence_logits: torch.Tensor | None = None


class PromptGroupSegmenter(torch.nn.Module):
    """Runs a text-conditioned segmenter on prompt groups with the image encoded once.

    The trainable weights all live in `backend.model`, a stock model (`Sam3Model` or
    `CLIPSegForImageSegmentation`), so the checkpoint is that model's `save_pretrained` output and
    loads without pgat_hf. A backend provides `encode_image(pixel_values [B, 3, S, S])`,
    `repeat_features(features, repeats)` (image-major), `decode(features [N], input_ids [N, L],
    attention_mask [N, L]) -> (mask_logits [N, h, w], presence_logits [N])`, `full_forward` (the
    unshared reference) and `has_presence_head`.
    """

    def __init__(self, backend: Sam3Backend | CLIPSegBackend):
        super().__init__()
        self.backend = backend

    @property
    def model(self):
        """The stock model that is saved as the checkpoint."""
        return self.backend.model

    @property
    def config(self):
        return self.backend.model.config

    @property
    def has_presence_head(self) -> bool:
        """False for a backend whose presence logits are a constant (CLIPSeg): skip the presence loss."""
        return bool(getattr(self.backend, "has_presence_head", True))

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        **unused,
    ) -> PromptGroupOutput:
        """pixel_values [B, 3, S, S]; input_ids, attention_mask [B, G, K, L] (or [B, P, L])."""
        batch = pixel_values.shape[0]
        if input_ids.shape[0] != batch:
            raise ValueError(f"input_ids batch {input_ids.shape[0]} != pixel_values batch {batch}")
        vision = self.backend.encode_image(pixel_values)  # B images, encoded once
        return self.decode_prompts(vision, input_ids, attention_mask)

    def decode_prompts(self, vision_features, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Decode [B, ..., L] prompts against B images' features (from `backend.encode_image`).

        Lets a caller encode an image once and decode its prompts in chunks (evaluation does).
        """
        prompt_shape = input_ids.shape[:-1]  # (B, G, K) or (B, P)
        length = input_ids.shape[-1]
        prompts_per_image = input_ids[0, ..., 0].numel()
        vision = self.backend.repeat_features(vision_features, prompts_per_image)  # B*P, image-major
        mask_logits, presence_logits = self.backend.decode(
            vision, input_ids.reshape(-1, length), attention_mask.reshape(-1, length)
        )
        return PromptGroupOutput(
            mask_logits=mask_logits.reshape(*prompt_shape, *mask_logits.shape[-2:]),
            presence_logits=presence_logits.reshape(prompt_shape),
        )

    def forward_separately(self, pixel_values, input_ids, attention_mask) -> PromptGroupOutput:
        """Reference without sharing: K complete forwards, one per prompt. Same shapes as forward."""
        prompt_shape = input_ids.shape[:-1]
        batch, length = input_ids.shape[0], input_ids.shape[-1]
        flat_ids = input_ids.reshape(batch, -1, length)
        flat_mask = attention_mask.reshape(batch, -1, length)
        masks, presences = [], []
        for p in range(flat_ids.shape[1]):
            mask_logits, presence_logits = self.backend.full_forward(pixel_values, flat_ids[:, p], flat_mask[:, p])
            masks.append(mask_logits)
            presences.append(presence_logits)
        mask_logits = torch.stack(masks, dim=1)
        return PromptGroupOutput(
            mask_logits=mask_logits.reshape(*prompt_shape, *mask_logits.shape[-2:]),
            presence_logits=torch.stack(presences, dim=1).reshape(prompt_shape),
        )
