"""The tune steps of the tabular pipeline with two workers sharing one Optuna study, and the
train step taking the best params, at step level on small data.

The pipeline runs the steps as ``tune-setup`` -> a ParallelFor of ``tune-worker`` over the
setup's worker list -> ``tune-summarize`` -> ``train-synthesizer`` (params artifact);
tests/pipelines/test_compile.py proves that wiring in the compiled IR, and the fast e2e run
goes through it with tuning off (one no-op worker). Here the same step functions run with
tuning on: the two workers in two threads, as the local runner runs up to two at once.
"""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
import yaml

from genops.core import steps as core_steps
from genops.workloads.tabular import steps
from genops.workloads.tabular.data import write_parquet
from tests.conftest import SMALL_SPEC, small_frame

TUNING = {
    "enabled": True,
    "n_trials": 4,
    "n_workers": 2,
    "pruner": "median",
    # the two learners complete before pruning starts (see tests/unit/test_tuning.py)
    "pruner_startup_trials": 2,
    "objective": {"report_every": 1},
    # built to prune: two models that learn, then two that cannot
    "enqueue": [
        {"learning_rate": 3e-3},
        {"learning_rate": 1e-3},
        {"learning_rate": 1e-9},
        {"learning_rate": 1e-9},
    ],
    "search_space": {"learning_rate": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}},
}


def test_two_workers_share_one_study_prune_and_feed_the_train_step(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Was a whole pipeline run with tuning on: tests/e2e/test_tuning_pipeline.py.)"""
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENOPS_TORCH_THREADS", "1")  # what tune_worker sets for 2 workers
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
    assert setup.workers == [0, 1]

    def work(worker: int) -> dict[str, int]:
        return core_steps.tune_worker(
            resolved,
            train,
            validation,
            tracking_uri,
            setup.tuning_run_id,
            setup.storage_url,
            setup.study_name,
            worker,
        )

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(work, setup.workers))
    assert [sum(c.values()) for c in counts] == [2, 2]  # each worker ran its share

    # the study lives in one shared journal file and holds the trials of both workers
    journals = list((tmp_path / "home" / "optuna").glob("*.journal"))
    assert [j.name for j in journals] == [f"{run_id}.journal"]
    assert setup.storage_url == f"journal://{journals[0]}"
    client = mlflow.MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    trials = mlflow.search_runs(
        [experiment],
        filter_string=f"tags.mlflow.parentRunId = '{setup.tuning_run_id}'",
        output_format="list",
    )
    assert len(trials) == 4
    assert {t.data.tags["genops.step"] for t in trials} == {"tune-trial"}
    assert {t.data.tags["genops.worker"] for t in trials} == {"0", "1"}
    states = [t.data.tags["genops.trial_state"] for t in trials]
    assert states.count("PRUNED") >= 1 and states.count("COMPLETE") >= 2, states
    assert sum(c["pruned"] for c in counts) == states.count("PRUNED")

    params = tmp_path / "best_params.json"
    best = core_steps.tune_summarize(
        resolved,
        tracking_uri,
        run_id,
        setup.tuning_run_id,
        setup.storage_url,
        setup.study_name,
        params,
    )
    assert best["learning_rate"] in (3e-3, 1e-3)  # a learner, never a hopeless trial
    assert json.loads(params.read_text()) == best
    tune = client.get_run(setup.tuning_run_id)
    files = {a.path for a in client.list_artifacts(setup.tuning_run_id, "tuning")}
    assert {"tuning/best_params.json", "tuning/optimization_history.png"} <= files
    assert float(tune.data.params["best_learning_rate"]) == best["learning_rate"]
    assert tune.data.metrics["trials_pruned"] >= 1
    assert json.loads(client.get_run(run_id).data.params["tuned_params"]) == best

    # ... and the best params reach the train step
    meta = steps.train(resolved, train, tracking_uri, run_id, tmp_path / "model", params)
    train_run = client.get_run(meta["train_run_id"])
    used = json.loads(
        Path(
            client.download_artifacts(
                train_run.info.run_id, "tuning/params_used.json", tempfile.mkdtemp()
            )
        ).read_text()
    )
    assert used == best
    assert float(train_run.data.params["model_learning_rate"]) == best["learning_rate"]
    assert train_run.data.tags["genops.tuned"] == "true"
