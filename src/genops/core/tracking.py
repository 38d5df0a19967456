"""MLflow wiring: one parent run per pipeline run, one nested run per step, registration.

Every step receives the tracking URI and the parent run id as plain parameters, so the same
code logs to a local SQLite store (``make run``) and to the tracking server on the cluster.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

PIPELINE_TAGS = ("genops.pipeline", "genops.pipeline_version", "genops.git_commit")
STATUS_TAG = "genops.status"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where a local SQLite store keeps artifacts: a folder beside the database file.

    A tracking server (http) chooses its own artifact root; None leaves it to the server.
    """
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def ensure_experiment(tracking_uri: str, name: str) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        return str(
            client.create_experiment(name, artifact_location=artifact_root_for(tracking_uri))
        )
    # Created concurrently by another worker.
    found = client.get_experiment_by_name(name)
    assert found is not None
    return str(found.experiment_id)


def start_pipeline_run(
    tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]
) -> str:
    """Create the parent run (left RUNNING until the pipeline's last step ends it)."""
    experiment_id = ensure_experiment(tracking_uri, experiment)
    run = MlflowClient().create_run(
        experiment_id, run_name=run_name, tags={**tags, STATUS_TAG: "running"}
    )
    return str(run.info.run_id)


@contextlib.contextmanager
def step_run(tracking_uri: str, parent_run_id: str, step: str) -> Iterator[Any]:
    """A nested run for one pipeline step, inheriting the parent's pipeline tags.

    An exception inside marks the step FAILED and the parent's status tag 'failed'.
    """
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    tags = {
        k: v for k, v in parent.data.tags.items() if k.startswith("genops.") and k != STATUS_TAG
    }
    child = client.create_run(
        parent.info.experiment_id,
        run_name=step,
        tags={**tags, "mlflow.parentRunId": parent_run_id, "genops.step": step},
    )
    # the fluent API refuses to resume a run of another experiment than its active one
    mlflow.set_experiment(experiment_id=parent.info.experiment_id)
    try:
        with mlflow.start_run(run_id=child.info.run_id) as run:
            yield run
    except BaseException as exc:
        client.set_tag(parent_run_id, STATUS_TAG, "failed")
        client.set_tag(parent_run_id, "genops.failed_step", step)
        client.set_tag(parent_run_id, "genops.failure", str(exc)[:4000])
        raise


# Outcomes of a pipeline run that did its job: a model was registered, or a gate stopped it
# (the data bias gate under policy 'block', or the synthetic-data bias gate). Anything else
# (a step raised, or the run never reached an outcome) ends the MLflow run as FAILED.
GATE_OUTCOMES = ("succeeded", "blocked", "rejected", "rolled_back")


def finish_pipeline_run(tracking_uri: str, run_id: str) -> str:
    """End the parent run: FINISHED for a gate outcome or success, else FAILED."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    status = client.get_run(run_id).data.tags.get(STATUS_TAG, "running")
    final = "FINISHED" if status in GATE_OUTCOMES else "FAILED"
    if status == "running":
        client.set_tag(run_id, STATUS_TAG, "failed")
    client.set_terminated(run_id, status=final)
    return final


def log_parent(
    tracking_uri: str, run_id: str, metrics: dict[str, float], params: dict[str, Any]
) -> None:
    """Copy headline values onto the parent run, so the run list shows them."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    for key, value in params.items():
        client.log_param(run_id, key, value if isinstance(value, str) else json.dumps(value))


def register_model(
    tracking_uri: str,
    model_uri: str,
    name: str,
    tags: dict[str, str],
    aliases: tuple[str, ...] = ("challenger",),
) -> str:
    """Register a logged model version, tag it and give it the candidate alias."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name, tags=tags)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)
