"""Run a pipeline on this machine with KFP's local subprocess runner and a local MLflow store.

No Docker, no cluster: each task is a Python subprocess of this interpreter; MLflow is a
SQLite database plus an artifact folder under ``$GENOPS_HOME`` (default ``./.genops``).
"""

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import local

from genops.paths import default_tracking_uri as _default_tracking_uri
from genops.paths import genops_home
from genops.version import git_commit, pipeline_version
from pipelines.registry import get_pipeline


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the local SQLite store (its folder created)."""
    genops_home().mkdir(parents=True, exist_ok=True)
    return _default_tracking_uri()


@dataclass
class RunSummary:
    run_id: str
    tracking_uri: str
    status: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    registered: str | None = None
    experiment_id: str = ""

    def headline_metrics(self) -> tuple[str, ...]:
        """The metrics the run's workload prints under the summary."""
        from genops.core.workload import WorkloadError, get_workload

        try:
            return get_workload(self.tags.get("genops.pipeline", "")).headline_metrics
        except WorkloadError:
            return ()

    @property
    def outcome(self) -> str:
        """succeeded (registered), blocked (data gate), rejected (synthetic gate), rolled_back
        (smoke test failed) or failed."""
        return self.tags.get("genops.status", "failed")

    def render(self) -> str:
        lines = [
            f"MLflow run:        {self.run_id} ({self.status}) in {self.seconds:.0f} s",
            f"Outcome:           {self.outcome}",
            f"Tracking URI:      {self.tracking_uri}",
            f"Registered model:  {self.registered or 'none'}",
            f"Data bias gate:    {self.tags.get('genops.data_bias', 'not run')}",
            f"Synthetic gate:    {self.tags.get('genops.synthetic_bias', 'not run')}",
            f"Blessed:           {self.tags.get('genops.blessed', 'not judged')}",
            f"Champion:          {self.tags.get('genops.champion', 'unchanged')}",
            f"Endpoint:          {self.tags.get('genops.endpoint', 'none')}"
            + (
                f" (smoke test {self.tags['genops.smoke_test']})"
                if "genops.smoke_test" in self.tags
                else ""
            ),
        ]
        if self.outcome != "succeeded" and "genops.failure" in self.tags:
            lines.append(f"Reason:            {self.tags['genops.failure'][:600]}")
        for key in self.headline_metrics():
            if key in self.metrics:
                lines.append(f"  {key:<28} {self.metrics[key]:.4f}")
        if self.tracking_uri.startswith("sqlite:"):
            lines.append("Open the MLflow UI with:  make mlflow-ui")
        return "\n".join(lines)


def summarize(tracking_uri: str, run_id: str, seconds: float) -> RunSummary:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    run = mlflow.MlflowClient().get_run(run_id)
    return RunSummary(
        run_id=run_id,
        tracking_uri=tracking_uri,
        status=run.info.status,
        seconds=seconds,
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        registered=run.data.tags.get("genops.registered_model"),
        experiment_id=run.info.experiment_id,
    )


RUNNERS = ("subprocess", "docker")


def run_local(
    pipeline: str,
    config: str,
    tracking_uri: str | None = None,
    pipeline_root: str | None = None,
    runner: str = "subprocess",
    **arguments: Any,
) -> RunSummary:
    """Run ``pipeline`` locally; raises RuntimeError naming the failed task on failure, and
    ConfigError before anything runs when a local config is invalid or written for another
    pipeline.

    ``runner="docker"`` runs every step in the images ``make images`` built (KFP's
    DockerRunner, host network) and tracks to a local MLflow server it starts and stops
    (pipelines/runners.py); the config must be one baked into the images or on ``s3://``.
    """
    if runner not in RUNNERS:
        raise ValueError(f"runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    if "://" not in config:  # an s3:// config is read by the start step
        from genops.core.config import load_config_for

        load_config_for(config, pipeline)
    root = Path(pipeline_root or genops_home() / "kfp-local")
    root.mkdir(parents=True, exist_ok=True)
    # Locally the components run in this interpreter (it holds genops and its pinned
    # dependencies, as the image does); KFP warns about the non-Python base image each task.
    warnings.filterwarnings(
        "ignore", message="You may be attemping to run a task", category=RuntimeWarning
    )
    with contextlib.ExitStack() as stack:
        if runner == "docker":
            from pipelines.runners import container_config_uri, docker_runner

            kfp_runner, tracking_uri = stack.enter_context(docker_runner(root))
            config_uri = container_config_uri(config)
        else:
            kfp_runner = local.SubprocessRunner(use_venv=False)
            tracking_uri = tracking_uri or default_tracking_uri()
            config_uri = config if "://" in config else str(Path(config).resolve())
        local.init(runner=kfp_runner, pipeline_root=str(root))
        started = time.perf_counter()
        task = get_pipeline(pipeline)(
            config_uri=config_uri,
            tracking_uri=tracking_uri,
            pipeline_version=pipeline_version(),
            git_commit=git_commit(),
            **arguments,
        )
        run_id = str(task.output)
        # inside the block: a docker run's MLflow server is still up
        return summarize(tracking_uri, run_id, time.perf_counter() - started)
    raise AssertionError("unreachable")
