"""Serving a tabular synthesizer: the model server's adapter (``POST /generate`` with
``num_rows``, ``conditions``, ``seed``, ``format``) and the smoke tests of a deployed endpoint
(the local REST server, or KServe's genops-server runtime, which runs the same server)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pandas as pd

from genops.core.serving.request import CannotServe, InvalidNumber, RequestError, excerpt
from genops.core.workload import ServingAdapter, SmokeResult
from genops.workloads.tabular.request import validate_request

REQUEST_FIELDS = ("num_rows", "conditions", "seed", "format")
FORMATS = ("records", "columns")


class TabularAdapter(ServingAdapter):
    """The server's view of a :class:`~genops.workloads.tabular.pyfunc.SynthesizerModel`.

    The TVAE's ``sample`` does not mutate the model (fresh generators per call from the
    request's seed, the decoder in inference mode), so requests run in parallel threads
    without a lock and the same seed gives the same rows whatever else runs."""

    def __init__(self, python_model: Any, output_columns: list[str] | None = None) -> None:
        self.synthesizer = python_model.synthesizer
        self.categories = {
            str(k): [str(v) for v in vs] for k, vs in self.synthesizer.categories.items()
        }
        self.columns = output_columns or list(self.synthesizer.columns)

    def metadata(self) -> dict[str, Any]:
        return {
            "output_columns": self.columns,
            "categories": self.categories,
            "conditional_columns": list(getattr(self.synthesizer, "conditional_columns", [])),
        }

    def parse(self, body: Any, max_items: int) -> Any:
        if not isinstance(body, dict):
            raise RequestError(f"body: expected a JSON object, got {type(body).__name__}")
        unknown = sorted(set(body) - set(REQUEST_FIELDS))
        if unknown:
            raise RequestError(
                f"body: unknown field(s) {excerpt(unknown, 80)}; expected {list(REQUEST_FIELDS)}"
            )
        if "num_rows" not in body:
            raise RequestError("num_rows: required field is missing")
        # JSON types first: validate_request would read true as 1 and "10" as 10.
        for key in ("num_rows", "seed"):
            value = body.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float | InvalidNumber)
            ):
                raise RequestError(f"{key}: expected an integer, got {excerpt(value)}")
        fmt = body.get("format") or "records"
        if not isinstance(fmt, str) or fmt not in FORMATS:
            raise RequestError(f"format: expected one of {list(FORMATS)}, got {excerpt(fmt)}")
        request = validate_request(
            body["num_rows"], body.get("conditions"), body.get("seed"), self.categories, max_items
        )
        return request, fmt

    def generate(self, request: Any) -> bytes:
        parsed, fmt = request
        try:
            frame = self.synthesizer.sample(
                parsed.num_rows, conditions=parsed.conditions or None, seed=parsed.seed
            )
        except ValueError as exc:  # a valid request the model cannot meet (a too-rare value)
            raise CannotServe(str(exc)) from exc
        return render(frame, fmt)


def render(frame: pd.DataFrame, fmt: str) -> bytes:
    """The response body. Values go through Python's json, so floats keep every digit."""
    columns = [str(c) for c in frame.columns]
    values = [frame[c].tolist() for c in frame.columns]  # native Python values, per column
    body: dict[str, Any] = {"num_rows": len(frame), "columns": columns}
    if fmt == "columns":
        body["data"] = dict(zip(columns, values, strict=True))
    else:  # the same as frame.to_dict(orient="records"), about 3x faster
        body["rows"] = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
    return json.dumps(body, allow_nan=False).encode()


def smoke_test(
    url: str,
    expected_columns: list[str],
    categories: dict[str, list[str]],
    rows: int = 20,
    timeout: float = 60.0,
) -> SmokeResult:
    """Health, then one generate request whose response must have the real schema."""
    try:
        health = httpx.get(f"{url}/health", timeout=timeout)
        if health.status_code != 200:
            return SmokeResult(False, f"/health answered {health.status_code}")
        reply = httpx.post(f"{url}/generate", json={"num_rows": rows, "seed": 0}, timeout=timeout)
    except httpx.HTTPError as exc:
        return SmokeResult(False, f"endpoint unreachable: {exc}")
    if reply.status_code != 200:
        return SmokeResult(False, f"/generate answered {reply.status_code}: {reply.text[:300]}")
    try:
        body: dict[str, Any] = reply.json()
    except ValueError:
        return SmokeResult(False, f"/generate answered non-JSON: {reply.text[:300]}")
    columns, records = body.get("columns"), body.get("rows")
    if columns != expected_columns:
        return SmokeResult(False, f"columns {columns} != expected {expected_columns}")
    if not isinstance(records, list) or len(records) != rows:
        return SmokeResult(False, f"expected {rows} rows, got {len(records or [])}")
    for record in records:
        if not isinstance(record, dict) and len(record) != len(columns):
            return SmokeResult(False, f"a row has {len(record)} values for {len(columns)} columns")
        values = record if isinstance(record, dict) else dict(zip(columns, record, strict=True))
        for name, allowed in categories.items():
            if values.get(name) not in allowed:
                return SmokeResult(
                    False, f"column '{name}': value {values.get(name)!r} not allowed"
                )
    return SmokeResult(True, f"{rows} rows with the expected {len(columns)} columns")
