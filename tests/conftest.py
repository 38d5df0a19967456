"""Shared fixtures: paths, small frames built in memory, a local MLflow store per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ADULT_CONFIG = REPO / "pipelines" / "configs" / "adult.yaml"
ADULT_FAST_CONFIG = REPO / "pipelines" / "configs" / "adult-fast.yaml"
# What the seeded fast Adult run gives (PyTorch on CPU, 5 epochs on 3,000 rows; two runs here
# gave the same values). CPU training need not repeat bit for bit across machines and thread
# counts, so tests compare with margins.
ADULT_FAST_RUN_METRICS = {
    "fidelity_column_shapes": 0.9437,
    "fidelity_pair_trends": 0.8673,
    "fidelity_quality": 0.9055,
    "utility_tstr_auc": 0.6944,
    "utility_trtr_auc": 0.9108,
    "privacy_dcr_ratio": 1.5441,
    "privacy_exact_copy_share": 0.0,
}

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: SIGINT back to its default, as a
    terminal's foreground job has it. A job a non-interactive shell starts in the background
    (``cmd &`` in a CI script) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local S3 endpoint (moto's server, started and stopped here); genops and boto3 in
    this process are pointed at it with test credentials."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv("GENOPS_S3_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test, made current with an experiment of its own
    (MLflow's fluent API otherwise remembers an experiment id of an earlier test's store)."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # artifacts beside the store: the default (./mlruns) is relative to where pytest runs
    mlflow.create_experiment("tests", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("tests")
    return uri


def small_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A toy table with the shapes the library must handle: bimodal, integer, categoricals."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], size=n, p=[0.6, 0.4])
    mode = rng.random(n) < 0.5
    income = np.where(mode, rng.normal(20, 2, n), rng.normal(60, 5, n))
    label = np.where(income + rng.normal(0, 5, n) > 40, "yes", "no")
    return pd.DataFrame(
        {
            "age": rng.integers(18, 70, n),
            "income": income.round(3),
            "group": group,
            "color": rng.choice(["red", "green", "blue"], size=n),
            "label": label,
        }
    )


SMALL_SPEC = {
    "name": "toy",
    "sources": ["toy.csv"],
    "target": "label",
    "positive_label": "yes",
    "sensitive_attributes": ["group"],
    "columns": {
        "age": {"type": "continuous", "min": 18, "max": 70},
        "income": {"type": "continuous"},
        "group": {"type": "categorical", "allowed": ["a", "b"]},
        "color": {"type": "categorical", "allowed": ["red", "green", "blue"]},
        "label": {"type": "categorical", "allowed": ["yes", "no"]},
    },
}
