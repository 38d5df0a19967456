"""Deployment targets for a champion model (each workload brings its own smoke test).

- ``local``: the REST server of :mod:`genops.core.serving.server`, started detached on 127.0.0.1
  (its pid in ``$GENOPS_HOME/serving/<port>.pid``), so the endpoint outlives the pipeline
  task; ``stop_local`` (``make serve-stop``) ends it.
- ``kserve``: an InferenceService rendered by :mod:`genops.core.serving.kserve` and applied with
  the Kubernetes client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
        sys.executable, "-m", "genops.core.serving.server",
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
