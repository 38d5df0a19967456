from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.models import infer_signature

from genops.core.aliases import (
    CHAMPION,
    RegistryError,
    alias_version,
    champion_metrics,
    promote,
    rollback,
)


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


def _register(uri: str, auc: float) -> str:
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_metric("utility_tstr_auc", auc)
        frame = pd.DataFrame({"x": [1]})
        info = mlflow.pyfunc.log_model(
            name="model", python_model=_Echo(), signature=infer_signature(frame, frame)
        )
    version = mlflow.register_model(
        info.model_uri, "toy", tags={"genops.pipeline_run_id": run.info.run_id}
    )
    return str(version.version)


def test_promote_and_rollback(tracking_uri: str) -> None:
    v1, v2, v3 = (_register(tracking_uri, auc) for auc in (0.8, 0.85, 0.9))
    assert champion_metrics("toy", tracking_uri) == (None, None)
    with pytest.raises(RegistryError, match="no champion: nothing to roll back"):
        rollback("toy", tracking_uri)

    assert promote("toy", v1, tracking_uri).describe() == "toy@champion: none -> v1"
    with pytest.raises(RegistryError, match="first champion: there is no previous"):
        rollback("toy", tracking_uri)

    promote("toy", v2, tracking_uri)
    move = promote("toy", v3, tracking_uri)
    assert (move.from_version, move.to_version) == (v2, v3)
    version, metrics = champion_metrics("toy", tracking_uri)
    assert version == v3 and metrics == {"utility_tstr_auc": 0.9}

    assert rollback("toy", tracking_uri).describe() == "toy@champion: v3 -> v2"
    assert alias_version("toy", CHAMPION, tracking_uri) == v2
    assert rollback("toy", tracking_uri).to_version == v1
    with pytest.raises(RegistryError):
        promote("toy", "99", tracking_uri)
