"""Servers for the integration tests, each started and stopped by the tests themselves.

One session-wide stack (PostgreSQL + moto S3 + ``mlflow server``, from
``scripts/mlflow_stack.py``) and one fast pipeline run tracked on it are shared by every test
here: the server tests read the run back, the browser test opens it in the MLflow UI.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ADULT_FAST_CONFIG, REPO

STACK_PY = REPO / "scripts" / "mlflow_stack.py"


def load_stack_module() -> ModuleType:
    """scripts/ is not a package: load mlflow_stack.py by path (once per session)."""
    name = "genops_mlflow_stack"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, STACK_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def stack_module() -> ModuleType:
    return load_stack_module()


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tests leave files for people (screenshots, timings): $GENOPS_TEST_ARTIFACTS."""
    env = os.environ.get("GENOPS_TEST_ARTIFACTS")
    path = Path(env) if env else tmp_path_factory.mktemp("test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def postgres_bin(stack_module: ModuleType) -> Path:
    """PostgreSQL's server binaries; installed with apt-get (as root) when missing."""
    try:
        return Path(stack_module.find_postgres_bin(install=True))
    except stack_module.StackError as exc:
        pytest.skip(f"no PostgreSQL server and it could not be installed: {exc}")


@pytest.fixture(scope="session")
def server_stack(
    stack_module: ModuleType, postgres_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """PostgreSQL + S3 + mlflow server for the whole session.

    The artifacts destination ends in '/' as terraform's output mlflow_artifacts_destination
    does, so the tests see the keys the cluster would write.
    """
    home = tmp_path_factory.mktemp("mlflow-stack")
    with stack_module.mlflow_stack(home, prefix="mlflow-artifacts/") as stack:
        print("\n" + stack.describe())
        yield stack


@pytest.fixture(scope="session")
def server_run(server_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The fast Adult pipeline, tracked on the PostgreSQL/S3 server (about a minute)."""
    from pipelines.local import run_local

    root = tmp_path_factory.mktemp("kfp-server")
    return run_local(
        "tabular-synth",
        str(ADULT_FAST_CONFIG),
        tracking_uri=server_stack.tracking_uri,
        pipeline_root=str(root),
    )
