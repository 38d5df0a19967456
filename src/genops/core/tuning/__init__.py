"""Hyperparameter tuning: search spaces in YAML, Optuna studies shared by parallel workers."""

from genops.core.tuning.space import ObjectiveSpec, ParamSpec, TuningSpec, suggest

__all__ = ["ObjectiveSpec", "ParamSpec", "TuningSpec", "suggest"]
