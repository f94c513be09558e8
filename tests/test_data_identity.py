"""A dataset folder loads as exactly what is on disk: no other folder's cached rows, no stale build."""

import json

from pgat_hf.data.synthetic import SETTINGS_FILE, ensure_synthetic_dataset, generate_synthetic_dataset
from pgat_hf.train import DataArguments, load_splits
from pgat_hf.training.arguments import PGATTrainingArguments


def splits_for(path, tmp_path, **data):
    args = PGATTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    return load_splits(DataArguments(dataset_path=str(path), **data), args)


def test_two_folders_of_one_name_load_their_own_rows(tmp_path):
    # datasets keys a folder's cache by its name ("data"), so the second folder used to get the
    # first one's 3 rows from the shared cache.
    generate_synthetic_dataset(tmp_path / "A" / "data", num_train=3, num_test=1, image_size=32)
    generate_synthetic_dataset(tmp_path / "B" / "data", num_train=5, num_test=2, image_size=32, seed=1)
    train_a, _, test_a = splits_for(tmp_path / "A" / "data", tmp_path, dataset_config="synthetic",
                                    synthetic_num_train=3, synthetic_num_test=1, synthetic_image_size=32)
    train_b, _, test_b = splits_for(tmp_path / "B" / "data", tmp_path, dataset_config="synthetic",
                                    synthetic_num_train=5, synthetic_num_test=2, synthetic_image_size=32,
                                    synthetic_seed=1)
    assert (len(train_a), len(test_a), len(train_b), len(test_b)) == (3, 1, 5, 2)
    assert train_a[0]["image_id"] == train_b[0]["image_id"] == "synthetic-train-00000"
    assert train_a[0]["image"].tobytes() != train_b[0]["image"].tobytes()  # seed 1's tile, not seed 0's


def test_a_synthetic_folder_built_with_other_settings_is_rebuilt(tmp_path, capsys):
    data = tmp_path / "data"
    train, validation, test = splits_for(data, tmp_path, dataset_config="synthetic", synthetic_num_train=4,
                                         synthetic_num_test=1, synthetic_num_validation=2, synthetic_image_size=32)
    assert (len(train), len(validation), len(test)) == (4, 2, 1)
    settings = data / "synthetic" / SETTINGS_FILE
    stamp = settings.stat().st_mtime_ns
    # Same settings: reused as it is.
    ensure_synthetic_dataset(data, num_train=4, num_test=1, num_validation=2, image_size=32)
    assert settings.stat().st_mtime_ns == stamp
    # --synthetic_num_train 6 on the same folder: rebuilt, and the run trains on 6 rows.
    train, _, _ = splits_for(data, tmp_path, dataset_config="synthetic", synthetic_num_train=6,
                             synthetic_num_test=1, synthetic_num_validation=2, synthetic_image_size=32)
    assert len(train) == 6 and json.loads(settings.read_text())["num_train"] == 6
    assert "its settings differ from the recipe's (num_train)" in capsys.readouterr().out


def test_without_a_validation_split_evaluations_use_the_test_split(tmp_path):
    data = tmp_path / "data"
    train, validation, test = splits_for(data, tmp_path, dataset_config="synthetic", synthetic_num_train=2,
                                         synthetic_num_test=1, synthetic_image_size=32)
    assert validation is test or list(validation["image_id"]) == list(test["image_id"])
