"""Shared fixtures: everything offline, tiny and built in-process.

Every cache a test run writes (datasets, Hub, matplotlib) lives in a fresh temporary folder, so a
suite never reads what an earlier run left behind; child processes inherit the same folders.
"""

import os
import tempfile

_CACHE_ROOT = tempfile.mkdtemp(prefix="pgat-test-caches-")
for _name, _sub in (("HF_HOME", "hf"), ("HF_DATASETS_CACHE", "datasets"), ("MPLCONFIGDIR", "matplotlib")):
    os.environ[_name] = os.path.join(_CACHE_ROOT, _sub)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A real dataset folder on disk: 16 train and 4 test tiles of 64 px."""
    from pgat_hf.data.synthetic import generate_synthetic_dataset

    out = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dataset(out, num_train=16, num_test=4, image_size=64, seed=0)
    return str(out)


@pytest.fixture(scope="session")
def synthetic_splits(synthetic_dir):
    from pgat_hf.data.dataset import load_prompt_dataset

    return load_prompt_dataset(synthetic_dir, "synthetic")


@pytest.fixture(scope="session")
def trained_checkpoint(synthetic_splits, tmp_path_factory):
    """A tiny model trained 4 PGAT steps, saved the way training saves it, with its report and card.

    Returns (folder, segmenter, tokenizer, image_processor): the in-memory model is the one saved.
    """
    import json

    from pgat_hf import PGATTrainer
    from pgat_hf import PGATTrainingArguments
    from pgat_hf import PromptGroupCollator
    from pgat_hf.models.factory import build_tiny_model, make_segmenter
    from pgat_hf.hub.model_card import write_model_card

    folder = tmp_path_factory.mktemp("checkpoint")
    model, tokenizer, image_processor = build_tiny_model(seed=0, hidden_size=16, image_size=64)
    args = PGATTrainingArguments(output_dir=str(folder), max_steps=4, per_device_train_batch_size=2,
                                 learning_rate=2e-3, save_strategy="no", report_to="none", disable_tqdm=True,
                                 dataloader_pin_memory=False, use_cpu=True, seed=0, eval_max_images=2)
    collator = PromptGroupCollator(tokenizer=tokenizer, image_processor=image_processor, num_prompts=args.num_prompts,
                                   groups_per_image=args.groups_per_image, tasks=tuple(args.tasks), seed=0)
    segmenter = make_segmenter(model, args.mask_source)
    trainer = PGATTrainer(model=segmenter, args=args, train_dataset=synthetic_splits["train"],
                          eval_dataset=synthetic_splits["test"], data_collator=collator, processing_class=tokenizer,
                          image_processor=image_processor)
    trainer.train()
    trainer.save_model(str(folder))
    trainer.evaluate()
    with open(folder / "robustness_report.json", "w") as handle:
        json.dump(trainer.last_robustness, handle)
    write_model_card(folder)
    return folder, segmenter.eval(), tokenizer, image_processor
