"""The ``tabular-synth`` pipeline's own steps, as plain functions over file paths: prepare,
the data bias gate, train and evaluate. Everything after evaluate is the core's
(:mod:`genops.core.steps`).

A KFP component calls exactly one of these with its artifacts' paths; tests call them
directly. Nothing here knows about KFP.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genops.core.config import read_config_artifact
from genops.core.io import write_text_atomic
from genops.core.steps import (
    ReportOutputs,
    log_model_params,
    record_trained_model,
    record_verdict,
    tag_data_gate,
    tag_synthetic_gate,
)
from genops.workloads.tabular.config import RunConfig


def read_run_config(path: str | Path) -> RunConfig:
    """Read the resolved (tabular) config artifact written by ``start``."""
    config = read_config_artifact(path)
    if not isinstance(config, RunConfig):
        raise TypeError(f"{path}: a '{config.pipeline_name}' config, not a tabular-synth one")
    return config


@dataclass
class PrepareOutputs:
    train: str
    validation: str
    holdout: str
    profile_html: str
    validation_html: str


def prepare(
    config_path: str | Path, tracking_uri: str, run_id: str, out: PrepareOutputs
) -> dict[str, Any]:
    """Load, validate, clean and split. On a validation failure the report is still written
    (and logged to MLflow) before the error propagates."""
    import mlflow

    from genops.core.tracking import step_run
    from genops.workloads.tabular.data import DataValidationError, write_parquet
    from genops.workloads.tabular.data.prepare import prepare as prepare_data
    from genops.workloads.tabular.data.prepare import profile_html

    config = read_run_config(config_path)
    spec = config.dataset
    with step_run(tracking_uri, run_id, "prepare"):
        columns = log_resolved_spec(spec)
        try:
            data = prepare_data(spec)
        except DataValidationError as exc:
            write_text_atomic(out.validation_html, exc.report.to_html())
            mlflow.log_text(exc.report.to_html(), "data_validation/report.html")
            mlflow.log_dict(exc.report.to_dict(), "data_validation/report.json")
            raise
        write_text_atomic(out.validation_html, data.report.to_html())
        write_text_atomic(out.profile_html, profile_html(spec.name, data.profile))
        write_parquet(data.train, out.train)
        write_parquet(data.validation, out.validation)
        write_parquet(data.holdout, out.holdout)
        mlflow.log_text(data.report.to_html(), "data_validation/report.html")
        mlflow.log_dict(data.report.to_dict(), "data_validation/report.json")
        mlflow.log_text(profile_html(spec.name, data.profile), "data_profile/profile.html")
        mlflow.log_dict(data.profile, "data_profile/profile.json")
        rows = {
            "rows_train": len(data.train),
            "rows_validation": len(data.validation),
            "rows_holdout": len(data.holdout),
        }
        mlflow.log_metrics({k: float(v) for k, v in rows.items()})
        mlflow.log_params({"dataset_hash": data.dataset_hash, "sources": json.dumps(spec.sources)})
        from mlflow.data import pandas_dataset

        dataset = pandas_dataset.from_pandas(
            data.train, source=spec.sources[0], name=f"{spec.name}-train", targets=spec.target
        )
        mlflow.log_input(
            dataset, context="training", tags={"genops.dataset_hash": data.dataset_hash}
        )
        mlflow.MlflowClient().set_tag(run_id, "genops.dataset_hash", data.dataset_hash)
    return {"dataset_hash": data.dataset_hash, **rows, **columns}


def log_resolved_spec(spec: Any) -> dict[str, int]:
    """Print the dataset spec as the run uses it (each column written or inferred, each
    column left out with its reason) and log it to the active MLflow run as
    ``data_spec/resolved_spec.yaml``, with the counts as params; returns the counts."""
    import mlflow

    from genops.workloads.tabular.data.resolve import render_spec, resolution_summary

    summary = resolution_summary(spec)
    text = render_spec(spec, header=["The dataset spec as this run uses it.", *summary])
    print(text, flush=True)
    mlflow.log_text(text, "data_spec/resolved_spec.yaml")
    res = spec.resolution
    counts = {
        "columns_used": len(spec.columns),
        "columns_inferred": len(res.inferred) if res is not None else 0,
        "columns_excluded": len(res.excluded) if res is not None else 0,
    }
    mlflow.log_params({"columns_mode": spec.columns_mode, **counts})
    return counts


def data_bias_check(
    config_path: str | Path,
    train_path: str | Path,
    tracking_uri: str,
    run_id: str,
    out: ReportOutputs,
) -> str:
    """The pre-training bias gate; returns the decision: continue, stop or mitigate."""

    from genops.core.tracking import step_run
    from genops.workloads.tabular.data import read_parquet

    config = read_run_config(config_path)
    spec = config.dataset
    with step_run(tracking_uri, run_id, "data-bias-check"):
        # the bias metrics (scikit-learn, fairlearn) load inside the step that uses them
        from genops.workloads.tabular.bias import (
            bias_figures,
            data_bias_verdict,
            decide,
            group_stats_by_dataset,
            render_html,
            render_markdown,
        )

        frame = read_parquet(train_path, spec)
        verdict = data_bias_verdict(
            frame, spec.sensitive_attributes, spec.target, spec.positive_label, config.bias
        )
        decision = decide(verdict)
        shares = group_stats_by_dataset(
            {"real": frame}, spec.sensitive_attributes, spec.target, spec.positive_label
        )
        html_text = render_html(verdict, shares, title=f"Data bias check: {spec.name}")
        md_text = render_markdown(verdict, title=f"Data bias check: {spec.name}")
        figures = {f"group_shares_{a}": fig for a, fig in bias_figures(shares).items()}
        record_verdict(verdict, out, html_text, md_text, "data_bias", figures)
        tag_data_gate(run_id, verdict, decision)
    return decision


def conditional_columns(config: RunConfig) -> list[str]:
    """What a conditional synthesizer is conditioned on: the sensitive attributes and the
    target. Their joint distribution is then reproduced from the training frequencies, and
    the mitigation can ask for any mix of groups and labels."""
    spec = config.dataset
    return [*spec.sensitive_attributes, spec.target]


def build_synthesizer(config: RunConfig, params_override: dict[str, Any] | None = None) -> Any:
    """The configured synthesizer (``params_override`` comes from tuning, when it runs)."""
    m = config.model.model_validate({**config.model.model_dump(), **(params_override or {})})
    spec = config.dataset
    common: dict[str, Any] = {
        "categorical_columns": spec.categorical_columns,
        "continuous_columns": spec.continuous_columns,
        "conditional_columns": conditional_columns(config) if m.conditional else None,
        "seed": m.seed,
        "device": m.device,
    }
    if m.family == "ctgan":
        from genops.workloads.tabular.models.ctgan import CTGANParams, CTGANSynthesizer

        return CTGANSynthesizer(
            params=CTGANParams(
                epochs=m.epochs,
                batch_size=m.batch_size,
                embedding_dim=m.embedding_dim,
                generator_dims=tuple(m.generator_dims),
                discriminator_dims=tuple(m.discriminator_dims),
                generator_lr=m.generator_lr,
                discriminator_lr=m.discriminator_lr,
                discriminator_steps=m.discriminator_steps,
                pac=m.pac,
            ),
            **common,
        )
    if m.family == "diffusion":
        from genops.workloads.tabular.models.diffusion import (
            DiffusionParams,
            DiffusionSynthesizer,
        )

        return DiffusionSynthesizer(
            params=DiffusionParams(
                epochs=m.epochs,
                batch_size=m.batch_size,
                hidden_dims=tuple(m.hidden_dims),
                dropout=m.dropout,
                learning_rate=m.learning_rate,
                weight_decay=m.weight_decay,
                num_timesteps=m.num_timesteps,
                sample_steps=m.sample_steps,
                eta=m.eta,
                ema_decay=m.ema_decay,
            ),
            **common,
        )
    from genops.workloads.tabular.models import TVAEParams, TVAESynthesizer

    return TVAESynthesizer(
        params=TVAEParams(
            epochs=m.epochs,
            batch_size=m.batch_size,
            embedding_dim=m.embedding_dim,
            compress_dims=tuple(m.compress_dims),
            decompress_dims=tuple(m.decompress_dims),
            l2scale=m.l2scale,
            loss_factor=m.loss_factor,
            learning_rate=m.learning_rate,
        ),
        **common,
    )


def loss_figure(history: list[dict[str, float]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [h["epoch"] for h in history]
    for key in ("loss", "reconstruction", "kld", "numeric", "categorical"):
        if history and key in history[0]:
            ax.plot(epochs, [h[key] for h in history], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Synthesizer training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def train(
    config_path: str | Path,
    train_path: str | Path,
    tracking_uri: str,
    run_id: str,
    model_dir: str | Path,
    params_path: str | Path | None = None,
) -> dict[str, Any]:
    """Fit the synthesizer (with the tuned params, when tuning ran), save it and log it to
    MLflow as a pyfunc model."""
    import matplotlib.pyplot as plt
    import mlflow

    from genops.core.tracking import step_run
    from genops.workloads.tabular.data import read_parquet
    from genops.workloads.tabular.pyfunc import log_synthesizer

    config = read_run_config(config_path)
    tuned: dict[str, Any] = json.loads(Path(params_path).read_text()) if params_path else {}
    effective = config.model.model_validate({**config.model.model_dump(), **tuned})
    model_dir = Path(model_dir)
    with step_run(tracking_uri, run_id, "train") as run:
        # reading the split and building the model (torch) are the step's work: inside
        # its run, their time is the step's and a failure is recorded on it
        frame = read_parquet(train_path, config.dataset)
        synthesizer = build_synthesizer(config, tuned)
        log_model_params(effective, tuned)

        def on_epoch_end(epoch: int, values: dict[str, float]) -> None:
            mlflow.log_metrics(
                {f"train_{k}": float(v) for k, v in values.items() if k != "epoch"}, step=epoch
            )

        started = time.perf_counter()
        synthesizer.fit(frame, on_epoch_end=on_epoch_end)
        seconds = time.perf_counter() - started
        fig = loss_figure(synthesizer.loss_history)
        mlflow.log_figure(fig, "plots/loss_curve.png")
        plt.close(fig)
        synth_dir = model_dir / "synthesizer"
        synthesizer.save(synth_dir)
        example = synthesizer.sample(5, seed=0)
        info = log_synthesizer(synth_dir, example)
        summary = {
            "train_seconds": seconds,
            "train_rows_per_second": len(frame) * effective.epochs / max(seconds, 1e-9),
            "final_loss": float(synthesizer.loss_history[-1]["loss"]),
        }
        meta = record_trained_model(model_dir, info, run, summary, family=effective.family)
    return meta


@dataclass
class EvaluateOutputs:
    synthetic: str
    report_html: str
    evaluation_json: str
    bias: ReportOutputs


def evaluate(
    config_path: str | Path,
    model_dir: str | Path,
    train_path: str | Path,
    holdout_path: str | Path,
    tracking_uri: str,
    run_id: str,
    bias_decision: str,
    out: EvaluateOutputs,
) -> tuple[dict[str, float], bool]:
    """Generate synthetic rows, score them against the real data and run the synthetic-data
    bias gate. Under the ``mitigate`` decision the rows are sampled to the configured target
    distribution. Returns the metrics and whether the synthetic gate passed."""
    import mlflow

    from genops.core.tracking import log_parent, step_run
    from genops.workloads.tabular.data import read_parquet, write_parquet

    config = read_run_config(config_path)
    spec = config.dataset
    attrs = spec.sensitive_attributes
    mitigated = bias_decision == "mitigate"
    with step_run(tracking_uri, run_id, "evaluate"):
        # the scoring and bias metrics (scikit-learn, fairlearn) and the model (torch) are
        # the step's work: their imports and the reading of the inputs run inside its run
        from genops.workloads.tabular.bias import (
            Stats,
            bias_figures,
            data_bias_report,
            downstream_fairness,
            group_stats_by_dataset,
            mitigation_condition_frame,
            render_markdown,
            synthetic_bias_verdict,
        )
        from genops.workloads.tabular.bias import (
            render_html as render_bias_html,
        )
        from genops.workloads.tabular.evaluation import evaluate as score
        from genops.workloads.tabular.evaluation import render_html
        from genops.workloads.tabular.models import load_synthesizer

        train_frame = read_parquet(train_path, spec)
        holdout = read_parquet(holdout_path, spec)
        synthesizer = load_synthesizer(Path(model_dir) / "synthesizer")
        n = config.evaluation.synthetic_rows or len(train_frame)
        if mitigated:
            conditions = mitigation_condition_frame(
                train_frame,
                attrs,
                spec.target,
                config.bias,
                n,
                spec.positive_label,
                seed=config.evaluation.seed,
            )
            synthetic = synthesizer.sample_conditions(conditions, seed=config.evaluation.seed)
        else:
            synthetic = synthesizer.sample(n, seed=config.evaluation.seed)
        write_parquet(synthetic, out.synthetic)
        result = score(
            spec,
            train_frame,
            holdout,
            synthetic,
            privacy_sample=config.evaluation.privacy_sample,
            seed=config.evaluation.seed,
        )
        report = render_html(spec, result, train_frame, synthetic)
        write_text_atomic(out.report_html, report)
        write_text_atomic(out.evaluation_json, json.dumps(result.to_dict(), indent=2))
        mlflow.log_metrics(result.metrics)
        mlflow.log_metrics({f"shape_{k}": v for k, v in result.column_shapes.items()})
        mlflow.log_text(report, "evaluation/report.html")
        mlflow.log_dict(result.to_dict(), "evaluation/evaluation.json")

        fairness = downstream_fairness(
            holdout[spec.target].astype(str).eq(spec.positive_label).to_numpy(int),
            result.predictions["synthetic_trained"],
            result.predictions["real_trained"],
            holdout[attrs],
            positive_label=1,
            thresholds=config.bias.synthetic,
            stats=Stats.from_config(config.bias),
        )
        verdict = synthetic_bias_verdict(
            train_frame,
            synthetic,
            attrs,
            spec.target,
            spec.positive_label,
            config.bias,
            continuous_columns=spec.continuous_columns,
            categorical_columns=spec.categorical_columns,
            fairness=fairness,
        )
        # The pre-training metrics on the synthetic rows, beside the real data's: the
        # effect of the synthesizer (and of mitigation) on the released data.
        data_side = {
            "real": data_bias_report(
                train_frame, attrs, spec.target, spec.positive_label, config.bias
            ),
            "synthetic": data_bias_report(
                synthetic, attrs, spec.target, spec.positive_label, config.bias
            ),
        }
        synthetic_side = {
            (r.metric, r.attribute, tuple(r.groups)): r for r in data_side["synthetic"]
        }
        comparison: list[dict[str, Any]] = []
        for r in data_side["real"]:
            s = synthetic_side.get((r.metric, r.attribute, tuple(r.groups)))
            comparison.append(
                {
                    "metric": r.metric,
                    "attribute": r.attribute,
                    "groups": r.groups,
                    "real": r.value,
                    "real_interval": r.interval_text(),
                    "synthetic": float("nan") if s is None else s.value,
                    "synthetic_interval": "" if s is None else s.interval_text(),
                }
            )
        shares = group_stats_by_dataset(
            {"real": train_frame, "synthetic": synthetic}, attrs, spec.target, spec.positive_label
        )
        title = f"Synthetic-data bias check: {spec.name}" + (" (mitigated)" if mitigated else "")
        html_text = render_bias_html(verdict, shares, title=title)
        html_text = html_text.replace("</body>", _comparison_html(comparison) + "</body>")
        md_text = render_markdown(verdict, title=title)
        figures = {f"group_shares_{a}": fig for a, fig in bias_figures(shares).items()}
        record_verdict(verdict, out.bias, html_text, md_text, "synthetic_bias", figures)
        mlflow.log_dict(
            {"mitigated": mitigated, "rows": comparison}, "synthetic_bias/real_vs_synthetic.json"
        )
        for row in comparison:
            if row["metric"] == "DPL" and len(row["groups"]) == 1:
                key = re.sub(r"[^\w.\-/ :]", "_", f"{row['attribute']}_{row['groups'][0]}")
                mlflow.log_metrics(
                    {f"dpl_real_{key}": row["real"], f"dpl_synthetic_{key}": row["synthetic"]}
                )
        headline = {**result.metrics, "synthetic_bias_passed": float(verdict.passed)}
        log_parent(tracking_uri, run_id, headline, {"mitigated": str(mitigated)})
        tag_synthetic_gate(run_id, verdict)
    return result.metrics, verdict.passed


def _comparison_html(rows: list[dict[str, Any]]) -> str:
    import html as html_lib

    body = "".join(
        f"<tr><td>{html_lib.escape(r['metric'])}</td><td>{html_lib.escape(r['attribute'])}</td>"
        f"<td>{html_lib.escape(', '.join(map(str, r['groups'])))}</td>"
        f"<td class=num>{r['real']:.4f} {html_lib.escape(r.get('real_interval', ''))}</td>"
        f"<td class=num>{r['synthetic']:.4f} "
        f"{html_lib.escape(r.get('synthetic_interval', ''))}</td></tr>"
        for r in rows
    )
    return (
        "<h2>Pre-training metrics: real training data vs released synthetic data</h2>"
        "<p>With their confidence intervals in brackets.</p>"
        "<table><thead><tr><th>metric</th><th>attribute</th><th>groups</th><th>real</th>"
        f"<th>synthetic</th></tr></thead><tbody>{body}</tbody></table>"
    )
