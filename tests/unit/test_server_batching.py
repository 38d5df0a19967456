"""Micro-batching in the model server: concurrent requests are answered by one sampling call,
each request keeps its own answer or error (4xx stays 4xx), and a seed gives the same rows
alone or in a batch. No assertion here depends on timing: a batch is made to form by holding
the first one in its worker thread until the others are queued, and sampling calls are
counted."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from genops.core.serving.request import CannotServe, RequestError
from genops.core.serving.server import MicroBatcher, ServedModel, create_app
from genops.core.workload import ServingAdapter
from genops.workloads.tabular.models import TVAEParams, TVAESynthesizer
from genops.workloads.tabular.serving import TabularAdapter, render_columns
from tests.conftest import small_frame

CATEGORICAL = ["group", "color", "label"]
CONTINUOUS = ["age", "income"]
WAIT_LIMIT = 600  # polls of 10 ms for a queue to fill: a hang fails, a slow machine does not


@pytest.fixture(scope="module")
def synthesizer() -> TVAESynthesizer:
    params = TVAEParams(
        epochs=2, batch_size=100, embedding_dim=8, compress_dims=(16,), decompress_dims=(16,)
    )
    model = TVAESynthesizer(
        CATEGORICAL, CONTINUOUS, params=params, conditional_columns=["group"], seed=0
    )
    return model.fit(small_frame(300), progress=False)


def served(adapter: ServingAdapter) -> ServedModel:
    return ServedModel("models:/toy/1", None, adapter, {"version": "1"})


class Gate:
    """Holds the first sampling call in its worker thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.first = True
        self.lock = threading.Lock()

    def wait_if_first(self) -> None:
        with self.lock:
            first, self.first = self.first, False
        if first:
            assert self.release.wait(timeout=120), "the test never released the first batch"


class CountingAdapter(TabularAdapter):
    """The real tabular adapter, counting its sampling calls (and their sizes)."""

    def __init__(self, synthesizer: Any, gate: Gate | None = None) -> None:
        super().__init__(SimpleNamespace(synthesizer=synthesizer))
        self.gate = gate
        self.calls: list[int] = []

    def generate_batch(self, requests: Sequence[Any]) -> list[bytes | Exception]:
        self.calls.append(len(requests))
        if self.gate is not None:
            self.gate.wait_if_first()
        return super().generate_batch(requests)


class ScriptedAdapter(ServingAdapter):
    """Answers ``{"answer": X}``: X ``ok`` echoes, ``bad`` is a RequestError, ``rare`` a
    CannotServe, ``boom`` a RuntimeError; ``fail_batches`` makes every batch call raise."""

    def __init__(self, gate: Gate | None = None, fail_batches: bool = False) -> None:
        self.gate, self.fail_batches = gate, fail_batches
        self.batch_calls: list[int] = []
        self.single_calls = 0

    def metadata(self) -> dict[str, Any]:
        return {}

    def parse(self, body: Any, max_items: int) -> Any:
        if not isinstance(body, dict) or "answer" not in body:
            raise RequestError("answer: required field is missing")
        return str(body["answer"]), int(body.get("id", 0))

    def batch_key(self, request: Any) -> str:
        return "all"

    @staticmethod
    def _answer(request: Any) -> bytes | Exception:
        answer, ident = request
        if answer == "bad":
            return RequestError(f"answer: request {ident} is bad")
        if answer == "rare":
            return CannotServe(f"request {ident} is too rare")
        if answer == "boom":
            return RuntimeError(f"request {ident} broke")
        return json.dumps({"id": ident}).encode()

    def generate(self, request: Any) -> bytes:
        self.single_calls += 1
        answer = self._answer(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def generate_batch(self, requests: Sequence[Any]) -> list[bytes | Exception]:
        self.batch_calls.append(len(requests))
        if self.gate is not None:
            self.gate.wait_if_first()
        if self.fail_batches:
            raise RuntimeError("the whole batch failed")
        return [self._answer(r) for r in requests]


async def _post_together(
    app: Any, bodies: list[dict[str, Any]], gate: Gate, queued: int
) -> list[httpx.Response]:
    """POST the first body; once it is being sampled, the rest; release the first batch
    when ``queued`` requests wait in the batcher's queue."""
    batcher: MicroBatcher = app.state.batcher
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        first = asyncio.ensure_future(client.post("/generate", json=bodies[0]))
        for _ in range(WAIT_LIMIT):
            if batcher.in_flight == 1:
                break
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(client.post("/generate", json=b)) for b in bodies[1:]]
        for _ in range(WAIT_LIMIT):
            if len(batcher.pending) >= queued:
                break
            await asyncio.sleep(0.01)
        assert len(batcher.pending) == queued
        gate.release.set()
        return list(await asyncio.gather(first, *rest))


def test_concurrent_requests_are_sampled_in_one_call(synthesizer: TVAESynthesizer) -> None:
    gate = Gate()
    adapter = CountingAdapter(synthesizer, gate)
    app = create_app("models:/toy/1", served=served(adapter), batch_concurrency=1)
    bodies = [{"num_rows": 5 + i, "seed": i} for i in range(8)]
    replies = asyncio.run(_post_together(app, bodies, gate, queued=7))
    assert [r.status_code for r in replies] == [200] * 8
    assert [r.json()["num_rows"] for r in replies] == [5 + i for i in range(8)]
    # The first request went alone (nothing was running); the seven that came while it
    # sampled were answered by one call.
    assert adapter.calls == [1, 7]
    stats = app.state.batcher.stats
    assert stats["batches"] == 2 and stats["batched_requests"] == 8
    assert stats["largest_batch"] == 7
    # Each answer is its own request's: the same rows as that seed alone.
    for body, reply in zip(bodies, replies, strict=True):
        alone = orjson.loads(adapter.generate(adapter.parse(body, 1000)))
        assert_same_rows(alone, reply.json())


def test_batch_rows_are_capped(synthesizer: TVAESynthesizer) -> None:
    gate = Gate()
    adapter = CountingAdapter(synthesizer, gate)
    app = create_app(
        "models:/toy/1", served=served(adapter), batch_concurrency=1, batch_max_rows=25
    )
    bodies = [{"num_rows": 10, "seed": i} for i in range(7)]
    replies = asyncio.run(_post_together(app, bodies, gate, queued=6))
    assert [r.status_code for r in replies] == [200] * 7
    assert adapter.calls[0] == 1 and sum(adapter.calls) == 7
    assert max(adapter.calls[1:]) == 2  # 25 rows at most: two 10-row requests


def test_errors_stay_with_their_request() -> None:
    gate = Gate()
    adapter = ScriptedAdapter(gate)
    app = create_app("models:/toy/1", served=served(adapter), batch_concurrency=1)
    answers = ["ok", "bad", "ok", "rare", "boom", "ok"]
    bodies = [{"answer": a, "id": i} for i, a in enumerate(answers)]
    replies = asyncio.run(_post_together(app, bodies, gate, queued=5))
    assert [r.status_code for r in replies] == [200, 400, 200, 422, 500, 200]
    assert replies[1].json() == {"error": "answer: request 1 is bad"}
    assert replies[3].json() == {"error": "request 3 is too rare"}
    assert [r.json()["id"] for r in replies if r.status_code == 200] == [0, 2, 5]
    assert adapter.batch_calls == [1, 5] and adapter.single_calls == 0


def test_a_failed_batch_is_answered_one_request_at_a_time() -> None:
    gate = Gate()
    adapter = ScriptedAdapter(gate, fail_batches=True)
    app = create_app("models:/toy/1", served=served(adapter), batch_concurrency=1)
    answers = ["ok", "ok", "rare", "ok"]
    bodies = [{"answer": a, "id": i} for i, a in enumerate(answers)]
    replies = asyncio.run(_post_together(app, bodies, gate, queued=3))
    assert [r.status_code for r in replies] == [200, 200, 422, 200]
    assert adapter.batch_calls == [1, 3] and adapter.single_calls == 4


def test_4xx_and_rejection_sampling_beside_a_batch(synthesizer: TVAESynthesizer) -> None:
    gate = Gate()
    adapter = CountingAdapter(synthesizer, gate)
    app = create_app("models:/toy/1", served=served(adapter), batch_concurrency=1)
    bodies: list[dict[str, Any]] = [
        {"num_rows": 3, "seed": 0},
        {"num_rows": 3, "seed": 1, "conditions": {"group": "b"}},
        {"num_rows": 3, "seed": 2, "conditions": {"color": "purple"}},  # 400 at parse
        {"num_rows": 3, "seed": 3, "conditions": {"color": "red"}},  # rejection: alone
        {"num_rows": "3"},  # 400 at parse
        {"num_rows": 4, "seed": 5},
    ]
    replies = asyncio.run(_post_together(app, bodies, gate, queued=2))
    assert [r.status_code for r in replies] == [200, 200, 400, 200, 400, 200]
    assert "unknown value 'purple'" in replies[2].json()["error"]
    assert {row["group"] for row in replies[1].json()["rows"]} == {"b"}
    assert {row["color"] for row in replies[3].json()["rows"]} == {"red"}
    # the first alone, the rejection-sampled one alone, the two that waited in one call
    assert sorted(adapter.calls) == [1, 1, 2]
    assert app.state.batcher.stats["alone"] == 1  # the rejection-sampled request


def assert_same_rows(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Categories exactly; numbers to a tight tolerance (batched network arithmetic over a
    larger matrix may differ in the last bits)."""
    assert a["columns"] == b["columns"] and a["num_rows"] == b["num_rows"]
    for row_a, row_b in zip(a["rows"], b["rows"], strict=True):
        for column in a["columns"]:
            x, y = row_a[column], row_b[column]
            if isinstance(x, str):
                assert x == y, column
            else:
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (column, x, y)


def test_same_seed_same_rows_alone_or_in_a_batch(synthesizer: TVAESynthesizer) -> None:
    adapter = TabularAdapter(SimpleNamespace(synthesizer=synthesizer))
    wanted = adapter.parse({"num_rows": 40, "seed": 7, "conditions": {"group": "a"}}, 1000)
    others = [
        adapter.parse({"num_rows": 25, "seed": 1}, 1000),
        adapter.parse({"num_rows": 3, "seed": 99, "format": "columns"}, 1000),
        adapter.parse({"num_rows": 17, "seed": 7}, 1000),
    ]
    alone = orjson.loads(adapter.generate(wanted))
    batch = adapter.generate_batch([others[0], wanted, others[1], others[2]])
    assert all(isinstance(body, bytes) for body in batch)
    assert_same_rows(alone, orjson.loads(batch[1]))  # type: ignore[arg-type]
    # ... and the rows the public sample() gives for that seed (a pandas frame)
    frame = synthesizer.sample(40, conditions={"group": "a"}, seed=7)
    assert_same_rows(
        alone,
        {"columns": list(frame.columns), "num_rows": 40, "rows": frame.to_dict("records")},
    )
    assert set(frame["group"]) == {"a"} and frame["age"].dtype == np.int64


def test_diffusion_same_seed_same_rows_alone_or_in_a_batch() -> None:
    """The diffusion family runs its whole sampler once over a micro-batch; each request's
    noise still comes from its own generator."""
    from genops.workloads.tabular.models.diffusion import DiffusionParams, DiffusionSynthesizer

    params = DiffusionParams(
        epochs=2, batch_size=100, hidden_dims=(16,), num_timesteps=50, sample_steps=5
    )
    model = DiffusionSynthesizer(
        CATEGORICAL, CONTINUOUS, params=params, conditional_columns=["group"], seed=0
    ).fit(small_frame(300), progress=False)
    adapter = TabularAdapter(SimpleNamespace(synthesizer=model))
    wanted = adapter.parse({"num_rows": 40, "seed": 7, "conditions": {"group": "a"}}, 1000)
    other = adapter.parse({"num_rows": 25, "seed": 1}, 1000)
    alone = orjson.loads(adapter.generate(wanted))
    batch = adapter.generate_batch([other, wanted])
    together = orjson.loads(batch[1])  # type: ignore[arg-type]
    assert alone["columns"] == together["columns"]
    for row_a, row_b in zip(alone["rows"], together["rows"], strict=True):
        for column, x in row_a.items():
            if isinstance(x, str):
                assert x == row_b[column], column
            else:
                assert math.isclose(x, row_b[column], rel_tol=1e-4, abs_tol=1e-3), column


def test_sample_arrays_many_keeps_errors_per_request(synthesizer: TVAESynthesizer) -> None:
    answers = synthesizer.sample_arrays_many(
        [
            (5, None, 1),
            (5, {"color": "purple"}, 2),  # unknown value
            (0, None, 3),  # not a positive n
            (4, {"color": "blue", "group": "b"}, 4),  # rejection sampling, in the batch
            (6, None, 1),
        ]
    )
    assert isinstance(answers[1], ValueError) and "purple" in str(answers[1])
    assert isinstance(answers[2], ValueError)
    ok = [a for i, a in enumerate(answers) if i in (0, 3, 4)]
    assert all(isinstance(a, dict) for a in ok)
    first, rejected, again = ok
    assert isinstance(first, dict) and isinstance(rejected, dict) and isinstance(again, dict)
    assert len(first["age"]) == 5 and len(again["age"]) == 6
    assert set(rejected["color"].tolist()) == {"blue"} and set(rejected["group"]) == {"b"}
    # seed 1 alone: the same first five rows whatever else was in the batch
    alone = synthesizer.sample(5, seed=1)
    assert alone["color"].tolist() == first["color"].tolist()
    np.testing.assert_allclose(alone["income"].to_numpy(), first["income"], rtol=1e-9)


def test_render_refuses_non_finite_floats_and_keeps_every_digit() -> None:
    data = {"x": np.array([0.1, 1 / 3, 1e-5]), "k": np.array([1, 2, 3]), "s": np.array(["a"] * 3)}
    body = orjson.loads(render_columns(data, "records"))
    assert body["rows"][1] == {"x": 1 / 3, "k": 2, "s": "a"}
    assert json.loads(render_columns(data, "columns"))["data"]["x"] == [0.1, 1 / 3, 1e-5]
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="not JSON compliant"):
            render_columns({"x": np.array([1.0, bad])}, "records")


def test_batching_off_and_metadata(synthesizer: TVAESynthesizer) -> None:
    from fastapi.testclient import TestClient

    adapter = CountingAdapter(synthesizer)
    off = TestClient(create_app("models:/toy/1", served=served(adapter), batch_max_rows=0))
    assert off.post("/generate", json={"num_rows": 3, "seed": 1}).status_code == 200
    assert off.get("/metadata").json()["batching"] is None
    on = TestClient(create_app("models:/toy/1", served=served(adapter)))
    assert on.post("/generate", json={"num_rows": 3, "seed": 1}).status_code == 200
    meta = on.get("/metadata").json()["batching"]
    assert meta["batches"] == 1 and meta["batched_requests"] == 1
    with pytest.raises(ValueError, match="batch concurrency"):
        create_app("models:/toy/1", served=served(adapter), batch_concurrency=0)


def test_images_same_seed_alone_or_in_a_batch() -> None:
    from genops.workloads.image.config import DiffusionSpec
    from genops.workloads.image.diffusion import DiffusionModel
    from genops.workloads.image.serving import ImageAdapter

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(12, 1, 8, 8)).astype(np.float32)
    spec = DiffusionSpec(
        epochs=1, batch_size=6, base_channels=8, timesteps=20, sample_steps=4, device="cpu"
    )
    generator = DiffusionModel(spec, 1, 8, ["ring", "bar", "dot"])
    generator.fit(images, np.repeat(np.arange(3), 4), progress=False)
    adapter = ImageAdapter(SimpleNamespace(generator=generator))
    wanted = adapter.parse({"counts": {"bar": 2, "dot": 1}, "seed": 3, "format": "array"}, 16)
    other = adapter.parse({"classes": ["ring"], "seed": 4, "format": "png"}, 16)
    other_steps = adapter.parse({"classes": ["ring"], "seed": 3, "steps": 2}, 16)
    assert adapter.batch_key(wanted) == adapter.batch_key(other) != adapter.batch_key(other_steps)
    alone = orjson.loads(adapter.generate(wanted))
    batch = adapter.generate_batch([other, wanted])
    together = orjson.loads(batch[1])  # type: ignore[arg-type]
    assert together["labels"] == alone["labels"] == ["bar", "bar", "dot"]
    np.testing.assert_allclose(together["images"], alone["images"], atol=2e-5)
    assert orjson.loads(batch[0])["labels"] == ["ring"]  # type: ignore[arg-type]


def test_a_request_as_large_as_a_batch_goes_alone(synthesizer: TVAESynthesizer) -> None:
    from fastapi.testclient import TestClient

    adapter = CountingAdapter(synthesizer)
    app = create_app("models:/toy/1", served=served(adapter), batch_max_rows=5)
    client = TestClient(app)
    assert client.post("/generate", json={"num_rows": 5, "seed": 1}).status_code == 200
    assert client.post("/generate", json={"num_rows": 4, "seed": 1}).status_code == 200
    stats = app.state.batcher.stats
    assert stats["alone"] == 1 and stats["batched_requests"] == 1
