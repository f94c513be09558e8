"""The model card of a LoRA adapter saved alone (lora_save_merged=false), `pgat-hf card` and
`pgat-hf push` on such a folder, and the card's note on prompts naming an absent category.

The adapter comes from a real train.py run on a tiny base saved to disk. The base is never loaded
for the card: a copy of the adapter naming facebook/sam3 (not reachable offline) renders too.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import load_file

from pgat_hf.commands.cli import main as cli_main
from pgat_hf.hub.model_card import absent_category_notes
from pgat_hf.hub.push import stage_upload

RECIPE = Path(__file__).resolve().parents[1] / "pgat_hf" / "recipes" / "demo.yaml"
REPO_ID = "pgat-test/tiny-adapter"
HUB_BASE = "facebook/sam3"


@pytest.fixture(scope="module")
def adapter_run(synthetic_dir, tmp_path_factory):
    """(adapter folder, base folder): train.py with --use_peft true --lora_save_merged false, 2 steps."""
    from pgat_hf.models.factory import build_tiny_model
    from pgat_hf.train import main as train_main

    root = tmp_path_factory.mktemp("adapter_run")
    base, out = root / "base", root / "adapter"
    for part in build_tiny_model(seed=0, hidden_size=16, image_size=64):  # model, tokenizer, image processor
        part.save_pretrained(base)
    train_main(["--config", str(RECIPE), "--dataset_path", synthetic_dir, "--synthetic_num_train", "16",
                "--synthetic_num_test", "4", "--synthetic_image_size", "64", "--model_name_or_path", str(base),
                "--use_peft", "true", "--lora_save_merged", "false", "--lora_r", "4", "--max_steps", "2",
                "--per_device_train_batch_size", "1", "--groups_per_image", "2", "--eval_strategy", "no",
                "--save_strategy", "no", "--report_to", "none", "--report_max_images", "1",
                "--output_dir", str(out), "--disable_tqdm", "true"])
    return out, base


def with_base(adapter_dir: Path, copy_dir: Path, base_model: str) -> Path:
    """A copy of the adapter folder whose adapter_config.json names `base_model`."""
    shutil.copytree(adapter_dir, copy_dir)
    config_path = copy_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_model
    config_path.write_text(json.dumps(config))
    return copy_dir


def adapter_parameter_count(folder: Path) -> int:
    return sum(tensor.numel() for tensor in load_file(folder / "adapter_model.safetensors").values())


def test_adapter_only_run_ends_with_a_card_naming_base_and_adapter(adapter_run):
    out, base = adapter_run
    files = set(os.listdir(out))
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "pgat_run.json"} <= files
    assert "config.json" not in files and "model.safetensors" not in files  # adapter only: no full checkpoint
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == str(base) and card.data.library_name == "peft"
    assert {"lora", "peft", "sam3"} <= set(card.data.tags)
    text = card.text
    assert "[More Information Needed]" not in text  # PEFT's placeholder card was replaced
    assert f"A **LoRA adapter** (PEFT) for `transformers.Sam3Model` on `{base}`" in text
    assert f'load_segmenter(adapter_dir, base_model="{base}")' in text
    assert f'PeftModel.from_pretrained(Sam3Model.from_pretrained("{base}"), "<your-org>/adapter")' in text
    assert "The weights alone:" not in text  # the full checkpoint's usage is replaced, not appended to
    assert f"| base model | `{base}` (this folder is a LoRA adapter on it" in text
    assert f"| parameters | {adapter_parameter_count(out):,} in the adapter" in text
    # inference settings from pgat_training_args.json (the recipe's), as the folder has no config.json
    assert "smaller than 8 pixels are dropped" in text and "presence score is below 0.5" in text
    assert "| input size | 64 × 64 px" in text and "| max steps | 2 |" in text


def test_card_command_regenerates_the_adapter_card_without_its_base(adapter_run, tmp_path, capsys):
    out, _ = adapter_run
    written = (out / "README.md").read_text()
    regenerated = tmp_path / "card.md"
    assert cli_main(["card", "--model", str(out), "--out", str(regenerated)]) == 0
    assert regenerated.read_text() == written  # the card is a function of the folder's files
    hub_based = with_base(out, tmp_path / "hub_based", HUB_BASE)  # offline: facebook/sam3 cannot be loaded
    assert cli_main(["card", "--model", str(hub_based), "--repo-id", REPO_ID]) == 0
    card = ModelCard.load(hub_based / "README.md")
    assert card.data.base_model == HUB_BASE and card.data.license_name == "sam-license"
    assert f"| base model | [{HUB_BASE}](https://huggingface.co/{HUB_BASE}) (this folder is a LoRA adapter" in card.text
    assert f'adapter_dir = snapshot_download("{REPO_ID}")' in card.text
    assert f'load_segmenter(adapter_dir, base_model="{HUB_BASE}")' in card.text
    assert capsys.readouterr().err == ""


def test_push_sends_an_adapter_on_a_hub_base_alone(adapter_run, tmp_path, monkeypatch):
    out, _ = adapter_run
    hub_based = with_base(out, tmp_path / "hub_based", HUB_BASE)
    staged = stage_upload(hub_based, REPO_ID, tmp_path / "staged", remote_code=False)
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
            "preprocessor_config.json", "pgat_training_args.json", "robustness_report.json"} <= set(staged)
    assert not {"config.json", "pipeline.py", "sam3_ops.py", "trainer_state.json"} & set(staged)
    card = (tmp_path / "staged" / "README.md").read_text()
    assert f"base_model: {HUB_BASE}" in card and f'PeftModel.from_pretrained(Sam3Model.from_pretrained("{HUB_BASE}"), ' \
                                                  f'"{REPO_ID}")' in card
    # Patched: the Hub's endpoints (no network in tests). The staging before them runs for real.
    sent = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: sent.setdefault("created", repo_id))
    monkeypatch.setattr(HfApi, "upload_folder",
                        lambda self, folder_path, repo_id, **kwargs: sent.update(files=sorted(os.listdir(folder_path))))
    assert cli_main(["push", "--model", str(hub_based), "--repo", REPO_ID, "--no-remote-code"]) == 0
    assert sent == {"created": REPO_ID, "files": staged}


@pytest.mark.parametrize("flags, message", [
    ([], "is a LoRA adapter (lora_save_merged=false) and the pipeline code needs a full checkpoint's config.json: "
         "push the adapter alone with --no-remote-code"),
    (["--no-remote-code"], "not a Hub id others can load: set base_model_name_or_path there"),
])
def test_push_refuses_an_adapter_it_cannot_publish_in_one_line(adapter_run, capsys, flags, message):
    """The run's adapter names its base as a local folder; without --no-remote-code the pipeline code cannot go."""
    out, base = adapter_run
    code = cli_main(["push", "--model", str(out), "--repo", REPO_ID, *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"pgat-hf push: error: {out} ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    if flags:
        assert repr(str(base)) in err


def t2_record(category: str, present: bool, dice: float, quality: str = "low") -> dict:
    return {"task": "T2", "category": category, "present": present, "quality": quality, "dice": dice}


def test_absent_categories_all_left_empty_say_so():
    records = [t2_record("inflammatory", True, 0.8), t2_record("inflammatory", False, 1.0),
               t2_record("neoplastic", True, 0.6, "high"), t2_record("neoplastic", False, 1.0, "high"),
               t2_record("neoplastic", False, 0.0, "held_out")]  # held-out framings are not counted
    [note] = absent_category_notes({"records": records})
    assert note == ("Prompts naming a category that is absent from the tile get an empty mask: they score "
                    "1.000 Dice (1 = empty) against 0.700 for present categories.")


def test_absent_category_marked_on_some_tiles_names_the_worst():
    records = [t2_record("inflammatory", True, 0.8), t2_record("inflammatory", False, 1.0),
               t2_record("neoplastic", True, 0.4), t2_record("neoplastic", False, 0.6)]
    [note] = absent_category_notes({"records": records})
    assert note.startswith("Prompts naming a category that is absent from the tile should give an empty mask; "
                           "they score 0.800 Dice (1 = empty) against 0.600 for present categories, worst for "
                           "neoplastic (0.600): the model marks look-alike nuclei.")
