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
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class PreflightProblem:
    """What a check before any step starts found about a source (or another input): a
    problem that stops the run, or (``blocking`` False) a note such as "not checked"."""

    subject: str  # the file or URI it is about
    message: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass(frozen=True)
class Resolution:
    """A config with what it leaves to the data filled in, and what a person should know of
    it (one line each: what was inferred, what was left out and why)."""

    config: Any  # the workload's RunConfig
    summary: list[str]


@dataclass(frozen=True)
class LocalSource:
    """A local file or folder a run config reads: where in the config (``field``: the keys
    and list indexes down to the value) and its path. ``genops submit`` uploads it and
    writes its ``s3://`` URI into that field of the uploaded copy."""

    field: tuple[str | int, ...]
    path: str

    @property
    def name(self) -> str:
        """The field as a person writes it, e.g. ``dataset.sources[1]``."""
        text = ""
        for part in self.field:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text.lstrip(".")


@dataclass(frozen=True)
class CardFigure:
    """One evaluation figure of a model card, with what it is read against."""

    name: str
    value: float | None
    meaning: str
    baseline: str = ""  # a metric of the same run, or words ("1.0: identical columns")
    baseline_value: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """A pipeline run as a model card reads it: the parent run's metrics, params and tags,
    and each step's metrics and params by step name (``prepare``, ``evaluate``, ...)."""

    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]
    step_metrics: Mapping[str, Mapping[str, float]]
    step_params: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class ModelCardFacts:
    """What a workload tells its model card (genops.core.modelcard lays out the sections)."""

    model: str  # what the model is, one sentence
    intended_use: list[str]
    out_of_scope: list[str]
    training_data: list[str]  # rows, classes, ... one line each
    sensitive_attributes: list[str]
    figures: list[CardFigure]
    limitations: list[str] = field(default_factory=list)
    example_request: dict[str, Any] = field(default_factory=dict)  # body of POST /generate


def is_local_path(value: Any) -> bool:
    """A path on this machine, not a URI (``s3://...``, ``sklearn:digits``); the same rule
    as config loading's."""
    return (
        isinstance(value, str)
        and bool(value)
        and "://" not in value
        and re.match(r"^[a-z][a-z0-9+.-]+:(?![\\/])", value) is None
    )


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

    Micro-batching (optional): concurrent requests for which :meth:`batch_key` returns the
    same key are answered by one :meth:`generate_batch` call in a worker thread, which lets
    a workload sample them together (one network pass, one decode). The defaults keep an
    adapter on one request at a time: no key, and a ``generate_batch`` that loops.
    """

    def batch_key(self, request: Any) -> Hashable | None:
        """Requests with equal keys may be answered by one :meth:`generate_batch` call;
        None (the default) answers this one alone with :meth:`generate`."""
        return None

    def request_size(self, request: Any) -> int:
        """The rows (images, ...) a request asks for: the server caps a batch's total."""
        return 1

    def generate_batch(self, requests: Sequence[Any]) -> list[bytes | Exception]:
        """One answer per request, in order: the response body, or the exception that
        request alone raises (RequestError, CannotServe, ...), so a bad request fails only
        itself. An exception raised out of this method fails no request: the server then
        answers each with :meth:`generate`. The default calls :meth:`generate` per request."""
        out: list[bytes | Exception] = []
        for request in requests:
            try:
                out.append(self.generate(request))
            except Exception as exc:
                out.append(exc)
        return out

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
        autoscaling); ``{}`` serves the MLflow pyfunc with ``genops serve`` (the platform's
        ServingRuntime genops-server)."""
        return {}

    def preflight(self, config: Any) -> list[PreflightProblem]:
        """Cheap checks of the config's inputs before any step starts (``genops
        check-config`` and ``genops run`` call it): each source exists, can be read, and holds
        what the config names. Reads no more than a header. Default: nothing to check."""
        return []

    def resolve_config(self, config: Any) -> Resolution:
        """The config with what it leaves to the data filled in (the tabular workload infers
        the columns a spec does not list). The pipeline's start step writes the result as
        the run's config; every later step reads it. Raises ValueError naming the column and
        the rule when the data cannot fit the config. Default: the config as it is."""
        return Resolution(config, [])

    def local_sources(self, config: Any) -> list[LocalSource]:
        """The local files and folders ``config`` reads, by field (``genops submit`` uploads
        them). Default: ``dataset.source`` and each of ``dataset.sources`` that is a local
        path (config loading made them absolute, relative to the config file)."""
        dataset = getattr(config, "dataset", None)
        found: list[LocalSource] = []
        source = getattr(dataset, "source", None)
        if is_local_path(source):
            found.append(LocalSource(("dataset", "source"), str(source)))
        for i, item in enumerate(getattr(dataset, "sources", None) or []):
            if is_local_path(item):
                found.append(LocalSource(("dataset", "sources", i), str(item)))
        return found

    def model_card_facts(self, config: Any, run: RunRecord) -> ModelCardFacts:
        """What the model card of a version says about this workload's model: what it is, its
        uses, its training data, its figures with their baselines, its limitations and an
        example request. Default: the headline metrics, without baselines."""
        return ModelCardFacts(
            model=f"A generative model trained by the {self.name} pipeline.",
            intended_use=[],
            out_of_scope=[],
            training_data=[],
            sensitive_attributes=[],
            figures=[
                CardFigure(key, run.metrics[key], "")
                for key in self.headline_metrics
                if key in run.metrics
            ],
        )

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
