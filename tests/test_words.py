"""`pgat-hf words`: Dice of each word's masks against every category, checked against a
computation from the pipeline's masks and the dataset's label maps, tile by tile."""

import json

import numpy as np
import pytest
from cli_errors import one_error_line

from pgat_hf.commands import words as words_command
from pgat_hf.evaluation.word_probe import WordResult


def test_word_table_matches_the_masks_tile_by_tile(trained_checkpoint, synthetic_dir, tmp_path):
    import pgat_hf  # noqa: F401
    from transformers import pipeline

    from pgat_hf.data.dataset import class_array, instance_array, load_categories, load_prompt_dataset

    folder = trained_checkpoint[0]
    out = tmp_path / "words.json"
    assert words_command.main(["epithelial:ductal", "white blood cell", "--model", str(folder), "--dataset",
                               synthetic_dir, "--max-images", "3", "--json", str(out), "--no-progress"]) == 0
    written = json.loads(out.read_text())
    results = {r["word"]: r for r in written["words"]}
    assert (results["ductal"]["expected"], results["white blood cell"]["expected"]) == ("epithelial", None)
    assert written["transfer_dice"] == results["ductal"]["dice"]["epithelial"]  # the one word that names a category
    segmenter = pipeline("text-guided-nuclei-segmentation", model=str(folder))
    categories = load_categories(synthetic_dir, "synthetic")
    rows = load_prompt_dataset(synthetic_dir, "synthetic", "train").select(range(3))
    for word in ("ductal", "white blood cell"):
        expected = {t: [] for t in ["all nuclei", *categories]}
        for row in rows:  # one prompt at a time here; the command batches every word on one vision pass
            predicted = np.asarray(segmenter(row["image"], prompts=[f"segment the {word} nuclei"])[0]["mask"]) > 0
            instances, classes = instance_array(row["instance_map"]), class_array(row["class_map"])
            targets = {"all nuclei": instances > 0,
                       **{c: (classes == i + 1) & (instances > 0) for i, c in enumerate(categories)}}
            for name, mask in targets.items():
                if mask.any():
                    total = predicted.sum() + mask.sum()
                    expected[name].append(2 * (predicted & mask).sum() / total)
        got = results[word]
        assert got["prompt"] == f"segment the {word} nuclei"
        assert got["tiles"] == {t: len(v) for t, v in expected.items()}
        for name, values in expected.items():
            if values:
                assert got["dice"][name] == pytest.approx(float(np.mean(values)), abs=1e-12), (word, name)


def test_a_word_prompts_for_its_best_target_only_above_half_dice():
    placed = WordResult("lymphoid", "p", {"all nuclei": 0.3, "inflammatory": 0.9, "epithelial": 0.0}, {})
    unplaced = WordResult("ductal", "p", {"all nuclei": 0.04, "inflammatory": 0.0, "epithelial": 0.08}, {})
    absent = WordResult("x", "p", {"all nuclei": 0.6, "dead": float("nan")}, {})
    assert (placed.prompts_for, unplaced.prompts_for, absent.prompts_for) == ("inflammatory", "none", "all nuclei")


def test_a_template_without_its_placeholder_is_refused(capsys):
    assert words_command.main(["ductal", "--model", "m", "--dataset", "d", "--template", "segment the nuclei"]) == 2
    assert "has no {word} placeholder" in capsys.readouterr().err


def test_an_unknown_category_prefix_is_refused_before_any_model_loads(synthetic_dir, capsys):
    assert words_command.main(["epithelium:acinar", "--model", "no-such-model", "--dataset", synthetic_dir]) == 2
    err = capsys.readouterr().err
    assert "'epithelium:acinar': write CATEGORY:WORD with CATEGORY one of ['neoplastic', 'inflammatory'" in err


def test_the_table_scores_words_against_the_category_they_name():
    from pgat_hf.evaluation.word_probe import format_word_table, parse_word, transfer_dice

    assert parse_word("epithelial:acinar", ["epithelial"]) == ("acinar", "epithelial")
    assert parse_word("breast duct", ["epithelial"]) == ("breast duct", None)
    results = [WordResult("acinar", "p", {"all nuclei": 0.2, "connective": 0.9, "epithelial": 0.0}, {"all nuclei": 3,
               "connective": 2, "epithelial": 1}, "epithelial"),
               WordResult("gland", "p", {"all nuclei": 0.3, "connective": 0.0, "epithelial": 0.8}, {}, "epithelial"),
               WordResult("duct", "p", {"all nuclei": 0.1, "connective": 0.1, "epithelial": 0.1}, {})]
    assert transfer_dice(results) == pytest.approx(0.4)
    table = format_word_table(results)
    assert "| acinar | 0.20 | 0.90 | 0.00 | connective | epithelial |" in table
    assert "| duct | 0.10 | 0.10 | 0.10 | none |  |" in table
    assert table.endswith("mean Dice against it 0.400 over 2 words; 1 of 2 prompt for it.")


def test_the_shipped_validation_words_are_new_words_of_the_synthetic_categories():
    """Neither training nor held-out synonyms of the default vocabulary, three per category."""
    from pathlib import Path

    from pgat_hf.data.synthetic import SYNTHETIC_CATEGORIES
    from pgat_hf.data.vocabulary import default_vocabulary
    from pgat_hf.evaluation.word_probe import parse_word

    path = Path(words_command.__file__).parents[1] / "data" / "vocabularies" / "validation_words.txt"
    specs = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    parsed = [parse_word(spec, list(SYNTHETIC_CATEGORIES)) for spec in specs]
    known = {s for c in default_vocabulary().categories.values() for s in c.train + c.held_out}
    assert not {word for word, _ in parsed} & known
    assert sorted(c for _, c in parsed) == sorted(list(SYNTHETIC_CATEGORIES) * 3)


@pytest.mark.parametrize("change, message", [
    ({"--dataset": "/no/such/dataset"}, "dataset not found: no folder '/no/such/dataset'"),
    ({"--split": "nosplit"}, "config 'synthetic' of '{data}' has no split 'nosplit'; available: train, test"),
    ({"--config": "pannuke"}, "dataset '{data}' has no config 'pannuke'; available: synthetic"),
    ({"--template": "segment the {word} {other} nuclei"},
     "--template 'segment the {word} {other} nuclei' has a placeholder other than {word}: {other}"),
    ({"--dataset": "{data}/synthetic"},
     "{data}/synthetic looks like a config folder; pass its parent {data} and --config synthetic"),
    ({"--dataset": "{data}/synthetic", "--config": "synthetic"},
     "{data}/synthetic looks like a config folder; pass its parent {data} and --config synthetic"),
    ({"--model": "{data}"}, "model folder '{data}' has no config.json"),
])
def test_bad_arguments_stop_with_one_line_naming_them(trained_checkpoint, synthetic_dir, capsys, change, message):
    args = {"--model": str(trained_checkpoint[0]), "--dataset": synthetic_dir}
    args.update({flag: value.replace("{data}", synthetic_dir) for flag, value in change.items()})
    argv = ["ductal", "--no-progress"] + [part for pair in args.items() for part in pair]
    assert words_command.main(argv) == 2
    assert message.replace("{data}", synthetic_dir) in one_error_line(capsys, "words")


def test_the_config_defaults_to_the_folders_only_one(trained_checkpoint, tmp_path, capsys):
    from pgat_hf.data.synthetic import generate_synthetic_dataset

    data = tmp_path / "mine"
    generate_synthetic_dataset(data, num_train=2, num_test=1, image_size=64, config_name="my_slides")
    out = tmp_path / "words.json"
    assert words_command.main(["ductal", "--model", str(trained_checkpoint[0]), "--dataset", str(data),
                               "--max-images", "1", "--json", str(out), "--no-progress"]) == 0
    written = json.loads(out.read_text())
    assert written["config"] == "my_slides" and written["words"][0]["tiles"]["all nuclei"] == 1
    generate_synthetic_dataset(data, num_train=2, num_test=1, image_size=64, config_name="other")
    capsys.readouterr()  # the builder's progress bars
    assert words_command.main(["ductal", "--model", str(trained_checkpoint[0]), "--dataset", str(data)]) == 2
    assert f"dataset '{data}' has 2 configs (my_slides, other): pass --config NAME" in one_error_line(capsys, "words")


def test_a_negative_max_images_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stopped:
        words_command.main(["ductal", "--model", "m", "--dataset", "d", "--max-images", "-1"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        "pgat-hf words: error: argument --max-images: must be at least 0, got -1"
