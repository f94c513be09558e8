"""SAM3 adapter: encode an image once, decode many prompts against it.

transformers' `Sam3Model.forward(vision_embeds=...)` reuses precomputed image features, but the
feature fields do not broadcast: every one of them must be repeated to the number of prompts
(docs/design.md §5). The operations live in `pgat_hf.sam3_ops`, shared with the pipeline; this module
holds the tiny config and the backend object the segmenter and trainer use.
"""

from __future__ import annotations

import torch
from transformers import Sam3Config, Sam3Model
from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

from pgat_hf.sam3_ops import MASK_SOURCES, decode_prompts, repeat_vision_features, select_mask_logits

__all__ = ["MASK_SOURCES", "Sam3Backend", "repeat_vision_features", "tiny_sam3_config"]


def tiny_sam3_config(
    vocab_size: int,
    hidden_size: int = 32,
    image_size: int = 128,
    patch_size: int = 8,
    vision_layers: int = 2,
    vision_hidden_size: int | None = None,
    text_layers: int = 1,
    text_hidden_size: int | None = None,
    num_queries: int = 16,
    decoder_layers: int = 2,
    max_text_length: int = 32,
    initializer_range: float = 0.05,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 2,
) -> Sam3Config:
    """A SAM3-architecture config small enough to train on a laptop CPU (docs/design.md §6).

    hidden_size must be a multiple of 8 (SAM3 uses GroupNorm(8, D)); image_size must equal the
    size the collator feeds; initializer_range 0.05 made the category task learnable in every seed.
    vision_hidden_size widens the ViT alone (default: hidden_size); the FPN neck projects it to
    hidden_size, so the decoder, which runs G·K times per image, keeps its cost. text_hidden_size
    sets the CLIP text encoder's width (default: hidden_size); SAM3's text_projection maps it to
    hidden_size, so the static text table (64 wide) feeds a 32-wide decoder.
    """
    if hidden_size % 8:
        raise ValueError(f"hidden_size must be a multiple of 8 (GroupNorm(8, D)), got {hidden_size}")
    if image_size % (patch_size * 8):
        raise ValueError(f"image_size {image_size} must be a multiple of 8 * patch_size ({8 * patch_size})")
    tokens = image_size // patch_size  # ViT grid side
    # The neck turns the ViT grid into decoder levels at image/2, /4, /8 (+ one /16 that SAM3
    # drops), whatever the patch: patch 8 is SAM3's own 4x, 2x, 1x, 0.5x; a finer patch gives the
    # ViT more tokens while the decoder, which runs G·K times per image, keeps its size.
    scale_factors = {8: [4.0, 2.0, 1.0, 0.5], 4: [2.0, 1.0, 0.5, 0.5]}.get(patch_size)
    if scale_factors is None:
        raise ValueError(f"patch_size must be 4 or 8, got {patch_size}")
    fine = image_size // 2
    heads = max(1, hidden_size // 16)
    mlp = 4 * hidden_size
    init = initializer_range
    layer = dict(hidden_size=hidden_size, num_attention_heads=heads, intermediate_size=mlp, initializer_range=init)
    text_width = text_hidden_size or hidden_size
    if text_width % 16 and text_width != hidden_size:
        raise ValueError(f"text_hidden_size must be a multiple of 16 (16-wide heads), got {text_width}")
    text_layer = dict(hidden_size=text_width, num_attention_heads=max(1, text_width // 16),
                      intermediate_size=4 * text_width, initializer_range=init)
    vit_width = vision_hidden_size or hidden_size
    vit_layer = dict(hidden_size=vit_width, num_attention_heads=max(1, vit_width // 16), intermediate_size=4 * vit_width,
                     initializer_range=init)
    return Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model",
                num_hidden_layers=vision_layers,
                image_size=image_size,
                patch_size=patch_size,
                pretrain_image_size=image_size,
                window_size=min(8, tokens),
                global_attn_indexes=[vision_layers - 1],
                **vit_layer,
            ),
            fpn_hidden_size=hidden_size,
            scale_factors=scale_factors,
            backbone_feature_sizes=[[fine] * 2, [fine // 2] * 2, [fine // 4] * 2],
            initializer_range=init,
        ),
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=vocab_size,
            projection_dim=hidden_size,
            num_hidden_layers=text_layers,
            max_position_embeddings=max_text_length,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **text_layer,
        ),
        geometry_encoder_config=dict(num_layers=1, dropout=0.0, **layer),
        detr_encoder_config=dict(num_layers=1, dropout=0.0, **layer),
        detr_decoder_config=dict(num_layers=decoder_layers, num_queries=num_queries, dropout=0.0, **layer),
        mask_decoder_config=dict(num_upsampling_stages=3, hidden_size=hidden_size, num_attention_heads=heads,
                                 initializer_range=init),
        initializer_range=init,
    )


class Sam3Backend(torch.nn.Module):
    """Wraps a stock `Sam3Model`; the checkpoint is `self.model` and nothing else."""

    has_presence_head = True

    def __init__(self, model: Sam3Model, mask_source: str = "semantic", mask_topk: int = 5):
        super().__init__()
        if mask_source not in MASK_SOURCES:
            raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
        self.model = model
        self.mask_source = mask_source
        self.mask_topk = mask_topk

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.backbone_config.image_size)

    @property
    def text_encoder(self) -> torch.nn.Module:
        """The prompt encoder (what freeze_text_encoder fixes)."""
        return self.model.text_encoder

    def encode_image(self, pixel_values: torch.Tensor) -> Sam3VisionEncoderOutput:
        """pixel_values [B, 3, S, S] -> SAM3 vision features for B images."""
        return self.model.get_vision_features(pixel_values=pixel_values)

    def repeat_features(self, vision_features: Sam3VisionEncoderOutput, repeats: int) -> Sam3VisionEncoderOutput:
        """[B, ...] -> [B*repeats, ...], image-major (b0 b0 b0 b1 b1 b1), as prompts flattened from [B, P]."""
        return repeat_vision_features(vision_features, repeats)

    def decode(
        self,
        vision_features: Sam3VisionEncoderOutput,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode N prompts against N (already repeated) image features.

        input_ids, attention_mask [N, L] -> mask_logits [N, h, w], presence_logits [N].
        """
        return decode_prompts(self.model, vision_features, input_ids, attention_mask, self.mask_source, self.mask_topk)

    def mask_logits(self, outputs) -> torch.Tensor:
        """[N, h, w] logits from a full SAM3 output, as inference builds the mask (sam3_ops)."""
        return select_mask_logits(outputs, self.mask_source, self.mask_topk)

    def full_forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Reference path with no sharing: one complete model call per prompt row. [N, ...] each."""
        outputs = self.model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        return self.mask_logits(outputs), outputs.presence_logits[:, 0]
