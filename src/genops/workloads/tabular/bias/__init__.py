"""Bias metrics, gates, verdicts and reports for tabular synthetic-data generation.

Typical use in a pipeline step::

    from genops.workloads.tabular.bias import BiasConfig, data_bias_verdict, decide, failure_message

    cfg = BiasConfig.model_validate(spec.get("bias", {}))
    verdict = data_bias_verdict(train_df, ["sex", "race"], "income", ">50K", cfg)
    match decide(verdict):
        case "stop": raise RuntimeError(failure_message(verdict))
        case "mitigate": ...  # target_condition_frame(...) → synthesizer.sample_conditions
        case "continue": ...
"""

from genops.core.report import (
    attribute_figure,
    bias_figures,
    figure_png,
    group_stats,
    group_stats_by_dataset,
    render_html,
    render_markdown,
)
from genops.core.verdict import (
    BiasVerdict,
    Decision,
    MetricResult,
    compare,
    decide,
    failure_message,
    make_result,
    verdict_reasons,
)
from genops.workloads.tabular.bias.config import (
    BiasConfig,
    BiasPolicy,
    DataBiasThresholds,
    MitigationConfig,
    MitigationTarget,
    SyntheticBiasThresholds,
)
from genops.workloads.tabular.bias.metrics import (
    PRETRAINING_METRICS,
    FacetCounts,
    Stats,
    amplification_results,
    cddl,
    ci,
    column_shape_scores,
    data_bias_report,
    data_bias_verdict,
    downstream_fairness,
    downstream_fairness_by_group,
    dpl,
    facet_counts,
    group_fidelity_results,
    group_shape_score,
    group_shares,
    js,
    kl,
    ks,
    lp,
    representation_results,
    split_columns,
    synthetic_bias_report,
    synthetic_bias_verdict,
    too_small_reason,
    tvd,
)
from genops.workloads.tabular.bias.mitigation import (
    mitigation_condition_frame,
    target_condition_frame,
)

__all__ = [
    "PRETRAINING_METRICS",
    "BiasConfig",
    "BiasPolicy",
    "BiasVerdict",
    "DataBiasThresholds",
    "Decision",
    "FacetCounts",
    "MetricResult",
    "MitigationConfig",
    "MitigationTarget",
    "Stats",
    "SyntheticBiasThresholds",
    "amplification_results",
    "attribute_figure",
    "bias_figures",
    "cddl",
    "ci",
    "column_shape_scores",
    "compare",
    "data_bias_report",
    "data_bias_verdict",
    "decide",
    "downstream_fairness",
    "downstream_fairness_by_group",
    "dpl",
    "facet_counts",
    "failure_message",
    "figure_png",
    "group_fidelity_results",
    "group_shape_score",
    "group_shares",
    "group_stats",
    "group_stats_by_dataset",
    "js",
    "kl",
    "ks",
    "lp",
    "make_result",
    "mitigation_condition_frame",
    "render_html",
    "render_markdown",
    "representation_results",
    "split_columns",
    "synthetic_bias_report",
    "synthetic_bias_verdict",
    "target_condition_frame",
    "too_small_reason",
    "tvd",
    "verdict_reasons",
]
