"""PromptGroupCollator: shapes, determinism from (seed, epoch, row), masks and resampling."""

import numpy as np
import pytest
import torch

from pgat_hf.training.collator import PromptGroupCollator
from pgat_hf.data.dataset import class_array, group_mask, instance_array
from pgat_hf.models.image_processing import NucleiImageProcessor
from pgat_hf.data.prompts import prompt_vocabulary
from pgat_hf.models.tokenizer import train_word_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_word_tokenizer(prompt_vocabulary())


def make_collator(tokenizer, **kwargs):
    defaults = dict(image_processor=NucleiImageProcessor(image_size=64), num_prompts=3, groups_per_image=3)
    return PromptGroupCollator(tokenizer=tokenizer, **{**defaults, **kwargs})


def decode(tokenizer, input_ids):
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in input_ids.reshape(-1, input_ids.shape[-1])]


def roundtrip(tokenizer, prompts):
    """Prompts as they read back from token ids (punctuation becomes its own word)."""
    return decode(tokenizer, tokenizer(prompts, padding="max_length", max_length=32, return_tensors="pt")["input_ids"])


def test_shapes_and_value_ranges(tokenizer, synthetic_splits):
    rows = [synthetic_splits["train"][i] for i in range(4)]
    batch = make_collator(tokenizer)(rows)
    assert batch["pixel_values"].shape == (4, 3, 64, 64)
    assert batch["input_ids"].shape == (4, 3, 3, 32)
    assert batch["attention_mask"].shape == (4, 3, 3, 32)
    assert batch["target_masks"].shape == (4, 3, 64, 64)
    assert batch["present"].shape == (4, 3)
    assert set(batch["target_masks"].unique().tolist()) <= {0.0, 1.0}
    assert -1.0 <= batch["pixel_values"].min() and batch["pixel_values"].max() <= 1.0


def test_same_seed_epoch_row_gives_same_batch(tokenizer, synthetic_splits):
    rows = [synthetic_splits["train"][i] for i in range(4)]
    first, second = make_collator(tokenizer)(rows), make_collator(tokenizer)(rows)
    for key in first:
        assert torch.equal(first[key], second[key]), key
    # A row's draw does not depend on its batch neighbours (multi-process runs split batches).
    alone = make_collator(tokenizer)(rows[1:2])
    assert torch.equal(alone["input_ids"][0], first["input_ids"][1])
    assert torch.equal(alone["pixel_values"][0], first["pixel_values"][1])


def test_epoch_and_seed_change_the_draw(tokenizer, synthetic_splits):
    rows = [synthetic_splits["train"][i] for i in range(8)]
    base = make_collator(tokenizer)(rows)["input_ids"]
    assert not torch.equal(base, make_collator(tokenizer, epoch=1)(rows)["input_ids"])
    assert not torch.equal(base, make_collator(tokenizer, seed=1)(rows)["input_ids"])


def test_prompts_and_masks_come_from_the_chosen_groups(tokenizer, synthetic_splits):
    row = synthetic_splits["train"][0]
    collator = make_collator(tokenizer, augment=False, groups_per_image=5, num_prompts=2)
    batch = collator([row])
    texts = decode(tokenizer, batch["input_ids"][0])
    instances, classes = instance_array(row["instance_map"]), class_array(row["class_map"])
    held_out = {p for g in row["prompt_groups"] for p, q in zip(roundtrip(tokenizer, g["prompts"]), g["quality"])
                if q == "held_out"}
    assert not held_out & set(texts), "held-out phrasings must never be trained on"
    for g in range(5):
        pair = texts[2 * g: 2 * g + 2]
        owners = [grp for grp in row["prompt_groups"] if set(pair) <= set(roundtrip(tokenizer, grp["prompts"]))]
        assert owners, f"prompts {pair} are not from one group"
        expected = group_mask(owners[0], instances, classes)
        assert np.array_equal(batch["target_masks"][0, g].numpy().astype(bool), expected)
        assert batch["present"][0, g].item() == float(owners[0]["present"])


def test_short_groups_are_resampled_and_counted(tokenizer, synthetic_splits):
    rows = [synthetic_splits["train"][i] for i in range(2)]
    # 2 prompts per quality × 3 training qualities = 6 per group; K=8 must resample.
    batch = make_collator(tokenizer, num_prompts=8, groups_per_image=2)(rows)
    assert batch["resampled_groups"].item() == 4
    assert make_collator(tokenizer)(rows)["resampled_groups"].item() == 0


def test_task_filter(tokenizer, synthetic_splits):
    rows = [synthetic_splits["train"][i] for i in range(3)]
    batch = make_collator(tokenizer, tasks=("T1",), groups_per_image=1, augment=False)(rows)
    for i, row in enumerate(rows):
        assert np.array_equal(batch["target_masks"][i, 0].numpy().astype(bool), instance_array(row["instance_map"]) > 0)
