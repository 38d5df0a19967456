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
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
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


def _cddl_with_note(
    df: pd.DataFrame,
    attribute: str,
    facet: FacetSpec,
    label: str,
    positive_label: Scalar,
    group_by: str,
) -> tuple[float, str]:
    sub = _valid_rows(df, attribute, label)
    if group_by not in sub.columns:
        raise KeyError(f"CDDL group-by column {group_by!r} not in the data frame")
    sub = sub.loc[sub[group_by].notna()]
    n = len(sub)
    if n == 0:
        return math.nan, "no rows"
    in_d = np.asarray(sub[attribute].isin(_facet_values(facet)), dtype=bool)
    if not in_d.any():
        return math.nan, "facet d is empty (no rows in the group)"
    pos = _positive(sub[label], positive_label)
    if not pos.any():
        return math.nan, "label never positive: CDDL undefined"
    if pos.all():
        return math.nan, "label always positive: CDDL undefined"
    frame = pd.DataFrame(
        {
            "stratum": np.asarray(sub[group_by]),
            "acc": pos.astype(int),
            "rej": (~pos).astype(int),
            "acc_d": (pos & in_d).astype(int),
            "rej_d": (~pos & in_d).astype(int),
        }
    )
    per = frame.groupby("stratum", sort=True).sum()
    n_i = per["acc"] + per["rej"]
    rej_share = np.where(per["rej"] > 0, per["rej_d"] / per["rej"].where(per["rej"] > 0, 1), 0.0)
    acc_share = np.where(per["acc"] > 0, per["acc_d"] / per["acc"].where(per["acc"] > 0, 1), 0.0)
    dd = rej_share - acc_share
    return float((n_i.to_numpy() * dd).sum() / n), ""


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
    ``config.cddl_group_by`` is set. For attributes with three or more groups also
    ``DPL_worst_pair``: the pair of groups with the largest gap in positive rate (only groups
    meeting ``min_group_rows`` take part, so that a handful of rows cannot make the worst pair),
    reported as ``[higher-rate group, lower-rate group]`` with value ``q_a - q_d >= 0``.

    ``positive_label`` defaults to ``config.positive_label``.
    """
    cfg = _resolve_config(config)
    thr: DataBiasThresholds = cfg.data
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
                    )
                )
            if group_by is not None and group_by != attribute:
                value, c_note = _cddl_with_note(sub, attribute, g, label, pos_label, group_by)
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
                    )
                )

        if len(groups) >= 3:
            results.append(_worst_pair(table, attribute, thr))
    return results


def _worst_pair(table: pd.DataFrame, attribute: str, thr: DataBiasThresholds) -> MetricResult:
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
    rates = (eligible["pos"] / eligible["n"]).astype(float)
    hi = max(rates.index, key=lambda g: (rates[g], str(g)))
    lo = min(rates.index, key=lambda g: (rates[g], str(g)))
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


def representation_results(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attribute: str,
    thresholds: SyntheticBiasThresholds | None = None,
) -> list[MetricResult]:
    """Representation drift of one attribute.

    ``representation_tvd`` = ½·Σ_g |s_real(g) - s_syn(g)| over the union of groups, and per group
    of the real data ``relative_underrepresentation`` = 1 - s_syn(g)/s_real(g) (negative when
    the group is over-represented). A group present in the real data but absent from the
    synthetic data fails whatever the threshold.
    """
    thr = thresholds or SyntheticBiasThresholds()
    s_real = group_shares(real, attribute)
    s_syn = group_shares(synthetic, attribute)
    keys = sorted(set(s_real.index) | set(s_syn.index), key=str)
    a = np.array([float(s_real.get(k, 0.0)) for k in keys])
    b = np.array([float(s_syn.get(k, 0.0)) for k in keys])
    unseen = [str(k) for k in keys if k not in s_real.index]
    note = f"groups not in the real data: {unseen}" if unseen else ""
    if s_syn.empty:
        note = "synthetic data has no rows with a value for this attribute"
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
        )
    ]
    for k in sorted(s_real.index, key=str):
        sr = float(s_real[k])
        ss = float(s_syn.get(k, 0.0))
        res = make_result(
            "synthetic",
            "relative_underrepresentation",
            attribute,
            [str(k)],
            1.0 - ss / sr,
            thr.max_relative_underrepresentation,
            "<=",
            details={"share_real": sr, "share_synthetic": ss},
            group_only=True,
        )
        if ss == 0.0:
            res.passed = False
            res.note = "group present in the real data but absent from the synthetic data"
        results.append(res)
    return results


def _fold_di(q_d: float, q_a: float) -> float:
    """min(q_d, q_a) / max(q_d, q_a); 1 when both rates are 0."""
    if math.isnan(q_d) or math.isnan(q_a):
        return math.nan
    hi = max(q_d, q_a)
    return 1.0 if hi == 0 else min(q_d, q_a) / hi


def amplification_results(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attribute: str,
    label: str,
    positive_label: Scalar,
    thresholds: SyntheticBiasThresholds | None = None,
) -> list[MetricResult]:
    """Label-bias amplification per group vs rest.

    ``DPL_amplification`` = |DPL_syn| - |DPL_real| and ``DI_ratio`` = r_syn / r_real with
    r = min(q_d, q_a)/max(q_d, q_a) (the disparate impact DI = q_d/q_a folded to <= 1). The raw
    DPL and DI of both data sets are in ``details``.
    """
    thr = thresholds or SyntheticBiasThresholds()
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
        details = {"DPL_real": dpl_r, "DPL_synthetic": dpl_s, "DI_real": di_r, "DI_synthetic": di_s}
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
            )
        )
        ratio, r_note = math.nan, note
        if r_real == 0:
            r_note = note or "real disparate impact is 0: ratio undefined"
        elif not (math.isnan(r_real) or math.isnan(r_syn)):
            ratio = r_syn / r_real
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


def group_fidelity_results(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    attribute: str,
    continuous_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    thresholds: SyntheticBiasThresholds | None = None,
    min_rows: int = 0,
) -> list[MetricResult]:
    """``group_shape_score`` per group of the real data. When neither column list is given
    they are inferred from ``real`` with :func:`split_columns`. Groups with fewer than
    ``min_rows`` real rows are reported but do not gate: a shape score over a handful of
    rows is noise (the coverage check already flags such groups)."""
    thr = thresholds or SyntheticBiasThresholds()
    if continuous_columns is None and categorical_columns is None:
        continuous_columns, categorical_columns = split_columns(real, exclude=[attribute])
    cont = list(continuous_columns or [])
    cat = list(categorical_columns or [])
    results = []
    sizes = real[attribute].value_counts()
    for g in _sorted_groups(real[attribute]):
        score = group_shape_score(real, synthetic, attribute, g, cont, cat)
        note = "group absent from the synthetic data" if math.isnan(score) else ""
        threshold = thr.min_group_shape_score
        if int(sizes.get(g, 0)) < min_rows:
            threshold = None
            note = f"{int(sizes.get(g, 0))} real rows < {min_rows}: reported, not gated"
        results.append(
            make_result(
                "synthetic",
                "group_shape_score",
                attribute,
                [str(g)],
                score,
                threshold,
                ">=",
                note=note,
                group_only=True,
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


def downstream_fairness(
    y_true: Any,
    y_pred_synthetic: Any,
    y_pred_real: Any,
    sensitive_features: pd.DataFrame | Mapping[str, Any],
    positive_label: Scalar | None = None,
    thresholds: SyntheticBiasThresholds | None = None,
) -> list[MetricResult]:
    """Downstream fairness of a classifier trained on synthetic data next to one trained on
    real data, both evaluated on the same real holdout (``y_true``).

    Per attribute (column of ``sensitive_features``), with fairlearn:
    ``dp_difference_increase`` = demographic_parity_difference(syn) - (real),
    ``eo_difference_increase`` = equalized_odds_difference(syn) - (real), and
    ``dp_ratio_relative`` = demographic_parity_ratio(syn) / (real), gated by
    ``min_disparate_impact_ratio``. ``details`` holds both raw values and the per-group
    selection rates from ``MetricFrame``. ``positive_label`` turns labels into 0/1; leave it
    None when they already are.
    """
    thr = thresholds or SyntheticBiasThresholds()
    yt = _binary(y_true, positive_label)
    ys = _binary(y_pred_synthetic, positive_label)
    yr = _binary(y_pred_real, positive_label)
    by_group = downstream_fairness_by_group(
        y_true, y_pred_synthetic, y_pred_real, sensitive_features, positive_label
    )
    results: list[MetricResult] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for attribute, sf in _sensitive_columns(sensitive_features).items():
            dpd_s = float(demographic_parity_difference(yt, ys, sensitive_features=sf))
            dpd_r = float(demographic_parity_difference(yt, yr, sensitive_features=sf))
            dpr_s = float(demographic_parity_ratio(yt, ys, sensitive_features=sf))
            dpr_r = float(demographic_parity_ratio(yt, yr, sensitive_features=sf))
            eod_s = float(equalized_odds_difference(yt, ys, sensitive_features=sf))
            eod_r = float(equalized_odds_difference(yt, yr, sensitive_features=sf))
            rates = by_group.loc[by_group["attribute"] == attribute]
            sel = {
                f"selection_rate[{row.model}][{row.group}]": float(row.selection_rate)
                for row in rates.itertuples()
            }
            results.append(
                make_result(
                    "synthetic",
                    "dp_difference_increase",
                    attribute,
                    [],
                    dpd_s - dpd_r,
                    thr.max_dp_difference_increase,
                    "<=",
                    details={"synthetic_trained": dpd_s, "real_trained": dpd_r, **sel},
                )
            )
            results.append(
                make_result(
                    "synthetic",
                    "eo_difference_increase",
                    attribute,
                    [],
                    eod_s - eod_r,
                    thr.max_eo_difference_increase,
                    "<=",
                    details={"synthetic_trained": eod_s, "real_trained": eod_r},
                )
            )
            ratio = dpr_s / dpr_r if dpr_r > 0 else math.nan
            results.append(
                make_result(
                    "synthetic",
                    "dp_ratio_relative",
                    attribute,
                    [],
                    ratio,
                    thr.min_disparate_impact_ratio,
                    ">=",
                    note="" if dpr_r > 0 else "real-trained demographic parity ratio is 0",
                    details={"synthetic_trained": dpr_s, "real_trained": dpr_r},
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
    :func:`group_fidelity_results` (column lists inferred when both are None). Results of
    :func:`downstream_fairness`, computed by the caller once it has trained the classifiers,
    are appended when given as ``fairness``.
    """
    cfg = _resolve_config(config)
    thr = cfg.synthetic
    pos_label = _resolve_positive(positive_label, cfg)
    results: list[MetricResult] = []
    for attribute in attributes:
        for frame in (real, synthetic):
            if attribute not in frame.columns:
                raise KeyError(f"sensitive attribute {attribute!r} not in the data frame")
        results += representation_results(real, synthetic, attribute, thr)
        results += amplification_results(real, synthetic, attribute, label, pos_label, thr)
        results += group_fidelity_results(
            real,
            synthetic,
            attribute,
            continuous_columns,
            categorical_columns,
            thr,
            min_rows=cfg.data.min_group_rows,
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
