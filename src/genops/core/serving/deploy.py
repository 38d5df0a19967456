"""Deployment targets for a champion model (each workload brings its own smoke test).

- ``local``: the REST server of :mod:`genops.core.serving.server`, started detached on 127.0.0.1
  (its pid in ``$GENOPS_HOME/serving/<port>.pid``), so the endpoint outlives the pipeline
  task; ``stop_local`` (``make serve-stop``) ends it and says what it found: a server it
  stopped, one found dead (the pid file outlived the process), or none recorded.
- ``kserve``: an InferenceService rendered by :mod:`genops.core.serving.kserve` and applied with
  the Kubernetes client.

Every running model server, whoever started it (``genops serve``, ``make serve``, the deploy
step), lists itself in ``$GENOPS_HOME/serving/servers/<pid>.json`` while it runs:
:func:`local_servers` reads them (dropping those whose process is gone) and
:func:`alias_move_report` tells, after a promotion or a rollback, what each server of that
model serves now and whether it will follow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from genops.paths import genops_home

SERVER_MODULE = "genops.core.serving.server"


class DeployError(RuntimeError):
    """A deployment that could not be brought up."""


def serving_dir() -> Path:
    path = genops_home() / "serving"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a dead child its parent has not reaped)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_server(pid: int) -> bool:
    """The process runs the genops model server (not another process that got the pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc: cannot tell, trust the record
    return SERVER_MODULE.encode() in command or b"genops serve" in command.replace(b"/", b" ")


@dataclass(frozen=True)
class StopResult:
    """What ``stop_local`` found on a port: ``stopped`` (it was running and is stopped now),
    ``found dead`` (a pid file whose process is gone, or whose pid is now another
    program's) or ``none`` (no server recorded). True only when a server was stopped."""

    state: str
    port: int
    pid: int | None = None
    detail: str = ""

    def __bool__(self) -> bool:
        return self.state == "stopped"

    def message(self) -> str:
        if self.state == "stopped":
            return f"stopped: the server on port {self.port} (pid {self.pid}); {self.detail}"
        if self.state == "found dead":
            return f"found dead: the server on port {self.port} (pid {self.pid}) {self.detail}"
        return f"no server recorded on port {self.port}: {self.detail}"


def stop_local(port: int) -> StopResult:
    """Stop the local server recorded for ``port`` (SIGTERM to its process group, SIGKILL
    after 10 s) and remove its pid file; says what it found."""
    pidfile = serving_dir() / f"{port}.pid"
    log = serving_dir() / f"{port}.log"
    if not pidfile.exists():
        return StopResult("none", port, None, f"no pid file {pidfile}")
    try:
        pid = int(json.loads(pidfile.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        pidfile.unlink(missing_ok=True)
        return StopResult("found dead", port, None, f"has an unreadable pid file ({exc}); removed")
    pidfile.unlink()
    if not _pid_alive(pid):
        return StopResult(
            "found dead", port, pid, f"was not running; its pid file is removed; see {log}"
        )
    if not _is_server(pid):
        return StopResult(
            "found dead",
            port,
            pid,
            f"was not running: pid {pid} is now another program, left alone; its pid file "
            f"is removed; see {log}",
        )
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:  # not a group leader: the process alone
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not _pid_alive(pid):
            return StopResult("stopped", port, pid, "it exited on SIGTERM")
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        os.kill(pid, signal.SIGKILL)
    return StopResult("stopped", port, pid, "killed with SIGKILL after 10 s of SIGTERM")


@dataclass(frozen=True)
class LocalServer:
    """A running model server as it listed itself (see :func:`record_server`)."""

    pid: int
    url: str
    model_uri: str
    follow_interval: float
    started: str


def servers_dir() -> Path:
    path = serving_dir() / "servers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_server(pid: int, url: str, model_uri: str, follow_interval: float) -> Path:
    """List a starting server (``serve`` calls it; :func:`forget_server` at exit)."""
    record = LocalServer(pid, url, model_uri, follow_interval, time.strftime("%Y-%m-%dT%H:%M:%S"))
    path = servers_dir() / f"{pid}.json"
    path.write_text(json.dumps(asdict(record)))
    return path


def forget_server(path: Path) -> None:
    path.unlink(missing_ok=True)


def local_servers() -> list[LocalServer]:
    """The model servers running on this machine under this ``$GENOPS_HOME``; records of
    processes that are gone (a SIGKILL skips the clean-up) are removed."""
    folder = genops_home() / "serving" / "servers"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = LocalServer(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            record = None
        if record is not None and _pid_alive(record.pid) and _is_server(record.pid):
            out.append(record)
        else:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
    return out


def _served_version(url: str) -> str | None:
    try:
        reply = httpx.get(f"{url}/metadata", timeout=2.0)
        version = reply.json().get("version") if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return None if version is None else str(version)


def alias_move_report(name: str, alias: str, version: str | None) -> list[str]:
    """One line per running local server of model ``name`` after ``name@alias`` moved to
    ``version`` (None: the alias was removed): what it serves now (asked over
    ``/metadata``), and whether it follows the alias and within how long."""
    from genops.core.serving.options import parse_models_uri

    lines = []
    for server in local_servers():
        parsed = parse_models_uri(server.model_uri)
        if parsed is None or parsed[0] != name:
            continue
        current = _served_version(server.url)
        where = f"pid {server.pid} {server.url} ({server.model_uri})"
        serving = f"serves v{current}" if current else "not answering /metadata"
        if parsed[1] != alias:
            lines.append(f"{where}: {serving}; not on @{alias}: not affected")
        elif version is None:
            lines.append(f"{where}: {serving}; @{alias} was removed: it keeps serving it")
        elif current == version:
            lines.append(f"{where}: {serving} already")
        elif server.follow_interval > 0:
            lines.append(
                f"{where}: {serving}; follows @{alias} every {server.follow_interval:g} s: "
                f"will serve v{version} within {server.follow_interval:g} s plus its load time"
            )
        else:
            lines.append(
                f"{where}: {serving}; does not follow @{alias} (--follow-interval 0): restart "
                f"it to serve v{version}"
            )
    return lines


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
        sys.executable, "-m", SERVER_MODULE,
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m genops.core.serving.deploy stop --port 8080`` (``make serve-stop``): exit
    0 when a server was stopped or none was recorded, 1 when it was found dead."""
    parser = argparse.ArgumentParser(prog="python -m genops.core.serving.deploy")
    sub = parser.add_subparsers(dest="command", required=True)
    stop = sub.add_parser("stop", help="stop the local server the deploy step started")
    stop.add_argument("--port", type=int, default=8080)
    sub.add_parser("list", help="the model servers running under this $GENOPS_HOME")
    args = parser.parse_args(argv)
    if args.command == "list":
        servers = local_servers()
        for server in servers:
            print(json.dumps(asdict(server)))
        if not servers:
            print(f"no model server running (records in {servers_dir()})")
        return 0
    result = stop_local(args.port)
    print(result.message(), file=sys.stderr if result.state == "found dead" else sys.stdout)
    return 1 if result.state == "found dead" else 0


if __name__ == "__main__":
    raise SystemExit(main())
