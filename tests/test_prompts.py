"""pgat_hf.data.prompts: seeded prompt groups, quality labels, held-out pool, vocabulary."""

import random

import pytest

from pgat_hf.data.prompts import (
    CATEGORY_SYNONYMS,
    HELD_OUT,
    HELD_OUT_SYNONYM,
    QUALITIES,
    T1_TEMPLATES,
    T2_TEMPLATES,
    make_prompt_groups,
    normalize_prompt,
    prompt_pool,
    prompt_vocabulary,
    training_prompts,
)

CATEGORIES = ["neoplastic", "inflammatory", "connective", "epithelial"]


def test_same_seed_same_groups_different_seed_differs():
    a = make_prompt_groups(CATEGORIES, [True, False, True, True], seed=7)
    b = make_prompt_groups(CATEGORIES, [True, False, True, True], seed=7)
    c = make_prompt_groups(CATEGORIES, [True, False, True, True], seed=8)
    assert a == b
    assert [g["prompts"] for g in a] != [g["prompts"] for g in c]


def test_global_random_state_is_untouched():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    make_prompt_groups(CATEGORIES, None, seed=1)
    assert random.random() == expected


def test_group_structure_counts_and_qualities():
    present = [True, False, True, False]
    groups = make_prompt_groups(CATEGORIES, present, seed=3, prompts_per_quality=3, held_out_per_group=2)
    assert len(groups) == 1 + len(CATEGORIES)
    t1 = groups[0]
    assert (t1["task"], t1["category"], t1["category_id"], t1["present"]) == ("T1", "nuclei", 0, True)
    for index, group in enumerate(groups[1:]):
        assert group["task"] == "T2"
        assert group["category"] == CATEGORIES[index]
        assert group["category_id"] == index + 1
        assert group["present"] is present[index]
    for group in groups:
        synonyms = [HELD_OUT_SYNONYM] * 2 if group["task"] == "T2" else []
        assert group["quality"] == ["low"] * 3 + ["medium"] * 3 + ["high"] * 3 + [HELD_OUT] * 2 + synonyms
        assert len(group["prompts"]) == len(group["quality"])
        assert len(set(group["prompts"])) == len(group["prompts"])  # no duplicates
        for prompt in group["prompts"]:
            assert prompt == prompt.lower() == normalize_prompt(prompt)


def test_present_none_means_all_present_and_length_is_checked():
    groups = make_prompt_groups(CATEGORIES, None, seed=0)
    assert all(g["present"] for g in groups)
    with pytest.raises(ValueError):
        make_prompt_groups(CATEGORIES, [True], seed=0)


def test_t2_prompts_name_the_category():
    from pgat_hf.data.vocabulary import default_vocabulary

    for group in make_prompt_groups(CATEGORIES, None, seed=5)[1:]:
        entry = default_vocabulary().category(group["category"])
        for prompt, quality in zip(group["prompts"], group["quality"]):
            synonyms = entry.held_out if quality == HELD_OUT_SYNONYM else entry.train
            assert any(syn in prompt for syn in synonyms), prompt
            if quality == HELD_OUT_SYNONYM:  # the held-out synonym alone names the category
                assert not any(f" {syn} " in f" {prompt} " for syn in entry.train), prompt


def test_unknown_category_uses_its_name():
    groups = make_prompt_groups(["mitotic_figure"], [True], seed=0)
    assert groups[1]["category"] == "mitotic_figure"
    assert all("mitotic figure" in p for p in groups[1]["prompts"])
    vocabulary = set(prompt_vocabulary(["mitotic_figure"]))
    assert set(groups[1]["prompts"]) <= vocabulary


def test_enough_templates_per_task_and_quality():
    for quality in QUALITIES:
        assert len(T1_TEMPLATES[quality]) >= 8
        assert len(T2_TEMPLATES[quality]) >= 8
        assert all("{syn}" in t for t in T2_TEMPLATES[quality])
    # low prompts are short, high prompts are long: the quality axis means something.
    mean_words = {q: sum(len(p.split()) for p in prompt_pool("T1", q)) / len(prompt_pool("T1", q)) for q in QUALITIES}
    assert mean_words["low"] < mean_words["medium"] < mean_words["high"]


def test_held_out_disjoint_from_training_prompts():
    training = training_prompts()
    for seed in range(20):
        for group in make_prompt_groups(list(CATEGORY_SYNONYMS), None, seed=seed):
            held = [p for p, q in zip(group["prompts"], group["quality"]) if q in (HELD_OUT, HELD_OUT_SYNONYM)]
            seen = [p for p, q in zip(group["prompts"], group["quality"]) if q in QUALITIES]
            assert held and not set(held) & training
            assert set(seen) <= training
    for category in CATEGORY_SYNONYMS:
        assert not set(prompt_pool("T2", HELD_OUT, category)) & training
        assert prompt_pool("T2", HELD_OUT_SYNONYM, category) and not set(prompt_pool("T2", HELD_OUT_SYNONYM, category)) & training
    assert not set(prompt_pool("T1", HELD_OUT)) & training


def test_vocabulary_covers_generated_prompts():
    vocabulary = prompt_vocabulary()
    assert vocabulary == sorted(set(vocabulary))
    as_set = set(vocabulary)
    for seed in range(10):
        for group in make_prompt_groups(list(CATEGORY_SYNONYMS), None, seed=seed):
            assert set(group["prompts"]) <= as_set
    assert training_prompts() <= as_set


def test_normalize_prompt():
    assert normalize_prompt("  Segment   the NUCLEI.  ") == "segment the nuclei"
    assert normalize_prompt("find tumor cells?!") == "find tumor cells"
    assert normalize_prompt("nuclei, excluding stroma") == "nuclei, excluding stroma"


def test_too_many_prompts_requested_raises():
    with pytest.raises(ValueError, match="only"):
        make_prompt_groups(["x"], None, seed=0, prompts_per_quality=50)
