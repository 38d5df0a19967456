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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported on first use (PEP 562): the metrics pull in fairlearn and scikit-learn (about a
# second), which a step that only reads the bias config (every tabular step, through the
# run config) must not pay for when its task starts.
_LAZY: dict[str, str] = {
    "BiasConfig": "genops.workloads.tabular.bias.config",
    "BiasPolicy": "genops.workloads.tabular.bias.config",
    "BiasVerdict": "genops.core.verdict",
    "DataBiasThresholds": "genops.workloads.tabular.bias.config",
    "Decision": "genops.core.verdict",
    "FacetCounts": "genops.workloads.tabular.bias.metrics",
    "MetricResult": "genops.core.verdict",
    "MitigationConfig": "genops.workloads.tabular.bias.config",
    "MitigationTarget": "genops.workloads.tabular.bias.config",
    "PRETRAINING_METRICS": "genops.workloads.tabular.bias.metrics",
    "Stats": "genops.workloads.tabular.bias.metrics",
    "SyntheticBiasThresholds": "genops.workloads.tabular.bias.config",
    "amplification_results": "genops.workloads.tabular.bias.metrics",
    "attribute_figure": "genops.core.report",
    "bias_figures": "genops.core.report",
    "cddl": "genops.workloads.tabular.bias.metrics",
    "ci": "genops.workloads.tabular.bias.metrics",
    "column_shape_scores": "genops.workloads.tabular.bias.metrics",
    "compare": "genops.core.verdict",
    "data_bias_report": "genops.workloads.tabular.bias.metrics",
    "data_bias_verdict": "genops.workloads.tabular.bias.metrics",
    "decide": "genops.core.verdict",
    "downstream_fairness": "genops.workloads.tabular.bias.metrics",
    "downstream_fairness_by_group": "genops.workloads.tabular.bias.metrics",
    "dpl": "genops.workloads.tabular.bias.metrics",
    "facet_counts": "genops.workloads.tabular.bias.metrics",
    "failure_message": "genops.core.verdict",
    "figure_png": "genops.core.report",
    "group_fidelity_results": "genops.workloads.tabular.bias.metrics",
    "group_shape_score": "genops.workloads.tabular.bias.metrics",
    "group_shares": "genops.workloads.tabular.bias.metrics",
    "group_stats": "genops.core.report",
    "group_stats_by_dataset": "genops.core.report",
    "js": "genops.workloads.tabular.bias.metrics",
    "kl": "genops.workloads.tabular.bias.metrics",
    "ks": "genops.workloads.tabular.bias.metrics",
    "lp": "genops.workloads.tabular.bias.metrics",
    "make_result": "genops.core.verdict",
    "mitigation_condition_frame": "genops.workloads.tabular.bias.mitigation",
    "render_html": "genops.core.report",
    "render_markdown": "genops.core.report",
    "representation_results": "genops.workloads.tabular.bias.metrics",
    "split_columns": "genops.workloads.tabular.bias.metrics",
    "synthetic_bias_report": "genops.workloads.tabular.bias.metrics",
    "synthetic_bias_verdict": "genops.workloads.tabular.bias.metrics",
    "target_condition_frame": "genops.workloads.tabular.bias.mitigation",
    "too_small_reason": "genops.workloads.tabular.bias.metrics",
    "tvd": "genops.workloads.tabular.bias.metrics",
    "verdict_reasons": "genops.core.verdict",
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
