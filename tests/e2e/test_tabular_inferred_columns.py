"""The whole tabular-synth pipeline through KFP's local runner on a planted table whose spec
lists only the target, a sensitive attribute and one column: the run infers the other
columns, leaves out the identifier and the free text with their reasons, logs the resolved
spec, and trains and evaluates on exactly the resolved columns. The run trains the diffusion
family, so its train, evaluate and register steps run the whole pipeline the way they run
the TVAE in the Adult e2e run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.local import RunSummary, run_local

pytestmark = pytest.mark.e2e

WORDS = [
    "the",
    "order",
    "came",
    "late",
    "and",
    "the",
    "support",
    "team",
    "was",
    "helpful",
    "but",
    "slow",
    "to",
    "answer",
]


def planted(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    spend = np.round(20 + 15 * (plan == "pro") + rng.gamma(2.0, 10.0, n), 2)
    churn = rng.random(n) < 1 / (1 + np.exp(0.05 * tenure - 1 + 0.02 * spend))
    return pd.DataFrame(
        {
            "customer_id": np.arange(50_000, 50_000 + n),
            "tenure": tenure,
            "plan": plan,
            "spend": spend,
            "support_calls": rng.integers(0, 4, n),
            "paperless": rng.choice(["yes", "no"], n),
            "feedback": [" ".join(rng.choice(WORDS, rng.integers(5, 14))) for _ in range(n)],
            "gender": rng.choice(["F", "M"], n),
            "churn": np.where(churn, "yes", "no"),
        }
    )


INFERRED = {"tenure", "plan", "support_calls", "paperless", "gender", "churn"}
USED = INFERRED | {"spend"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunSummary]:
    home = tmp_path_factory.mktemp("genops-home")
    planted().to_csv(home / "customers.csv", index=False)
    config = home / "customers.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": {
                    "name": "customers",
                    "sources": ["customers.csv"],
                    "target": "churn",
                    "positive_label": "yes",
                    "sensitive_attributes": ["gender"],
                    "columns": {"spend": {"type": "continuous", "min": 0}},
                },
                "model": {
                    "family": "diffusion",
                    "epochs": 5,
                    "batch_size": 200,
                    "hidden_dims": [64, 64],
                    "sample_steps": 20,
                },
                "evaluation": {"privacy_sample": 200},
                "bias": {"policy": "warn"},
                "tuning": {"enabled": False},
                "deploy": {"target": "none"},
            }
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
        os.environ.pop("GENOPS_HOME", None)


def _steps(finished: RunSummary) -> dict[str, mlflow.entities.Run]:
    mlflow.set_tracking_uri(finished.tracking_uri)
    children = mlflow.search_runs(
        [finished.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{finished.run_id}'",
        output_format="list",
    )
    return {r.data.tags["genops.step"]: r for r in children}


def test_the_run_config_holds_the_inferred_columns(finished: RunSummary) -> None:
    assert finished.status == "FINISHED"
    client = mlflow.MlflowClient(finished.tracking_uri)
    path = client.download_artifacts(finished.run_id, "config/run_config.yaml")
    dataset = yaml.safe_load(Path(path).read_text())["dataset"]
    assert set(dataset["columns"]) == USED
    assert set(dataset["resolution"]["inferred"]) == INFERRED
    excluded = dataset["resolution"]["excluded"]
    assert set(excluded) == {"customer_id", "feedback"}
    assert excluded["customer_id"].startswith("identifier: increasing whole numbers")
    assert excluded["feedback"].startswith("free text: ")


def test_prepare_logs_the_resolved_spec_and_trains_on_it(finished: RunSummary) -> None:
    steps = _steps(finished)
    assert {"prepare", "train", "evaluate"} <= set(steps)
    assert all(steps[s].info.status == "FINISHED" for s in ("prepare", "train", "evaluate"))
    prepare = steps["prepare"]
    client = mlflow.MlflowClient(finished.tracking_uri)
    text = Path(
        client.download_artifacts(prepare.info.run_id, "data_spec/resolved_spec.yaml")
    ).read_text()
    assert "# columns: 7 used (1 written, 6 inferred), 2 left out" in text
    assert "    # written\n    spend:" in text
    assert "    # inferred: categorical: 3 values\n    plan:" in text
    assert "    - customer_id  # identifier: increasing whole numbers, all 800 distinct" in text
    assert prepare.data.params["columns_inferred"] == "6"
    assert prepare.data.params["columns_excluded"] == "2"
    # the evaluation scored every resolved column, and nothing else
    shapes = {
        key.removeprefix("shape_")
        for key in steps["evaluate"].data.metrics
        if key.startswith("shape_")
    }
    assert shapes == USED
    assert finished.metrics["fidelity_column_shapes"] > 0.5
