"""The one seam between the core and a workload: the :class:`Workload` interface and the
registry of workloads by name.

The core (config loading, the generic pipeline steps, tuning, the model server, deployment)
never imports a workload. It asks the registry for the workload a config names (its
top-level ``pipeline`` key) and reaches workload behaviour only through this interface.

Workloads register themselves with a Python entry point in the ``genops.workloads`` group
(one line in ``pyproject.toml``); they are imported only when first asked for. A workload
that is not installed as a package (a test's toy workload, a notebook) registers with
:func:`register_workload`, or through ``$GENOPS_WORKLOADS`` (``name=module:attribute``,
comma-separated), which the KFP local runner's task processes inherit.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from pydantic import BaseModel

from genops.core.blessing import BlessingSpec
from genops.core.specs import DeploySpec
from genops.core.tuning.space import TuningSpec

ENTRY_POINT_GROUP = "genops.workloads"
WORKLOADS_ENV = "GENOPS_WORKLOADS"


class WorkloadError(LookupError):
    """No workload of that name is registered, or its entry cannot be imported."""


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Seeded(Protocol):
    @property
    def seed(self) -> int: ...


class RunConfig(Protocol):
    """What the core reads from any workload's run config (a frozen pydantic model)."""

    @property
    def dataset(self) -> _Named: ...
    @property
    def model(self) -> _Seeded: ...
    @property
    def tuning(self) -> TuningSpec: ...
    @property
    def blessing(self) -> BlessingSpec: ...
    @property
    def deploy(self) -> DeploySpec: ...
    @property
    def pipeline_name(self) -> str: ...
    @property
    def model_name(self) -> str: ...
    @property
    def experiment_name(self) -> str: ...

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]: ...


@dataclass(frozen=True)
class SmokeResult:
    """The outcome of calling a freshly deployed endpoint."""

    passed: bool
    detail: str


class TrialObjective(Protocol):
    """What a tuning trial fits and how it is scored (genops.core.tuning.study runs it)."""

    intermediate_metric: str

    def fit(self, model: Any, on_epoch_end: Any) -> None: ...

    def intermediate(self, model: Any, seed: int) -> float: ...

    def final(self, model: Any, seed: int) -> dict[str, float]: ...


class ServingAdapter(ABC):
    """What the model server needs from a workload's loaded pyfunc model.

    ``parse`` runs on the server's event loop (cheap checks only, caps before any list is
    built); ``generate`` runs in a worker thread and returns the response body.
    """

    @abstractmethod
    def metadata(self) -> dict[str, Any]:
        """The workload's part of ``/metadata`` (columns and categories, classes, ...)."""

    @abstractmethod
    def parse(self, body: Any, max_items: int) -> Any:
        """The decoded JSON body as a request; raises RequestError naming the field."""

    @abstractmethod
    def generate(self, request: Any) -> bytes:
        """The JSON response body; raises CannotServe for a valid request it cannot meet."""

    def stream(self, request: Any) -> Iterator[bytes] | None:
        """Server-sent events (``data: ...`` frames) for a request that asks to be streamed,
        produced lazily as the model generates; None (the default) answers with
        :meth:`generate`."""
        return None


class Workload(ABC):
    """A generative workload: its config schema and the behaviour the core steps call.

    The workload's own steps (prepare, the data gate, train, evaluate) are plain functions in
    its folder, wrapped by its own KFP components; everything after evaluate is the core's.
    """

    #: The config's ``pipeline`` key and the KFP pipeline's name, e.g. ``tabular-synth``.
    name: str
    #: The pydantic model of a run config.
    config_class: type[BaseModel]
    #: Metrics ``genops run`` prints under the summary, in order (when the run logged them).
    headline_metrics: tuple[str, ...] = ()
    #: Read a config without a ``pipeline`` key as this workload's (at most one may say so).
    default: bool = False

    def parse_config(self, raw: Mapping[str, Any]) -> RunConfig:
        """Validate a raw mapping (pydantic's ValidationError on failure)."""
        config: Any = self.config_class.model_validate(dict(raw))
        return config

    @abstractmethod
    def tuning_objective(
        self, config: Any, train_path: str, validation_path: str, budget: dict[str, Any]
    ) -> tuple[TrialObjective, Callable[[dict[str, Any]], Any]]:
        """The trial objective and a ``build(params)`` that makes an unfitted candidate."""

    @abstractmethod
    def smoke_test(self, config: Any, endpoint: str) -> SmokeResult:
        """Call a freshly deployed endpoint (local REST or KServe) and check its answer."""

    def kserve_model(self, config: Any, storage_uri: str) -> dict[str, Any]:
        """Keyword overrides of :func:`genops.core.serving.kserve.render_inference_service`
        for this workload's model (``model_format``, ``runtime``, ``args``, ``storage_uri``,
        autoscaling); ``{}`` serves the MLflow pyfunc with the genops MLServer runtime."""
        return {}

    @abstractmethod
    def serving_adapter(self, python_model: Any, pyfunc: Any) -> ServingAdapter:
        """The model server's adapter for this workload's loaded pyfunc model (``pyfunc``) and
        the python model inside it."""


_REGISTERED: dict[str, Workload | str] = {}
_LOADED: dict[str, Workload] = {}


def register_workload(name: str, workload: Workload | str) -> None:
    """Register a workload object, or a lazy ``"module:attribute"`` reference to one."""
    _REGISTERED[name] = workload
    _LOADED.pop(name, None)


def _entries() -> dict[str, Workload | str]:
    found: dict[str, Workload | str] = {
        ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)
    }
    for item in filter(None, os.environ.get(WORKLOADS_ENV, "").split(",")):
        name, sep, ref = item.strip().partition("=")
        if not sep or ":" not in ref:
            raise WorkloadError(f"{WORKLOADS_ENV}: '{item}' is not of the form name=module:attr")
        found[name] = ref
    found.update(_REGISTERED)
    return found


def workload_names() -> list[str]:
    """Every registered workload, sorted."""
    return sorted(_entries())


def get_workload(name: str) -> Workload:
    """The workload registered as ``name`` (imported on first use)."""
    if name in _LOADED:
        return _LOADED[name]
    entries = _entries()
    if name not in entries:
        raise WorkloadError(f"unknown pipeline {name!r}; known: {sorted(entries)}")
    entry = entries[name]
    if isinstance(entry, str):
        module_name, _, attribute = entry.partition(":")
        try:
            loaded = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise WorkloadError(f"workload {name!r}: cannot import {entry}: {exc}") from exc
        entry = loaded() if isinstance(loaded, type) else loaded
    if not isinstance(entry, Workload):
        raise WorkloadError(f"workload {name!r} is a {type(entry).__name__}, not a Workload")
    _LOADED[name] = entry
    return entry


def default_workload() -> str:
    """The workload a config without a ``pipeline`` key belongs to."""
    for name in workload_names():
        if get_workload(name).default:
            return name
    raise WorkloadError("no workload is registered as the default: set the 'pipeline' key")
