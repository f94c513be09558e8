"""`pgat-hf bench` and the GPU check script run end to end at tiny sizes (no timing asserts)."""

import json

from pgat_hf.commands import bench
from pgat_hf.commands import step_benchmark
from pgat_hf.commands import gpu_check
from pgat_hf.commands.cli import main as cli_main

RATIOS = ("shared_vs_repeated", "shared_vs_separate", "shared_vs_k1", "shared_vs_floor")
VARIANTS = ("shared", "repeated", "separate", "k1")


def test_bench_writes_ratios_medians_and_memory_per_config(tmp_path, monkeypatch, capsys):
    # A vision-heavy 'mid' shrunk to test size: same code path (ViT wider than the decoder).
    monkeypatch.setitem(step_benchmark.CONFIGS, "mid", step_benchmark.BenchConfig("mid", hidden_size=16, image_size=64,
                                                                 vision_layers=2, vision_hidden_size=64,
                                                                 batch_size=1, text_length=8))
    monkeypatch.setitem(step_benchmark.CONFIGS, "tiny", step_benchmark.BenchConfig("tiny", hidden_size=16, image_size=64,
                                                                  text_length=8))
    path = tmp_path / "bench.json"
    assert cli_main(["bench", "--configs", "tiny,mid", "--repeats", "1", "--warmup", "0", "--data-steps", "2", "--data-image-size", "64",
                     "--threads", "1", "--json", str(path)]) == 0
    results = json.loads(path.read_text())
    assert {"tiny", "mid", "data"} <= set(results)
    for name in ("tiny", "mid"):
        result = results[name]
        for key in RATIOS:
            assert result[key] > 0, (name, key)
        assert set(VARIANTS) | {"vision", "decode_one", "floor"} <= set(result["median_ms"])
        assert all(value > 0 for value in result["median_ms"].values())
        assert set(result["peak_memory_mb"]) == set(VARIANTS)
        # Deterministic, not timing: K prompts on one encoding save activations over K image copies.
        assert result["peak_memory_mb"]["shared"] < result["peak_memory_mb"]["repeated"]
        floor = result["median_ms"]["vision"] + 3 * result["median_ms"]["decode_one"]
        assert abs(result["shared_vs_floor"] - result["median_ms"]["shared"] / floor) < 1e-2
    data = results["data"]
    assert 0 <= data["data_wait_share"] < 1 and data["dataloader_num_workers"] == 0
    # The data-wait share is measured at the demo recipe's batch shape, read from demo.yaml.
    demo = step_benchmark.demo_batch_shape()
    assert (data["batch_size"], data["groups_per_image"], data["num_prompts"]) == (
        demo["batch_size"], demo["groups_per_image"], demo["num_prompts"])
    out = capsys.readouterr().out
    assert "a/repeated=" in out and "waiting share" in out


def test_gpu_check_runs_at_tiny_size_on_cpu(tmp_path, capsys):
    path = tmp_path / "gpu.json"
    assert gpu_check.main(["--tiny", "--repeats", "1", "--warmup", "0", "--device", "cpu", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert {"k1", "shared", "repeated", "floor"} <= set(result["median_ms"])
    assert result["num_prompts"] == 3 and result["batch_size"] == 1 and result["dtype"] == "bf16"
    out = capsys.readouterr().out
    assert "K=3 shared" in out and "K=3 repeated" in out and "peak MB" in out


def test_bench_help_lists_the_benchmark_configs():
    assert set(bench.CONFIG_NAMES) == set(step_benchmark.CONFIGS)
