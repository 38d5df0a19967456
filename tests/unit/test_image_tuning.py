"""The shared tune steps on an image config: one Optuna study, the image objective (label
agreement to the pruner, then agreement and CAS), trials as nested MLflow runs, best params."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from genops.core import steps as shared
from genops.core.config import dump_config, load_config
from genops.core.tracking import start_pipeline_run
from genops.workloads.image.config import ImageRunConfig
from genops.workloads.image.data import prepare_images
from tests.conftest import REPO


@pytest.fixture
def image_run(tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path))
    config = load_config(REPO / "pipelines" / "configs" / "digits-fast.yaml")
    assert isinstance(config, ImageRunConfig)
    raw = config.model_dump(mode="json")
    raw["dataset"]["sample_per_class"] = 30
    raw["dataset"]["min_images_per_class"] = 20
    raw["model"].update({"epochs": 2, "base_channels": 8, "timesteps": 50, "sample_steps": 5})
    raw["tuning"].update(
        {
            "enabled": True,
            "n_trials": 3,
            "n_workers": 1,
            "trial_epochs": 2,
            "pruner": "none",
            "objective": {"report_every": 1},
            "enqueue": [{"learning_rate": 1e-3, "base_channels": 8}],
            "search_space": {
                "learning_rate": {"type": "float", "low": 5e-4, "high": 3e-3, "log": True},
                "base_channels": {"type": "categorical", "choices": [8, 16]},
            },
        }
    )
    config = ImageRunConfig.model_validate(raw)
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(config))
    data = prepare_images(config.dataset)
    data.splits["train"].save(tmp_path / "train.npz")
    data.splits["validation"].save(tmp_path / "validation.npz")
    run_id = start_pipeline_run(
        tracking_uri, config.experiment_name, "image-tuning-test", {"genops.pipeline": "x"}
    )
    return {"config": str(path), "run_id": run_id, "dir": tmp_path, "uri": tracking_uri}


def test_the_shared_tune_steps_tune_an_image_model(image_run: dict) -> None:
    setup = shared.tune_setup(image_run["config"], image_run["uri"], image_run["run_id"])
    assert setup.workers == [0] and setup.storage_url
    counts = shared.tune_worker(
        image_run["config"],
        str(image_run["dir"] / "train.npz"),
        str(image_run["dir"] / "validation.npz"),
        image_run["uri"],
        setup.tuning_run_id,
        setup.storage_url,
        setup.study_name,
        0,
    )
    assert counts == {"complete": 3, "pruned": 0, "failed": 0, "lost": 0}
    out = image_run["dir"] / "best.json"
    best = shared.tune_summarize(
        image_run["config"],
        image_run["uri"],
        image_run["run_id"],
        setup.tuning_run_id,
        setup.storage_url,
        setup.study_name,
        str(out),
    )
    assert set(best) == {"learning_rate", "base_channels"}
    assert json.loads(out.read_text()) == best
    client = mlflow.MlflowClient()
    trials = mlflow.search_runs(
        [client.get_run(setup.tuning_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{setup.tuning_run_id}'",
        output_format="list",
    )
    assert len(trials) == 3
    for trial in trials:
        metrics = trial.data.metrics
        assert 0.0 <= metrics["label_agreement"] <= 1.0
        assert 0.0 <= metrics["cas_validation"] <= 1.0
        assert 0.0 <= metrics["objective"] <= 1.0
        history = client.get_metric_history(trial.info.run_id, "intermediate_label_agreement")
        assert [m.step for m in history] == [1, 2]  # reported to the pruner every epoch
    # the enqueued point ran first, with the values it was given
    first = min(trials, key=lambda r: r.info.start_time)
    assert first.data.params["base_channels"] == "8"
