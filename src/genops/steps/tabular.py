"""The tabular-synth pipeline's steps, and the steps both pipelines share, as plain
functions over file paths.

Shared (they read either pipeline's config, :func:`read_any_config`): start, finish, the
tuning study (setup, worker, summarize; the worker picks the tabular or the image objective),
register, bless, promote, deploy, smoke test and rollback. Tabular only: prepare, the data
bias check, train and evaluate (the image pipeline's are in :mod:`genops.steps.image`).

A KFP component calls exactly one of these with its artifacts' paths; tests call them
directly. Nothing here knows about KFP.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genops.config import (
    AnyRunConfig,
    RunConfig,
    dump_config,
    load_raw_config,
    parse_any_config,
    parse_config,
)

PIPELINE_NAME = "tabular-synth"


def _write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_run_config(path: str | Path) -> RunConfig:
    """Read the resolved (tabular) config artifact written by ``start``."""
    return parse_config(yaml.safe_load(Path(path).read_text()), origin=str(path))


def read_any_config(path: str | Path) -> AnyRunConfig:
    """Read the resolved config artifact of either pipeline (the shared steps use this)."""
    return parse_any_config(yaml.safe_load(Path(path).read_text()), origin=str(path))


def load_config_uri(uri: str) -> AnyRunConfig:
    """A config from a local path or s3:// (an s3 config must use absolute source URIs)."""
    if uri.startswith("s3://"):
        from genops.data.io import read_bytes

        raw = yaml.safe_load(read_bytes(uri))
        if not isinstance(raw, dict):
            raise ValueError(f"{uri}: expected a mapping at the top level")
        return parse_any_config(raw, origin=uri)
    return parse_any_config(load_raw_config(uri), origin=uri)


# ---------------------------------------------------------------- start / finish


def start(
    config_uri: str,
    tracking_uri: str,
    pipeline_version: str,
    git_commit: str,
    config_out: str | Path,
) -> str:
    """Validate the config, write it resolved, open the MLflow parent run; returns its id."""
    from genops.registry.tracking import start_pipeline_run

    config = load_config_uri(config_uri)
    _write_text(config_out, dump_config(config))
    run_id = start_pipeline_run(
        tracking_uri,
        config.experiment_name,
        run_name=f"{config.pipeline_name}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            "genops.pipeline": config.pipeline_name,
            "genops.pipeline_version": pipeline_version,
            "genops.git_commit": git_commit,
            "genops.dataset": config.dataset.name,
            "genops.config_uri": config_uri,
        },
    )
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.MlflowClient().log_text(run_id, dump_config(config), "config/run_config.yaml")
    return run_id


def finish(tracking_uri: str, run_id: str) -> str:
    from genops.registry.tracking import finish_pipeline_run

    return finish_pipeline_run(tracking_uri, run_id)


# ---------------------------------------------------------------- prepare


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

    from genops.data import DataValidationError, write_parquet
    from genops.data.prepare import prepare as prepare_data
    from genops.data.prepare import profile_html
    from genops.registry.tracking import step_run

    config = read_run_config(config_path)
    spec = config.dataset
    with step_run(tracking_uri, run_id, "prepare"):
        try:
            data = prepare_data(spec)
        except DataValidationError as exc:
            _write_text(out.validation_html, exc.report.to_html())
            mlflow.log_text(exc.report.to_html(), "data_validation/report.html")
            mlflow.log_dict(exc.report.to_dict(), "data_validation/report.json")
            raise
        _write_text(out.validation_html, data.report.to_html())
        _write_text(out.profile_html, profile_html(spec.name, data.profile))
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
    return {"dataset_hash": data.dataset_hash, **rows}


# ---------------------------------------------------------------- data bias gate


@dataclass
class ReportOutputs:
    verdict_json: str
    html: str
    markdown: str


def record_verdict(
    verdict: Any,
    out: ReportOutputs,
    html_text: str,
    md_text: str,
    folder: str,
    figures: dict[str, Any],
) -> None:
    """Write a bias/representation verdict and its reports to the step's outputs, and log
    them with their figures (closed after) to the active MLflow run under ``folder``."""
    import matplotlib.pyplot as plt
    import mlflow

    _write_text(out.verdict_json, verdict.to_json())
    _write_text(out.html, html_text)
    _write_text(out.markdown, md_text)
    mlflow.log_text(verdict.to_json(), f"{folder}/verdict.json")
    mlflow.log_text(html_text, f"{folder}/report.html")
    mlflow.log_text(md_text, f"{folder}/report.md")
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"{folder}/{name}.png")
        plt.close(fig)
    mlflow.log_metrics(
        {
            f"{folder}_passed": float(verdict.passed),
            f"{folder}_failures": float(len(verdict.failures)),
        }
    )


def tag_data_gate(run_id: str, verdict: Any, decision: str) -> None:
    """The data gate's outcome on the step run and the parent run (``stop``: blocked)."""
    import mlflow

    from genops.bias import failure_message
    from genops.registry.tracking import STATUS_TAG

    mlflow.set_tags({"genops.data_bias_passed": str(verdict.passed), "genops.decision": decision})
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "genops.data_bias", "passed" if verdict.passed else "failed")
    if decision == "stop":
        client.set_tag(run_id, STATUS_TAG, "blocked")
        client.set_tag(run_id, "genops.failure", failure_message(verdict)[:4000])
        client.set_tag(run_id, "genops.failed_step", "data-bias-check")


def tag_synthetic_gate(run_id: str, verdict: Any) -> None:
    """The generated-data gate's outcome on the parent run (failed: rejected at evaluate)."""
    import mlflow

    from genops.bias import failure_message
    from genops.registry.tracking import STATUS_TAG

    client = mlflow.MlflowClient()
    client.set_tag(run_id, "genops.synthetic_bias", "passed" if verdict.passed else "failed")
    if not verdict.passed:
        client.set_tag(run_id, STATUS_TAG, "rejected")
        client.set_tag(run_id, "genops.failure", failure_message(verdict)[:4000])
        client.set_tag(run_id, "genops.failed_step", "evaluate")


def data_bias_check(
    config_path: str | Path,
    train_path: str | Path,
    tracking_uri: str,
    run_id: str,
    out: ReportOutputs,
) -> str:
    """The pre-training bias gate; returns the decision: continue, stop or mitigate."""

    from genops.bias import (
        bias_figures,
        data_bias_verdict,
        decide,
        group_stats_by_dataset,
        render_html,
        render_markdown,
    )
    from genops.data import read_parquet
    from genops.registry.tracking import step_run

    config = read_run_config(config_path)
    spec = config.dataset
    frame = read_parquet(train_path, spec)
    with step_run(tracking_uri, run_id, "data-bias-check"):
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


# ---------------------------------------------------------------- train


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
        from genops.models.ctgan import CTGANParams, CTGANSynthesizer

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
    from genops.models import TVAEParams, TVAESynthesizer

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
    for key in ("loss", "reconstruction", "kld"):
        if history and key in history[0]:
            ax.plot(epochs, [h[key] for h in history], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Synthesizer training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def log_model_params(effective: Any, tuned: dict[str, Any]) -> None:
    """The model's effective hyper-parameters and the tuned ones it took (train steps)."""
    import mlflow

    mlflow.log_params({f"model_{k}": v for k, v in effective.model_dump(mode="json").items()})
    mlflow.log_dict(tuned, "tuning/params_used.json")
    mlflow.set_tag("genops.tuned", str(bool(tuned)).lower())


def record_trained_model(
    model_dir: Path, info: Any, run: Any, summary: dict[str, float], **extra: str
) -> dict[str, Any]:
    """Log the training summary and write ``genops_model.json`` beside the model: the
    logged pyfunc's URI and the train run register reads."""
    import mlflow

    mlflow.log_metrics(summary)
    meta = {"model_uri": info.model_uri, "train_run_id": run.info.run_id, **extra, **summary}
    _write_text(model_dir / "genops_model.json", json.dumps(meta, indent=2))
    return meta


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

    from genops.data import read_parquet
    from genops.registry.tracking import step_run
    from genops.serving.pyfunc import log_synthesizer

    config = read_run_config(config_path)
    frame = read_parquet(train_path, config.dataset)
    tuned: dict[str, Any] = json.loads(Path(params_path).read_text()) if params_path else {}
    synthesizer = build_synthesizer(config, tuned)
    effective = config.model.model_validate({**config.model.model_dump(), **tuned})
    model_dir = Path(model_dir)
    with step_run(tracking_uri, run_id, "train") as run:
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


# ---------------------------------------------------------------- tune


@dataclass
class TuneSetup:
    storage_url: str
    study_name: str
    tuning_run_id: str
    workers: list[int]


def tune_setup(config_path: str | Path, tracking_uri: str, run_id: str) -> TuneSetup:
    """Create the shared study and the tuning run; one worker index per parallel worker.

    With tuning disabled there is one no-op worker (the pipeline's shape does not change)."""
    import mlflow

    from genops.registry.tracking import step_run
    from genops.tuning.study import create_study, resolve_storage

    config = read_any_config(config_path)
    spec = config.tuning
    with step_run(tracking_uri, run_id, "tune") as run:
        mlflow.log_params(
            {
                "tuning_enabled": spec.enabled,
                "n_trials": spec.n_trials,
                "n_workers": spec.n_workers,
                "sampler": spec.sampler,
                "pruner": spec.pruner,
            }
        )
        mlflow.log_dict(spec.model_dump(mode="json"), "tuning/spec.json")
        if not spec.enabled:
            return TuneSetup("", "", run.info.run_id, [0])
        storage = resolve_storage(spec, run_id)
        name = f"{config.dataset.name}-{run_id}"
        create_study(spec, storage, name)
        mlflow.log_params({"study_name": name, "storage": storage.split("@")[-1]})
    return TuneSetup(storage, name, run.info.run_id, list(range(spec.n_workers)))


def tune_worker(
    config_path: str | Path,
    train_path: str | Path,
    validation_path: str | Path,
    tracking_uri: str,
    tuning_run_id: str,
    storage_url: str,
    study_name: str,
    worker: int,
) -> dict[str, int]:
    """Run one worker's share of trials; every trial is a nested run of the tuning run."""
    if not storage_url:
        return {"complete": 0, "pruned": 0, "failed": 0}
    from genops.tuning.study import ObjectiveData, run_worker

    config = read_any_config(config_path)
    budget: dict[str, Any] = {"seed": config.model.seed}
    if config.tuning.trial_epochs is not None:
        budget["epochs"] = config.tuning.trial_epochs
    if config.tuning.n_workers > 1:
        # parallel workers share the cores: one torch thread each avoids oversubscription
        os.environ.setdefault("GENOPS_TORCH_THREADS", "1")
    objective: Any
    if isinstance(config, RunConfig):
        from genops.data import read_parquet

        spec = config.dataset
        objective = ObjectiveData(
            train=read_parquet(train_path, spec),
            validation=read_parquet(validation_path, spec),
            continuous=spec.continuous_columns,
            categorical=spec.categorical_columns,
            target=spec.target,
            positive_label=spec.positive_label,
        )
        tabular_config = config

        def build(params: dict[str, Any]) -> Any:
            return build_synthesizer(tabular_config, {**budget, **params})

    else:
        from genops.steps import image

        objective, build = image.tuning_objective(config, train_path, validation_path, budget)
    return run_worker(
        config.tuning,
        storage_url,
        study_name,
        worker,
        objective,
        build=build,
        log_trial=trial_logger(tracking_uri, tuning_run_id, worker),
    )


def trial_logger(tracking_uri: str, tuning_run_id: str, worker: int) -> Any:
    """A ``log_trial`` callback: every trial becomes a nested run of the tuning run."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    tuning_run = client.get_run(tuning_run_id)

    def log_trial(
        number: int,
        params: dict[str, Any],
        state: str,
        values: dict[str, Any],
        history: list[dict[str, float]],
    ) -> None:
        trial_run = client.create_run(
            tuning_run.info.experiment_id,
            run_name=f"trial-{number}",
            tags={
                "mlflow.parentRunId": tuning_run_id,
                "genops.step": "tune-trial",
                "genops.trial_state": state,
                "genops.worker": str(worker),
            },
        )
        rid = trial_run.info.run_id
        for key, value in params.items():
            client.log_param(rid, key, value)
        for point in history:
            for key, value in point.items():
                if key != "epoch":
                    client.log_metric(rid, f"intermediate_{key}", value, step=int(point["epoch"]))
        for key, value in values.items():
            if isinstance(value, float | int):
                client.log_metric(rid, key, float(value))
            else:
                client.set_tag(rid, f"genops.{key}", str(value)[:4000])
        client.set_terminated(
            rid,
            status="KILLED" if state == "PRUNED" else ("FAILED" if state == "FAIL" else "FINISHED"),
        )

    return log_trial


def tune_summarize(
    config_path: str | Path,
    tracking_uri: str,
    run_id: str,
    tuning_run_id: str,
    storage_url: str,
    study_name: str,
    params_out: str | Path,
) -> dict[str, Any]:
    """Best params (``{}`` when tuning is off or every trial failed) and the study plots."""
    import matplotlib.pyplot as plt
    import mlflow

    from genops.tuning.study import dumps, study_figures, summarize, trials_table

    config = read_any_config(config_path)
    if not storage_url:
        _write_text(params_out, "{}")
        return {}
    summary = summarize(config.tuning, storage_url, study_name)
    _write_text(params_out, json.dumps(summary.best_params))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(
        experiment_id=mlflow.MlflowClient().get_run(tuning_run_id).info.experiment_id
    )
    with mlflow.start_run(run_id=tuning_run_id):
        mlflow.log_dict(summary.best_params, "tuning/best_params.json")
        mlflow.log_text(dumps(trials_table(storage_url, study_name)), "tuning/trials.json")
        mlflow.log_metrics(
            {f"trials_{state.lower()}": float(n) for state, n in summary.states.items()}
        )
        if summary.best_value is not None:
            mlflow.log_metric("best_objective", summary.best_value)
        for key, value in summary.best_params.items():
            mlflow.log_param(f"best_{key}", value)
        for name, fig in study_figures(storage_url, study_name).items():
            mlflow.log_figure(fig, f"tuning/{name}.png")
            plt.close(fig)
    mlflow.MlflowClient().log_param(run_id, "tuned_params", json.dumps(summary.best_params)[:6000])
    return summary.best_params


# ---------------------------------------------------------------- evaluate


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

    from genops.bias import (
        bias_figures,
        data_bias_report,
        downstream_fairness,
        group_stats_by_dataset,
        mitigation_condition_frame,
        render_markdown,
        synthetic_bias_verdict,
    )
    from genops.bias import (
        render_html as render_bias_html,
    )
    from genops.data import read_parquet, write_parquet
    from genops.evaluation import evaluate as score
    from genops.evaluation import render_html
    from genops.models import load_synthesizer
    from genops.registry.tracking import log_parent, step_run

    config = read_run_config(config_path)
    spec = config.dataset
    attrs = spec.sensitive_attributes
    train_frame = read_parquet(train_path, spec)
    holdout = read_parquet(holdout_path, spec)
    synthesizer = load_synthesizer(Path(model_dir) / "synthesizer")
    n = config.evaluation.synthetic_rows or len(train_frame)
    mitigated = bias_decision == "mitigate"
    with step_run(tracking_uri, run_id, "evaluate"):
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
        _write_text(out.report_html, report)
        _write_text(out.evaluation_json, json.dumps(result.to_dict(), indent=2))
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
        synthetic_values = {
            (r.metric, r.attribute, tuple(r.groups)): r.value for r in data_side["synthetic"]
        }
        comparison: list[dict[str, Any]] = [
            {
                "metric": r.metric,
                "attribute": r.attribute,
                "groups": r.groups,
                "real": r.value,
                "synthetic": synthetic_values.get(
                    (r.metric, r.attribute, tuple(r.groups)), float("nan")
                ),
            }
            for r in data_side["real"]
        ]
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
        f"<td class=num>{r['real']:.4f}</td><td class=num>{r['synthetic']:.4f}</td></tr>"
        for r in rows
    )
    return (
        "<h2>Pre-training metrics: real training data vs released synthetic data</h2>"
        "<table><thead><tr><th>metric</th><th>attribute</th><th>groups</th><th>real</th>"
        f"<th>synthetic</th></tr></thead><tbody>{body}</tbody></table>"
    )


# ---------------------------------------------------------------- register


def register(
    config_path: str | Path,
    model_dir: str | Path,
    tracking_uri: str,
    run_id: str,
    dataset_hash: str,
    pipeline_version: str,
    git_commit: str,
) -> str:
    """Register the trained model under the config's model name (``<dataset>-synthesizer``,
    ``<dataset>-diffusion``); returns the version."""
    import mlflow

    from genops.registry.tracking import STATUS_TAG, register_model, step_run

    config = read_any_config(config_path)
    meta = json.loads((Path(model_dir) / "genops_model.json").read_text())
    with step_run(tracking_uri, run_id, "register"):
        version = register_model(
            tracking_uri,
            meta["model_uri"],
            config.model_name,
            tags={
                "genops.pipeline": config.pipeline_name,
                "genops.pipeline_version": pipeline_version,
                "genops.git_commit": git_commit,
                "genops.dataset_hash": dataset_hash,
                "genops.pipeline_run_id": run_id,
                "genops.train_run_id": meta["train_run_id"],
            },
        )
        mlflow.log_params({"registered_model": config.model_name, "model_version": version})
        client = mlflow.MlflowClient()
        client.set_tag(run_id, "genops.registered_model", f"{config.model_name}/{version}")
        client.set_tag(run_id, STATUS_TAG, "succeeded")
    return version


# ---------------------------------------------------------------- bless / promote / deploy


def bless(
    config_path: str | Path,
    evaluation_path: str | Path,
    tracking_uri: str,
    run_id: str,
    model_version: str,
    verdict_json: str | Path,
    verdict_markdown: str | Path,
) -> bool:
    """Thresholds and no regression against the current champion; tags the version."""
    import mlflow

    from genops.evaluation.blessing import bless as judge
    from genops.registry.aliases import champion_metrics
    from genops.registry.tracking import step_run

    config = read_any_config(config_path)
    metrics = json.loads(Path(evaluation_path).read_text())["metrics"]
    with step_run(tracking_uri, run_id, "bless"):
        client = mlflow.MlflowClient()
        parent_tags = client.get_run(run_id).data.tags
        champion_version, champion = champion_metrics(config.model_name)
        verdict = judge(
            metrics,
            config.blessing,
            synthetic_bias_passed=parent_tags.get("genops.synthetic_bias") == "passed",
            data_bias_passed=parent_tags.get("genops.data_bias") == "passed",
            champion_metrics=champion,
            champion_version=champion_version,
        )
        _write_text(verdict_json, verdict.to_json())
        _write_text(verdict_markdown, verdict.to_markdown())
        mlflow.log_text(verdict.to_json(), "blessing/verdict.json")
        mlflow.log_text(verdict.to_markdown(), "blessing/verdict.md")
        mlflow.log_metric("blessed", float(verdict.blessed))
        client.set_model_version_tag(
            config.model_name, model_version, "genops.blessing", verdict.summary()[:4000]
        )
        client.set_tag(run_id, "genops.blessed", str(verdict.blessed).lower())
    return verdict.blessed


def promote(config_path: str | Path, tracking_uri: str, run_id: str, model_version: str) -> str:
    """Move the ``champion`` alias to the blessed version; returns the one it replaced."""
    import mlflow

    from genops.registry.aliases import promote as move_alias
    from genops.registry.tracking import step_run

    config = read_any_config(config_path)
    with step_run(tracking_uri, run_id, "promote"):
        move = move_alias(config.model_name, model_version)
        mlflow.log_params(
            {"champion_from": move.from_version or "none", "champion_to": move.to_version}
        )
        mlflow.MlflowClient().set_tag(run_id, "genops.champion", move.describe())
    return move.from_version or ""


FAILED_DEPLOY = "failed: "


def deploy(config_path: str | Path, tracking_uri: str, run_id: str, model_version: str) -> str:
    """Deploy ``models:/<name>@champion`` to the configured target; returns the endpoint
    URL ('' for target none, the manifest's name for kserve outside a cluster)."""
    import mlflow

    from genops.registry.tracking import step_run

    config = read_any_config(config_path)
    target = config.deploy.target
    uri = f"models:/{config.model_name}@champion"
    with step_run(tracking_uri, run_id, "deploy"):
        mlflow.log_params(
            {"deploy_target": target, "model_uri": uri, "model_version": model_version}
        )
        if target == "none":
            endpoint = ""
        elif target == "local":
            from genops.serving.deploy import DeployError, deploy_local

            try:
                endpoint = deploy_local(
                    uri,
                    tracking_uri,
                    host=config.deploy.host,
                    port=config.deploy.port,
                    max_rows=config.deploy.max_rows,
                )
            except DeployError as exc:
                # the champion alias has moved already: let the smoke test fail and roll back
                endpoint = f"{FAILED_DEPLOY}{exc}"
        else:
            endpoint = _deploy_kserve(config, model_version)
        mlflow.MlflowClient().set_tag(run_id, "genops.endpoint", endpoint or "none")
    return endpoint


def _deploy_kserve(config: AnyRunConfig, model_version: str) -> str:
    import mlflow

    from genops.serving import kserve

    source = mlflow.MlflowClient().get_model_version_download_uri(config.model_name, model_version)
    ks = config.deploy.kserve
    manifest = kserve.render_inference_service(
        name=config.model_name,
        storage_uri=source,
        namespace=ks.namespace,
        service_account=ks.service_account,
        resources={
            "requests": {"cpu": ks.cpu, "memory": ks.memory},
            "limits": {"cpu": ks.cpu, "memory": ks.memory},
        },
        gpu=ks.gpu,
        canary_traffic_percent=ks.canary_traffic_percent,
        min_replicas=ks.min_replicas,
        max_replicas=ks.max_replicas,
    )
    mlflow.log_text(kserve.to_yaml(manifest), "deploy/inferenceservice.yaml")
    applied = kserve.apply(manifest, ks.namespace)
    try:
        kserve.wait_ready(
            config.model_name, ks.namespace, int(applied["metadata"].get("generation", 1))
        )
    except TimeoutError as exc:
        return f"{FAILED_DEPLOY}{exc}"  # the smoke test fails and the champion rolls back
    return f"http://{config.model_name}.{ks.namespace}.svc.cluster.local"


def smoke_test(config_path: str | Path, tracking_uri: str, run_id: str, endpoint: str) -> bool:
    """Call the deployed endpoint and check the response schema."""
    import mlflow

    from genops.registry.tracking import step_run
    from genops.serving.deploy import smoke_test as check

    config = read_any_config(config_path)
    with step_run(tracking_uri, run_id, "smoke-test"):
        if not endpoint:
            mlflow.log_param("smoke_test", "skipped: nothing deployed")
            return True
        if endpoint.startswith(FAILED_DEPLOY):
            detail = f"deployment {endpoint}"
            mlflow.log_params({"smoke_test": "failed"})
            mlflow.log_text(detail, "smoke_test/result.txt")
            mlflow.MlflowClient().set_tag(run_id, "genops.smoke_test", detail[:4000])
            return False
        if not isinstance(config, RunConfig):
            from genops.steps.image import smoke_check

            result = smoke_check(config, endpoint)
        elif config.deploy.target == "kserve":
            from genops.serving.deploy import smoke_test_v2

            result = smoke_test_v2(
                endpoint,
                config.model_name,
                list(config.dataset.columns),
                rows=config.deploy.smoke_rows,
            )
        else:
            spec = config.dataset
            categories = {
                name: col.allowed for name, col in spec.columns.items() if col.allowed is not None
            }
            result = check(endpoint, list(spec.columns), categories, rows=config.deploy.smoke_rows)
        mlflow.log_params({"smoke_test": "passed" if result.passed else "failed"})
        mlflow.log_text(result.detail, "smoke_test/result.txt")
        mlflow.MlflowClient().set_tag(
            run_id, "genops.smoke_test", "passed" if result.passed else f"failed: {result.detail}"
        )
    return result.passed


def rollback(config_path: str | Path, tracking_uri: str, run_id: str) -> str:
    """Move ``champion`` back after a failed smoke test; returns the restored version."""
    import mlflow

    from genops.registry.aliases import RegistryError
    from genops.registry.aliases import rollback as move_back
    from genops.registry.tracking import STATUS_TAG, step_run

    config = read_any_config(config_path)
    with step_run(tracking_uri, run_id, "rollback"):
        client = mlflow.MlflowClient()
        try:
            move = move_back(config.model_name)
            restored, note = move.to_version, move.describe()
        except RegistryError as exc:
            # The first champion has nothing to go back to: remove the alias instead.
            client.delete_registered_model_alias(config.model_name, "champion")
            restored, note = "", f"{exc}; alias removed"
        if config.deploy.target == "local":
            # the server loaded the failed version: serve the restored champion, or nothing
            from genops.serving.deploy import DeployError, deploy_local, stop_local

            stop_local(config.deploy.port)
            if restored:
                try:
                    deploy_local(
                        f"models:/{config.model_name}@champion",
                        tracking_uri,
                        host=config.deploy.host,
                        port=config.deploy.port,
                        max_rows=config.deploy.max_rows,
                    )
                    note += "; local server redeployed"
                except DeployError as exc:
                    note += f"; redeploy failed: {exc}"
        mlflow.log_param("rollback", note[:500])
        client.set_tag(run_id, "genops.rollback", note)
        client.set_tag(run_id, STATUS_TAG, "rolled_back")
    return restored
