"""The whole tabular-synth pipeline through KFP's local runner, on the fast Adult config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
import yaml

from genops.core.config import load_config
from genops.core.serving.deploy import stop_local
from pipelines.local import RunSummary, run_local
from tests.conftest import ADULT_FAST_CONFIG, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunSummary]:
    """One fast run, deployed to a local server on a free port (stopped at the end)."""
    home = tmp_path_factory.mktemp("genops-home")
    port = free_port()
    config = home / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {"base": str(ADULT_FAST_CONFIG), "deploy": {"target": "local", "port": port}}
        )
    )
    os.environ["GENOPS_HOME"] = str(home)
    try:
        yield run_local(
            "tabular-synth",
            str(config),
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            pipeline_root=str(home / "kfp"),
        )
    finally:
        stop_local(port)
        os.environ.pop("GENOPS_HOME", None)


def test_the_champion_is_served_locally_and_smoke_tested(finished: RunSummary) -> None:
    endpoint = finished.tags["genops.endpoint"]
    assert endpoint.startswith("http://127.0.0.1:")
    assert finished.tags["genops.smoke_test"] == "passed"
    assert httpx.get(f"{endpoint}/health", timeout=10).status_code == 200
    reply = httpx.post(
        f"{endpoint}/generate", json={"num_rows": 5, "conditions": {"sex": "Male"}}, timeout=60
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["num_rows"] == 5 and len(body["rows"]) == 5
    bad = httpx.post(f"{endpoint}/generate", json={"num_rows": 0}, timeout=10)
    assert bad.status_code in (400, 422) and "num_rows" in bad.text


def test_run_finishes_and_registers_a_version(finished: RunSummary) -> None:
    assert finished.status == "FINISHED"
    assert finished.registered == "adult-synthesizer/1"
    assert finished.tags["genops.status"] == "succeeded"
    # the first model ever is judged on thresholds alone, blessed and promoted
    assert finished.tags["genops.blessed"] == "true"
    assert finished.tags["genops.champion"] == "adult-synthesizer@champion: none -> v1"
    assert len(finished.tags["genops.dataset_hash"]) == 64


def test_metrics_are_in_their_valid_ranges(finished: RunSummary) -> None:
    m = finished.metrics
    for key in (
        "fidelity_column_shapes",
        "fidelity_pair_trends",
        "fidelity_quality",
        "utility_tstr_auc",
        "utility_trtr_auc",
        "privacy_exact_copy_share",
    ):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["utility_trtr_auc"] > 0.8  # real Adult data is learnable
    assert m["fidelity_column_shapes"] > 0.6  # even 5 epochs learn the marginals roughly
    assert m["privacy_dcr_synthetic_median"] > 0.0
    print(finished.render())


def test_each_step_logged_a_nested_run(finished: RunSummary) -> None:
    mlflow.set_tracking_uri(finished.tracking_uri)
    children = mlflow.search_runs(
        [finished.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{finished.run_id}'",
        output_format="list",
    )
    steps = {r.data.tags["genops.step"]: r for r in children}
    assert set(steps) == {
        "prepare",
        "data-bias-check",
        "tune",  # disabled in the fast config: logs its settings, runs no trial
        "train",
        "evaluate",
        "register",
        "bless",
        "promote",
        "deploy",
        "smoke-test",
    }
    assert all(r.info.status == "FINISHED" for r in children)
    client = mlflow.MlflowClient()
    train = steps["train"]
    history = client.get_metric_history(train.info.run_id, "train_loss")
    assert len(history) == load_config(ADULT_FAST_CONFIG).model.epochs
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id, "plots")}
    assert "plots/loss_curve.png" in artifacts
    evaluate_files = {
        a.path for a in client.list_artifacts(steps["evaluate"].info.run_id, "evaluation")
    }
    assert "evaluation/report.html" in evaluate_files
    prepare_run = client.get_run(steps["prepare"].info.run_id)
    assert prepare_run.inputs.dataset_inputs, "the training data is logged as an MLflow dataset"


def test_registered_model_samples_the_real_schema(finished: RunSummary) -> None:
    mlflow.set_tracking_uri(finished.tracking_uri)
    spec = load_config(ADULT_FAST_CONFIG).dataset
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("adult-synthesizer", "challenger")
    assert version.tags["genops.dataset_hash"] == finished.tags["genops.dataset_hash"]
    assert version.tags["genops.git_commit"] == finished.tags["genops.git_commit"]
    assert version.tags["genops.pipeline_version"] == finished.tags["genops.pipeline_version"]
    model = mlflow.pyfunc.load_model("models:/adult-synthesizer@challenger")
    rows = model.predict(
        pd.DataFrame({"num_rows": [200], "conditions": ["sex=Female"], "seed": [1]})
    )
    assert list(rows.columns) == list(spec.columns)
    assert len(rows) == 200
    assert (rows["sex"] == "Female").all()
    for name, col in spec.columns.items():
        if col.type == "continuous":
            assert pd.api.types.is_numeric_dtype(rows[name]), name
            assert rows[name].min() >= col.min and rows[name].max() <= col.max, name
        elif col.allowed is not None:
            assert set(rows[name]) <= set(col.allowed), name
    again = model.predict(
        pd.DataFrame({"num_rows": [200], "conditions": ["sex=Female"], "seed": [1]})
    )
    pd.testing.assert_frame_equal(rows, again)


def test_bad_input_fails_at_prepare_and_registers_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(ADULT_FAST_CONFIG.parent / "../../data/adult/adult_train.csv.gz", nrows=500)
    frame.drop(columns=["hours_per_week"]).to_csv(bad, index=False)
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump({"base": str(ADULT_FAST_CONFIG), "dataset": {"sources": [str(bad)]}})
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="prepare-data"):
        run_local("tabular-synth", str(config), tracking_uri=uri, pipeline_root=str(tmp_path / "k"))
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    assert client.search_registered_models() == []
    parents = [
        r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FAILED"  # closed by the exit handler
    assert parent.data.tags["genops.failed_step"] == "prepare"
    assert (
        "column 'hours_per_week' failed expect_column_to_exist"
        in parent.data.tags["genops.failure"]
    )


def test_a_worse_candidate_is_not_promoted(finished: RunSummary, tmp_path: Path) -> None:
    """Runs last in this module: it registers v2 against the same store."""
    worse = tmp_path / "worse.yaml"
    worse.write_text(
        yaml.safe_dump(
            {
                "base": str(ADULT_FAST_CONFIG),
                # an (almost) untrained synthesizer: its rows carry no signal for the label
                "model": {"epochs": 1, "learning_rate": 1e-6},
                # let it through the quality floors, so only the no-regression rule judges it
                "blessing": {"min_metrics": {}},
                "bias": {"synthetic": {"min_group_shape_score": None}},
            }
        )
    )
    second = run_local(
        "tabular-synth",
        str(worse),
        tracking_uri=finished.tracking_uri,
        pipeline_root=str(tmp_path / "kfp"),
    )
    assert second.outcome == "succeeded" and second.registered == "adult-synthesizer/2"
    assert second.tags["genops.blessed"] == "false"
    assert "genops.champion" not in second.tags  # no promotion, nothing deployed
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("adult-synthesizer", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("adult-synthesizer", "challenger").version) == "2"
    v2 = client.get_model_version("adult-synthesizer", "2")
    assert v2.tags["genops.blessing"].startswith("not blessed:")
    assert "(regression)" in v2.tags["genops.blessing"]
    assert "champion v1" in v2.tags["genops.blessing"]
