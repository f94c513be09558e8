"""The checkpoint as others get it: stock transformers in a process without pgat_hf, a Hub repo id,
the pipeline as remote code, the model card, and `pgat-hf push`.

Only the Hub's endpoints are patched (HfApi.create_repo / upload_folder: they cannot be reached from
here; offline mode is tested unpatched); the hub-layout cache folder stands in for a downloaded repo.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import save_file

from pgat_hf.commands.cli import main as cli_main
from pgat_hf.hub.push import REMOTE_TASK, stage_upload

REPO_ID = "pgat-test/tiny-demo"
PROMPTS = ["all nuclei", "inflammatory nuclei"]

# Runs in a fresh interpreter where importing pgat_hf fails: only stock transformers is used.
STOCK_SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["pgat_hf"] = None  # any `import pgat_hf` now raises ImportError
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer, Sam3Model

    model_ref, inputs_path = sys.argv[1], sys.argv[2]
    inputs = load_file(inputs_path)
    for loader in (Sam3Model, AutoModel):
        model = loader.from_pretrained(model_ref).eval()
        assert type(model).__name__ == "Sam3Model", type(model)
        tokens = AutoTokenizer.from_pretrained(model_ref)(
            ["all nuclei", "inflammatory nuclei"], padding="max_length", max_length=32, return_tensors="pt")
        assert torch.equal(tokens["input_ids"], inputs["input_ids"])
        with torch.no_grad():
            out = model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                        attention_mask=inputs["attention_mask"])
        torch.testing.assert_close(out.semantic_seg, inputs["semantic_seg"], rtol=0, atol=1e-5)
        torch.testing.assert_close(out.pred_masks, inputs["pred_masks"], rtol=0, atol=1e-5)
        torch.testing.assert_close(out.presence_logits, inputs["presence_logits"], rtol=0, atol=1e-5)
    if len(sys.argv) > 3:  # the pipeline from the repo's own code
        from PIL import Image
        from transformers import pipeline
        seg = pipeline(model=model_ref, trust_remote_code=True)
        results = seg(Image.open(sys.argv[3]), prompts=["all nuclei", "inflammatory nuclei"])
        np.save(sys.argv[4], np.stack([np.asarray(r["mask"]) for r in results]))
    assert "pgat_hf" not in sys.modules or sys.modules["pgat_hf"] is None
    print("STOCK-OK")
""")


@pytest.fixture(scope="module")
def reference(trained_checkpoint, tmp_path_factory):
    """Inputs and the trained model's outputs, written as safetensors for the subprocess to compare."""
    folder, segmenter, tokenizer, _ = trained_checkpoint
    torch.manual_seed(0)
    pixel_values = torch.randn(2, 3, 64, 64)
    tokens = tokenizer(PROMPTS, padding="max_length", max_length=32, return_tensors="pt")
    with torch.no_grad():
        out = segmenter.model(pixel_values=pixel_values, **tokens)
    path = tmp_path_factory.mktemp("reference") / "inputs.safetensors"
    save_file({"pixel_values": pixel_values, "input_ids": tokens["input_ids"].contiguous(),
               "attention_mask": tokens["attention_mask"].contiguous(), "semantic_seg": out.semantic_seg.contiguous(),
               "pred_masks": out.pred_masks.contiguous(), "presence_logits": out.presence_logits.contiguous()}, path)
    return path


def run_stock(args, env_extra=None, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    result = subprocess.run([sys.executable, "-c", STOCK_SCRIPT, *map(str, args)], capture_output=True, text=True,
                            env=env, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STOCK-OK" in result.stdout


def test_checkpoint_folder_loads_in_stock_transformers_without_pgat_hf(trained_checkpoint, reference, tmp_path):
    folder = trained_checkpoint[0]
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    run_stock([folder, reference], cwd=tmp_path)


def make_hub_cache(cache_dir, repo_id, files_dir, revision="0123456789abcdef0123456789abcdef01234567"):
    """Lay files out the way huggingface_hub caches a downloaded repo: models--org--name/snapshots/<sha>/."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for path in files_dir.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


def test_pushed_files_load_by_repo_id_and_pipeline_runs_as_remote_code(trained_checkpoint, reference, tmp_path):
    """What push would upload, placed in a hub cache: stock load by id, and the pipeline without pgat_hf."""
    from transformers import pipeline

    folder, *_ = trained_checkpoint
    staged = tmp_path / "staged"
    stage_upload(folder, REPO_ID, staged)
    cache = tmp_path / "hub"
    make_hub_cache(cache, REPO_ID, staged)
    image_path = tmp_path / "tile.png"
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(image_path)
    remote_masks = tmp_path / "remote_masks.npy"
    run_stock([REPO_ID, reference, image_path, remote_masks],
              env_extra={"HF_HUB_CACHE": str(cache), "HF_MODULES_CACHE": str(tmp_path / "modules")}, cwd=tmp_path)
    local = pipeline("text-guided-nuclei-segmentation", model=str(folder))(str(image_path), prompts=PROMPTS)
    np.testing.assert_array_equal(np.load(remote_masks), np.stack([np.asarray(r["mask"]) for r in local]))


def test_push_sends_checkpoint_card_and_code_only(trained_checkpoint, tmp_path, monkeypatch):
    folder, *_ = trained_checkpoint
    (folder / "checkpoint-2").mkdir(exist_ok=True)  # trainer checkpoints and logs stay local
    (folder / "runs").mkdir(exist_ok=True)
    sent = {}

    # Patched: the Hub's upload endpoint (no network in tests). Everything before it runs for real.
    def fake_create_repo(self, repo_id, **kwargs):
        sent["created"] = (repo_id, kwargs.get("private"))

    def fake_upload_folder(self, folder_path, repo_id, **kwargs):
        sent["repo_id"] = repo_id
        sent["files"] = {p: Path(folder_path, p).read_bytes() for p in os.listdir(folder_path)}

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    assert cli_main(["push", "--model", str(folder), "--repo", REPO_ID, "--private"]) == 0
    assert sent["created"] == (REPO_ID, True) and sent["repo_id"] == REPO_ID
    names = set(sent["files"])
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
            "README.md", "robustness_report.json", "pipeline.py", "sam3_ops.py"} <= names
    assert not any(n.startswith(("checkpoint-", "runs")) or n.endswith((".bin", ".pt")) for n in names)
    config = json.loads(sent["files"]["config.json"])
    assert config["custom_pipelines"][REMOTE_TASK]["impl"] == "pipeline.TextGuidedNucleiSegmentationPipeline"
    assert config["pgat_inference"]["mask_source"] == "semantic"
    card = sent["files"]["README.md"].decode()
    assert REPO_ID in card and "model-index" in card
    # pickles are refused before anything is sent, or the repo is even created
    (folder / "training_args.bin").write_bytes(b"pickle")
    try:
        sent.clear()
        assert cli_main(["push", "--model", str(folder), "--repo", REPO_ID]) == 2
        assert sent == {}
    finally:
        (folder / "training_args.bin").unlink()


@pytest.fixture
def hub_calls(monkeypatch):
    """HfApi.create_repo and upload_folder record their calls instead of making them: the Hub's
    endpoints cannot be reached from here. Everything before them runs for real."""
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: calls.append(("create_repo", repo_id)))
    monkeypatch.setattr(HfApi, "upload_folder",
                        lambda self, folder_path, repo_id, **kwargs: calls.append(("upload_folder", repo_id)))
    return calls


def trainer_checkpoint_folder(folder, out):
    """A copy of the checkpoint laid out as the Trainer writes checkpoint-N: its state as pickles."""
    import shutil

    shutil.copytree(folder, out)
    for name in ("optimizer.pt", "rng_state.pth", "scheduler.pt"):
        (out / name).write_bytes(b"\x80\x04pickle")
    (out / "trainer_state.json").write_text("{}")
    return out


def push_cli(args, capsys):
    """(exit code, stderr) of `pgat-hf push ARGS`; a traceback would escape as an exception."""
    code = cli_main(["push", *args])
    return code, capsys.readouterr().err


def test_a_folder_that_cannot_be_published_creates_no_repo(trained_checkpoint, tmp_path, hub_calls, capsys):
    from pgat_hf.hub.push import push_to_hub

    checkpoint = trainer_checkpoint_folder(trained_checkpoint[0], tmp_path / "checkpoint-4")
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        push_to_hub(tmp_path / "outptus", REPO_ID)  # a mistyped --model
    with pytest.raises(ValueError, match=r"\['optimizer.pt', 'rng_state.pth', 'scheduler.pt'\].*trainer checkpoint"):
        push_to_hub(checkpoint, REPO_ID)
    assert hub_calls == []
    for folder, message in ((tmp_path / "outptus", "outptus is not a checkpoint folder"),
                            (checkpoint, "push the training output folder above it")):
        code, err = push_cli(["--model", str(folder), "--repo", REPO_ID], capsys)
        assert code == 2 and err.startswith("pgat-hf push: error: ") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert hub_calls == []


def test_a_bad_repo_id_is_one_line_before_any_hub_call(trained_checkpoint, hub_calls, capsys):
    code, err = push_cli(["--model", str(trained_checkpoint[0]), "--repo", "not a repo id"], capsys)
    assert code == 2 and err.startswith("pgat-hf push: error: --repo 'not a repo id' is not a Hub repo id (ORG/NAME)")
    assert err.count("\n") == 1 and hub_calls == []


def test_offline_mode_is_one_line(trained_checkpoint, capsys):
    """Not patched: conftest sets HF_HUB_OFFLINE=1, so the real create_repo refuses to connect."""
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE
    code, err = push_cli(["--model", str(trained_checkpoint[0]), "--repo", REPO_ID], capsys)
    assert code == 2 and err == "pgat-hf push: error: offline mode is on (HF_HUB_OFFLINE=1): unset it to push\n"


@pytest.mark.parametrize("status, server_message, expected", [
    (401, "Invalid credentials in Authorization header", "HTTP 401 from the Hub: the Hub did not accept the token"),
    (403, "You don't have the rights to create a model under the namespace \"pgat-test\"",
     f"HTTP 403 from the Hub: the token may not create or write {REPO_ID}"),
    (404, "Not Found", f"HTTP 404 from the Hub: the Hub found no {REPO_ID}"),
])
def test_hub_refusals_are_one_line(trained_checkpoint, monkeypatch, capsys, status, server_message, expected):
    """create_repo raises what huggingface_hub raises for a real response of that status (built by
    its own hf_raise_for_status), as the Hub cannot be reached from here."""
    import importlib

    from huggingface_hub.errors import Response
    from huggingface_hub.utils import hf_raise_for_status

    http = importlib.import_module(Response.__module__.split(".")[0])  # httpx or httpx2, as the Hub client uses
    response = http.Response(status, json={"error": server_message},
                             request=http.Request("POST", "https://huggingface.co/api/repos/create"))
    uploads = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: hf_raise_for_status(response))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kwargs: uploads.append(kwargs))
    code, err = push_cli(["--model", str(trained_checkpoint[0]), "--repo", REPO_ID], capsys)
    assert code == 2 and err.startswith(f"pgat-hf push: error: {expected}") and server_message in err
    assert err.count("\n") == 1 and uploads == []


def test_model_card_is_generated_from_the_run(trained_checkpoint, tmp_path, capsys):
    folder, *_ = trained_checkpoint
    card = ModelCard.load(folder / "README.md")  # written by the fixture, as training writes it
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    report = json.loads((folder / "robustness_report.json").read_text())
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results["Dice T1 (low prompts)"] == pytest.approx(report["summary"]["dice"]["T1"]["low"], abs=1e-4)
    text = card.text
    for expected in ("prompts per group K | 3", "λ (group loss)", "group_loss_mode", "held_out", "Licences",
                     "Sam3Model.from_pretrained", "synthetic",
                     "an image larger than the 64-pixel training tiles in overlapping windows"):
        assert expected in text, expected
    # `pgat-hf card` regenerates it, with a repo id in the snippets and a plot embedded if present
    from PIL import Image

    Image.new("RGB", (8, 8), "white").save(folder / "dice_per_quality.png")
    out = tmp_path / "card.md"
    assert cli_main(["card", "--model", str(folder), "--repo-id", REPO_ID, "--out", str(out)]) == 0
    regenerated = out.read_text()
    assert f'model="{REPO_ID}"' in regenerated and "![dice_per_quality.png](dice_per_quality.png)" in regenerated
    (folder / "dice_per_quality.png").unlink()
    capsys.readouterr()
    assert cli_main(["card", "--model", str(tmp_path)]) == 2  # one line, no traceback (commands/card.py)
    error = capsys.readouterr().err
    assert error.startswith("pgat-hf card: error: ") and "not a checkpoint folder" in error


def test_card_lists_the_loss_settings_that_apply():
    from pgat_hf.hub.model_card import card_hyperparameters

    focal = dict(card_hyperparameters({"mask_loss": "focal", "mask_loss_weight": 20.0, "dice_loss_weight": 1.0,
                                       "bce_pos_weight": 3.0, "max_steps": 1000, "num_train_epochs": 3}))
    assert focal["mask loss weight"] == 20.0 and focal["dice loss weight"] == 1.0
    assert "BCE pos_weight" not in focal and "epochs" not in focal  # neither shaped this run
    bce = dict(card_hyperparameters({"mask_loss": "bce", "bce_pos_weight": 1.0, "max_steps": -1,
                                     "num_train_epochs": 3}))
    assert bce["BCE pos_weight"] == 1.0 and bce["epochs"] == 3


def test_he_figure_on_the_real_stardist_tile(trained_checkpoint, tmp_path):
    from PIL import Image

    from pgat_hf.hub.showcase import load_he_tile, render_he_figure

    tile = load_he_tile()
    assert tile.shape == (300, 300, 3) and tile.dtype == np.uint8 and tile.std() > 10  # real tissue, not blank
    path = render_he_figure(str(trained_checkpoint[0]), str(tmp_path / "he.png"))
    with Image.open(path) as figure:
        assert figure.size[0] > 600 and figure.size[1] > 300
