"""Evaluate synthetic data against real data and render the report a person reads."""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genops.workloads.tabular.evaluation.metrics import (
    classifier_utility,
    column_shapes,
    pair_trends,
    privacy,
)

if TYPE_CHECKING:  # genops.core.config imports genops.core.blessing
    from genops.workloads.tabular.config import DatasetSpec


@dataclass
class Evaluation:
    metrics: dict[str, float]
    column_shapes: dict[str, float]
    pair_trends: dict[str, float]
    predictions: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "column_shapes": self.column_shapes,
            "pair_trends": self.pair_trends,
        }


def evaluate(
    spec: DatasetSpec,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    privacy_sample: int = 2000,
    seed: int = 0,
) -> Evaluation:
    """All headline metrics, named as they appear in MLflow and the KFP Metrics artifact."""
    cont, cat = spec.continuous_columns, spec.categorical_columns
    shapes = column_shapes(train, synthetic, cont, cat)
    trends = pair_trends(train, synthetic, cont, cat)
    tstr, pred_syn = classifier_utility(
        synthetic, holdout, spec.target, spec.positive_label, cont, cat, seed
    )
    trtr, pred_real = classifier_utility(
        train, holdout, spec.target, spec.positive_label, cont, cat, seed
    )
    priv = privacy(train, synthetic, holdout, cont, cat, sample=privacy_sample, seed=seed)
    shape_score = float(np.mean(list(shapes.values())))
    trend_score = float(np.mean(list(trends.values()))) if trends else shape_score
    metrics = {
        "fidelity_column_shapes": shape_score,
        "fidelity_pair_trends": trend_score,
        "fidelity_quality": (shape_score + trend_score) / 2.0,
        "utility_tstr_auc": tstr.auc,
        "utility_tstr_f1": tstr.f1,
        "utility_trtr_auc": trtr.auc,
        "utility_trtr_f1": trtr.f1,
        "utility_auc_ratio": tstr.auc / trtr.auc if trtr.auc > 0 else 0.0,
        "privacy_dcr_synthetic_median": priv.dcr_synthetic_median,
        "privacy_dcr_holdout_median": priv.dcr_holdout_median,
        "privacy_dcr_ratio": priv.dcr_ratio,
        "privacy_exact_copy_share": priv.exact_copy_share,
        "privacy_holdout_exact_copy_share": priv.holdout_exact_copy_share,
    }
    return Evaluation(
        metrics=metrics,
        column_shapes=shapes,
        pair_trends=trends,
        predictions={"synthetic_trained": pred_syn, "real_trained": pred_real},
    )


def distribution_figure(spec: DatasetSpec, real: pd.DataFrame, synthetic: pd.DataFrame) -> Any:
    """One panel per column: real vs synthetic histogram or category shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(spec.columns)
    ncols = 3
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 3.2 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, columns, strict=False):
        if spec.columns[col].type == "continuous":
            r, s = real[col].to_numpy(float), synthetic[col].to_numpy(float)
            bins = np.histogram_bin_edges(np.concatenate([r, s]), bins=30)
            ax.hist(r, bins=bins, alpha=0.5, density=True, label="real")
            ax.hist(s, bins=bins, alpha=0.5, density=True, label="synthetic")
        else:
            p = real[col].astype(str).value_counts(normalize=True)
            q = synthetic[col].astype(str).value_counts(normalize=True)
            cats = list(p.index[:12])
            x = np.arange(len(cats))
            ax.bar(x - 0.2, p.reindex(cats, fill_value=0), 0.4, label="real")
            ax.bar(x + 0.2, q.reindex(cats, fill_value=0), 0.4, label="synthetic")
            ax.set_xticks(x, [c[:12] for c in cats], rotation=60, fontsize=7)
        ax.set_title(col)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.tight_layout()
    return fig


def figure_to_base64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode()


def render_html(
    spec: DatasetSpec, evaluation: Evaluation, real: pd.DataFrame, synthetic: pd.DataFrame
) -> str:
    """A self-contained HTML report (plots inlined), for MLflow and the KFP HTML artifact."""
    import matplotlib.pyplot as plt

    fig = distribution_figure(spec, real, synthetic)
    image = figure_to_base64(fig)
    plt.close(fig)
    metric_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in evaluation.metrics.items()
    )
    shape_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
        for k, v in sorted(evaluation.column_shapes.items(), key=lambda kv: kv[1])
    )
    worst_pairs = sorted(evaluation.pair_trends.items(), key=lambda kv: kv[1])[:10]
    pair_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in worst_pairs
    )
    return (
        "<html><head><meta charset='utf-8'><title>Synthetic data evaluation</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>"
        f"<h1>Synthetic data evaluation: {html.escape(spec.name)}</h1>"
        f"<p>{len(real)} real training rows, {len(synthetic)} synthetic rows.</p>"
        f"<h2>Headline metrics</h2><table>{metric_rows}</table>"
        "<h2>Real vs synthetic distributions</h2>"
        f"<img alt='distributions' src='data:image/png;base64,{image}'/>"
        f"<h2>Column shapes (worst first)</h2><table>{shape_rows}</table>"
        f"<h2>Column pair trends (10 worst)</h2><table>{pair_rows}</table>"
        "</body></html>"
    )
