"""Confidence intervals against published and hand-computed values, and judging on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genops.core.intervals import (
    abs_interval,
    katz,
    log_ratio,
    newcombe,
    percentile_interval,
    wilson,
    z_value,
)
from genops.core.verdict import BiasVerdict, interval_passes, make_result, verdict_reasons

Z = 1.959963984540054  # two-sided 95%


def test_z_value() -> None:
    assert z_value(0.95) == pytest.approx(Z)
    assert z_value(0.90) == pytest.approx(1.644853627)
    with pytest.raises(ValueError, match="confidence"):
        z_value(1.0)


def test_wilson_against_newcombe_1998() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", method 3
    # (score interval without continuity correction): 81/263 -> 0.2553 to 0.3662
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    # the same by the formula: centre (p + z²/2n)/(1 + z²/n), half z/(1 + z²/n)·sqrt(...)
    p, n = 81 / 263, 263
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n))
    assert wilson(81, 263) == pytest.approx((centre - half, centre + half))
    # the edges stay inside [0, 1]; no rows: no interval
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_newcombe_against_newcombe_1998() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", method 10 (hybrid score): 56/70 - 48/80 -> 0.0524 to 0.3339, and
    # 5/56 - 0/29 -> -0.0381 to 0.1926
    assert newcombe(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert newcombe(5, 56, 0, 29) == pytest.approx((-0.0381, 0.1926), abs=5e-5)
    # swapping the samples mirrors the interval
    lo, hi = newcombe(48, 80, 56, 70)
    assert (lo, hi) == pytest.approx((-0.3339, -0.0524), abs=5e-5)
    assert all(math.isnan(x) for x in newcombe(1, 0, 1, 2))


def test_katz_log_ratio() -> None:
    # (10/100) / (20/100) = 0.5; var(log) = 1/10 - 1/100 + 1/20 - 1/100 = 0.13
    half = Z * math.sqrt(0.13)
    assert katz(10, 100, 20, 100) == pytest.approx((0.5 * math.exp(-half), 0.5 * math.exp(half)))
    assert katz(10, 100, 20, 100) == pytest.approx((0.2466, 1.0136), abs=5e-5)
    # a zero count is taken as 0.5 (Haldane): the interval exists, from 0.5/100 over 20/100
    lo, hi = katz(0, 100, 20, 100)
    var = 1 / 0.5 - 1 / 100 + 1 / 20 - 1 / 100
    assert hi == pytest.approx(0.025 * math.exp(Z * math.sqrt(var)))
    assert 0 < lo < hi


def test_log_ratio_of_ratios() -> None:
    # ((20/100) / (40/100)) / ((30/200) / (60/200)) = 0.5 / 0.5 = 1
    # var = (1/20 - 1/100) + (1/40 - 1/100) + (1/30 - 1/200) + (1/60 - 1/200)
    var = (1 / 20 - 1 / 100) + (1 / 40 - 1 / 100) + (1 / 30 - 1 / 200) + (1 / 60 - 1 / 200)
    lo, hi = log_ratio([(20, 100), (60, 200)], [(40, 100), (30, 200)])
    assert (lo, hi) == pytest.approx((math.exp(-Z * math.sqrt(var)), math.exp(Z * math.sqrt(var))))


def test_abs_interval() -> None:
    assert abs_interval(0.1, 0.3) == (0.1, 0.3)
    assert abs_interval(-0.3, -0.1) == (0.1, 0.3)
    assert abs_interval(-0.2, 0.1) == (0.0, 0.2)


def test_percentile_interval_reads_sorted_replicates() -> None:
    reps = np.arange(1000, dtype=float)[::-1]
    # 2.5% of 999 = 24.975 -> index 24 (down); 97.5% -> 974.025 -> index 975 (up)
    assert percentile_interval(reps, 0.95) == (24.0, 975.0)
    # infinite replicates do not become NaN; NaN replicates are left out
    reps = np.array([0.1, 0.2, np.inf, np.inf, np.nan] * 100)
    assert percentile_interval(reps) == (0.1, math.inf)
    assert all(math.isnan(x) for x in percentile_interval(np.array([np.nan])))
    # widened to hold the point value: resampled distances sit above a distance of 0
    distances = np.linspace(0.01, 0.03, 101)
    assert percentile_interval(distances, 0.95, point=0.0) == pytest.approx((0.0, 0.0296))
    assert percentile_interval(distances, 0.95, point=0.02) == pytest.approx((0.0104, 0.0296))


@pytest.mark.parametrize(
    ("low", "high", "comparison", "passes"),
    [
        (0.11, 0.2, "<=", False),  # wholly above a ceiling of 0.1: fails
        (0.05, 0.2, "<=", True),  # reaches it
        (0.1, 0.2, "<", False),
        (0.09, 0.2, "<", True),
        (0.0, 0.09, ">=", False),  # wholly below a floor of 0.1
        (0.0, 0.1, ">=", True),
        (0.0, 0.1, ">", False),
        (0.12, 0.3, "|x|<=", False),  # wholly outside [-0.1, 0.1]
        (-0.3, -0.12, "|x|<=", False),
        (-0.3, 0.05, "|x|<=", True),
        (0.5, 0.9, "report", True),
    ],
)
def test_interval_passes(low: float, high: float, comparison: str, passes: bool) -> None:
    assert interval_passes(low, high, 0.1, comparison) is passes


def test_make_result_judges_the_interval_and_the_too_small_rule() -> None:
    # point value beyond, interval reaches: passes, and says so
    near = make_result("s", "m", "a", ["g"], 0.2, 0.1, "<=", interval=(0.05, 0.3))
    assert near.passed and "interval reaches it" in near.note and near.status == "pass"
    assert near.describe().startswith("m for a='g' vs rest = 0.200 [0.050, 0.300]")
    # wholly beyond: fails, the description shows the interval
    far = make_result("s", "m", "a", ["g"], 0.2, 0.1, "<=", interval=(0.15, 0.25))
    assert not far.passed and far.status == "FAIL"
    assert far.describe() == "m for a='g' vs rest = 0.200 [0.150, 0.250] > 0.100"
    # too small: never judged on its value, whatever the interval
    small = make_result(
        "s", "m", "a", ["g"], 0.9, 0.1, "<=", interval=(0.8, 1.0), too_small="8 rows < 100"
    )
    assert small.passed and small.too_small and small.status == "too small to judge"
    assert small.describe() == (
        "m for a='g' vs rest = 0.900 [0.800, 1.000] [too small to judge: 8 rows < 100]"
    )
    # without an interval, the point value decides (as before)
    assert not make_result("s", "m", "a", ["g"], 0.2, 0.1, "<=").passed
    # round trip keeps the interval and the flag
    verdict = BiasVerdict.from_results("synthetic", [near, far, small])
    back = BiasVerdict.from_json(verdict.to_json())
    assert back.results == [near, far, small]
    assert verdict.to_dict()["n_too_small"] == 1


def test_verdict_reasons() -> None:
    small = make_result("s", "m", "race", ["Other"], 0.9, 0.1, "<=", too_small="8 rows < 100")
    ok = make_result("s", "m", "race", ["White"], 0.0, 0.1, "<=", interval=(-0.01, 0.01))
    passed = BiasVerdict.from_results("synthetic", [ok, small, small])
    assert verdict_reasons(passed) == (
        "synthetic bias gate passed: 0 of 3 results failed; too small to judge: "
        "race='Other' vs rest (8 rows < 100)"
    )
    bad = make_result("s", "m", "sex", ["F"], 0.2, 0.1, "<=", interval=(0.15, 0.25))
    failed = BiasVerdict.from_results("synthetic", [bad, small])
    assert verdict_reasons(failed) == (
        "synthetic bias gate failed: m for sex='F' vs rest = 0.200 [0.150, 0.250] > 0.100"
    )
