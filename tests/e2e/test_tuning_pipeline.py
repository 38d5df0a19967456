"""The tune step through the local runner: 2 parallel workers sharing one Optuna study."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import pytest
import yaml

from pipelines.local import run_local
from tests.conftest import ADULT_FAST_CONFIG

pytestmark = pytest.mark.e2e


def test_tuning_with_two_workers_prunes_and_feeds_the_train_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path / "home"))
    config = tmp_path / "tune.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "base": str(ADULT_FAST_CONFIG),
                "tuning": {
                    "enabled": True,
                    "n_trials": 4,
                    "n_workers": 2,
                    "pruner": "median",
                    # the two learners complete before pruning starts: with one, the second
                    # learner was judged against the first (a coin flip that failed in CI)
                    "pruner_startup_trials": 2,
                    "objective": {"report_every": 1},
                    # built to prune: two models that learn, then two that cannot
                    "enqueue": [
                        {"learning_rate": 3e-3},
                        {"learning_rate": 1e-3},
                        {"learning_rate": 1e-9},
                        {"learning_rate": 1e-9},
                    ],
                    "search_space": {
                        "learning_rate": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}
                    },
                },
            }
        )
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = run_local(
        "tabular-synth", str(config), tracking_uri=uri, pipeline_root=str(tmp_path / "k")
    )
    assert summary.outcome == "succeeded", summary.render()

    # the study lives in one shared journal file and holds the trials of both workers
    journals = list((tmp_path / "home" / "optuna").glob("*.journal"))
    assert len(journals) == 1
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs([summary.experiment_id], output_format="list")
    by_step: dict[str, list] = {}
    for run in runs:
        by_step.setdefault(run.data.tags.get("genops.step", "parent"), []).append(run)
    (tune_run,) = by_step["tune"]
    trials = by_step["tune-trial"]
    assert len(trials) == 4
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {tune_run.info.run_id}
    assert {t.data.tags["genops.worker"] for t in trials} == {"0", "1"}
    states = [t.data.tags["genops.trial_state"] for t in trials]
    assert states.count("PRUNED") >= 1 and states.count("COMPLETE") >= 2

    # the tuning run carries the best params and the study plots
    client = mlflow.MlflowClient()
    tune = client.get_run(tune_run.info.run_id)
    files = {a.path for a in client.list_artifacts(tune_run.info.run_id, "tuning")}
    assert {"tuning/best_params.json", "tuning/optimization_history.png"} <= files
    best_lr = float(tune.data.params["best_learning_rate"])
    assert best_lr in (3e-3, 1e-3)
    assert tune.data.metrics["trials_pruned"] >= 1

    # ... and the best params reached the train step
    (train_run,) = by_step["train"]
    used = json.loads(
        Path(
            client.download_artifacts(
                train_run.info.run_id, "tuning/params_used.json", tempfile.mkdtemp()
            )
        ).read_text()
    )
    # the search space merges with the Adult config's (batch_size, embedding_dim)
    assert used["learning_rate"] == best_lr
    assert set(used) == {"learning_rate", "batch_size", "embedding_dim"}
    assert float(train_run.data.params["model_learning_rate"]) == best_lr
