"""The steps every workload's pipeline shares, as plain functions over file paths: open and
close the MLflow parent run, the tuning study (setup, worker, summarize), register, bless,
promote, deploy, smoke test and rollback, and the bookkeeping a workload's own steps use
(verdict artifacts and gate tags, trained-model records).

They read the resolved config of any workload (:func:`read_config`) and reach workload
behaviour only through :class:`genops.core.workload.Workload` (the tuning objective, the
smoke test). A KFP component calls exactly one of these with its artifacts' paths; tests call
them directly. Nothing here knows about KFP.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genops.core.config import (
    dump_config,
    load_raw_config,
    parse_config,
    read_config_artifact,
    yaml_error_message,
)
from genops.core.io import write_text_atomic
from genops.core.workload import RunConfig, get_workload


def read_config(path: str | Path) -> RunConfig:
    """Read the resolved config artifact of any workload (written by :func:`start`)."""
    return read_config_artifact(path)


def load_config_uri(uri: str) -> RunConfig:
    """A config from a local path or s3:// (an s3 config must use absolute source URIs)."""
    if uri.startswith("s3://"):
        from genops.core.io import read_bytes

        try:
            raw = yaml.safe_load(read_bytes(uri))
        except yaml.YAMLError as exc:  # name the URI, line and column
            raise ValueError(yaml_error_message(uri, exc)) from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{uri}: expected a mapping at the top level")
        return parse_config(raw, origin=uri)
    return parse_config(load_raw_config(uri), origin=uri)


# ---------------------------------------------------------------- start / finish


def start(
    config_uri: str,
    tracking_uri: str,
    pipeline_version: str,
    git_commit: str,
    config_out: str | Path,
) -> str:
    """Validate the config, write it resolved, open the MLflow parent run; returns its id."""
    from genops.core.tracking import announce, start_pipeline_run

    announce("start-run", "start")
    config = load_config_uri(config_uri)
    # what the config leaves to the data (tabular: unlisted columns), resolved once for the run
    config = get_workload(config.pipeline_name).resolve_config(config).config
    write_text_atomic(config_out, dump_config(config))
    import hashlib

    from genops.core.io import read_bytes

    config_sha256 = hashlib.sha256(read_bytes(config_uri)).hexdigest()  # the file as named
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
            "genops.config_sha256": config_sha256,
        },
    )
    from genops.core.process import signals_ignored, stop_guard, stop_reason
    from genops.core.tracking import announce, close_pipeline_run, failure_text, use_store

    try:
        with stop_guard():
            use_store(tracking_uri).log_text(run_id, dump_config(config), "config/run_config.yaml")
    except BaseException as exc:
        # the run exists but its first step failed: close it here, nobody else will
        stopped = stop_reason(exc) is not None
        with signals_ignored():
            close_pipeline_run(
                tracking_uri,
                run_id,
                "KILLED" if stopped else "FAILED",
                "start-run",
                failure_text(exc),
                outcome="interrupted" if stopped else "failed",
            )
        announce("start-run", "killed" if stopped else "failed", failure=failure_text(exc))
        raise
    return run_id


def finish(tracking_uri: str, run_id: str) -> str:
    """The exit handler: close the parent run (and any nested run a dead step left open)."""
    from genops.core.process import stop_guard
    from genops.core.tracking import announce, finish_pipeline_run

    announce("finish-run", "start")
    with stop_guard():
        final = finish_pipeline_run(tracking_uri, run_id)
    from genops.core.modelcard import publish

    try:  # the run's description, data set input, model card: never fail the exit handler
        publish(tracking_uri, run_id)
    except Exception as exc:
        print(f"warning: the run's description and model card were not written: {exc}")
    return final


# ---------------------------------------------------------------- gates (verdicts)


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

    write_text_atomic(out.verdict_json, verdict.to_json())
    write_text_atomic(out.html, html_text)
    write_text_atomic(out.markdown, md_text)
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

    from genops.core.tracking import STATUS_TAG
    from genops.core.verdict import failure_message, verdict_reasons

    mlflow.set_tags({"genops.data_bias_passed": str(verdict.passed), "genops.decision": decision})
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "genops.data_bias", "passed" if verdict.passed else "failed")
    client.set_tag(run_id, "genops.data_bias.reasons", verdict_reasons(verdict)[:4000])
    if decision == "stop":
        client.set_tag(run_id, STATUS_TAG, "blocked")
        client.set_tag(run_id, "genops.failure", failure_message(verdict)[:4000])
        client.set_tag(run_id, "genops.failed_step", "data-bias-check")


def tag_synthetic_gate(run_id: str, verdict: Any) -> None:
    """The generated-data gate's outcome on the parent run (failed: rejected at evaluate)."""
    import mlflow

    from genops.core.tracking import STATUS_TAG
    from genops.core.verdict import failure_message, verdict_reasons

    client = mlflow.MlflowClient()
    client.set_tag(run_id, "genops.synthetic_bias", "passed" if verdict.passed else "failed")
    client.set_tag(run_id, "genops.synthetic_bias.reasons", verdict_reasons(verdict)[:4000])
    if not verdict.passed:
        client.set_tag(run_id, STATUS_TAG, "rejected")
        client.set_tag(run_id, "genops.failure", failure_message(verdict)[:4000])
        client.set_tag(run_id, "genops.failed_step", "evaluate")


# ---------------------------------------------------------------- trained models


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
    write_text_atomic(model_dir / "genops_model.json", json.dumps(meta, indent=2))
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

    from genops.core.tracking import HEADLINE_TAG, step_run
    from genops.core.tuning.study import create_study, resolve_storage

    config = read_config(config_path)
    spec = config.tuning
    with step_run(tracking_uri, run_id, "tune") as run:
        mlflow.log_params(
            {
                "tuning_enabled": spec.enabled,
                "n_trials": spec.n_trials,
                "n_workers": spec.n_workers,
                "sampler": spec.sampler,
                "pruner": spec.pruner,
                "min_completed_trials": spec.min_completed_trials,
            }
        )
        mlflow.log_dict(spec.model_dump(mode="json"), "tuning/spec.json")
        if not spec.enabled:
            mlflow.set_tag(HEADLINE_TAG, "tuning off")
            return TuneSetup("", "", run.info.run_id, [0])
        storage = resolve_storage(spec, run_id)
        name = f"{config.dataset.name}-{run_id}"
        create_study(spec, storage, name)
        mlflow.log_params({"study_name": name, "storage": storage.split("@")[-1]})
        mlflow.set_tag(HEADLINE_TAG, f"{spec.n_trials} trials on {spec.n_workers} workers")
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
    workdir: str | Path | None = None,
) -> dict[str, int]:
    """Run one worker's share of trials, every trial a nested run of the tuning run.

    The trials run in a trial process this step supervises (genops.core.tuning.worker): a
    trial process that dies loses only its running trial (marked FAIL, logged as a FAIL
    trial run) and the worker goes on with the rest of its share, so one lost worker does not
    fail the pipeline. Returns the worker's counts: complete, pruned, failed, lost."""
    from genops.core.tracking import announce

    announce("tune-worker", "start")
    if not storage_url:
        return {"complete": 0, "pruned": 0, "failed": 0, "lost": 0}
    import tempfile

    from genops.core.tracking import announce, use_store
    from genops.core.tuning.worker import TrialRequest, supervise

    config = read_config(config_path)
    if config.tuning.n_workers > 1:
        # parallel workers share the cores: one torch thread each avoids oversubscription
        os.environ.setdefault("GENOPS_TORCH_THREADS", "1")
    request = TrialRequest(
        config_path=str(config_path),
        train_path=str(train_path),
        validation_path=str(validation_path),
        tracking_uri=tracking_uri,
        tuning_run_id=tuning_run_id,
        storage_url=storage_url,
        study_name=study_name,
        worker=worker,
        n_trials=config.tuning.trials_for_worker(worker),
        timeout_s=config.tuning.timeout_s,
        entry=f"{__name__}:{run_tune_trials.__name__}",
    )
    log_trial = trial_logger(tracking_uri, tuning_run_id, worker)

    def log_lost(number: int, params: dict[str, Any], reason: str) -> None:
        log_trial(number, params, "FAIL", {"error": reason, "lost": 1}, [])

    try:
        with tempfile.TemporaryDirectory(prefix="genops-tune-") as scratch:
            counts = supervise(config.tuning, request, Path(workdir or scratch), log_lost=log_lost)
    except BaseException as exc:
        from genops.core.tracking import failure_text, record_step_failure

        with contextlib.suppress(Exception):
            parent = use_store(tracking_uri).get_run(tuning_run_id).data.tags
            record_step_failure(
                tracking_uri,
                parent["mlflow.parentRunId"],
                "tune-worker",
                failure_text(exc),
                stopped=isinstance(exc, KeyboardInterrupt),
            )
        announce("tune-worker", "failed", failure=failure_text(exc))
        raise
    losses = counts.pop("losses")
    headline = (
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed"
    )
    if losses:
        headline += f"; {len(losses)} lost: {', '.join(losses)}"
    announce("tune-worker", "end", headline=headline)
    return counts


def run_tune_trials(request: Any) -> dict[str, int]:
    """The trial process's work (genops.core.tuning.worker): the workload's objective over
    ``request.n_trials`` trials of the shared study."""
    from genops.core.tuning.study import run_worker

    config = read_config(request.config_path)
    budget: dict[str, Any] = {"seed": config.model.seed}
    if config.tuning.trial_epochs is not None:
        budget["epochs"] = config.tuning.trial_epochs
    objective, build = get_workload(config.pipeline_name).tuning_objective(
        config, str(request.train_path), str(request.validation_path), budget
    )
    return run_worker(
        config.tuning,
        request.storage_url,
        request.study_name,
        request.worker,
        objective,
        build=build,
        log_trial=trial_logger(request.tracking_uri, request.tuning_run_id, request.worker),
        n_trials=request.n_trials,
        timeout=request.timeout_s,
    )


def trial_logger(tracking_uri: str, tuning_run_id: str, worker: int) -> Any:
    """A ``log_trial`` callback: every trial becomes a nested run of the tuning run."""
    from genops.core.tracking import use_store

    client = use_store(tracking_uri)
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
    """Best params over every completed trial (``{}`` when tuning is off) and the study plots.
    Fails the run (step ``tune``) only when fewer than ``tuning.min_completed_trials``
    trials completed; the tuning run is then FAILED and says why."""
    import matplotlib.pyplot as plt
    import mlflow

    from genops.core.process import stop_guard
    from genops.core.tracking import (
        HEADLINE_TAG,
        announce,
        failure_text,
        record_step_failure,
        use_store,
    )
    from genops.core.tuning.study import (
        dumps,
        require_completed,
        study_figures,
        summarize,
        trials_table,
    )

    announce("tune", "start")
    config = read_config(config_path)
    if not storage_url:
        write_text_atomic(params_out, "{}")
        announce("tune", "end", headline="tuning off: the model's own settings")
        return {}
    client = use_store(tracking_uri)
    mlflow.set_experiment(experiment_id=client.get_run(tuning_run_id).info.experiment_id)
    with stop_guard(), mlflow.start_run(run_id=tuning_run_id):
        try:
            summary = summarize(config.tuning, storage_url, study_name)
            mlflow.log_text(dumps(trials_table(storage_url, study_name)), "tuning/trials.json")
            mlflow.log_metrics(
                {f"trials_{state.lower()}": float(n) for state, n in summary.states.items()}
            )
            if summary.failures:
                mlflow.log_text("\n".join(summary.failures), "tuning/failures.txt")
            require_completed(config.tuning, summary)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                record_step_failure(
                    tracking_uri,
                    run_id,
                    "tune",
                    failure_text(exc),
                    isinstance(exc, KeyboardInterrupt),
                )
                mlflow.set_tag("genops.failure", failure_text(exc)[:4000])
            announce("tune", "failed", failure=failure_text(exc))
            raise
        write_text_atomic(params_out, json.dumps(summary.best_params))
        mlflow.log_dict(summary.best_params, "tuning/best_params.json")
        if summary.best_value is not None:
            mlflow.log_metric("best_objective", summary.best_value)
        for key, value in summary.best_params.items():
            mlflow.log_param(f"best_{key}", value)
        for name, fig in study_figures(storage_url, study_name).items():
            mlflow.log_figure(fig, f"tuning/{name}.png")
            plt.close(fig)
        headline = (
            f"best objective {summary.best_value:.4f} from {summary.completed} of "
            f"{summary.n_trials} trials"
            if summary.best_value is not None
            else f"no completed trial of {summary.n_trials}: the model's own settings"
        )
        if summary.failures:
            headline += f" ({len(summary.failures)} failed)"
        mlflow.set_tag(HEADLINE_TAG, headline)
    client.log_param(run_id, "tuned_params", json.dumps(summary.best_params)[:6000])
    announce("tune", "end", headline=headline)
    return summary.best_params


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

    from genops.core.tracking import STATUS_TAG, register_model, step_run

    config = read_config(config_path)
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
            run_id=run_id,  # the version's run: the pipeline run lists it
        )
        mlflow.log_params({"registered_model": config.model_name, "model_version": version})
        client = mlflow.MlflowClient()
        client.set_tag(run_id, "genops.registered_model", f"{config.model_name}/{version}")
        client.set_tag(run_id, STATUS_TAG, "succeeded")
        from genops.core.modelcard import write_card

        try:  # the card (blessing pending); a retry of this step would register twice
            write_card(tracking_uri, run_id)
        except Exception as exc:
            mlflow.set_tag("genops.model_card_error", str(exc)[:4000])
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

    from genops.core.aliases import champion_metrics
    from genops.core.blessing import bless as judge
    from genops.core.tracking import step_run

    config = read_config(config_path)
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
        write_text_atomic(verdict_json, verdict.to_json())
        write_text_atomic(verdict_markdown, verdict.to_markdown())
        mlflow.log_text(verdict.to_json(), "blessing/verdict.json")
        mlflow.log_text(verdict.to_markdown(), "blessing/verdict.md")
        mlflow.log_metric("blessed", float(verdict.blessed))
        client.set_model_version_tag(
            config.model_name, model_version, "genops.blessing", verdict.summary()[:4000]
        )
        client.set_tag(run_id, "genops.blessed", str(verdict.blessed).lower())
        client.set_tag(run_id, "genops.blessing.reasons", verdict.summary()[:4000])
    return verdict.blessed


def promote(config_path: str | Path, tracking_uri: str, run_id: str, model_version: str) -> str:
    """Move the ``champion`` alias to the blessed version; returns the one it replaced."""
    import mlflow

    from genops.core.aliases import promote as move_alias
    from genops.core.tracking import step_run

    config = read_config(config_path)
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

    from genops.core.tracking import step_run

    config = read_config(config_path)
    target = config.deploy.target
    uri = f"models:/{config.model_name}@champion"
    with step_run(tracking_uri, run_id, "deploy"):
        mlflow.log_params(
            {"deploy_target": target, "model_uri": uri, "model_version": model_version}
        )
        if target == "none":
            endpoint = ""
        elif target == "local":
            from genops.core.serving.deploy import DeployError, deploy_local

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


def kserve_settings(config: RunConfig, storage: str) -> dict[str, Any]:
    """The keyword arguments of :func:`genops.core.serving.kserve.render_inference_service`
    for ``config``'s model at ``storage`` (an ``s3://`` prefix): the deploy step's settings,
    then the workload's own (runtime, model format, arguments, autoscaling). The cluster
    contract test renders through this too."""
    ks = config.deploy.kserve
    settings: dict[str, Any] = {
        "name": config.model_name,
        "storage_uri": storage,
        "namespace": ks.namespace,
        "service_account": ks.service_account,
        "resources": {
            "requests": {"cpu": ks.cpu, "memory": ks.memory},
            "limits": {"cpu": ks.cpu, "memory": ks.memory},
        },
        "gpu": ks.gpu,
        "canary_traffic_percent": ks.canary_traffic_percent,
        "min_replicas": ks.min_replicas,
        "max_replicas": ks.max_replicas,
    }
    settings |= get_workload(config.pipeline_name).kserve_model(config, storage)
    return settings


def _deploy_kserve(config: RunConfig, model_version: str) -> str:
    import mlflow

    from genops.core.serving import kserve

    source = mlflow.MlflowClient().get_model_version_download_uri(config.model_name, model_version)
    ks = config.deploy.kserve
    storage = kserve.resolve_storage_uri(source, os.environ.get("MLFLOW_ARTIFACTS_DESTINATION"))
    manifest = kserve.render_inference_service(**kserve_settings(config, storage))
    mlflow.log_text(kserve.to_yaml(manifest), "deploy/inferenceservice.yaml")
    applied = kserve.apply(manifest, ks.namespace)
    try:
        ready = kserve.wait_ready(
            config.model_name, ks.namespace, int(applied["metadata"].get("generation", 1))
        )
    except TimeoutError as exc:
        return f"{FAILED_DEPLOY}{exc}"  # the smoke test fails and the champion rolls back
    # RawDeployment serves at the predictor Service (status.address.url), not at <name>
    return kserve.endpoint_url(ready)


def smoke_test(config_path: str | Path, tracking_uri: str, run_id: str, endpoint: str) -> bool:
    """Call the deployed endpoint and check the response schema."""
    import mlflow

    from genops.core.tracking import step_run

    config = read_config(config_path)
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
        result = get_workload(config.pipeline_name).smoke_test(config, endpoint)
        mlflow.log_params({"smoke_test": "passed" if result.passed else "failed"})
        mlflow.log_text(result.detail, "smoke_test/result.txt")
        mlflow.MlflowClient().set_tag(
            run_id, "genops.smoke_test", "passed" if result.passed else f"failed: {result.detail}"
        )
    return result.passed


def rollback(config_path: str | Path, tracking_uri: str, run_id: str) -> str:
    """Move ``champion`` back after a failed smoke test; returns the restored version."""
    import mlflow

    from genops.core.aliases import RegistryError
    from genops.core.aliases import rollback as move_back
    from genops.core.tracking import STATUS_TAG, step_run

    config = read_config(config_path)
    with step_run(tracking_uri, run_id, "rollback"):
        client = mlflow.MlflowClient()
        try:
            move = move_back(config.model_name)
            restored, note = move.to_version, move.describe()
        except RegistryError as exc:
            # The first champion has nothing to go back to: remove the alias instead.
            from genops.core.aliases import retire_champion  # tagged: never restored

            retire_champion(config.model_name)
            restored, note = "", f"{exc}; alias removed"
        if config.deploy.target == "local":
            # the server loaded the failed version: serve the restored champion, or nothing
            from genops.core.serving.deploy import DeployError, deploy_local, stop_local

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
