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
    assert words_command.main(["ductal", "white blood cell", "--model", str(folder), "--dataset", synthetic_dir,
                               "--max-images", "3", "--json", str(out), "--no-progress"]) == 0
    results = {r["word"]: r for r in json.loads(out.read_text())}
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
