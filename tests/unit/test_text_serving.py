"""The language model as an MLflow pyfunc and behind the REST server: completions, streamed
server-sent events, request caps and 400s that name the field, concurrent requests batched
into one generation call, and the smoke test."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from genops.core.serving.server import create_app, load_served_model
from genops.workloads.text import lm
from genops.workloads.text.pyfunc import log_text_model
from tests.unit.serving_fixtures import use_store

CORPUS = ["The game began development in 2010 .", "She said that the bridge was old ."] * 30


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> object:
    tmp: Path = tmp_path_factory.mktemp("text-serving")
    use_store(tmp, "text-serving")  # artifacts beside the store, not in ./mlruns
    tokenizer = lm.train_tokenizer(CORPUS, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    model = lm.build_model(
        lm.LMParams(
            vocab_size=tokenizer.get_vocab_size(), context=32, n_layer=1, n_head=2, n_embd=32
        ),
        eos_id=tokenizer.token_to_id(lm.EOS),
    )
    lm.save(model, tokenizer, tmp / "lm", quantize=True)
    with mlflow.start_run():
        info = log_text_model(tmp / "lm")
    version = mlflow.register_model(info.model_uri, "toy-lm").version
    return load_served_model(f"models:/toy-lm/{version}")


def test_pyfunc_answers_one_text_per_row(served: object) -> None:
    out = served.pyfunc.predict(
        pd.DataFrame({"prompt": ["The", "She"], "seed": [1, 1], "max_new_tokens": [5, 5]})
    )
    assert list(out.columns) == ["text"] and len(out) == 2


def test_metadata_says_int8_text_model(served: object) -> None:
    client = TestClient(create_app("m", served=served, max_rows=4))
    meta = client.get("/metadata").json()
    assert (meta["workload"], meta["kind"], meta["quantized_int8"]) == ("text-lm", "text", True)
    assert meta["context"] == 32 and meta["max_prompts"] == 64


def test_generate_completions_seeded_and_named_errors(served: object) -> None:
    client = TestClient(create_app("m", served=served, max_rows=3))
    body = {"prompts": ["The", "She said"], "max_new_tokens": 6, "seed": 2, "stop": ["\n"]}
    first = client.post("/generate", json=body)
    assert first.status_code == 200
    completions = first.json()["completions"]
    assert [c["prompt"] for c in completions] == ["The", "She said"]
    assert completions == client.post("/generate", json=body).json()["completions"]
    cases = [
        ({"prompts": ["a"] * 4}, "prompts: 4 prompts is above the limit of 3"),
        ({"prompt": "a", "max_new_tokens": 32}, "max_new_tokens: 32 is outside 1..31"),
        ({"prompt": "a", "temperature": -1}, "temperature"),
        ({"prompt": 7}, "prompts[0]"),
        ([1, 2], "body: expected a JSON object"),
    ]
    for payload, message in cases:
        reply = client.post("/generate", json=payload)
        assert reply.status_code == 400 and reply.json()["error"].startswith(message), reply.text
    bad = client.post(
        "/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]


def test_stream_sends_pieces_then_done_and_matches_greedy(served: object) -> None:
    client = TestClient(create_app("m", served=served))
    body = {"prompt": "The", "max_new_tokens": 8, "temperature": 0}
    with client.stream("POST", "/generate", json={**body, "stream": True}) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in reply.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "data: [DONE]"
    streamed = "".join(json.loads(f[len("data: ") :])["text"] for f in frames[:-1])
    whole = client.post("/generate", json=body).json()["completions"][0]["text"]
    assert streamed == whole


def test_concurrent_unseeded_requests_share_one_generation(served: object) -> None:
    adapter = served.adapter
    calls: list[int] = []
    run = adapter.batcher.run

    def counting(prompts: list[str], params: object) -> list[str]:
        calls.append(len(prompts))
        return run(prompts, params)

    adapter.batcher.run = counting
    barrier = threading.Barrier(4)
    results: list[list[str]] = []

    def ask(i: int) -> None:
        request = adapter.parse({"prompt": f"The {i}", "max_new_tokens": 4}, 10)
        barrier.wait()
        results.append(json.loads(adapter.generate(request))["completions"])

    try:
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        adapter.batcher.run = run
    assert sorted(c[0]["prompt"] for c in results) == [f"The {i}" for i in range(4)]
    assert sum(calls) == 4 and len(calls) < 4  # at least two requests shared a call


def test_kserve_renders_the_hugging_face_runtime_and_checks_the_schema() -> None:
    from genops.core.config import load_config
    from genops.core.serving import kserve
    from genops.workloads.text.workload import WORKLOAD
    from tests.conftest import REPO

    config = load_config(REPO / "pipelines" / "configs" / "wikitext.yaml")
    gpu = config.model_copy(
        update={
            "deploy": config.deploy.model_copy(
                update={"kserve": config.deploy.kserve.model_copy(update={"gpu": True})}
            )
        }
    )
    for cfg, backend in ((config, "--backend=huggingface"), (gpu, "--backend=vllm")):
        overrides = WORKLOAD.kserve_model(cfg, "s3://bucket/mlflow/1/models/m-1")
        manifest = kserve.render_inference_service(
            name=cfg.model_name,
            gpu=cfg.deploy.kserve.gpu,
            min_replicas=0,
            max_replicas=3,
            **overrides,
        )
        kserve.validate_manifest(manifest)
        model = manifest["spec"]["predictor"]["model"]
        assert model["modelFormat"] == {"name": "huggingface"}
        assert model["runtime"] == (  # k8s/platform/base/50-serving renders both
            "genops-huggingfaceserver-gpu" if cfg.deploy.kserve.gpu else "genops-huggingfaceserver"
        )
        assert model["storageUri"] == "s3://bucket/mlflow/1/models/m-1/artifacts/lm/model"
        assert backend in model["args"]
        assert manifest["spec"]["predictor"]["scaleMetric"] == "concurrency"


def test_openai_smoke_test_against_a_stub() -> None:
    import http.server
    import socketserver

    from genops.workloads.text.serving import smoke_test_openai

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            body = json.loads(self.rfile.read(length))
            ok = self.path == "/openai/v1/completions" and body["model"] == "good"
            payload = {"choices": [{"text": " game"}]} if ok else {"error": "no such model"}
            data = json.dumps(payload).encode()
            self.send_response(200 if ok else 404)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            assert smoke_test_openai(url, "good").passed
            failed = smoke_test_openai(url, "bad")
            assert not failed.passed and "404" in failed.detail
        finally:
            server.shutdown()


def test_one_failing_request_does_not_fail_its_batch(served: object) -> None:
    adapter = served.adapter
    run = adapter.batcher.run

    def flaky(prompts: list[str], params: object) -> list[str]:
        if "boom" in prompts:
            raise RuntimeError("boom")
        return run(prompts, params)

    adapter.batcher.run = flaky
    barrier = threading.Barrier(3)
    outcomes: dict[str, str] = {}

    def ask(prompt: str) -> None:
        request = adapter.parse({"prompt": prompt, "max_new_tokens": 3}, 10)
        barrier.wait()
        try:
            adapter.generate(request)
            outcomes[prompt] = "ok"
        except RuntimeError:
            outcomes[prompt] = "failed"

    try:
        threads = [threading.Thread(target=ask, args=(p,)) for p in ("The", "boom", "She")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        adapter.batcher.run = run
    assert outcomes == {"The": "ok", "boom": "failed", "She": "ok"}
