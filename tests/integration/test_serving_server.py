"""The local REST server as a real process, over a model registered in a temporary MLflow store.

A tiny TVAE is trained in memory (no pipeline), logged as the genops pyfunc model, registered
as ``toy-synthesizer`` with alias ``champion`` and the lineage tags the pipeline sets; then
``python -m genops.core.serving.server`` serves it on a free local port.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, small_frame

pytestmark = pytest.mark.integration

MODEL_NAME = "toy-synthesizer"
MAX_ROWS = 100_000
CATEGORICAL = ["group", "color", "label"]
CONTINUOUS = ["age", "income"]


@dataclass
class RegisteredToy:
    tracking_uri: str
    model_uri: str
    dataset_hash: str
    columns: list[str]


def register_toy_model(workdir: Path, name: str = MODEL_NAME) -> RegisteredToy:
    """Fit a tiny conditional TVAE, log it as the pyfunc model, register it as name@champion."""
    import mlflow

    from genops.core.io import content_hash
    from genops.workloads.tabular.models import TVAEParams, TVAESynthesizer
    from genops.workloads.tabular.pyfunc import log_synthesizer

    frame = small_frame(400)
    params = TVAEParams(
        epochs=3, batch_size=100, embedding_dim=16, compress_dims=(32,), decompress_dims=(32,)
    )
    synthesizer = TVAESynthesizer(
        CATEGORICAL, CONTINUOUS, params=params, conditional_columns=["group", "label"], seed=0
    )
    synthesizer.fit(frame, progress=False)
    synthesizer.save(workdir / "synthesizer")
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment(
        "toy-serving", artifact_location=(workdir / "mlartifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        info = log_synthesizer(workdir / "synthesizer", synthesizer.sample(20, seed=0))
    dataset_hash = content_hash(frame)
    tags = {
        "genops.dataset_hash": dataset_hash,
        "genops.git_commit": "0123456789abcdef",
        "genops.pipeline_version": "0.1.0-0123456",
    }
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version.version)
    return RegisteredToy(
        tracking_uri, f"models:/{name}@champion", dataset_hash, list(synthesizer.columns)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    toy: RegisteredToy
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serving")
    toy = register_toy_model(workdir)
    port = free_port()
    log = workdir / "server.log"
    command = [
        sys.executable,
        "-m",
        "genops.core.serving.server",
        "--model-uri",
        toy.model_uri,
        "--tracking-uri",
        toy.tracking_uri,
        "--port",
        str(port),
        "--max-rows",
        str(MAX_ROWS),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after 90 s:\n{log.read_text()}")
            time.sleep(0.25)
        yield Server(url, process, toy, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    assert process.returncode is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=1)


def generate(server: Server, body: Any, client: httpx.Client | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if client is not None:
        return client.post(f"{server.url}/generate", content=content, headers=headers)
    return httpx.post(f"{server.url}/generate", content=content, headers=headers, timeout=60)


def test_health_and_metadata(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    meta = httpx.get(f"{server.url}/metadata").json()
    assert (meta["name"], meta["version"], meta["aliases"]) == (MODEL_NAME, "1", ["champion"])
    assert meta["tags"]["genops.dataset_hash"] == server.toy.dataset_hash
    assert meta["tags"]["genops.git_commit"] == "0123456789abcdef"
    assert meta["tags"]["genops.pipeline_version"] == "0.1.0-0123456"
    assert [c["name"] for c in meta["input_schema"]] == ["num_rows", "conditions", "seed"]
    assert meta["output_columns"] == server.toy.columns
    assert meta["categories"]["group"] == ["a", "b"]
    assert meta["max_rows"] == MAX_ROWS
    assert meta["torch_threads"] == 1  # serve()'s default


def test_good_request_honours_rows_columns_and_condition(server: Server) -> None:
    response = generate(server, {"num_rows": 50, "conditions": {"group": "b"}, "seed": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["num_rows"] == 50 and body["columns"] == server.toy.columns
    rows = body["rows"]
    assert len(rows) == 50 and all(list(r) == server.toy.columns for r in rows)
    assert {r["group"] for r in rows} == {"b"}
    assert all(isinstance(r["age"], int) and 18 <= r["age"] <= 70 for r in rows)
    assert all(isinstance(r["income"], float) for r in rows)
    assert {r["color"] for r in rows} <= {"red", "green", "blue"}
    # Same seed, condition as a string: the same rows; column format: the same values.
    again = generate(server, {"num_rows": 50, "conditions": "group=b", "seed": 7}).json()
    assert again == body
    columns = generate(
        server, {"num_rows": 50, "conditions": {"group": "b"}, "seed": 7, "format": "columns"}
    ).json()
    assert columns["data"] == {c: [r[c] for r in rows] for c in server.toy.columns}
    # Conditions on a categorical column the model is not conditioned on: rejection sampling.
    red = generate(server, {"num_rows": 30, "conditions": {"color": "red"}, "seed": 1}).json()
    assert {r["color"] for r in red["rows"]} == {"red"}
    unseeded = generate(server, {"num_rows": 5})
    assert unseeded.status_code == 200 and len(unseeded.json()["rows"]) == 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"num_rows": 5, "conditions": {"planet": "Mars"}}, "unknown column 'planet'"),
        ({"num_rows": 5, "conditions": "group=z"}, "unknown value 'z' for column 'group'"),
        ({"num_rows": 0}, "num_rows: must be positive, got 0"),
        ({"num_rows": -3}, "num_rows: must be positive"),
        ({"num_rows": MAX_ROWS + 1}, f"above the limit of {MAX_ROWS}"),
        (b'{"num_rows": 5,', "body: not valid JSON"),
        (b"", "body: not valid JSON"),
        ({"conditions": "group=a"}, "num_rows: required field is missing"),
        ({"num_rows": "ten"}, "num_rows: expected an integer, got 'ten'"),
        ({"num_rows": 2.5}, "num_rows: expected an integer, got 2.5"),
        ({"num_rows": True}, "num_rows: expected an integer, got True"),
        ({"num_rows": 5, "seed": "x"}, "seed: expected an integer"),
        ({"num_rows": 5, "conditions": ["group", "a"]}, "conditions: unsupported type list"),
        ({"num_rows": 5, "format": "xml"}, "format: expected one of"),
        ({"num_rows": 5, "nmu_rows": 5}, "unknown field(s) ['nmu_rows']"),
        ([{"num_rows": 5}], "body: expected a JSON object"),
    ],
)
def test_bad_request_is_a_4xx_naming_the_problem(server: Server, body: Any, message: str) -> None:
    response = generate(server, body)
    assert 400 <= response.status_code < 500, response.text
    assert message in response.json()["error"]
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert generate(server, {"num_rows": 3, "seed": 0}).status_code == 200


def test_concurrent_clients_get_every_answer_and_seeds_reproduce(server: Server) -> None:
    threads, per_thread = 8, 50

    def worker(index: int) -> list[tuple[int, int, str]]:
        out = []
        with httpx.Client(timeout=60) as client:
            for j in range(per_thread):
                seed = (index * per_thread + j) % 4
                response = generate(server, {"num_rows": 20, "seed": seed}, client)
                out.append((seed, response.status_code, response.text))
        return out

    with ThreadPoolExecutor(threads) as pool:
        results = [r for chunk in pool.map(worker, range(threads)) for r in chunk]
    assert Counter(status for _, status, _ in results) == {200: threads * per_thread}
    assert all(len(json.loads(text)["rows"]) == 20 for _, _, text in results)
    by_seed: dict[int, set[str]] = {}
    for seed, _, text in results:
        by_seed.setdefault(seed, set()).add(text)
    assert sorted(by_seed) == [0, 1, 2, 3]
    assert all(len(bodies) == 1 for bodies in by_seed.values()), "a seed gave different rows"
    assert len(set().union(*by_seed.values())) == 4


def test_health_answers_while_large_requests_are_sampled(server: Server) -> None:
    """/health runs on the event loop, not in the sampling workers: it answers between the
    moment the large requests go out and the moment the first one's rows come back. Checked
    by the order of events, not by how long anything took (the cores are shared)."""
    events: list[tuple[str, int]] = []  # ("sent" | "answered" | "health", index), in order
    lock = threading.Lock()
    results: dict[int, tuple[int, int]] = {}

    def record(kind: str, index: int) -> None:
        with lock:
            events.append((kind, index))

    def big(seed: int) -> None:
        record("sent", seed)
        # records: the slowest answer to build, so the sampling outlasts a few /health calls
        response = generate(server, {"num_rows": MAX_ROWS, "seed": seed, "format": "records"})
        rows = len(response.json()["rows"]) if response.status_code == 200 else 0
        results[seed] = (response.status_code, rows)
        record("answered", seed)

    large = 8  # more than the server's sampling threads: some wait for a free one
    threads = [threading.Thread(target=big, args=(seed,)) for seed in range(large)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 180
    checks = 0
    while any(t.is_alive() for t in threads):
        assert time.monotonic() < deadline, f"large requests still running after 180 s: {events}"
        assert httpx.get(f"{server.url}/health", timeout=60).status_code == 200
        checks += 1
        record("health", checks)
        time.sleep(0.005)
    for thread in threads:
        thread.join()
    assert results == {seed: (200, MAX_ROWS) for seed in range(large)}
    kinds = [kind for kind, _ in events]
    last_sent = max(i for i, kind in enumerate(kinds) if kind == "sent")
    first_answered = kinds.index("answered")
    during = kinds[last_sent:first_answered].count("health")
    # two or more: one could slip in before the requests reach the server
    assert during >= 2, f"/health answered {during} time(s) while all were sampled: {kinds}"
    assert server.process.poll() is None


class _FailingSynthesizer:
    """Stands in for a model whose sampling fails, to check the 422 and 500 answers."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.columns = ["sex"]
        self.categories = {"sex": ["Female", "Male"]}
        self.conditional_columns: list[str] = []

    def sample(self, n: int, conditions: Any = None, seed: Any = None) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (ValueError("Could not generate 5 rows matching {'sex': 'Male'}"), 422, "Could not"),
        (RuntimeError("out of memory"), 500, "internal error: RuntimeError: out of memory"),
    ],
)
def test_sampling_failures_are_json_errors(error: Exception, status: int, message: str) -> None:
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from genops.core.serving.server import ServedModel, create_app
    from genops.workloads.tabular.serving import TabularAdapter

    synthesizer = _FailingSynthesizer(error)
    adapter = TabularAdapter(SimpleNamespace(synthesizer=synthesizer), ["sex"])
    served = ServedModel("models:/fake/1", None, adapter, {})
    client = TestClient(create_app("models:/fake/1", served=served), raise_server_exceptions=False)
    response = client.post("/generate", json={"num_rows": 5, "conditions": "sex=Male"})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert client.get("/health").json() == {"status": "ok"}
