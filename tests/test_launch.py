"""`accelerate launch pgat_hf/train.py` for a couple of steps, in one and in two real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
STEPS = 2


def launch(tmp_path, launcher_args, extra=()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launcher_args,
        str(REPO / "pgat_hf" / "train.py"), "--config", str(REPO / "pgat_hf" / "recipes" / "demo.yaml"),
        "--output_dir", str(out), "--dataset_path", str(tmp_path / "data"),
        "--synthetic_num_train", "8", "--synthetic_num_test", "2", "--synthetic_image_size", "64",
        "--tiny_image_size", "64", "--tiny_hidden_size", "16",
        "--max_steps", str(STEPS), "--warmup_steps", "0", "--logging_steps", "1", "--save_steps", str(STEPS),
        "--report_to", "none", "--disable_tqdm", "true", *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def epochs_logged(out):
    state = json.load(open(out / f"checkpoint-{STEPS}" / "trainer_state.json"))
    return [entry["epoch"] for entry in state["log_history"] if "seg_loss" in entry]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """One process, batch 4: the reference for the two-process run (global batch 2 x 2)."""
    tmp_path = tmp_path_factory.mktemp("one_process")
    return launch(tmp_path, ["--config_file", str(REPO / "accelerate_configs" / "cpu.yaml")],
                  ["--per_device_train_batch_size", "4"])


def test_launch_one_process_trains_saves_and_reports(one_process):
    out, result = one_process
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json",
            "robustness_report.json", "robustness_report.md"} <= set(os.listdir(out))
    report = json.load(open(out / "robustness_report.json"))
    assert set(report["summary"]["dice"]) == {"T1", "T2"}
    assert "Dice by task and prompt quality" in result.stdout
    # Dice per held-out synonym, from the vocabulary saved with the data: the mean of its prompts.
    ductal = [r["dice"] for r in report["records"]
              if r["quality"] == "held_out_synonym" and " ductal " in f" {r['prompt']} "]
    if ductal:  # present only where the 2 test tiles hold epithelial prompt groups
        assert report["held_out_synonyms"]["epithelial/ductal"] == pytest.approx(sum(ductal) / len(ductal))
    assert len(report["held_out_synonyms"]) >= 2 and "T2 Dice by held-out synonym" in result.stdout
    assert epochs_logged(out) == [0.5, 1.0]  # 8 rows, batch 4, one process: 2 steps an epoch


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, one_process):
    """Two real CPU processes (DDP over gloo), 2 images each, vs one process with 4 images a step.

    Data order (accelerate's seeded sampler, batches dealt to ranks in turn), prompt draws and
    augmentation ((seed, epoch, row) only) are identical, DDP averages the two half-batch gradients
    into the full-batch mean, and grad clipping sees the reduced gradient: the weights agree up to
    float32 reduction order. Tolerance: atol 1e-5, while training moved the weights by > 1e-3.
    """
    # `--cpu --num_processes 2` silently runs one process (docs/design.md §5); --multi_gpu starts two.
    out, _ = launch(tmp_path, ["--config_file", str(REPO / "accelerate_configs" / "cpu_2proc.yaml")],
                    ["--per_device_train_batch_size", "2"])
    assert epochs_logged(out) == [0.5, 1.0]  # global batch 4: two processes really ran
    reference_dir, _ = one_process
    two, one = load_file(out / "model.safetensors"), load_file(reference_dir / "model.safetensors")
    assert two.keys() == one.keys()
    worst = max((two[k].float() - one[k].float()).abs().max().item() for k in one)
    assert worst < 1e-5, worst
    from pgat_hf.models.factory import build_tiny_model

    start, _, _ = build_tiny_model(seed=0, hidden_size=16, image_size=64)
    moved = max((one[k].float() - v.float()).abs().max().item() for k, v in start.state_dict().items() if k in one)
    assert moved > 1e-3, moved


@pytest.mark.parametrize("name, kind", [("cpu", "NO"), ("cpu_2proc", "MULTI_GPU"), ("gpu_bf16", "NO"),
                                        ("multi_gpu_ddp", "MULTI_GPU"), ("fsdp", "FSDP"),
                                        ("deepspeed_zero2", "DEEPSPEED"), ("multi_node", "MULTI_GPU")])
def test_accelerate_configs_parse(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "accelerate_configs" / f"{name}.yaml"))
    assert str(config.distributed_type).split(".")[-1] == kind
    if name == "fsdp":  # the wrapped layer classes must exist in transformers' SAM3 / CLIP modeling
        import importlib

        modeling_clip = importlib.import_module("transformers.models.clip.modeling_clip")
        modeling_sam3 = importlib.import_module("transformers.models.sam3.modeling_sam3")

        for cls in config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","):
            assert hasattr(modeling_sam3, cls) or hasattr(modeling_clip, cls), cls
    if name == "deepspeed_zero2":
        assert config.deepspeed_config["zero_stage"] == 2


KILL_BEFORE_MARKER = '''
import os, signal, sys
import pgat_hf.training.trainer as trainer_module
original = trainer_module.write_complete_marker
def die_before_marker(folder, step):
    if step == 4:  # rank 0, every file of checkpoint-4 written by both processes, no marker yet
        os.kill(os.getpid(), signal.SIGKILL)
    original(folder, step)
trainer_module.write_complete_marker = die_before_marker
from pgat_hf.train import main
main()
'''


def test_two_process_run_killed_in_a_checkpoint_resumes_from_the_complete_one(tmp_path):
    """DDP over two CPU processes, checkpoints every 2 steps; rank 0 dies while checkpoint-4 is
    unmarked. `--resume_from_checkpoint last` resumes from checkpoint-2 and ends on the weights of
    an uninterrupted two-process run."""
    config = ["--config_file", str(REPO / "accelerate_configs" / "cpu_2proc.yaml")]
    flags = ["--per_device_train_batch_size", "2", "--max_steps", "6", "--save_steps", "2"]
    wrapper = tmp_path / "killed_train.py"
    wrapper.write_text(KILL_BEFORE_MARKER)
    straight, _ = launch(tmp_path / "straight", config, flags)
    killed = tmp_path / "killed"
    killed.mkdir()
    command = [sys.executable, "-m", "accelerate.commands.launch", *config, str(wrapper),
               "--config", str(REPO / "pgat_hf" / "recipes" / "demo.yaml"), "--output_dir", str(killed / "out"),
               "--dataset_path", str(killed / "data"), "--synthetic_num_train", "8", "--synthetic_num_test", "2",
               "--synthetic_image_size", "64", "--tiny_image_size", "64", "--tiny_hidden_size", "16",
               "--warmup_steps", "0", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true", *flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=killed, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    out = killed / "out"
    assert (out / "checkpoint-2" / "pgat_checkpoint_complete.json").is_file()
    assert (out / "checkpoint-4").is_dir() and not (out / "checkpoint-4" / "pgat_checkpoint_complete.json").exists()
    resumed, run = launch(killed, config, flags + ["--resume_from_checkpoint", "last"])
    assert "removed" in run.stdout and "checkpoint-4: a kill interrupted its writing" in run.stdout
    assert run.stdout.count("'seg_loss'") == 4  # steps 3-6 trained here: it resumed from step 2
    assert (resumed / "checkpoint-4" / "pgat_checkpoint_complete.json").is_file()  # rewritten whole
    a, b = load_file(resumed / "model.safetensors"), load_file(straight / "model.safetensors")
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in b)
    assert worst < 1e-6, worst
