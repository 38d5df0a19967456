"""What every workload's request handling shares: the error types the model server maps
to status codes, the caps on a request's size, and strict JSON decoding.

:func:`decode_json` is the one way a request body becomes Python values. It refuses, with a
:class:`RequestError` that names the field, what Python's own ``json`` would let through or
crash on: nesting deeper than :data:`MAX_JSON_DEPTH` (``json`` recurses: 200,000 ``[`` raise
``RecursionError``), duplicate keys (``json`` keeps the last one silently), ``NaN`` and
``Infinity`` (not JSON), numbers out of a float's range (``1e400`` would be ``inf``) and
integers longer than :data:`MAX_INT_DIGITS` digits (no field takes one; a 5,000-digit one
would raise ``ValueError`` from ``int``). Error messages quote the input only through
:func:`excerpt`, so a 10 MB value is never echoed back.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

DEFAULT_MAX_ROWS = 100_000
#: How deep a request body's arrays and objects may nest (a request needs 3).
MAX_JSON_DEPTH = 32
#: The longest integer literal a request may hold: 2**64 has 20 digits.
MAX_INT_DIGITS = 20
#: How many characters of a bad value an error message quotes.
EXCERPT_CHARS = 40
#: Seeds are 32-bit unsigned integers in every workload (NumPy's legacy seeding limit).
MAX_SEED = 2**32 - 1


class RequestError(ValueError):
    """A request that cannot be served; the message says what is wrong (answered with 400)."""


class CannotServe(Exception):
    """A valid request the model cannot meet, e.g. a too-rare condition (answered with 422)."""


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long it was."""
    if isinstance(value, InvalidNumber):
        return repr(value)
    try:
        text = repr(value)
    except Exception:  # a repr that fails must not turn a 400 into a 500
        return f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} chars"
    return f"{text[:limit]}... ({size})"


class InvalidNumber:
    """A number literal of the body that no field can take: it stands where the value was,
    so the check that finds it names the field (see :func:`decode_json`)."""

    __slots__ = ("reason", "text")

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 24 else f"{self.text[:12]}...{self.text[-4:]}"
        return f"{shown} ({self.reason})"


def _parse_int(text: str) -> int | InvalidNumber:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return InvalidNumber(text, f"a {digits:,}-digit integer; at most {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float | InvalidNumber:
    value = float(text)
    if not math.isfinite(value):
        return InvalidNumber(text, "out of the range of a 64-bit float")
    return value


def _parse_constant(text: str) -> InvalidNumber:
    return InvalidNumber(text, f"{text} is not a JSON number")


def _no_duplicates(field: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise RequestError(f"{field}: duplicate key {excerpt(key)} in a JSON object")
                seen.add(key)
        return out

    return pairs


# A JSON string, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """How deep ``raw``'s arrays and objects nest (brackets inside strings do not count);
    a scan of the bytes, no recursion."""
    brackets = _STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps, dtype=np.int64).max())


def _first_invalid(value: Any, path: str, root: bool) -> tuple[str, InvalidNumber] | None:
    # depth is at most MAX_JSON_DEPTH here: recursion is safe
    if isinstance(value, InvalidNumber):
        return path, value
    if isinstance(value, dict):
        for key, item in value.items():
            name = excerpt(key, 60).strip("'") if root and path == "body" else f"{path}.{key}"
            found = _first_invalid(item, name, False)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_invalid(item, f"{path}[{index}]", False)
            if found is not None:
                return found
    return None


def decode_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH, field: str = "body") -> Any:
    """A request body as Python values, strictly (see the module's docstring); raises
    :class:`RequestError` naming the field (``seed``, ``conditions.sex``, ``prompts[2]``).
    ``field`` names a JSON document held in one field (a string of JSON) in the errors."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogatepass")
    if not raw.strip():
        raise RequestError(f"{field}: not valid JSON: empty; expected a JSON object")
    # Fewer brackets than the limit cannot nest deeper than it: the scan is skipped (a
    # request body has a handful).
    brackets = raw.count(b"[") + raw.count(b"{")
    depth = json_depth(raw) if brackets > max_depth else 0
    if depth > max_depth:
        raise RequestError(f"{field}: JSON nested {depth:,} levels deep; at most {max_depth}")
    try:
        value = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_no_duplicates(field),
        )
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"{field}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"{field}: not valid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except RecursionError:  # the depth scan should have caught it; never a 500
        raise RequestError(f"{field}: JSON nested too deep; at most {max_depth}") from None
    found = _first_invalid(value, field, field == "body")
    if found is not None:
        path, number = found
        raise RequestError(f"{path}: {number!r}")
    return value


def check_seed(value: Any, field: str = "seed") -> int | None:
    """A request's seed: None, or an integer in 0..MAX_SEED (an integral float is taken;
    a fractional one, a bool, a string or a non-finite number is refused)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return check_int(value, field, 0, MAX_SEED)


def check_int(value: Any, field: str, low: int, high: int | None = None) -> int:
    """An integer field within [low, high]: ``5`` and ``5.0`` pass; ``5.5``, ``true``,
    ``"5"``, ``1e400`` and a 5,000-digit integer are a RequestError naming ``field``."""
    if isinstance(value, InvalidNumber):
        raise RequestError(f"{field}: {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise RequestError(f"{field}: expected an integer, got {excerpt(value)}")
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            raise RequestError(f"{field}: expected an integer, got {excerpt(value)}")
        if not float(value).is_integer():
            raise RequestError(f"{field}: expected an integer, got a fraction {excerpt(value)}")
    number = int(value)
    if number < low or (high is not None and number > high):
        upper = "" if high is None else f" and <= {high}"
        raise RequestError(f"{field}: must be >= {low}{upper}, got {excerpt(number)}")
    return number
