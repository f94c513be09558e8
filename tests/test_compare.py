"""The comparison runner: real training runs in child processes, cached results, mean ± sd tables."""

import json

import pytest
import yaml

from pgat_hf.compare import aggregate, main as compare_main, mapping_to_argv, run_argv, load_sweep


def write_sweep(tmp_path, synthetic_dir):
    base = {"dataset_path": synthetic_dir, "dataset_config": "synthetic", "tiny_hidden_size": 16,
            "tiny_image_size": 64, "max_steps": 3, "per_device_train_batch_size": 2, "learning_rate": 0.002,
            "save_strategy": "no", "eval_strategy": "no", "report_to": "none", "report_max_images": 2,
            "dataloader_pin_memory": False}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {"base": "base.yaml", "seeds": [0], "common": {"logging_steps": 1},
             "runs": {"baseline": {"num_prompts": 1, "lambda_group": 0.0, "beta_consistency": 0.0}, "pgat": {}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_runs_train_are_cached_and_tabulated(tmp_path, synthetic_dir, capsys):
    sweep_path = write_sweep(tmp_path, synthetic_dir)
    out = tmp_path / "runs"
    assert compare_main(["--sweep", str(sweep_path), "--out", str(out)]) == 0
    reports = {name: out / name / "seed0" / "robustness_report.json" for name in ("baseline", "pgat")}
    assert all(path.is_file() for path in reports.values())
    args = {name: json.loads((out / name / "seed0" / "pgat_training_args.json").read_text()) for name in reports}
    assert args["baseline"]["num_prompts"] == 1 and args["pgat"]["num_prompts"] == 3
    assert args["baseline"]["seed"] == args["pgat"]["seed"] == 0
    table = (out / "comparison.md").read_text()
    assert "| baseline | 1 |" in table and "| pgat | 1 |" in table
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    summary = json.loads(reports["pgat"].read_text())["summary"]
    assert rows["pgat"]["T2 Dice"]["mean"] == pytest.approx(summary["dice"]["T2"]["all"])
    stamps = {name: path.stat().st_mtime_ns for name, path in reports.items()}
    capsys.readouterr()
    assert compare_main(["--sweep", str(sweep_path), "--out", str(out)]) == 0
    assert "2 runs cached, 0 to train" in capsys.readouterr().out
    assert stamps == {name: path.stat().st_mtime_ns for name, path in reports.items()}


def test_every_recipe_of_a_seed_starts_from_the_same_weights(tmp_path, synthetic_dir):
    sweep = load_sweep(write_sweep(tmp_path, synthetic_dir))
    argv = run_argv(sweep, "baseline", 2, tmp_path / "x", {"max_steps": 7})
    joined = " ".join(argv)
    for flag in ("--seed 2", "--model_seed 2", "--prompt_seed 2", "--max_steps 7", "--num_prompts 1",
                 "--resume_from_checkpoint auto"):
        assert flag in joined, flag
    assert mapping_to_argv({"tasks": ["T1", "T2"], "augment": False}) == ["--tasks", "T1", "T2", "--augment", "false"]


def test_aggregate_is_mean_and_sample_sd_over_seeds():
    def summary(t2):
        return {"dice": {"T2": {"all": t2}}, "robustness": {}}

    row = aggregate([summary(0.7), summary(0.8), summary(0.9)])
    assert row["T2 Dice"]["mean"] == pytest.approx(0.8)
    assert row["T2 Dice"]["sd"] == pytest.approx(0.1)
    assert row["T2 Dice"]["n"] == 3 and "T1 Dice" not in row


def test_unknown_recipe_is_refused(tmp_path, synthetic_dir):
    with pytest.raises(SystemExit, match="unknown recipe"):
        compare_main(["--sweep", str(write_sweep(tmp_path, synthetic_dir)), "--only", "nope"])
