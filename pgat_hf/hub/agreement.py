"""How much the masks of one prompt group agree: the numbers behind the robustness explorer.

A group is several phrasings of one target. Agreement between two phrasings is the Dice of their
masks (both empty: 1.0), the same pairwise agreement the evaluation reports per group
(evaluation/metrics.py `group_robustness`).
"""

from __future__ import annotations

import numpy as np

from pgat_hf.evaluation.metrics import dice

ROBUST, SENSITIVE = 0.90, 0.75  # mean pairwise agreement: >= ROBUST robust, < SENSITIVE wording-sensitive


def agreement_matrix(masks: list[np.ndarray]) -> np.ndarray:
    """P binary masks [H, W] -> [P, P] float64 Dice between every pair; 1.0 on the diagonal."""
    count = len(masks)
    matrix = np.ones((count, count))
    for i in range(count):
        for j in range(i + 1, count):
            matrix[i, j] = matrix[j, i] = dice(masks[i], masks[j])
    return matrix


def summarize_agreement(phrasings: list[str], matrix: np.ndarray, areas: list[int] | None = None) -> dict:
    """Mean pairwise agreement, the phrasing that disagrees most and one sentence saying how robust.

    The odd one out is the phrasing with the lowest mean agreement with the others; with fewer than
    two phrasings there is nothing to compare. `areas` (mask pixels per phrasing), when given,
    flags the case where every mask is empty: the phrasings agree, but on finding nothing.
    """
    count = len(phrasings)
    if count < 2:
        return {"mean": 1.0, "odd_one_out": None, "odd_one_out_mean": None,
                "sentence": "One phrasing: add another phrasing of the same target to measure agreement."}
    off_diagonal = matrix[~np.eye(count, dtype=bool)].reshape(count, count - 1)
    per_phrasing = off_diagonal.mean(axis=1)
    mean = float(off_diagonal.mean())
    odd = int(np.argmin(per_phrasing))
    if mean >= ROBUST:
        verdict = "robust to wording"
    elif mean >= SENSITIVE:
        verdict = "somewhat sensitive to wording"
    else:
        verdict = "sensitive to wording"
    sentence = (f"Mean pairwise mask agreement (Dice) {mean:.3f} over {count * (count - 1) // 2} pairs: "
                f"this group is {verdict}. Most different: {phrasings[odd]!r} "
                f"(mean agreement {per_phrasing[odd]:.3f} with the others).")
    if areas is not None and not any(areas):
        sentence += " Every mask is empty: the phrasings agree on finding no nuclei."
    return {"mean": mean, "odd_one_out": phrasings[odd], "odd_one_out_mean": float(per_phrasing[odd]),
            "sentence": sentence}


def parse_phrasings(text: str | None) -> tuple[list[str], int]:
    """One phrasing per line -> (the phrasings, the number of empty lines skipped); repeated lines kept once."""
    lines = (text or "").splitlines()
    phrasings, seen = [], set()
    for line in lines:
        phrasing = " ".join(line.split())
        if phrasing and phrasing.lower() not in seen:
            seen.add(phrasing.lower())
            phrasings.append(phrasing)
    empty = sum(1 for line in lines if not line.strip())
    return phrasings, empty
