"""Compile targets: what differs between running a pipeline locally and on the cluster.

A pipeline factory takes a :class:`Target`; :meth:`Target.configure` gives each task its
cluster settings (GPU, tolerations, node selector, config from Secret/ConfigMap, resources,
retries, the environment's image registry) and leaves tasks plain locally, so `kfp.local`
runs them unchanged. Nothing is read from the environment when a module is imported, so one
process can compile both targets, in any order, without reloading anything.

The values mirror the platform the Terraform envs and `make platform` create (see
terraform/envs/*/outputs.tf ``gpu_node_selector`` / ``gpu_node_taint`` and
k8s/platform/base/{20-genops-config,30-external-secrets}.yaml.tmpl); tests/pipelines compares
them with the Terraform fixture.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kfp import kubernetes
from kfp.dsl import PipelineTask

TARGET_ENV = "GENOPS_TARGET"
TARGETS = ("local", "cluster")
REGISTRY_ENV = "GENOPS_IMAGE_REGISTRY"

# Non-secret settings every step reads from the environment (ConfigMap genops-config).
CONFIG_MAP = "genops-config"
CONFIG_MAP_KEYS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "GENOPS_S3_BUCKET",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
# MLflow basic-auth login of the pipelines (Secret genops-mlflow-client, synced by External
# Secrets): every step talks to the tracking server, which answers 401 without it.
MLFLOW_SECRET = "genops-mlflow-client"
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# Pods with database credentials get the database client security group (SecurityGroupPolicy
# in k8s/platform) and the NetworkPolicy egress to RDS: only they may reach PostgreSQL.
DATABASE_CLIENT_LABEL = ("genops.io/database-client", "true")
# Images by digest (k8s/scripts/mirror_images.sh writes the lock; genops/<kind> -> ...@sha256).
IMAGES_LOCK_ENV = "GENOPS_IMAGES_LOCK"
# Database URL (Secret genops-secrets): only the steps that open the Optuna study get it; the
# others talk to MLflow over HTTP and never see a database password.
SECRET = "genops-secrets"
SECRET_KEYS = ("OPTUNA_STORAGE_URL",)
SECRET_COMPONENTS = frozenset({"tune-setup", "tune-worker", "tune-summarize"})

GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR = ("genops.io/node-pool", "gpu")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}
GPU_TAINT_EFFECT = "NoSchedule"


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


# CPU steps share the system nodes (m6i.large in dev: 2 vCPU, 8 GiB) with KFP, KServe and
# MLflow, so they request little and may burst. A GPU step has its node to itself (g6/g5
# .xlarge: 4 vCPU, 16 GiB); the request leaves room for the node's daemonsets.
RESOURCES: dict[str, Resources] = {
    "cpu": Resources(cpu_request="500m", cpu_limit="2", memory_request="2Gi", memory_limit="4Gi"),
    "gpu": Resources(cpu_request="3", cpu_limit="4", memory_request="12Gi", memory_limit="14Gi"),
}

# Retried steps: those whose work is only a few MLflow calls, so a failure is most likely the
# tracking server or S3 being briefly unreachable (a restart, a scale-up) and a retry is cheap.
# - start-run: a retry after the parent run was created leaves that run RUNNING (orphaned);
#   without a retry a blip fails the whole pipeline run, which is worse.
# - finish-run: idempotent (sets the terminal status); it is the exit handler, so it must not
#   leave the parent run RUNNING because of one refused connection.
# - register-model: a retry after the version was created registers a second version with the
#   same tags; no retry would lose a finished, evaluated model.
# - tune-setup, tune-worker, tune-summarize: a retry is safe by design: the study is created
#   with load_if_exists; a worker takes what is left of its share from the study and first
#   fails the trial its lost pod left RUNNING (genops.core.tuning.worker), so a pod eviction
#   costs one trial instead of the run; the summary reads the study and logs the same values.
# Not retried: prepare, data-bias-check and evaluate are deterministic (a retry repeats the
# same error and logs duplicate nested runs); train holds a GPU and fails for reasons (OOM,
# bad data) that a retry does not fix.
RETRIED_COMPONENTS = frozenset(
    {"start-run", "finish-run", "register-model", "tune-setup", "tune-worker", "tune-summarize"}
)
RETRY_POLICY: dict[str, Any] = {
    "num_retries": 3,
    "backoff_duration": "30s",
    "backoff_factor": 2.0,
    "backoff_max_duration": "300s",
}


@dataclass(frozen=True)
class Target:
    """Where a pipeline is compiled to run: ``local`` (KFP's local runner, tasks left plain)
    or ``cluster`` (resources, GPU, tolerations, ConfigMap/Secret, retries). With a
    ``registry`` every task names its image there. A pipeline factory takes one; nothing
    reads the environment at import."""

    name: str = "local"
    registry: str | None = None

    def __post_init__(self) -> None:
        if self.name not in TARGETS:
            raise ValueError(f"unknown target {self.name!r}: expected one of {', '.join(TARGETS)}")

    @property
    def is_cluster(self) -> bool:
        return self.name == "cluster"

    def configure(self, task: PipelineTask, role: str = "cpu") -> PipelineTask:
        """Give ``task`` its settings by role: "cpu" (default) or "gpu" (train, tune).

        A no-op locally (the role is still checked, so a typo fails in ``make run`` too).
        """
        if role not in RESOURCES:
            raise ValueError(f"unknown task role {role!r}: expected one of {sorted(RESOURCES)}")
        if self.registry:
            _, _, repository = task.container_spec.image.partition("/genops/")
            pinned = _pinned_images(self.registry).get("genops/" + repository.split(":")[0])
            task.set_container_image(pinned or f"{self.registry}/genops/{repository}")
        if not self.is_cluster:
            return task
        res = RESOURCES[role]
        with _cheap_caller_lookup():
            task.set_cpu_request(res.cpu_request).set_cpu_limit(res.cpu_limit)
            task.set_memory_request(res.memory_request).set_memory_limit(res.memory_limit)
            if role == "gpu":
                task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(1)

        kubernetes.use_config_map_as_env(task, CONFIG_MAP, {key: key for key in CONFIG_MAP_KEYS})
        kubernetes.use_secret_as_env(task, MLFLOW_SECRET, {k: k for k in MLFLOW_SECRET_KEYS})
        if task.component_spec.name in SECRET_COMPONENTS:
            kubernetes.use_secret_as_env(task, SECRET, {key: key for key in SECRET_KEYS})
            kubernetes.add_pod_label(task, *DATABASE_CLIENT_LABEL)

        if role == "gpu":
            kubernetes.add_toleration(task, effect=GPU_TAINT_EFFECT, **GPU_TOLERATION)
            kubernetes.add_node_selector(task, *GPU_NODE_SELECTOR)

        if task.component_spec.name in RETRIED_COMPONENTS:
            task.set_retry(**RETRY_POLICY)
        return task


def _pinned_images(registry: str) -> dict[str, str]:
    """genops/<kind> -> <registry>/genops/<kind>@sha256:... from $GENOPS_IMAGES_LOCK, if set."""
    import json
    from pathlib import Path

    path = os.environ.get(IMAGES_LOCK_ENV)
    if not path:
        return {}
    lock = json.loads(Path(path).read_text())
    if lock.get("registry") != registry:
        raise ValueError(f"{path} pins images of {lock.get('registry')}, not {registry}")
    return {str(k): str(v) for k, v in (lock.get("genops") or {}).items()}


LOCAL = Target("local")


def cluster(registry: str | None = None) -> Target:
    """The cluster target; ``registry`` (the ECR registry) defaults to
    ``$GENOPS_IMAGE_REGISTRY``, else the images keep the registry they were built with."""
    return Target("cluster", registry or os.environ.get(REGISTRY_ENV) or None)


def target_named(name: str, registry: str | None = None) -> Target:
    """``local`` or ``cluster``; ``registry`` names the images' registry (both targets)."""
    return cluster(registry) if name == "cluster" else Target(name, registry)


class _InspectWithoutSource:
    """``inspect`` as kfp.dsl.pipeline_task uses it, but ``stack()`` is only the frames with
    their file, line and function name (no source lookup)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    @staticmethod
    def stack(context: int = 1) -> list[tuple[Any, str, int, str, None, None]]:
        frames = []
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            frames.append((frame, code.co_filename, frame.f_lineno, code.co_name, None, None))
            frame = frame.f_back
        return frames


@contextmanager
def _cheap_caller_lookup() -> Iterator[None]:
    """kfp 2.17's ``PipelineTask.set_cpu_request`` & co. call ``inspect.stack()`` only to name
    the caller in an error message; with source context that reads every frame's source and
    scans ``sys.modules``: ~0.7 s a call in a process that imported mlflow or pytest, half a
    minute per pipeline. Within this block kfp gets the frames without source lines (same
    names, same IR: the golden test in tests/pipelines compares)."""
    from kfp.dsl import pipeline_task

    original = getattr(pipeline_task, "inspect", None)
    if original is not inspect:  # kfp changed how it does this: leave it alone
        yield
        return
    pipeline_task.inspect = _InspectWithoutSource()  # type: ignore[assignment]
    try:
        yield
    finally:
        pipeline_task.inspect = original
