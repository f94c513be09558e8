"""`pgat-hf words`: Dice of each word's masks against every category, checked against a
computation from the pipeline's masks and the dataset's label maps, tile by tile."""

import json

import numpy as np
import pytest

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
