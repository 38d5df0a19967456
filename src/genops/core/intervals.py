"""Confidence intervals for the gates' metrics: closed forms where one exists, a seeded
percentile bootstrap otherwise. Every function returns ``(low, high)``; ``(nan, nan)`` when
the interval is undefined (no rows).

Closed forms (``z`` is the two-sided normal quantile of ``confidence``):

==================  ==================================================================
Wilson              a proportion ``k/n``: ``centre = (p + z²/2n) / (1 + z²/n)``,
                    ``half = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)``
Newcombe (hybrid)   a difference ``p1 - p2`` of independent proportions, from their Wilson
                    intervals (method 10 of Newcombe 1998; MOVER):
                    ``d - sqrt((p1-l1)² + (u2-p2)²)``, ``d + sqrt((u1-p1)² + (p2-l2)²)``
Katz (log ratio)    a ratio ``p1 / p2`` of independent proportions:
                    ``exp(log(p1/p2) ± z · sqrt(1/k1 - 1/n1 + 1/k2 - 1/n2))``; a zero count
                    is replaced by 0.5 (Haldane) in the logarithm and the variance
log ratio of        ``(p1/p2) / (p3/p4)`` of four independent proportions, the same way:
ratios              ``exp(log ratio ± z · sqrt(Σ_i 1/k_i - 1/n_i))``
==================  ==================================================================

The bootstrap (:func:`percentile_interval`) takes the replicates a caller drew with its own
seeded ``numpy.random.Generator``; quantiles are read off the sorted replicates without
interpolation, so infinite replicates (a KL divergence with an empty cell) do not turn into NaN,
and the interval is widened to hold the point value when its percentiles miss it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

Interval = tuple[float, float]

NAN_INTERVAL: Interval = (math.nan, math.nan)


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile, e.g. 1.95996 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(k: float, n: float, confidence: float = 0.95) -> Interval:
    """Wilson score interval of the proportion ``k / n``."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got {k} of {n}")
    if n == 0:
        return NAN_INTERVAL
    z = z_value(confidence)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: float, n1: float, k2: float, n2: float, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval of ``k1/n1 - k2/n2`` (independent samples)."""
    if n1 == 0 or n2 == 0:
        return NAN_INTERVAL
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def _log_rate(k: float, n: float) -> tuple[float, float]:
    """``log(k/n)`` and its delta-method variance ``1/k - 1/n``, with k = 0 taken as 0.5."""
    k = 0.5 if k == 0 else k
    n = max(n, k)
    return math.log(k / n), max(0.0, 1.0 / k - 1.0 / n)


def log_ratio(
    numerators: list[tuple[float, float]],
    denominators: list[tuple[float, float]],
    confidence: float = 0.95,
) -> Interval:
    """Interval of ``Π p_num / Π p_den`` for independent proportions ``p = k/n`` given as
    ``(k, n)`` pairs, on the log scale (Katz's interval for one ratio, its sum-of-variances
    extension for a ratio of ratios). Zero counts are taken as 0.5."""
    if any(n == 0 for _, n in [*numerators, *denominators]):
        return NAN_INTERVAL
    log_value, variance = 0.0, 0.0
    for sign, pairs in ((1.0, numerators), (-1.0, denominators)):
        for k, n in pairs:
            lr, var = _log_rate(k, n)
            log_value += sign * lr
            variance += var
    half = z_value(confidence) * math.sqrt(variance)
    return math.exp(log_value - half), math.exp(log_value + half)


def katz(k1: float, n1: float, k2: float, n2: float, confidence: float = 0.95) -> Interval:
    """Katz's log interval of the ratio ``(k1/n1) / (k2/n2)`` (independent samples)."""
    return log_ratio([(k1, n1)], [(k2, n2)], confidence)


def percentile_interval(
    replicates: np.ndarray, confidence: float = 0.95, point: float | None = None
) -> Interval:
    """Percentile bootstrap interval from the replicates of a statistic. NaN replicates (a
    resample where the statistic is undefined) are left out; none left gives NaN.

    ``point`` (the statistic on the data itself) widens the interval to hold it: a distance
    such as a TVD or 1 - KS is biased in resamples (two samples of one distribution are
    never at distance 0), so its percentiles can lie wholly on one side of the point, and a
    gate that fails only when the interval lies beyond the threshold must not fail a point
    value that meets it."""
    values = np.sort(np.asarray(replicates, dtype=float).ravel())
    values = values[~np.isnan(values)]
    if values.size == 0:
        return NAN_INTERVAL
    alpha = (1.0 - confidence) / 2.0
    lo_idx = math.floor(alpha * (values.size - 1))
    hi_idx = math.ceil((1.0 - alpha) * (values.size - 1))
    low, high = float(values[lo_idx]), float(values[hi_idx])
    if point is not None and not math.isnan(point):
        low, high = min(low, point), max(high, point)
    return low, high


def abs_interval(low: float, high: float) -> Interval:
    """The interval of ``|x|`` when ``x`` lies in ``[low, high]``."""
    if math.isnan(low) or math.isnan(high):
        return NAN_INTERVAL
    if low <= 0.0 <= high:
        return 0.0, max(-low, high)
    return min(abs(low), abs(high)), max(abs(low), abs(high))
