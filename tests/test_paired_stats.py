"""Paired differences over seeds: hand-computed means, sample sd and Student-t intervals."""

import math

import pytest

from pgat_hf.evaluation.paired_stats import excludes_zero, paired_difference, resolves, seeds_to_resolve


def test_three_seeds_give_the_hand_computed_t_interval():
    # d = [0.1, 0.05, 0.05]; sd = sqrt(((1/30)^2 + 2 (1/60)^2) / 2); t(0.975, 2) = 4.302653
    result = paired_difference([0.9, 0.8, 0.85], [0.8, 0.75, 0.8])
    assert result["n"] == 3
    assert result["mean"] == pytest.approx(0.0666667, abs=1e-6)
    assert result["sd"] == pytest.approx(0.0288675, abs=1e-6)
    assert result["half_width"] == pytest.approx(0.0717108, abs=1e-6)
    assert result["low"] == pytest.approx(0.0666667 - 0.0717108, abs=1e-6)
    assert result["high"] == pytest.approx(0.0666667 + 0.0717108, abs=1e-6)
    assert not resolves(result) and resolves(result, half_width=0.08)
    assert not excludes_zero(result)


def test_confidence_sets_the_t_quantile():
    # t(0.95, 2) = 2.919986, so the 90 % half-width is 2.919986 · sd / √3
    result = paired_difference([0.9, 0.8, 0.85], [0.8, 0.75, 0.8], confidence=0.90)
    assert result["half_width"] == pytest.approx(2.919986 * 0.0288675 / math.sqrt(3), abs=1e-6)
    assert excludes_zero(result)


def test_one_pair_gives_the_mean_and_no_interval():
    result = paired_difference([0.7], [0.6])
    assert result["n"] == 1 and result["mean"] == pytest.approx(0.1)
    assert all(math.isnan(result[key]) for key in ("sd", "low", "high", "half_width"))
    assert not resolves(result) and not excludes_zero(result)


def test_pairs_with_a_missing_value_are_dropped():
    # only the pairs (0.9, 0.8) and (0.85, 0.8) survive: d = [0.1, 0.05]
    result = paired_difference([0.9, None, 0.85, float("nan")], [0.8, 0.7, 0.8, 0.6])
    assert result["n"] == 2
    assert result["mean"] == pytest.approx(0.075)
    assert result["sd"] == pytest.approx(math.sqrt(2 * 0.025 ** 2))  # ddof=1 over two values
    assert result["half_width"] == pytest.approx(12.706205 * result["sd"] / math.sqrt(2), rel=1e-6)


def test_no_pair_left_is_n_zero_and_nan():
    for a, b in (([], []), ([None, 0.5], [0.4, float("nan")])):
        result = paired_difference(a, b)
        assert result["n"] == 0
        assert all(math.isnan(result[key]) for key in ("mean", "sd", "low", "high", "half_width"))


def test_identical_recipes_give_a_zero_width_interval_at_zero():
    result = paired_difference([0.8, 0.7, 0.9, 0.75], [0.8, 0.7, 0.9, 0.75])
    assert result["n"] == 4
    assert result["mean"] == result["sd"] == result["half_width"] == 0.0
    assert result["low"] == result["high"] == 0.0
    assert resolves(result) and not excludes_zero(result)


def test_unpaired_lengths_and_bad_confidence_are_refused():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([0.1], [0.1], confidence=1.0)


def test_seeds_to_resolve_is_the_first_n_whose_t_half_width_fits():
    # sd 0.0197: n = 6 gives t(0.975, 5) · 0.0197 / √6 = 2.5706 · 0.0197 / 2.4495 = 0.0207 > 0.02; n = 7 gives 0.0182.
    assert seeds_to_resolve(0.0197) == 7
    # d = [0.1, 0.05, 0.05] has sd 0.02887: n = 10 gives 0.0207, n = 11 gives 2.2281 · 0.02887 / √11 = 0.0194.
    assert seeds_to_resolve(paired_difference([0.1, 0.05, 0.05], [0.0, 0.0, 0.0])["sd"]) == 11
    assert seeds_to_resolve(0.0) == 2 and seeds_to_resolve(0.03, half_width=0.05) == 4
    assert seeds_to_resolve(float("nan")) is None and seeds_to_resolve(5.0, max_seeds=50) is None
