"""The language model as an MLflow pyfunc model: prompts in, continuations out.

Input rows: ``prompt`` (string), optional ``max_new_tokens``, ``temperature``, ``top_k``,
``top_p`` (numbers) and ``seed``; output: one ``text`` per row. The model folder holds the
tokenizer; it is loaded int8-quantised when the run released the quantised model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

LM_ARTIFACT = "lm"
DEFAULT_MAX_PROMPTS = 64


class TextGeneratorModel(PythonModel):
    """Wraps a folder saved by :func:`genops.workloads.text.lm.save`."""

    #: The workload whose serving adapter the model server uses for this model.
    workload = "text-lm"

    def load_context(self, context: Any) -> None:
        from genops.core.device import apply_thread_env
        from genops.workloads.text import lm

        apply_thread_env()
        self.lm = lm.load(context.artifacts[LM_ARTIFACT])
        self.max_prompts = int(os.environ.get("GENOPS_MAX_PROMPTS", DEFAULT_MAX_PROMPTS))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from genops.workloads.text.request import parse_text_request

        if isinstance(model_input, dict):
            model_input = pd.DataFrame([model_input])
        out = []
        for _, row in model_input.iterrows():
            body = {k: v for k, v in row.items() if not _missing(v)}
            request = parse_text_request(body, self.max_prompts, self.lm.context)
            out.extend(self._generate(request))
        return pd.DataFrame({"text": out})

    def _generate(self, request: Any) -> list[str]:
        from genops.workloads.text import lm

        return lm.generate(self.lm.model, self.lm.tokenizer, request.prompts, request.params)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def input_schema() -> Schema:
    return Schema(
        [
            ColSpec("string", "prompt"),
            ColSpec("long", "max_new_tokens", required=False),
            ColSpec("double", "temperature", required=False),
            ColSpec("long", "top_k", required=False),
            ColSpec("double", "top_p", required=False),
            ColSpec("long", "seed", required=False),
        ]
    )


def log_text_model(lm_dir: str | Path) -> Any:
    """Log the pyfunc model into the active run; returns MLflow's ModelInfo."""
    from genops.core.serving.pyfunc import log_pyfunc

    return log_pyfunc(
        TextGeneratorModel(),
        {LM_ARTIFACT: str(lm_dir)},
        ModelSignature(inputs=input_schema(), outputs=Schema([ColSpec("string", "text")])),
        pd.DataFrame({"prompt": ["The"], "max_new_tokens": [8], "seed": [0]}),
        extra_requirements=("transformers", "tokenizers", "safetensors"),
    )
