"""Bad rows stop training at load time with an error naming the row; nothing is stretched or skipped."""

import numpy as np
import pytest

from pgat_hf.data.dataset import encode_instance_map, instance_array, write_dataset_repo
from pgat_hf.data.synthetic import SYNTHETIC_CATEGORIES, make_synthetic_row
from pgat_hf.train import DataArguments, load_splits
from pgat_hf.training.arguments import PGATTrainingArguments


def no_t1_prompts(row):
    row["prompt_groups"][0].update(prompts=[], quality=[])


def short_instance_map(row):  # 48 x 64 labels for a 64 x 64 image: used to be stretched and trained on
    row["instance_map"] = encode_instance_map(instance_array(row["instance_map"])[:48])


def only_held_out_prompts(row):
    group = row["prompt_groups"][1]
    group["quality"] = ["held_out"] * len(group["prompts"])


def empty_prompt(row):
    row["prompt_groups"][2]["prompts"][0] = "  "


@pytest.mark.parametrize("corrupt, message", [
    (no_t1_prompts, "prompt group 0 has no prompts"),
    (short_instance_map, "size mismatch: image (64, 64), instance_map (48, 64)"),
    (only_held_out_prompts, "prompt group 1 (T2 'neoplastic') has no training prompt"),
    (empty_prompt, "prompt group 2 has an empty prompt"),
])
def test_bad_row_stops_training_naming_the_row(tmp_path, corrupt, message):
    rows = [make_synthetic_row(0, "train", i, image_size=64) for i in range(4)]
    corrupt(rows[2])
    test = [make_synthetic_row(0, "test", 0, image_size=64)]
    write_dataset_repo(tmp_path / "data", "bad", {"train": rows, "test": test}, SYNTHETIC_CATEGORIES)
    args = PGATTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    with pytest.raises(ValueError) as err:
        load_splits(DataArguments(dataset_path=str(tmp_path / "data"), dataset_config="bad"), args)
    assert "row 2 (image_id='synthetic-train-00002')" in str(err.value) and message in str(err.value)


def test_good_rows_pass(tmp_path):
    rows = [make_synthetic_row(0, "train", i, image_size=64) for i in range(3)]
    write_dataset_repo(tmp_path / "data", "good", {"train": rows, "test": rows[:1]}, SYNTHETIC_CATEGORIES)
    args = PGATTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    train, _, _ = load_splits(DataArguments(dataset_path=str(tmp_path / "data"), dataset_config="good"), args)
    assert len(train) == 3 and np.asarray(train[0]["image"]).shape == (64, 64, 3)
