"""A failed smoke test rolls the champion back (the steps, without the pipeline)."""

from __future__ import annotations

import socket
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.models import infer_signature

from genops.core import steps
from genops.core.aliases import CHAMPION, alias_version, promote
from genops.core.tracking import start_pipeline_run
from tests.conftest import SMALL_SPEC


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failed_smoke_test_then_rollback(tmp_path: Path, tracking_uri: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump({"dataset": SMALL_SPEC, "deploy": {"target": "none"}}, sort_keys=False)
    )
    mlflow.set_tracking_uri(tracking_uri)
    frame = pd.DataFrame({"x": [1]})
    for _ in range(2):
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model", python_model=_Echo(), signature=infer_signature(frame, frame)
            )
        mlflow.register_model(info.model_uri, "toy-synthesizer")
    promote("toy-synthesizer", "1", tracking_uri)
    promote("toy-synthesizer", "2", tracking_uri)
    run_id = start_pipeline_run(tracking_uri, "exp", "run", {"genops.pipeline": "t"})

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    assert steps.smoke_test(config, tracking_uri, run_id, endpoint) is False
    tags = mlflow.MlflowClient().get_run(run_id).data.tags
    assert tags["genops.smoke_test"].startswith("failed: endpoint unreachable")

    assert steps.rollback(config, tracking_uri, run_id) == "1"
    assert alias_version("toy-synthesizer", CHAMPION, tracking_uri) == "1"
    tags = mlflow.MlflowClient().get_run(run_id).data.tags
    assert tags["genops.rollback"] == "toy-synthesizer@champion: v2 -> v1"
    assert tags["genops.status"] == "rolled_back"
    # nothing deployed: the smoke test has nothing to check and passes
    assert steps.smoke_test(config, tracking_uri, run_id, "") is True


def test_local_deploy_refuses_a_port_held_by_another_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import threading

    from genops.core.serving.deploy import DeployError, deploy_local
    from genops.workloads.tabular.serving import smoke_test

    monkeypatch.setenv("GENOPS_HOME", str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with pytest.raises(DeployError, match="already in use by a server this pipeline did not"):
            deploy_local("models:/x@champion", "sqlite:///x.db", port=port)
        # and a smoke test against a server that is not ours fails instead of raising
        result = smoke_test(f"http://127.0.0.1:{port}", ["a"], {})
        assert not result.passed and "/health answered 501" in result.detail
    finally:
        server.shutdown()
