"""Prompt vocabularies as data: the shipped file, a user's file, and errors that name the entry."""

import pytest
import yaml

from pgat_hf.data.prompts import make_prompt_groups
from pgat_hf.data.vocabulary import (DEFAULT_VOCABULARY, HELD_OUT_SYNONYM, VocabularyError, default_vocabulary,
                                load_vocabulary)


def user_vocabulary() -> dict:
    """A small valid vocabulary of a user's own categories."""
    return {
        "categories": {
            "mitotic figure": {"train": ["mitotic figure", "mitosis", "dividing"], "held_out": ["mitotic"]},
            "tumour-infiltrating lymphocyte": {"train": ["tumour-infiltrating lymphocyte", "til"]},
        },
        "templates": {
            "T1": {"low": ["nuclei", "cells"], "medium": ["segment all nuclei", "find the nuclei"],
                   "high": ["delineate every nucleus in the tile", "outline each nucleus"],
                   "held_out": ["highlight nuclear regions", "pick out the nuclei"]},
            "T2": {"low": ["{syn} nuclei", "{syn} cells"], "medium": ["segment the {syn} nuclei", "find {syn} cells"],
                   "high": ["delineate every {syn} nucleus in the tile", "outline each {syn} nucleus"],
                   "held_out": ["highlight {syn} nuclear regions", "pick out the {syn} nuclei"]},
        },
    }


def write(tmp_path, data) -> str:
    path = tmp_path / "prompts.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_shipped_vocabulary_has_held_out_synonyms_for_every_category():
    vocabulary = default_vocabulary()
    assert vocabulary.source.endswith("default.yaml") and DEFAULT_VOCABULARY.is_file()
    for name in ("neoplastic", "inflammatory", "connective", "epithelial", "dead", "other", "spindle-shaped"):
        entry = vocabulary.categories[name]
        assert entry.train[0] == name and len(entry.train) >= 4 and len(entry.held_out) >= 2
        assert not set(entry.held_out) & set(entry.train)


def test_user_vocabulary_makes_groups_with_its_synonyms(tmp_path):
    vocabulary = load_vocabulary(write(tmp_path, user_vocabulary()))
    groups = make_prompt_groups(["mitotic figure", "tumour-infiltrating lymphocyte"], [True, False], seed=1,
                                prompts_per_quality=1, held_out_per_group=1, vocabulary=vocabulary)
    mitotic, til = groups[1], groups[2]
    assert mitotic["quality"] == ["low", "medium", "high", "held_out", HELD_OUT_SYNONYM, HELD_OUT_SYNONYM]
    trained = [p for p, q in zip(mitotic["prompts"], mitotic["quality"]) if q != HELD_OUT_SYNONYM]
    assert all(any(s in p for s in ("mitotic figure", "mitosis", "dividing")) for p in trained)
    held = [p for p, q in zip(mitotic["prompts"], mitotic["quality"]) if q == HELD_OUT_SYNONYM]
    assert all("mitotic" in p and "mitotic figure" not in p for p in held)
    assert til["quality"] == ["low", "medium", "high", "held_out"]  # no held-out synonyms listed
    assert til["present"] is False


@pytest.mark.parametrize("edit, entry, message", [
    (lambda d: d["templates"]["T2"].update(great=["{syn} nuclei"]), "templates.T2.great", "unknown key"),
    (lambda d: d["categories"]["mitotic figure"].update(train=[]), "categories.mitotic figure.train",
     "non-empty list"),
    (lambda d: d["templates"]["T2"]["medium"].append("segment the nuclei"), "templates.T2.medium[2]",
     "no {syn} placeholder"),
    (lambda d: d["templates"]["T1"]["low"].append("{syn} nuclei"), "templates.T1.low[2]", "take no {syn}"),
    (lambda d: d["categories"]["mitotic figure"].update(held_out=["mitosis"]),
     "categories.mitotic figure.held_out[0]", "also a training synonym"),
    (lambda d: d["templates"]["T1"]["held_out"].append("nuclei"), "templates.T1.held_out[2]",
     "also a training template"),
    (lambda d: d.update(colour="red"), "top level.colour", "unknown key"),
    (lambda d: d["categories"]["mitotic figure"].pop("train"), "categories.mitotic figure", "missing `train`"),
    (lambda d: d["templates"]["T1"]["medium"].append("cells"), "templates.T1.medium[2]", "'cells' is also a low template"),
    (lambda d: d["templates"]["T1"].update(held_out=["pick out the nuclei"]), "templates.T1.held_out",
     "needs at least 2 templates"),
    # One template and one synonym give this category a single distinct prompt per group draw of two.
    (lambda d: (d["templates"]["T2"].update(low=["{syn} nuclei"]),
                d["categories"]["tumour-infiltrating lymphocyte"].update(train=["til"])),
     "templates.T2.low", "gives category 'tumour-infiltrating lymphocyte' fewer than 2 distinct prompts"),
])
def test_bad_vocabulary_names_file_and_entry(tmp_path, edit, entry, message):
    data = user_vocabulary()
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(VocabularyError) as err:
        load_vocabulary(path)
    assert str(err.value).startswith(f"{tmp_path / 'prompts.yaml'}") or str(tmp_path) in str(err.value)
    assert entry in str(err.value) and message in str(err.value)


def test_held_out_synonym_prompt_that_equals_a_training_prompt_is_refused(tmp_path):
    data = user_vocabulary()
    # "dividing cells" from held-out "dividing" would equal a training prompt of the other category.
    data["categories"]["tumour-infiltrating lymphocyte"]["held_out"] = ["dividing"]
    with pytest.raises(VocabularyError, match="also a training synonym"):
        load_vocabulary(write(tmp_path, data))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(VocabularyError, match="nope.yaml: prompt vocabulary file not found"):
        load_vocabulary(tmp_path / "nope.yaml")


def test_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(user_vocabulary()).replace("mitosis", "mitose\u00e9").encode("latin-1"))
    with pytest.raises(VocabularyError, match="latin1.yaml: not UTF-8 text .*save it as UTF-8"):
        load_vocabulary(path)
