"""Recipes and flags: misspelt keys are errors naming the file; several configs train together."""

import pytest
import yaml

from pgat_hf.data.synthetic import generate_synthetic_dataset
from pgat_hf.train import DataArguments, load_splits, parse_args
from pgat_hf.training.arguments import PGATTrainingArguments


def test_misspelt_recipe_key_names_the_file_and_the_closest_key(tmp_path):
    recipe = tmp_path / "my_recipe.yaml"
    recipe.write_text(yaml.safe_dump({"num_prompt": 2, "max_steps": 5}))
    with pytest.raises(ValueError, match=r"my_recipe.yaml: unknown recipe key 'num_prompt'; did you mean 'num_prompts'\?"):
        parse_args(["--config", str(recipe)])


def test_a_missing_recipe_stops_with_one_line_naming_it(tmp_path):
    from pgat_hf.train import main

    with pytest.raises(SystemExit, match=r"train.py: error: recipe not found: .*no_such_recipe.yaml"):
        main(["--config", str(tmp_path / "no_such_recipe.yaml")])
    with pytest.raises(SystemExit, match="--config needs a recipe file"):
        main(["--output_dir", str(tmp_path), "--config"])
    assert list(tmp_path.iterdir()) == []


def test_flags_are_not_prefix_matched(tmp_path):
    with pytest.raises(ValueError, match="unknown flag --num_prompt \\(did you mean --num_prompts\\?\\)"):
        parse_args(["--num_prompt", "2", "--output_dir", str(tmp_path)])
    _, _, args = parse_args(["--num_prompts", "2", "--output_dir", str(tmp_path)])
    assert args.num_prompts == 2


def test_the_defaults_and_every_shipped_recipe_use_the_stable_group_loss(tmp_path):
    from pathlib import Path

    assert PGATTrainingArguments(output_dir=str(tmp_path)).group_loss_mode == "softmin"
    for recipe in (Path(__file__).parents[1] / "pgat_hf" / "recipes").glob("*.yaml"):
        data = yaml.safe_load(recipe.read_text())
        if "group_loss_mode" in data:  # sweep files hold runs, not a top-level mode
            assert data["group_loss_mode"] == "softmin", recipe.name


def test_a_comma_list_of_configs_trains_on_their_splits_together(tmp_path):
    data = tmp_path / "data"
    generate_synthetic_dataset(data, num_train=3, num_test=1, num_validation=2, image_size=32, config_name="a")
    generate_synthetic_dataset(data, num_train=4, num_test=2, image_size=32, seed=1, config_name="b")
    args = PGATTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    train, validation, test = load_splits(DataArguments(dataset_path=str(data), dataset_config="a,b"), args)
    assert (len(train), len(validation), len(test)) == (7, 2 + 2, 3)  # b has no validation split: its test
    with pytest.raises(FileNotFoundError, match="lists no config 'c'"):
        load_splits(DataArguments(dataset_path=str(data), dataset_config="a,c"), args)


def test_help_imports_neither_torch_nor_transformers():
    """`pgat-hf --help` and the light subcommands' help load no heavy module (fast on any machine)."""
    import subprocess
    import sys

    probe = ("import sys; from pgat_hf.commands.cli import main\n"
             "for argv in ([], ['eval', '--help'], ['compare', '--help'], ['bench', '--help'], ['card', '--help'], ['push', '--help']):\n"
             "    try: main(argv)\n"
             "    except SystemExit: pass\n"
             "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "--max-images" in result.stdout and "--sweep" in result.stdout and "--repo" in result.stdout


def test_card_errors_are_one_line_naming_the_folder_or_file(tmp_path, capsys):
    from pgat_hf.commands.card import main as card_main

    assert card_main(["--model", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"pgat-hf card: error: no folder '{tmp_path / 'nope'}'\n"
    (tmp_path / "config.json").write_text("{}")
    assert card_main(["--model", str(tmp_path)]) == 2  # no model.safetensors: not a checkpoint
    assert capsys.readouterr().err == (f"pgat-hf card: error: {tmp_path} is not a checkpoint folder "
                                       f"(needs config.json and model.safetensors, or a LoRA adapter's "
                                       f"adapter_config.json and adapter_model.safetensors)\n")
    (tmp_path / "robustness_report.json").write_text('{"summary": {"dice": ')  # a copy cut short
    assert card_main(["--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pgat-hf card: error: {tmp_path / 'robustness_report.json'} is not valid JSON (")
    assert len(err.splitlines()) == 1 and not (tmp_path / "README.md").exists()


def test_every_shipped_recipe_names_only_known_arguments():
    """The paper's recipe once held warmup_ratio, which this transformers no longer has."""
    from pathlib import Path

    from pgat_hf.train import known_keys, make_parser, recipe_to_argv

    known = known_keys(make_parser())
    recipes = [r for r in (Path(__file__).parents[1] / "pgat_hf" / "recipes").glob("*.yaml")
               if "runs" not in yaml.safe_load(r.read_text())]  # sweep files hold runs over a base recipe
    assert {r.name for r in recipes} >= {"demo.yaml", "paper_sam3.yaml"}
    for recipe in recipes:
        assert recipe_to_argv(str(recipe), known)[:1] == ["--" + next(iter(yaml.safe_load(recipe.read_text())))]


def test_a_dataset_folder_that_does_not_exist_is_one_line(tmp_path):
    from pgat_hf.train import main

    missing = tmp_path / "data" / "pgat"
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset_path", str(missing), "--dataset_config", "pannuke", "--output_dir", str(tmp_path / "out"),
              "--report_to", "none"])
    message = str(exit_info.value.code)
    assert message.startswith(f"train.py: error: dataset {missing}: no such folder, and the Hub did not serve it")
    assert "\n" not in message


def test_evaluating_on_test_tiles_for_want_of_a_validation_split_is_said(tmp_path, caplog):
    from pgat_hf.data.dataset import write_dataset_repo
    from pgat_hf.data.synthetic import SYNTHETIC_CATEGORIES, make_synthetic_row

    rows = [make_synthetic_row(0, "train", i, image_size=32) for i in range(2)]
    write_dataset_repo(tmp_path / "data", "noval", {"train": rows, "test": rows[:1]}, SYNTHETIC_CATEGORIES)
    args = PGATTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", eval_strategy="steps")
    with caplog.at_level("WARNING", logger="pgat_hf.train"):
        _, validation, _ = load_splits(DataArguments(dataset_path=str(tmp_path / "data"), dataset_config="noval"), args)
    assert len(validation) == 1
    assert "noval: no 'validation' split, so the evaluations during training run on 'test'" in caplog.text
