"""Tuning a tabular synthesizer: what every trial trains on, and how it is scored
(fidelity every few epochs for the pruner, then fidelity and TSTR AUC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from genops.core.tuning.space import TuningSpec


@dataclass
class ObjectiveData:
    """What every trial trains on and is scored against."""

    train: pd.DataFrame
    validation: pd.DataFrame
    continuous: list[str]
    categorical: list[str]
    target: str
    positive_label: str


def score(
    data: ObjectiveData,
    synthetic: pd.DataFrame,
    fidelity_weight: float,
    utility_weight: float,
    with_utility: bool = True,
) -> dict[str, float]:
    """Fidelity (mean of column shapes and pair trends) and TSTR AUC on validation."""
    from genops.workloads.tabular.evaluation.metrics import (
        classifier_utility,
        column_shapes,
        pair_trends,
    )

    shapes = float(
        np.mean(
            list(
                column_shapes(
                    data.validation, synthetic, data.continuous, data.categorical
                ).values()
            )
        )
    )
    trends_map = pair_trends(data.validation, synthetic, data.continuous, data.categorical)
    quality = (shapes + float(np.mean(list(trends_map.values())))) / 2.0
    out = {"fidelity_column_shapes": shapes, "fidelity_quality": quality}
    if with_utility:
        utility, _ = classifier_utility(
            synthetic,
            data.validation,
            data.target,
            data.positive_label,
            data.continuous,
            data.categorical,
        )
        out["utility_tstr_auc"] = utility.auc
        total = fidelity_weight + utility_weight
        out["objective"] = (fidelity_weight * quality + utility_weight * utility.auc) / total
    return out


class TabularObjective:
    """Trials of a tabular synthesizer: fidelity every few epochs, then fidelity and TSTR."""

    intermediate_metric = "fidelity_quality"

    def __init__(self, data: ObjectiveData, spec: TuningSpec) -> None:
        self.data = data
        self.weights = (spec.objective.fidelity_weight, spec.objective.utility_weight)

    def fit(self, model: Any, on_epoch_end: Any) -> None:
        model.fit(self.data.train, on_epoch_end=on_epoch_end, progress=False)

    def intermediate(self, model: Any, seed: int) -> float:
        sample = model.sample(len(self.data.validation), seed=seed)
        return score(self.data, sample, *self.weights, False)["fidelity_quality"]

    def final(self, model: Any, seed: int) -> dict[str, float]:
        sample = model.sample(len(self.data.validation), seed=seed)
        return score(self.data, sample, *self.weights)
