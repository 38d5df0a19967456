"""Where genops keeps local state: one place for ``$GENOPS_HOME`` and the default store."""

from __future__ import annotations

import os
from pathlib import Path


def genops_home() -> Path:
    """``$GENOPS_HOME`` (default ``./.genops``): local MLflow store, KFP outputs, studies."""
    return Path(os.environ.get("GENOPS_HOME", ".genops")).resolve()


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the local SQLite store ``make run`` writes."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{genops_home() / 'mlflow.db'}"
