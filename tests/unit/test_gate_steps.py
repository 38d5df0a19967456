"""The tabular pipeline's gates, decided at step level on small data.

Each gate is a step whose return value a ``dsl.If`` reads: the data bias check's decision
(``!= 'stop'`` runs tuning and training), the evaluate step's synthetic-data verdict
(``== 'passed'`` runs register and bless), the bless step's verdict (``== 'blessed'`` runs
promote, deploy and the smoke test). tests/pipelines/test_compile.py proves that wiring in the
compiled IR; these tests call the step functions the components call, against a temporary
MLflow store, and check the decision each returns and what it records (tags, reports, the
registry's aliases). They replace whole pipeline runs that only watched a gate fire.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from genops.core import steps as core_steps
from genops.core.aliases import CHALLENGER, CHAMPION, alias_version
from genops.core.steps import ReportOutputs
from genops.workloads.tabular import steps
from genops.workloads.tabular.data import write_parquet
from tests.conftest import SMALL_SPEC, small_frame

MODEL = {
    "family": "tvae",
    "epochs": 10,  # enough for a TSTR AUC near 0.98 on the toy table (untrained: about 0.45)
    "batch_size": 100,
    "embedding_dim": 16,
    "compress_dims": [32],
    "decompress_dims": [32],
    "learning_rate": 1e-2,
}
# Every synthetic-data check off: a test turns on the one it is about.
NO_SYNTHETIC_GATES = {
    "max_representation_tvd": None,
    "max_relative_underrepresentation": None,
    "max_dpl_amplification": None,
    "min_disparate_impact_ratio": None,
    "max_dp_difference_increase": None,
    "max_eo_difference_increase": None,
    "min_group_shape_score": None,
}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _start(folder: Path, tracking_uri: str, overrides: dict[str, Any]) -> tuple[Path, str]:
    """The start step on a toy config: the resolved config artifact and the parent run id."""
    folder.mkdir(parents=True, exist_ok=True)
    small_frame(100).to_csv(folder / "toy.csv", index=False)
    raw = _deep_merge(
        {
            "dataset": SMALL_SPEC,
            "model": MODEL,
            "evaluation": {"privacy_sample": 100, "seed": 0},
            "bias": {"policy": "warn", "synthetic": NO_SYNTHETIC_GATES},
            "deploy": {"target": "none"},
        },
        overrides,
    )
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    resolved = folder / "resolved.yaml"
    run_id = core_steps.start(str(config), tracking_uri, "0.1.0-test", "c0ffee", resolved)
    return resolved, run_id


def _report(folder: Path, name: str) -> ReportOutputs:
    return ReportOutputs(
        str(folder / f"{name}.json"), str(folder / f"{name}.html"), str(folder / f"{name}.md")
    )


def _splits(folder: Path) -> tuple[Path, Path]:
    """Train and holdout parquet files of the toy table (as prepare writes them)."""
    train, holdout = folder / "train.parquet", folder / "holdout.parquet"
    write_parquet(small_frame(400, seed=0), train)
    write_parquet(small_frame(200, seed=1), holdout)
    return train, holdout


def _train_and_evaluate(
    folder: Path, config: Path, tracking_uri: str, run_id: str, train: Path, holdout: Path
) -> tuple[Path, Path, dict[str, float], bool]:
    """The train and evaluate steps; the model folder, evaluation.json, metrics, verdict."""
    model_dir = folder / "model"
    steps.train(config, train, tracking_uri, run_id, model_dir)
    evaluation = folder / "evaluation.json"
    out = steps.EvaluateOutputs(
        synthetic=str(folder / "synthetic.parquet"),
        report_html=str(folder / "report.html"),
        evaluation_json=str(evaluation),
        bias=_report(folder, "synthetic_bias"),
    )
    metrics, passed = steps.evaluate(
        config, model_dir, train, holdout, tracking_uri, run_id, "continue", out
    )
    return model_dir, evaluation, metrics, passed


def _step_run(run_id: str, step: str) -> Any:
    client = mlflow.MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    (run,) = mlflow.search_runs(
        [experiment],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.`genops.step` = '{step}'",
        output_format="list",
    )
    return run


def _biased(n: int = 600) -> pd.DataFrame:
    """The toy table with group 'b' mostly denied the positive label (DPL about 0.4)."""
    frame = small_frame(n, seed=2)
    rng = np.random.default_rng(2)
    deny = (frame["group"] == "b") & (rng.random(n) < 0.8)
    return frame.assign(label=frame["label"].where(~deny, "no"))


# ------------------------------------------------------------------ gate 1: data bias


@pytest.mark.parametrize(
    ("policy", "decision"), [("block", "stop"), ("warn", "continue"), ("mitigate", "mitigate")]
)
def test_data_bias_gate_decides_by_policy_on_biased_data(
    tmp_path: Path, tracking_uri: str, policy: str, decision: str
) -> None:
    """Under 'block' the step returns 'stop', which the compiled
    ``dsl.If(data-bias-check != 'stop')`` reads to skip tuning, training and the rest.
    (Was a whole pipeline run: tests/e2e/test_bias_gates.py::
    test_block_policy_stops_before_training_on_biased_data.)"""
    config, run_id = _start(tmp_path, tracking_uri, {"bias": {"policy": policy}})
    train = tmp_path / "train.parquet"
    write_parquet(_biased(), train)
    out = _report(tmp_path, "data_bias")
    assert steps.data_bias_check(config, train, tracking_uri, run_id, out) == decision

    client = mlflow.MlflowClient()
    tags = client.get_run(run_id).data.tags
    assert tags["genops.data_bias"] == "failed"
    # why, on the parent run whatever the policy: the failed metric with its interval
    reasons = tags["genops.data_bias.reasons"]
    assert reasons.startswith("data bias gate failed: ")
    assert re.search(
        r"DPL for group='b' vs rest = 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\] > 0\.100", reasons
    )
    verdict = json.loads(Path(out.verdict_json).read_text())
    assert verdict["passed"] is False
    assert "Data bias check: toy" in Path(out.html).read_text()
    step = _step_run(run_id, "data-bias-check")
    assert step.data.tags["genops.decision"] == decision
    files = {a.path for a in client.list_artifacts(step.info.run_id, "data_bias")}
    assert {"data_bias/verdict.json", "data_bias/report.html"} <= files
    if policy == "block":
        assert tags["genops.status"] == "blocked"
        assert tags["genops.failed_step"] == "data-bias-check"
        assert "DPL for group='b' vs rest" in tags["genops.failure"]
        # the exit handler's finish step: a gate outcome ends the run FINISHED, not FAILED
        assert core_steps.finish(tracking_uri, run_id) == "FINISHED"
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["genops.status"] == "blocked"
    else:
        assert tags["genops.status"] == "running"  # the run goes on to training
        assert "genops.failure" not in tags


def test_data_bias_gate_continues_on_balanced_data(tmp_path: Path, tracking_uri: str) -> None:
    """The control: the same step on data without the gap passes, even under 'block'."""
    config, run_id = _start(tmp_path, tracking_uri, {"bias": {"policy": "block"}})
    train = tmp_path / "train.parquet"
    frame = small_frame(600, seed=2)
    # the same positive rate in both groups: label 'yes' for the top half of income per group
    ranked = frame.groupby("group")["income"].rank(pct=True)
    write_parquet(frame.assign(label=np.where(ranked > 0.5, "yes", "no")), train)
    out = _report(tmp_path, "data_bias")
    assert steps.data_bias_check(config, train, tracking_uri, run_id, out) == "continue"
    tags = mlflow.MlflowClient().get_run(run_id).data.tags
    assert tags["genops.data_bias"] == "passed" and tags["genops.status"] == "running"
    assert tags["genops.data_bias.reasons"].startswith("data bias gate passed: 0 of ")


# ------------------------------------------------------------------ gate 2: synthetic data


def test_failed_synthetic_gate_rejects_the_run_and_reports_why(
    tmp_path: Path, tracking_uri: str
) -> None:
    """The evaluate step returns passed=False (its component answers 'failed'), which the
    compiled ``dsl.If(evaluate-synthesizer == 'passed')`` reads to skip register and the rest.
    (Was a whole pipeline run: tests/e2e/test_bias_gates.py::
    test_failed_synthetic_gate_registers_nothing.)"""
    # No synthesizer reaches a per-group shape score of 0.999 (the e2e's choice, kept).
    gate = {**NO_SYNTHETIC_GATES, "min_group_shape_score": 0.999}
    quick = {"model": {"epochs": 2}}  # any model fails this check: no need to train well
    config, run_id = _start(tmp_path, tracking_uri, {"bias": {"synthetic": gate}, **quick})
    train, holdout = _splits(tmp_path)
    _, evaluation, metrics, passed = _train_and_evaluate(
        tmp_path, config, tracking_uri, run_id, train, holdout
    )
    assert passed is False
    assert json.loads(evaluation.read_text())["metrics"] == metrics  # what bless would read

    client = mlflow.MlflowClient()
    tags = client.get_run(run_id).data.tags
    assert tags["genops.synthetic_bias"] == "failed"
    assert tags["genops.status"] == "rejected"
    assert tags["genops.failed_step"] == "evaluate"
    assert "group_shape_score" in tags["genops.failure"]
    assert tags["genops.synthetic_bias.reasons"] == tags["genops.failure"]
    assert re.search(
        r"group_shape_score for group='\w' = [\d.]+ \[[\d.]+, [\d.]+\] < 0\.999",
        tags["genops.synthetic_bias.reasons"],
    )
    verdict = json.loads((tmp_path / "synthetic_bias.json").read_text())
    assert verdict["passed"] is False
    evaluate_run = _step_run(run_id, "evaluate")
    files = {a.path for a in client.list_artifacts(evaluate_run.info.run_id, "synthetic_bias")}
    assert {"synthetic_bias/verdict.json", "synthetic_bias/report.html"} <= files
    assert client.search_registered_models() == []
    assert core_steps.finish(tracking_uri, run_id) == "FINISHED"  # rejected is a gate outcome
    assert client.get_run(run_id).data.tags["genops.status"] == "rejected"


# ------------------------------------------------------------------ gate 3: blessing


def test_a_worse_candidate_is_registered_but_not_blessed_nor_promoted(
    tmp_path: Path, tracking_uri: str
) -> None:
    """Version 1 goes through train, evaluate, register, bless and promote; version 2, an
    (almost) untrained synthesizer, through train, evaluate, register and bless, which answers
    not blessed, so the compiled ``dsl.If(bless-model == 'blessed')`` skips promote, deploy
    and the smoke test. Its own store: nothing depends on what other tests left behind.
    (Was a second whole pipeline run that had to run last in its module:
    tests/e2e/test_tabular_synth.py::test_a_worse_candidate_is_not_promoted.)"""
    # no quality floors, absolute or relative: only the no-regression rule against the
    # champion judges version 2
    off = {"tstr_trtr_ratio": None, "exact_copies_vs_holdout": None, "dcr_vs_holdout": None}
    release = {"blessing": {"min_metrics": {}, "max_metrics": {}, "relative": off}}
    first, run1 = _start(tmp_path / "v1", tracking_uri, release)
    train, holdout = _splits(tmp_path)
    model1, evaluation1, metrics1, passed1 = _train_and_evaluate(
        tmp_path / "v1", first, tracking_uri, run1, train, holdout
    )
    assert passed1  # every synthetic check is off
    assert core_steps.register(first, model1, tracking_uri, run1, "h1", "0.1.0-test", "c0ffee") == (
        "1"
    )
    blessing1 = _report(tmp_path / "v1", "blessing")
    assert core_steps.bless(
        first, evaluation1, tracking_uri, run1, "1", blessing1.verdict_json, blessing1.markdown
    )
    assert core_steps.promote(first, tracking_uri, run1, "1") == ""  # no champion before

    worse = _deep_merge(release, {"model": {"epochs": 1, "learning_rate": 1e-6}})
    second, run2 = _start(tmp_path / "v2", tracking_uri, worse)
    model2, evaluation2, metrics2, passed2 = _train_and_evaluate(
        tmp_path / "v2", second, tracking_uri, run2, train, holdout
    )
    assert passed2
    # the premise: an untrained synthesizer's rows carry (almost) no signal for the label
    assert metrics2["utility_tstr_auc"] < metrics1["utility_tstr_auc"] - 0.1, (metrics1, metrics2)
    assert core_steps.register(
        second, model2, tracking_uri, run2, "h2", "0.1.0-test", "c0ffee"
    ) == ("2")
    blessing2 = _report(tmp_path / "v2", "blessing")
    assert not core_steps.bless(
        second, evaluation2, tracking_uri, run2, "2", blessing2.verdict_json, blessing2.markdown
    )

    client = mlflow.MlflowClient()
    name = "toy-synthesizer"
    assert alias_version(name, CHAMPION, tracking_uri) == "1"
    assert alias_version(name, CHALLENGER, tracking_uri) == "2"  # every candidate is one
    note = client.get_model_version(name, "2").tags["genops.blessing"]
    assert note.startswith("not blessed:")
    assert "utility_tstr_auc" in note and "(regression: champion v1 = " in note
    assert client.get_model_version(name, "1").tags["genops.blessing"].startswith("blessed")
    tags2 = client.get_run(run2).data.tags
    assert tags2["genops.blessed"] == "false" and tags2["genops.status"] == "succeeded"
    assert tags2["genops.blessing.reasons"] == note  # why, on the parent run too
    assert (
        client.get_run(run1).data.tags["genops.blessing.reasons"] == "blessed (against thresholds)"
    )
    assert "genops.champion" not in tags2
    assert client.get_run(run1).data.tags["genops.champion"] == f"{name}@champion: none -> v1"
    verdict = json.loads(Path(blessing2.verdict_json).read_text())
    assert verdict["blessed"] is False and verdict["baseline_version"] == "1"
