"""The comparison runner: real training runs in child processes, cached results, mean ± sd tables, and
paired differences, plateau lines and figures read from a hand-built folder of finished runs."""

import json

import pytest
import yaml

from pgat_hf.commands.compare import load_sweep, main as compare_main, resolve_contrasts, run_argv, training_order
from pgat_hf.evaluation.comparison import aggregate
from pgat_hf.train import mapping_to_argv


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


def test_two_workers_train_what_one_does_and_an_export_is_a_sweep_folder(tmp_path, synthetic_dir, monkeypatch,
                                                                          capsys):
    sweep_path = write_sweep(tmp_path, synthetic_dir)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the one-worker sweep's children inherit it
    alone, together, exported = tmp_path / "alone", tmp_path / "together", tmp_path / "exported"
    assert compare_main(["--sweep", str(sweep_path), "--out", str(alone)]) == 0
    assert compare_main(["--sweep", str(sweep_path), "--out", str(together), "--workers", "2", "--threads", "1",
                         "--export", str(exported)]) == 0
    for name in ("baseline", "pgat"):
        one, two = (json.loads((folder / name / "seed0" / "robustness_report.json").read_text())
                    for folder in (alone, together))
        assert one["summary"] == two["summary"] and one["records"] == two["records"]  # same threads: same floats
        assert sorted(p.name for p in (exported / name / "seed0").iterdir()) == sorted(
            ["robustness_report.json", "robustness_report.md", "trainer_state.json", "pgat_run.json",
             "pgat_training_args.json"])  # no weights, no tokenizer
    capsys.readouterr()
    assert compare_main(["--sweep", str(sweep_path), "--out", str(exported)]) == 0
    assert "2 runs cached, 0 to train" in capsys.readouterr().out
    rows = {folder: json.loads((folder / "comparison.json").read_text())["rows"] for folder in (together, exported)}
    assert rows[exported] == rows[together]


def test_runs_go_seed_by_seed_the_most_prompts_first(tmp_path, synthetic_dir):
    sweep = load_sweep(write_sweep(tmp_path, synthetic_dir))  # baseline K=1, pgat K from the trainer's default 3
    todo = [("baseline", 4), ("baseline", 1), ("pgat", 4), ("pgat", 1)]
    assert training_order(sweep, todo, {}) == [("pgat", 4), ("baseline", 4), ("pgat", 1), ("baseline", 1)]
    assert training_order(sweep, todo, {"num_prompts": 2})[:2] == [("baseline", 4), ("pgat", 4)]  # --set wins; ties keep order


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


def write_run(folder, t2_dice, t2_std, records, curve=None, checkpoints=None):
    """A finished run folder by hand: its robustness report and, optionally, its trainer state."""
    folder.mkdir(parents=True)
    summary = {"dice": {"T1": {"all": 0.9, "held_out": 0.85}, "T2": {"all": t2_dice, "held_out": t2_dice - 0.1}},
               "robustness": {"T2": {"dice_std": t2_std, "worst_dice": t2_dice - 0.2, "pairwise_agreement": 0.8}}}
    (folder / "robustness_report.json").write_text(json.dumps({"summary": summary, "records": records, "groups": []}))

    def state(points):
        history = [{"step": step, "loss": 1.0 / step} for step, _ in points]  # training logs, not evaluations
        history += [{"step": step, "epoch": 1.0, "eval_dice_T2": value} for step, value in points]
        return json.dumps({"global_step": points[-1][0], "log_history": history})

    if curve is not None:
        (folder / "trainer_state.json").write_text(state(curve))
    for name, points in (checkpoints or {}).items():
        (folder / name).mkdir()
        (folder / name / "trainer_state.json").write_text(state(points))


def fake_records(offset):
    qualities = {"T1": ("low", "medium", "high", "held_out"),
                 "T2": ("low", "medium", "high", "held_out", "held_out_synonym")}
    return [{"task": task, "quality": quality, "dice": min(1.0, offset + 0.05 * i + 0.1 * j), "prompt": "p",
             "image_id": f"img{i}"}
            for task, names in qualities.items() for j, quality in enumerate(names) for i in range(4)]


def test_report_only_pairs_seeds_and_writes_intervals_sentences_and_figures(tmp_path):
    (tmp_path / "base.yaml").write_text("max_steps: 200\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "seeds": [0, 1, 2],
                                     "runs": {"baseline": {"num_prompts": 1}, "pgat": {}}}, sort_keys=False))
    out = tmp_path / "out"
    # pgat − baseline per seed: T2 Dice d = [0.1, 0.05, 0.05], T2 std d = [−0.01, −0.01, −0.01]
    write_run(out / "pgat" / "seed0", 0.9, 0.05, fake_records(0.4),
              curve=[(50, 0.5), (100, 0.6), (150, 0.65), (200, 0.7)])
    write_run(out / "pgat" / "seed1", 0.8, 0.06, fake_records(0.45),  # no root state: checkpoint-10 is the latest
              checkpoints={"checkpoint-2": [(50, 0.0)],
                           "checkpoint-10": [(50, 0.4), (100, 0.5), (150, 0.6), (200, 0.6)]})
    write_run(out / "pgat" / "seed2", 0.85, 0.07, fake_records(0.5),
              curve=[(50, 0.6), (100, 0.7), (150, 0.75), (200, 0.8)])
    for seed, (t2, std) in enumerate([(0.8, 0.06), (0.75, 0.07), (0.8, 0.08)]):
        write_run(out / "baseline" / f"seed{seed}", t2, std, fake_records(0.3),
                  curve=[(100, 0.5), (200, 0.52 + 0.01 * seed)])
    write_run(out / "baseline" / "seed3", 0.1, 0.5, fake_records(0.1))  # pgat has no seed 3: not paired

    assert compare_main(["--sweep", str(sweep), "--out", str(out), "--report-only"]) == 0
    document = json.loads((out / "comparison.json").read_text())
    assert document["rows"]["baseline"]["T2 Dice"]["n"] == 4
    assert document["rows"]["baseline"]["T2 Dice"]["mean"] == pytest.approx((0.8 + 0.75 + 0.8 + 0.1) / 4)
    [contrast] = document["contrasts"]
    assert (contrast["a"], contrast["b"], contrast["seeds"]) == ("pgat", "baseline", [0, 1, 2])
    dice = contrast["metrics"]["T2 Dice"]
    assert dice["n"] == 3
    assert dice["mean"] == pytest.approx(0.0666667, abs=1e-6)
    assert dice["sd"] == pytest.approx(0.0288675, abs=1e-6)
    assert dice["half_width"] == pytest.approx(0.0717108, abs=1e-6)  # t(0.975, 2) = 4.302653
    assert dice["low"] == pytest.approx(-0.0050441, abs=1e-6) and dice["high"] == pytest.approx(0.1383775, abs=1e-6)
    assert dice["resolves"] is False and dice["excludes_zero"] is False
    std = contrast["metrics"]["T2 std ↓"]
    assert std["mean"] == pytest.approx(-0.01) and std["half_width"] == pytest.approx(0.0, abs=1e-9)
    assert std["resolves"] is True and std["excludes_zero"] is True
    held_out = contrast["metrics"]["T2 held-out framings"]
    assert held_out["mean"] == pytest.approx(dice["mean"])
    assert held_out["half_width"] == pytest.approx(dice["half_width"])
    synonyms = contrast["metrics"]["T2 held-out synonyms"]  # neither summary has it
    assert synonyms["n"] == 0 and synonyms["mean"] is None and synonyms["half_width"] is None

    # checkpoint-10, not checkpoint-2, gives seed 1's curve: mean at step 100 is (0.6 + 0.5 + 0.7) / 3
    curves = document["curves"]
    assert curves["pgat"] == pytest.approx({"50": 0.5, "100": 0.6, "150": 2.0 / 3, "200": 0.7})
    assert curves["baseline"] == pytest.approx({"100": 0.5, "200": 0.53})

    markdown = (out / "comparison.md").read_text()
    assert "| baseline | 4 |" in markdown and "| pgat | 3 |" in markdown
    assert "## Paired differences (a − b), mean and 95% t interval over 3 seeds" in markdown
    assert "| pgat − baseline | T2 Dice | 3 | +0.067 [−0.005, +0.138] | no (±0.072) | no |" in markdown
    assert ("pgat − baseline, T2 Dice: +0.067 [−0.005, +0.138] over 3 seeds: the interval is too wide to resolve "
            "a 0.02 difference (half-width 0.072; at this spread, 11 paired seeds would resolve it).") in markdown
    assert ("pgat − baseline, T2 std: −0.010 [−0.010, −0.010] over 3 seeds: the interval excludes 0 and resolves "
            "0.02.") in markdown
    assert ("pgat: validation T2 Dice 0.600 at step 100, 0.700 at the last step 200 "
            "(change over the last half: +0.100, over the last quarter: +0.033: still changing)") in markdown
    assert "baseline: validation T2 Dice 0.500 at step 100, 0.530 at the last step 200" in markdown

    from PIL import Image

    for name in ("per_prompt_dice.png", "validation_curve.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_contrasts_default_to_every_run_against_the_first(tmp_path):
    (tmp_path / "b.yaml").write_text("max_steps: 2\n")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"base": "b.yaml", "runs": {"baseline": {}, "a": {}, "b": {}}},
                                                         sort_keys=False))
    sweep = load_sweep(tmp_path / "sweep.yaml")
    assert resolve_contrasts(sweep, ["baseline", "a", "b"]) == [("a", "baseline"), ("b", "baseline")]
    assert resolve_contrasts(sweep, ["a", "b"]) == [("b", "a")]  # --only without the first run
    sweep["contrasts"] = [["a", "b"], ["b", "baseline"]]
    assert resolve_contrasts(sweep, ["a", "b"]) == [("a", "b")]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"base": "b.yaml", "runs": {"a": {}}, "contrasts": [["a", "z"]]}))
    with pytest.raises(ValueError, match="contrast"):
        load_sweep(tmp_path / "bad.yaml")


def test_a_missing_sweep_or_base_recipe_is_one_line_naming_the_file(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"pgat-hf compare: error: sweep file not found: .*nope.yaml"):
        compare_main(["--sweep", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")])
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"base": "gone.yaml", "runs": {"a": {}}}))
    with pytest.raises(FileNotFoundError, match=r"sweep.yaml: its base recipe .*gone.yaml does not exist"):
        load_sweep(tmp_path / "sweep.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="list.yaml must be a YAML mapping"):
        load_sweep(tmp_path / "list.yaml")
    assert not (tmp_path / "out").exists()


def test_dice_by_held_out_synonym_matches_whole_words():
    from pgat_hf.evaluation.synonyms import synonym_dice, synonyms_markdown
    from pgat_hf.data.vocabulary import default_vocabulary

    records = [
        {"quality": "held_out_synonym", "category": "connective", "prompt": "spindle nuclei", "dice": 0.2},
        {"quality": "held_out_synonym", "category": "connective", "prompt": "all spindle cells", "dice": 0.4},
        {"quality": "held_out_synonym", "category": "epithelial", "prompt": "segment all ductal nuclei", "dice": 0.9},
        {"quality": "high", "category": "connective", "prompt": "spindle-shaped nuclei", "dice": 0.0},  # a training prompt
        {"quality": "held_out_synonym", "category": "connective", "prompt": "spindle-shaped cells", "dice": 0.0},
    ]
    table = synonym_dice(records, default_vocabulary())
    assert table == {("connective", "spindle"): pytest.approx(0.3), ("epithelial", "ductal"): 0.9}
    markdown = synonyms_markdown({"a": table, "b": {("epithelial", "ductal"): 0.5}})
    assert "| connective | spindle | 0.300 | – |" in markdown and "| epithelial | ductal | 0.900 | 0.500 |" in markdown


def test_synonym_table_reads_the_vocabulary_the_run_trained_on(tmp_path):
    """A run whose data came from an edited vocabulary is tabulated by that file's held-out synonyms."""
    from pgat_hf.evaluation.comparison import run_vocabulary
    from pgat_hf.data.vocabulary import DEFAULT_VOCABULARY

    config = tmp_path / "data" / "synthetic"
    config.mkdir(parents=True)
    (config / "prompts.yaml").write_text(DEFAULT_VOCABULARY.read_text().replace('"ductal"', '"duct-lining"'))
    run = tmp_path / "pgat" / "seed0"
    run.mkdir(parents=True)
    (run / "pgat_run.json").write_text(json.dumps({"dataset_path": str(tmp_path / "data"),
                                                   "dataset_configs": ["synthetic"]}))
    assert run_vocabulary(run).categories["epithelial"].held_out == ("duct-lining", "epithelium")
    (run / "pgat_run.json").write_text(json.dumps({"dataset_path": "hub-org/no-such-folder",
                                                   "dataset_configs": ["synthetic"]}))
    assert run_vocabulary(run) is None  # the default vocabulary is used then


def test_report_only_without_finished_runs_stops_and_creates_nothing(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("max_steps: 200\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "runs": {"baseline": {"num_prompts": 1}, "pgat": {}}}))
    typo = tmp_path / "typo_runs"
    assert compare_main(["--sweep", str(sweep), "--out", str(typo), "--report-only"]) == 2
    err = capsys.readouterr().err
    assert err == (f"pgat-hf compare: error: no finished runs under {typo} (looked for NAME/seedS/"
                   f"robustness_report.json, NAME one of baseline, pgat)\n")
    assert not typo.exists()
    write_run(typo / "pgat" / "seed0", 0.9, 0.05, fake_records(0.4))  # one finished run: a report
    assert compare_main(["--sweep", str(sweep), "--out", str(typo), "--report-only"]) == 0
    assert (typo / "comparison.md").is_file()
