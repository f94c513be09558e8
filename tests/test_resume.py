"""A training process killed with SIGKILL after a checkpoint resumes to the uninterrupted run's weights."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch
from test_trainer import make_trainer

TESTS = Path(__file__).resolve().parent

# The child trains 6 steps with a checkpoint every 3; once checkpoint-3 is fully written it
# announces it and stalls, so the SIGKILL lands mid-run (a fast tiny run would otherwise finish).
CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from datasets import load_dataset
    from transformers import TrainerCallback
    from test_trainer import make_trainer

    class AnnounceAndStall(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            with open({marker!r}, "w") as handle:
                handle.write(str(state.global_step))
            time.sleep(600)

    trainer = make_trainer(load_dataset({data!r}, "synthetic"), {out!r}, max_steps=6, save_strategy="steps",
                           save_steps=3)
    trainer.add_callback(AnnounceAndStall())
    trainer.train()
""")


def test_sigkilled_run_resumes_to_the_same_weights(synthetic_dir, synthetic_splits, tmp_path):
    out, marker = tmp_path / "killed", tmp_path / "checkpoint_written"
    script = CHILD.format(tests=str(TESTS), marker=str(marker), data=synthetic_dir, out=str(out))
    # The child computes the first steps: it must use this process's thread count, or float
    # reductions run in another order and the weights differ beyond the tolerance.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert child.poll() is None, child.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert marker.read_text() == "3"
    assert not (out / "checkpoint-6").exists()

    resumed = make_trainer(synthetic_splits, out, max_steps=6, save_strategy="no")
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-3"))
    assert resumed.state.global_step == 6
    straight = make_trainer(synthetic_splits, tmp_path / "straight", max_steps=6, save_strategy="no")
    straight.train()
    expected, actual = straight.model.model.state_dict(), resumed.model.model.state_dict()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)
