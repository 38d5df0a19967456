"""The toy model (a fitted mean and spread), its pyfunc wrapper and its serving adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from genops.core.serving.request import RequestError
from genops.core.workload import ServingAdapter


class Gaussian:
    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        self.mean, self.std = mean, std

    def fit(self, values: np.ndarray, shrink: float = 1.0) -> Gaussian:
        self.mean, self.std = float(values.mean()), float(values.std()) * shrink
        return self

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        return np.random.default_rng(seed).normal(self.mean, self.std, n)


class ToyModel(PythonModel):
    workload = "toy-gaussian"

    def load_context(self, context: Any) -> None:
        params = json.loads(Path(context.artifacts["params"]).read_text())
        self.gaussian = Gaussian(params["mean"], params["std"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        n = int(model_input["n"].iloc[0])
        return pd.DataFrame({"value": self.gaussian.sample(n, seed=0)})


class ToyAdapter(ServingAdapter):
    def __init__(self, python_model: Any) -> None:
        self.gaussian = python_model.gaussian

    def metadata(self) -> dict[str, Any]:
        return {"mean": self.gaussian.mean, "std": self.gaussian.std}

    def parse(self, body: Any, max_items: int) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("n"), int):
            raise RequestError("n: expected an integer")
        if not 0 < body["n"] <= max_items:
            raise RequestError(f"n: must be in 1..{max_items}")
        return body["n"], body.get("seed")

    def generate(self, request: Any) -> bytes:
        n, seed = request
        return json.dumps({"values": self.gaussian.sample(n, seed).tolist()}).encode()
