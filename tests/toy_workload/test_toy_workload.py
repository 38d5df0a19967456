"""A workload from this folder alone runs through the core: one registry entry (here the
environment variable the registry reads, inherited by every task process and the model
server), its config, model, checks and steps; registered, blessed, promoted and served by
the core's steps and server."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import yaml
from kfp import local

from genops.core.serving.deploy import stop_local
from genops.core.workload import WORKLOADS_ENV, get_workload, workload_names
from pipelines.local import summarize
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
ENTRY = "toy-gaussian=tests.toy_workload.workload:WORKLOAD"


@pytest.mark.e2e
def test_a_toy_workload_is_registered_blessed_and_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str
) -> None:
    monkeypatch.setenv(WORKLOADS_ENV, ENTRY)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path / "home"))
    assert "toy-gaussian" in workload_names()
    assert get_workload("toy-gaussian").headline_metrics == ("mean_error", "std_ratio")

    from tests.toy_workload.pipeline import toy_pipeline

    port = free_port()
    config = tmp_path / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "pipeline": "toy-gaussian",
                "dataset": {"name": "toy", "rows": 500},
                "tuning": {"enabled": False},
                "deploy": {"target": "local", "port": port},
            }
        )
    )
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    task = toy_pipeline()(
        config_uri=str(config), tracking_uri=tracking_uri, pipeline_version="t", git_commit="t"
    )
    summary = summarize(tracking_uri, str(task.output), 0.0)
    try:
        assert summary.status == "FINISHED", summary.tags
        assert summary.outcome == "succeeded"
        assert summary.registered == "toy-gaussian/1"
        assert summary.tags["genops.data_bias"] == "passed"
        assert summary.tags["genops.synthetic_bias"] == "passed"
        assert summary.tags["genops.blessed"] == "true"
        assert summary.tags["genops.smoke_test"] == "passed"
        assert 0.8 <= summary.metrics["std_ratio"] <= 1.2
        assert summary.metrics["mean_error"] < 0.2
        assert "std_ratio" in summary.render()
        endpoint = summary.tags["genops.endpoint"]
        assert endpoint == f"http://127.0.0.1:{port}"
        metadata = httpx.get(f"{endpoint}/metadata", timeout=30).json()
        assert metadata["workload"] == "toy-gaussian"
        assert (metadata["name"], metadata["version"]) == ("toy-gaussian", "1")
        assert "champion" in metadata["aliases"]
        reply = httpx.post(f"{endpoint}/generate", json={"n": 4, "seed": 2}, timeout=30)
        assert reply.status_code == 200 and len(reply.json()["values"]) == 4
        bad = httpx.post(f"{endpoint}/generate", json={"n": "four"}, timeout=30)
        assert bad.status_code == 400 and "n:" in bad.json()["error"]
    finally:
        stop_local(port)
