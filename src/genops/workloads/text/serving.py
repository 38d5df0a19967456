"""Serving the language model: the model server's adapter (``POST /generate`` with
``prompt`` or ``prompts``, ``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``,
``seed``, ``stop``; ``"stream": true`` answers with server-sent events, one per piece of
text), requests that arrive together batched into one generation call, and the smoke test
of a deployed endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from genops.core.serving.request import RequestError
from genops.core.workload import ServingAdapter, SmokeResult

BATCH_WINDOW_S = 0.01
MAX_BATCH = 16


@dataclass
class _Pending:
    prompts: list[str]
    params: Any
    done: threading.Event = field(default_factory=threading.Event)
    result: list[str] = field(default_factory=list)
    error: BaseException | None = None


class _Batcher:
    """Requests with the same generation settings and no seed that arrive within a few
    milliseconds of each other are generated in one batch (left-padded, KV cache)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.lock = threading.Lock()
        self.queue: list[_Pending] = []
        self.leader = False

    def submit(self, prompts: list[str], params: Any) -> list[str]:
        if params.seed is not None:  # a seeded request is answered alone: reproducible
            return list(self.run(prompts, params))
        item = _Pending(prompts, params)
        with self.lock:
            self.queue.append(item)
            lead = not self.leader
            self.leader = True
        if lead:
            time.sleep(BATCH_WINDOW_S)
            with self.lock:
                batch, self.queue, self.leader = self.queue, [], False
            for group in _groups(batch):
                self._run(group)
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    def _run(self, group: list[_Pending]) -> None:
        try:
            texts = list(self.run([p for item in group for p in item.prompts], group[0].params))
            start = 0
            for item in group:
                item.result = texts[start : start + len(item.prompts)]
                start += len(item.prompts)
        except BaseException as exc:
            if len(group) == 1:
                group[0].error = exc
            else:  # one request's failure must not fail the others: each alone
                for item in group:
                    try:
                        item.result = list(self.run(item.prompts, item.params))
                    except BaseException as alone:
                        item.error = alone
        finally:
            for item in group:
                item.done.set()


def _groups(batch: list[_Pending]) -> list[list[_Pending]]:
    groups: dict[Any, list[_Pending]] = {}
    for item in batch:
        groups.setdefault(item.params, []).append(item)
    out = []
    for items in groups.values():
        current: list[_Pending] = []
        for item in items:
            if current and sum(len(i.prompts) for i in current) + len(item.prompts) > MAX_BATCH:
                out.append(current)
                current = []
            current.append(item)
        out.append(current)
    return out


class TextAdapter(ServingAdapter):
    """The server's view of a :class:`~genops.workloads.text.pyfunc.TextGeneratorModel`."""

    def __init__(self, python_model: Any) -> None:
        from genops.workloads.text import lm

        self.lm = python_model.lm
        self.max_prompts = int(python_model.max_prompts)
        self.batcher = _Batcher(
            lambda prompts, params: lm.generate(self.lm.model, self.lm.tokenizer, prompts, params)
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "kind": "text",
            "context": self.lm.context,
            "vocab_size": self.lm.tokenizer.get_vocab_size(),
            "quantized_int8": self.lm.quantized,
            "max_prompts": self.max_prompts,
        }

    def parse(self, body: Any, max_items: int) -> Any:
        from genops.workloads.text.request import parse_text_request

        if not isinstance(body, dict):
            raise RequestError(f"body: expected a JSON object, got {type(body).__name__}")
        return parse_text_request(body, min(max_items, self.max_prompts), self.lm.context)

    def generate(self, request: Any) -> bytes:
        texts = self.batcher.submit(request.prompts, request.params)
        completions = [
            {"prompt": p, "text": t} for p, t in zip(request.prompts, texts, strict=True)
        ]
        return json.dumps({"completions": completions}).encode()

    def stream(self, request: Any) -> Iterator[bytes] | None:
        if not request.stream:
            return None
        from genops.workloads.text import lm

        def events() -> Iterator[bytes]:
            pieces = lm.stream_tokens(
                self.lm.model, self.lm.tokenizer, request.prompts[0], request.params
            )
            try:
                for piece in pieces:
                    yield f"data: {json.dumps({'text': piece})}\n\n".encode()
            except Exception as exc:  # the status line is sent: say so in the stream
                error = json.dumps({"error": f"generation failed: {type(exc).__name__}"})
                yield f"event: error\ndata: {error}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return events()


def smoke_test(url: str, timeout: float = 120.0) -> SmokeResult:
    """Health, then two prompts and one streamed prompt: texts come back for each."""
    try:
        if httpx.get(f"{url}/health", timeout=timeout).status_code != 200:
            return SmokeResult(False, "/health did not answer 200")
        body = {"prompts": ["The", "In 1990 ,"], "max_new_tokens": 8, "seed": 0}
        reply = httpx.post(f"{url}/generate", json=body, timeout=timeout)
        if reply.status_code != 200:
            return SmokeResult(False, f"/generate answered {reply.status_code}: {reply.text[:300]}")
        completions = reply.json().get("completions", [])
        if len(completions) != 2 or not all(isinstance(c.get("text"), str) for c in completions):
            return SmokeResult(False, f"expected 2 completions, got {str(completions)[:300]}")
        stream = {"prompt": "The", "max_new_tokens": 8, "seed": 0, "stream": True}
        with httpx.stream("POST", f"{url}/generate", json=stream, timeout=timeout) as events:
            frames = [line for line in events.iter_lines() if line.startswith("data: ")]
        if not frames or frames[-1] != "data: [DONE]":
            return SmokeResult(False, f"the stream did not end with [DONE]: {frames[-3:]}")
    except Exception as exc:  # the smoke test's verdict, not a pipeline failure
        return SmokeResult(False, f"smoke test error: {type(exc).__name__}: {exc}")
    return SmokeResult(True, f"2 completions and a stream of {len(frames) - 1} pieces")


def smoke_test_openai(url: str, model_name: str, timeout: float = 120.0) -> SmokeResult:
    """The check against a KServe InferenceService of KServe's Hugging Face runtime (vLLM or
    transformers backend), over its OpenAI-compatible completions API."""
    body = {"model": model_name, "prompt": "The", "max_tokens": 8, "temperature": 0}
    try:
        reply = httpx.post(f"{url}/openai/v1/completions", json=body, timeout=timeout)
        if reply.status_code != 200:
            return SmokeResult(
                False, f"completions answered {reply.status_code}: {reply.text[:300]}"
            )
        text = reply.json()["choices"][0]["text"]
    except Exception as exc:  # the smoke test's verdict, not a pipeline failure
        return SmokeResult(False, f"smoke test error: {type(exc).__name__}: {exc}")
    if not isinstance(text, str):
        return SmokeResult(False, f"completions answered no text: {reply.text[:300]}")
    return SmokeResult(True, f"a completion of {len(text)} characters (OpenAI API)")
