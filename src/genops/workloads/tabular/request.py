"""Generation requests for a tabular synthesizer: parsing and validation shared by the pyfunc
model and the model server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from genops.core.serving.request import DEFAULT_MAX_ROWS, RequestError


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
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RequestError(f"conditions: not valid JSON: {exc.msg}") from exc
            if not isinstance(parsed, dict):
                raise RequestError("conditions: expected a JSON object")
            return {str(k): str(v) for k, v in parsed.items()}
        out: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in part:
                raise RequestError(f"conditions: '{part}' is not of the form column=value")
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
        return out
    raise RequestError(f"conditions: unsupported type {type(raw).__name__}")


def validate_request(
    num_rows: Any,
    conditions: Any,
    seed: Any,
    categories: dict[str, list[str]],
    max_rows: int = DEFAULT_MAX_ROWS,
) -> GenerationRequest:
    """Check a request against the model's schema before any work is done."""
    try:
        rows = int(num_rows)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"num_rows: expected an integer, got {num_rows!r}") from exc
    if isinstance(num_rows, float) and not float(num_rows).is_integer():
        raise RequestError(f"num_rows: expected an integer, got {num_rows!r}")
    if rows <= 0:
        raise RequestError(f"num_rows: must be positive, got {rows}")
    if rows > max_rows:
        raise RequestError(f"num_rows: {rows} is above the limit of {max_rows}")
    conds = parse_conditions(conditions)
    for column, value in conds.items():
        if column not in categories:
            raise RequestError(
                f"conditions: unknown column '{column}'; conditions are allowed on "
                f"{sorted(categories)}"
            )
        if value not in categories[column]:
            raise RequestError(
                f"conditions: unknown value '{value}' for column '{column}'; allowed: "
                f"{categories[column]}"
            )
    parsed_seed: int | None = None
    if seed is not None and not (isinstance(seed, float) and pd.isna(seed)):
        try:
            parsed_seed = int(seed)
        except (TypeError, ValueError) as exc:
            raise RequestError(f"seed: expected an integer, got {seed!r}") from exc
    return GenerationRequest(num_rows=rows, conditions=conds, seed=parsed_seed)
