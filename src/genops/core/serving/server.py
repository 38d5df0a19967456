"""Local deployment target: a small REST server around a registered genops model.

It loads the registered MLflow pyfunc model (``mlflow.pyfunc.load_model``), asks the
workload its python model names (:mod:`genops.core.workload`) for a serving adapter, and
serves

- ``GET /health``: ``{"status": "ok"}`` once the model is loaded;
- ``GET /metadata``: registered name, version and aliases, the version's lineage tags
  (``genops.dataset_hash``, ``genops.git_commit``, ``genops.pipeline_version``), the input
  and output schemas, and the workload's own fields (a table's columns and categories, an
  image generator's classes and shape);
- ``POST /generate``: the workload's request, e.g. ``{"num_rows": 100, "conditions":
  {"sex": "Female"}, "seed": 1}`` for a synthesizer or ``{"classes": ["3", "7"]}`` for an
  image generator; ``max_rows`` caps the rows (images) a request may ask for.

Why not MLflow's stock scoring server (``mlflow models serve``)? It serves any pyfunc
generically through ``/invocations`` with a DataFrame payload. We need three things it does
not give: a request checked against the model's categories before any sampling, answered
with a 4xx whose message names the bad field (``conditions: unknown value 'X' for column
'sex'; allowed: [...]``); a metadata endpoint that tells a caller which registered version,
trained on which data at which commit, is answering; and a row cap enforced up front. Both
servers run the same registered model; ``benchmarks/bench_serving.py`` compares them.

Generation runs in a worker thread, so ``/health`` answers while a large request is being
generated; the adapters' models do not mutate on sampling, so no lock is taken. Concurrent
``/generate`` requests are micro-batched (:class:`MicroBatcher`): those that arrive while a
batch samples are answered together by one call of the adapter's ``generate_batch`` (one
network pass and one decode for a synthesizer), each with its own answer or error; a lone
request waits for nothing. ``--batch-max-rows 0`` turns it off. Responses are rendered with
orjson; uvicorn parses HTTP with httptools when it is installed (a dependency).

Bad input is a 4xx, never a 500, and the keep-alive connection stays usable after it:

- a body over ``max_body_bytes`` (1 MiB by default) is 413, told from ``Content-Length``
  before any byte is read, or counted while a chunked body is read;
- a content type other than JSON (``text/plain``) is 415; no content type is read as JSON;
- the JSON is decoded strictly (:func:`genops.core.serving.request.decode_json`): nesting
  deeper than 32, duplicate keys, ``NaN``, ``1e400`` or a 5,000-digit integer are a 400 that
  names the field; a fractional seed or row count is a 400 too;
- error messages quote at most a short excerpt of the input.

Every error is answered by the handler itself (an exception that reached uvicorn would close
the connection); the unread rest of a refused body is drained by uvicorn before the next
request on the connection.

Serving follows the registry: a server started on ``models:/<name>@<alias>`` checks the alias
every ``follow_interval`` seconds (``--follow-interval``, default 30, 0 = never) and, when
it has moved (a promotion, a rollback), loads the new version in a background thread and
swaps it in at once: a request in flight finishes on the model it started with, the next
one gets the new model. ``/metadata`` reports the version being served, its current
aliases, the alias followed and the last check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import mlflow
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect

from genops.core.serving.options import (
    DEFAULT_FOLLOW_INTERVAL,
    DEFAULT_MAX_BODY_BYTES,
    add_hardening_arguments,
    parse_models_uri,
)
from genops.core.serving.request import (
    DEFAULT_MAX_ROWS,
    CannotServe,
    RequestError,
    decode_json,
    excerpt,
)
from genops.core.workload import ServingAdapter, get_workload
from genops.paths import default_tracking_uri

__all__ = [
    "AliasFollower",
    "MicroBatcher",
    "ServedModel",
    "build_parser",
    "create_app",
    "default_tracking_uri",
    "load_served_model",
    "main",
    "resolve_model_version",
    "serve",
]

LINEAGE_TAGS = ("genops.dataset_hash", "genops.git_commit", "genops.pipeline_version")
MAX_ROWS_ENV = "GENOPS_MAX_ROWS"
TORCH_THREADS_ENV = "GENOPS_TORCH_THREADS"  # also what TVAESynthesizer.fit reads
#: The longest error message the server sends (a backstop: the checks quote excerpts).
MAX_ERROR_CHARS = 2000
#: Micro-batching defaults (see :class:`MicroBatcher`): rows per batch at most, how long a
#: queued request waits for others while a batch runs, and batches sampling at once.
DEFAULT_BATCH_MAX_ROWS = 8192
DEFAULT_BATCH_WAIT_MS = 2.0
DEFAULT_BATCH_CONCURRENCY = 2

_JSON_TYPE = re.compile(r"^\s*application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
log = logging.getLogger("genops.serving")


@dataclass
class ServedModel:
    """The loaded model, its workload's serving adapter, and what ``/metadata`` reports."""

    model_uri: str
    pyfunc: Any  # mlflow.pyfunc.PyFuncModel
    adapter: ServingAdapter
    metadata: dict[str, Any] = field(default_factory=dict)


def resolve_model_version(model_uri: str) -> dict[str, Any]:
    """Name, version, aliases and tags of ``models:/<name>@<alias>`` or ``models:/<name>/<v>``.

    Other URIs (``runs:/``, a local path) are not registered versions: name and version are
    None. Uses the current MLflow registry URI.
    """
    parsed = parse_models_uri(model_uri)
    if parsed is None:
        return {
            "name": None,
            "version": None,
            "aliases": [],
            "tags": {},
            "source": model_uri,
            "run_id": None,
        }
    client = mlflow.MlflowClient()
    name, alias, number = parsed
    if alias is not None:
        version = client.get_model_version_by_alias(name, alias)
    elif number is not None and number.isdigit():
        version = client.get_model_version(name, number)
    else:
        raise ValueError(
            f"{model_uri}: use models:/<name>@<alias> or models:/<name>/<version number>"
        )
    return {
        "name": version.name,
        "version": str(version.version),
        "aliases": sorted(getattr(version, "aliases", []) or []),
        "tags": dict(version.tags or {}),
        "source": version.source,
        "run_id": version.run_id,
    }


def _schema_dict(schema: Any) -> list[dict[str, Any]] | None:
    return None if schema is None else list(schema.to_dict())


def load_served_model(model_uri: str, tracking_uri: str | None = None) -> ServedModel:
    """Load the pyfunc model, pick its workload's adapter, collect its registry metadata.

    An alias is resolved first and that version is loaded (``models:/<name>/<version>``), so
    the version ``/metadata`` reports is the one loaded even if the alias moves meanwhile."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    registered = resolve_model_version(model_uri)
    parsed = parse_models_uri(model_uri)
    alias = parsed[1] if parsed is not None else None
    load_uri = (
        f"models:/{registered['name']}/{registered['version']}"
        if registered["version"] is not None
        else model_uri
    )
    pyfunc = mlflow.pyfunc.load_model(load_uri)
    python_model = pyfunc.unwrap_python_model()
    workload = getattr(python_model, "workload", None)
    if not isinstance(workload, str):
        raise TypeError(f"{model_uri} is not a genops model (its python model names no workload)")
    adapter = get_workload(workload).serving_adapter(python_model, pyfunc)
    tags = registered.pop("tags")
    meta = pyfunc.metadata
    metadata = {
        "model_uri": model_uri,
        **registered,
        "alias": alias,
        "workload": workload,
        "tags": {key: tags.get(key) for key in LINEAGE_TAGS},
        "all_tags": tags,
        "mlflow_model_id": getattr(meta, "model_id", None),
        "input_schema": _schema_dict(meta.get_input_schema()),
        "output_schema": _schema_dict(meta.get_output_schema()),
        **adapter.metadata(),
    }
    return ServedModel(model_uri, pyfunc, adapter, metadata)


class _Slot:
    """The model being served: replaced whole (one assignment) when the alias moves, so a
    request reads it once and keeps that model to the end."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served
        self.follow: dict[str, Any] | None = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class AliasFollower:
    """Keeps a server on ``models:/<name>@<alias>`` serving the alias's version.

    Every ``interval`` seconds a background thread asks the registry which version the
    alias points at; when it differs from the served one, the new version is loaded in that
    thread (requests go on being answered by the old model) and swapped in. A version that
    failed to load is not tried again until the alias moves on; an alias that was removed
    leaves the last version served, and ``/metadata`` says so."""

    def __init__(
        self,
        slot: _Slot,
        model_uri: str,
        interval: float,
        loader: Callable[[str], ServedModel] = load_served_model,
    ) -> None:
        parsed = parse_models_uri(model_uri)
        if parsed is None or parsed[1] is None:
            raise ValueError(f"{model_uri}: only models:/<name>@<alias> can be followed")
        if interval <= 0:
            raise ValueError(f"follow interval must be > 0 seconds, got {interval}")
        self.slot, self.model_uri, self.interval, self.loader = slot, model_uri, interval, loader
        self.name, self.alias = parsed[0], parsed[1]
        self.failed: str | None = None  # a version that failed to load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state("serving the alias's version", str(slot.served.metadata.get("version")))

    def _state(self, status: str, alias_version: str | None, error: str | None = None) -> None:
        self.slot.follow = {
            "alias": self.alias,
            "interval_s": self.interval,
            "alias_version": alias_version,
            "status": status,
            "checked_at": _now(),
            "error": error,
        }

    def _refresh_aliases(self) -> None:
        served = self.slot.served
        try:
            version = mlflow.MlflowClient().get_model_version(self.name, served.metadata["version"])
        except Exception:  # the version itself is gone: say nothing rather than guess
            return
        aliases = sorted(getattr(version, "aliases", []) or [])
        if aliases != served.metadata.get("aliases"):
            self.slot.served = replace(served, metadata={**served.metadata, "aliases": aliases})

    def check(self) -> str:
        """One look at the registry; loads and swaps when the alias moved. Returns the
        status it recorded (also in ``/metadata``'s ``follow``)."""
        served = str(self.slot.served.metadata.get("version"))
        try:
            target = str(
                mlflow.MlflowClient().get_model_version_by_alias(self.name, self.alias).version
            )
        except Exception as exc:
            self._refresh_aliases()
            status = f"alias {self.alias} not set: still serving v{served}"
            self._state(status, None, excerpt(str(exc), 300))
            return status
        if target == served:
            self.failed = None
            status = "serving the alias's version"
            self._state(status, target)
            return status
        self._refresh_aliases()
        if target == self.failed:
            status = f"v{target} failed to load: still serving v{served}"
            self._state(status, target, self.slot.follow.get("error") if self.slot.follow else None)
            return status
        self._state(f"loading v{target}; serving v{served}", target)
        log.info("%s@%s moved to v%s: loading it", self.name, self.alias, target)
        try:
            new = self.loader(self.model_uri)
        except Exception as exc:
            self.failed = target
            status = f"v{target} failed to load: still serving v{served}"
            self._state(status, target, excerpt(f"{type(exc).__name__}: {exc}", 300))
            log.error("%s@%s: v%s failed to load: %s", self.name, self.alias, target, exc)
            return status
        self.slot.served = new  # the swap: one assignment
        loaded = str(new.metadata.get("version"))
        self.failed = None
        log.info("%s@%s: now serving v%s (was v%s)", self.name, self.alias, loaded, served)
        status = f"swapped v{served} -> v{loaded}"
        self._state(status, loaded)
        return status

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # never let the follower die silently
                self._state("check failed", None, excerpt(f"{type(exc).__name__}: {exc}", 300))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="genops-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass
class _Pending:
    adapter: ServingAdapter
    request: Any
    key: Hashable
    size: int
    future: asyncio.Future[bytes]


def _answer_batch(adapter: ServingAdapter, requests: list[Any]) -> list[bytes | Exception]:
    """``adapter.generate_batch`` in a worker thread; a failure of the batch as a whole (or
    a wrong number of answers) is retried one request at a time, so an error lands only on
    the request that causes it."""
    try:
        answers = adapter.generate_batch(requests)
        if len(answers) == len(requests):
            return answers
        raise RuntimeError(f"generate_batch answered {len(answers)} of {len(requests)} requests")
    except Exception as exc:
        log.warning(
            "a batch of %d failed (%s: %s); answering each alone",
            len(requests),
            type(exc).__name__,
            excerpt(str(exc), 200),
        )
    return ServingAdapter.generate_batch(adapter, requests)  # the default: one at a time


class MicroBatcher:
    """Combines concurrent ``/generate`` requests into one sampling call.

    A request whose adapter gives it a batch key (:meth:`ServingAdapter.batch_key`) joins
    the queue. The queue is sent to a worker thread as one
    :meth:`ServingAdapter.generate_batch` call (requests of one adapter and key, in arrival
    order, up to ``max_rows`` rows):

    - at once when no batch is running (a lone client waits for nothing);
    - when ``max_rows`` rows are queued, or ``max_wait`` seconds after the first queued
      request, while fewer than ``max_in_flight`` batches are running;
    - when a running batch finishes, if ``max_in_flight`` were running.

    So under load requests queue while the running batches sample, and the next batch takes
    them all: the busier the server, the larger the batches. Each request gets its own
    answer or error. Requests without a key, and requests of ``max_rows`` rows or more, go
    straight to the worker threads, one each, so they hold up no batch.
    The counters (``stats``) are in ``/metadata``.
    """

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        max_rows: int = DEFAULT_BATCH_MAX_ROWS,
        max_wait: float = DEFAULT_BATCH_WAIT_MS / 1000,
        max_in_flight: int = DEFAULT_BATCH_CONCURRENCY,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"batch max rows must be >= 1, got {max_rows}")
        if max_wait < 0:
            raise ValueError(f"batch wait must be >= 0, got {max_wait}")
        if max_in_flight < 1:
            raise ValueError(f"batch concurrency must be >= 1, got {max_in_flight}")
        self.executor = executor
        self.max_rows, self.max_wait, self.max_in_flight = max_rows, max_wait, max_in_flight
        self.pending: list[_Pending] = []
        self.pending_rows = 0
        self.in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self.stats = {"batches": 0, "batched_requests": 0, "largest_batch": 0, "alone": 0}

    async def submit(self, adapter: ServingAdapter, request: Any) -> bytes:
        """The request's response body; raises what its generation raised."""
        loop = asyncio.get_running_loop()
        key = adapter.batch_key(request)
        size = max(1, int(adapter.request_size(request))) if key is not None else 0
        if key is None or size >= self.max_rows:  # a batch of its own: not in the queue
            self.stats["alone"] += 1
            return await loop.run_in_executor(self.executor, adapter.generate, request)
        future: asyncio.Future[bytes] = loop.create_future()
        self.pending.append(_Pending(adapter, request, key, size, future))
        self.pending_rows += size
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        while self.pending and self.in_flight < self.max_in_flight:
            if self.in_flight and self.pending_rows < self.max_rows and self.max_wait > 0:
                if self._timer is None:
                    self._timer = loop.call_later(self.max_wait, self._on_timer, loop)
                return
            self._dispatch(loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self.pending and self.in_flight < self.max_in_flight:
            self._dispatch(loop)
            self._schedule(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the oldest request's group (same adapter and key) to a worker thread."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        first = self.pending[0]
        batch: list[_Pending] = []
        rest: list[_Pending] = []
        rows = 0
        for item in self.pending:
            if item.future.done():  # its client went away while it waited
                continue
            same = item.adapter is first.adapter and item.key == first.key
            if same and (not batch or rows + item.size <= self.max_rows):
                batch.append(item)
                rows += item.size
            else:
                rest.append(item)
        self.pending = rest
        self.pending_rows = sum(item.size for item in rest)
        if not batch:
            return
        self.in_flight += 1
        self.stats["batches"] += 1
        self.stats["batched_requests"] += len(batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        requests = [item.request for item in batch]
        try:
            job = loop.run_in_executor(self.executor, _answer_batch, first.adapter, requests)
        except RuntimeError as exc:  # the executor is shut down: the server is stopping
            self.in_flight -= 1
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        job.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Pending],
        done: asyncio.Future[list[bytes | Exception]],
    ) -> None:
        self.in_flight -= 1
        if self.pending:  # they have waited while this batch ran: no timer for them
            self._dispatch(loop)
        try:
            answers: list[bytes | Exception] = done.result()
        except BaseException as exc:  # the executor itself failed (shut down, cancelled)
            answers = [exc if isinstance(exc, Exception) else RuntimeError(str(exc))] * len(batch)
        for item, answer in zip(batch, answers, strict=True):
            if item.future.done():
                continue
            if isinstance(answer, Exception):
                item.future.set_exception(answer)
            else:
                item.future.set_result(answer)
        self._schedule(loop)


def _error(status: int, message: str) -> Response:
    """A JSON error whose message is cut to MAX_ERROR_CHARS; ASCII-escaped, so a lone
    surrogate from the request cannot break the rendering."""
    if len(message) > MAX_ERROR_CHARS:
        message = f"{message[:MAX_ERROR_CHARS]}... (cut)"
    body = json.dumps({"error": message}, ensure_ascii=True).encode()
    return Response(body, status_code=status, media_type="application/json")


def _internal(exc: BaseException) -> Response:
    log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=exc)
    return _error(500, f"internal error: {type(exc).__name__}: {exc}")


async def _read_body(request: Request, max_bytes: int) -> bytes | Response:
    """The body, or the 415/413 answer. The size is told from Content-Length before any
    byte is read; a chunked body is counted as it arrives and refused past the cap."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not _JSON_TYPE.match(content_type):
        return _error(415, f"content-type: expected application/json, got {excerpt(content_type)}")
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        return _error(413, f"body: {int(length):,} bytes; at most {max_bytes:,}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                return _error(413, f"body: more than {max_bytes:,} bytes; at most {max_bytes:,}")
            chunks.append(chunk)
    except ClientDisconnect:
        return _error(400, "body: the client went away before sending all of it")
    return b"".join(chunks)


def create_app(
    model_uri: str,
    tracking_uri: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    served: ServedModel | None = None,
    sample_workers: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    follow_interval: float = 0.0,
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    batch_concurrency: int = DEFAULT_BATCH_CONCURRENCY,
) -> FastAPI:
    """The FastAPI app; loads the model now (pass ``served`` to reuse a loaded one).

    ``sample_workers`` threads sample (default: asyncio's default executor size, CPUs + 4,
    at most 32); further requests wait for a free one. ``follow_interval`` > 0 on a
    ``models:/<name>@<alias>`` URI follows the alias (see :class:`AliasFollower`); the
    follower runs while the app's lifespan does (uvicorn, or a TestClient used as a
    context manager). ``batch_max_rows`` > 0 micro-batches concurrent requests of adapters
    that support it (:class:`MicroBatcher`, with ``batch_wait_ms`` and
    ``batch_concurrency``); 0 answers every request alone.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if sample_workers is not None and sample_workers < 1:
        raise ValueError(f"sample_workers must be >= 1, got {sample_workers}")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    if follow_interval < 0:
        raise ValueError(f"follow_interval must be >= 0, got {follow_interval}")
    if batch_max_rows < 0:
        raise ValueError(f"batch_max_rows must be >= 0, got {batch_max_rows}")
    workers = sample_workers or min(32, (os.cpu_count() or 1) + 4)
    slot = _Slot(served if served is not None else load_served_model(model_uri, tracking_uri))
    parsed = parse_models_uri(model_uri)
    follower = (
        AliasFollower(slot, model_uri, follow_interval)
        if follow_interval > 0 and parsed is not None and parsed[1] is not None
        else None
    )
    # A plain executor, not Starlette's run_in_threadpool (anyio worker threads): measured on
    # a busy 2-core machine, one client, 100-row requests to a small model, p50 32 ms through
    # anyio against 6 ms through asyncio's executor, the same code otherwise.
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genops-sample")
    batcher = (
        MicroBatcher(executor, batch_max_rows, batch_wait_ms / 1000, batch_concurrency)
        if batch_max_rows > 0
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="genops generative model",
        description=__doc__,
        version=str(slot.served.metadata.get("version") or "unregistered"),
        lifespan=lifespan,
    )
    app.state.slot = slot
    app.state.follower = follower
    app.state.batcher = batcher

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        return _internal(exc)

    # health and metadata run on the event loop, not in the worker threads: they answer
    # even when every worker is busy sampling.
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata() -> Response:
        import torch

        body = {
            **slot.served.metadata,
            "follow": slot.follow,
            "max_rows": max_rows,
            "max_body_bytes": max_body_bytes,
            "torch_threads": torch.get_num_threads(),
            "sample_workers": workers,
            "batching": None
            if batcher is None
            else {
                "max_rows": batcher.max_rows,
                "wait_ms": batcher.max_wait * 1000,
                "concurrency": batcher.max_in_flight,
                **batcher.stats,
            },
        }
        return Response(json.dumps(body, default=str).encode(), media_type="application/json")

    @app.post("/generate")
    async def generate(http_request: Request) -> Response:
        # Every answer comes from here, 500 included: an exception raised to uvicorn would
        # close the keep-alive connection.
        model = slot.served  # this request's model, whatever swap happens meanwhile
        raw = await _read_body(http_request, max_body_bytes)
        if isinstance(raw, Response):
            return raw
        try:
            request = model.adapter.parse(decode_json(raw), max_rows)
            events = model.adapter.stream(request)
        except RequestError as exc:
            return _error(400, str(exc))
        except Exception as exc:
            return _internal(exc)
        if events is not None:  # Starlette iterates it in a worker thread
            return StreamingResponse(events, media_type="text/event-stream")
        try:
            # generating and rendering in one trip to a worker thread: each hand-over costs
            # a wake-up, which shows on a busy 2-core machine. Batched with concurrent
            # requests when the adapter can.
            if batcher is not None:
                body = await batcher.submit(model.adapter, request)
            else:
                loop = asyncio.get_running_loop()
                body = await loop.run_in_executor(executor, model.adapter.generate, request)
        except RequestError as exc:
            return _error(400, str(exc))
        except CannotServe as exc:
            return _error(422, str(exc))
        except Exception as exc:
            return _internal(exc)
        return Response(body, media_type="application/json")

    return app


def serve(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    tracking_uri: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    log_level: str = "info",
    access_log: bool = True,
    torch_threads: int | None = 1,
    sample_workers: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    follow_interval: float = DEFAULT_FOLLOW_INTERVAL,
    batch_max_rows: int = DEFAULT_BATCH_MAX_ROWS,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    batch_concurrency: int = DEFAULT_BATCH_CONCURRENCY,
) -> None:
    """Load the model and serve it with uvicorn until interrupted (one process).

    ``torch_threads`` sets torch's intra-op threads for the whole process (None leaves
    torch's default, one per core). One is the default: requests already run in parallel
    worker threads, and on a busy 2-core machine two intra-op threads per request made
    100-row requests from a single client about 4x slower, and a 50,000-row sample 3x
    slower, than one thread did.

    While it runs, the server is listed in ``$GENOPS_HOME/serving/servers/<pid>.json``
    (its URL, model URI and follow interval), which ``genops rollback`` and ``genops
    promote`` read to say which local servers a move of the alias reaches.
    """
    import uvicorn

    from genops.core.serving.deploy import forget_server, record_server

    if torch_threads is not None:
        if torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {torch_threads}")
        import torch

        torch.set_num_threads(torch_threads)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    app = create_app(
        model_uri,
        tracking_uri=tracking_uri,
        max_rows=max_rows,
        sample_workers=sample_workers,
        max_body_bytes=max_body_bytes,
        follow_interval=follow_interval,
        batch_max_rows=batch_max_rows,
        batch_wait_ms=batch_wait_ms,
        batch_concurrency=batch_concurrency,
    )
    follows = follow_interval if app.state.follower is not None else 0.0
    inner = app.router.lifespan_context

    # Listed while the app runs: uvicorn re-raises SIGTERM after its shutdown, so code after
    # uvicorn.run would not run; the lifespan's end does.
    @asynccontextmanager
    async def listed(a: Any) -> AsyncIterator[Any]:
        try:
            record = record_server(os.getpid(), f"http://{host}:{port}", model_uri, follows)
        except OSError as exc:  # a read-only home (a container): serve all the same
            log.warning("not listed for genops rollback (%s)", exc)
            record = None
        try:
            async with inner(a) as state:
                yield state
        finally:
            if record is not None:
                forget_server(record)

    app.router.lifespan_context = listed
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m genops.core.serving.server",
        description="Serve a registered synthesizer or image generator over HTTP "
        "(/health, /metadata, /generate).",
    )
    parser.add_argument(
        "--model-uri", required=True, help="e.g. models:/adult-synthesizer@champion"
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="default: $MLFLOW_TRACKING_URI or sqlite:///$GENOPS_HOME/mlflow.db",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--max-rows",
        type=int,
        default=int(os.environ.get(MAX_ROWS_ENV, DEFAULT_MAX_ROWS)),
        help=f"largest num_rows a request may ask for (default ${MAX_ROWS_ENV} or "
        f"{DEFAULT_MAX_ROWS})",
    )
    add_hardening_arguments(parser)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=int(os.environ.get(TORCH_THREADS_ENV) or 1),
        help=f"torch intra-op threads (default ${TORCH_THREADS_ENV} or 1)",
    )
    parser.add_argument(
        "--sample-workers",
        type=int,
        default=None,
        help="threads that sample concurrently (default: CPUs + 4, at most 32)",
    )
    parser.add_argument(
        "--batch-max-rows",
        type=int,
        default=DEFAULT_BATCH_MAX_ROWS,
        help="micro-batching: most rows answered by one sampling call; 0 = every request "
        f"alone (default {DEFAULT_BATCH_MAX_ROWS})",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=DEFAULT_BATCH_WAIT_MS,
        help="micro-batching: how long a request queued while a batch runs waits for others "
        f"(default {DEFAULT_BATCH_WAIT_MS})",
    )
    parser.add_argument(
        "--batch-concurrency",
        type=int,
        default=DEFAULT_BATCH_CONCURRENCY,
        help=f"micro-batching: batches sampling at once (default {DEFAULT_BATCH_CONCURRENCY})",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    serve(
        args.model_uri,
        host=args.host,
        port=args.port,
        tracking_uri=args.tracking_uri or default_tracking_uri(),
        max_rows=args.max_rows,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        torch_threads=args.torch_threads,
        sample_workers=args.sample_workers,
        max_body_bytes=args.max_body_bytes,
        follow_interval=args.follow_interval,
        batch_max_rows=args.batch_max_rows,
        batch_wait_ms=args.batch_wait_ms,
        batch_concurrency=args.batch_concurrency,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
