"""PromptGroupCollator: per image, G prompt groups × K prompts, drawn from (seed, epoch, row) only."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from pgat_hf.data.vocabulary import TASKS
from pgat_hf.data.dataset import class_array, group_mask, instance_array
from pgat_hf.models.image_processing import NucleiImageProcessor
from pgat_hf.data.prompts import QUALITIES
from pgat_hf.models.tokenizer import tokenize_prompts


def row_rng(seed: int, epoch: int, image_id: str) -> np.random.Generator:
    """The only source of randomness for a row: identical in every process and after a resume."""
    return np.random.default_rng([seed, epoch, zlib.crc32(image_id.encode("utf-8"))])


def augment_arrays(rng: np.random.Generator, image: np.ndarray, masks: np.ndarray):
    """Same random flip + 90° rotation for image [H, W, 3] and masks [G, H, W]."""
    turns = int(rng.integers(4))
    flip = bool(rng.integers(2))
    image = np.rot90(image, turns, axes=(0, 1))
    masks = np.rot90(masks, turns, axes=(1, 2))
    if flip:
        image, masks = image[:, ::-1], masks[:, :, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(masks)


@dataclass
class PromptGroupCollator:
    """Turns dataset rows (docs/design.md §3) into one PGAT batch.

    Output: pixel_values [B, 3, S, S]; input_ids, attention_mask [B, G, K, L];
    target_masks [B, G, S, S] (0/1 float); present [B, G]; resampled_groups [] (how many
    groups had fewer than K training prompts and were sampled with replacement).
    """

    tokenizer: object
    image_processor: NucleiImageProcessor
    num_prompts: int = 3
    groups_per_image: int = 3
    tasks: tuple[str, ...] = TASKS
    seed: int = 0
    max_text_length: int = 32
    augment: bool = True
    epoch: int = 0
    qualities: tuple[str, ...] = field(default=QUALITIES)  # held-out phrasings never reach training

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        pixel_values, prompts, masks, present = [], [], [], []
        resampled = 0
        for row in rows:
            rng = row_rng(self.seed, self.epoch, row["image_id"])
            groups = self.pick_groups(rng, row)
            row_prompts = []
            for group in groups:
                picked, short = self.pick_prompts(rng, group)
                resampled += short
                row_prompts.extend(picked)
            image, group_masks = self.load_arrays(row, groups)
            if self.augment:
                image, group_masks = augment_arrays(rng, image, group_masks)
            pixel_values.append(self.image_processor.preprocess_array(image))
            masks.append(group_masks)
            present.append([float(group["present"]) for group in groups])
            prompts.extend(row_prompts)
        tokens = tokenize_prompts(self.tokenizer, prompts, self.max_text_length)
        shape = (len(rows), self.groups_per_image, self.num_prompts, -1)
        # Batches are assembled in numpy and handed to torch once (see sam3_ops.normalize_image).
        return {
            "pixel_values": torch.from_numpy(np.stack(pixel_values)),
            "input_ids": tokens["input_ids"].reshape(shape),
            "attention_mask": tokens["attention_mask"].reshape(shape),
            "target_masks": torch.from_numpy(np.stack(masks).astype(np.float32)),
            "present": torch.tensor(present, dtype=torch.float32),
            "resampled_groups": torch.tensor(float(resampled)),
        }

    def eligible_groups(self, row: dict) -> list[dict]:
        groups = [g for g in row["prompt_groups"] if g["task"] in self.tasks and self.training_prompts(g)]
        if not groups:
            raise ValueError(f"row {row.get('image_id')!r} has no prompt group of tasks {self.tasks}")
        return groups

    def training_prompts(self, group: dict) -> list[str]:
        return [p for p, q in zip(group["prompts"], group["quality"]) if q in self.qualities]

    def pick_groups(self, rng: np.random.Generator, row: dict) -> list[dict]:
        """G distinct groups when the row has enough, else with replacement."""
        groups = self.eligible_groups(row)
        replace = len(groups) < self.groups_per_image
        order = rng.choice(len(groups), size=self.groups_per_image, replace=replace)
        return [groups[i] for i in order]

    def pick_prompts(self, rng: np.random.Generator, group: dict) -> tuple[list[str], int]:
        """K prompts in shuffled order (so the consistency reference Z_1 is random); 1 if resampled."""
        candidates = self.training_prompts(group)
        short = len(candidates) < self.num_prompts
        order = rng.choice(len(candidates), size=self.num_prompts, replace=short)
        return [candidates[i] for i in order], int(short)

    def load_arrays(self, row: dict, groups: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """RGB image [S, S, 3] uint8 and the groups' masks [G, S, S] bool at the model's input size."""
        size = self.image_processor.image_size
        image = row["image"].convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size))
        instances = self.image_processor.resize_mask(instance_array(row["instance_map"]))
        classes = self.image_processor.resize_mask(class_array(row["class_map"]))
        masks = np.stack([group_mask(group, instances, classes) for group in groups])
        return np.asarray(image), masks
