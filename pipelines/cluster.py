"""Cluster-only task settings (GPU, tolerations, node selector, config from Secret/ConfigMap).

Applied only when compiling for the cluster (GENOPS_TARGET=cluster); locally the tasks stay
plain so `kfp.local` runs them unchanged.

The values mirror the platform the Terraform envs and `make platform` create (see
terraform/envs/*/outputs.tf ``gpu_node_selector`` / ``gpu_node_taint`` and
k8s/platform/base/{20-genops-config,30-genops-secrets}.yaml.tmpl); tests/pipelines compares
them with the Terraform fixture.

KFP traces a ``@dsl.pipeline`` function when it is *decorated*, i.e. when its module is
imported, not when it is compiled. ``configure_task`` therefore reads GENOPS_TARGET while the
pipeline module is being imported; to compile one pipeline for another target in a process
that already imported it, use :func:`load_pipeline`, which imports the pipeline modules afresh
under that target (and the image registry of that moment) and leaves the process as it was.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kfp import kubernetes
from kfp.dsl import PipelineTask

TARGET_ENV = "GENOPS_TARGET"
TARGETS = ("local", "cluster")
REGISTRY_ENV = "GENOPS_IMAGE_REGISTRY"

# Non-secret settings every step reads from the environment (ConfigMap genops-config).
CONFIG_MAP = "genops-config"
CONFIG_MAP_KEYS = ("MLFLOW_TRACKING_URI", "GENOPS_S3_BUCKET", "AWS_REGION", "AWS_DEFAULT_REGION")
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
# Not retried: prepare, data-bias-check and evaluate are deterministic (a retry repeats the
# same error and logs duplicate nested runs); train holds a GPU and fails for reasons (OOM,
# bad data) that a retry does not fix.
RETRIED_COMPONENTS = frozenset({"start-run", "finish-run", "register-model"})
RETRY_POLICY: dict[str, Any] = {
    "num_retries": 3,
    "backoff_duration": "30s",
    "backoff_factor": 2.0,
    "backoff_max_duration": "300s",
}


def current_target() -> str:
    """GENOPS_TARGET (default ``local``); anything but ``local``/``cluster`` is an error."""
    target = os.environ.get(TARGET_ENV, "local") or "local"
    if target not in TARGETS:
        raise ValueError(f"{TARGET_ENV}={target!r}: expected one of {', '.join(TARGETS)}")
    return target


def compiling_for_cluster() -> bool:
    return current_target() == "cluster"


def configure_task(task: PipelineTask, role: str = "cpu") -> PipelineTask:
    """Give ``task`` its cluster settings by role: "cpu" (default) or "gpu" (train, tune).

    A no-op locally (the role is still checked, so a typo fails in ``make run`` too).
    """
    if role not in RESOURCES:
        raise ValueError(f"unknown task role {role!r}: expected one of {sorted(RESOURCES)}")
    if not compiling_for_cluster():
        return task

    res = RESOURCES[role]
    with _cheap_caller_lookup():
        task.set_cpu_request(res.cpu_request).set_cpu_limit(res.cpu_limit)
        task.set_memory_request(res.memory_request).set_memory_limit(res.memory_limit)
        if role == "gpu":
            task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(1)

    kubernetes.use_config_map_as_env(task, CONFIG_MAP, {key: key for key in CONFIG_MAP_KEYS})
    if task.component_spec.name in SECRET_COMPONENTS:
        kubernetes.use_secret_as_env(task, SECRET, {key: key for key in SECRET_KEYS})

    if role == "gpu":
        kubernetes.add_toleration(task, effect=GPU_TAINT_EFFECT, **GPU_TOLERATION)
        kubernetes.add_node_selector(task, *GPU_NODE_SELECTOR)

    if task.component_spec.name in RETRIED_COMPONENTS:
        task.set_retry(**RETRY_POLICY)
    return task


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


# ------------------------------------------------------------ compiling for a target

# Modules that must not be imported afresh: this one (configure_task's settings live here),
# the packages themselves and the entry points that hold no traced pipeline.
_KEEP = frozenset(
    {"pipelines", "pipelines.cluster", "pipelines.compile", "pipelines.submit", "pipelines.local"}
)


def _is_traced(name: str) -> bool:
    """Whether importing module ``name`` traces pipelines or reads the image registry:
    components.*, and every pipelines.* module that is not an entry point."""
    return name not in _KEEP and name.startswith(("components.", "pipelines."))


@contextmanager
def target_environment(target: str, registry: str | None = None) -> Iterator[None]:
    """Set GENOPS_TARGET (and GENOPS_IMAGE_REGISTRY when given) and hide the already imported
    pipeline modules, so that imports inside the block trace the pipelines again under them.

    On exit the environment and ``sys.modules`` (and the parent packages' attributes) are
    restored: objects imported before the block are untouched and stay as they were.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    saved_env = {key: os.environ.get(key) for key in (TARGET_ENV, REGISTRY_ENV)}
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if _is_traced(name)}
    os.environ[TARGET_ENV] = target
    if registry:
        os.environ[REGISTRY_ENV] = registry
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # Only the traced modules are swapped back: a library first imported inside the
        # block (a kfp submodule, yaml) stays, so no class ever exists twice.
        for name in [n for n in sys.modules if _is_traced(n)]:
            del sys.modules[name]
            _set_parent_attribute(name, None)
        for name, module in hidden.items():
            sys.modules[name] = module
            _set_parent_attribute(name, module)


def _set_parent_attribute(name: str, module: ModuleType | None) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name)
    if parent is None:
        return
    if module is None:
        if getattr(parent, child, None) is not None:
            delattr(parent, child)
    else:
        setattr(parent, child, module)


def load_pipeline(name: str, target: str, registry: str | None = None) -> Callable[..., Any]:
    """The pipeline ``name`` traced for ``target`` (``local`` or ``cluster``)."""
    with target_environment(target, registry):
        registry_module = importlib.import_module("pipelines.registry")
        return registry_module.get_pipeline(name)
