"""The interface every synthesizer family implements (TVAE now, a GAN family later)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import pandas as pd

__all__ = ["EpochCallback", "Synthesizer"]

EpochCallback = Callable[[int, dict[str, float]], None]
"""Called after each epoch with ``(epoch, metrics)``; ``epoch`` counts from 0.

It may raise (e.g. ``optuna.TrialPruned``) to stop training; the exception propagates out of
``fit``.
"""


@runtime_checkable
class Synthesizer(Protocol):
    """A fitted-or-not tabular generator that can be saved, loaded and sampled."""

    @property
    def loss_history(self) -> list[dict[str, float]]:
        """One entry per finished epoch (keys include ``epoch`` and ``loss``)."""
        ...

    @property
    def columns(self) -> list[str]:
        """Training columns in training order (empty before ``fit``)."""
        ...

    @property
    def conditional_columns(self) -> list[str]:
        """Categorical columns the model is conditioned on (may be empty)."""
        ...

    @property
    def categories(self) -> dict[str, list[str]]:
        """Allowed values of every categorical column (empty before ``fit``)."""
        ...

    def fit(
        self,
        df: pd.DataFrame,
        on_epoch_end: EpochCallback | None = None,
        progress: bool = True,
    ) -> Self: ...

    def sample(
        self,
        n: int,
        conditions: dict[str, str] | None = None,
        seed: int | None = None,
        batch_size: int = 10_000,
    ) -> pd.DataFrame: ...

    def sample_conditions(
        self,
        frame: pd.DataFrame,
        seed: int | None = None,
        batch_size: int = 10_000,
    ) -> pd.DataFrame: ...

    def save(self, path: str | Path) -> None: ...

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self: ...
