"""Paired-by-seed comparisons and Holm's correction, against hand computations."""

import math

import pytest
from scipy import stats as scipy_stats

from jaxconv.experiment import stats

#: Student's t at 97.5% with 2 degrees of freedom, from the published table.
T_975_2 = 4.302652729911275


def test_a_paired_comparison_by_hand():
    """Differences 0.4, 0.6, 0.2: mean 0.4, sd 0.2, standard error 0.2 / sqrt(3), t = 2 sqrt(3)
    on 2 degrees of freedom, whose two-sided p is 1 - t / sqrt(2 + t^2) = 1 - sqrt(6 / 7)
    (the t distribution with 2 degrees of freedom has a closed-form CDF); d_z = 0.4 / 0.2."""
    c = stats.paired({0: 93.2, 1: 93.5, 2: 93.3}, {0: 92.8, 1: 92.9, 2: 93.1})
    assert c.test == "paired" and c.seeds == (0, 1, 2) and c.dof == 2
    assert c.difference == pytest.approx(0.4)
    half = T_975_2 * 0.2 / math.sqrt(3)
    assert (c.low, c.high) == pytest.approx((0.4 - half, 0.4 + half))
    assert c.p == pytest.approx(1 - math.sqrt(6 / 7))
    assert c.effect == pytest.approx(2.0)


def test_pairing_goes_by_seed_not_by_position():
    """The same values in another dict order pair the same way."""
    a = {2: 93.3, 0: 93.2, 1: 93.5}
    b = {0: 92.8, 1: 92.9, 2: 93.1}
    assert stats.paired(a, b).p == pytest.approx(1 - math.sqrt(6 / 7))


def test_seeds_that_differ_fall_back_to_welch_by_hand():
    """x = 1, 2, 3 (variance 1) against y = 0, 2, 0, 2 (variance 4/3): difference 1, standard
    error sqrt(1/3 + 1/3), Welch-Satterthwaite (2/3)^2 / ((1/3)^2/2 + (1/3)^2/3) = 4.8 degrees
    of freedom, pooled sd sqrt((2 + 4) / 5); the p-value is scipy's Welch test."""
    x = {0: 1.0, 1: 2.0, 2: 3.0}
    y = {0: 0.0, 1: 2.0, 3: 0.0, 4: 2.0}
    c = stats.paired(x, y)
    assert c.test == "welch" and c.seeds == (0, 1, 2, 3, 4)
    assert c.difference == pytest.approx(1.0) and c.dof == pytest.approx(4.8)
    half = float(scipy_stats.t.ppf(0.975, 4.8)) * math.sqrt(2 / 3)
    assert (c.low, c.high) == pytest.approx((1 - half, 1 + half))
    welch = scipy_stats.ttest_ind(list(x.values()), list(y.values()), equal_var=False)
    assert c.p == pytest.approx(float(welch.pvalue))
    assert c.effect == pytest.approx(1 / math.sqrt(6 / 5))


def test_one_seed_is_not_a_test():
    c = stats.paired({0: 1.0}, {0: 0.5})
    assert c.test == "none" and c.difference == 0.5 and math.isnan(c.p)


def test_constant_differences():
    c = stats.paired({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
    assert c.p == 0.0 and c.effect == math.inf and c.low == c.high == 1.0
    same = stats.paired({0: 2.0, 1: 3.0}, {0: 2.0, 1: 3.0})
    assert same.p == 1.0 and math.isnan(same.effect)


def test_holm_by_hand():
    """Sorted 0.01, 0.03, 0.04 of a family of three: 3 x 0.01, 2 x 0.03, then max(0.06, 0.04);
    a NaN is no test and does not count toward the family."""
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_rank_correlation_by_hand():
    """Ranks 1-5 against 1, 3, 2, 4, 5: sum of squared rank differences 2, so rho = 1 - 6 * 2 /
    (5 * 24) = 0.9. Exact p: of the 120 orderings of five ranks, those with rho >= 0.9 are the
    identity (rho 1) and the four swaps of two neighbours (0.9), and as many with rho <= -0.9:
    10 / 120."""
    a = {"a": 93.5, "b": 93.1, "c": 92.8, "d": 92.0, "e": 91.0}
    b = {"e": 90.0, "d": 91.0, "c": 93.0, "b": 92.5, "a": 94.0, "extra": 99.0}
    r = stats.rank_correlation(a, b)
    assert r.variants == ("a", "b", "c", "d", "e")
    assert r.rho == pytest.approx(0.9)
    assert r.p == pytest.approx(10 / 120)
    assert (r.low, r.high) == pytest.approx(stats.spearman_interval(0.9, 5))


def test_spearman_interval_against_bonetts_published_example():
    """The worked example of the statpsych package's ci.spear (Bonett and Wright's interval):
    these 15 pairs, tied x values included, give rho 0.8699639 and the 95% interval 0.5840951
    to 0.9638297."""
    y = (21, 4, 9, 12, 35, 18, 10, 22, 24, 1, 6, 8, 13, 16, 19)
    x = (67, 28, 30, 28, 52, 40, 25, 37, 44, 10, 14, 20, 28, 40, 51)
    r = stats.rank_correlation({i: float(v) for i, v in enumerate(y)},
                               {i: float(v) for i, v in enumerate(x)})
    assert r.rho == pytest.approx(0.8699639, abs=1e-7)
    assert (r.low, r.high) == pytest.approx((0.5840951, 0.9638297), abs=1e-6)
    assert stats.spearman_interval(0.8699639, 15) == pytest.approx((0.5840951, 0.9638297),
                                                                    abs=1e-6)
    assert all(math.isnan(v) for v in stats.spearman_interval(0.5, 3))  # n - 3 = 0
    assert all(math.isnan(v) for v in stats.spearman_interval(1.0, 10))  # Fisher's z infinite


def test_rank_correlation_p_is_exact_for_few_variants():
    """Perfect agreement of three variants: 2 of the 3! orderings are as extreme (the identity
    and the reversal), p = 1/3; of four, 2 / 4! = 1/12; the t approximation would say 0."""
    three = stats.rank_correlation({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert three.rho == pytest.approx(-1.0) and three.p == pytest.approx(1 / 3)
    assert math.isnan(three.low) and math.isnan(three.high)
    four = stats.rank_correlation(dict(zip("abcd", (4.0, 3.0, 2.0, 1.0))),
                                  dict(zip("abcd", (9.0, 8.0, 7.0, 6.0))))
    assert four.rho == 1.0 and four.p == pytest.approx(1 / 12)
    # Fisher's z of 1 is infinite: no interval, rather than a certain [1, 1]
    assert math.isnan(four.low) and math.isnan(four.high)


def test_rank_correlation_with_ties_or_too_few_variants():
    one = stats.rank_correlation({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0})
    assert one.variants == ("a",) and math.isnan(one.rho)
    # one study's means all tie: no ranking, no correlation
    flat = stats.rank_correlation(dict(zip("abcd", (1.0, 2.0, 3.0, 4.0))),
                                  dict(zip("abcd", (5.0, 5.0, 5.0, 5.0))))
    assert math.isnan(flat.rho) and math.isnan(flat.p)
    # ten variants, two tied in the second study: the exact p counts every one of the 10!
    # orderings; against scipy's t approximation for a sanity bound
    a = {str(i): float(i) for i in range(10)}
    b = {**a, "2": 5.0}
    r = stats.rank_correlation(a, b)
    assert r.rho == pytest.approx(scipy_stats.spearmanr(list(a.values()), list(b.values()))
                                  .statistic)
    assert 0 < r.p < 0.001
