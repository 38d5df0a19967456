"""Bias mitigation by conditional sampling.

The ``mitigate`` policy re-samples from a conditional synthesizer (one whose conditional columns
are the sensitive attributes and, for ``equal_positive_rate``, the label). This module builds
the frame of condition values, one row per synthetic row to generate; the caller hands it to
``synthesizer.sample_conditions(frame)``.

Targets
-------
``balanced_groups``
    Every *combination* of groups gets the same number of rows (joint over the attributes).
    With one attribute that is simply equal counts per group. With several, the joint choice
    balances the intersections too (e.g. Black women as well as women and Black people); when
    every combination occurs in the real data (Adult ``sex`` × ``race``: all 10 do) it also gives
    every attribute equal marginal counts, which balancing each attribute on its own would give
    as well but without control over the intersections. Combinations that never occur in the
    real data are left out: a conditional synthesizer has nothing to learn them from (and
    reject sampling on them fails), so their marginals may then be off by those cells.
``equal_positive_rate``
    Group sizes follow the real data (joint shares of the attribute combinations, so
    representation is unchanged), but in every combination the share of rows with the positive
    label equals the overall positive rate of the real data, i.e. DPL ≈ 0 for every group.

Counts are allocated with the largest-remainder method, so they sum to ``n`` exactly and differ
from the exact quota by less than one row; positives per cell are the nearest integer to
``rate × cell size``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from genops.workloads.tabular.bias.config import BiasConfig, MitigationTarget


def _largest_remainder(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Non-negative integers summing to ``n``, proportional to ``weights``."""
    w = np.asarray(weights, dtype=float)
    quotas = n * w / w.sum()
    base = np.floor(quotas).astype(int)
    rest = n - int(base.sum())
    if rest > 0:
        frac = quotas - base
        tiebreak = rng.random(len(w))
        order = np.lexsort((tiebreak, -frac))  # largest fraction first, random among ties
        base[order[:rest]] += 1
    return base


def _cells(real: pd.DataFrame, attributes: Sequence[str]) -> pd.DataFrame:
    """Observed combinations of the attributes with their row counts (column ``_n``)."""
    sub = real.loc[real[list(attributes)].notna().all(axis=1), list(attributes)]
    cells = sub.groupby(list(attributes), sort=True, dropna=True).size()
    frame = cells.reset_index(name="_n")
    return frame.loc[frame["_n"] > 0].reset_index(drop=True)


def _negative_labels(real: pd.Series, positive_label: Any) -> tuple[list[Any], np.ndarray]:
    values = real.dropna()
    neg = values.loc[values != positive_label]
    if neg.empty:
        raise ValueError("the real label column has no value other than the positive label")
    counts = neg.value_counts()
    return list(counts.index), counts.to_numpy(dtype=float)


def target_condition_frame(
    real_train: pd.DataFrame,
    attributes: Sequence[str],
    label: str,
    positive_label: Any,
    target: MitigationTarget,
    n: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Condition values for ``n`` synthetic rows (see the module docstring for the targets).

    Columns: ``attributes`` (both targets) and ``label`` (``equal_positive_rate`` only), with
    the dtypes of ``real_train``. Rows are shuffled with ``seed``.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    attributes = list(attributes)
    if not attributes:
        raise ValueError("at least one attribute is required")
    for col in [*attributes, label]:
        if col not in real_train.columns:
            raise KeyError(f"column {col!r} not in the real training data")
    rng = np.random.default_rng(seed)
    cells = _cells(real_train, attributes)
    if cells.empty:
        raise ValueError("the real data has no rows with values for all attributes")

    if target == "balanced_groups":
        counts = _largest_remainder(n, np.ones(len(cells)), rng)
        frame = cells.loc[cells.index.repeat(counts), attributes].reset_index(drop=True)
    elif target == "equal_positive_rate":
        labelled = real_train.loc[real_train[label].notna()]
        rate = float((labelled[label] == positive_label).mean()) if len(labelled) else 0.0
        neg_values, neg_weights = _negative_labels(real_train[label], positive_label)
        counts = _largest_remainder(n, cells["_n"].to_numpy(dtype=float), rng)
        parts = []
        for i, size in enumerate(counts):
            if size == 0:
                continue
            n_pos = min(int(size), math.floor(rate * size + 0.5))
            neg_counts = _largest_remainder(int(size) - n_pos, neg_weights, rng)
            labels: list[Any] = [positive_label] * n_pos
            for value, k in zip(neg_values, neg_counts, strict=True):
                labels += [value] * int(k)
            part = pd.DataFrame({a: [cells.at[i, a]] * int(size) for a in attributes})
            part[label] = pd.Series(labels, dtype=object)
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True)
    else:
        raise ValueError(f"unknown mitigation target {target!r}")

    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    for col in frame.columns:
        with contextlib.suppress(TypeError, ValueError):  # else keep the values as they are
            frame[col] = frame[col].astype(real_train[col].dtype)
    return frame


def mitigation_condition_frame(
    real_train: pd.DataFrame,
    attributes: Sequence[str],
    label: str,
    config: BiasConfig,
    n: int,
    positive_label: Any = None,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`target_condition_frame` with target and attributes from ``config.mitigation``
    (attributes default to ``attributes``, the checked ones) and the positive label from the
    argument or ``config.positive_label``."""
    pos = positive_label if positive_label is not None else config.positive_label
    if pos is None:
        raise ValueError("positive_label is required (argument or BiasConfig.positive_label)")
    attrs = config.mitigation.attributes or list(attributes)
    return target_condition_frame(real_train, attrs, label, pos, config.mitigation.target, n, seed)
