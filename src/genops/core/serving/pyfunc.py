"""Logging a workload's model as an MLflow pyfunc model: one way for every workload."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature

#: What every genops model needs at run time, pinned to what is installed.
BASE_REQUIREMENTS = ("mlflow", "torch", "pandas", "numpy", "scikit-learn", "scipy", "pyarrow")


def pip_requirements(*extra: str) -> list[str]:
    """The model's runtime needs, pinned to what is installed (no slow inference)."""
    return [f"{n}=={version(n).split('+')[0]}" for n in (*BASE_REQUIREMENTS, *extra)]


def log_pyfunc(
    python_model: Any,
    artifacts: dict[str, str],
    signature: ModelSignature,
    input_example: pd.DataFrame,
    extra_requirements: tuple[str, ...] = (),
) -> Any:
    """Log ``python_model`` into the active run as ``model``; returns MLflow's ModelInfo.

    The genops package travels inside the model (code_paths), so the model loads anywhere
    its pip requirements are installed."""
    import genops

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model,
        artifacts=artifacts,
        code_paths=[str(Path(genops.__file__).parent)],
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements(*extra_requirements),
    )
