"""The whole tabular-synth pipeline through KFP's local runner, on the fast Adult config."""

from __future__ import annotations

import io
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
from pipelines.local import PipelineFailed, RunSummary, run_local
from tests.conftest import ADULT_FAST_CONFIG, ADULT_FAST_RUN_METRICS, free_port

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
            out=TERMINAL,
        )
    finally:
        stop_local(port)
        os.environ.pop("GENOPS_HOME", None)


TERMINAL = io.StringIO()  # what the run showed on the terminal


def test_the_terminal_shows_one_line_per_step_and_the_log_has_the_rest(
    finished: RunSummary,
) -> None:
    shown = TERMINAL.getvalue()
    steps = [line.split() for line in shown.splitlines() if line.startswith("  ")]
    assert [s[0] for s in steps] == [
        "start-run",
        "prepare-data",
        "data-bias-check",
        "tune-setup",
        "tune-worker",
        "tune-summarize",
        "train-synthesizer",
        "evaluate-synthesizer",
        "register-model",
        "bless-model",
        "promote-model",
        "deploy-model",
        "smoke-test-endpoint",
        "finish-run",
    ], shown
    lines = {s[0]: " ".join(s) for s in steps}
    assert all(" ok " in line for line in lines.values()), shown
    assert "final_loss" in lines["train-synthesizer"]
    assert (
        f"fidelity_column_shapes {finished.metrics['fidelity_column_shapes']:.4f}"
        in (lines["evaluate-synthesizer"])
    )
    assert "rows: train 2,100" in lines["prepare-data"]
    assert lines["register-model"].endswith("version 1")
    assert "tuning off" in lines["tune-setup"]
    # the runner's own output (executor inputs, task banners) is in the log, not on screen
    assert "executor_input" not in shown and len(shown.splitlines()) < 30, shown
    log = Path(finished.log_path)
    assert log.parent.name == "logs" and log.is_file()
    text = log.read_text()
    assert "executor_input" in text and "[train-synthesizer]" in text
    assert f"Full log:          {log}" in finished.render()


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


# The seeded fast run's metrics, with margins for CPU nondeterminism; the margins stay well
# inside the ranges that would mean something broke (an untrained synthesizer scores about
# 0.5 TSTR AUC).
FAST_RUN = ADULT_FAST_RUN_METRICS


def test_metrics_match_the_seeded_fast_run_and_their_real_baselines(
    finished: RunSummary,
) -> None:
    m = finished.metrics
    print(finished.render())
    # fidelity: the marginals and pair trends of five epochs, near what the seeded run gets
    assert m["fidelity_column_shapes"] == pytest.approx(
        FAST_RUN["fidelity_column_shapes"], abs=0.03
    )
    assert m["fidelity_pair_trends"] == pytest.approx(FAST_RUN["fidelity_pair_trends"], abs=0.05)
    # the quality score is the mean of the two, not a third measurement
    assert m["fidelity_quality"] == pytest.approx(
        (m["fidelity_column_shapes"] + m["fidelity_pair_trends"]) / 2, abs=1e-9
    )
    # utility against its baseline in the same run: a classifier trained on the real rows
    # (TRTR, deterministic given the split) and one trained on the synthetic rows (TSTR)
    assert m["utility_trtr_auc"] == pytest.approx(FAST_RUN["utility_trtr_auc"], abs=0.01)
    assert m["utility_tstr_auc"] == pytest.approx(FAST_RUN["utility_tstr_auc"], abs=0.08)
    # the synthetic rows keep a good part of the real rows' lift over chance (0.47 here)
    lift = (m["utility_tstr_auc"] - 0.5) / (m["utility_trtr_auc"] - 0.5)
    assert lift > 0.25, lift
    # privacy: synthetic rows sit farther from the training rows than real held-out rows do,
    # and none is a copy of a training row
    assert m["privacy_dcr_ratio"] == pytest.approx(FAST_RUN["privacy_dcr_ratio"], abs=0.4)
    assert m["privacy_dcr_ratio"] > 1.0
    assert m["privacy_dcr_synthetic_median"] > m["privacy_dcr_holdout_median"] > 0.0
    assert m["privacy_exact_copy_share"] == FAST_RUN["privacy_exact_copy_share"]


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
    with pytest.raises(PipelineFailed, match="prepare-data") as failed:
        run_local("tabular-synth", str(config), tracking_uri=uri, pipeline_root=str(tmp_path / "k"))
    # the error names the step and gives its own message and the log, not the traceback
    shown = failed.value.render()
    assert "error: step 'prepare-data' failed: " in shown
    assert "column 'hours_per_week' failed expect_column_to_exist" in shown
    assert "Full log:" in shown and "Traceback" not in shown
    assert "Traceback (most recent call last):" in failed.value.render(traceback=True)
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
