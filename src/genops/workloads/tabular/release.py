"""``genops generate``: a release of N synthetic rows as K Parquet shards, written by a pool
of local processes (the KFP pipeline ``tabular-generate`` spreads the same shards over the
cluster's nodes). The shard logic is :mod:`genops.workloads.tabular.generation`; this module
finds the model, runs the pool, checks the result, writes the manifest and records the
release as an MLflow run beside the model's training run.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from genops.workloads.tabular.generation import (
    DEFAULT_CHUNK_ROWS,
    MANIFEST,
    Destination,
    GenerationError,
    Manifest,
    Sampler,
    ShardPlan,
    ShardResult,
    arrow_schema,
    check_release,
    plan_shards,
    prepare_destination,
    schema_listing,
    write_manifest,
    write_shard,
)

__all__ = ["ResolvedModel", "generate_release", "load_for_release", "resolve_model"]

SYNTHESIZER_ARTIFACT = "synthesizer"  # genops.workloads.tabular.pyfunc logs it under this name


@dataclass(frozen=True)
class ResolvedModel:
    """A synthesizer directory on this machine and what it is, for the manifest."""

    path: str
    label: str  # models:/name/version, or the folder
    name: str | None = None
    version: str | None = None
    run_id: str | None = None


def resolve_model(model: str, tracking_uri: str | None, into: str | Path) -> ResolvedModel:
    """``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<id>/model``, or a
    folder (a saved synthesizer, or a downloaded pyfunc model) -> a synthesizer directory."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        for candidate in (folder, folder / "artifacts" / SYNTHESIZER_ARTIFACT):
            if (candidate / "meta.json").is_file():
                return ResolvedModel(str(candidate), str(folder.resolve()))
        raise GenerationError(
            f"model {model}: a folder, but neither a saved synthesizer (meta.json) nor a "
            f"pyfunc model with artifacts/{SYNTHESIZER_ARTIFACT}/meta.json"
        )
    if not model.startswith(("models:/", "runs:/")):
        raise GenerationError(
            f"model {model}: expected models:/<name>@<alias>, models:/<name>/<version>, "
            "runs:/<run id>/model or a folder"
        )
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    name = version = run_id = None
    label = model
    if model.startswith("models:/"):
        from genops.core.serving.options import parse_models_uri

        client = mlflow.MlflowClient()
        parsed = parse_models_uri(model)
        if parsed is None:
            raise GenerationError(
                f"model {model}: expected models:/<name>@<alias> or models:/<name>/<version>"
            )
        name, alias, number = parsed
        try:
            found = (
                client.get_model_version_by_alias(name, alias)
                if alias
                else client.get_model_version(name, str(number))
            )
        except mlflow.exceptions.MlflowException as exc:
            raise GenerationError(f"model {model}: {exc.message}") from exc
        version, run_id = str(found.version), found.run_id
        label = f"models:/{name}/{version}"
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=label, dst_path=str(into))
    except mlflow.exceptions.MlflowException as exc:
        raise GenerationError(f"model {model}: {exc.message}") from exc
    synth = Path(local) / "artifacts" / SYNTHESIZER_ARTIFACT
    if not (synth / "meta.json").is_file():
        raise GenerationError(
            f"model {model}: not a tabular synthesizer (no artifacts/{SYNTHESIZER_ARTIFACT}/"
            "meta.json); generate writes the rows of a tabular-synth model"
        )
    return ResolvedModel(str(synth), label, name, version, run_id)


def load_for_release(path: str, threads: int = 1) -> Sampler:
    """Load the synthesizer in a worker: one torch thread each, the workers are the
    parallelism."""
    import torch

    from genops.workloads.tabular.models import load_synthesizer

    torch.set_num_threads(max(1, threads))
    return cast(Sampler, load_synthesizer(path, device="auto"))


_WORKER: dict[str, Any] = {}


def _init_worker(path: str) -> None:
    import signal
    import sys

    # SIGTERM (the pool stopping a worker, `kill`) unwinds like an exception, so a shard
    # being written removes its staging file.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    _WORKER["synthesizer"] = load_for_release(path)


def _write_in_worker(
    plan: dict[str, int], destination: str, conditions: dict[str, str], chunk_rows: int
) -> dict[str, Any]:
    result = write_shard(
        _WORKER["synthesizer"],
        ShardPlan.from_dict(plan),
        destination,
        conditions=conditions,
        chunk_rows=chunk_rows,
    )
    return result.to_dict()


def _validate_conditions(synthesizer: Sampler, conditions: Mapping[str, str]) -> None:
    categories = synthesizer.categories
    for column, value in conditions.items():
        if column not in categories:
            raise GenerationError(
                f"conditions: '{column}' is not a categorical column; allowed: {sorted(categories)}"
            )
        if str(value) not in categories[column]:
            raise GenerationError(
                f"conditions: unknown value '{value}' for column '{column}'; allowed: "
                f"{categories[column]}"
            )


def generate_release(
    model: str,
    rows: int,
    shards: int,
    destination: str,
    *,
    seed: int = 0,
    workers: int | None = None,
    conditions: Mapping[str, str] | None = None,
    overwrite: bool = False,
    tracking_uri: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
    log_to_mlflow: bool = True,
) -> Manifest:
    """Write the release and return its manifest. On any failure (a bad shard, Ctrl-C) the
    shards this call published are removed, no manifest is written, and the error is
    raised (a :class:`GenerationError` names the shard and the rule)."""
    plans = plan_shards(rows, shards, seed)  # argument errors before any work
    conditions = {str(k): str(v) for k, v in (conditions or {}).items()}
    workers = max(1, min(workers or os.cpu_count() or 1, len(plans)))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genops-release-") as scratch:
        resolved = resolve_model(model, tracking_uri, scratch)
        synthesizer = load_for_release(resolved.path)
        _validate_conditions(synthesizer, conditions)
        schema = arrow_schema(list(synthesizer.columns), synthesizer.dtypes)
        dest = prepare_destination(destination, overwrite)
        results: list[ShardResult] = []
        try:
            results = _run_pool(
                resolved.path, plans, dest.uri, conditions, chunk_rows, workers, progress
            )
            files = check_release(dest.uri, plans, schema)
        except BaseException:
            dest.delete([p.name for p in plans])  # nothing half-written stays
            dest.delete_staged([p.name for p in plans])
            raise
    manifest = _manifest(
        dest.uri,
        resolved.label,
        plans,
        {r.name: r.bytes for r in results},
        seed,
        schema,
        files,
        conditions,
        time.perf_counter() - started,
    )
    write_manifest(dest.uri, manifest)
    if log_to_mlflow and resolved.run_id:
        _log_release(resolved, manifest, workers)
    return manifest


def _manifest(
    destination: str,
    model: str,
    plans: Sequence[ShardPlan],
    shard_bytes: Mapping[str, int],
    seed: int,
    schema: Any,
    files: list[dict[str, Any]],
    conditions: dict[str, str],
    seconds: float,
) -> Manifest:
    """The release's manifest: the checked files with each shard's bytes and seed."""
    seeds = {p.name: p.seed for p in plans}
    for entry in files:
        entry["bytes"] = int(shard_bytes.get(entry["name"], 0))
        entry["seed"] = seeds[entry["name"]]
    return Manifest(
        destination=destination,
        model=model,
        rows=sum(p.rows for p in plans),
        shards=len(plans),
        seed=int(seed),
        schema=schema_listing(schema),
        files=files,
        conditions=conditions,
        seconds=round(seconds, 3),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _run_pool(
    path: str,
    plans: list[ShardPlan],
    destination: str,
    conditions: dict[str, str],
    chunk_rows: int,
    workers: int,
    progress: bool,
) -> list[ShardResult]:
    from tqdm import tqdm

    total = sum(p.rows for p in plans)
    bar = tqdm(total=total, unit="rows", unit_scale=True, disable=not progress, desc="generate")
    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    results: list[ShardResult] = []
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(path,)
    ) as pool:
        pending: set[Future[dict[str, Any]]] = {
            pool.submit(_write_in_worker, p.to_dict(), destination, conditions, chunk_rows)
            for p in plans
        }
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    result = ShardResult(**future.result())  # raises the worker's error
                    results.append(result)
                    bar.update(result.rows)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            bar.close()
    return sorted(results, key=lambda r: r.index)


def _log_release(resolved: ResolvedModel, manifest: Manifest, workers: int) -> None:
    """An MLflow run in the model's experiment: what was written, from which version, how
    fast; the manifest as an artifact."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment_id = client.get_run(str(resolved.run_id)).info.experiment_id
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"release-{manifest.rows}-rows",
        tags={
            "genops.kind": "release",
            "genops.model": resolved.label,
            "genops.release.destination": manifest.destination,
        },
        description=(
            f"{manifest.rows:,} synthetic rows from {resolved.label} as {manifest.shards} "
            f"Parquet shards at {manifest.destination} (seed {manifest.seed})."
        ),
    ):
        mlflow.log_params(
            {
                "rows": manifest.rows,
                "shards": manifest.shards,
                "seed": manifest.seed,
                "workers": workers,
                "conditions": ",".join(f"{k}={v}" for k, v in manifest.conditions.items()),
                "model_version": resolved.version,
            }
        )
        mlflow.log_metrics(
            {
                "seconds": manifest.seconds,
                "rows_per_second": manifest.rows / max(manifest.seconds, 1e-9),
                "bytes": float(sum(int(f["bytes"]) for f in manifest.files)),
            }
        )
        mlflow.log_text(manifest.to_json(), MANIFEST)


# ---------------------------------------------------------------- the KFP steps' logic
# pipelines/tabular_generate.py: plan -> ParallelFor(write one shard) -> check + manifest.


def plan_step(
    model: str,
    rows: int,
    shards: int,
    destination: str,
    seed: int,
    conditions_json: str,
    overwrite: bool,
    tracking_uri: str,
    synthesizer_dir: str,
) -> tuple[list[dict[str, int]], dict[str, Any]]:
    """Check the arguments, the model and the destination; copy the synthesizer to
    ``synthesizer_dir`` (the artifact every shard reads); returns the shard plans (the
    ParallelFor items) and what the check step records."""
    import json
    import shutil

    plans = plan_shards(rows, shards, seed)
    conditions = _conditions_from_json(conditions_json)
    with tempfile.TemporaryDirectory(prefix="genops-release-") as scratch:
        resolved = resolve_model(model, tracking_uri or None, scratch)
        synthesizer = load_for_release(resolved.path)
        _validate_conditions(synthesizer, conditions)
        prepare_destination(destination, overwrite)
        shutil.copytree(resolved.path, synthesizer_dir, dirs_exist_ok=True)
    info = {
        "model": resolved.label,
        "model_version": resolved.version or "",
        "model_run_id": resolved.run_id or "",
        "started": time.time(),
        "conditions": json.dumps(conditions),
    }
    return [p.to_dict() for p in plans], info


def shard_step(
    synthesizer_dir: str, plan: Mapping[str, Any], destination: str, conditions_json: str
) -> dict[str, Any]:
    """Write one planned shard (a ParallelFor iteration)."""
    synthesizer = load_for_release(synthesizer_dir, threads=os.cpu_count() or 1)
    result = write_shard(
        synthesizer,
        ShardPlan.from_dict(plan),
        destination,
        conditions=_conditions_from_json(conditions_json),
    )
    return result.to_dict()


def check_step(
    synthesizer_dir: str,
    info: Mapping[str, Any],
    plans: list[dict[str, Any]],
    results: list[dict[str, Any]],
    destination: str,
    seed: int,
    tracking_uri: str,
    manifest_path: str,
) -> Manifest:
    """Check every shard at the destination against the plan, then write the manifest (to
    the destination and to ``manifest_path``) and log the release to MLflow. A release that
    fails its check is removed."""
    synthesizer = load_for_release(synthesizer_dir)
    schema = arrow_schema(list(synthesizer.columns), synthesizer.dtypes)
    shard_plans = [ShardPlan.from_dict(p) for p in plans]
    dest = Destination(destination)
    try:
        files = check_release(destination, shard_plans, schema)
    except GenerationError:
        dest.delete([p.name for p in shard_plans])
        raise
    manifest = _manifest(
        dest.uri,
        str(info.get("model", "")),
        shard_plans,
        {str(r["name"]): int(r["bytes"]) for r in results},
        seed,
        schema,
        files,
        _conditions_from_json(str(info.get("conditions") or "{}")),
        time.time() - float(info.get("started") or time.time()),
    )
    write_manifest(destination, manifest)
    Path(manifest_path).write_text(manifest.to_json())
    run_id = str(info.get("model_run_id") or "")
    if run_id:
        if tracking_uri:
            import mlflow

            mlflow.set_tracking_uri(tracking_uri)
        resolved = ResolvedModel(
            synthesizer_dir, manifest.model, None, str(info.get("model_version")), run_id
        )
        _log_release(resolved, manifest, workers=len(shard_plans))
    return manifest


def _conditions_from_json(text: str) -> dict[str, str]:
    import json

    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise GenerationError(f"conditions: not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise GenerationError(f"conditions: expected a JSON object, got {text!r}")
    return {str(k): str(v) for k, v in value.items()}
