"""The tracking server as users run it: PostgreSQL backend store, S3 artifacts, basic auth.

A real PostgreSQL (initdb into a temporary folder), moto as the S3 endpoint and
``mlflow server`` are started by the session fixture (tests/integration/conftest.py); the fast
Adult pipeline runs against the server, and these tests read everything back through the
server and check where it landed: rows in PostgreSQL, objects in the bucket.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow
import pandas as pd
import pytest
import requests

from genops.core.config import load_config
from pipelines.local import RunSummary, run_local
from tests.conftest import ADULT_FAST_CONFIG, ADULT_FAST_RUN_METRICS, REPO

pytestmark = pytest.mark.integration

STEPS = {"prepare", "data-bias-check", "train", "evaluate", "register"}


def children_by_step(run: RunSummary) -> dict[str, Any]:
    mlflow.set_tracking_uri(run.tracking_uri)
    children = mlflow.search_runs(
        [run.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.run_id}'",
        output_format="list",
    )
    return {r.data.tags["genops.step"]: r for r in children}


def bucket_keys(stack: Any) -> list[str]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="genops-local",
        aws_secret_access_key="genops-local",
    )
    bucket, _, _ = stack.artifacts_destination.removeprefix("s3://").partition("/")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def test_server_is_healthy_and_started_in_time(server_stack: Any) -> None:
    assert requests.get(f"{server_stack.tracking_uri}/health", timeout=5).text == "OK"
    assert server_stack.backend_store_uri.startswith("postgresql+psycopg2://")
    timings = server_stack.timings
    print("\nstack start-up (s): " + json.dumps({k: round(v, 2) for k, v in timings.items()}))
    assert timings["stack_start_s"] < 180


def test_pipeline_run_finishes_and_registers_on_the_server(server_run: RunSummary) -> None:
    print("\n" + server_run.render())
    assert server_run.status == "FINISHED"
    assert server_run.outcome == "succeeded"
    assert server_run.registered == "adult-synthesizer/1"
    # the same seeded fast run as tests/e2e/test_tabular_synth.py, tracked on the server
    m, expected = server_run.metrics, ADULT_FAST_RUN_METRICS
    assert m["utility_trtr_auc"] == pytest.approx(expected["utility_trtr_auc"], abs=0.01)
    assert m["utility_tstr_auc"] == pytest.approx(expected["utility_tstr_auc"], abs=0.08)
    assert m["fidelity_column_shapes"] == pytest.approx(
        expected["fidelity_column_shapes"], abs=0.03
    )


def test_runs_and_metrics_are_rows_in_postgresql(server_stack: Any, server_run: RunSummary) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(server_stack.backend_store_uri)
    try:
        with engine.connect() as conn:
            runs = conn.execute(
                sqlalchemy.text("SELECT name, status FROM runs WHERE experiment_id = :e"),
                {"e": int(server_run.experiment_id)},
            ).all()
            metric = conn.execute(
                sqlalchemy.text(
                    "SELECT value FROM latest_metrics WHERE run_uuid = :r AND key = :k"
                ),
                {"r": server_run.run_id, "k": "fidelity_column_shapes"},
            ).scalar_one()
            models = conn.execute(sqlalchemy.text("SELECT name FROM registered_models")).all()
            location = conn.execute(
                sqlalchemy.text(
                    "SELECT artifact_location FROM experiments WHERE experiment_id = :e"
                ),
                {"e": int(server_run.experiment_id)},
            ).scalar_one()
    finally:
        engine.dispose()
    names = {name for name, _ in runs}
    assert names >= STEPS, names
    assert all(status == "FINISHED" for _, status in runs)
    assert metric == pytest.approx(server_run.metrics["fidelity_column_shapes"])
    assert ("adult-synthesizer",) in models
    # Proxied artifacts: the experiment points at the server, never at the bucket.
    assert location.startswith("mlflow-artifacts:")


def test_step_runs_metrics_and_artifacts_read_back_through_the_server(
    server_run: RunSummary, tmp_path: Path
) -> None:
    steps = children_by_step(server_run)
    assert set(steps) >= STEPS, set(steps)
    client = mlflow.MlflowClient()
    history = client.get_metric_history(steps["train"].info.run_id, "train_loss")
    assert len(history) == load_config(ADULT_FAST_CONFIG).model.epochs

    def files(step: str, folder: str) -> set[str]:
        return {a.path for a in client.list_artifacts(steps[step].info.run_id, folder)}

    assert "plots/loss_curve.png" in files("train", "plots")
    assert "evaluation/report.html" in files("evaluate", "evaluation")
    assert "synthetic_bias/report.html" in files("evaluate", "synthetic_bias")
    assert "data_bias/report.html" in files("data-bias-check", "data_bias")

    report = mlflow.artifacts.download_artifacts(
        run_id=steps["evaluate"].info.run_id,
        artifact_path="synthetic_bias/report.html",
        dst_path=str(tmp_path),
    )
    text = Path(report).read_text()
    assert text.startswith("<!DOCTYPE html>") and "Synthetic-data bias check" in text
    png = mlflow.artifacts.download_artifacts(
        run_id=steps["train"].info.run_id,
        artifact_path="plots/loss_curve.png",
        dst_path=str(tmp_path),
    )
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_artifacts_are_objects_in_the_s3_bucket(server_stack: Any, server_run: RunSummary) -> None:
    keys = bucket_keys(server_stack)
    steps = children_by_step(server_run)
    evaluate = steps["evaluate"].info.run_id
    run_folder = f"mlflow-artifacts/{server_run.experiment_id}/{evaluate}/artifacts"
    assert f"{run_folder}/synthetic_bias/report.html" in keys
    assert not [k for k in keys if "//" in k], "a '/'-terminated destination must not double it"
    assert any(k.endswith("/MLmodel") for k in keys), "the logged model is in S3 too"


def test_registered_model_loads_and_samples_through_the_server(server_run: RunSummary) -> None:
    mlflow.set_tracking_uri(server_run.tracking_uri)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("adult-synthesizer", "challenger")
    assert version.version == "1"
    assert version.tags["genops.dataset_hash"] == server_run.tags["genops.dataset_hash"]
    model = mlflow.pyfunc.load_model("models:/adult-synthesizer@challenger")
    rows = model.predict(
        pd.DataFrame({"num_rows": [100], "conditions": ["sex=Female"], "seed": [0]})
    )
    assert len(rows) == 100 and (rows["sex"] == "Female").all()


@pytest.mark.slow  # a second whole pipeline run: `pytest -m integration` includes it
def test_pipeline_time_on_postgres_and_s3_vs_sqlite(
    server_stack: Any,
    server_run: RunSummary,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> None:
    """The same fast run against a local SQLite store, for the timing comparison."""
    home = tmp_path_factory.mktemp("sqlite-home")
    sqlite = run_local(
        "tabular-synth",
        str(ADULT_FAST_CONFIG),
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        pipeline_root=str(home / "kfp"),
    )
    assert sqlite.outcome == server_run.outcome == "succeeded"
    assert sqlite.registered == server_run.registered
    timings = {
        "stack_start_up_s": {k: round(v, 2) for k, v in server_stack.timings.items()},
        "pipeline_run_s": {
            "postgresql_s3_server": round(server_run.seconds, 1),
            "sqlite_local": round(sqlite.seconds, 1),
        },
        "config": str(ADULT_FAST_CONFIG.relative_to(REPO)),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(timings, indent=2)
    (tmp_path_factory.getbasetemp() / "mlflow_timings.json").write_text(text)
    (artifacts_dir / "mlflow_timings.json").write_text(text)
    print("\n" + text)


# ------------------------------------------------------------------------------ basic auth


@pytest.mark.skipif(
    importlib.util.find_spec("flask_wtf") is None,
    reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF), not installed in this venv",
)
def test_basic_auth_server_on_postgresql(
    stack_module: ModuleType,
    postgres_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The auth set-up of the cluster (mlflow/k8s/bin scripts, --app-name basic-auth) on a
    real PostgreSQL, with a database password that needs URL- and INI-escaping."""
    admin_password = "genops-admin-Pa55word!"
    with stack_module.mlflow_stack(
        tmp_path / "auth-stack",
        pg_password="p@ss:w/rd#?%&!x",
        auth_admin_password=admin_password,
        workers=1,
    ) as stack:
        url = stack.tracking_uri
        api = f"{url}/api/2.0/mlflow"
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        anonymous = requests.get(f"{api}/experiments/search?max_results=5", timeout=10)
        assert anonymous.status_code == 401
        wrong = requests.get(
            f"{api}/experiments/search?max_results=5", auth=("admin", "nope"), timeout=10
        )
        assert wrong.status_code == 401
        admin = ("admin", admin_password)
        assert requests.get(f"{api}/experiments/search?max_results=5", auth=admin, timeout=10).ok

        # A pipeline's own user (what the cluster's pipeline steps would log in as).
        created = requests.post(
            f"{api}/users/create",
            json={"username": "pipeline", "password": "pipeline-Pa55word!"},
            auth=admin,
            timeout=10,
        )
        assert created.ok, created.text
        # The MLflow client reads the credentials from the environment on every request.
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pipeline-Pa55word!")
        mlflow.set_tracking_uri(url)
        experiment = mlflow.set_experiment("auth-check")
        with mlflow.start_run() as run:
            mlflow.log_metric("m", 1.0)
            mlflow.log_text("x", "a/b.txt")
        assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/a/b.txt") == "x"
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(mlflow.exceptions.MlflowException, match="401|Unauthorized|credentials"):
            mlflow.MlflowClient().get_experiment(experiment.experiment_id)
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")

        # The initContainer's schema check (called in-process: the same main() the pod runs)
        # passes on this database and gives up, naming the Job, on an empty one.
        wait = load_script(REPO / "mlflow" / "k8s" / "bin" / "wait_for_schema.py")
        monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", stack.backend_store_uri)
        assert wait.main(["--auth", "--timeout", "5"]) == 0
        monkeypatch.setenv(
            "MLFLOW_BACKEND_STORE_URI", stack.backend_store_uri.rsplit("/", 1)[0] + "/postgres"
        )
        assert wait.main(["--auth", "--timeout", "1", "--interval", "0.5"]) == 1
        assert "mlflow-db-upgrade" in capsys.readouterr().err
        pids = stack.pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_local_server_command_keeps_runs_and_artifacts_across_restarts(
    postgres_bin: Path, tmp_path: Path
) -> None:
    """`make mlflow-server`'s command: start, log, SIGTERM; start again, everything is back."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["GENOPS_HOME"] = str(home)
    # As root PostgreSQL runs as user postgres, which cannot enter pytest's private tmp
    # folder: keep the data folder in a traversable one.
    pg_parent = Path(tempfile.mkdtemp(prefix="genops-test-pg-"))
    pg_parent.chmod(0o755)
    env["GENOPS_PG_DIR"] = str(pg_parent / "pg")
    try:
        with LocalServer(env) as url:
            mlflow.set_tracking_uri(url)
            experiment = mlflow.set_experiment("restart-check")
            with mlflow.start_run() as run:
                mlflow.log_metric("kept", 3.0)
                mlflow.log_text("still here", "notes/kept.txt")
        with LocalServer(env) as url:
            mlflow.set_tracking_uri(url)
            again = mlflow.MlflowClient().get_run(run.info.run_id)
            assert again.data.metrics["kept"] == 3.0
            assert again.info.experiment_id == experiment.experiment_id
            text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/kept.txt")
            assert text == "still here"
        assert (pg_parent / "pg" / "PG_VERSION").exists()
        assert (home / "mlflow-server" / "s3" / "genops-mlflow").is_dir()
    finally:
        shutil.rmtree(pg_parent, ignore_errors=True)


class LocalServer:
    """``python scripts/mlflow_stack.py serve`` as make runs it; SIGTERM on exit."""

    def __init__(self, env: dict[str, str], timeout: float = 150) -> None:
        self.env = env
        self.timeout = timeout
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def __enter__(self) -> str:
        port = load_free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "mlflow_stack.py"), "serve",
             "--port", str(port), "--workers", "1"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.output.append(line)
            if "Stop with Ctrl-C" in line:
                return f"http://127.0.0.1:{port}"
        self.proc.terminate()
        self.proc.wait(60)
        raise AssertionError("serve did not start:\n" + "".join(self.output))

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()  # SIGTERM, as `kill` or a stopping container would
        self.proc.wait(90)
        while (line := self.lines.get(timeout=10)) is not None:
            self.output.append(line)
        out = "".join(self.output)
        assert self.proc.returncode == 0, out
        assert "S3: saved" in out and "stopped" in out, out


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to another user")
def test_unreachable_data_folder_is_a_clear_error(
    stack_module: ModuleType, postgres_bin: Path, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with (
        pytest.raises(stack_module.StackError, match="cannot write"),
        stack_module.mlflow_stack(tmp_path / "home", pg_dir=private / "pg"),
    ):
        pass


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"genops_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_free_port() -> int:
    from tests.integration.conftest import load_stack_module

    return int(load_stack_module().free_port())
