"""Comparisons between a study's variants over seeds: paired-by-seed tests and Holm's correction.

Within one study every variant shares each seed's validation split and data order (the
split follows ``train.split_seed``, or the training seed when that is ``None``, and every
variant of a study trains under the same seeds), so two variants are compared seed by seed:
the mean of the per-seed differences, its interval (Student's t on n - 1 degrees of freedom),
the paired t-test and an effect size (the mean difference over the standard deviation of the
differences, Cohen's d_z). Where two variants do not have the same seeds the pairing is lost
and the comparison falls back to Welch's unequal-variance test, marked as such. A family of
such tests (the neighbours of one ranking) is corrected by Holm's step-down method.

Only arithmetic lives here: reading ``result.json`` files and writing Markdown is `report`'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Variant ``a`` against variant ``b`` over seeds (differences are ``a - b``).

    Attributes:
      test: ``"paired"`` (same seeds, t-test on the per-seed differences), ``"welch"`` (the
        seeds differ: Welch's unequal-variance t-test) or ``"none"`` (too few seeds to test).
      seeds: the seeds the test used (the shared seeds when paired, every seed otherwise).
      difference: mean of ``a`` minus mean of ``b`` (paired: the mean per-seed difference).
      low, high: the ``level`` confidence interval of ``difference`` (NaN when untested).
      dof: degrees of freedom of the t distribution (``n - 1`` paired; Welch-Satterthwaite).
      p: two-sided p-value (NaN when untested).
      effect: paired, the mean difference over the sd of the differences (d_z); Welch, the
        difference over the pooled sd of the two variants (Cohen's d). Infinite when that sd
        is zero and the difference is not.
    """

    test: str
    seeds: tuple[int, ...]
    difference: float
    low: float
    high: float
    dof: float
    p: float
    effect: float


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.copysign(math.inf, num) if num else math.nan


def paired(a: Mapping[int, float], b: Mapping[int, float], level: float = 0.95) -> Comparison:
    """Compares two variants' per-seed values: paired by seed where both have the same seeds
    (two or more), Welch's test otherwise.

    Args:
      a, b: seed -> value (e.g. test accuracy in percent) of each variant.
      level: the confidence level of the interval.

    Returns:
      A `Comparison` of ``a - b``.

    >>> c = paired({0: 93.2, 1: 93.4, 2: 93.3}, {0: 92.8, 1: 92.9, 2: 92.9})
    >>> c.test, round(c.difference, 2), len(c.seeds)
    ('paired', 0.43, 3)
    """
    from scipy import stats

    nan = math.nan
    quantile = 0.5 + level / 2
    if set(a) == set(b):
        seeds = tuple(sorted(a))
        d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
        n = len(d)
        mean = float(d.mean()) if n else nan
        if n < 2:
            return Comparison("none", seeds, mean, nan, nan, nan, nan, nan)
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(quantile, n - 1)) * sd / math.sqrt(n)
        t = _ratio(mean, sd / math.sqrt(n))
        p = 2 * float(stats.t.sf(abs(t), n - 1)) if math.isfinite(t) else (
            0.0 if math.isinf(t) else 1.0)
        return Comparison("paired", seeds, mean, mean - half, mean + half, n - 1, p,
                          _ratio(mean, sd))
    x = np.array(list(a.values()), dtype=np.float64)
    y = np.array(list(b.values()), dtype=np.float64)
    seeds = tuple(sorted(set(a) | set(b)))
    mean = float(x.mean() - y.mean()) if len(x) and len(y) else nan
    if len(x) < 2 or len(y) < 2:
        return Comparison("none", seeds, mean, nan, nan, nan, nan, nan)
    vx, vy = float(x.var(ddof=1)) / len(x), float(y.var(ddof=1)) / len(y)
    se = math.sqrt(vx + vy)
    dof = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1)) if se else nan
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1))
                       / (len(x) + len(y) - 2))
    if not se:
        p = 0.0 if mean else 1.0
        return Comparison("welch", seeds, mean, mean, mean, nan, p, _ratio(mean, pooled))
    half = float(stats.t.ppf(quantile, dof)) * se
    p = 2 * float(stats.t.sf(abs(mean) / se, dof))
    return Comparison("welch", seeds, mean, mean - half, mean + half, dof, p,
                      _ratio(mean, pooled))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not tests: they
    stay NaN and do not count toward the family's size).

    The k-th smallest of m p-values is multiplied by ``m - k + 1``, capped at 1, and made no
    smaller than the adjusted value before it; rejecting where the adjusted p is under alpha
    keeps the family-wise error rate at alpha (Holm 1979).

    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    tested = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(tested)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    return adjusted


@dataclasses.dataclass(frozen=True)
class RankCorrelation:
    """How two rankings of the same variants agree: Spearman's rank correlation.

    Attributes:
      variants: the variants both rankings hold, in the first ranking's order.
      rho: Spearman's rho (ties take their average rank; NaN where either side is all ties).
      low, high: its approximate ``level`` confidence interval, by Fisher's z with Bonett and
        Wright's variance ``(1 + rho^2 / 2) / (n - 3)`` (NaN under four variants, and where
        rho is +-1 or undefined: Fisher's z has no finite value there).
      p: two-sided p of the test of no association: exact (every ordering of the second
        ranking against the first) up to `EXACT_RANKS` variants, the t approximation beyond;
        NaN under three variants or where rho is undefined.
    """

    variants: tuple[str, ...]
    rho: float
    low: float
    high: float
    p: float


#: Up to how many variants `rank_correlation`'s p counts every ordering (10! = 3,628,800).
EXACT_RANKS = 10


def _orderings(n: int) -> np.ndarray:
    """Every permutation of ``range(n)``, one per row (``n!`` rows, int8)."""
    rows = np.zeros((1, 0), dtype=np.int8)
    for k in range(n):
        grown = np.empty((len(rows) * (k + 1), k + 1), dtype=np.int8)
        for place in range(k + 1):
            block = grown[place * len(rows):(place + 1) * len(rows)]
            block[:, :place], block[:, place] = rows[:, :place], k
            block[:, place + 1:] = rows[:, place:]
        rows = grown
    return rows


def _exact_p(x_ranks: np.ndarray, y_ranks: np.ndarray) -> float:
    """The share of orderings of ``y_ranks`` whose rank covariance with ``x_ranks`` is at least
    as far from zero as the observed one (the two-sided permutation p of Spearman's rho)."""
    x, y = x_ranks - x_ranks.mean(), y_ranks - y_ranks.mean()
    observed = abs(float(x @ y)) * (1 - 1e-9)
    hits, total = 0, 0
    orderings = _orderings(len(x))
    for start in range(0, len(orderings), 1 << 19):
        chunk = y[orderings[start:start + (1 << 19)]] @ x
        hits += int(np.count_nonzero(np.abs(chunk) >= observed))
        total += len(chunk)
    return hits / total


def rank_correlation(a: Mapping[str, float], b: Mapping[str, float],
                     level: float = 0.95) -> RankCorrelation:
    """Spearman's rank correlation of two studies' values (e.g. mean test accuracy) over the
    variants both hold, with an approximate confidence interval (Bonett and Wright 2000:
    Fisher's z of rho, variance ``(1 + rho^2 / 2) / (n - 3)``) and the test of no association
    (exact up to `EXACT_RANKS` variants).

    The interval treats the variants as drawn from a population of designs and leaves out the
    seed noise inside each study's means; with ten or fewer variants it is rough.

    Args:
      a, b: variant -> value in each study; variants in only one are left out.
      level: the confidence level of the interval.

    Returns:
      A `RankCorrelation` (``rho`` NaN under two shared variants).

    >>> r = rank_correlation({"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0, "e": -1.0},
    ...                      {"a": 9.0, "b": 7.0, "c": 8.0, "d": 1.0, "e": 0.0})
    >>> round(r.rho, 2), round(r.p, 4), r.variants
    (0.9, 0.0833, ('a', 'b', 'c', 'd', 'e'))
    """
    from scipy import stats

    shared = tuple(v for v in sorted(a, key=lambda v: -a[v]) if v in b)
    n = len(shared)
    nan = math.nan
    if n < 2:
        return RankCorrelation(shared, nan, nan, nan, nan)
    x = stats.rankdata([a[v] for v in shared])
    y = stats.rankdata([b[v] for v in shared])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankCorrelation(shared, nan, nan, nan, nan)
    rho = float(np.corrcoef(x, y)[0, 1])
    p = nan
    if n >= 3:
        p = _exact_p(x, y) if n <= EXACT_RANKS else float(stats.spearmanr(x, y).pvalue)
    return RankCorrelation(shared, rho, *spearman_interval(rho, n, level), p)


def spearman_interval(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The approximate ``level`` confidence interval of Spearman's ``rho`` over ``n`` pairs:
    Fisher's z with Bonett and Wright's (2000) variance ``(1 + rho^2 / 2) / (n - 3)``; NaNs
    under four pairs or where ``|rho|`` is 1 or undefined.

    >>> [round(v, 4) for v in spearman_interval(0.8699639, 15)]
    [0.5841, 0.9638]
    """
    from scipy import stats

    if n < 4 or not abs(rho) < 1:
        return math.nan, math.nan
    half = float(stats.norm.ppf(0.5 + level / 2)) * math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    return math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)
