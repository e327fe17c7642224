"""Rank statistics in NumPy (scipy is not a dependency): ranks with ties, Spearman, AUROC."""
from __future__ import annotations

import numpy as np


def rank_average(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank (as scipy.stats.rankdata's default)."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    boundaries = np.flatnonzero(np.diff(values[order])) + 1
    for group in np.split(np.arange(len(values)), boundaries):
        ranks[order[group]] = group.mean() + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation: Pearson correlation of the tie-averaged ranks (0 when one
    side is constant, where the correlation is undefined and no ranking agreement exists)."""
    ra, rb = rank_average(a), rank_average(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative
    (ties count half), from the rank-sum (Mann-Whitney) formula; NaN without both classes."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    return float((rank_average(scores)[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
