"""Deployment targets for a champion model, and the smoke test that checks one.

- ``local``: the REST server of :mod:`genops.serving.server`, started detached on 127.0.0.1
  (its pid in ``$GENOPS_HOME/serving/<port>.pid``), so the endpoint outlives the pipeline
  task; ``stop_local`` (``make serve-stop``) ends it.
- ``kserve``: an InferenceService rendered by :mod:`genops.serving.kserve` and applied with
  the Kubernetes client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from genops.paths import genops_home


class DeployError(RuntimeError):
    """A deployment that could not be brought up."""


def serving_dir() -> Path:
    path = genops_home() / "serving"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def stop_local(port: int) -> bool:
    """Stop the local server recorded for ``port``; True when one was running."""
    pidfile = serving_dir() / f"{port}.pid"
    if not pidfile.exists():
        return False
    pid = int(json.loads(pidfile.read_text())["pid"])
    pidfile.unlink()
    if not _pid_alive(pid):
        return False
    os.killpg(pid, signal.SIGTERM)
    for _ in range(100):
        if not _pid_alive(pid):
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    return True


def deploy_local(
    model_uri: str,
    tracking_uri: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_rows: int = 10_000,
    timeout: float = 120.0,
) -> str:
    """(Re)start the local server for ``model_uri``; returns its base URL once healthy.

    Refuses a port another process holds (e.g. a `make serve` in a terminal): a health check
    answered by that server would pass for ours."""
    stop_local(port)
    import socket

    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise DeployError(
                f"{host}:{port} is already in use by a server this pipeline did not start; "
                "stop it or set deploy.port"
            )
    log = serving_dir() / f"{port}.log"
    cmd = [
        sys.executable, "-m", "genops.serving.server",
        "--model-uri", model_uri, "--tracking-uri", tracking_uri,
        "--host", host, "--port", str(port), "--max-rows", str(max_rows),
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=os.getcwd()
        )
    (serving_dir() / f"{port}.pid").write_text(
        json.dumps({"pid": proc.pid, "model_uri": model_uri, "url": f"http://{host}:{port}"})
    )
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DeployError(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_local(port)
    raise DeployError(f"server on {url} not healthy after {timeout:.0f} s; see {log}")


@dataclass
class SmokeResult:
    passed: bool
    detail: str


def smoke_test(
    url: str,
    expected_columns: list[str],
    categories: dict[str, list[str]],
    rows: int = 20,
    timeout: float = 60.0,
) -> SmokeResult:
    """Health, then one generate request whose response must have the real schema."""
    try:
        health = httpx.get(f"{url}/health", timeout=timeout)
        if health.status_code != 200:
            return SmokeResult(False, f"/health answered {health.status_code}")
        reply = httpx.post(f"{url}/generate", json={"num_rows": rows, "seed": 0}, timeout=timeout)
    except httpx.HTTPError as exc:
        return SmokeResult(False, f"endpoint unreachable: {exc}")
    if reply.status_code != 200:
        return SmokeResult(False, f"/generate answered {reply.status_code}: {reply.text[:300]}")
    try:
        body: dict[str, Any] = reply.json()
    except ValueError:
        return SmokeResult(False, f"/generate answered non-JSON: {reply.text[:300]}")
    columns, records = body.get("columns"), body.get("rows")
    if columns != expected_columns:
        return SmokeResult(False, f"columns {columns} != expected {expected_columns}")
    if not isinstance(records, list) or len(records) != rows:
        return SmokeResult(False, f"expected {rows} rows, got {len(records or [])}")
    for record in records:
        if not isinstance(record, dict) and len(record) != len(columns):
            return SmokeResult(False, f"a row has {len(record)} values for {len(columns)} columns")
        values = record if isinstance(record, dict) else dict(zip(columns, record, strict=True))
        for name, allowed in categories.items():
            if values.get(name) not in allowed:
                return SmokeResult(
                    False, f"column '{name}': value {values.get(name)!r} not allowed"
                )
    return SmokeResult(True, f"{rows} rows with the expected {len(columns)} columns")


def smoke_test_v2(
    url: str,
    model_name: str,
    expected_columns: list[str],
    rows: int = 20,
    timeout: float = 120.0,
) -> SmokeResult:
    """The same check against a KServe InferenceService (MLServer, Open Inference Protocol
    v2): readiness, then one inference request whose outputs must be the real columns."""
    payload = {
        "inputs": [
            {"name": "num_rows", "shape": [1], "datatype": "INT64", "data": [rows]},
            {"name": "seed", "shape": [1], "datatype": "INT64", "data": [0]},
        ]
    }
    try:
        ready = httpx.get(f"{url}/v2/models/{model_name}/ready", timeout=timeout)
        if ready.status_code != 200:
            return SmokeResult(
                False,
                f"model not ready: /v2/models/{model_name}/ready answered {ready.status_code}",
            )
        reply = httpx.post(f"{url}/v2/models/{model_name}/infer", json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        return SmokeResult(False, f"endpoint unreachable: {exc}")
    if reply.status_code != 200:
        return SmokeResult(False, f"infer answered {reply.status_code}: {reply.text[:300]}")
    try:
        outputs = reply.json()["outputs"]
        columns = [o["name"] for o in outputs]
        lengths = {len(o["data"]) for o in outputs}
    except (ValueError, KeyError, TypeError) as exc:
        return SmokeResult(False, f"infer answered an unexpected body: {exc}")
    if sorted(columns) != sorted(expected_columns):
        return SmokeResult(False, f"outputs {columns} != expected {expected_columns}")
    if lengths != {rows}:
        return SmokeResult(False, f"expected {rows} values per output, got {sorted(lengths)}")
    return SmokeResult(True, f"{rows} rows with the expected {len(columns)} columns (v2)")


def image_smoke_test(
    url: str, shape: tuple[int, int, int], steps: int = 10, timeout: float = 120.0
) -> SmokeResult:
    """Health, the served classes from /metadata, then one image per class: the labels
    must come back in order and every PNG must decode to ``shape`` (C, H, W)."""
    from genops.image.request import decode_png

    try:
        health = httpx.get(f"{url}/health", timeout=timeout)
        if health.status_code != 200:
            return SmokeResult(False, f"/health answered {health.status_code}")
        meta = httpx.get(f"{url}/metadata", timeout=timeout).json()
        classes = meta.get("classes") if isinstance(meta, dict) else None
        if not classes:
            return SmokeResult(False, "/metadata names no classes: not an image model")
        body = {"classes": classes, "steps": steps, "seed": 0, "format": "png"}
        reply = httpx.post(f"{url}/generate", json=body, timeout=timeout)
    except (httpx.HTTPError, ValueError) as exc:
        return SmokeResult(False, f"endpoint unreachable or not JSON: {exc}")
    if reply.status_code != 200:
        return SmokeResult(False, f"/generate answered {reply.status_code}: {reply.text[:300]}")
    try:
        answer = reply.json()
        labels, images = answer["labels"], answer["images"]
        shapes = {tuple(decode_png(img).shape) for img in images}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return SmokeResult(False, f"/generate answered an unexpected body: {exc}")
    if labels != classes or len(images) != len(classes):
        return SmokeResult(False, f"asked for {classes}, got labels {labels}")
    if shapes != {shape}:
        return SmokeResult(False, f"images decode to shapes {sorted(shapes)}, expected {shape}")
    return SmokeResult(True, f"{len(images)} images, one per class, each {shape} (C,H,W)")


def image_smoke_test_v2(
    url: str, model_name: str, class_name: str, steps: int = 10, timeout: float = 120.0
) -> SmokeResult:
    """The image check over the Open Inference Protocol v2 (KServe's MLServer runtime):
    readiness, then two images of one class; outputs must carry labels and PNGs."""
    payload = {
        "inputs": [
            {"name": "label", "shape": [1], "datatype": "BYTES", "data": [class_name]},
            {"name": "count", "shape": [1], "datatype": "INT64", "data": [2]},
            {"name": "steps", "shape": [1], "datatype": "INT64", "data": [steps]},
            {"name": "seed", "shape": [1], "datatype": "INT64", "data": [0]},
        ]
    }
    try:
        ready = httpx.get(f"{url}/v2/models/{model_name}/ready", timeout=timeout)
        if ready.status_code != 200:
            return SmokeResult(False, f"model not ready: answered {ready.status_code}")
        reply = httpx.post(f"{url}/v2/models/{model_name}/infer", json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        return SmokeResult(False, f"endpoint unreachable: {exc}")
    if reply.status_code != 200:
        return SmokeResult(False, f"infer answered {reply.status_code}: {reply.text[:300]}")
    try:
        outputs = {o["name"]: o["data"] for o in reply.json()["outputs"]}
    except (ValueError, KeyError, TypeError) as exc:
        return SmokeResult(False, f"infer answered an unexpected body: {exc}")
    labels = outputs.get("label")
    if labels != [class_name, class_name] or len(outputs.get("png_base64", [])) != 2:
        return SmokeResult(False, f"expected 2 images of {class_name!r}, got labels {labels}")
    return SmokeResult(True, f"2 images of class {class_name!r} (v2)")
