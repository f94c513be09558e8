"""SAM3 inference operations that import nothing from pgat_hf.

The pipeline's Hub copy (remote code: `pipeline.py` + this file, uploaded by `pgat-hf push`)
must run where pgat_hf is not installed, so everything it needs beyond torch, numpy, PIL, scipy and
transformers lives here; the trainer's backend uses the same functions, so training and inference
cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps
from scipy import ndimage
from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

MASK_SOURCES = ("semantic", "topk")

# How a checkpoint turns logits into a mask. Training stores these in config.json under
# `pgat_inference` (an extra key that stock Sam3Config keeps and ignores), so the evaluator and the
# pipeline infer the way the model was trained; a plain SAM3 checkpoint gets these defaults.
# min_area: mask components smaller than this many pixels (at the image's size) are dropped;
# presence_threshold: a prompt whose presence score (SAM3's "is the concept in the image" head) is
# below it gets an empty mask. 0 and 0.0 leave the mask as the logits give it. tile_size: the side
# of the training images; the pipeline segments a larger image in windows of that side (0: never).
INFERENCE_DEFAULTS = {"mask_source": "semantic", "mask_topk": 5, "max_text_length": 32, "threshold": 0.5,
                      "min_area": 0, "presence_threshold": 0.0, "tile_size": 0}


def intensities_to_uint8(array: np.ndarray) -> np.ndarray:
    """Integer/float intensities -> uint8, as `build.py` converts images, so one tile gives the same
    pixels whatever type it arrives in:

    - uint8: kept as it is;
    - integers within 0..255 (e.g. a 16-bit PNG of an 8-bit tile): cast;
    - floats within 0..1 (skimage's `img_as_float`, `a / 255`): times 255, rounded;
    - floats within 0..255 (PanNuke's float64 images): rounded;
    - anything else (fluorescence TIFFs, 16-bit with a small used range; floats outside 0..255):
      min-max stretched to 0..255, per image.
    """
    if array.dtype == np.uint8:
        return array
    if not array.size:
        return np.zeros(array.shape, np.uint8)
    is_float = np.issubdtype(array.dtype, np.floating)
    array = array.astype(np.float64)
    low, high = float(array.min()), float(array.max())
    if is_float and 0.0 <= low and high <= 1.0:
        array = array * 255.0
    elif not (0.0 <= low and high <= 255.0):
        array = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
    return np.clip(np.round(array), 0, 255).astype(np.uint8)


# PIL modes that `convert("RGB")` turns into the colours the image shows: HSV and LAB through
# Pillow's colour conversions, P and PA through their palette, premultiplied RGBa divided by its
# alpha, CMYK and YCbCr as Pillow converts them; alpha is dropped, as build.py drops it.
COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr", "HSV", "LAB")
# Premultiplied grey has no conversion to RGB in Pillow: it goes through straight-alpha LA, which
# divides the grey by alpha, so a half-transparent pixel keeps its grey level.
PREMULTIPLIED_MODES = {"La": "LA"}
# Single-channel modes wider than 8 bits (16/32-bit integer, 32-bit float grey): read as arrays
# and converted as build.py converts them (`intensities_to_uint8`).
WIDE_GREY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def pil_to_rgb(image: Image.Image) -> Image.Image | np.ndarray:
    """A PIL image -> RGB PIL image, or an array for wide grey modes (to `intensities_to_uint8`).

    `build.py` and the pipeline both read images through here, so a tile gives the same pixels in
    training and at inference. Raises ValueError for a binary mode-"1" image or a mode it cannot show.
    """
    # Turned as the EXIF orientation tag says (the tag is then removed, so turning twice is a no-op):
    # a phone JPEG stored 256x128 with orientation 6 is shown, and segmented, as 128x256.
    image = ImageOps.exif_transpose(image)
    if image.mode == "1":
        raise ValueError("image mode '1' is a binary mask, not an image; pass an H&E tile")
    if image.mode in PREMULTIPLIED_MODES:
        image = image.convert(PREMULTIPLIED_MODES[image.mode])
    if image.mode in COLOUR_MODES:
        return image.convert("RGB")
    if image.mode in WIDE_GREY_MODES:
        return np.asarray(image)
    raise ValueError(f"image mode {image.mode!r} is not supported; convert it to RGB first "
                     f"(supported: {', '.join(COLOUR_MODES + tuple(PREMULTIPLIED_MODES) + WIDE_GREY_MODES)})")


def normalize_image(image: Image.Image, size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> np.ndarray:
    """RGB PIL image -> [3, size, size] float32 numpy: square resize, (x/255 - mean) / std.

    numpy, not torch: on a busy 2-core machine each tiny torch op waits for its thread pool
    (a 4-image stack measured 44 ms in torch vs 0.6 ms in numpy), and the collator runs per step.
    """
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def preprocess_image(image: Image.Image, size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> torch.Tensor:
    """RGB PIL image -> pixel_values [3, size, size] float32 tensor (see normalize_image)."""
    return torch.from_numpy(normalize_image(image, size, mean, std))


def repeat_vision_features(features: Sam3VisionEncoderOutput, repeats: int) -> Sam3VisionEncoderOutput:
    """Repeat each image's features `repeats` times along the batch: [B, ...] -> [B*repeats, ...].

    SAM3's feature fields do not broadcast, so every one is repeated. Order is image-major
    (b0 b0 b0 b1 b1 b1), matching prompts flattened from [B, P].
    """

    def rep(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.repeat_interleave(repeats, dim=0)

    return Sam3VisionEncoderOutput(
        last_hidden_state=rep(features.last_hidden_state),
        fpn_hidden_states=tuple(rep(t) for t in features.fpn_hidden_states),
        fpn_position_encoding=tuple(rep(t) for t in features.fpn_position_encoding),
    )


def select_mask_logits(outputs, mask_source: str = "semantic", mask_topk: int = 5) -> torch.Tensor:
    """One logit map per prompt, built the way inference builds the mask.

    semantic: SAM3's semantic_seg head [N, 1, h, w] -> [N, h, w].
    topk: pixel-wise max over the k query masks with the highest scores [N, Q, h, w] -> [N, h, w].
    """
    if mask_source == "semantic":
        return outputs.semantic_seg[:, 0]
    if mask_source != "topk":
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
    k = min(mask_topk, outputs.pred_logits.shape[1])
    top = outputs.pred_logits.topk(k, dim=1).indices  # [N, k]
    index = top[:, :, None, None].expand(-1, -1, *outputs.pred_masks.shape[-2:])
    return outputs.pred_masks.gather(1, index).amax(dim=1)


def decode_prompts(model, vision_features: Sam3VisionEncoderOutput, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor, mask_source: str = "semantic",
                   mask_topk: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """N prompts against N (already repeated) image features.

    input_ids, attention_mask [N, L] -> mask_logits [N, h, w], presence_logits [N].
    `text_embeds` must be the whole get_text_features output, not a tensor (docs/design.md §5).
    """
    text_embeds = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
    outputs = model(vision_embeds=vision_features, text_embeds=text_embeds, attention_mask=attention_mask)
    return select_mask_logits(outputs, mask_source, mask_topk), outputs.presence_logits[:, 0]


def mask_to_instances(mask: np.ndarray, min_area: int = 0) -> np.ndarray:
    """Binary HxW -> instance-id map (int32, 0 = background): 8-connected components.

    Components under `min_area` pixels are dropped; ids are renumbered 1..N in raster order.
    """
    labels, count = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), int))
    if count == 0:
        return labels.astype(np.int32)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    keep = areas >= max(min_area, 1)
    keep[0] = False
    new_ids = np.zeros(count + 1, np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[labels]


PREPROCESSOR_CONFIG = "preprocessor_config.json"


def read_preprocessing(name_or_path: str, size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> dict:
    """A checkpoint's input size and normalisation: {"size", "mean", "std"} from its
    preprocessor_config.json (a folder or Hub repo), each missing entry taken from the arguments.

    The one reader of that file: training, evaluation, the pipeline and the card all call it.
    `size` may be {"height": S, "width": S}, {"shortest_edge": S} or S (CLIPSeg's configs differ).
    """
    import json

    from transformers.utils import cached_file

    path = cached_file(name_or_path, PREPROCESSOR_CONFIG, _raise_exceptions_for_missing_entries=False) \
        if name_or_path else None
    config = {}
    if path:
        with open(path) as handle:
            config = json.load(handle)
    saved = config.get("size")
    if isinstance(saved, dict):
        saved = saved.get("height", saved.get("shortest_edge"))
    return {"size": int(saved or size), "mean": tuple(config.get("image_mean", mean)),
            "std": tuple(config.get("image_std", std))}


def upsample_probability(logits: torch.Tensor, image_size: tuple[int, int]) -> np.ndarray:
    """One prompt's mask logits [h, w] at the model's resolution -> probability [H, W] float32 at
    the image's size (W, H): bilinear upsampling of the logits, then the sigmoid."""
    width, height = image_size
    upsampled = torch.nn.functional.interpolate(logits.float()[None, None], size=(height, width), mode="bilinear",
                                                align_corners=False)[0, 0]
    return upsampled.sigmoid().cpu().numpy()


def prompt_instances(probability: np.ndarray, presence: float, threshold: float, presence_threshold: float,
                     min_area: int) -> np.ndarray:
    """One prompt's probability [H, W] -> its instance map [H, W] int32 (0 = background), as a user
    gets it: pixels > threshold, no mask at all when the presence probability is under
    presence_threshold, components under min_area pixels dropped. Nothing is ensembled across prompts."""
    mask = probability > threshold
    if presence < presence_threshold:
        mask[:] = False
    return mask_to_instances(mask, min_area=min_area)
