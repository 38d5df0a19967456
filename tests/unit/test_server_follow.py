"""A real server process on ``models:/<name>@champion`` follows the alias through a
promotion, a rollback, a version it cannot load and the alias's removal (checked every
0.5 s), while a client keeps
sending requests on one keep-alive connection: none fails. ``genops promote`` and ``genops
rollback`` say which local server they reach."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import mlflow
import pytest

from genops.cli import main as cli
from genops.core.aliases import promote
from tests.unit.serving_fixtures import (
    ServerProcess,
    register_tabular,
    start_server,
    use_store,
    wait_healthy,
)

NAME = "follow-tabular"


def _register_foreign(uri: str) -> str:
    """A pyfunc model that is not a genops model, as the next version of NAME (the class
    is local, so cloudpickle stores it by value and the server can load it)."""
    import pandas as pd
    from mlflow.models import infer_signature

    class _Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    mlflow.set_tracking_uri(uri)
    frame = pd.DataFrame({"x": [1]})
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=_Echo(), signature=infer_signature(frame, frame)
        )
    return str(mlflow.register_model(info.model_uri, NAME).version)


def wait_for(server: ServerProcess, version: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll /metadata until the server reports ``version`` (loading takes seconds here)."""
    deadline = time.monotonic() + timeout
    while True:
        meta = server.metadata()
        if meta["version"] == version:
            return meta
        assert time.monotonic() < deadline, f"still v{meta['version']}: {meta['follow']}"
        time.sleep(0.2)


class Client(threading.Thread):
    """Sends requests back to back on one keep-alive connection until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []

    def run(self) -> None:
        conn = self.server.connection()
        body = json.dumps({"num_rows": 5, "seed": 3}).encode()
        try:
            while not self.stop.is_set():
                try:
                    conn.request(
                        "POST", "/generate", body=body, headers={"Content-Type": "application/json"}
                    )
                    response = conn.getresponse()
                    rows = json.loads(response.read()).get("rows", [])
                    self.statuses[response.status] += 1
                    if response.status != 200 or len(rows) != 5:
                        self.errors.append(f"{response.status}: {rows!r:.200}")
                except Exception as exc:  # a dropped connection is a failure too
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = self.server.connection()
        finally:
            conn.close()


def test_server_follows_the_alias_through_promote_and_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = use_store(tmp_path, "serving-fixtures")
    v1, v2, v3 = register_tabular(tmp_path, NAME, versions=3)
    promote(NAME, v1, uri)
    monkeypatch.setenv(
        "GENOPS_HOME", str(tmp_path / "genops-home")
    )  # where the server lists itself
    server = start_server(f"models:/{NAME}@champion", uri, tmp_path, "--follow-interval", "0.5")
    client = Client(server)
    try:
        wait_healthy(server)
        meta = server.metadata()
        assert (meta["version"], meta["alias"], meta["aliases"]) == (v1, "champion", ["champion"])
        assert meta["follow"]["interval_s"] == 0.5
        client.start()

        assert cli(["promote", "--model", NAME, "--version", v2, "--tracking-uri", uri]) == 0
        out = capsys.readouterr().out
        assert f"promoted: {NAME}@champion: v{v1} -> v{v2}" in out
        # the CLI found the running server through its record and asked what it serves
        assert f"local server: pid {server.process.pid} {server.url}" in out
        # what it serves when asked: v1 still, or v2 already if it swapped that fast
        assert re.search(
            rf"serves v{v1}; follows @champion every 0.5 s: will serve v{v2} within 0.5 s"
            rf"|serves v{v2} already",
            out,
        ), out
        meta = wait_for(server, v2)
        assert meta["aliases"] == ["champion"] and meta["alias"] == "champion"
        assert meta["follow"]["alias_version"] == v2
        assert meta["follow"]["status"] in (
            f"swapped v{v1} -> v{v2}",
            "serving the alias's version",
        )

        promote(NAME, v3, uri)
        wait_for(server, v3)
        assert cli(["rollback", "--model", NAME, "--tracking-uri", uri]) == 0
        out = capsys.readouterr().out
        assert f"rolled back: {NAME}@champion: v{v3} -> v{v2}" in out
        assert re.search(
            rf"serves v{v3}; follows @champion every 0.5 s: will serve v{v2}|serves v{v2} already",
            out,
        ), out
        meta = wait_for(server, v2)
        assert meta["aliases"] == ["champion"]

        assert cli(["rollback", "--model", NAME, "--tracking-uri", uri]) == 0
        assert f"v{v2} -> v{v1}" in capsys.readouterr().out
        wait_for(server, v1)

        # the alias on a version that cannot be served (not a genops model): the server
        # keeps the last one, does not retry, and /metadata says which and why
        v4 = _register_foreign(uri)
        promote(NAME, v4, uri)
        deadline = time.monotonic() + 120
        while (meta := server.metadata())["follow"]["error"] is None:
            assert time.monotonic() < deadline, meta["follow"]
            time.sleep(0.2)
        assert meta["follow"]["status"] == f"v{v4} failed to load: still serving v{v1}"
        assert "is not a genops model" in meta["follow"]["error"]
        assert (meta["version"], meta["aliases"]) == (v1, [])  # v1 is no longer champion

        # the alias removed: the last version goes on being served, and /metadata says so
        mlflow.MlflowClient().delete_registered_model_alias(NAME, "champion")
        deadline = time.monotonic() + 30
        while (meta := server.metadata())["follow"]["alias_version"] is not None:
            assert time.monotonic() < deadline, meta["follow"]
            time.sleep(0.2)
        assert meta["version"] == v1 and meta["aliases"] == []
        assert meta["follow"]["status"] == f"alias champion not set: still serving v{v1}"
    finally:
        client.stop.set()
        client.join(timeout=60)
        server.stop()
    assert client.errors == [], client.errors[:5]
    assert client.statuses[200] >= 10, client.statuses
    # the server removed its record when it stopped
    assert not list((tmp_path / "genops-home" / "serving" / "servers").glob("*.json"))
