"""CLIPSeg adapter: encode an image once, decode many prompts against it (the paper's CLIPSeg baseline).

transformers' `CLIPSegForImageSegmentation.forward` wants one image per prompt. Its path is:
1. `clip.get_image_features(pixel_values, output_hidden_states=True)` under `torch.no_grad()`, keeping
   the hidden states after the layers in `config.extract_layers` (`hidden_states[i + 1]`);
2. the prompt embedding `clip.get_text_features(input_ids, attention_mask).pooler_output`, also under
   `torch.no_grad()` (`get_conditional_embeddings`);
3. `decoder(activations, conditional_embeddings).logits`: [N, h, w] at the input resolution (352 px for
   CIDAS/clipseg-rd64-refined; the tiny config's `image_size`).
Step 1 depends on the image only, so `CLIPSegBackend` runs it once per image and repeats the
activations to the number of prompts (image-major) before step 3; steps 2-3 are the stock calls.

As in the stock forward, CLIP is frozen (its parameters are also marked `requires_grad=False`, so the
optimizer skips them and DDP does not wait for their gradients); only the decoder trains. Pass
`train_clip=True` to fine-tune CLIP as well: values are unchanged, gradients then reach CLIP.

CLIPSeg has no presence head: `decode` returns the constant `ALWAYS_PRESENT_LOGIT` ("target always
present", sigmoid ~ 1 - 4.5e-5) without gradient. In `segmentation_loss` its BCE is ~0 for present
groups and a constant ~10 for absent ones: no gradient, and every `group_loss` mode and the
consistency term are unchanged by it (a group's K prompts share `present`, so the offset is the same
across the group and cancels within the group). It does inflate the logged seg/presence losses;
`CLIPSegBackend.has_presence_head` is False so a trainer can pass `presence_logits=None` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoTokenizer, CLIPSegConfig, CLIPSegForImageSegmentation

from pgat_hf.models.image_processing import NucleiImageProcessor
from pgat_hf.sam3_ops import read_preprocessing

__all__ = [
    "ALWAYS_PRESENT_LOGIT",
    "CLIPSEG_IMAGE_MEAN",
    "CLIPSEG_IMAGE_SIZE",
    "CLIPSEG_IMAGE_STD",
    "CLIPSegBackend",
    "CLIPSegVisionFeatures",
    "build_tiny_clipseg",
    "clipseg_word_tokenizer",
    "load_clipseg",
    "tiny_clipseg_config",
]

# CLIP's normalisation; CLIPSeg checkpoints run at 352 px (position embeddings interpolated from 224).
CLIPSEG_IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIPSEG_IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
CLIPSEG_IMAGE_SIZE = 352

# Presence logit of a model without a presence head: "the target is always present".
ALWAYS_PRESENT_LOGIT = 10.0

# End-of-text token appended by `clipseg_word_tokenizer` (see there).
END_OF_TEXT = "<eot>"


@dataclass
class CLIPSegVisionFeatures:
    """What the decoder needs from the image: one [B, 1 + T, D] tensor per `config.extract_layers`."""

    activations: tuple[torch.Tensor, ...]


def tiny_clipseg_config(
    vocab_size: int,
    image_size: int = 64,
    hidden_size: int = 32,
    patch_size: int | None = None,
    vision_layers: int = 2,
    text_layers: int = 1,
    reduce_dim: int = 16,
    max_text_length: int = 32,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int | None = None,
) -> CLIPSegConfig:
    """A CLIPSeg-architecture config small enough for tests and a CPU demo.

    The decoder reads every vision layer (`extract_layers` = 0..vision_layers-1) and upsamples the
    patch grid with one transposed convolution of stride `patch_size`, so logits come out at
    `image_size`. patch_size defaults to image_size / 16 (a 16×16 token grid, as the tiny SAM3): on
    the 64 px synthetic set a tiny CLIPSeg (CLIP trained too) reached T1 Dice 0.85 in 300 steps with
    patch 4 and 0.60 with patch 8. `eos_token_id` (default: the last id, as `clipseg_word_tokenizer`
    makes it) must not be 2: CLIPSeg's text model then falls back to the legacy "highest token id"
    pooling.
    """
    eos_token_id = vocab_size - 1 if eos_token_id is None else eos_token_id
    patch_size = patch_size or max(1, image_size // 16)
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    if eos_token_id == 2:
        raise ValueError("eos_token_id 2 makes CLIPSeg pool the highest token id, not the end token; "
                         "use clipseg_word_tokenizer's end-of-text id")
    heads = max(1, hidden_size // 16)
    layer = dict(hidden_size=hidden_size, intermediate_size=4 * hidden_size, num_attention_heads=heads,
                 projection_dim=hidden_size)
    return CLIPSegConfig(
        text_config=dict(vocab_size=vocab_size, num_hidden_layers=text_layers,
                         max_position_embeddings=max_text_length, pad_token_id=pad_token_id,
                         bos_token_id=bos_token_id, eos_token_id=eos_token_id, **layer),
        vision_config=dict(image_size=image_size, patch_size=patch_size, num_hidden_layers=vision_layers, **layer),
        projection_dim=hidden_size,
        extract_layers=list(range(vision_layers)),
        reduce_dim=reduce_dim,
        decoder_num_attention_heads=max(1, reduce_dim // 8),
        decoder_intermediate_size=4 * reduce_dim,
        conditional_layer=0,
        use_complex_transposed_convolution=False,
    )


def clipseg_word_tokenizer(max_length: int = 32, texts: list[str] | None = None):
    """The project's word-level tokenizer (`train_word_tokenizer` on the prompt vocabulary) + `<eot>`.

    Why the extra token: that tokenizer ends prompts with `<eos>` = id 2, and CLIPSeg's text model
    treats `eos_token_id == 2` as an old config and pools the token with the highest id instead of the
    end token. `<eot>` is added last (highest id) and replaces `<eos>` at the end of every prompt, so
    both of CLIPSeg's pooling rules pick it. It saves and reloads with the tokenizer.
    """
    from tokenizers import processors

    from pgat_hf.data.prompts import prompt_vocabulary
    from pgat_hf.models.tokenizer import train_word_tokenizer

    tokenizer = train_word_tokenizer(texts if texts is not None else prompt_vocabulary(), max_length=max_length)
    tokenizer.add_special_tokens({"eos_token": END_OF_TEXT})
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tokenizer.bos_token} $A {END_OF_TEXT}",
        special_tokens=[(tokenizer.bos_token, tokenizer.bos_token_id), (END_OF_TEXT, end_id)],
    )
    return tokenizer


def build_tiny_clipseg(seed: int = 0, image_size: int = 64, tokenizer=None, hidden_size: int = 32,
                       max_text_length: int = 32, **config_overrides):
    """Random-init tiny CLIPSegForImageSegmentation + word tokenizer + CLIP-normalised preprocessing.

    Returns (model, tokenizer, image_processor), like `factory.build_tiny_model` for SAM3.
    """
    tokenizer = tokenizer if tokenizer is not None else clipseg_word_tokenizer(max_length=max_text_length)
    config = tiny_clipseg_config(vocab_size=len(tokenizer), image_size=image_size, hidden_size=hidden_size,
                                 max_text_length=max_text_length, pad_token_id=tokenizer.pad_token_id,
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                 **config_overrides)
    torch.manual_seed(seed)  # same seed, same initial weights
    model = CLIPSegForImageSegmentation(config)
    image_processor = NucleiImageProcessor(image_size=image_size, image_mean=CLIPSEG_IMAGE_MEAN,
                                           image_std=CLIPSEG_IMAGE_STD)
    return model, tokenizer, image_processor


def _clipseg_image_processor(name_or_path: str) -> NucleiImageProcessor:
    """The checkpoint's preprocessor_config.json (size, mean, std); else CLIP mean/std at 352 px."""
    return NucleiImageProcessor.from_settings(read_preprocessing(name_or_path, CLIPSEG_IMAGE_SIZE, CLIPSEG_IMAGE_MEAN,
                                                                 CLIPSEG_IMAGE_STD))


def load_clipseg(name_or_path: str, dtype: torch.dtype | None = None):
    """A CLIPSegForImageSegmentation checkpoint (folder or Hub id, e.g. CIDAS/clipseg-rd64-refined).

    Returns (model, tokenizer, image_processor); the image processor is a `NucleiImageProcessor`
    (square resize + normalisation, no torchvision, docs/design.md §5) with the checkpoint's own size,
    mean and std, falling back to CLIP's mean/std at 352 px.
    """
    model = CLIPSegForImageSegmentation.from_pretrained(name_or_path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    return model, tokenizer, _clipseg_image_processor(name_or_path)


class CLIPSegBackend(torch.nn.Module):
    """Wraps a stock `CLIPSegForImageSegmentation`; the checkpoint is `self.model` and nothing else."""

    has_presence_head = False

    def __init__(self, model: CLIPSegForImageSegmentation, train_clip: bool = False):
        super().__init__()
        self.model = model
        self.train_clip = train_clip
        if not train_clip:  # the stock forward runs CLIP under no_grad; say so to the optimizer and DDP
            model.clip.requires_grad_(False)

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def text_encoder(self) -> torch.nn.Module:
        """The prompt encoder (what freeze_text_encoder fixes)."""
        return self.model.clip.text_model

    def _clip_grad(self):
        return torch.set_grad_enabled(self.train_clip and torch.is_grad_enabled())

    def encode_image(self, pixel_values: torch.Tensor) -> CLIPSegVisionFeatures:
        """pixel_values [B, 3, S, S] -> the decoder's vision activations for B images (step 1)."""
        with self._clip_grad():
            outputs = self.model.clip.get_image_features(pixel_values=pixel_values, output_hidden_states=True)
        # hidden_states[0] is the embedding output, hence + 1 (as in the stock forward)
        return CLIPSegVisionFeatures(tuple(outputs.hidden_states[i + 1] for i in self.model.extract_layers))

    def repeat_features(self, features: CLIPSegVisionFeatures, repeats: int) -> CLIPSegVisionFeatures:
        """[B, ...] -> [B*repeats, ...], image-major (b0 b0 b0 b1 b1 b1), as prompts flattened from [B, P]."""
        return CLIPSegVisionFeatures(tuple(a.repeat_interleave(repeats, dim=0) for a in features.activations))

    def presence_logits(self, reference: torch.Tensor) -> torch.Tensor:
        """[N] constant ALWAYS_PRESENT_LOGIT (no presence head), on reference's device and dtype."""
        return reference.new_full((reference.shape[0],), ALWAYS_PRESENT_LOGIT)

    def decode(
        self,
        vision_features: CLIPSegVisionFeatures,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode N prompts against N (already repeated) image features (steps 2-3).

        input_ids, attention_mask [N, L] -> mask_logits [N, h, w], presence_logits [N] (constant).
        """
        with self._clip_grad():
            conditional = self.model.clip.get_text_features(input_ids, attention_mask=attention_mask).pooler_output
        mask_logits = self.model.decoder(vision_features.activations, conditional).logits  # [N, h, w]
        return mask_logits, self.presence_logits(mask_logits)

    def full_forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Reference path with no sharing: one complete stock model call per prompt row. [N, ...] each."""
        outputs = self.model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        return outputs.logits, self.presence_logits(outputs.logits)
