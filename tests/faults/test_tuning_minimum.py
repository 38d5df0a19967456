"""The tuning run fails only when fewer than ``tuning.min_completed_trials`` trials
completed, at step level (the tune steps of the tabular workload on small data). A worker
whose trial process is killed mid-trial, in a whole run, is in test_pipeline_faults.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml

from genops.core import steps as core_steps
from genops.core.tuning.study import TuningError
from genops.workloads.tabular.data import write_parquet
from tests.conftest import SMALL_SPEC, small_frame

# One worker, two short trials; the first is given a learning rate the model refuses.
TUNING = {
    "enabled": True,
    "n_trials": 2,
    "n_workers": 1,
    "pruner": "none",
    "trial_epochs": 2,
    "min_completed_trials": 2,
    "enqueue": [{"learning_rate": -1.0}, {"learning_rate": 1e-3}],
    "search_space": {"learning_rate": {"type": "float", "low": -1.0, "high": 3e-3}},
}


def _setup(tmp_path: Path, tracking_uri: str) -> tuple[Path, str, Any, Path, Path]:
    small_frame(100).to_csv(tmp_path / "toy.csv", index=False)
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": SMALL_SPEC,
                "model": {"family": "tvae", "epochs": 6, "batch_size": 100},
                "tuning": TUNING,
                "deploy": {"target": "none"},
            },
            sort_keys=False,
        )
    )
    resolved = tmp_path / "resolved.yaml"
    run_id = core_steps.start(str(config), tracking_uri, "0.1.0-test", "c0ffee", resolved)
    train, validation = tmp_path / "train.parquet", tmp_path / "validation.parquet"
    write_parquet(small_frame(600, seed=1), train)
    write_parquet(small_frame(200, seed=2), validation)
    setup = core_steps.tune_setup(resolved, tracking_uri, run_id)
    return resolved, run_id, setup, train, validation


def test_fewer_completed_trials_than_the_minimum_fail_the_run_at_tune(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker, two trials, one of which fails (a learning rate the model refuses): with
    ``min_completed_trials: 2`` the summary fails the run, naming the failed trial."""
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path / "home"))
    resolved, run_id, setup, train, validation = _setup(tmp_path, tracking_uri)
    counts = core_steps.tune_worker(
        resolved,
        train,
        validation,
        tracking_uri,
        setup.tuning_run_id,
        setup.storage_url,
        setup.study_name,
        0,
    )
    assert counts == {"complete": 1, "pruned": 0, "failed": 1, "lost": 0}
    with pytest.raises(TuningError, match=r"1 of 2 trials completed, fewer than"):
        core_steps.tune_summarize(
            resolved,
            tracking_uri,
            run_id,
            setup.tuning_run_id,
            setup.storage_url,
            setup.study_name,
            tmp_path / "best.json",
        )
    client = mlflow.MlflowClient()
    tune = client.get_run(setup.tuning_run_id)
    assert tune.info.status == "FAILED"
    tags = client.get_run(run_id).data.tags
    assert tags["genops.failed_step"] == "tune"
    assert "tuning.min_completed_trials = 2" in tags["genops.failure"]
    assert "trial 0: " in tags["genops.failure"] and "learning_rate" in tags["genops.failure"]
    assert not (tmp_path / "best.json").exists()
