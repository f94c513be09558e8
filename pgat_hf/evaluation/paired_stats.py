"""Paired differences between two recipes over the same seeds, with a Student-t interval.

Seed s of every recipe starts from the same weights and sees the same prompts, so the per-seed
difference a_s − b_s cancels the seed-to-seed variation both recipes share; its interval is much
narrower than the one from two independent means.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

NAN = float("nan")


def _missing(value) -> bool:
    """None or NaN: a metric a run did not produce."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def paired_difference(a: Sequence[float | None], b: Sequence[float | None], confidence: float = 0.95) -> dict:
    """Mean of d_i = a_i − b_i with its sample sd and Student-t interval.

    a and b hold one value per seed in the same seed order. A pair where either value is None or NaN is
    dropped; n counts the pairs kept. The interval is mean ± t_{(1+confidence)/2, n−1} · sd / √n. One
    pair gives the mean and NaN for sd, low, high and half_width; no pair gives n = 0 and NaN everywhere.

    Returns {"mean", "sd", "n", "low", "high", "half_width"} as plain floats (n an int).
    """
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    kept = [(float(x), float(y)) for x, y in zip(a, b) if not (_missing(x) or _missing(y))]
    n = len(kept)
    if n == 0:
        return {"mean": NAN, "sd": NAN, "n": 0, "low": NAN, "high": NAN, "half_width": NAN}
    d = np.array([x - y for x, y in kept])
    mean = float(d.mean())
    if n == 1:
        return {"mean": mean, "sd": NAN, "n": 1, "low": NAN, "high": NAN, "half_width": NAN}
    sd = float(d.std(ddof=1))
    half_width = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1) * sd / math.sqrt(n))
    return {"mean": mean, "sd": sd, "n": n, "low": mean - half_width, "high": mean + half_width,
            "half_width": half_width}


def resolves(result: dict, half_width: float = 0.02) -> bool:
    """Whether the interval is narrow enough to tell a difference of `half_width` from none.

    True when the interval's half-width is finite and at most `half_width`.
    """
    value = result.get("half_width", NAN)
    return value is not None and math.isfinite(value) and value <= half_width


def seeds_to_resolve(sd: float, half_width: float = 0.02, confidence: float = 0.95,
                     max_seeds: int = 1000) -> int | None:
    """The fewest paired seeds n ≥ 2 with t_{(1+confidence)/2, n−1} · sd / √n ≤ half_width.

    A planning estimate that takes the observed sd of the differences for the true one. None when sd
    is missing or no n up to max_seeds is enough.
    """
    if _missing(sd) or not math.isfinite(sd):
        return None
    for n in range(2, max_seeds + 1):
        if stats.t.ppf((1.0 + confidence) / 2.0, n - 1) * sd / math.sqrt(n) <= half_width:
            return n
    return None


def excludes_zero(result: dict) -> bool:
    """Whether the interval lies wholly on one side of 0 (a finite interval not containing 0)."""
    low, high = result.get("low", NAN), result.get("high", NAN)
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return False
    return low > 0.0 or high < 0.0
