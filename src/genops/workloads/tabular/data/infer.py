"""Spec inference: the columns a dataset spec leaves out, inferred from the data.

Under ``columns_mode: infer`` (the default) every column of the sources that the spec does
not list is inferred here, when the run resolves the spec (the CLI before the run, the
pipeline's start step). The types follow SDV's metadata detection
(``SingleTableMetadata.detect_from_dataframe``):

- numbers are numerical (``continuous``, with the observed range), except a few distinct
  non-negative whole numbers (at most ``min(rows / 10, 10)``), which are categorical;
- booleans (``True``/``False``, ``yes``/``no``, ``0``/``1``...) are categorical;
- other strings are categorical (the observed values are the allowed ones), dates apart.

Then what a synthesizer should not learn, or cannot, is left out, each with its reason:

- identifiers: UUIDs; whole numbers that are all distinct and either increasing, named like an
  identifier, or about one per row (a row number); strings that are (nearly) all distinct; a
  column named like one (``id``, ``customer_id``, ``uuid``) that is not a small code;
- free text: strings mostly distinct and long (three words or 30 characters on average);
- dates and times (the synthesizers model numbers and categories), constant columns, mostly
  empty columns, columns with too many categories, numbers mixed with a few strings (an
  undeclared missing marker), and under ``missing_strategy: drop_rows`` columns with more
  than 10 % missing values (keeping one would drop those rows).

A column the spec lists is never second-guessed; ``columns_mode: listed`` uses only those.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from genops.workloads.tabular.config import ColumnSpec
from genops.workloads.tabular.data.values import category_strings

#: At most this many categories are inferred for a column; more is left out.
MAX_INFERRED_CATEGORIES = 200
#: A column with more missing values than this is left out (any missing strategy).
MAX_MISSING_SHARE = 0.5
#: The null share a column tolerates by default (ColumnSpec.max_null_fraction).
DEFAULT_NULL_FRACTION = 0.1
#: The identifier and distinct-share rules need at least this many values to mean anything.
MIN_ROWS_FOR_KEYS = 50
#: Share of distinct values above which a string column is identifier-like.
NEAR_UNIQUE_SHARE = 0.95
#: Share of distinct values above which a string column has too many categories to learn.
HIGH_CARDINALITY_SHARE = 0.5
#: Free text: at least this many words, or this many characters, on average.
FREE_TEXT_WORDS = 3.0
FREE_TEXT_CHARS = 30.0
#: Most categories a target or sensitive attribute inferred as numbers may be read as.
MAX_ROLE_CATEGORIES = 50

_ID_TOKENS = {"id", "ids", "uuid", "guid", "identifier"}
_BOOLEAN_PAIRS = [
    {"true", "false"},
    {"yes", "no"},
    {"y", "n"},
    {"t", "f"},
    {"0", "1"},
]
_UUID = re.compile(
    r"^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$", re.IGNORECASE
)
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?(?:Z|[+-]\d{2}:?\d{2})?)?"
_DATE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4}\d{2}\d{2}T\d{4,6})"
    + _TIME
    + r"$|^\d{1,2}:\d{2}(?::\d{2})?$"
)


class SpecResolutionError(ValueError):
    """The data does not fit what the spec asks of it (the message names column and rule)."""


@dataclass(frozen=True)
class Inference:
    """What one column is: a column spec to use, or None with the reason it is left out."""

    spec: ColumnSpec | None
    kind: str  # numerical, categorical, boolean | identifier, free text, datetime, ...
    note: str  # what was inferred, or why the column is left out

    @property
    def kept(self) -> bool:
        return self.spec is not None


def name_tokens(name: str) -> list[str]:
    """A column name's words: ``customerId`` and ``customer_id`` give customer, id."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t.lower() for t in re.split(r"[^A-Za-z0-9]+", spaced) if t]


def named_like_identifier(name: str) -> bool:
    return any(token in _ID_TOKENS for token in name_tokens(name))


def _left_out(kind: str, note: str) -> Inference:
    return Inference(None, kind, note)


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e15 else f"{value:.4g}"


def _null_fraction(share: float) -> float:
    """The column's max_null_fraction: the default, or the observed share rounded up."""
    return max(DEFAULT_NULL_FRACTION, math.ceil(share * 100) / 100)


def _categorical(values: pd.Series, share_missing: float, kind: str, note: str) -> Inference:
    allowed = sorted(category_strings(values).unique().tolist())
    return Inference(
        ColumnSpec(
            type="categorical",
            allowed=[str(v) for v in allowed],
            max_null_fraction=_null_fraction(share_missing),
        ),
        kind,
        note,
    )


def _numbers(name: str, values: pd.Series, rows: int, share_missing: float) -> Inference:
    numbers = values.astype("float64")
    if not np.isfinite(numbers).all():
        return _left_out("numerical", "infinite values: list it with a range to keep it")
    whole = bool((numbers == np.round(numbers)).all())
    distinct = int(numbers.nunique())
    low, high = float(numbers.min()), float(numbers.max())
    if whole and distinct == 2 and {low, high} == {0.0, 1.0}:
        return _categorical(values, share_missing, "boolean", "boolean (0/1)")
    # SDV's rule: a few non-negative whole numbers are codes, not quantities.
    if whole and low >= 0 and distinct <= min(round(rows / 10), 10):
        return _categorical(
            values,
            share_missing,
            "categorical",
            f"categorical: {distinct} whole-number codes (at most min(rows/10, 10) distinct "
            "non-negative whole numbers)",
        )
    if whole and len(numbers) >= MIN_ROWS_FOR_KEYS:
        all_distinct = distinct == len(numbers)
        if all_distinct and numbers.is_monotonic_increasing:
            return _left_out(
                "identifier", f"identifier: increasing whole numbers, all {distinct} distinct"
            )
        if all_distinct and high - low + 1 <= 2 * len(numbers):
            return _left_out(
                "identifier",
                f"identifier: {distinct} distinct whole numbers in {_fmt(low)}..{_fmt(high)} "
                "(about one per row: a row number)",
            )
        if named_like_identifier(name) and distinct >= NEAR_UNIQUE_SHARE * len(numbers):
            return _left_out(
                "identifier", f"identifier: named like one, {distinct} distinct whole numbers"
            )
    if named_like_identifier(name) and distinct > min(round(rows / 10), 10):
        return _left_out("identifier", f"identifier: named like one ({distinct} distinct values)")
    kind_note = "whole numbers" if whole else "numbers"
    return Inference(
        ColumnSpec(
            type="continuous",
            min=low,
            max=high,
            max_null_fraction=_null_fraction(share_missing),
        ),
        "numerical",
        f"numerical: {kind_note} in [{_fmt(low)}, {_fmt(high)}]",
    )


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.sample(n=min(len(text), 2000), random_state=0) if len(text) > 2000 else text
    if sample.str.match(_DATE).mean() < 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


def _strings(name: str, values: pd.Series, rows: int, share_missing: float) -> Inference:
    if all(isinstance(v, date) for v in values.head(100)):
        return _datetime()
    text = values.astype(str).str.strip()
    present = len(text)
    distinct = int(text.nunique())
    lowered = set(text.str.lower().unique()) if distinct <= 2 else set()
    if distinct == 2 and any(lowered == pair for pair in _BOOLEAN_PAIRS):
        return _categorical(values, share_missing, "boolean", "boolean")
    if text.str.match(_UUID).mean() >= 0.9:
        return _left_out("identifier", "identifier: UUIDs")
    if _looks_like_dates(text):
        return _datetime(f" (e.g. '{text.iloc[0]}')")
    numeric = pd.to_numeric(text, errors="coerce")
    if 0.9 <= numeric.notna().mean() < 1.0:
        others = sorted(set(text[numeric.isna()]))
        if len(others) <= 5:
            return _left_out(
                "mixed",
                f"numbers mixed with the strings {others}: add them to dataset.missing_markers "
                "to keep it as a number",
            )
    share_distinct = distinct / present
    enough = present >= MIN_ROWS_FOR_KEYS
    words = float(text.str.split().str.len().mean())
    chars = float(text.str.len().mean())
    if (words >= FREE_TEXT_WORDS or chars >= FREE_TEXT_CHARS) and (
        (enough and share_distinct >= HIGH_CARDINALITY_SHARE) or distinct > MAX_INFERRED_CATEGORIES
    ):
        return _left_out(
            "free text",
            f"free text: {distinct} distinct values in {present} rows, {words:.1f} words "
            f"({chars:.0f} characters) on average",
        )
    if enough and share_distinct >= NEAR_UNIQUE_SHARE:
        return _left_out(
            "identifier",
            f"identifier: {distinct} distinct values in {present} rows ({share_distinct:.0%})",
        )
    if named_like_identifier(name) and distinct > min(round(rows / 10), 10):
        return _left_out("identifier", f"identifier: named like one ({distinct} distinct values)")
    if distinct > MAX_INFERRED_CATEGORIES or (enough and share_distinct >= HIGH_CARDINALITY_SHARE):
        return _left_out(
            "high cardinality",
            f"too many categories to learn: {distinct} distinct values in {present} rows; "
            "list it as categorical to keep it",
        )
    return _categorical(values, share_missing, "categorical", f"categorical: {distinct} values")


def _datetime(example: str = "") -> Inference:
    return _left_out(
        "datetime",
        f"dates or times{example}: the synthesizers model numbers and categories; convert "
        "it to a number in the data (e.g. days since a date) to keep it",
    )


def infer_column(name: str, values: pd.Series, missing_strategy: str = "drop_rows") -> Inference:
    """What one column of the data is (see the module's rules). ``values`` holds the column
    after missing markers became NaN and the value map was applied."""
    rows = len(values)
    present = values.dropna()
    if rows == 0 or present.empty:
        return _left_out("empty", "empty: every value is missing")
    share_missing = 1.0 - len(present) / rows
    if share_missing > MAX_MISSING_SHARE:
        return _left_out("missing", f"mostly missing ({share_missing:.0%} of rows)")
    if missing_strategy == "drop_rows" and share_missing > DEFAULT_NULL_FRACTION:
        return _left_out(
            "missing",
            f"{share_missing:.0%} of rows missing: under missing_strategy drop_rows keeping it "
            "would drop those rows (list it, or set missing_strategy: category)",
        )
    if category_strings(present).nunique() == 1:
        return _left_out(
            "constant", f"constant: every value is '{category_strings(present).iloc[0]}'"
        )
    if ptypes.is_bool_dtype(present.dtype):
        return _categorical(present, share_missing, "boolean", "boolean")
    if ptypes.is_datetime64_any_dtype(present.dtype) or isinstance(present.dtype, pd.PeriodDtype):
        return _datetime()
    if ptypes.is_numeric_dtype(present.dtype):
        return _numbers(name, present, rows, share_missing)
    if all(isinstance(v, bool | np.bool_) for v in present.head(100)):
        return _categorical(present, share_missing, "boolean", "boolean")
    return _strings(name, present, rows, share_missing)


def infer_as_role(name: str, values: pd.Series, role: str, missing_strategy: str) -> Inference:
    """A target or sensitive attribute the spec does not list: it must be categorical."""
    inference = infer_column(name, values, missing_strategy)
    if inference.spec is not None and inference.spec.type == "categorical":
        return inference
    present = values.dropna()
    if inference.kind == "numerical" and present.nunique() <= MAX_ROLE_CATEGORIES:
        share_missing = 1.0 - len(present) / max(len(values), 1)
        return _categorical(
            present,
            share_missing,
            "categorical",
            f"categorical (the {role}): {present.nunique()} values",
        )
    why = (
        f"numerical ({present.nunique()} distinct values)"
        if inference.kind == "numerical"
        else inference.note
    )
    raise SpecResolutionError(
        f"{role} '{name}' cannot be inferred as categorical: {why}; declare it under columns "
        "with type categorical (or group its values in the data), or pick another column"
    )


def infer_columns(
    frame: pd.DataFrame,
    names: Sequence[str],
    missing_strategy: str = "drop_rows",
    roles: dict[str, str] | None = None,
) -> dict[str, Inference]:
    """:func:`infer_column` for each of ``names``; ``roles`` maps a column to its role
    (target, sensitive attribute), which must come out categorical."""
    roles = roles or {}
    out: dict[str, Inference] = {}
    for name in names:
        if name in roles:
            out[name] = infer_as_role(name, frame[name], roles[name], missing_strategy)
        else:
            out[name] = infer_column(name, frame[name], missing_strategy)
    return out
