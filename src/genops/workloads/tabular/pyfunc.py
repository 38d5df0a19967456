"""The synthesizer as an MLflow pyfunc model: a request in, synthetic rows out.

Input (one row per request): ``num_rows`` (long), optional ``conditions`` (string:
``sex=Female`` or a JSON object) and optional ``seed`` (long). Output: the synthetic rows
with the real data's columns and dtypes. Several request rows are answered one after the
other and concatenated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from genops.core.serving.request import DEFAULT_MAX_ROWS
from genops.workloads.tabular.request import validate_request

SYNTHESIZER_ARTIFACT = "synthesizer"


class SynthesizerModel(PythonModel):
    """Wraps any genops synthesizer saved with ``save(path)``."""

    #: The workload whose serving adapter the model server uses for this model.
    workload = "tabular-synth"

    def load_context(self, context: Any) -> None:
        from genops.workloads.tabular.models import load_synthesizer

        self.synthesizer = load_synthesizer(context.artifacts[SYNTHESIZER_ARTIFACT])
        self.max_rows = int(os.environ.get("GENOPS_MAX_ROWS", DEFAULT_MAX_ROWS))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if isinstance(model_input, dict):
            model_input = pd.DataFrame([model_input])
        outputs = []
        for _, row in model_input.iterrows():
            request = validate_request(
                row.get("num_rows"),
                row.get("conditions"),
                row.get("seed"),
                self.synthesizer.categories,
                self.max_rows,
            )
            outputs.append(
                self.synthesizer.sample(
                    request.num_rows, conditions=request.conditions or None, seed=request.seed
                )
            )
        return pd.concat(outputs, ignore_index=True)


def input_schema() -> Schema:
    return Schema(
        [
            ColSpec("long", "num_rows"),
            ColSpec("string", "conditions", required=False),
            ColSpec("long", "seed", required=False),
        ]
    )


def signature_for(example_output: pd.DataFrame) -> ModelSignature:
    from mlflow.models import infer_signature

    output = infer_signature(model_output=example_output).outputs
    return ModelSignature(inputs=input_schema(), outputs=output)


def log_synthesizer(synthesizer_dir: str | Path, example_output: pd.DataFrame) -> Any:
    """Log the pyfunc model into the active run; returns MLflow's ModelInfo."""
    from genops.core.serving.pyfunc import log_pyfunc

    return log_pyfunc(
        SynthesizerModel(),
        {SYNTHESIZER_ARTIFACT: str(synthesizer_dir)},
        signature_for(example_output),
        pd.DataFrame({"num_rows": [5], "conditions": [""], "seed": [0]}),
    )
