"""The bias verdicts decide what the pipeline does (fast Adult config, local runner)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml

from pipelines.local import RunSummary, run_local
from tests.conftest import ADULT_FAST_CONFIG

pytestmark = pytest.mark.e2e


def _run(tmp_path: Path, overrides: dict) -> RunSummary:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"base": str(ADULT_FAST_CONFIG), **overrides}))
    return run_local(
        "tabular-synth",
        str(config),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        pipeline_root=str(tmp_path / "kfp"),
    )


def _steps(summary: RunSummary) -> set[str]:
    mlflow.set_tracking_uri(summary.tracking_uri)
    children = mlflow.search_runs(
        [summary.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{summary.run_id}'",
        output_format="list",
    )
    return {r.data.tags["genops.step"] for r in children}


def test_block_policy_stops_before_training_on_biased_data(tmp_path: Path) -> None:
    summary = _run(tmp_path, {"bias": {"policy": "block"}})
    assert summary.outcome == "blocked"
    assert summary.tags["genops.data_bias"] == "failed"
    assert "DPL for sex='Female' vs rest" in summary.tags["genops.failure"]
    assert summary.registered is None
    assert _steps(summary) == {"prepare", "data-bias-check"}  # nothing trained
    assert mlflow.MlflowClient().search_registered_models() == []
    assert summary.status == "FINISHED"  # the pipeline did its job: the gate decided


def test_failed_synthetic_gate_registers_nothing(tmp_path: Path) -> None:
    # No synthesizer reaches a per-group shape score of 0.999 in five epochs.
    summary = _run(tmp_path, {"bias": {"synthetic": {"min_group_shape_score": 0.999}}})
    assert summary.outcome == "rejected"
    assert summary.tags["genops.synthetic_bias"] == "failed"
    assert "group_shape_score" in summary.tags["genops.failure"]
    assert summary.registered is None
    assert "register" not in _steps(summary) and "evaluate" in _steps(summary)
    assert mlflow.MlflowClient().search_registered_models() == []
    client = mlflow.MlflowClient()
    evaluate_run = next(
        r
        for r in mlflow.search_runs(
            [summary.experiment_id],
            filter_string="tags.`genops.step` = 'evaluate'",
            output_format="list",
        )
    )
    files = {a.path for a in client.list_artifacts(evaluate_run.info.run_id, "synthetic_bias")}
    assert {"synthetic_bias/verdict.json", "synthetic_bias/report.html"} <= files
