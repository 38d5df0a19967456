"""The built images, run: user, labels, size, contents; the fast tabular pipeline through KFP's
DockerRunner; the model server image and the MLflow server image in the production shape.

Needs a Docker engine and the images of this checkout (`make images OFFLINE=1`); runs only
under `make test-containers` (GENOPS_TEST_CONTAINERS=1), never in the default `make test`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KINDS = ("component", "train-cuda", "serving", "mlflow")
UID = "10001"

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("GENOPS_TEST_CONTAINERS") != "1",
        reason="container tests run with `make test-containers` (GENOPS_TEST_CONTAINERS=1)",
    ),
    pytest.mark.timeout(1800),
]


def docker(
    *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr[-2000:]}")
    return result


def budget_mb(kind: str) -> int:
    out = subprocess.run(
        ["bash", "-c", f'source "{REPO}/docker/lib.sh"; size_budget_mb {kind}'],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


@pytest.fixture(scope="module")
def version() -> tuple[str, str]:
    from genops.version import git_commit, pipeline_version

    return pipeline_version(), git_commit()


def tag(kind: str, version: tuple[str, str]) -> str:
    return f"genops/{kind}:{version[0]}"


def wait_http(url: str, timeout: float, auth: tuple[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(1)
    raise AssertionError(f"{url} not answering after {timeout:.0f} s: {last}")


def health_status(container: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", container).stdout.strip()


def wait_healthy(container: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = health_status(container)
        if status == "healthy":
            return
        time.sleep(2)
    logs = docker("logs", "--tail", "40", container, check=False)
    raise AssertionError(f"{container}: health {status!r}\n{logs.stdout}{logs.stderr}")


# ------------------------------------------------------------------ every image


@pytest.mark.parametrize("kind", KINDS)
def test_image_user_labels_and_size(kind: str, version: tuple[str, str]) -> None:
    (info,) = json.loads(docker("image", "inspect", tag(kind, version)).stdout)
    config = info["Config"]
    assert config["User"] == f"{UID}:{UID}"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == version[0]
    assert labels["org.opencontainers.image.revision"] == version[1]
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.title"] == f"genops-{kind}"
    assert labels["io.genops.tree-dirty"] in ("true", "false")
    size_mb = info["Size"] // 1_000_000
    print(f"\n{kind}: {size_mb} MB (budget {budget_mb(kind)} MB)")
    assert size_mb <= budget_mb(kind)
    env = dict(e.split("=", 1) for e in config["Env"])
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    if kind in ("serving", "mlflow"):
        assert config["Healthcheck"]["Test"][0] == "CMD"
    # the same tag the compiled pipelines name, so DockerRunner finds it without a pull
    from genops.version import image

    if kind in ("component", "train-cuda"):
        assert image(kind) in info["RepoTags"]


@pytest.mark.parametrize("kind", KINDS)
def test_image_holds_no_build_tools_or_caches(kind: str, version: tuple[str, str]) -> None:
    script = (
        "id -u; "
        "for t in gcc cc g++ c++ make ld as apt-get; do command -v $t; done; "
        "ls -d /root/.cache /home/*/.cache /wheels /src 2>/dev/null; "
        # the base's own ensurepip wheels (python3-venv, ensurepip/_bundled) are no cache
        "find / -xdev \\( -name '*.whl' -o -path '*/pip/http*' \\) "
        "! -path '/usr/share/python-wheels/*' ! -path '*/ensurepip/_bundled/*' "
        "-print 2>/dev/null | head -5; "
        "true"
    )
    out = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", tag(kind, version), "-c", script
    ).stdout.split()
    assert out[0] == UID
    found = [line for line in out[1:] if "apt-get" not in line]
    assert found == [], f"build tools or caches in the image: {found}"


@pytest.mark.parametrize("kind", ["component", "train-cuda"])
def test_step_images_import_every_component_read_only(kind: str, version: tuple[str, str]) -> None:
    """As a step runs on the cluster: non-root, read-only root file system, no network."""
    code = (
        "import importlib, pkgutil, components, pipelines, genops, torch, sys;"
        "mods=[m.name for m in pkgutil.iter_modules(components.__path__, 'components.')];"
        "[importlib.import_module(m) for m in mods];"
        "from genops.version import pipeline_version; print(pipeline_version());"
        "print(torch.__version__, torch.cuda.is_available(), len(mods))"
    )
    out = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        tag(kind, version),
        "python",
        "-c",
        code,
    ).stdout.split()
    assert out[0] == version[0], "git_commit() answers from GENOPS_GIT_COMMIT"
    assert out[1].startswith("2.13.0")
    assert ("+cpu" in out[1]) == (kind == "component"), "CPU torch in the component image only"


# ------------------------------------------------------------------ the pipeline in containers


@pytest.fixture(scope="module")
def docker_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """adult-fast through DockerRunner; the MLflow server stays up for the serving test."""
    sys.path.insert(0, str(Path(__file__).parent))
    from run_pipeline import execute

    from pipelines.runners import container_config_uri, docker_runner

    home = tmp_path_factory.mktemp("genops-home")
    old = os.environ.get("GENOPS_HOME")
    os.environ["GENOPS_HOME"] = str(home)
    try:
        with docker_runner(home / "kfp-local") as (runner, tracking_uri):
            config = "pipelines/configs/adult-fast.yaml"
            result = execute(
                "tabular-synth",
                config,
                container_config_uri(REPO / config),
                runner,
                tracking_uri,
                home / "kfp-local",
            )
            (home / "result.json").write_text(json.dumps(result, indent=2))
            print(f"\nadult-fast in containers: {result['seconds']} s, {result['tags']}")
            yield {**result, "tracking_uri": tracking_uri}
    finally:
        if old is None:
            os.environ.pop("GENOPS_HOME", None)
        else:
            os.environ["GENOPS_HOME"] = old


def test_fast_tabular_pipeline_runs_in_containers(docker_run: dict[str, Any]) -> None:
    assert docker_run["status"] == "FINISHED"
    assert docker_run["tags"]["genops.status"] == "succeeded"
    assert docker_run["tags"]["genops.registered_model"].startswith("adult-synthesizer/")
    for key in ("fidelity_column_shapes", "utility_tstr_auc", "utility_trtr_auc"):
        assert 0.5 < docker_run["metrics"][key] <= 1.0, key
    reference = os.environ.get("GENOPS_REFERENCE_RESULT")
    if reference:  # a subprocess run's result (tests/docker/run_pipeline.py): the same metrics
        sys.path.insert(0, str(Path(__file__).parent))
        from run_pipeline import compare

        assert compare(docker_run, json.loads(Path(reference).read_text())) == []


def test_serving_image_serves_the_registered_model(
    docker_run: dict[str, Any], version: tuple[str, str]
) -> None:
    from tests.conftest import free_port

    port = free_port()
    name = f"genops-serving-test-{uuid.uuid4().hex[:8]}"
    model = docker_run["tags"]["genops.registered_model"].split("/")[0]
    docker(
        "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", f"MLFLOW_TRACKING_URI={docker_run['tracking_uri']}",
        tag("serving", version),
        "--model-uri", f"models:/{model}@challenger", "--port", str(port),
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", 180)
        with urllib.request.urlopen(f"{base}/metadata", timeout=10) as r:
            metadata = json.load(r)
        body = json.dumps({"num_rows": 5, "conditions": {"sex": "Female"}, "seed": 1}).encode()
        request = urllib.request.Request(
            f"{base}/generate", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.load(r)
        rows = answer.get("rows") or answer.get("data") or answer
        print(f"\nmetadata: {metadata}\nanswer: {str(answer)[:300]}")
        assert len(rows) == 5
        assert all(row["sex"] == "Female" for row in rows)
        bad = urllib.request.Request(
            f"{base}/generate",
            data=json.dumps({"num_rows": 2, "conditions": {"sex": "Other"}}).encode(),
            headers={"content-type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(bad, timeout=30)
        assert 400 <= error.value.code < 500
    finally:
        logs = docker("logs", "--tail", "30", name, check=False)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        docker("rm", "-f", name, check=False)


# ------------------------------------------------------------------ MLflow, production shape


def _stack_module() -> Any:
    spec = importlib.util.spec_from_file_location("mlflow_stack", REPO / "scripts/mlflow_stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlflow_stack"] = module
    spec.loader.exec_module(module)
    return module


def _deployment_args() -> list[str]:
    import yaml

    deployment = yaml.safe_load((REPO / "mlflow/k8s/deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]


def test_mlflow_image_production_shape(tmp_path: Path, version: tuple[str, str]) -> None:
    """PostgreSQL and the S3 endpoint (moto) as processes; the schema Job, the two init
    containers and the server container of mlflow/k8s/, run from the image as there
    (non-root, read-only root, no capabilities), with the Deployment's arguments."""
    stack = _stack_module()
    pg = stack.Postgres(
        bin_dir=stack.find_postgres_bin(install=True),
        data_dir=Path(stack.tempfile.mkdtemp(prefix="genops-pg-")),
        port=stack.free_port(),
        log=tmp_path / "postgres.log",
        durable=False,
        run_as=stack._postgres_os_user(),
    )
    s3 = stack.LocalS3(port=stack.free_port(), log=tmp_path / "moto.log")
    auth_dir = tmp_path / "auth"
    auth_dir.mkdir()
    os.chown(auth_dir, 10001, 10001) if os.getuid() == 0 else auth_dir.chmod(0o777)
    image = tag("mlflow", version)
    port = stack.free_port()
    name = f"genops-mlflow-test-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    hardened = [
        "--network", "host", "--user", f"{UID}:{UID}", "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    ]  # fmt: skip
    scripts = [
        "-v",
        f"{REPO}/mlflow/k8s/bin:/opt/genops/bin:ro",
        "-v",
        f"{auth_dir}:/etc/mlflow-auth",
    ]
    with contextlib.ExitStack() as cleanup:
        pg.init()
        pg.start()
        cleanup.callback(pg.stop)
        s3.start()
        cleanup.callback(s3.stop)
        env = {
            "MLFLOW_BACKEND_STORE_URI": pg.uri,
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{s3.bucket}/mlflow-artifacts",
            "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
            **stack.S3_ENV,
            "MLFLOW_AUTH_CONFIG_PATH": "/etc/mlflow-auth/basic_auth.ini",
            "MLFLOW_AUTH_DEFAULT_PERMISSION": "READ",
            "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
            "MLFLOW_SERVER_ALLOWED_HOSTS": "localhost,localhost:*,127.0.0.1,127.0.0.1:*",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
        }
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        timings = {}
        t = time.perf_counter()
        # the mlflow-db-upgrade Job (its environment: the store URI and HOME)
        job_env = ["-e", f"MLFLOW_BACKEND_STORE_URI={pg.uri}", "-e", "HOME=/tmp"]
        docker(
            "run", "--rm", *hardened, *job_env, "--entrypoint", "/bin/sh", image, "-ec",
            'mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"\n'
            'python -m mlflow.server.auth db upgrade --url "$MLFLOW_BACKEND_STORE_URI"',
        )  # fmt: skip
        timings["db_upgrade_s"] = time.perf_counter() - t
        # the Deployment's init containers
        docker(
            "run", "--rm", *hardened, *scripts, *env_args, "--entrypoint", "python", image,
            "/opt/genops/bin/auth_config.py", "--out", "/etc/mlflow-auth/basic_auth.ini",
        )  # fmt: skip
        docker(
            "run", "--rm", *hardened, *scripts, *env_args, "--entrypoint", "python", image,
            "/opt/genops/bin/wait_for_schema.py", "--auth", "--timeout", "120",
        )  # fmt: skip
        # the server: the Deployment's command and args, but on 127.0.0.1 (host network here)
        args = _deployment_args()
        assert (
            args[0] == "server" and "--serve-artifacts" in args and "--app-name=basic-auth" in args
        )
        args = [a for a in args if not a.startswith(("--host=", "--port="))]
        t = time.perf_counter()
        docker(
            "run", "-d", "--name", name, *hardened, *scripts, *env_args,
            "-e", f"MLFLOW_PORT={port}", "--entrypoint", "mlflow", image,
            *args, "--host=127.0.0.1", f"--port={port}",
        )  # fmt: skip
        cleanup.callback(lambda: docker("rm", "-f", name, check=False))
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health", 180)
            timings["server_ready_s"] = time.perf_counter() - t
            wait_healthy(name, 90)  # the image's HEALTHCHECK
            timings["healthy_s"] = time.perf_counter() - t
            import mlflow

            os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password
            try:
                client = mlflow.MlflowClient(url)
                experiment = client.create_experiment(f"containers-{uuid.uuid4().hex[:6]}")
                run = client.create_run(experiment)
                client.log_metric(run.info.run_id, "m", 1.5)
                note = tmp_path / "note.txt"
                note.write_text("through the server's artifact proxy to S3")
                client.log_artifact(run.info.run_id, str(note))
                assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["note.txt"]
                client.set_terminated(run.info.run_id)
            finally:
                os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
                os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
            # basic auth is on: no credentials, no answer
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1")
            assert error.value.code == 401
            keys = [
                o["Key"]
                for o in stack._s3_client(s3.endpoint).list_objects_v2(Bucket=s3.bucket)["Contents"]
            ]
            assert any(k.endswith("/note.txt") and k.startswith("mlflow-artifacts/") for k in keys)
            print(f"\nmlflow production shape: {timings}")
        except BaseException:
            logs = docker("logs", "--tail", "60", name, check=False)
            print(logs.stdout, logs.stderr)
            raise
