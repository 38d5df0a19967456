"""Settings of the bias checks, read from the ``bias:`` key of a dataset spec YAML.

Example (every key optional; shown with the defaults except where noted)::

    bias:
      policy: warn              # block | warn | mitigate
      positive_label: ">50K"    # default: none, the caller supplies it
      cddl_group_by: education  # default: none (CDDL not computed)
      confidence: 0.95          # of every metric's interval
      bootstrap_resamples: 1000 # where no closed form exists
      seed: 0                   # of the bootstrap
      data:
        max_abs_dpl: 0.1
        max_abs_cddl: 0.1
        min_group_rows: 100
      synthetic:
        max_representation_tvd: 0.05
        max_relative_underrepresentation: 0.5
      mitigation:
        target: balanced_groups

About the numbers. None of these cut-offs is a standard. AWS SageMaker Clarify, whose
pre-training metric definitions :mod:`genops.workloads.tabular.bias.metrics` follows, reports
the metrics but sets
no numeric threshold above which data counts as "biased"; it leaves that to the user. fairlearn's
documentation describes the "four-fifths rule" (disparate impact ratio >= 0.8) as a heuristic
that comes from US employment guidance, not as a general test of fairness. The defaults below are
therefore choices of this project, picked so that the gates mean something on the UCI Adult data:
the real Adult training data (DPL for ``sex='Female'`` vs rest ≈ 0.196) *fails* the default data
gate, so the configured policy decides what happens. Any threshold may be set to ``null`` (None),
which keeps the metric in the report but never fails the gate ("report only").

Statistics. Every group metric of both gates carries a confidence interval (``confidence``,
default 95%): a closed form where one exists (Wilson for a share, Newcombe's hybrid score
interval for a difference of two shares, Katz's log interval for a ratio of shares and its
sum-of-variances extension for a ratio of two such ratios), else a seeded percentile bootstrap
(``bootstrap_resamples``, ``seed``; widened to hold the point value, which a distance's
percentiles can miss). A metric fails only when its whole interval lies beyond
the threshold. A group with fewer than ``data.min_group_rows`` rows (or whose "rest" has
fewer) is "too small to judge" in every metric of both gates: reported with its value and
interval, never passed or failed on it. Only ``coverage`` judges such a group: it is the rule
that names it under-covered.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from genops.core.verdict import BiasPolicy

MitigationTarget = Literal["balanced_groups", "equal_positive_rate"]


class DataBiasThresholds(BaseModel):
    """Gate on the real (training) data, before any model sees it.

    Every metric is computed for each group of each sensitive attribute against the rest of
    the rows (facet *d* = the group, facet *a* = the rest, SageMaker Clarify's convention), plus
    the DPL of the worst pair of groups for attributes with more than two groups.

    For a binary label, KL, JS, LP, TVD and KS are all functions of the two positive rates
    ``q_a`` and ``q_d`` (TVD = KS = |DPL|, LP = sqrt(2)·|DPL|), so gating on them as well as on
    DPL would only repeat the same failure; they default to report only.
    """

    model_config = ConfigDict(extra="forbid")

    max_abs_ci: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Largest allowed |CI| (class imbalance, (n_a - n_d)/(n_a + n_d)). Default None "
            "(report only): a group that is 1% of the population has CI = 0.98 in any "
            "representative sample, so CI would fail every census-like data set; coverage "
            "(min_group_rows) is the gate for groups that are too small to learn from."
        ),
    )
    max_abs_dpl: float | None = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Largest allowed |DPL| (difference in positive proportions in labels, q_a - q_d). "
            "Default 0.1: a 10 percentage-point gap in positive rate between a group and the "
            "rest. The real Adult data fails it (sex='Female' ≈ 0.196)."
        ),
    )
    max_kl: float | None = Field(
        default=None, ge=0, description="Largest allowed KL(P_a || P_d) in nats. Report only."
    )
    max_js: float | None = Field(
        default=None, ge=0, description="Largest allowed Jensen-Shannon divergence (nats)."
    )
    max_lp: float | None = Field(
        default=None, ge=0, description="Largest allowed L2 norm of P_a - P_d. Report only."
    )
    max_tvd: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Largest allowed TVD = ½·L1(P_a, P_d). Report only (equals |DPL| for a "
        "binary label).",
    )
    max_ks: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Largest allowed KS = max_y |P_a(y) - P_d(y)|. Report only.",
    )
    max_abs_cddl: float | None = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Largest allowed |CDDL| (conditional demographic disparity in labels, stratified "
            "by BiasConfig.cddl_group_by): the group's share of the rejected rows minus its "
            "share of the accepted rows, averaged over the strata weighted by size. Default "
            "0.1 (a 10-point gap in shares). Only computed when cddl_group_by is set; on Adult "
            "by education, sex='Female' ≈ 0.25 fails, every race group passes."
        ),
    )
    min_group_rows: int = Field(
        default=100,
        ge=0,
        description=(
            "Coverage: every group of a sensitive attribute needs at least this many rows. "
            "Default 100: below that, per-group rates have a standard error of several "
            "percentage points and a generator has little to learn the group from. The same "
            "number is the 'too small to judge' rule of every other group metric in both "
            "gates: a group (or the rest of the rows) with fewer rows in the real data the "
            "metric reads is reported, never passed or failed on its value."
        ),
    )


class SyntheticBiasThresholds(BaseModel):
    """Gate on a synthetic sample, compared with the real training data it was learnt from."""

    model_config = ConfigDict(extra="forbid")

    max_representation_tvd: float | None = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Largest allowed total variation distance between the real and the synthetic "
            "group shares of an attribute, ½·Σ_g |s_real(g) - s_syn(g)|. Default 0.05: at most "
            "5% of the synthetic rows sit in the 'wrong' group."
        ),
    )
    max_relative_underrepresentation: float | None = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Largest allowed relative under-representation of any group, "
            "1 - s_syn(g)/s_real(g). Default 0.5: a group whose synthetic share is less than "
            "half its real share fails. A group present in the real data but absent from the "
            "synthetic data always fails, even when this is None."
        ),
    )
    max_dpl_amplification: float | None = Field(
        default=0.05,
        ge=0,
        description=(
            "Largest allowed label-bias amplification per group vs rest, "
            "|DPL_syn| - |DPL_real|. Default 0.05: the synthetic data may widen a group's gap "
            "in positive rate by at most 5 percentage points."
        ),
    )
    min_disparate_impact_ratio: float | None = Field(
        default=0.8,
        ge=0,
        description=(
            "Smallest allowed r_syn / r_real per group vs rest, where r = min(q_d, q_a) / "
            "max(q_d, q_a) is the disparate impact (DI = q_d/q_a) folded to <= 1 so that it "
            "reads the same for the disadvantaged and the advantaged side. Default 0.8 borrows "
            "the number of the 'four-fifths rule' (DI >= 0.8), which fairlearn's documentation "
            "calls a heuristic; here it is applied relative to the real data (the synthetic "
            "data may not shrink the real DI by more than a fifth), because the real Adult data "
            "itself has DI ≈ 0.36 for sex and would fail an absolute 0.8."
        ),
    )
    max_dp_difference_increase: float | None = Field(
        default=0.05,
        ge=0,
        description=(
            "Downstream fairness: largest allowed increase of fairlearn's "
            "demographic_parity_difference of a classifier trained on synthetic data over one "
            "trained on real data, both evaluated on the real holdout. Default 0.05."
        ),
    )
    max_eo_difference_increase: float | None = Field(
        default=0.05,
        ge=0,
        description=(
            "Downstream fairness: largest allowed increase of fairlearn's "
            "equalized_odds_difference (synthetic-trained minus real-trained). Default 0.05."
        ),
    )
    min_group_shape_score: float | None = Field(
        default=0.75,
        ge=0,
        le=1,
        description=(
            "Per-group fidelity: smallest allowed mean over columns of 1-KS (continuous) or "
            "1-TVD (categorical), comparing the real and synthetic rows of one group. "
            "Default 0.75, a rule of thumb meant to flag groups the generator has clearly not "
            "learnt; tune it against the scores of a baseline run."
        ),
    )


class MitigationConfig(BaseModel):
    """How the ``mitigate`` policy re-samples (see :func:`target_condition_frame`)."""

    model_config = ConfigDict(extra="forbid")

    target: MitigationTarget = Field(
        default="balanced_groups",
        description=(
            "'balanced_groups': the same number of synthetic rows for every group (every "
            "combination of groups when there are several attributes). 'equal_positive_rate': "
            "group sizes as in the real data, but every group gets the real data's overall "
            "positive rate."
        ),
    )
    attributes: list[str] | None = Field(
        default=None,
        description="Attributes to condition on. Default None: the sensitive attributes "
        "checked by the gates.",
    )


class BiasConfig(BaseModel):
    """The ``bias:`` section of a dataset spec."""

    model_config = ConfigDict(extra="forbid")

    policy: BiasPolicy = Field(
        default="warn",
        description="What a failed gate does: block (stop), warn (log and go on) or mitigate.",
    )
    positive_label: str | None = Field(
        default=None,
        description="The favourable label value (Adult: '>50K'). Default None: the caller "
        "supplies it.",
    )
    cddl_group_by: str | None = Field(
        default=None,
        description="Column to stratify CDDL by (e.g. 'education'). Default None: no CDDL.",
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1.0,
        description="Confidence level of every metric's interval (two-sided).",
    )
    bootstrap_resamples: int = Field(
        default=1000,
        ge=100,
        le=100_000,
        description="Resamples of the percentile bootstrap, for metrics without a closed "
        "form (KL, JS, CDDL, representation TVD, DPL amplification, per-group fidelity, "
        "downstream fairness). Per-group fidelity uses at most 200 (it recomputes every "
        "column's shape per resample).",
    )
    seed: int = Field(default=0, description="Seed of the bootstrap resamples.")
    data: DataBiasThresholds = Field(default_factory=DataBiasThresholds)
    synthetic: SyntheticBiasThresholds = Field(default_factory=SyntheticBiasThresholds)
    mitigation: MitigationConfig = Field(default_factory=MitigationConfig)
