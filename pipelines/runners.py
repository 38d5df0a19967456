"""Local runners beyond KFP's subprocess runner: the pipeline's steps in their images.

:func:`docker_runner` runs every step in the image the compiled pipeline names
(``genops.version.image("component")``, ``image("train-cuda")``: ``make images`` tags exactly
those), with KFP's ``DockerRunner``, tracking to an MLflow server it starts for the run::

    with docker_runner(root) as (runner, tracking_uri):
        local.init(runner=runner, pipeline_root=str(root))
        get_pipeline(name)(config_uri=container_config_uri(config), tracking_uri=tracking_uri, ...)

What differs from the subprocess runner, and why:

- **Tracking.** A container cannot open the host's SQLite file, so MLflow is a server on
  127.0.0.1 (a free port; SQLite and an artifact folder under ``$GENOPS_HOME/mlflow-docker``,
  apart from ``make run``'s store, whose experiments name host paths as artifact locations)
  with ``--serve-artifacts``: the containers upload artifacts over HTTP and need no mount.
- **Network.** ``network_mode="host"``: the containers reach that server on 127.0.0.1, as the
  host does. No bridge network, no private-range address.
- **Files.** KFP mounts the pipeline root at the same path in every container; the steps'
  ``$GENOPS_HOME`` (Optuna journal files shared by parallel tuning workers) lives under it.
  The images run as uid 10001: as root on the host the pipeline root is handed to that user;
  as any other user the containers run with the host user's uid, so the outputs are theirs.
- **Configs.** The images hold ``pipelines/configs/`` and ``data/`` under ``/app``:
  :func:`container_config_uri` maps a config of this repository there (``s3://`` URIs pass).

Stdlib and kfp only at import time; ``docker`` (the Python package, for ``DockerRunner``) and
MLflow are needed when a runner starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genops.core.process import DRIVER_ENV

REPO = Path(__file__).resolve().parents[1]
IMAGE_APP_DIR = "/app"  # where the images hold pipelines/configs and data (docker/*.Dockerfile)
IMAGE_UID = 10001  # the images' user
MLFLOW_DIR = "mlflow-docker"  # under $GENOPS_HOME
# Host settings a step reads, forwarded into its container when set here.
FORWARDED_ENV = (
    "GENOPS_TORCH_THREADS",
    "OPTUNA_STORAGE_URL",
    "GENOPS_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


class RunnerError(RuntimeError):
    """A runner could not start: the message says what is missing and how to get it."""


def _genops_home() -> Path:
    return Path(os.environ.get("GENOPS_HOME", ".genops")).resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def mlflow_server(home: Path, timeout: float = 180) -> Iterator[str]:
    """An MLflow tracking server on 127.0.0.1 (free port) over ``home/mlflow.db`` and
    ``home/artifacts`` (``--serve-artifacts``); yields its URI, stops it on exit."""
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = home / "server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
        "--serve-artifacts",
        # One worker: SQLite and several writers make "database is locked" errors.
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RunnerError(f"mlflow server exited with {proc.returncode}:\n{_tail(log)}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{uri}/health", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RunnerError(f"mlflow server not ready after {timeout:.0f} s:\n{_tail(log)}")
            time.sleep(0.5)
        yield uri
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def docker_client() -> Any:
    """A docker-py client that answers, or RunnerError saying how to get one."""
    try:
        import docker
    except ImportError as e:
        raise RunnerError(
            "the `docker` Python package is missing: pip install -c constraints.txt docker"
        ) from e
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:
        hint = (
            "start it: sudo dockerd &"
            if shutil.which("dockerd")
            else "install it: sudo apt-get install -y docker.io (then sudo dockerd &)"
        )
        raise RunnerError(f"no Docker engine answers ({e}); {hint}") from e
    return client


def missing_images(client: Any, images: list[str]) -> list[str]:
    """The images of ``images`` the engine does not hold under exactly that tag (what KFP's
    DockerRunner looks for before it tries to pull)."""
    tags = {tag for image in client.images.list() for tag in image.tags}
    return [image for image in images if image not in tags]


def pipeline_images() -> list[str]:
    """The images the compiled pipelines name for this checkout."""
    from genops.version import image

    return [image("component"), image("train-cuda")]


def container_config_uri(config: str | os.PathLike[str]) -> str:
    """The path a step in a container reads ``config`` from: a config under this repository's
    ``pipelines/configs/`` maps to ``/app/pipelines/configs/...`` (the images hold that
    folder and ``data/``); a URI (``s3://...``) passes. Anything else raises ValueError."""
    text = str(config)
    if "://" in text:
        return text
    path = Path(text).resolve()
    configs = (REPO / "pipelines" / "configs").resolve()
    if not path.is_relative_to(configs):
        raise ValueError(
            f"{text}: a run in containers reads its config from the image, which holds only "
            f"{configs.relative_to(REPO)}/ (as {IMAGE_APP_DIR}/pipelines/configs/); put the "
            "file there and rebuild the images (make images), or upload it to s3://"
        )
    return f"{IMAGE_APP_DIR}/pipelines/configs/{path.relative_to(configs).as_posix()}"


def _prepare_root(pipeline_root: Path) -> dict[str, Any]:
    """Make ``pipeline_root`` writable for the containers; the DockerRunner's user setting."""
    pipeline_root.mkdir(parents=True, exist_ok=True)
    uid = os.getuid()
    if uid == 0:
        # Root on the host: the containers keep the images' own non-root user.
        os.chown(pipeline_root, IMAGE_UID, IMAGE_UID)
        return {}
    # Any other user: the containers run as that user (the image's HOME is not theirs).
    return {"user": f"{uid}:{os.getgid()}"}


LAUNCH_LABEL = "genops.launch_id"


def stop_containers(launch_id: str, kill: bool = False) -> int:
    """Stop (SIGTERM, or SIGKILL with ``kill``) the running containers of one launch (their
    label :data:`LAUNCH_LABEL`); returns how many."""
    client = docker_client()
    try:
        found = client.containers.list(filters={"label": f"{LAUNCH_LABEL}={launch_id}"})
        for container in found:
            with contextlib.suppress(Exception):
                container.kill() if kill else container.stop(timeout=10)
        return len(found)
    finally:
        client.close()


@contextlib.contextmanager
def docker_runner(pipeline_root: Path, launch_id: str = "") -> Iterator[tuple[Any, str]]:
    """Start a local MLflow tracking server (127.0.0.1, free port, SQLite + artifact folder
    under $GENOPS_HOME, --serve-artifacts so containers write artifacts over HTTP), yield
    (kfp.local.DockerRunner configured with network_mode='host' and whatever else is needed,
    tracking_uri), and stop the server on exit. Containers are labelled with ``launch_id``,
    so :func:`stop_containers` finds them (what `genops run` does on Ctrl-C).

    Raises RunnerError before anything starts when no Docker engine answers or the images of
    this checkout are not built (``make images``)."""
    from kfp import local

    client = docker_client()
    try:
        missing = missing_images(client, pipeline_images())
    finally:
        client.close()
    if missing:
        raise RunnerError(
            f"images not built for this checkout: {', '.join(missing)}; run `make images` "
            "(`make images OFFLINE=1` without a registry or package index)"
        )
    pipeline_root = Path(pipeline_root).resolve()
    run_args = _prepare_root(pipeline_root)
    step_home = pipeline_root / ".genops"
    step_home.mkdir(exist_ok=True)
    if os.getuid() == 0:
        os.chown(step_home, IMAGE_UID, IMAGE_UID)
    with mlflow_server(_genops_home() / MLFLOW_DIR) as tracking_uri:
        environment = {
            "GENOPS_HOME": str(step_home),
            "MLFLOW_TRACKING_URI": tracking_uri,
            **{k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)},
            # the driver's identity, recorded on the MLflow run (genops.core.process)
            **{k: os.environ[k] for k in DRIVER_ENV if os.environ.get(k)},
        }
        if "user" in run_args:
            environment["HOME"] = str(step_home)
        if launch_id:
            run_args["labels"] = {LAUNCH_LABEL: launch_id}
        runner = local.DockerRunner(network_mode="host", environment=environment, **run_args)
        yield runner, tracking_uri
