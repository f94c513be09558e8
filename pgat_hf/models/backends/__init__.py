"""One adapter per model family; each encodes an image once and decodes many prompts against it."""

from pgat_hf.models.backends.clipseg import (ALWAYS_PRESENT_LOGIT, CLIPSegBackend, build_tiny_clipseg, clipseg_word_tokenizer, load_clipseg,
                      tiny_clipseg_config)
from pgat_hf.models.backends.sam3 import Sam3Backend, repeat_vision_features, tiny_sam3_config

__all__ = [
    "ALWAYS_PRESENT_LOGIT",
    "CLIPSegBackend",
    "Sam3Backend",
    "build_tiny_clipseg",
    "clipseg_word_tokenizer",
    "load_clipseg",
    "repeat_vision_features",
    "tiny_clipseg_config",
    "tiny_sam3_config",
]
