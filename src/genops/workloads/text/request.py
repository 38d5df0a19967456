"""Generation requests for the language model: parsing and validation shared by the pyfunc
model and the model server. Every error names the field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genops.core.serving.request import MAX_SEED, InvalidNumber, RequestError, excerpt
from genops.workloads.text.lm import GenerationParams

FIELDS = (
    "prompt",
    "prompts",
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "stop",
    "stream",
)
MAX_PROMPT_CHARS = 20_000
MAX_STOP = 8
MIN_TEMPERATURE = 0.01


@dataclass(frozen=True)
class TextRequest:
    prompts: list[str]
    params: GenerationParams
    stream: bool = False


def _int(body: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, InvalidNumber):
        raise RequestError(f"{key}: {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{key}: expected an integer, got {excerpt(value)}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise RequestError(f"{key}: expected an integer, got {excerpt(value)}")
    if not low <= value <= high:
        raise RequestError(f"{key}: {excerpt(int(value))} is outside {low}..{high}")
    return int(value)


def _float(body: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if isinstance(value, InvalidNumber):
        raise RequestError(f"{key}: {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"{key}: expected a number, got {excerpt(value)}")
    if not low <= value <= high:
        raise RequestError(f"{key}: {excerpt(value)} is outside {low}..{high}")
    return float(value)


def _encodable(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(f"{field}: not valid Unicode text ({exc.reason})") from None


def _temperature(body: Mapping[str, Any]) -> float:
    """0 (greedy) or 0.01..5: a tinier temperature overflows the softmax."""
    value = _float(body, "temperature", 1.0, 0.0, 5.0)
    if 0.0 < value < MIN_TEMPERATURE:
        raise RequestError(
            f"temperature: {value} is below {MIN_TEMPERATURE}; use 0 for greedy decoding"
        )
    return value


def parse_text_request(body: Mapping[str, Any], max_prompts: int, context: int) -> TextRequest:
    """``{"prompt": "..."}`` or ``{"prompts": [...]}`` with optional ``max_new_tokens``
    (1..context-1), ``temperature`` (0..5, 0 = greedy), ``top_k`` (0..1000, 0 = off),
    ``top_p`` (0..1], ``seed``, ``stop`` (strings) and ``stream`` (one prompt only). Prompts
    and stop strings must be valid Unicode (a lone surrogate is refused)."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RequestError(
            f"body: unknown field(s) {excerpt(unknown[:5], 80)}; expected {list(FIELDS)}"
        )
    if ("prompt" in body) == ("prompts" in body):
        raise RequestError("prompt: give exactly one of 'prompt' and 'prompts'")
    raw = [body["prompt"]] if "prompt" in body else body["prompts"]
    if not isinstance(raw, list) or not raw:
        raise RequestError("prompts: expected a non-empty list of strings")
    if len(raw) > max_prompts:
        raise RequestError(f"prompts: {len(raw)} prompts is above the limit of {max_prompts}")
    for i, prompt in enumerate(raw):
        if not isinstance(prompt, str):
            raise RequestError(f"prompts[{i}]: expected a string, got {type(prompt).__name__}")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise RequestError(f"prompts[{i}]: {len(prompt)} characters, limit {MAX_PROMPT_CHARS}")
        _encodable(prompt, f"prompts[{i}]")
    stop = body.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP
        or not all(isinstance(s, str) and 0 < len(s) <= 100 for s in stop)
    ):
        raise RequestError(f"stop: expected up to {MAX_STOP} non-empty strings")
    for j, text in enumerate(stop):
        _encodable(text, f"stop[{j}]")
    seed = body.get("seed")
    if seed is not None:
        seed = _int(body, "seed", 0, 0, MAX_SEED)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream: expected true or false")
    if stream and len(raw) != 1:
        raise RequestError("stream: streams one prompt; send 'prompt', not several 'prompts'")
    params = GenerationParams(
        max_new_tokens=_int(body, "max_new_tokens", min(64, context - 1), 1, max(1, context - 1)),
        temperature=_temperature(body),
        top_k=_int(body, "top_k", 50, 0, 1000),
        top_p=_float(body, "top_p", 1.0, 1e-6, 1.0),
        seed=seed,
        stop=tuple(stop),
    )
    return TextRequest([str(p) for p in raw], params, stream)
