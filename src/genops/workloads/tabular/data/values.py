"""How a categorical value is written: one canonical string, in the spec, in validation and in
the prepared data alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def category_string(value: Any) -> str:
    """A category as the spec writes it: ``True``, ``3`` (a whole number read as 3.0 because
    its column has gaps is still ``3``), stripped text."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def category_strings(values: pd.Series) -> pd.Series:
    """:func:`category_string` of every value; missing values stay missing."""
    return values.map(category_string, na_action="ignore").astype(object)
