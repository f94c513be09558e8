"""`pipeline("text-guided-nuclei-segmentation")`: an H&E tile and sentences in, nucleus masks out.

    seg = pipeline("text-guided-nuclei-segmentation", model="outputs/pgat-demo")   # after `import pgat_hf`
    seg(image, prompts=["all nuclei", "inflammatory nuclei"])   # -> one dict per prompt

Each result: `prompt`; `mask` (PIL "L", 0/255, the input image's size); `score` (presence
probability); `label_map` (int32 HxW instance ids, 0 = background: connected components of the
mask); `instances` (per nucleus: id, bbox [x0, y0, x1, y1] in pixels, area, mean mask
probability as score). All prompts of one image share one vision pass.

An image larger than the tiles the model was trained on is segmented window by window: windows
of the checkpoint's training tile side (config.json `pgat_inference.tile_size`; or `tile_size=N`
in the call, `tile_size=0` for one pass), overlapping by `tile_overlap` pixels (a quarter tile),
one vision pass each. Each window's probability is gated by its own presence score and the windows
are blended with weights that fall off towards their edges; `score` is then the highest window's.

Inputs (`load_image`): a path, a PIL image (turned as its EXIF orientation says, so the mask
matches the image as viewers show it) or an array; 16-bit and float images are converted to
8 bits as `build.py` converts them. Call parameters are checked when the call starts: an unknown
keyword is a TypeError naming it, a bad value a ValueError, and `batch_size` stays 1 (the prompts
of an image are the batch; images run one after the other).

This file imports only torch, numpy, PIL, scipy, transformers and `.sam3_ops` (and tifffile, only
for a TIFF PIL cannot decode), so `pgat-hf push` can ship it (with sam3_ops.py) as the Hub repo's
remote code for users without pgat_hf.
"""

from __future__ import annotations

import logging
import math
import numbers
import os

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from transformers import CLIPSegForImageSegmentation, Pipeline

from ..sam3_ops import (
    INFERENCE_DEFAULTS,
    decode_prompts,
    intensities_to_uint8,
    pil_to_rgb,
    preprocess_image,
    prompt_instances,
    read_preprocessing,
    repeat_vision_features,
    upsample_probability,
)

TASK = "text-guided-nuclei-segmentation"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIPSeg's normalisation when a checkpoint names none
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIPSEG_PRESENCE_LOGIT = 10.0  # CLIPSeg has no presence head: "always present", as its training backend says
logger = logging.getLogger(__name__)


def prompt_warnings(tokenizer, prompts: list[str], max_length: int) -> list[str]:
    """What the tokenizer changes about a prompt that the user should know: one line per prompt.

    A prompt longer than `max_length` tokens (special tokens included) is cut; a prompt made only
    of unknown tokens reaches the model as `[UNK]`s, which carry no meaning.
    """
    notes = []
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    for prompt, ids in zip(prompts, tokenizer(prompts, truncation=False, verbose=False)["input_ids"]):
        if len(ids) > max_length:
            notes.append(f"prompt {prompt!r} has {len(ids)} tokens; the model reads the first {max_length}")
        words = [i for i in ids if i not in special]
        if tokenizer.unk_token_id is not None and words and all(i == tokenizer.unk_token_id for i in words):
            notes.append(f"prompt {prompt!r} is made only of tokens the tokenizer does not know: its mask is a guess")
    return notes


TIFF_SUFFIXES = (".tif", ".tiff")


def read_image_file(path: str) -> Image.Image:
    """An image file -> PIL image (its EXIF orientation tag kept, for `pil_to_rgb`); a TIFF PIL
    cannot decode (e.g. float32 RGB) is read by tifffile, as build.py reads it, and converted to RGB."""
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy()  # the file closes here
    except (OSError, SyntaxError) as error:
        if not path.lower().endswith(TIFF_SUFFIXES):
            raise ValueError(f"cannot read image {path}: {error}") from error
        pil_error = error
    try:
        return array_to_rgb(read_tiff(path, pil_error))
    except ValueError as error:  # e.g. a multi-page stack: the message names the file
        raise ValueError(f"cannot read image {path}: {error}") from error


def read_tiff(path: str, pil_error: Exception) -> np.ndarray:
    """A TIFF PIL cannot decode -> its array, through tifffile (scikit-image's dependency, so
    installed with pgat_hf; imported here only, so the Hub copy of this file runs without it)."""
    try:
        import tifffile
    except ImportError as error:
        raise ValueError(f"{pil_error} (tifffile, which reads more TIFFs, is not installed)") from error
    try:
        return tifffile.imread(path)
    except Exception as error:  # noqa: BLE001 - any decoder failure is a corrupt or unknown TIFF
        raise ValueError(str(error)) from error


def array_to_rgb(image: np.ndarray) -> Image.Image:
    """HxW / HxWx1 / HxWx3 / HxWx4 integer or float intensities -> RGB PIL image (`intensities_to_uint8`)."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"image array must hold integer or float intensities, got {image.dtype}")
    if not np.isfinite(image).all():
        raise ValueError("image array holds NaN or infinite values")
    array = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    array = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array[..., :3]
    return Image.fromarray(np.ascontiguousarray(intensities_to_uint8(array)))


def load_image(image) -> Image.Image:
    """PIL image, path or HxW / HxWx1 / HxWx3 / HxWx4 array -> RGB PIL image; clear errors otherwise.

    Accepts what `build.py` accepts, converted the same way (`sam3_ops.intensities_to_uint8`):
    8-bit images as they are, floats in 0..1 times 255, floats in 0..255 rounded, 16/32-bit grey
    images (fluorescence TIFFs) min-max stretched to 8 bits, grey repeated to RGB; TIFFs PIL cannot
    decode (float32 RGB) through tifffile. A file or PIL image is first turned as its EXIF
    orientation says, so the mask matches the image as viewers display it. Premultiplied (La,
    RGBa), palette-with-alpha (PA), HSV and LAB images are converted to the RGB colours they show.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file not found: {path}")
        image = read_image_file(path)
    if isinstance(image, Image.Image):
        image = pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        image = array_to_rgb(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, a path or an array, got {type(image).__name__}")
    if 0 in image.size:
        raise ValueError(f"image is empty: {image.size[0]}x{image.size[1]} pixels")
    return image


def window_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of `tile` pixels over `length`, `overlap` apart at least, the last at the edge."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile + 1, stride))
    return starts if starts[-1] == length - tile else starts + [length - tile]


def window_boxes(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of every window, row by row; one box of the whole image when it fits in a tile."""
    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in window_starts(height, tile, overlap) for x in window_starts(width, tile, overlap)]


def window_weight(width: int, height: int, ramp: int) -> np.ndarray:
    """[height, width] blending weight: 1 inside, falling linearly to 1/(ramp+1) over `ramp` pixels at each edge."""
    def profile(n: int) -> np.ndarray:
        distance = np.minimum(np.arange(n), np.arange(n)[::-1]) + 1.0  # 1 at the edge pixel
        return np.minimum(distance / (ramp + 1.0), 1.0) if ramp > 0 else np.ones(n)

    return np.outer(profile(height), profile(width)).astype(np.float32)


def whole_number(value, name: str, requirement: str, minimum: int = 0) -> int:
    """value as an int when it is a Python or numpy integer (bool excluded) of at least `minimum`;
    ValueError saying `name` must be `requirement` otherwise. A float, even 128.0, is refused with a
    hint to pass an int, so that no value (127.6) is ever rounded silently."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        hint = f" (a {type(value).__name__}; pass an int)" if isinstance(value, numbers.Real) else ""
        raise ValueError(f"{name} must be {requirement}, got {value!r}{hint}")
    if value < minimum:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return int(value)


def finite_number(value, name: str) -> float:
    """value as a float when it is a finite real number (Python or numpy; bool excluded); ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_tiling(tile_size, tile_overlap) -> tuple[int, int]:
    """(tile_size, overlap) as whole numbers, clear errors otherwise; tile_size 0: one pass, overlap a
    quarter tile unless given."""
    requirement = "0 (one pass) or a whole number of pixels, at least 16"
    tile_size = whole_number(tile_size, "tile_size", requirement)
    if 0 < tile_size < 16:
        raise ValueError(f"tile_size must be {requirement}, got {tile_size!r}")
    if tile_size == 0:
        if tile_overlap:
            raise ValueError("tile_overlap needs a tile_size")
        return 0, 0
    requirement = "a whole number of pixels from 0 to tile_size - 1"
    overlap = tile_size // 4 if tile_overlap is None else whole_number(tile_overlap, "tile_overlap", requirement)
    if overlap >= tile_size:
        raise ValueError(f"tile_overlap must be {requirement}, got {overlap!r}")
    return tile_size, overlap


def check_batch_size(batch_size) -> None:
    """The base Pipeline's batch_size must stay 1: the prompts of an image are the batch here."""
    if batch_size not in (None, 1):
        raise ValueError(f"batch_size must be 1, got {batch_size!r}: all prompts of an image already share one "
                         "vision pass and are decoded together (prompt_batch_size at a time); pass a list of "
                         "images to segment several, one after the other")


def check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("prompts must be a non-empty string or a non-empty list of strings")
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"every prompt must be a non-empty string, got {prompt!r}")
    return list(prompts)


class TextGuidedNucleiSegmentationPipeline(Pipeline):
    """Text-guided nuclei segmentation with a stock `Sam3Model` checkpoint (see module docstring)."""

    _load_tokenizer = True
    _load_image_processor = False  # Sam3ImageProcessor needs torchvision; preprocessing is sam3_ops
    _load_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_batch_size(self._batch_size)  # pipeline(..., batch_size=N) would fail at the first call
        self.is_clipseg = self.model.config.model_type == "clipseg"
        if self.is_clipseg and not isinstance(self.model, CLIPSegForImageSegmentation):
            # AutoModel maps a CLIPSeg config to CLIPSegModel, which has no decoder: load the segmenter.
            self.model = CLIPSegForImageSegmentation.from_pretrained(self.model.name_or_path).to(self.device).eval()
        self.settings = {**INFERENCE_DEFAULTS, **(getattr(self.model.config, "pgat_inference", None) or {})}
        self.preprocessing = self._read_preprocessing()

    def _read_preprocessing(self) -> dict:
        """Input size and normalisation from preprocessor_config.json beside the weights (model defaults else)."""
        if self.is_clipseg:
            return read_preprocessing(getattr(self.model, "name_or_path", ""), int(self.model.config.vision_config.image_size),
                                      CLIP_MEAN, CLIP_STD)
        return read_preprocessing(getattr(self.model, "name_or_path", ""),
                                  int(self.model.config.vision_config.backbone_config.image_size))

    # The keywords _sanitize_parameters reads; any other keyword is a typo and is refused.
    CALL_PARAMETERS = ("prompts", "tile_size", "tile_overlap", "prompt_batch_size", "threshold",
                       "presence_threshold", "min_instance_area")

    def _sanitize_parameters(self, prompts=None, threshold=None, presence_threshold=None, min_instance_area=None,
                             prompt_batch_size=None, tile_size=None, tile_overlap=None, **unknown):
        if unknown:  # the base Pipeline has already taken its own (batch_size, num_workers, dtype, ...)
            raise TypeError(f"unknown pipeline parameter{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}; the parameters are {', '.join(self.CALL_PARAMETERS)}")
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if prompts is not None:
            preprocess_params["prompts"] = prompts
        if tile_size is not None or tile_overlap is not None:
            preprocess_params["tile_size"], preprocess_params["tile_overlap"] = check_tiling(
                self.default_tile_size() if tile_size is None else tile_size, tile_overlap)
        if prompt_batch_size is not None:
            forward_params["prompt_batch_size"] = whole_number(prompt_batch_size, "prompt_batch_size",
                                                               "a whole number of prompts, at least 1", minimum=1)
        if threshold is not None:
            postprocess_params["threshold"] = finite_number(threshold, "threshold")
        if presence_threshold is not None:
            postprocess_params["presence_threshold"] = finite_number(presence_threshold, "presence_threshold")
        if min_instance_area is not None:
            postprocess_params["min_instance_area"] = whole_number(min_instance_area, "min_instance_area",
                                                                   "a whole number of pixels, at least 0")
        return preprocess_params, forward_params, postprocess_params

    def __call__(self, images, prompts=None, **kwargs):
        """images: one image (PIL, path, array) or a list; prompts: a string or a list of strings.

        One image -> a list of dicts, one per prompt (a single dict when prompts is a string);
        a list of images -> a list of such results. Call parameters: threshold (mask probability,
        default the checkpoint's), presence_threshold (empty the mask when the presence score is
        below it; default the checkpoint's), min_instance_area (components under this many pixels are
        dropped from the mask; default the checkpoint's `min_area`), prompt_batch_size, tile_size and
        tile_overlap (window-by-window inference of an image larger than a tile, module docstring;
        default: the checkpoint's `tile_size`, 0 = one pass). threshold and presence_threshold are
        finite numbers; prompt_batch_size (at least 1), min_instance_area, tile_size and tile_overlap
        are ints (numpy ints too). Any other keyword is a TypeError naming it; batch_size must stay 1
        (all prompts of an image are already one batch on one vision pass).
        """
        if prompts is None:
            raise ValueError("pass prompts=..., e.g. seg(image, prompts=['all nuclei'])")
        check_prompts(prompts)  # the other parameters are checked in _sanitize_parameters
        check_batch_size(kwargs.get("batch_size"))
        return super().__call__(images, prompts=prompts, **kwargs)

    def default_tile_size(self) -> int:
        """The checkpoint's training tile side (0: one pass), from config.json pgat_inference."""
        return int(self.settings.get("tile_size") or 0)

    def preprocess(self, image, prompts=None, tile_size=None, tile_overlap=None):
        if tile_size is None:  # no tiling parameter in the call: the checkpoint's own
            tile_size, tile_overlap = check_tiling(self.default_tile_size(), None)
        rgb = load_image(image)
        single = isinstance(prompts, str)
        prompts = check_prompts(prompts)
        max_length = int(self.settings["max_text_length"])
        for note in prompt_warnings(self.tokenizer, prompts, max_length):
            logger.warning(note)
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=max_length,
                                return_tensors="pt")
        width, height = rgb.size
        boxes = window_boxes(width, height, tile_size, tile_overlap) if tile_size else [(0, 0, width, height)]
        return {"image": rgb, "input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"],
                "prompts": prompts, "single": single, "image_size": rgb.size, "boxes": boxes,
                "ramp": tile_overlap // 2}

    def _forward(self, model_inputs, prompt_batch_size: int = 16):
        logits, presence = [], []
        boxes = model_inputs["boxes"]
        for box in boxes:  # one vision pass per window, shared by every prompt; windows made one at a time
            window = model_inputs["image"].crop(box) if len(boxes) > 1 else model_inputs["image"]
            pixel_values = preprocess_image(window, self.preprocessing["size"], self.preprocessing["mean"],
                                            self.preprocessing["std"])[None]
            window_logits, window_presence = self._decode_window(pixel_values, model_inputs["input_ids"],
                                                                 model_inputs["attention_mask"], prompt_batch_size)
            logits.append(window_logits)
            presence.append(window_presence)
        # Logits stay at the model's resolution [windows, P, h, w]; postprocess upsamples one prompt
        # and window at a time, so memory grows with the prompt count at h·w, not at the image's size.
        return {"logits": torch.stack(logits), "presence": torch.stack(presence),
                "image_size": model_inputs["image_size"], "prompts": model_inputs["prompts"],
                "single": model_inputs["single"], "boxes": model_inputs["boxes"], "ramp": model_inputs["ramp"]}

    def _decode_window(self, pixel_values, input_ids, attention_mask, prompt_batch_size: int):
        """One image [1, 3, size, size] and P prompts -> (mask logits [P, h, w], presence probability [P]) on the CPU."""
        pixel_values = pixel_values.to(self.device, dtype=self.model.dtype)
        if self.is_clipseg:  # CLIP's vision activations once, as the CLIPSeg backend shares them in training
            hidden = self.model.clip.get_image_features(pixel_values=pixel_values, output_hidden_states=True)
            vision = tuple(hidden.hidden_states[i + 1] for i in self.model.extract_layers)
        else:
            vision = self.model.get_vision_features(pixel_values=pixel_values)  # once for every prompt
        logits, presence = [], []
        for start in range(0, input_ids.shape[0], prompt_batch_size):
            ids = input_ids[start:start + prompt_batch_size].to(self.device)
            mask = attention_mask[start:start + prompt_batch_size].to(self.device)
            if self.is_clipseg:
                conditional = self.model.clip.get_text_features(ids, attention_mask=mask).pooler_output
                chunk_logits = self.model.decoder(tuple(a.expand(ids.shape[0], -1, -1) for a in vision),
                                                  conditional).logits.reshape(ids.shape[0], *pixel_values.shape[-2:])
                chunk_presence = chunk_logits.new_full((ids.shape[0],), CLIPSEG_PRESENCE_LOGIT)  # no presence head
            else:
                chunk_logits, chunk_presence = decode_prompts(
                    self.model, repeat_vision_features(vision, ids.shape[0]), ids, mask,
                    self.settings["mask_source"], int(self.settings["mask_topk"]))
            logits.append(chunk_logits.float())
            presence.append(chunk_presence.float())
        return torch.cat(logits).cpu(), torch.cat(presence).sigmoid().cpu()

    def postprocess(self, model_outputs, threshold=None, presence_threshold=None, min_instance_area=None):
        threshold = float(self.settings["threshold"] if threshold is None else threshold)
        if presence_threshold is None:
            presence_threshold = float(self.settings["presence_threshold"])
        if min_instance_area is None:
            min_instance_area = int(self.settings["min_area"])
        results = []
        presence = model_outputs["presence"].numpy()  # [windows, P]
        for index, prompt in enumerate(model_outputs["prompts"]):
            logits, scores = model_outputs["logits"][:, index], presence[:, index]
            if len(model_outputs["boxes"]) == 1:
                probability = upsample_probability(logits[0], model_outputs["image_size"])  # [H, W] at the input size
            else:
                probability = blend_windows(logits, scores >= presence_threshold, model_outputs["boxes"],
                                            model_outputs["image_size"], model_outputs["ramp"])
            score = scores.max()
            label_map = prompt_instances(probability, float(score), threshold, presence_threshold, min_instance_area)
            results.append({
                "prompt": prompt,
                "mask": Image.fromarray((label_map > 0).astype(np.uint8) * 255, mode="L"),
                "score": float(score),
                "label_map": label_map,
                "instances": describe_instances(label_map, probability),
            })
        return results[0] if model_outputs["single"] else results


def blend_windows(logits: torch.Tensor, present: np.ndarray, boxes: list[tuple[int, int, int, int]],
                  image_size: tuple[int, int], ramp: int) -> np.ndarray:
    """One prompt's window logits [windows, h, w] -> probability [H, W] over the whole image.

    Each window's probability (zero where its own presence score is under the threshold) is
    weighted by `window_weight` and the weights are normalised pixel by pixel, so a pixel only one
    window covers keeps that window's value.
    """
    width, height = image_size
    total = np.zeros((height, width), np.float32)
    weights = np.zeros((height, width), np.float32)
    for window_logits, window_present, (x0, y0, x1, y1) in zip(logits, present, boxes):
        weight = window_weight(x1 - x0, y1 - y0, ramp)
        if window_present:
            total[y0:y1, x0:x1] += weight * upsample_probability(window_logits, (x1 - x0, y1 - y0))
        weights[y0:y1, x0:x1] += weight
    return total / weights


def describe_instances(label_map: np.ndarray, probability: np.ndarray) -> list[dict]:
    """Per instance id: bbox [x0, y0, x1, y1] (inclusive-exclusive), area in pixels, mean probability."""
    count = int(label_map.max())
    if count == 0:
        return []
    ids = label_map.ravel()
    areas = np.bincount(ids, minlength=count + 1)
    scores = np.bincount(ids, weights=probability.ravel(), minlength=count + 1) / np.maximum(areas, 1)
    instances = []
    for index, box in enumerate(ndimage.find_objects(label_map), start=1):
        if box is None:
            continue
        rows, cols = box
        instances.append({"id": index, "bbox": [cols.start, rows.start, cols.stop, rows.stop],
                          "area": int(areas[index]), "score": float(scores[index])})
    return instances
