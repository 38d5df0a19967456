"""The toy workload's own steps: prepare, the data check, train and evaluate. They use the
core's bookkeeping (step runs, verdict artifacts, gate tags, trained-model records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from genops.core.config import read_config_artifact
from genops.core.io import write_text_atomic
from genops.core.report import render_html, render_markdown
from genops.core.steps import (
    ReportOutputs,
    record_trained_model,
    record_verdict,
    tag_data_gate,
    tag_synthetic_gate,
)
from genops.core.tracking import log_parent, step_run
from genops.core.verdict import BiasVerdict, decide, make_result
from tests.toy_workload.model import Gaussian
from tests.toy_workload.workload import ToyRunConfig


def _config(path: str | Path) -> ToyRunConfig:
    config = read_config_artifact(path)
    assert isinstance(config, ToyRunConfig)
    return config


def _record(verdict: BiasVerdict, out: ReportOutputs, folder: str, title: str) -> None:
    record_verdict(
        verdict, out, render_html(verdict, title=title), render_markdown(verdict, title), folder, {}
    )


def prepare(config_path: str, tracking_uri: str, run_id: str, train: str, holdout: str) -> str:
    config = _config(config_path)
    d = config.dataset
    with step_run(tracking_uri, run_id, "prepare"):
        values = np.random.default_rng(d.seed).normal(d.mean, d.std, d.rows)
        cut = int(len(values) * 0.8)
        np.save(train, values[:cut])
        np.save(holdout, values[cut:])
    return f"toy-{d.seed}-{d.rows}"


def data_check(
    config_path: str, train_path: str, tracking_uri: str, run_id: str, out: ReportOutputs
) -> str:
    config = _config(config_path)
    rows = len(np.load(train_path))
    with step_run(tracking_uri, run_id, "data-check"):
        result = make_result("data", "rows", "all", [], rows, config.dataset.min_rows, ">=")
        verdict = BiasVerdict.from_results("data", [result], "block")
        _record(verdict, out, "data_check", "Toy data check")
        decision = decide(verdict)
        tag_data_gate(run_id, verdict, decision)
    return decision


def train(
    config_path: str, train_path: str, tracking_uri: str, run_id: str, model_dir: str
) -> None:
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    from genops.core.serving.pyfunc import log_pyfunc
    from tests.toy_workload.model import ToyModel

    config = _config(config_path)
    gaussian = Gaussian().fit(np.load(train_path), config.model.shrink)
    directory = Path(model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    params = directory / "params.json"
    write_text_atomic(params, json.dumps({"mean": gaussian.mean, "std": gaussian.std}))
    with step_run(tracking_uri, run_id, "train") as run:
        signature = ModelSignature(
            inputs=Schema([ColSpec("long", "n")]), outputs=Schema([ColSpec("double", "value")])
        )
        info = log_pyfunc(ToyModel(), {"params": str(params)}, signature, pd.DataFrame({"n": [3]}))
        record_trained_model(directory, info, run, {"fitted_std": gaussian.std})


def evaluate(
    config_path: str,
    model_dir: str,
    holdout_path: str,
    tracking_uri: str,
    run_id: str,
    evaluation_json: str,
    out: ReportOutputs,
) -> bool:
    _config(config_path)  # the resolved config is valid for this workload
    params = json.loads((Path(model_dir) / "params.json").read_text())
    holdout = np.load(holdout_path)
    generated = Gaussian(params["mean"], params["std"]).sample(len(holdout) * 10, seed=0)
    metrics: dict[str, Any] = {
        "mean_error": abs(float(generated.mean() - holdout.mean())) / float(holdout.std()),
        "std_ratio": float(generated.std() / holdout.std()),
    }
    with step_run(tracking_uri, run_id, "evaluate"):
        results = [
            make_result("synthetic", "std_ratio", "all", [], metrics["std_ratio"], 0.5, ">=")
        ]
        verdict = BiasVerdict.from_results("synthetic", results, "block")
        _record(verdict, out, "generated_check", "Toy generated-data check")
        write_text_atomic(evaluation_json, json.dumps({"metrics": metrics}))
        log_parent(tracking_uri, run_id, metrics, {})
        tag_synthetic_gate(run_id, verdict)
    return verdict.passed
