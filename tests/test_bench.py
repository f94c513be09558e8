"""`pgat-hf bench` and the GPU check script run end to end at tiny sizes (no timing asserts)."""

import json

import pytest

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


@pytest.mark.parametrize("flags, message", [
    (["--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
    (["--prompts", "0"], "argument --prompts: must be at least 1, got 0"),
    (["--warmup", "-1"], "argument --warmup: must be at least 0, got -1"),
    (["--configs", "tiny,huge"], "argument --configs: unknown config(s) ['huge']; choose from tiny, mid"),
    (["--device", "gpu"], "argument --device: 'gpu' is not a device; use auto, cpu, cuda or cuda:N"),
])
def test_bad_flags_stop_at_parse_time_with_one_line(capsys, flags, message):
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--configs", "tiny", *flags])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == f"pgat-hf bench: error: {message}"


def test_cuda_on_a_torch_without_cuda_is_refused_at_parse_time(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch sees a CUDA device")
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--configs", "tiny", "--device", "cuda"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"pgat-hf bench: error: argument --device: 'cuda': this torch ({torch.__version__}) sees no CUDA device")


def test_json_goes_into_a_new_folder_whole_and_a_file_in_the_way_stops_it_first(tmp_path, monkeypatch, capsys):
    tiny = step_benchmark.BenchConfig("tiny", hidden_size=16, image_size=64, text_length=8)
    monkeypatch.setitem(step_benchmark.CONFIGS, "tiny", tiny)
    path = tmp_path / "new" / "folder" / "bench.json"
    assert bench.main(["--configs", "tiny", "--repeats", "1", "--warmup", "0", "--data-steps", "0", "--threads", "1",
                       "--json", str(path)]) == 0
    assert json.loads(path.read_text())["tiny"]["repeats"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["bench.json"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o644
    (tmp_path / "log.txt").write_text("")
    capsys.readouterr()
    assert bench.main(["--configs", "tiny", "--json", str(tmp_path / "log.txt" / "bench.json")]) == 2
    err = capsys.readouterr()
    assert err.out == ""  # stopped before the benchmark printed anything
    assert err.err == (f"pgat-hf bench: error: --json {tmp_path}/log.txt/bench.json: {tmp_path}/log.txt is a file, "
                       f"not a folder\n")


def test_no_configs_is_the_data_wait_share_alone():
    """docs/performance.md measures the data-wait share with `--configs ""`: the parser lets it through."""
    assert bench.parse_args(["--configs", "", "--data-steps", "2"]).configs == ""
