"""Image and mask preprocessing without torchvision (its registry wheel breaks here, docs/design.md §5).

The saved `preprocessor_config.json` uses the keys of transformers' Sam3ImageProcessor, so a user
with a working torchvision can also load it with `AutoImageProcessor`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from pgat_hf.sam3_ops import PREPROCESSOR_CONFIG, normalize_image, read_preprocessing

CONFIG_NAME = PREPROCESSOR_CONFIG


@dataclass
class NucleiImageProcessor:
    """Square resize + normalisation; SAM3 uses 1008 px and mean = std = 0.5."""

    image_size: int = 1008
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def preprocess(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        """RGB image (PIL or HxWx3 uint8) -> pixel_values [3, S, S] float32."""
        return torch.from_numpy(self.preprocess_array(image))

    def preprocess_array(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """Same as preprocess, as a numpy array (the collator stacks in numpy: see sam3_ops)."""
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        return normalize_image(image, self.image_size, self.image_mean, self.image_std)

    def resize_mask(self, mask: np.ndarray) -> np.ndarray:
        """Label or binary map HxW -> SxS with nearest-neighbour (labels must not blend)."""
        if mask.shape == (self.image_size, self.image_size):
            return mask
        resized = Image.fromarray(mask.astype(np.int32)).resize((self.image_size, self.image_size), Image.NEAREST)
        return np.asarray(resized).astype(mask.dtype)

    def to_dict(self) -> dict:
        return {
            "image_processor_type": "Sam3ImageProcessor",
            "processor_class": "NucleiImageProcessor",
            "do_resize": True,
            "size": {"height": self.image_size, "width": self.image_size},
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
        }

    def save_pretrained(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, CONFIG_NAME)
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=2)
        return path

    @classmethod
    def from_settings(cls, settings: dict) -> "NucleiImageProcessor":
        """From `sam3_ops.read_preprocessing`'s {"size", "mean", "std"}."""
        return cls(image_size=settings["size"], image_mean=tuple(settings["mean"]), image_std=tuple(settings["std"]))

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> "NucleiImageProcessor":
        """A checkpoint folder or Hub repo with a preprocessor_config.json (SAM3's defaults where it lacks one)."""
        return cls.from_settings(read_preprocessing(name_or_path, cls.image_size))
