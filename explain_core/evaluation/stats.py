"""Statistics in NumPy (scipy is not a dependency): ranks with ties, Spearman, AUROC, and
bootstrap intervals over questions (so that a choice between methods is not made on noise)."""
from __future__ import annotations

from collections.abc import Callable

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


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, *, draws: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval over `n` questions: `statistic` gets an array of question
    indices drawn with replacement. Paired comparisons pass a statistic of the per-question
    differences, so that the questions' shared difficulty cancels. NaN draws are ignored."""
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(draws)]
    low, high = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def mean_interval(values: np.ndarray, *, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-question values and its 95% bootstrap interval: (mean, low, high)."""
    values = np.asarray(values, np.float64)
    low, high = bootstrap_interval(lambda index: float(values[index].mean()), len(values), draws=draws, seed=seed)
    return float(values.mean()), low, high
