"""A local MLflow tracking stack in the production shape: PostgreSQL + S3 + ``mlflow server``.

Three processes, started in order and stopped in reverse:

1. PostgreSQL (the backend store): ``initdb`` into a data folder, ``postgres`` on a free
   loopback port (TCP only, no Unix socket), a database ``mlflow`` owned by user ``mlflow``.
   PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user
   (``GENOPS_PG_USER``), which owns the data folder.
2. A local S3 endpoint: moto in server mode on a free loopback port, with the bucket created.
   moto keeps objects in memory; with ``s3_state_dir`` the bucket is saved to that folder
   when the stack stops and loaded from it when it starts, so a kept database and its
   artifacts stay together.
3. ``mlflow db upgrade`` (as the production Job does), then ``mlflow server`` with
   ``--backend-store-uri postgresql+psycopg2://...`` and
   ``--artifacts-destination s3://<bucket>/<prefix>`` (artifacts proxied through the server,
   clients need no S3 credentials), optionally with MLflow's basic-auth app.

``mlflow_stack()`` is a context manager (used by tests and by ``serve``)::

    with mlflow_stack(home) as stack:
        run_local(..., tracking_uri=stack.tracking_uri)

``python scripts/mlflow_stack.py serve`` (``make mlflow-server``) keeps one running until
Ctrl-C or SIGTERM. Every child runs in its own session and is stopped by the parent (and,
on Linux, receives SIGTERM if the parent dies without cleaning up).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
AUTH_CONFIG_SCRIPT = REPO / "mlflow" / "k8s" / "bin" / "auth_config.py"

DEFAULT_BUCKET = "genops-mlflow"
DEFAULT_PREFIX = "artifacts"
DEFAULT_PORT = 5001
# Dummy credentials for moto; never real ones.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "genops-local",
    "AWS_SECRET_ACCESS_KEY": "genops-local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class StackError(RuntimeError):
    """The stack could not start; the message says which part and why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(message: str) -> None:
    print(f"[mlflow-stack] {message}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux only)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with {proc.returncode}; log {log}:\n{_tail(log)}")
        if check():
            return
        time.sleep(0.2)
    raise StackError(f"{what} not ready after {timeout:.0f} s; log {log}:\n{_tail(log)}")


def _stop_process(
    proc: subprocess.Popen | None,
    name: str,
    sig: int = signal.SIGTERM,
    group: bool = True,
    timeout: float = 30,
) -> None:
    """Signal ``proc`` (its whole process group when ``group``), escalate to SIGKILL."""
    if proc is None or proc.poll() is not None:
        return

    def send(s: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, s)
            else:
                os.kill(proc.pid, s)

    send(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _log(f"{name} did not stop in {timeout:.0f} s; killing it")
        send(signal.SIGKILL)
        proc.wait(10)
    if group:
        # Children that outlived the leader (uvicorn workers): end them too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- PostgreSQL


def _pg_version(initdb: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/", initdb)
    return tuple(int(g) for g in match.groups() if g) if match else (0,)


def find_postgres_bin(install: bool = True) -> Path:
    """The folder holding ``initdb`` and ``postgres``; installs Debian's postgresql if allowed.

    Order: ``GENOPS_PG_BIN``, the newest ``/usr/lib/postgresql/*/bin``, ``pg_config --bindir``,
    ``initdb`` on PATH, then (as root, with apt-get, ``install=True``) ``apt-get install
    postgresql`` and the search again.
    """
    override = os.environ.get("GENOPS_PG_BIN")
    if override:
        path = Path(override)
        if not (path / "initdb").exists():
            raise StackError(f"GENOPS_PG_BIN={override} has no initdb")
        return path
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_pg_version)
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if bindir and (Path(bindir) / "initdb").exists():
            return Path(bindir)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        _log("PostgreSQL server not found: apt-get install -y postgresql")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        return find_postgres_bin(install=False)
    raise StackError(
        "PostgreSQL server binaries (initdb, postgres) not found: install PostgreSQL "
        "(Debian/Ubuntu: apt-get install postgresql) or set GENOPS_PG_BIN to its bin folder"
    )


@dataclass
class Postgres:
    """One PostgreSQL server on 127.0.0.1:``port`` over ``data_dir`` (created if empty)."""

    bin_dir: Path
    data_dir: Path
    port: int
    log: Path
    user: str = "mlflow"
    password: str = "mlflow"
    database: str = "mlflow"
    durable: bool = True  # False: fsync off, for throw-away test servers
    run_as: str | None = None  # OS user; None = this user (must not be root)
    process: subprocess.Popen | None = None

    def _as_user(self) -> dict[str, object]:
        if self.run_as is None:
            return {}
        entry = pwd.getpwnam(self.run_as)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            reachable = subprocess.run(
                ["test", "-w", str(self.data_dir)], check=False, **self._as_user()
            )
            if reachable.returncode != 0:
                raise StackError(
                    f"user {self.run_as!r} cannot write {self.data_dir}: a parent folder is not "
                    "traversable by it (chmod o+x) - choose another folder (GENOPS_PG_DIR)"
                )
        if self.initialized():
            return
        with tempfile.NamedTemporaryFile("w", suffix=".pw", delete=False) as pw:
            pw.write(self.password + "\n")
        os.chmod(pw.name, 0o644)
        try:
            done = subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    self.user,
                    "--pwfile",
                    pw.name,
                    "--auth-host",
                    "scram-sha-256",
                    "--auth-local",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    *([] if self.durable else ["--no-sync"]),
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd="/",
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                **self._as_user(),
            )
        finally:
            os.unlink(pw.name)
        if done.returncode != 0:
            raise StackError(f"initdb failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def start(self, timeout: float = 60) -> None:
        options = [
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=",
            "max_connections=100",
        ]
        if not self.durable:
            options += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for option in options:
            args += ["-c", option]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **self._as_user(),
            )
        _wait_until(self._accepts, timeout, "PostgreSQL", self.process, self.log)
        self._create_database()

    def _connect(self, database: str):  # type: ignore[no-untyped-def]
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            connect_timeout=3,
        )

    def _accepts(self) -> bool:
        try:
            self._connect("postgres").close()
        except Exception:
            return False
        return True

    def _create_database(self) -> None:
        conn = self._connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()

    @property
    def uri(self) -> str:
        return (
            f"postgresql+psycopg2://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{quote(self.database, safe='')}"
        )

    def stop(self) -> None:
        # SIGINT = PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
        _stop_process(self.process, "PostgreSQL", signal.SIGINT, group=False, timeout=30)


def _postgres_os_user() -> str | None:
    if os.geteuid() != 0:
        return None
    name = os.environ.get("GENOPS_PG_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise StackError(
            f"running as root, PostgreSQL needs an unprivileged OS user: {name!r} does not "
            "exist (create it, or set GENOPS_PG_USER to one that does)"
        ) from None
    return name


# ------------------------------------------------------------------------------------- S3


def _s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def _http_ok(url: str, auth: tuple[str, str] | None = None) -> bool:
    request = urllib.request.Request(url)
    if auth is not None:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LocalS3:
    """moto in server mode: an S3 endpoint on 127.0.0.1:``port`` holding ``bucket``."""

    port: int
    log: Path
    bucket: str = DEFAULT_BUCKET
    state_dir: Path | None = None  # saved on stop, loaded on start
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        moto = Path(sys.executable).with_name("moto_server")
        args = [str(moto)] if moto.exists() else [sys.executable, "-m", "moto.server"]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*args, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **S3_ENV},
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _wait_until(
            lambda: _http_ok(f"{self.endpoint}/moto-api/"), timeout, "moto", self.process, self.log
        )
        client = _s3_client(self.endpoint)
        client.create_bucket(Bucket=self.bucket)
        if self.state_dir is not None:
            self._load(client)

    def _load(self, client) -> None:  # type: ignore[no-untyped-def]
        root = self.state_dir / self.bucket  # type: ignore[operator]
        count = 0
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []:
            client.upload_file(str(path), self.bucket, path.relative_to(root).as_posix())
            count += 1
        if count:
            _log(f"S3: loaded {count} objects from {root}")

    def save(self) -> None:
        """Copy the bucket to ``state_dir/<bucket>`` (replacing the previous copy)."""
        if self.state_dir is None or self.process is None or self.process.poll() is not None:
            return
        client = _s3_client(self.endpoint)
        target = self.state_dir / self.bucket
        staging = self.state_dir / f".{self.bucket}.saving"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        count = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                dest = staging / obj["Key"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(self.bucket, obj["Key"], str(dest))
                count += 1
        old = self.state_dir / f".{self.bucket}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        _log(f"S3: saved {count} objects to {target}")

    def stop(self) -> None:
        _stop_process(self.process, "moto", signal.SIGTERM, timeout=15)


# --------------------------------------------------------------------------------- MLflow


def _mlflow_cmd() -> list[str]:
    cli = Path(sys.executable).with_name("mlflow")
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "mlflow"]


@dataclass
class MlflowServer:
    """``mlflow server`` on 127.0.0.1:``port`` over a backend store and an S3 destination."""

    backend_store_uri: str
    artifacts_destination: str
    s3_endpoint: str
    port: int
    log: Path
    workers: int = 2
    auth_admin_password: str | None = None  # set: --app-name basic-auth
    auth_dir: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **S3_ENV,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "PYTHONUNBUFFERED": "1",
            # MLflow 3's job runner (GenAI scorers, trace roll-ups) starts a supervisor and six
            # huey consumers: measured 1879 vs 572 MiB PSS with two workers; genops needs none.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get(
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
            ),
        }
        # The server must not inherit a client-side tracking URI or credentials.
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(key, None)
        return env

    def upgrade_schema(self) -> None:
        """``mlflow db upgrade`` (and the auth schema), as the cluster's Job does."""
        cmds = [[*_mlflow_cmd(), "db", "upgrade", self.backend_store_uri]]
        if self.auth_admin_password is not None:
            cmds.append(
                [sys.executable, "-m", "mlflow.server.auth", "db", "upgrade", "--url",
                 self.backend_store_uri]
            )  # fmt: skip
        for cmd in cmds:
            done = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(f"{' '.join(cmd[:4])} failed:\n{done.stderr[-3000:]}")

    def start(self, timeout: float = 180) -> None:
        env = self.env()
        args = [
            *_mlflow_cmd(),
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            self.artifacts_destination,
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        auth = None
        if self.auth_admin_password is not None:
            assert self.auth_dir is not None
            self.auth_dir.mkdir(parents=True, exist_ok=True)
            ini = self.auth_dir / "basic_auth.ini"
            # The same script the cluster's initContainer runs (mlflow/k8s/bin).
            subprocess.run(
                [sys.executable, str(AUTH_CONFIG_SCRIPT), "--out", str(ini)],
                env={**env, "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri},
                check=True,
            )
            env.update(
                MLFLOW_AUTH_CONFIG_PATH=str(ini),
                MLFLOW_AUTH_ADMIN_PASSWORD=self.auth_admin_password,
                MLFLOW_FLASK_SERVER_SECRET_KEY=env.get(
                    "MLFLOW_FLASK_SERVER_SECRET_KEY", "genops-local-only"
                ),
            )
            args += ["--app-name", "basic-auth"]
            auth = ("admin", self.auth_admin_password)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        # /health is open even with basic-auth; an authenticated API call proves the app is up.
        _wait_until(
            lambda: (
                _http_ok(f"{self.url}/health")
                and _http_ok(f"{self.url}/api/2.0/mlflow/experiments/get?experiment_id=0", auth)
            ),
            timeout,
            "mlflow server",
            self.process,
            self.log,
        )

    def stop(self) -> None:
        _stop_process(self.process, "mlflow server", signal.SIGTERM, timeout=20)


# ---------------------------------------------------------------------------------- stack


@dataclass
class Stack:
    tracking_uri: str
    backend_store_uri: str
    s3_endpoint: str
    artifacts_destination: str
    logs: Path
    timings: dict[str, float] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    pids: list[int] = field(default_factory=list)  # postgres, moto, mlflow server

    def describe(self) -> str:
        lines = [
            f"MLflow tracking server:  {self.tracking_uri}",
            f"  backend store:         {self.backend_store_uri}",
            f"  artifacts destination: {self.artifacts_destination}  (S3 at {self.s3_endpoint})",
            f"  logs:                  {self.logs}",
        ]
        if self.auth:
            lines.append(f"  basic auth:            user {self.auth[0]}")
        return "\n".join(lines)


@contextlib.contextmanager
def mlflow_stack(
    home: Path,
    *,
    port: int | None = None,
    pg_dir: Path | None = None,
    pg_password: str = "mlflow",
    durable: bool = False,
    bucket: str = DEFAULT_BUCKET,
    prefix: str = DEFAULT_PREFIX,
    s3_state_dir: Path | None = None,
    workers: int = 2,
    auth_admin_password: str | None = None,
    install: bool = True,
) -> Iterator[Stack]:
    """Start PostgreSQL, moto and ``mlflow server``; stop all three on exit, whatever happens.

    ``home`` holds the logs (and the auth config). ``pg_dir`` is the PostgreSQL data folder:
    kept when given (initialized once), a fresh temporary one (removed on exit) when None.
    """
    home = Path(home).resolve()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    bin_dir = find_postgres_bin(install=install)
    run_as = _postgres_os_user()
    temp_pg = pg_dir is None
    # A temporary data folder lives in the system temp folder: world-traversable, so the
    # unprivileged PostgreSQL user reaches it even when ``home`` is under a private folder.
    data_dir = Path(tempfile.mkdtemp(prefix="genops-pg-")) if temp_pg else Path(pg_dir).resolve()
    pg = Postgres(
        bin_dir=bin_dir,
        data_dir=data_dir,
        port=free_port(),
        log=logs / "postgres.log",
        password=pg_password,
        durable=durable,
        run_as=run_as,
    )
    s3 = LocalS3(port=free_port(), log=logs / "moto.log", bucket=bucket, state_dir=s3_state_dir)
    server: MlflowServer | None = None
    try:
        t = time.perf_counter()
        pg.init()
        timings["postgres_initdb_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pg.start()
        timings["postgres_start_s"] = time.perf_counter() - t
        t = time.perf_counter()
        s3.start()
        timings["s3_start_s"] = time.perf_counter() - t
        server = MlflowServer(
            backend_store_uri=pg.uri,
            artifacts_destination=f"s3://{bucket}/{prefix}",
            s3_endpoint=s3.endpoint,
            port=port or free_port(),
            log=logs / "mlflow-server.log",
            workers=workers,
            auth_admin_password=auth_admin_password,
            auth_dir=home / "auth",
        )
        t = time.perf_counter()
        server.upgrade_schema()
        timings["db_upgrade_s"] = time.perf_counter() - t
        t = time.perf_counter()
        server.start()
        timings["mlflow_server_start_s"] = time.perf_counter() - t
        timings["stack_start_s"] = time.perf_counter() - started
        yield Stack(
            tracking_uri=server.url,
            backend_store_uri=pg.uri,
            s3_endpoint=s3.endpoint,
            artifacts_destination=server.artifacts_destination,
            logs=logs,
            timings=timings,
            auth=("admin", auth_admin_password) if auth_admin_password is not None else None,
            pids=[p.pid for p in (pg.process, s3.process, server.process) if p is not None],
        )
    finally:
        # A second Ctrl-C must not cut the shutdown short (main thread only: signal rules).
        held = _hold_signals()
        errors: list[str] = []
        for name, stop in (
            ("mlflow server", server.stop if server else None),
            ("S3 snapshot", s3.save),
            ("moto", s3.stop),
            ("PostgreSQL", pg.stop),
        ):
            if stop is None:
                continue
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{name}: {exc}")
        if temp_pg:
            shutil.rmtree(data_dir, ignore_errors=True)
        for error in errors:
            _log(f"while stopping: {error}")
        _release_signals(held)


def _hold_signals() -> dict[int, object]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}


def _release_signals(held: dict[int, object]) -> None:
    for signum, handler in held.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- command


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def serve(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlflow_stack.py serve",
        description="Run a local MLflow tracking server on PostgreSQL + S3 (moto) until Ctrl-C.",
    )
    home_default = os.environ.get("GENOPS_HOME", ".genops")
    parser.add_argument("--home", default=home_default, help="default: $GENOPS_HOME or .genops")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("MLFLOW_PORT", DEFAULT_PORT))
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--fresh", action="store_true", help="start from an empty database and bucket"
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="switch on basic auth (admin password from MLFLOW_AUTH_ADMIN_PASSWORD)",
    )
    args = parser.parse_args(argv)

    home = Path(args.home).resolve() / "mlflow-server"
    pg_dir = Path(os.environ.get("GENOPS_PG_DIR", Path(args.home).resolve() / "pg"))
    s3_dir = home / "s3"
    if args.fresh:
        shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(s3_dir, ignore_errors=True)
    password = None
    if args.auth:
        password = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")
        if not password:
            parser.error("--auth needs MLFLOW_AUTH_ADMIN_PASSWORD in the environment")

    # Explicit handlers: a shell starts background jobs with SIGINT ignored, and Python keeps
    # an inherited SIG_IGN; Ctrl-C, `kill` and a closed terminal all stop the stack cleanly.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    try:
        with mlflow_stack(
            home,
            port=args.port,
            pg_dir=pg_dir,
            pg_password=os.environ.get("GENOPS_PG_PASSWORD", "mlflow"),
            durable=True,
            s3_state_dir=s3_dir,
            workers=args.workers,
            auth_admin_password=password,
        ) as stack:
            print(stack.describe(), flush=True)
            print(f"  PostgreSQL data:       {pg_dir}")
            print(f"  S3 bucket saved in:    {s3_dir} (on stop)")
            print(f"  started in {stack.timings['stack_start_s']:.1f} s: " + json.dumps(
                {k: round(v, 2) for k, v in stack.timings.items()}))  # fmt: skip
            print(
                f"\nRun a pipeline against it:  MLFLOW_TRACKING_URI={stack.tracking_uri} make run"
                "\nStop with Ctrl-C.",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except (KeyboardInterrupt, _Stop) as stop:
        _log(f"stopping ({type(stop).__name__} {stop})")
    except StackError as exc:
        print(f"mlflow-server: {exc}", file=sys.stderr)
        return 1
    _log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "serve":
        print("usage: mlflow_stack.py serve [--home DIR] [--port N] [--fresh] [--auth]")
        return 2
    return serve(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
