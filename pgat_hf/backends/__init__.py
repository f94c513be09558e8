"""One adapter per model family; each encodes an image once and decodes many prompts against it."""

from .sam3 import Sam3Backend, repeat_vision_features, tiny_sam3_config

__all__ = ["Sam3Backend", "repeat_vision_features", "tiny_sam3_config"]
