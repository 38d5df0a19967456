"""Generation requests for a tabular synthesizer: parsing and validation shared by the pyfunc
model and the model server."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from genops.core.serving.request import (
    DEFAULT_MAX_ROWS,
    InvalidNumber,
    RequestError,
    check_seed,
    decode_json,
    excerpt,
)


@dataclass(frozen=True)
class GenerationRequest:
    num_rows: int
    conditions: dict[str, str] = field(default_factory=dict)
    seed: int | None = None


def parse_conditions(raw: Any) -> dict[str, str]:
    """Conditions as a mapping, a JSON object string, or 'col=value,col=value'."""
    if raw is None or (isinstance(raw, float) and pd.isna(raw)) or raw == "":
        return {}
    if isinstance(raw, dict):
        return {str(k): _condition_value(k, v) for k, v in raw.items()}
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            parsed = decode_json(text, field="conditions")  # strict: depth, numbers, keys
            if not isinstance(parsed, dict):
                raise RequestError("conditions: expected a JSON object")
            return {str(k): _condition_value(k, v) for k, v in parsed.items()}
        out: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in part:
                raise RequestError(f"conditions: {excerpt(part)} is not of the form column=value")
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
        return out
    raise RequestError(f"conditions: unsupported type {type(raw).__name__}")


def _condition_value(column: Any, value: Any) -> str:
    """A condition's value is a category: a string (a number is read as its text)."""
    if isinstance(value, InvalidNumber):
        raise RequestError(f"conditions.{excerpt(column)}: {value!r}")
    if isinstance(value, dict | list) or value is None:
        raise RequestError(
            f"conditions.{excerpt(column)}: expected a category (a string), got "
            f"{type(value).__name__}"
        )
    return str(value)


def _row_count(value: Any, max_rows: int) -> int:
    """``num_rows``: a whole number in 1..max_rows (``5`` or ``5.0``; ``"5"`` from a pyfunc
    frame); a fraction, a bool, ``1e400`` or a 5,000-digit integer is refused."""
    if isinstance(value, InvalidNumber):
        raise RequestError(f"num_rows: {value!r}")
    if isinstance(value, bool):
        raise RequestError(f"num_rows: expected an integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit() or len(text) > 20:
            raise RequestError(f"num_rows: expected an integer, got {excerpt(value)}")
        value = int(text)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"num_rows: expected an integer, got {excerpt(value)}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise RequestError(f"num_rows: expected an integer, got {excerpt(value)}")
    rows = int(value)
    if rows <= 0:
        raise RequestError(f"num_rows: must be positive, got {rows}")
    if rows > max_rows:
        raise RequestError(f"num_rows: {excerpt(rows)} is above the limit of {max_rows}")
    return rows


def validate_request(
    num_rows: Any,
    conditions: Any,
    seed: Any,
    categories: dict[str, list[str]],
    max_rows: int = DEFAULT_MAX_ROWS,
) -> GenerationRequest:
    """Check a request against the model's schema before any work is done. Every error
    names the field and quotes at most a short excerpt of the value."""
    rows = _row_count(num_rows, max_rows)
    conds = parse_conditions(conditions)
    for column, value in conds.items():
        if column not in categories:
            raise RequestError(
                f"conditions: unknown column {excerpt(column)}; conditions are allowed on "
                f"{sorted(categories)}"
            )
        if value not in categories[column]:
            raise RequestError(
                f"conditions: unknown value {excerpt(value)} for column '{column}'; allowed: "
                f"{categories[column]}"
            )
    if isinstance(seed, str):  # a pyfunc frame may carry it as text
        text = seed.strip()
        if not text.isdigit() or len(text) > 20:
            raise RequestError(f"seed: expected an integer, got {excerpt(seed)}")
        seed = int(text)
    return GenerationRequest(num_rows=rows, conditions=conds, seed=check_seed(seed))
