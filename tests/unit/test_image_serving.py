"""An image generator as an MLflow pyfunc and behind the REST server: one request per call
(capped on the total, in row order), 400s that name the field, the smoke test."""

from __future__ import annotations

import threading
import time
import tracemalloc

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from genops.core.serving.request import RequestError
from genops.core.serving.server import create_app, load_served_model
from genops.workloads.image.config import DiffusionSpec
from genops.workloads.image.diffusion import DiffusionModel
from genops.workloads.image.pyfunc import images_frame, log_generator
from genops.workloads.image.request import decode_png
from tests.unit.serving_fixtures import use_store

NAMES = ["ring", "bar", "dot"]


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("image-serving")
    uri = use_store(tmp, "image-serving")  # artifacts beside the store, not in ./mlruns
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    images = rng.uniform(-1, 1, size=(30, 1, 8, 8)).astype(np.float32)
    spec = DiffusionSpec(epochs=1, batch_size=16, base_channels=8, timesteps=20, sample_steps=4)
    generator = DiffusionModel(spec, 1, 8, NAMES).fit(images, labels, progress=False)
    generator.save(tmp / "generator")
    with mlflow.start_run():
        info = log_generator(
            tmp / "generator", images_frame(generator.sample([0, 1], seed=0), [0, 1], NAMES)
        )
    name = "toy-diffusion"
    version = mlflow.register_model(info.model_uri, name).version
    return uri, f"models:/{name}/{version}"


def test_pyfunc_answers_rows_in_order_with_one_cap(model_uri: tuple[str, str]) -> None:
    uri, model = model_uri
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(model)
    out = pyfunc.predict(pd.DataFrame({"label": ["dot", "ring"], "count": [2, 1], "seed": [5, 5]}))
    assert out["label"].tolist() == ["dot", "dot", "ring"]
    assert {decode_png(p).shape for p in out["png_base64"]} == {(1, 8, 8)}
    generator = pyfunc.unwrap_python_model()
    generator.max_images = 4
    with pytest.raises(RequestError, match="row 1: body: asks for 3 images; at most 2"):
        pyfunc.predict(pd.DataFrame({"label": ["dot", "ring"], "count": [2, 3]}))
    with pytest.raises(RequestError, match="must ask for the same steps, guidance and seed"):
        pyfunc.predict(pd.DataFrame({"label": ["dot", "ring"], "seed": [1, 2]}))
    with pytest.raises(RequestError, match="row 0: counts: unknown class 'cat'"):
        pyfunc.predict(pd.DataFrame({"label": ["cat"]}))


def test_rest_server_generates_pngs_and_arrays_and_names_bad_fields(
    model_uri: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, model = model_uri
    served = load_served_model(model, uri)
    assert served.metadata["workload"] == "image-diffusion" and served.metadata["kind"] == "image"
    client = TestClient(create_app(model, served=served, max_rows=50))
    meta = client.get("/metadata").json()
    assert meta["classes"] == NAMES and meta["image_shape"] == [1, 8, 8] and meta["version"]
    body = client.post("/generate", json={"counts": {"bar": 2}, "seed": 1}).json()
    assert body["labels"] == ["bar", "bar"] and len(body["images"]) == 2
    again = client.post("/generate", json={"counts": {"bar": 2}, "seed": 1}).json()
    assert again["images"] == body["images"]  # same seed, same images
    arrays = client.post("/generate", json={"classes": ["dot"], "format": "array"}).json()
    pixels = np.array(arrays["images"])
    assert pixels.shape == (1, 1, 8, 8) and pixels.min() >= 0.0 and pixels.max() <= 1.0
    # Refused from the counts alone: no list of a billion labels is built (a list that long
    # would take gigabytes; a few MiB is all parsing may use) and the model is never called.
    calls: list[object] = []
    generate = served.adapter.generate

    def spy(request: object) -> object:
        calls.append(request)
        return generate(request)

    monkeypatch.setattr(served.adapter, "generate", spy)
    tracemalloc.start()
    try:
        huge = client.post("/generate", json={"counts": {"bar": 10**9}})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert huge.status_code == 400 and "asks for 1000000000 images; at most 50" in huge.text
    assert peak < 64 * 2**20, f"parsing the request allocated {peak / 2**20:.0f} MiB"
    assert calls == []
    assert client.post("/generate", json={"counts": {"bar": 1}}).status_code == 200
    assert len(calls) == 1  # the spy does see the requests that are served
    for payload, message in [
        ({"classes": ["cat"]}, "classes: unknown class 'cat'"),
        ({"classes": ["dot"], "steps": 21}, "steps: must be >= 1 and <= 20"),
        ({"num_rows": 3}, "unknown field(s) ['num_rows']"),
    ]:
        reply = client.post("/generate", json=payload)
        assert reply.status_code == 400 and message in reply.text, reply.text
    assert client.post("/generate", content=b"{nope").status_code == 400


def test_image_smoke_test_against_the_served_app(model_uri: tuple[str, str]) -> None:
    import uvicorn

    from genops.workloads.image.serving import image_smoke_test

    uri, model = model_uri
    app = create_app(model, tracking_uri=uri, max_rows=50)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the uvicorn server thread exited before it started serving"
        assert time.monotonic() < deadline, "the uvicorn server did not start within 60 s"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        result = image_smoke_test(f"http://127.0.0.1:{port}", (1, 8, 8), steps=2)
        assert result.passed, result.detail
        wrong = image_smoke_test(f"http://127.0.0.1:{port}", (3, 8, 8), steps=2)
        assert not wrong.passed and "expected (3, 8, 8)" in wrong.detail
        assert not image_smoke_test("http://127.0.0.1:9", (1, 8, 8), timeout=2).passed
    finally:
        server.should_exit = True
        thread.join(10)
