"""Serving a tabular synthesizer: the model server's adapter (``POST /generate`` with
``num_rows``, ``conditions``, ``seed``, ``format``) and the smoke tests of a deployed endpoint
(the local REST server, or KServe's genops-server runtime, which runs the same server)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import httpx
import numpy as np
import orjson
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
    without a lock and the same seed gives the same rows whatever else runs.

    Concurrent requests are answered together (:meth:`generate_batch`, through the
    synthesizer's ``sample_arrays_many``): each request's condition codes and noise come
    from its own seeded generators, the batch is decoded in one pass and split. Alone or
    in a batch, a seed gives the same categorical values; a continuous value may differ in
    its last bits when the family runs its network over the whole batch. Requests with a
    condition met by rejection sampling are answered alone, and a synthesizer without
    ``sample_arrays_many`` answers every request alone through ``sample``."""

    #: The synthesizer's ``batch_size``: rows per network pass.
    SAMPLE_BATCH = 10_000

    def __init__(self, python_model: Any, output_columns: list[str] | None = None) -> None:
        self.synthesizer = python_model.synthesizer
        self.categories = {
            str(k): [str(v) for v in vs] for k, vs in self.synthesizer.categories.items()
        }
        self.columns = output_columns or list(self.synthesizer.columns)
        self._many = getattr(self.synthesizer, "sample_arrays_many", None)
        self._conditional = set(getattr(self.synthesizer, "conditional_columns", []))

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

    def batch_key(self, request: Any) -> Hashable | None:
        parsed, _ = request
        if self._many is None or any(c not in self._conditional for c in parsed.conditions):
            return None  # rejection sampling: its cost is unknown up front, so alone
        return "sample"

    def request_size(self, request: Any) -> int:
        return int(request[0].num_rows)

    def generate_batch(self, requests: Sequence[Any]) -> list[bytes | Exception]:
        if self._many is None:
            return super().generate_batch(requests)
        specs = [(p.num_rows, p.conditions or None, p.seed) for p, _ in requests]
        answers = self._many(specs, self.SAMPLE_BATCH)
        out: list[bytes | Exception] = []
        for (_, fmt), answer in zip(requests, answers, strict=True):
            if isinstance(answer, Exception):  # a valid request the model cannot meet
                out.append(CannotServe(str(answer)))
                continue
            try:
                out.append(render_columns(answer, fmt))
            except ValueError as exc:  # a non-finite value: this request's 500, not the batch's
                out.append(exc)
        return out

    def generate(self, request: Any) -> bytes:
        if self._many is not None:
            answer = self.generate_batch([request])[0]
            if isinstance(answer, Exception):
                raise answer
            return answer
        parsed, fmt = request
        try:
            frame = self.synthesizer.sample(
                parsed.num_rows, conditions=parsed.conditions or None, seed=parsed.seed
            )
        except ValueError as exc:  # a valid request the model cannot meet (a too-rare value)
            raise CannotServe(str(exc)) from exc
        return render(frame, fmt)


def render_columns(data: Mapping[str, np.ndarray], fmt: str) -> bytes:
    """The response body from ``column -> array`` (in column order), with orjson.

    Each column becomes Python values in one ``tolist`` (ints, floats, the category
    strings); floats are written in their shortest round-trip form, as Python's ``json``
    writes them. A NaN or infinity is refused (``ValueError``), as ``json.dumps(...,
    allow_nan=False)`` refuses it: orjson alone would write ``null``."""
    columns = [str(c) for c in data]
    for name, array in data.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"column {name!r}: out of range float values are not JSON compliant")
    values = [array.tolist() for array in data.values()]
    num_rows = len(values[0]) if values else 0
    body: dict[str, Any] = {"num_rows": num_rows, "columns": columns}
    if fmt == "columns":
        body["data"] = dict(zip(columns, values, strict=True))
    else:  # filled column by column: half the time of a dict(zip(...)) per row
        rows: list[dict[str, Any]] = [{} for _ in range(num_rows)]
        for name, column in zip(columns, values, strict=True):
            for row, value in zip(rows, column, strict=True):
                row[name] = value
        body["rows"] = rows
    return orjson.dumps(body)


def render(frame: pd.DataFrame, fmt: str) -> bytes:
    """The response body of a frame (see :func:`render_columns`)."""
    return render_columns({str(c): frame[c].to_numpy() for c in frame.columns}, fmt)


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
