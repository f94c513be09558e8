"""Shared fixtures: everything offline, tiny and built in-process."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A real dataset folder on disk: 16 train and 4 test tiles of 64 px."""
    from pgat_hf.synthetic import generate_synthetic_dataset

    out = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dataset(out, num_train=16, num_test=4, image_size=64, seed=0)
    return str(out)


@pytest.fixture(scope="session")
def synthetic_splits(synthetic_dir):
    from datasets import load_dataset

    return load_dataset(synthetic_dir, "synthetic")
