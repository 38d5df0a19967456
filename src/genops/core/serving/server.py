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
generated; the adapters' models do not mutate on sampling, so no lock is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import mlflow
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from genops.core.serving.request import DEFAULT_MAX_ROWS, CannotServe, RequestError
from genops.core.workload import ServingAdapter, get_workload
from genops.paths import default_tracking_uri

__all__ = [
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

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


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
    match = _MODELS_URI.match(model_uri)
    if match is None:
        return {
            "name": None,
            "version": None,
            "aliases": [],
            "tags": {},
            "source": model_uri,
            "run_id": None,
        }
    client = mlflow.MlflowClient()
    name = match["name"]
    if match["alias"] is not None:
        version = client.get_model_version_by_alias(name, match["alias"])
    elif match["version"] is not None and match["version"].isdigit():
        version = client.get_model_version(name, match["version"])
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
    """Load the pyfunc model, pick its workload's adapter, collect its registry metadata."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    python_model = pyfunc.unwrap_python_model()
    workload = getattr(python_model, "workload", None)
    if not isinstance(workload, str):
        raise TypeError(f"{model_uri} is not a genops model (its python model names no workload)")
    adapter = get_workload(workload).serving_adapter(python_model, pyfunc)
    registered = resolve_model_version(model_uri)
    tags = registered.pop("tags")
    meta = pyfunc.metadata
    metadata = {
        "model_uri": model_uri,
        **registered,
        "workload": workload,
        "tags": {key: tags.get(key) for key in LINEAGE_TAGS},
        "all_tags": tags,
        "mlflow_model_id": getattr(meta, "model_id", None),
        "input_schema": _schema_dict(meta.get_input_schema()),
        "output_schema": _schema_dict(meta.get_output_schema()),
        **adapter.metadata(),
    }
    return ServedModel(model_uri, pyfunc, adapter, metadata)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"body: not valid JSON: {exc}") from exc


def create_app(
    model_uri: str,
    tracking_uri: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    served: ServedModel | None = None,
    sample_workers: int | None = None,
) -> FastAPI:
    """The FastAPI app; loads the model now (pass ``served`` to reuse a loaded one).

    ``sample_workers`` threads sample (default: asyncio's default executor size, CPUs + 4,
    at most 32); further requests wait for a free one.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if sample_workers is not None and sample_workers < 1:
        raise ValueError(f"sample_workers must be >= 1, got {sample_workers}")
    workers = sample_workers or min(32, (os.cpu_count() or 1) + 4)
    model = served if served is not None else load_served_model(model_uri, tracking_uri)
    # A plain executor, not Starlette's run_in_threadpool (anyio worker threads): measured on
    # a busy 2-core machine, one client, 100-row requests to a small model, p50 32 ms through
    # anyio against 6 ms through asyncio's executor, the same code otherwise.
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genops-sample")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="genops generative model",
        description=__doc__,
        version=str(model.metadata.get("version") or "unregistered"),
        lifespan=lifespan,
    )
    app.state.served = model

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    # health and metadata run on the event loop, not in the worker threads: they answer
    # even when every worker is busy sampling.
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        import torch

        return {
            **model.metadata,
            "max_rows": max_rows,
            "torch_threads": torch.get_num_threads(),
            "sample_workers": workers,
        }

    @app.post("/generate")
    async def generate(http_request: Request) -> Response:
        try:
            request = model.adapter.parse(_decode(await http_request.body()), max_rows)
        except RequestError as exc:
            return _error(400, str(exc))
        events = model.adapter.stream(request)
        if events is not None:  # Starlette iterates it in a worker thread
            return StreamingResponse(events, media_type="text/event-stream")
        try:
            # generating and rendering in one trip to a worker thread: each hand-over costs
            # a wake-up, which shows on a busy 2-core machine.
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(executor, model.adapter.generate, request)
        except RequestError as exc:
            return _error(400, str(exc))
        except CannotServe as exc:
            return _error(422, str(exc))
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
) -> None:
    """Load the model and serve it with uvicorn until interrupted (one process).

    ``torch_threads`` sets torch's intra-op threads for the whole process (None leaves
    torch's default, one per core). One is the default: requests already run in parallel
    worker threads, and on a busy 2-core machine two intra-op threads per request made
    100-row requests from a single client about 4x slower, and a 50,000-row sample 3x
    slower, than one thread did.
    """
    import uvicorn

    if torch_threads is not None:
        if torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {torch_threads}")
        import torch

        torch.set_num_threads(torch_threads)
    app = create_app(
        model_uri, tracking_uri=tracking_uri, max_rows=max_rows, sample_workers=sample_workers
    )
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
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
