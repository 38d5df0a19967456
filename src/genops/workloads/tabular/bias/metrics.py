"""Bias metrics for the real training data (pre-training) and for synthetic data.

Pre-training metrics follow the definitions of AWS SageMaker Clarify ("Pre-training Bias
Metrics" in the SageMaker developer guide; reference implementation: the open-source
``smclarify`` package, which is not a dependency here):

* facet *d* is the group under test ("disadvantaged" in Clarify's wording), facet *a* is every
  other row of the attribute ("advantaged"); ``n_a``, ``n_d`` are their row counts;
* the label is collapsed to two outcomes, positive (``label == positive_label``) and not;
  ``q_a``, ``q_d`` are the shares of positive labels in each facet, and ``P_a``, ``P_d`` the
  label distributions ``[1 - q, q]``;
* logarithms are natural (nats), as in ``smclarify``.

==========  ======================================================================
CI          (n_a - n_d) / (n_a + n_d)
DPL         q_a - q_d
KL          Σ_y P_a(y) · log(P_a(y) / P_d(y))        (∞ when P_d(y) = 0 < P_a(y))
JS          ½ · [KL(P_a ‖ P) + KL(P_d ‖ P)],  P = ½ · (P_a + P_d)
LP          (Σ_y |P_a(y) - P_d(y)|²)^½              (p = 2)
TVD         ½ · Σ_y |P_a(y) - P_d(y)|                (half the L1 norm)
KS          max_y |P_a(y) - P_d(y)|
CDDL        (1/n) · Σ_i n_i · DD_i  over the strata i of a group-by column, with
            DD_i = n_d^(0)_i / n^(0)_i - n_d^(1)_i / n^(1)_i  (rejected = 0, accepted = 1,
            counted within stratum i; a fraction whose denominator is 0 counts as 0, as in
            smclarify)
==========  ======================================================================

Rows whose attribute or label is missing are left out. Degenerate inputs never raise: an empty
facet (or an attribute with a single group) gives NaN, and the report adds a note.

Intervals (:mod:`genops.core.intervals`; confidence ``BiasConfig.confidence``; a bootstrap is
percentile, seeded per result, widened to hold the point value) in the gates:

=========================  ===================================================================
CI                         Wilson interval of n_d / n, mapped through 1 - 2·x
DPL, DPL_worst_pair        Newcombe's hybrid score interval of q_a - q_d
TVD, KS / LP               the interval of |DPL| / √2·|DPL| (binary label)
KL, JS                     bootstrap: positives re-drawn in each facet (binomial)
CDDL                       bootstrap: the rows re-drawn (multinomial over stratum × facet × label)
representation_tvd         bootstrap: both samples' group counts re-drawn
relative_underrep.         Katz's log interval of s_syn / s_real, mapped through 1 - x
DPL_amplification          bootstrap: each facet's positives re-drawn in both samples
DI_ratio                   log interval of (r_syn / r_real), four independent rates
group_shape_score          bootstrap: the group's rows re-drawn in both samples (≤ 200)
downstream fairness        bootstrap: the holdout rows re-drawn (paired across both models)
=========================  ===================================================================

"Too small to judge" (:func:`too_small_reason`, the one rule): a group with fewer than
``min_group_rows`` rows in the real data a metric reads, or whose rest has fewer, is reported
with its value and interval and never passes or fails on it (coverage still names it).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy import sparse

from genops.core.intervals import (
    NAN_INTERVAL,
    Interval,
    abs_interval,
    log_ratio,
    newcombe,
    percentile_interval,
    wilson,
)
from genops.core.verdict import BiasVerdict, MetricResult, make_result
from genops.workloads.tabular.bias.config import (
    BiasConfig,
    DataBiasThresholds,
    SyntheticBiasThresholds,
)
from genops.workloads.tabular.evaluation.metrics import column_shapes

Scalar = str | int | float | bool
"""A value of a sensitive attribute or of the label."""
FacetSpec = Scalar | Sequence[Scalar]
"""One attribute value, or several values that together form facet *d*."""

#: Pre-training metric names, in report order.
PRETRAINING_METRICS: tuple[str, ...] = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS")


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FacetCounts:
    """Row and positive-label counts of facet *a* (the rest) and facet *d* (the group)."""

    n_a: int
    n_d: int
    n_a_pos: int
    n_d_pos: int

    @property
    def q_a(self) -> float:
        return self.n_a_pos / self.n_a if self.n_a else math.nan

    @property
    def q_d(self) -> float:
        return self.n_d_pos / self.n_d if self.n_d else math.nan

    @property
    def degenerate(self) -> bool:
        return self.n_a == 0 or self.n_d == 0

    def note(self) -> str:
        """Why the label metrics are NaN, or ``""``."""
        if self.n_d == 0 and self.n_a == 0:
            return "no rows"
        if self.n_d == 0:
            return "facet d is empty (no rows in the group)"
        if self.n_a == 0:
            return "facet a is empty (the attribute has a single group)"
        return ""

    def label_distributions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(P_a, P_d)`` over the outcomes ``[negative, positive]``."""
        return (np.array([1.0 - self.q_a, self.q_a]), np.array([1.0 - self.q_d, self.q_d]))


def _is_multi(facet: FacetSpec) -> bool:
    return isinstance(facet, Sequence) and not isinstance(facet, str | bytes)


def _facet_values(facet: FacetSpec) -> list[Any]:
    return list(facet) if _is_multi(facet) else [facet]  # type: ignore[arg-type]


def _facet_name(facet: FacetSpec) -> str:
    return "+".join(str(v) for v in _facet_values(facet))


def _valid_rows(df: pd.DataFrame, attribute: str, label: str | None) -> pd.DataFrame:
    for col in (attribute, label):
        if col is not None and col not in df.columns:
            raise KeyError(f"column {col!r} not in the data frame (columns: {list(df.columns)})")
    mask = df[attribute].notna()
    if label is not None:
        mask &= df[label].notna()
    return df.loc[mask]


def _positive(series: pd.Series, positive_label: Scalar) -> np.ndarray:
    return np.asarray(series == positive_label, dtype=bool)


def facet_counts(
    df: pd.DataFrame, attribute: str, facet: FacetSpec, label: str, positive_label: Scalar
) -> FacetCounts:
    """Counts of facet *d* (``attribute`` in ``facet``) and facet *a* (the other rows)."""
    sub = _valid_rows(df, attribute, label)
    in_d = np.asarray(sub[attribute].isin(_facet_values(facet)), dtype=bool)
    pos = _positive(sub[label], positive_label)
    return FacetCounts(
        n_a=int((~in_d).sum()),
        n_d=int(in_d.sum()),
        n_a_pos=int((~in_d & pos).sum()),
        n_d_pos=int((in_d & pos).sum()),
    )


# --------------------------------------------------------------------------------------------
# Pre-training metrics from counts
# --------------------------------------------------------------------------------------------


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Σ p·log(p/q) with 0·log(0/q) = 0 and p·log(p/0) = ∞."""
    total = 0.0
    for pi, qi in zip(p, q, strict=True):
        if pi <= 0:
            continue
        if qi <= 0:
            return math.inf
        total += float(pi * math.log(pi / qi))
    return total


def ci_from_counts(c: FacetCounts) -> float:
    if c.degenerate:
        return math.nan
    return (c.n_a - c.n_d) / (c.n_a + c.n_d)


def dpl_from_counts(c: FacetCounts) -> float:
    return math.nan if c.degenerate else c.q_a - c.q_d


def kl_from_counts(c: FacetCounts) -> float:
    if c.degenerate:
        return math.nan
    p_a, p_d = c.label_distributions()
    return _kl(p_a, p_d)


def js_from_counts(c: FacetCounts) -> float:
    if c.degenerate:
        return math.nan
    p_a, p_d = c.label_distributions()
    m = 0.5 * (p_a + p_d)
    return 0.5 * (_kl(p_a, m) + _kl(p_d, m))


def lp_from_counts(c: FacetCounts, p: float = 2.0) -> float:
    if c.degenerate:
        return math.nan
    p_a, p_d = c.label_distributions()
    return float(np.linalg.norm(p_a - p_d, ord=p))


def tvd_from_counts(c: FacetCounts) -> float:
    if c.degenerate:
        return math.nan
    p_a, p_d = c.label_distributions()
    return float(0.5 * np.abs(p_a - p_d).sum())


def ks_from_counts(c: FacetCounts) -> float:
    if c.degenerate:
        return math.nan
    p_a, p_d = c.label_distributions()
    return float(np.abs(p_a - p_d).max())


_FROM_COUNTS = {
    "CI": ci_from_counts,
    "DPL": dpl_from_counts,
    "KL": kl_from_counts,
    "JS": js_from_counts,
    "LP": lp_from_counts,
    "TVD": tvd_from_counts,
    "KS": ks_from_counts,
}


# --------------------------------------------------------------------------------------------
# Statistics: the too-small rule, intervals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """How the gates judge: the too-small rule and the intervals."""

    min_rows: int = 0
    confidence: float = 0.95
    n_bootstrap: int = 1000
    seed: int = 0

    @classmethod
    def from_config(cls, config: BiasConfig) -> Stats:
        return cls(
            min_rows=config.data.min_group_rows,
            confidence=config.confidence,
            n_bootstrap=config.bootstrap_resamples,
            seed=config.seed,
        )

    def rng(self, *key: Any) -> np.random.Generator:
        """A generator seeded by ``seed`` and the result's identity, so that each interval
        is the same whatever else the report computes and in which order."""
        digest = zlib.crc32("|".join(map(str, key)).encode("utf-8"))
        return np.random.default_rng([self.seed, digest])

    def closed(self, name: str, of: str = "") -> str:
        return f"{name} {self.confidence:.0%}" + (f", of {of}" if of else "")

    def bootstrap(self, n: int | None = None) -> str:
        return f"bootstrap {self.confidence:.0%}, {n or self.n_bootstrap} resamples"


def too_small_reason(n_group: float, min_rows: int, n_rest: float | None = None) -> str:
    """The one "too small to judge" rule of both gates: ``""`` when the group (and, for a
    group-vs-rest metric, the rest) has at least ``min_rows`` rows, else the reason."""
    if n_group < min_rows:
        return f"{int(n_group)} rows < {min_rows}"
    if n_rest is not None and n_rest < min_rows:
        return f"the rest has {int(n_rest)} rows < {min_rows}"
    return ""


def _binary_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL([1-p, p] ‖ [1-q, q]) elementwise, with 0·log(0/q) = 0 and p·log(p/0) = ∞."""
    out = np.zeros(np.broadcast(p, q).shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for a, b in ((p, q), (1.0 - p, 1.0 - q)):
            term = np.where(a > 0, a * np.log(a / b), 0.0)
            term = np.where((a > 0) & (b <= 0), np.inf, term)
            out = out + term
    return out


def _binary_js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = 0.5 * (p + q)
    return 0.5 * (_binary_kl(p, m) + _binary_kl(q, m))


def _facet_rates_bootstrap(c: FacetCounts, rng: np.random.Generator, b: int) -> tuple[Any, Any]:
    """Resampled ``(q_a, q_d)``: each facet's positives re-drawn (binomial, sizes fixed)."""
    q_a = rng.binomial(c.n_a, c.q_a, b) / c.n_a
    q_d = rng.binomial(c.n_d, c.q_d, b) / c.n_d
    return q_a, q_d


def pretraining_interval(
    metric: str, c: FacetCounts, stats: Stats, key: Sequence[Any] = ()
) -> tuple[Interval, str]:
    """Interval of one pre-training metric of one facet, and how it was computed."""
    if c.degenerate:
        return NAN_INTERVAL, ""
    conf = stats.confidence
    if metric == "CI":
        lo, hi = wilson(c.n_d, c.n_a + c.n_d, conf)
        return (1.0 - 2.0 * hi, 1.0 - 2.0 * lo), stats.closed("Wilson", "n_d / n")
    dpl_ci = newcombe(c.n_a_pos, c.n_a, c.n_d_pos, c.n_d, conf)
    if metric == "DPL":
        return dpl_ci, stats.closed("Newcombe")
    if metric in ("TVD", "KS"):
        return abs_interval(*dpl_ci), stats.closed("Newcombe", "|DPL|")
    if metric == "LP":
        lo, hi = abs_interval(*dpl_ci)
        return (math.sqrt(2.0) * lo, math.sqrt(2.0) * hi), stats.closed("Newcombe", "√2·|DPL|")
    if metric in ("KL", "JS"):
        q_a, q_d = _facet_rates_bootstrap(c, stats.rng(metric, *key), stats.n_bootstrap)
        fn = _binary_kl if metric == "KL" else _binary_js
        point = float(fn(np.array(c.q_a), np.array(c.q_d)))
        return percentile_interval(fn(q_a, q_d), conf, point), stats.bootstrap()
    raise ValueError(f"unknown pre-training metric {metric!r}")


# --------------------------------------------------------------------------------------------
# Pre-training metrics, public API (one facet against the rest)
# --------------------------------------------------------------------------------------------


def ci(df: pd.DataFrame, attribute: str, facet: FacetSpec) -> float:
    """Class imbalance, ``(n_a - n_d) / (n_a + n_d)``; NaN when a facet is empty."""
    sub = _valid_rows(df, attribute, None)
    n_d = int(sub[attribute].isin(_facet_values(facet)).sum())
    return ci_from_counts(FacetCounts(n_a=len(sub) - n_d, n_d=n_d, n_a_pos=0, n_d_pos=0))


def dpl(
    df: pd.DataFrame, attribute: str, facet: FacetSpec, label: str, positive_label: Scalar
) -> float:
    """Difference in positive proportions in labels, ``q_a - q_d``."""
    return dpl_from_counts(facet_counts(df, attribute, facet, label, positive_label))


def kl(
    df: pd.DataFrame, attribute: str, facet: FacetSpec, label: str, positive_label: Scalar
) -> float:
    """Kullback-Leibler divergence ``KL(P_a ‖ P_d)`` of the label distributions (nats)."""
    return kl_from_counts(facet_counts(df, attribute, facet, label, positive_label))


def js(
    df: pd.DataFrame, attribute: str, facet: FacetSpec, label: str, positive_label: Scalar
) -> float:
    """Jensen-Shannon divergence of the label distributions (nats)."""
    return js_from_counts(facet_counts(df, attribute, facet, label, positive_label))


def lp(
    df: pd.DataFrame,
    attribute: str,
    facet: FacetSpec,
    label: str,
    positive_label: Scalar,
    p: float = 2.0,
) -> float:
    """Lp norm (default p = 2) of ``P_a - P_d``."""
    return lp_from_counts(facet_counts(df, attribute, facet, label, positive_label), p)


def tvd(
    df: pd.DataFrame, attribute: str, facet: FacetSpec, label: str, positive_label: Scalar
) -> float:
    """Total variation distance, ``½ · L1(P_a, P_d)``."""
    return tvd_from_counts(facet_counts(df, attribute, facet, label, positive_label))


def ks(
    df: pd.DataFrame, attribute: str, facet: FacetSpec, label: str, positive_label: Scalar
) -> float:
    """Kolmogorov-Smirnov distance of the label distributions, ``max_y |P_a(y) - P_d(y)|``."""
    return ks_from_counts(facet_counts(df, attribute, facet, label, positive_label))


def _cddl_cells(
    df: pd.DataFrame,
    attribute: str,
    facet: FacetSpec,
    label: str,
    positive_label: Scalar,
    group_by: str,
) -> tuple[np.ndarray, str]:
    """Per stratum of ``group_by`` the counts ``[accepted d, accepted a, rejected d,
    rejected a]`` (shape ``(strata, 4)``), or an empty array and the reason CDDL is NaN."""
    sub = _valid_rows(df, attribute, label)
    if group_by not in sub.columns:
        raise KeyError(f"CDDL group-by column {group_by!r} not in the data frame")
    sub = sub.loc[sub[group_by].notna()]
    empty = np.zeros((0, 4))
    if len(sub) == 0:
        return empty, "no rows"
    in_d = np.asarray(sub[attribute].isin(_facet_values(facet)), dtype=bool)
    if not in_d.any():
        return empty, "facet d is empty (no rows in the group)"
    pos = _positive(sub[label], positive_label)
    if not pos.any():
        return empty, "label never positive: CDDL undefined"
    if pos.all():
        return empty, "label always positive: CDDL undefined"
    frame = pd.DataFrame(
        {
            "stratum": np.asarray(sub[group_by]),
            "acc_d": (pos & in_d).astype(int),
            "acc_a": (pos & ~in_d).astype(int),
            "rej_d": (~pos & in_d).astype(int),
            "rej_a": (~pos & ~in_d).astype(int),
        }
    )
    per = frame.groupby("stratum", sort=True).sum()
    return per[["acc_d", "acc_a", "rej_d", "rej_a"]].to_numpy(dtype=float), ""


def _cddl_from_cells(cells: np.ndarray) -> np.ndarray:
    """CDDL from stratum counts ``(..., strata, 4)``; NaN where facet d is empty or the label
    never (or always) positive. A share whose denominator is 0 counts as 0 (smclarify)."""
    acc_d, acc_a, rej_d, rej_a = (cells[..., i] for i in range(4))
    acc, rej = acc_d + acc_a, rej_d + rej_a
    n_i = acc + rej
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(rej > 0, rej_d / np.where(rej > 0, rej, 1), 0.0) - np.where(
            acc > 0, acc_d / np.where(acc > 0, acc, 1), 0.0
        )
        n = n_i.sum(axis=-1)
        value = (n_i * dd).sum(axis=-1) / n
    undefined = ((acc_d + rej_d).sum(axis=-1) == 0) | (acc.sum(axis=-1) == 0) | (rej.sum(-1) == 0)
    return np.where(undefined, np.nan, value)


def _cddl_with_note(
    df: pd.DataFrame,
    attribute: str,
    facet: FacetSpec,
    label: str,
    positive_label: Scalar,
    group_by: str,
) -> tuple[float, str]:
    cells, note = _cddl_cells(df, attribute, facet, label, positive_label, group_by)
    if note:
        return math.nan, note
    return float(_cddl_from_cells(cells)), ""


def cddl_interval(cells: np.ndarray, stats: Stats, key: Sequence[Any] = ()) -> Interval:
    """Bootstrap interval of CDDL: the rows re-drawn, i.e. the cell counts multinomial."""
    if cells.size == 0:
        return NAN_INTERVAL
    flat = cells.ravel()
    n = int(flat.sum())
    draws = stats.rng("CDDL", *key).multinomial(n, flat / n, size=stats.n_bootstrap)
    replicates = _cddl_from_cells(draws.reshape(-1, *cells.shape))
    return percentile_interval(replicates, stats.confidence, float(_cddl_from_cells(cells)))


def cddl(
    df: pd.DataFrame,
    attribute: str,
    facet: FacetSpec,
    label: str,
    positive_label: Scalar,
    group_by: str,
) -> float:
    """Conditional demographic disparity in labels of facet *d*, stratified by ``group_by``.

    Positive values mean facet *d* holds a larger share of the rejected than of the accepted
    rows, on average over the strata weighted by their size. NaN when facet *d* is empty or the
    label never (or always) takes the positive value.
    """
    return _cddl_with_note(df, attribute, facet, label, positive_label, group_by)[0]


# --------------------------------------------------------------------------------------------
# Data gate
# --------------------------------------------------------------------------------------------


def _resolve_config(config: BiasConfig | None) -> BiasConfig:
    return BiasConfig() if config is None else config


def _resolve_positive(positive_label: Scalar | None, config: BiasConfig) -> Scalar:
    if positive_label is not None:
        return positive_label
    if config.positive_label is not None:
        return config.positive_label
    raise ValueError("positive_label is required (argument or BiasConfig.positive_label)")


def _sorted_groups(series: pd.Series) -> list[Any]:
    return sorted(pd.unique(series.dropna()).tolist(), key=str)


def _group_table(sub: pd.DataFrame, attribute: str, pos: np.ndarray) -> pd.DataFrame:
    """Rows ``n`` and positives ``pos`` per group (index: the group value)."""
    frame = pd.DataFrame({"g": np.asarray(sub[attribute], dtype=object), "pos": pos.astype(int)})
    table = frame.groupby("g", sort=False)["pos"].agg(["size", "sum"])
    table.columns = ["n", "pos"]
    return table


_DATA_THRESHOLDS: dict[str, tuple[str, str]] = {
    # metric: (threshold field, comparison)
    "CI": ("max_abs_ci", "|x|<="),
    "DPL": ("max_abs_dpl", "|x|<="),
    "KL": ("max_kl", "<="),
    "JS": ("max_js", "<="),
    "LP": ("max_lp", "<="),
    "TVD": ("max_tvd", "<="),
    "KS": ("max_ks", "<="),
}


def data_bias_report(
    df: pd.DataFrame,
    attributes: Sequence[str],
    label: str,
    positive_label: Scalar | None = None,
    config: BiasConfig | None = None,
) -> list[MetricResult]:
    """Every pre-training metric for every group of every sensitive attribute.

    For each attribute and each of its groups (facet *d*) against the rest (facet *a*): coverage
    (rows in the group >= ``min_group_rows``), CI, DPL, KL, JS, LP, TVD, KS, and CDDL when
    ``config.cddl_group_by`` is set, each with its interval (module docstring); a group (or
    rest) below ``min_group_rows`` is too small to judge in all of them but coverage. For
    attributes with three or more groups also ``DPL_worst_pair``: the pair of groups with the
    largest gap in positive rate (only groups meeting ``min_group_rows`` take part, so that a
    handful of rows cannot make the worst pair), reported as ``[higher-rate group, lower-rate
    group]`` with value ``q_a - q_d >= 0`` and Newcombe's interval of that pair's gap.

    ``positive_label`` defaults to ``config.positive_label``.
    """
    cfg = _resolve_config(config)
    thr: DataBiasThresholds = cfg.data
    stats = Stats.from_config(cfg)
    pos_label = _resolve_positive(positive_label, cfg)
    group_by = cfg.cddl_group_by
    results: list[MetricResult] = []

    for attribute in attributes:
        sub = _valid_rows(df, attribute, label)
        pos = _positive(sub[label], pos_label)
        n_total = len(sub)
        n_pos_total = int(pos.sum())
        label_note = "label never positive" if n_total and n_pos_total == 0 else ""
        groups = _sorted_groups(sub[attribute])
        if not groups:
            results.append(
                make_result(
                    "data",
                    "coverage",
                    attribute,
                    [],
                    0.0,
                    float(thr.min_group_rows),
                    ">=",
                    note="no rows with a value for this attribute and the label",
                    group_only=True,
                )
            )
            # make_result lets a 0 pass only if min_group_rows is 0; an absent attribute fails.
            results[-1].passed = False
            continue
        table = _group_table(sub, attribute, pos)

        for g in groups:
            n_d = int(table.loc[g, "n"])
            n_d_pos = int(table.loc[g, "pos"])
            counts = FacetCounts(
                n_a=n_total - n_d, n_d=n_d, n_a_pos=n_pos_total - n_d_pos, n_d_pos=n_d_pos
            )
            name = str(g)
            results.append(
                make_result(
                    "data",
                    "coverage",
                    attribute,
                    [name],
                    float(n_d),
                    float(thr.min_group_rows),
                    ">=",
                    note="" if n_d >= thr.min_group_rows else "too few rows for the group",
                    group_only=True,
                )
            )
            note = counts.note() or label_note
            small = "" if counts.degenerate else too_small_reason(n_d, stats.min_rows, counts.n_a)
            details = {
                "n_a": float(counts.n_a),
                "n_d": float(counts.n_d),
                "q_a": counts.q_a,
                "q_d": counts.q_d,
            }
            for metric in PRETRAINING_METRICS:
                value = _FROM_COUNTS[metric](counts)
                field_name, comparison = _DATA_THRESHOLDS[metric]
                m_note = note
                if metric == "KL" and math.isinf(value):
                    m_note = "a label value never occurs in facet d: KL is infinite"
                interval, method = pretraining_interval(metric, counts, stats, (attribute, name))
                results.append(
                    make_result(
                        "data",
                        metric,
                        attribute,
                        [name],
                        value,
                        getattr(thr, field_name),
                        comparison,
                        note=m_note,
                        details=details if metric == "DPL" else None,
                        interval=None if method == "" else interval,
                        interval_method=method,
                        too_small=small,
                    )
                )
            if group_by is not None and group_by != attribute:
                cells, c_note = _cddl_cells(sub, attribute, g, label, pos_label, group_by)
                value = math.nan if c_note else float(_cddl_from_cells(cells))
                results.append(
                    make_result(
                        "data",
                        "CDDL",
                        attribute,
                        [name],
                        value,
                        thr.max_abs_cddl,
                        "|x|<=",
                        note=c_note or f"stratified by {group_by}",
                        interval=None if c_note else cddl_interval(cells, stats, (attribute, name)),
                        interval_method="" if c_note else stats.bootstrap(),
                        too_small=small,
                    )
                )

        if len(groups) >= 3:
            results.append(_worst_pair(table, attribute, thr, stats))
    return results


def _worst_pair(
    table: pd.DataFrame, attribute: str, thr: DataBiasThresholds, stats: Stats | None = None
) -> MetricResult:
    eligible = table.loc[table["n"] >= max(1, thr.min_group_rows)]
    if len(eligible) < 2:
        return make_result(
            "data",
            "DPL_worst_pair",
            attribute,
            [],
            math.nan,
            thr.max_abs_dpl,
            "|x|<=",
            note=f"fewer than two groups with >= {thr.min_group_rows} rows",
        )
    stats = stats or Stats()
    rates = (eligible["pos"] / eligible["n"]).astype(float)
    hi = max(rates.index, key=lambda g: (rates[g], str(g)))
    lo = min(rates.index, key=lambda g: (rates[g], str(g)))
    interval = newcombe(
        int(eligible.loc[hi, "pos"]),
        int(eligible.loc[hi, "n"]),
        int(eligible.loc[lo, "pos"]),
        int(eligible.loc[lo, "n"]),
        stats.confidence,
    )
    return make_result(
        "data",
        "DPL_worst_pair",
        attribute,
        [str(hi), str(lo)],
        float(rates[hi] - rates[lo]),
        thr.max_abs_dpl,
        "|x|<=",
        note=f"largest gap in positive rate among groups with >= {thr.min_group_rows} rows",
        details={"q_a": float(rates[hi]), "q_d": float(rates[lo])},
        interval=interval,
        interval_method=stats.closed("Newcombe"),
    )


def data_bias_verdict(
    df: pd.DataFrame,
    attributes: Sequence[str],
    label: str,
    positive_label: Scalar | None = None,
    config: BiasConfig | None = None,
) -> BiasVerdict:
    """:func:`data_bias_report` wrapped in a :class:`BiasVerdict` with ``config.policy``."""
    cfg = _resolve_config(config)
    results = data_bias_report(df, attributes, label, positive_label, cfg)
    return BiasVerdict.from_results("data", results, cfg.policy)


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def group_shares(df: pd.DataFrame, attribute: str) -> pd.Series:
    """Share of rows per group (missing values left out), indexed by the group value."""
    values = df[attribute].dropna()
    if values.empty:
        return pd.Series(dtype=float)
    counts = pd.Series(np.asarray(values, dtype=object)).value_counts()
    return (counts / counts.sum()).astype(float)


def _group_counts(df: pd.DataFrame, attribute: str) -> pd.Series:
    values = df[attribute].dropna()
    return pd.Series(np.asarray(values, dtype=object)).value_counts()


def representation_results(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attribute: str,
    thresholds: SyntheticBiasThresholds | None = None,
    *,
    stats: Stats | None = None,
) -> list[MetricResult]:
    """Representation drift of one attribute.

    ``representation_tvd`` = ½·Σ_g |s_real(g) - s_syn(g)| over the union of groups (bootstrap
    interval: both samples' group counts re-drawn), and per group of the real data
    ``relative_underrepresentation`` = 1 - s_syn(g)/s_real(g) (negative when the group is
    over-represented; Katz's log interval of the ratio). A group present in the real data but
    absent from the synthetic data fails whatever the threshold, unless it is too small to
    judge (fewer than ``stats.min_rows`` real rows).
    """
    thr = thresholds or SyntheticBiasThresholds()
    st = stats or Stats()
    c_real = _group_counts(real, attribute)
    c_syn = _group_counts(synthetic, attribute)
    s_real = c_real / c_real.sum() if len(c_real) else c_real.astype(float)
    s_syn = c_syn / c_syn.sum() if len(c_syn) else c_syn.astype(float)
    keys = sorted(set(s_real.index) | set(s_syn.index), key=str)
    a = np.array([float(s_real.get(k, 0.0)) for k in keys])
    b = np.array([float(s_syn.get(k, 0.0)) for k in keys])
    unseen = [str(k) for k in keys if k not in s_real.index]
    note = f"groups not in the real data: {unseen}" if unseen else ""
    if s_syn.empty:
        note = "synthetic data has no rows with a value for this attribute"
    interval: Interval | None = None
    if keys and not s_syn.empty and not s_real.empty:
        rng = st.rng("representation_tvd", attribute)
        n_r, n_s = int(c_real.sum()), int(c_syn.sum())
        draw_r = rng.multinomial(n_r, a, size=st.n_bootstrap) / n_r
        draw_s = rng.multinomial(n_s, b, size=st.n_bootstrap) / n_s
        interval = percentile_interval(
            0.5 * np.abs(draw_r - draw_s).sum(axis=1),
            st.confidence,
            float(0.5 * np.abs(a - b).sum()),
        )
    results = [
        make_result(
            "synthetic",
            "representation_tvd",
            attribute,
            [],
            float(0.5 * np.abs(a - b).sum()) if keys else math.nan,
            thr.max_representation_tvd,
            "<=",
            note=note,
            interval=interval,
            interval_method=st.bootstrap(),
        )
    ]
    n_real, n_syn = int(c_real.sum()), int(c_syn.sum())
    for k in sorted(s_real.index, key=str):
        sr = float(s_real[k])
        ss = float(s_syn.get(k, 0.0))
        x_r, x_s = int(c_real[k]), int(c_syn.get(k, 0))
        small = too_small_reason(x_r, st.min_rows)
        ratio_ci = log_ratio([(x_s, n_syn)], [(x_r, n_real)], st.confidence) if n_syn else None
        res = make_result(
            "synthetic",
            "relative_underrepresentation",
            attribute,
            [str(k)],
            1.0 - ss / sr,
            thr.max_relative_underrepresentation,
            "<=",
            details={"share_real": sr, "share_synthetic": ss, "rows_real": float(x_r)},
            group_only=True,
            interval=None if ratio_ci is None else (1.0 - ratio_ci[1], 1.0 - ratio_ci[0]),
            interval_method=st.closed("Katz log ratio"),
            too_small=small,
        )
        if ss == 0.0:
            absent = "group present in the real data but absent from the synthetic data"
            if small:
                res.note = f"{res.note}; {absent}"
            else:
                res.passed = False
                res.note = absent
        results.append(res)
    return results


def _fold_di(q_d: float, q_a: float) -> float:
    """min(q_d, q_a) / max(q_d, q_a); 1 when both rates are 0."""
    if math.isnan(q_d) or math.isnan(q_a):
        return math.nan
    hi = max(q_d, q_a)
    return 1.0 if hi == 0 else min(q_d, q_a) / hi


def _low_high_rates(c: FacetCounts) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((k, n) of the facet with the lower positive rate, (k, n) of the higher)``."""
    d, a = (c.n_d_pos, c.n_d), (c.n_a_pos, c.n_a)
    return (d, a) if c.q_d <= c.q_a else (a, d)


def amplification_results(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attribute: str,
    label: str,
    positive_label: Scalar,
    thresholds: SyntheticBiasThresholds | None = None,
    *,
    stats: Stats | None = None,
) -> list[MetricResult]:
    """Label-bias amplification per group vs rest.

    ``DPL_amplification`` = |DPL_syn| - |DPL_real| (bootstrap interval: each facet's positives
    re-drawn in both samples) and ``DI_ratio`` = r_syn / r_real with r = min(q_d, q_a)/max(q_d,
    q_a) (the disparate impact DI = q_d/q_a folded to <= 1; log-scale interval of the ratio of
    ratios of four independent rates). The raw DPL and DI of both data sets are in ``details``.
    A group (or rest) with fewer than ``stats.min_rows`` real rows is too small to judge.
    """
    thr = thresholds or SyntheticBiasThresholds()
    st = stats or Stats()
    results: list[MetricResult] = []
    for g in _sorted_groups(_valid_rows(real, attribute, label)[attribute]):
        c_real = facet_counts(real, attribute, g, label, positive_label)
        c_syn = facet_counts(synthetic, attribute, g, label, positive_label)
        dpl_r, dpl_s = dpl_from_counts(c_real), dpl_from_counts(c_syn)
        di_r = c_real.q_d / c_real.q_a if c_real.q_a else math.nan
        di_s = c_syn.q_d / c_syn.q_a if c_syn.q_a else math.nan
        r_real, r_syn = _fold_di(c_real.q_d, c_real.q_a), _fold_di(c_syn.q_d, c_syn.q_a)
        note = ""
        if c_syn.degenerate:
            note = "synthetic: " + c_syn.note()
        elif c_real.degenerate:
            note = "real: " + c_real.note()
        small = "" if c_real.degenerate else too_small_reason(c_real.n_d, st.min_rows, c_real.n_a)
        details = {"DPL_real": dpl_r, "DPL_synthetic": dpl_s, "DI_real": di_r, "DI_synthetic": di_s}
        amp_ci: Interval | None = None
        if not (c_real.degenerate or c_syn.degenerate):
            rng = st.rng("DPL_amplification", attribute, g)
            ra, rd = _facet_rates_bootstrap(c_real, rng, st.n_bootstrap)
            sa, sd = _facet_rates_bootstrap(c_syn, rng, st.n_bootstrap)
            amp_ci = percentile_interval(
                np.abs(sa - sd) - np.abs(ra - rd), st.confidence, abs(dpl_s) - abs(dpl_r)
            )
        results.append(
            make_result(
                "synthetic",
                "DPL_amplification",
                attribute,
                [str(g)],
                abs(dpl_s) - abs(dpl_r),
                thr.max_dpl_amplification,
                "<=",
                note=note,
                details=details,
                interval=amp_ci,
                interval_method=st.bootstrap(),
                too_small=small,
            )
        )
        ratio, r_note = math.nan, note
        ratio_ci: Interval | None = None
        if r_real == 0:
            r_note = note or "real disparate impact is 0: ratio undefined"
        elif not (math.isnan(r_real) or math.isnan(r_syn)):
            ratio = r_syn / r_real
            syn_low, syn_high = _low_high_rates(c_syn)
            real_low, real_high = _low_high_rates(c_real)
            ratio_ci = log_ratio([syn_low, real_high], [syn_high, real_low], st.confidence)
        results.append(
            make_result(
                "synthetic",
                "DI_ratio",
                attribute,
                [str(g)],
                ratio,
                thr.min_disparate_impact_ratio,
                ">=",
                note=r_note,
                details={"r_real": r_real, "r_synthetic": r_syn, **details},
                interval=ratio_ci,
                interval_method=st.closed("log ratio of ratios"),
                too_small=small,
            )
        )
    return results


def split_columns(df: pd.DataFrame, exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """``(continuous, categorical)`` columns: numeric non-boolean columns are continuous."""
    continuous: list[str] = []
    categorical: list[str] = []
    for col in df.columns:
        if col in exclude:
            continue
        dtype = df[col].dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            continuous.append(str(col))
        else:
            categorical.append(str(col))
    return continuous, categorical


def column_shape_scores(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    continuous_columns: Sequence[str],
    categorical_columns: Sequence[str],
) -> dict[str, float]:
    """Per column: 1 - KS statistic for continuous columns, 1 - TVD for categorical ones
    (:func:`~genops.workloads.tabular.evaluation.metrics.column_shapes`); missing values left
    out. A column with no values on one side scores NaN."""
    return column_shapes(
        real, synthetic, continuous_columns, categorical_columns, skip_missing=True
    )


def group_shape_score(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attribute: str,
    group: Scalar,
    continuous_columns: Sequence[str],
    categorical_columns: Sequence[str],
) -> float:
    """Mean column-shape score of the rows of one group (real vs synthetic); NaN when the
    group has no rows on either side. ``attribute`` itself is left out of the columns."""
    r = real.loc[real[attribute] == group]
    s = synthetic.loc[synthetic[attribute] == group]
    if r.empty or s.empty:
        return math.nan
    cont = [c for c in continuous_columns if c != attribute]
    cat = [c for c in categorical_columns if c != attribute]
    values = [v for v in column_shape_scores(r, s, cont, cat).values() if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


#: Resamples of the per-group fidelity bootstrap at most (each recomputes every column).
SHAPE_BOOTSTRAP_MAX = 200
_SHAPE_CHUNK = 50
_SHAPE_MAX_CELLS = 4_000_000  # 32 MB of float64 per array


def _code_columns(codes: np.ndarray, k: int) -> sparse.csr_matrix:
    """``(k, rows)`` sparse indicator of each row's code (codes < 0 left out): times a
    ``(rows, B)`` weight matrix it sums each code's resample weight."""
    keep = codes >= 0
    rows = np.flatnonzero(keep)
    return sparse.csr_matrix(
        (np.ones(rows.size), (codes[keep], rows)), shape=(k, len(codes)), dtype=float
    )


def _weighted_counts(weights: np.ndarray, indicator: sparse.csr_matrix) -> np.ndarray:
    """``(B, k)`` sums of each row's resample weight per code."""
    return np.asarray((indicator @ weights.T).T, dtype=float)


def _column_codes(
    real: pd.Series, synthetic: pd.Series, numeric: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """Both columns coded on the union of their values (sorted for a numeric column); -1
    for a missing value."""
    if numeric:
        r = pd.to_numeric(real, errors="coerce").to_numpy(float)
        s = pd.to_numeric(synthetic, errors="coerce").to_numpy(float)
        grid = np.unique(np.concatenate([r[~np.isnan(r)], s[~np.isnan(s)]]))
        code_r = np.where(np.isnan(r), -1, np.searchsorted(grid, np.nan_to_num(r)))
        code_s = np.where(np.isnan(s), -1, np.searchsorted(grid, np.nan_to_num(s)))
        return code_r.astype(int), code_s.astype(int), len(grid)
    r_str = real.astype(str).where(real.notna(), None)
    s_str = synthetic.astype(str).where(synthetic.notna(), None)
    both = pd.concat([r_str, s_str], ignore_index=True)
    codes, uniques = pd.factorize(both)
    return codes[: len(real)].astype(int), codes[len(real) :].astype(int), len(uniques)


def _shape_replicates(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    continuous: Sequence[str],
    categorical: Sequence[str],
    rng: np.random.Generator,
    n_boot: int,
) -> np.ndarray:
    """Bootstrap replicates of the mean column-shape score: the rows of both samples re-drawn
    (the same draw for every column, so that columns stay joint)."""
    columns = [(c, True) for c in continuous] + [(c, False) for c in categorical]
    coded = [(numeric, *_column_codes(real[c], synthetic[c], numeric)) for c, numeric in columns]
    indicators = [
        (numeric, _code_columns(code_r, k), _code_columns(code_s, k))
        for numeric, code_r, code_s, k in coded
    ]
    n_r, n_s = len(real), len(synthetic)
    # Replicates are drawn a chunk at a time: (chunk, rows) weights and (chunk, values)
    # counts, the chunk kept small enough that no array exceeds _SHAPE_MAX_CELLS cells.
    width = max([n_r, n_s, *(k for *_, k in coded)])
    chunk = max(1, min(_SHAPE_CHUNK, _SHAPE_MAX_CELLS // max(width, 1)))
    out: list[np.ndarray] = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w_r = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=b).astype(float)
        w_s = rng.multinomial(n_s, np.full(n_s, 1.0 / n_s), size=b).astype(float)
        scores = np.full((b, len(coded)), np.nan)
        for j, (numeric, ind_r, ind_s) in enumerate(indicators):
            count_r = _weighted_counts(w_r, ind_r)
            count_s = _weighted_counts(w_s, ind_s)
            tot_r, tot_s = count_r.sum(axis=1, keepdims=True), count_s.sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                p, q = count_r / tot_r, count_s / tot_s
                if numeric:
                    dist = np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1)).max(axis=1)
                else:
                    dist = 0.5 * np.abs(p - q).sum(axis=1)
            valid = (tot_r[:, 0] > 0) & (tot_s[:, 0] > 0)
            scores[:, j] = np.where(valid, 1.0 - dist, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a replicate with no column left
            out.append(np.nanmean(scores, axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def group_fidelity_results(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attribute: str,
    continuous_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    thresholds: SyntheticBiasThresholds | None = None,
    min_rows: int | None = None,
    *,
    stats: Stats | None = None,
) -> list[MetricResult]:
    """``group_shape_score`` per group of the real data, with a bootstrap interval (the
    group's real and synthetic rows re-drawn, at most :data:`SHAPE_BOOTSTRAP_MAX` resamples).
    When neither column list is given they are inferred from ``real`` with
    :func:`split_columns`. A group with fewer than ``min_rows`` (default ``stats.min_rows``)
    real rows is too small to judge: a shape score over a handful of rows is noise (the
    coverage check already flags such groups)."""
    thr = thresholds or SyntheticBiasThresholds()
    st = stats or Stats()
    floor = st.min_rows if min_rows is None else min_rows
    if continuous_columns is None and categorical_columns is None:
        continuous_columns, categorical_columns = split_columns(real, exclude=[attribute])
    cont = [c for c in (continuous_columns or []) if c != attribute]
    cat = [c for c in (categorical_columns or []) if c != attribute]
    n_boot = min(st.n_bootstrap, SHAPE_BOOTSTRAP_MAX)
    results = []
    sizes = real[attribute].value_counts()
    for g in _sorted_groups(real[attribute]):
        score = group_shape_score(real, synthetic, attribute, g, cont, cat)
        note = "group absent from the synthetic data" if math.isnan(score) else ""
        n_g = int(sizes.get(g, 0))
        interval: Interval | None = None
        if not math.isnan(score):
            r = real.loc[real[attribute] == g]
            s = synthetic.loc[synthetic[attribute] == g]
            reps = _shape_replicates(r, s, cont, cat, st.rng("group_shape", attribute, g), n_boot)
            interval = percentile_interval(reps, st.confidence, score)
        results.append(
            make_result(
                "synthetic",
                "group_shape_score",
                attribute,
                [str(g)],
                score,
                thr.min_group_shape_score,
                ">=",
                note=note,
                group_only=True,
                details={"rows_real": float(n_g)},
                interval=interval,
                interval_method=st.bootstrap(n_boot),
                too_small=too_small_reason(n_g, floor),
            )
        )
    return results


def _binary(y: Any, positive_label: Scalar | None) -> np.ndarray:
    arr = np.asarray(y)
    if positive_label is None:
        return arr.astype(int)
    return (arr == positive_label).astype(int)


def _sensitive_columns(sensitive_features: pd.DataFrame | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(sensitive_features, pd.DataFrame):
        return {str(c): sensitive_features[c].to_numpy() for c in sensitive_features.columns}
    return {str(k): np.asarray(v) for k, v in sensitive_features.items()}


def downstream_fairness_by_group(
    y_true: Any,
    y_pred_synthetic: Any,
    y_pred_real: Any,
    sensitive_features: pd.DataFrame | Mapping[str, Any],
    positive_label: Scalar | None = None,
) -> pd.DataFrame:
    """Per attribute, group and model ("synthetic_trained", "real_trained"): selection rate,
    true and false positive rate and count, from fairlearn's ``MetricFrame``."""
    yt = _binary(y_true, positive_label)
    preds = {
        "synthetic_trained": _binary(y_pred_synthetic, positive_label),
        "real_trained": _binary(y_pred_real, positive_label),
    }
    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "count": lambda y_t, y_p: float(len(y_t)),
    }
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for attribute, sf in _sensitive_columns(sensitive_features).items():
            for model, yp in preds.items():
                mf = MetricFrame(metrics=metrics, y_true=yt, y_pred=yp, sensitive_features=sf)
                by = mf.by_group.reset_index()
                by.columns = ["group", *by.columns[1:]]
                by.insert(0, "model", model)
                by.insert(0, "attribute", attribute)
                by["group"] = by["group"].astype(str)
                frames.append(by)
    return pd.concat(frames, ignore_index=True)


def _fairness_from_cells(cells: np.ndarray) -> dict[str, np.ndarray]:
    """From counts ``(..., groups, y_true, pred_synthetic, pred_real)`` (each axis 2 wide):
    per model (``syn``, ``real``) the demographic-parity difference and ratio and the
    equalized-odds difference across the groups, as fairlearn defines them; a group with no
    row (or no positive / negative label, for the TPR / FPR) is left out of that max - min."""
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN is the answer
        for name, axis in (("syn", -1), ("real", -2)):
            by_pred = cells.sum(axis=axis)  # (..., groups, y_true, pred)
            n = by_pred.sum(axis=(-1, -2))
            selected = by_pred[..., 1].sum(axis=-1)
            sel = np.where(n > 0, selected / n, np.nan)
            pos, neg = by_pred[..., 1, :].sum(axis=-1), by_pred[..., 0, :].sum(axis=-1)
            tpr = np.where(pos > 0, by_pred[..., 1, 1] / pos, np.nan)
            fpr = np.where(neg > 0, by_pred[..., 0, 1] / neg, np.nan)
            hi, lo = np.nanmax(sel, axis=-1), np.nanmin(sel, axis=-1)
            out[f"dpd_{name}"] = hi - lo
            out[f"dpr_{name}"] = np.where(hi > 0, lo / hi, np.nan)
            out[f"eod_{name}"] = np.fmax(
                np.nanmax(tpr, axis=-1) - np.nanmin(tpr, axis=-1),
                np.nanmax(fpr, axis=-1) - np.nanmin(fpr, axis=-1),
            )
    return out


def _fairness_cells(
    yt: np.ndarray, ys: np.ndarray, yr: np.ndarray, groups: np.ndarray, n_groups: int
) -> np.ndarray:
    index = ((groups * 2 + yt) * 2 + ys) * 2 + yr
    return np.bincount(index, minlength=n_groups * 8).reshape(n_groups, 2, 2, 2).astype(float)


def downstream_fairness(
    y_true: Any,
    y_pred_synthetic: Any,
    y_pred_real: Any,
    sensitive_features: pd.DataFrame | Mapping[str, Any],
    positive_label: Scalar | None = None,
    thresholds: SyntheticBiasThresholds | None = None,
    *,
    stats: Stats | None = None,
) -> list[MetricResult]:
    """Downstream fairness of a classifier trained on synthetic data next to one trained on
    real data, both evaluated on the same real holdout (``y_true``).

    Per attribute (column of ``sensitive_features``), over the groups with at least
    ``stats.min_rows`` holdout rows (the others are named in the note, too small to judge):
    ``dp_difference_increase`` = demographic-parity difference (syn) - (real),
    ``eo_difference_increase`` = equalized-odds difference (syn) - (real), and
    ``dp_ratio_relative`` = demographic-parity ratio (syn) / (real), gated by
    ``min_disparate_impact_ratio``; definitions as fairlearn's ``demographic_parity_difference``,
    ``demographic_parity_ratio`` and ``equalized_odds_difference`` (equal to them when every
    group takes part). Each carries a bootstrap interval: the holdout rows re-drawn, the same
    draw for both models (paired). Fewer than two groups large enough: too small to judge.
    ``details`` holds both raw values and the per-group selection rates from fairlearn's
    ``MetricFrame``. ``positive_label`` turns labels into 0/1; leave it None when they
    already are.
    """
    thr = thresholds or SyntheticBiasThresholds()
    st = stats or Stats()
    yt = _binary(y_true, positive_label)
    ys = _binary(y_pred_synthetic, positive_label)
    yr = _binary(y_pred_real, positive_label)
    by_group = downstream_fairness_by_group(
        y_true, y_pred_synthetic, y_pred_real, sensitive_features, positive_label
    )
    results: list[MetricResult] = []
    for attribute, sf in _sensitive_columns(sensitive_features).items():
        codes, uniques = pd.factorize(pd.Series(sf, dtype=object))
        keep = codes >= 0
        cells = _fairness_cells(yt[keep], ys[keep], yr[keep], codes[keep], len(uniques))
        rows = cells.sum(axis=(1, 2, 3))
        eligible = rows >= st.min_rows
        left_out = [
            f"{uniques[i]} ({int(rows[i])} holdout rows < {st.min_rows})"
            for i in np.flatnonzero(~eligible)
        ]
        small = ""
        if eligible.sum() < 2:
            small = f"fewer than two groups with >= {st.min_rows} holdout rows"
            eligible = np.ones_like(eligible)
        judged = cells[eligible]
        point = {k: float(v) for k, v in _fairness_from_cells(judged).items()}
        flat = judged.ravel()
        total = int(flat.sum())
        draws = st.rng("downstream", attribute).multinomial(
            total, flat / max(total, 1), size=st.n_bootstrap
        )
        reps = _fairness_from_cells(draws.reshape(-1, *judged.shape))
        note = (
            "" if small or not left_out else "left out, too small to judge: " + ", ".join(left_out)
        )
        rates = by_group.loc[by_group["attribute"] == attribute]
        sel = {
            f"selection_rate[{row.model}][{row.group}]": float(row.selection_rate)
            for row in rates.itertuples()
        }

        dpr_s, dpr_r = point["dpr_syn"], point["dpr_real"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_reps = np.where(reps["dpr_real"] > 0, reps["dpr_syn"] / reps["dpr_real"], np.nan)
        rows_out: list[tuple[str, float, np.ndarray, float | None, str, dict[str, float], str]] = [
            (
                "dp_difference_increase",
                point["dpd_syn"] - point["dpd_real"],
                reps["dpd_syn"] - reps["dpd_real"],
                thr.max_dp_difference_increase,
                "<=",
                {"synthetic_trained": point["dpd_syn"], "real_trained": point["dpd_real"], **sel},
                "",
            ),
            (
                "eo_difference_increase",
                point["eod_syn"] - point["eod_real"],
                reps["eod_syn"] - reps["eod_real"],
                thr.max_eo_difference_increase,
                "<=",
                {"synthetic_trained": point["eod_syn"], "real_trained": point["eod_real"]},
                "",
            ),
            (
                "dp_ratio_relative",
                dpr_s / dpr_r if dpr_r > 0 else math.nan,
                ratio_reps,
                thr.min_disparate_impact_ratio,
                ">=",
                {"synthetic_trained": dpr_s, "real_trained": dpr_r},
                "" if dpr_r > 0 else "real-trained demographic parity ratio is 0",
            ),
        ]
        for metric, value, replicates, threshold, comparison, details, extra in rows_out:
            interval = percentile_interval(replicates, st.confidence, value)
            results.append(
                make_result(
                    "synthetic",
                    metric,
                    attribute,
                    [],
                    value,
                    threshold,
                    comparison,
                    note="; ".join(n for n in (extra, note) if n),
                    details=details,
                    interval=interval,
                    interval_method=st.bootstrap(),
                    too_small=small,
                )
            )
    return results


def synthetic_bias_report(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attributes: Sequence[str],
    label: str,
    positive_label: Scalar | None = None,
    config: BiasConfig | None = None,
    *,
    continuous_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    fairness: Sequence[MetricResult] | None = None,
) -> list[MetricResult]:
    """Synthetic-data bias check of ``synthetic`` against the ``real`` training data.

    Per attribute: :func:`representation_results`, :func:`amplification_results` and
    :func:`group_fidelity_results` (column lists inferred when both are None), judged with
    the config's intervals and too-small rule (:class:`Stats`). Results of
    :func:`downstream_fairness`, computed by the caller once it has trained the classifiers,
    are appended when given as ``fairness``.
    """
    cfg = _resolve_config(config)
    thr = cfg.synthetic
    st = Stats.from_config(cfg)
    pos_label = _resolve_positive(positive_label, cfg)
    results: list[MetricResult] = []
    for attribute in attributes:
        for frame in (real, synthetic):
            if attribute not in frame.columns:
                raise KeyError(f"sensitive attribute {attribute!r} not in the data frame")
        results += representation_results(real, synthetic, attribute, thr, stats=st)
        results += amplification_results(
            real, synthetic, attribute, label, pos_label, thr, stats=st
        )
        results += group_fidelity_results(
            real,
            synthetic,
            attribute,
            continuous_columns,
            categorical_columns,
            thr,
            stats=st,
        )
    if fairness:
        results += list(fairness)
    return results


def synthetic_bias_verdict(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attributes: Sequence[str],
    label: str,
    positive_label: Scalar | None = None,
    config: BiasConfig | None = None,
    *,
    continuous_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    fairness: Sequence[MetricResult] | None = None,
) -> BiasVerdict:
    """:func:`synthetic_bias_report` wrapped in a :class:`BiasVerdict` with ``config.policy``."""
    cfg = _resolve_config(config)
    results = synthetic_bias_report(
        real,
        synthetic,
        attributes,
        label,
        positive_label,
        cfg,
        continuous_columns=continuous_columns,
        categorical_columns=categorical_columns,
        fairness=fairness,
    )
    return BiasVerdict.from_results("synthetic", results, cfg.policy)
