"""MLflow wiring: one parent run per pipeline run, one nested run per step, registration, and
the record of how every run ended.

Every step receives the tracking URI and the parent run id as plain parameters, so the same
code logs to a local SQLite store (``make run``) and to the tracking server on the cluster.

A run always ends in a final state with its reason:

- a step that raises or is stopped closes its nested run (FAILED, or KILLED when stopped)
  and tags the parent with ``genops.failed_step`` and ``genops.failure`` (:func:`step_run`);
- the exit handler (:func:`finish_pipeline_run`) closes nested runs whose process died
  without a word and names that step;
- ``genops run`` closes the run itself when it is interrupted (:func:`close_pipeline_run`),
  and a run whose driver process is gone is found and closed later
  (:func:`reconcile_runs`, ``genops runs reconcile``).

A local SQLite store is created by the first process that touches it, under a file lock
every process takes (:func:`use_store`), so two first runs at once do not both run its schema
migrations.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from genops.core import process

PIPELINE_TAGS = ("genops.pipeline", "genops.pipeline_version", "genops.git_commit")
STATUS_TAG = "genops.status"
FAILED_STEP_TAG = "genops.failed_step"
FAILURE_TAG = "genops.failure"
HEADLINE_TAG = "genops.headline"
# the process that drives a local run (see genops.core.process), as tags of the parent run
DRIVER_TAGS = {
    "pid": "genops.driver_pid",
    "host": "genops.driver_host",
    "started": "genops.driver_started",
    "launch": "genops.launch_id",
}
# tags of the parent a nested run does not inherit
NOT_INHERITED = {STATUS_TAG, FAILED_STEP_TAG, FAILURE_TAG, HEADLINE_TAG, *DRIVER_TAGS.values()}
# a line a step prints so that `genops run` can show it (pipelines/local.py reads it)
STEP_MARKER = "::genops-step::"


# ---------------------------------------------------------------- the store


def _sqlite_file(tracking_uri: str) -> Path | None:
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///"))
    return None


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock (``fcntl.flock`` on ``<db>.lock``) shared by every process that uses
    the same local SQLite store; a no-op for a tracking server."""
    db = _sqlite_file(tracking_uri)
    if db is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_READY: set[str] = set()


def use_store(tracking_uri: str) -> MlflowClient:
    """Make ``tracking_uri`` current and return a client. The first use in a process of a
    local SQLite store opens it under :func:`store_lock`, so the schema of a fresh store is
    created (and migrated) by exactly one process while the others wait, then find it ready.
    """
    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri not in _READY:
        if _sqlite_file(tracking_uri) is not None:
            with store_lock(tracking_uri):
                client = MlflowClient(tracking_uri)
                client.search_experiments(max_results=1)  # tracking tables
                client.search_registered_models(max_results=1)  # registry tables
        _READY.add(tracking_uri)
    return MlflowClient(tracking_uri)


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where a local SQLite store keeps artifacts: a folder beside the database file.

    A tracking server (http) chooses its own artifact root; None leaves it to the server.
    """
    db = _sqlite_file(tracking_uri)
    if db is not None:
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


# an experiment of model-training runs: MLflow 3's UI shows it as "Machine learning" (runs),
# not as a GenAI app (traces); see genops.core.modelcard
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(tracking_uri: str, name: str) -> str:
    client = use_store(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in EXPERIMENT_TAGS.items():  # one created before the tag was set
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return str(experiment.experiment_id)
    with store_lock(tracking_uri):  # one creator per store; the others find it
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        with contextlib.suppress(mlflow.exceptions.MlflowException):
            return str(
                client.create_experiment(
                    name, artifact_location=artifact_root_for(tracking_uri), tags=EXPERIMENT_TAGS
                )
            )
    # Created concurrently by a process on another store lock (a tracking server).
    found = client.get_experiment_by_name(name)
    assert found is not None
    return str(found.experiment_id)


# ---------------------------------------------------------------- runs


_FROM_ENVIRONMENT: Any = object()


def start_pipeline_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    driver: tuple[process.ProcessIdentity, str] | None = _FROM_ENVIRONMENT,
) -> str:
    """Create the parent run (left RUNNING until the pipeline's last step ends it). Started by
    ``genops run``, it also records the driver process and its launch id (``driver``; by
    default what the driver put in the environment), so a later process can tell whether
    the run's driver is gone (:func:`reconcile_runs`)."""
    experiment_id = ensure_experiment(tracking_uri, experiment)
    driver_tags: dict[str, str] = {}
    found = process.driver_from_environment() if driver is _FROM_ENVIRONMENT else driver
    if found is not None:
        who, launch = found
        driver_tags = {
            DRIVER_TAGS["pid"]: str(who.pid),
            DRIVER_TAGS["host"]: who.host,
            DRIVER_TAGS["started"]: who.started,
            DRIVER_TAGS["launch"]: launch,
        }
    run = use_store(tracking_uri).create_run(
        experiment_id, run_name=run_name, tags={**tags, **driver_tags, STATUS_TAG: "running"}
    )
    return str(run.info.run_id)


def failure_text(exc: BaseException) -> str:
    """The message a run records for ``exc``: the stop reason for a stop; the message itself
    for genops' own errors and ValueErrors (bad data says file, column and rule); the type
    and message for the rest (``KeyError: 'x'`` says more than ``'x'``)."""
    reason = process.stop_reason(exc)
    if reason is not None:
        return reason
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    if type(exc).__module__ != "builtins" or type(exc) in (ValueError, RuntimeError):
        return text
    return f"{type(exc).__name__}: {text}"


def announce(step: str, event: str, **fields: Any) -> None:
    """One line on stdout for ``genops run``: a step started or ended (pipelines/local.py
    shows it; the full log keeps it). A start says how long the task's process had existed
    by then (``startup_s``: its start-up), unless the caller measured it earlier."""
    if event == "start" and "startup_s" not in fields:
        fields["startup_s"] = process.seconds_since_start()
    payload = {"step": step, "event": event, **fields}
    with contextlib.suppress(Exception):
        sys.stdout.write(f"{STEP_MARKER} {json.dumps(payload, default=str)}\n")
        sys.stdout.flush()


def record_step_failure(
    tracking_uri: str, parent_run_id: str, step: str, failure: str, stopped: bool = False
) -> None:
    """Tag the parent run with the step that failed (or was stopped) and why."""
    client = use_store(tracking_uri)
    client.set_tag(parent_run_id, STATUS_TAG, "interrupted" if stopped else "failed")
    client.set_tag(parent_run_id, FAILED_STEP_TAG, step)
    client.set_tag(parent_run_id, FAILURE_TAG, failure[:4000])


def _headline_fields(client: MlflowClient, run_id: str) -> dict[str, Any]:
    with contextlib.suppress(Exception):
        data = client.get_run(run_id).data
        metrics = {k: v for k, v in sorted(data.metrics.items())[:200]}
        return {"metrics": metrics, "headline": data.tags.get(HEADLINE_TAG, "")}
    return {}


@contextlib.contextmanager
def step_run(tracking_uri: str, parent_run_id: str, step: str) -> Iterator[Any]:
    """A nested run for one pipeline step, inheriting the parent's pipeline tags.

    An exception inside marks the step FAILED, and a stop (SIGINT, SIGTERM, its driver gone)
    marks it KILLED; either way the parent is tagged with the step and the reason. The step's
    start and end are announced on stdout for ``genops run``.
    """
    startup = process.seconds_since_start()  # before this step's own first MLflow call
    client = use_store(tracking_uri)
    child_id = ""
    with process.stop_guard():
        try:
            parent = client.get_run(parent_run_id)
            tags = {
                k: v
                for k, v in parent.data.tags.items()
                if k.startswith("genops.") and k not in NOT_INHERITED
            }
            child = client.create_run(
                parent.info.experiment_id,
                run_name=step,
                tags={**tags, "mlflow.parentRunId": parent_run_id, "genops.step": step},
            )
            child_id = child.info.run_id
            announce(step, "start", run_id=child_id, startup_s=startup)
            # the fluent API refuses to resume a run of another experiment than its active one
            mlflow.set_experiment(experiment_id=parent.info.experiment_id)
            active = mlflow.start_run(run_id=child_id)
            yield active
        except BaseException as exc:
            failure = failure_text(exc)
            stopped = process.stop_reason(exc) is not None
            with process.signals_ignored():
                with contextlib.suppress(Exception):
                    record_step_failure(tracking_uri, parent_run_id, step, failure, stopped)
                if child_id:
                    with contextlib.suppress(Exception):
                        client.set_tag(child_id, FAILURE_TAG, failure[:4000])
                    with contextlib.suppress(Exception):
                        mlflow.end_run(status="KILLED" if stopped else "FAILED")
                    with contextlib.suppress(Exception):
                        if client.get_run(child_id).info.status == "RUNNING":
                            client.set_terminated(child_id, "KILLED" if stopped else "FAILED")
            announce(step, "killed" if stopped else "failed", run_id=child_id, failure=failure)
            raise
        mlflow.end_run()
    announce(step, "end", run_id=child_id, **_headline_fields(client, child_id))


def open_steps(client: MlflowClient, run_id: str) -> list[Any]:
    """The nested runs of ``run_id`` still RUNNING, the last started last."""
    run = client.get_run(run_id)
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'",
        max_results=200,
    )
    return sorted(children, key=lambda r: r.info.start_time or 0)


def last_started_step(client: MlflowClient, run_id: str) -> tuple[str, str] | None:
    """(step name, status) of the nested run of ``run_id`` that started last."""
    run = client.get_run(run_id)
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not children:
        return None
    child = children[0]
    return child.data.tags.get("genops.step", child.info.run_name or "?"), child.info.status


def _close_open_steps(client: MlflowClient, run_id: str, status: str, reason: str) -> list[str]:
    closed = []
    for child in open_steps(client, run_id):
        client.set_tag(child.info.run_id, FAILURE_TAG, reason[:4000])
        client.set_terminated(child.info.run_id, status=status)
        closed.append(child.data.tags.get("genops.step", child.info.run_name or "?"))
    return closed


# Outcomes of a pipeline run that did its job: a model was registered, or a gate stopped it
# (the data bias gate under policy 'block', or the synthetic-data bias gate). Anything else
# (a step raised, or the run never reached an outcome) ends the MLflow run as FAILED.
GATE_OUTCOMES = ("succeeded", "blocked", "rejected", "rolled_back")
DIED_SILENTLY = "its process ended without closing its MLflow run (killed?)"


def finish_pipeline_run(tracking_uri: str, run_id: str) -> str:
    """End the parent run: FINISHED for a gate outcome or success, else FAILED. A nested run
    still RUNNING here belongs to a step whose process died without a word: it is closed
    FAILED, and names the failed step when no step did."""
    client = use_store(tracking_uri)
    tags = client.get_run(run_id).data.tags
    status = tags.get(STATUS_TAG, "running")
    closed = _close_open_steps(client, run_id, "FAILED", f"step ended: {DIED_SILENTLY}")
    final = "FINISHED" if status in GATE_OUTCOMES else "FAILED"
    if final == "FAILED" and FAILED_STEP_TAG not in tags and closed:
        client.set_tag(run_id, FAILED_STEP_TAG, closed[-1])
        client.set_tag(run_id, FAILURE_TAG, f"step '{closed[-1]}': {DIED_SILENTLY}")
    if status == "running":
        client.set_tag(run_id, STATUS_TAG, "failed")
    client.set_terminated(run_id, status=final)
    return final


def close_pipeline_run(
    tracking_uri: str,
    run_id: str,
    status: str,
    failed_step: str | None,
    failure: str,
    outcome: str = "failed",
    overwrite: bool = False,
) -> None:
    """Close a parent run that did not reach its exit handler (interrupted, its driver gone,
    its first step failed) or whose record needs the driver's word (a step killed by a
    signal): nested runs still RUNNING end with ``status`` (FAILED or KILLED), the parent is
    tagged with the step and the reason (kept when a step already recorded its own, unless
    ``overwrite``) and ends with ``status`` if it is still RUNNING."""
    client = use_store(tracking_uri)
    run = client.get_run(run_id)
    tags = run.data.tags
    closed = _close_open_steps(client, run_id, status, failure)
    step = failed_step or (closed[-1] if closed else None)
    if overwrite or FAILED_STEP_TAG not in tags:
        if step:
            client.set_tag(run_id, FAILED_STEP_TAG, step)
        client.set_tag(run_id, FAILURE_TAG, failure[:4000])
    if tags.get(STATUS_TAG, "running") not in GATE_OUTCOMES:
        client.set_tag(run_id, STATUS_TAG, outcome)
    if run.info.status == "RUNNING":
        client.set_terminated(run_id, status=status)


def find_launch(tracking_uri: str, launch_id: str) -> str | None:
    """The parent run a ``genops run`` launch created (by its launch id tag), if any."""
    client = use_store(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`{DRIVER_TAGS['launch']}` = '{launch_id}'",
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


@dataclass(frozen=True)
class Reconciled:
    """A RUNNING parent run looked at by :func:`reconcile_runs`."""

    run_id: str
    experiment: str
    driver: str
    action: str  # closed | alive | unknown (driver on another host)
    step: str | None = None
    failure: str = ""


def reconcile_runs(tracking_uri: str, dry_run: bool = False) -> list[Reconciled]:
    """Close the parent runs left RUNNING by a ``genops run`` process that is gone: each is
    marked FAILED with 'process gone' and the last step that had started; its nested runs
    still RUNNING are closed too. Runs whose driver lives, or ran on another host, and runs
    with no driver recorded (cluster runs: KFP's exit handler closes those) are left alone.
    """
    client = use_store(tracking_uri)
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    if not experiments:
        return []
    runs = client.search_runs(
        list(experiments),
        filter_string="attributes.status = 'RUNNING'",
        max_results=5000,
    )
    found = []
    for run in runs:
        tags = run.data.tags
        pid = tags.get(DRIVER_TAGS["pid"], "")
        if "mlflow.parentRunId" in tags or not pid.isdigit():
            continue
        who = process.ProcessIdentity(
            int(pid), tags.get(DRIVER_TAGS["host"], ""), tags.get(DRIVER_TAGS["started"], "")
        )
        alive = process.is_alive(who)
        name = experiments.get(run.info.experiment_id, run.info.experiment_id)
        if alive is not False:
            action = "alive" if alive else "unknown"
            found.append(Reconciled(run.info.run_id, name, who.describe(), action))
            continue
        last = last_started_step(client, run.info.run_id)
        step = last[0] if last else "start-run"
        started = (
            f"the last step that had started: '{last[0]}' ({last[1]})"
            if last
            else "no step had started"
        )
        failure = (
            f"process gone: `genops run` ({who.describe()}) ended without closing the run; "
            f"{started}"
        )
        if not dry_run:
            close_pipeline_run(
                tracking_uri, run.info.run_id, "FAILED", step, failure, overwrite=True
            )
            client.set_tag(run.info.run_id, "genops.reconciled_at", time.strftime("%FT%T%z"))
        found.append(Reconciled(run.info.run_id, name, who.describe(), "closed", step, failure))
    return found


def log_parent(
    tracking_uri: str, run_id: str, metrics: dict[str, float], params: dict[str, Any]
) -> None:
    """Copy headline values onto the parent run, so the run list shows them."""
    client = use_store(tracking_uri)
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
    run_id: str | None = None,
) -> str:
    """Register a logged model version, tag it and give it the candidate alias. With
    ``run_id`` (the pipeline's parent run) the version names that run as its source run, so
    the run's page lists it; the logged model still names the train run that logged it."""
    client = use_store(tracking_uri)
    if run_id is None:
        version = mlflow.register_model(model_uri, name, tags=tags)
    else:
        version = _register_for_run(client, model_uri, name, tags, run_id)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def _register_for_run(
    client: MlflowClient, model_uri: str, name: str, tags: dict[str, str], run_id: str
) -> Any:
    """``mlflow.register_model`` with the version's run set: the same version (source, tags)
    and the same link from the logged model to its versions (``mlflow.modelVersions``)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(
        name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    if model_id is not None:
        logged = client.get_logged_model(model_id)
        links = json.loads(logged.tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
        links.append({"name": version.name, "version": version.version})
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(links)})
    return version
