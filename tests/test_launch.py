"""`accelerate launch pgat_hf/train.py` for a couple of steps, in one and in two real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def launch(tmp_path, launcher_args, extra=()):
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launcher_args,
        str(REPO / "pgat_hf" / "train.py"), "--config", str(REPO / "pgat_hf" / "recipes" / "demo.yaml"),
        "--output_dir", str(out), "--dataset_path", str(tmp_path / "data"),
        "--synthetic_num_train", "8", "--synthetic_num_test", "2", "--synthetic_image_size", "64",
        "--tiny_image_size", "64", "--tiny_hidden_size", "16", "--per_device_train_batch_size", "2",
        "--max_steps", "2", "--logging_steps", "1", "--save_steps", "2", "--report_to", "none",
        "--disable_tqdm", "true", *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def epochs_logged(out):
    state = json.load(open(out / "checkpoint-2" / "trainer_state.json"))
    return [entry["epoch"] for entry in state["log_history"] if "seg_loss" in entry]


def test_launch_one_process_trains_saves_and_reports(tmp_path):
    out, result = launch(tmp_path, ["--config_file", str(REPO / "accelerate_configs" / "cpu.yaml")])
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json",
            "robustness_report.json", "robustness_report.md"} <= set(os.listdir(out))
    report = json.load(open(out / "robustness_report.json"))
    assert set(report["summary"]["dice"]) == {"T1", "T2"}
    assert "Dice by task and prompt quality" in result.stdout
    assert epochs_logged(out) == [0.25, 0.5]  # 8 rows, batch 2, one process: 4 steps an epoch


def test_launch_two_processes(tmp_path):
    # `--cpu --num_processes 2` silently runs one process (DESIGN.md §5); --multi_gpu starts two.
    out, _ = launch(tmp_path, ["--config_file", str(REPO / "accelerate_configs" / "cpu_2proc.yaml")])
    assert epochs_logged(out) == [0.5, 1.0]  # global batch 4: two processes really ran
