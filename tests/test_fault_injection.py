"""Kills at five moments of a training run, three of them inside a checkpoint write: resuming with
`last` always finds a complete checkpoint and reaches the uninterrupted run's weights."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pgat_hf.training.checkpoints import COMPLETE_MARKER, resolve_resume

TESTS = Path(__file__).resolve().parent

# The child trains 8 steps with a checkpoint every 4 and SIGKILLs itself at one moment of step 8's
# checkpoint (or at step 6, between checkpoints). Each moment patches the method that runs then.
CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from transformers import Trainer, TrainerCallback
    import pgat_hf.training.trainer as trainer_module
    from pgat_hf.data.dataset import load_prompt_dataset
    from test_trainer import make_trainer

    MOMENT = {moment!r}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def kill_at_step_8(name, module, after=False):
        original = getattr(module, name)
        def patched(self, *args, **kwargs):
            if self.state.global_step == 8 and not after:
                die()
            result = original(self, *args, **kwargs)
            if self.state.global_step == 8 and after:
                die()
            return result
        setattr(module, name, patched)

    if MOMENT == "after_weights":          # weights written, nothing else
        kill_at_step_8("_save_optimizer_and_scheduler", Trainer)
    elif MOMENT == "after_optimizer":      # weights + optimizer, no RNG state or trainer_state.json
        kill_at_step_8("_save_rng_state", Trainer)
    elif MOMENT == "before_marker":        # every file but the completion marker
        original = trainer_module.write_complete_marker
        def patched(folder, step):
            if step == 8:
                die()
            original(folder, step)
        trainer_module.write_complete_marker = patched
    elif MOMENT == "mid_weights":          # inside the weights file: a truncated model.safetensors
        import transformers.modeling_utils as modeling_utils
        original = modeling_utils.safe_save_file  # what save_pretrained writes the weights with
        def truncated(tensors, filename, metadata=None):
            if "checkpoint-8" in str(filename):
                with open(filename, "wb") as handle:
                    handle.write(b"half a file")
                die()
            return original(tensors, filename, metadata=metadata)
        modeling_utils.safe_save_file = truncated

    STEPS_RUN = []

    class KillBetweenCheckpoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            STEPS_RUN.append(state.global_step)
            if MOMENT == "between_checkpoints" and state.global_step == 6:
                die()

    trainer = make_trainer(load_prompt_dataset({data!r}, "synthetic"), {out!r}, max_steps=8,
                           save_strategy="steps", save_steps=4, **{extra!r})
    trainer.add_callback(KillBetweenCheckpoints())
    trainer.train(resume_from_checkpoint={resume!r})
    trainer.save_model({out!r} + "/final")  # reached only by the runs that are not killed
    print("steps run:", STEPS_RUN)
""")


def train_in_child(out, data, moment="none", extra=None, resume=None, threads=1):
    """One training process (killed at `moment`, or run to the end and saved to OUT/final).

    Every run of a comparison trains in its own fresh process with the same thread count, so
    the weights depend on nothing an earlier test left in this process."""
    script = CHILD.format(tests=str(TESTS), moment=moment, data=data, out=str(out), extra=extra or {}, resume=resume)
    return subprocess.run([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                          capture_output=True, text=True, timeout=600)

MOMENTS = ["between_checkpoints", "mid_weights", "after_weights", "after_optimizer", "before_marker"]
LORA = dict(use_peft=True, lora_r=4, lora_alpha=8.0, learning_rate=1e-2, freeze_text_encoder=True)
CASES = [(moment, {}) for moment in MOMENTS] + [("after_optimizer", LORA)]  # + a LoRA run: adapter checkpoints


@pytest.fixture(scope="module")
def straight_weights(synthetic_dir, tmp_path_factory):
    """The uninterrupted 8-step run's weights, per training setting (computed once each)."""
    cache = {}

    def weights(extra: dict):
        key = tuple(sorted(extra.items()))
        if key not in cache:
            out = tmp_path_factory.mktemp("straight")
            run = train_in_child(out, synthetic_dir, extra=extra)
            assert run.returncode == 0, run.stderr[-3000:]
            cache[key] = load_file(out / "final" / "model.safetensors")
        return cache[key]

    return weights


@pytest.mark.parametrize("moment, extra", CASES, ids=[m + ("-lora" if e else "") for m, e in CASES])
def test_kill_at_any_moment_resumes_from_the_newest_complete_checkpoint(
        moment, extra, synthetic_dir, straight_weights, tmp_path):
    out = tmp_path / "run"
    child = train_in_child(out, synthetic_dir, moment=moment, extra=extra)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert (out / "checkpoint-4" / COMPLETE_MARKER).is_file()
    assert not (out / "checkpoint-8" / COMPLETE_MARKER).exists()
    if moment != "between_checkpoints":
        assert (out / "checkpoint-8").is_dir()  # the half-written folder a plain `last` would have picked

    resume = resolve_resume("last", out)
    assert resume == str(out / "checkpoint-4") and not (out / "checkpoint-8").exists()
    resumed = train_in_child(out, synthetic_dir, extra=extra, resume=resume)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "steps run: [5, 6, 7, 8]" in resumed.stdout  # it resumed after step 4
    actual = load_file(out / "final" / "model.safetensors")
    for name, expected in straight_weights(extra).items():
        torch.testing.assert_close(actual[name], expected, atol=1e-6, rtol=1e-5, msg=name)


def test_an_explicit_incomplete_checkpoint_is_refused(tmp_path):
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="checkpoint-3: the checkpoint is incomplete"):
        resolve_resume(str(folder), tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        resolve_resume(str(tmp_path / "nope"), tmp_path)
    assert resolve_resume("auto", tmp_path / "never-trained") is None


# ------------------------------------------------------------------------------------------
# Evaluation and dataset builds killed part-way
# ------------------------------------------------------------------------------------------
EVAL_CHILD = textwrap.dedent("""
    import os, signal, sys
    import pgat_hf.commands.eval as eval_cli
    import pgat_hf.evaluation.report as report
    import pgat_hf.atomic as atomic

    MOMENT = {moment!r}
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if MOMENT == "mid_evaluation":
        original = report.evaluate_robustness
        def patched(*args, **kwargs):
            result = original(*args, **kwargs)
            die()
        report.evaluate_robustness = patched
    else:
        original_write = atomic.write_text_atomic
        calls = []
        def patched_write(path, text):
            calls.append(path)
            if MOMENT == "mid_records" and str(path).endswith("records.jsonl"):
                # as if the kill came halfway through writing the file's bytes
                from pathlib import Path
                tmp = Path(path).with_name(".records.partial.jsonl.tmp")
                tmp.write_text(text[: len(text) // 2])
                die()
            if MOMENT == "before_report" and str(path).endswith("eval_report.md"):
                die()
            return original_write(path, text)
        report.write_text_atomic = patched_write
    sys.exit(eval_cli.main({argv!r}))
""")


@pytest.mark.parametrize("moment", ["mid_evaluation", "mid_records", "before_report"])
def test_killed_evaluation_leaves_no_report_that_claims_it_finished(moment, trained_checkpoint, synthetic_dir,
                                                                      tmp_path):
    import json

    from PIL import Image

    out = tmp_path / "eval"
    argv = ["--model", str(trained_checkpoint[0]), "--dataset", synthetic_dir, "--max-images", "2", "--grid-tiles", "1",
            "--out", str(out), "--no-progress"]
    child = subprocess.run([sys.executable, "-c", EVAL_CHILD.format(moment=moment, argv=argv)],
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert not (out / "eval_report.md").exists()  # written last: its presence means the run finished
    visible = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    for path in visible:  # whatever is visible is whole
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            lines = path.read_text().splitlines()
            assert lines and all(json.loads(line) for line in lines)
        elif path.suffix == ".png":
            Image.open(path).verify()
    # Rerun to the end: every file, the report last.
    assert subprocess.run([sys.executable, "-m", "pgat_hf.commands.eval", *argv], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600).returncode == 0
    results = json.loads((out / "eval_results.json").read_text())
    records = (out / "records.jsonl").read_text().splitlines()
    assert len(records) == sum(m["overall"]["num_prompts_evaluated"] for m in results["models"].values())
    assert (out / "eval_report.md").is_file()


BUILD_CHILD = textwrap.dedent("""
    import os, signal
    import datasets
    from pgat_hf.data.synthetic import generate_synthetic_dataset

    original = datasets.Dataset.to_parquet
    calls = []
    def patched(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the train split is written, the test split is being written
            open(path, "wb").write(b"PAR1 half")
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, path, *args, **kwargs)
    datasets.Dataset.to_parquet = patched
    generate_synthetic_dataset({out!r}, num_train=3, num_test=2, image_size=32)
""")


def test_killed_dataset_build_leaves_no_config_that_looks_complete(tmp_path):
    from pgat_hf.data.dataset import has_config, load_prompt_dataset
    from pgat_hf.data.synthetic import ensure_synthetic_dataset

    out = tmp_path / "data"
    child = subprocess.run([sys.executable, "-c", BUILD_CHILD.format(out=str(out))], capture_output=True, text=True,
                           timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert not has_config(out, "synthetic") and not (out / "synthetic").exists()
    assert not (out / "README.md").exists()
    ensure_synthetic_dataset(out, num_train=3, num_test=2, image_size=32)  # a rerun builds it whole
    splits = load_prompt_dataset(out, "synthetic")
    assert (len(splits["train"]), len(splits["test"])) == (3, 2)


EXPORT_CHILD = textwrap.dedent("""
    import os, shutil, signal
    from pathlib import Path
    from pgat_hf.commands.compare import export_runs

    original = shutil.copy2
    def patched(source, destination, *args, **kwargs):
        if Path(source).name == "robustness_report.json":  # half the report is on disk when the kill comes
            data = Path(source).read_bytes()
            Path(destination).write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return original(source, destination, *args, **kwargs)
    shutil.copy2 = patched
    export_runs(Path({out!r}), ["pgat"], Path({target!r}))
""")


def test_killed_export_leaves_no_run_that_a_sweep_would_take_for_finished(tmp_path):
    import json

    from pgat_hf.commands.compare import export_runs
    from pgat_hf.evaluation.comparison import finished_seeds

    run = tmp_path / "runs" / "pgat" / "seed0"
    run.mkdir(parents=True)
    report = {"summary": {"dice": {"T2": {"all": 0.9}}}, "records": [{"task": "T2", "dice": 0.5}] * 200}
    (run / "robustness_report.json").write_text(json.dumps(report))
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 3, "log_history": []}))
    (run / "model.safetensors").write_bytes(b"weights")
    target = tmp_path / "exported"
    child = subprocess.run([sys.executable, "-c", EXPORT_CHILD.format(out=str(tmp_path / "runs"), target=str(target))],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert finished_seeds(target, "pgat") == {}  # the half-copied report is under a hidden temporary name
    assert json.loads((target / "pgat" / "seed0" / "trainer_state.json").read_text())["global_step"] == 3
    assert export_runs(tmp_path / "runs", ["pgat"], target) == 1  # the rerun completes the export
    assert json.loads((target / "pgat" / "seed0" / "robustness_report.json").read_text()) == report
    assert not (target / "pgat" / "seed0" / "model.safetensors").exists()
