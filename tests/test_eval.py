"""`pgat-hf eval` end to end on tiny random checkpoints and the synthetic fixture."""

import json
import os
import subprocess
import sys

import pytest
from cli_errors import one_error_line
from PIL import Image

from pgat_hf.commands import eval as eval_cli
from pgat_hf.evaluation import report
from pgat_hf.evaluation.protocol import QUALITY_ORDER, evaluate_robustness, flat_metrics
from pgat_hf.models.factory import build_tiny_model, load_segmenter
from pgat_hf.evaluation.metrics import INSTANCE_METRIC_NAMES

SETTINGS = {"mask_source": "semantic", "mask_topk": 5, "max_text_length": 32, "threshold": 0.5, "min_area": 0,
            "presence_threshold": 0.0, "tile_size": 0}


def save_checkpoint(folder, seed):
    """A stock checkpoint folder as training writes it (random weights: masks need not be good)."""
    model, tokenizer, image_processor = build_tiny_model(seed=seed, hidden_size=16, image_size=64)
    model.config.pgat_inference = dict(SETTINGS)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return [save_checkpoint(root / "baseline", 0), save_checkpoint(root / "pgat", 1)]


def markdown_table(markdown: str, heading: str) -> list[list[str]]:
    """Cells of the first table after a heading that starts with `heading` (header row included)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {heading}"))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_protocol_records_every_prompt(checkpoints, synthetic_splits):
    segmenter, tokenizer, image_processor, settings = load_segmenter(checkpoints[0])
    test = synthetic_splits["test"]
    result = evaluate_robustness(segmenter, test, tokenizer, image_processor, max_images=1, progress=False)
    expected = sum(len(g["prompts"]) for g in test[0]["prompt_groups"])
    assert len(result["records"]) == expected
    t1 = [r for r in result["records"] if r["task"] == "T1"]
    assert t1 and all(set(INSTANCE_METRIC_NAMES) <= set(r) for r in t1)
    assert not any("aji" in r for r in result["records"] if r["task"] == "T2")
    summary = result["summary"]
    assert set(summary["dice"]["T1"]) == {"all", "low", "medium", "high", "held_out"}  # T1 has no synonyms
    assert set(summary["dice"]["T2"]) == {"all", *QUALITY_ORDER}
    held = [r["dice"] for r in result["records"] if r["task"] == "T2" and r["quality"] == "held_out_synonym"]
    assert summary["dice"]["T2"]["held_out_synonym"] == pytest.approx(sum(held) / len(held))
    assert set(summary["by_source"]) == {"synthetic"}
    assert {"dice_T1", "dice_T2_held_out", "dice_T2_held_out_synonym", "dice_std_T2", "aji_T1", "pq_T1",
            "f1_T1"} <= set(flat_metrics(summary))


def test_eval_cli_tables_json_and_plots(checkpoints, synthetic_dir, tmp_path):
    out = tmp_path / "eval"
    argv = ["--dataset", synthetic_dir, "--configs", "synthetic", "--max-images", "1", "--grid-tiles", "2",
            "--out", str(out), "--no-progress"]
    for checkpoint in checkpoints:
        argv += ["--model", checkpoint]
    assert eval_cli.main(argv) == 0

    results = json.loads((out / "eval_results.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert results["configs"] == ["synthetic"] and results["split"] == "test"
    assert list(results["models"]) == ["baseline", "pgat"]
    model = results["models"]["pgat"]
    assert model["settings"] == SETTINGS
    assert set(model["by_config"]) == {"synthetic"}
    assert model["overall"]["num_images"] == 1
    assert set(model["overall"]["dice"]) == {"T1", "T2"}
    assert set(model["overall"]["instance"]["T1"]["all"]) == set(INSTANCE_METRIC_NAMES)
    assert set(model["overall"]["robustness"]["T2"]) == {"dice_std", "worst_dice", "low_high_gap", "pairwise_agreement"}

    markdown = (out / "eval_report.md").read_text()
    table1 = markdown_table(markdown, "Table 1")
    assert table1[0] == ["model", "synthetic T1", "synthetic T2"] and [r[0] for r in table1[1:]] == ["baseline", "pgat"]
    table4 = markdown_table(markdown, "Table 4")
    assert table4[0] == ["model", "task", "low", "medium", "high", "held-out framings", "held-out synonyms"]
    assert len(table4) == 1 + 2 * 2 and all(len(row) == 7 for row in table4)
    assert table4[1][6] == "–" and float(table4[2][6]) >= 0  # T1 has no synonyms; T2 does
    assert len(markdown_table(markdown, "Table 2")) == 1 + 2 * 2
    table5 = markdown_table(markdown, "Table 5")
    assert table5[0] == ["model", "synthetic T1", "synthetic T2", "synthetic held-out framings",
                         "synthetic held-out synonyms"] and len(table5) == 3
    instance = markdown_table(markdown, "Instance")
    assert instance[0][:2] == ["model", "source"] and len(instance) == 3
    float(table1[1][1]), float(instance[1][2])  # real numbers, not placeholders
    # Dice per held-out synonym, from the vocabulary saved with the data: the mean of its records.
    synonyms = markdown_table(markdown, "T2 Dice by held-out synonym")
    assert synonyms[0] == ["category", "held-out synonym", "baseline", "pgat"]
    records_pgat = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    cancerous = [r["dice"] for r in records_pgat if r["model"] == "pgat" and r["quality"] == "held_out_synonym"
               and "cancerous" in r["prompt"].split()]
    by_synonym = model["by_config"]["synthetic"]["held_out_synonyms"]
    assert cancerous and by_synonym["neoplastic/cancerous"] == pytest.approx(sum(cancerous) / len(cancerous))
    row = next(r for r in synonyms if r[:2] == ["neoplastic", "cancerous"])
    assert row[3] == f"{by_synonym['neoplastic/cancerous']:.3f}"

    records = (out / "records.jsonl").read_text().splitlines()
    assert len(records) == 2 * results["models"]["pgat"]["overall"]["num_prompts_evaluated"]
    for name in ("dice_by_quality.png", "qualitative_baseline.png", "qualitative_pgat.png"):
        with Image.open(out / name) as image:
            image.verify()
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 200


def test_zero_shot_restricts_table5(checkpoints, synthetic_dir, tmp_path):
    result = report.evaluate_models(checkpoints[:1], synthetic_dir, max_images=1, zero_shot=[], grid_tiles=0,
                                      json_path=str(tmp_path / "r.json"), progress=False, tasks=("T1",))
    assert "(no evaluated config is in --zero-shot)" in result["markdown"]
    assert json.loads((tmp_path / "r.json").read_text())["zero_shot_configs"] == []


@pytest.mark.parametrize("flag, value, message", [
    ("--model", "/no/such/checkpoint", "model not found"),
    ("--dataset", "/no/such/dataset", "dataset not found"),
    ("--configs", "pannuke", "has no config 'pannuke'; available: synthetic"),
    ("--split", "validation", "has no split 'validation'"),
    ("--dataset", "{data}/synthetic", "{data}/synthetic looks like a config folder; pass its parent {data} and "
                                      "--configs synthetic"),
])
def test_clear_errors(checkpoints, synthetic_dir, tmp_path, capsys, flag, value, message):
    args = {"--model": checkpoints[0], "--dataset": synthetic_dir, "--configs": "synthetic", "--split": "test"}
    args[flag] = value.replace("{data}", synthetic_dir)
    argv = [part for pair in args.items() for part in pair] + ["--out", str(tmp_path), "--no-progress"]
    assert eval_cli.main(argv) == 2
    assert message.replace("{data}", synthetic_dir) in one_error_line(capsys, "eval")


@pytest.mark.parametrize("out, json_name, message", [
    ("log.txt", None, "--out {tmp}/log.txt is a file; pass a folder"),
    ("log.txt/eval", None, "--out {tmp}/log.txt/eval: {tmp}/log.txt is a file, not a folder"),
    ("eval", ".", "--json {tmp} is a folder; pass a file path"),
])
def test_an_unwritable_out_stops_before_anything_is_loaded(synthetic_dir, tmp_path, capsys, out, json_name, message):
    """Checked first: with a model that does not exist, the message is still about --out / --json."""
    (tmp_path / "log.txt").write_text("a training log\n")
    argv = ["--model", "/no/such/checkpoint", "--dataset", synthetic_dir, "--out", str(tmp_path / out),
            "--no-progress"] + (["--json", str(tmp_path / json_name)] if json_name else [])
    assert eval_cli.main(argv) == 2
    assert message.replace("{tmp}", str(tmp_path)) in one_error_line(capsys, "eval")
    assert (tmp_path / "log.txt").read_text() == "a training log\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "log.txt"]


def test_a_negative_max_images_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stopped:
        eval_cli.main(["--model", "m", "--dataset", "d", "--max-images", "-1"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        "pgat-hf eval: error: argument --max-images: must be at least 0, got -1"
    with pytest.raises(report.EvalError, match="max_images and grid_tiles must be >= 0"):
        report.evaluate_models(["m"], "d", max_images=-1)


def test_pgat_hf_eval_command(checkpoints, synthetic_dir, tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "pgat-hf")
    completed = subprocess.run(
        [script, "eval", "--model", checkpoints[0], "--dataset", synthetic_dir, "--max-images", "1",
         "--tasks", "T1", "--grid-tiles", "0", "--out", str(tmp_path), "--json", str(tmp_path / "custom.json"),
         "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "## Table 1: Dice per source" in completed.stdout
    assert json.loads((tmp_path / "custom.json").read_text())["models"]["baseline"]["overall"]["num_images"] == 1
    assert (tmp_path / "dice_by_quality.png").is_file()


def test_a_missing_local_path_that_looks_like_a_hub_id_fails_without_the_hub(synthetic_dir, tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    assert report._missing_folder("outputs/nope") and not report._missing_folder("some-org/some-model")
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked about a local path")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    argv = ["--model", "outputs/nope", "--dataset", synthetic_dir, "--out", str(tmp_path / "e"), "--no-progress"]
    assert eval_cli.main(argv) == 2
    assert "model not found: no folder 'outputs/nope'" in capsys.readouterr().err
