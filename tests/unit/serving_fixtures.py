"""Tiny registered models of every workload and real model-server processes, for the server
tests (fuzzing, alias following). Each model trains in a second or two on the CPU.

A server runs as ``python -m genops.core.serving.server`` with ``$GENOPS_HOME`` in the
test's folder, so its record under ``serving/servers`` stays out of the developer's."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import REPO, free_port, small_frame

IMAGE_CLASSES = ["ring", "bar", "dot"]


def use_store(workdir: Path, experiment: str) -> str:
    """A SQLite store in ``workdir`` with artifacts there too (not in ./mlruns)."""
    import mlflow

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(workdir / "artifacts").as_uri())
    mlflow.set_experiment(experiment)
    return uri


def register_tabular(workdir: Path, name: str = "fuzz-tabular", versions: int = 1) -> list[str]:
    """A 2-epoch conditional TVAE on 300 rows, registered ``versions`` times (the same
    artifact: versions differ only by number, which is what alias tests need)."""
    import mlflow

    from genops.workloads.tabular.models import TVAEParams, TVAESynthesizer
    from genops.workloads.tabular.pyfunc import log_synthesizer

    use_store(workdir, "serving-fixtures")
    frame = small_frame(300)
    params = TVAEParams(
        epochs=2, batch_size=100, embedding_dim=8, compress_dims=(16,), decompress_dims=(16,)
    )
    synthesizer = TVAESynthesizer(
        ["group", "color", "label"],
        ["age", "income"],
        params=params,
        conditional_columns=["group"],
        seed=0,
    )
    synthesizer.fit(frame, progress=False)
    synthesizer.save(workdir / f"{name}-model")
    with mlflow.start_run():
        info = log_synthesizer(workdir / f"{name}-model", synthesizer.sample(5, seed=0))
    return [str(mlflow.register_model(info.model_uri, name).version) for _ in range(versions)]


def register_image(workdir: Path, name: str = "fuzz-image") -> str:
    """A 1-epoch 8x8 class-conditional diffusion model with 3 classes."""
    import mlflow

    from genops.workloads.image.config import DiffusionSpec
    from genops.workloads.image.diffusion import DiffusionModel
    from genops.workloads.image.pyfunc import images_frame, log_generator

    use_store(workdir, "serving-fixtures")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 8)
    images = rng.uniform(-1, 1, size=(24, 1, 8, 8)).astype(np.float32)
    spec = DiffusionSpec(epochs=1, batch_size=12, base_channels=8, timesteps=20, sample_steps=2)
    generator = DiffusionModel(spec, 1, 8, IMAGE_CLASSES).fit(images, labels, progress=False)
    generator.save(workdir / f"{name}-model")
    example = images_frame(generator.sample([0], seed=0), [0], IMAGE_CLASSES)
    with mlflow.start_run():
        info = log_generator(workdir / f"{name}-model", example)
    return str(mlflow.register_model(info.model_uri, name).version)


def register_text(workdir: Path, name: str = "fuzz-text") -> str:
    """A one-layer 32-token language model with a 300-token vocabulary."""
    import mlflow
    import torch

    from genops.workloads.text import lm
    from genops.workloads.text.pyfunc import log_text_model

    use_store(workdir, "serving-fixtures")
    corpus = ["The game began development in 2010 .", "She said that the bridge was old ."] * 30
    tokenizer = lm.train_tokenizer(corpus, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    model = lm.build_model(
        lm.LMParams(
            vocab_size=tokenizer.get_vocab_size(), context=32, n_layer=1, n_head=2, n_embd=16
        ),
        eos_id=tokenizer.token_to_id(lm.EOS),
    )
    lm.save(model, tokenizer, workdir / f"{name}-model", quantize=False)
    with mlflow.start_run():
        info = log_text_model(workdir / f"{name}-model")
    return str(mlflow.register_model(info.model_uri, name).version)


def set_champion(tracking_uri: str, name: str, version: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)


@dataclass
class ServerProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def metadata(self) -> dict[str, Any]:
        conn = self.connection(10)
        try:
            conn.request("GET", "/metadata")
            data: dict[str, Any] = json.loads(conn.getresponse().read())
            return data
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(
    model_uri: str,
    tracking_uri: str,
    workdir: Path,
    *extra: str,
    max_rows: int = 20,
) -> ServerProcess:
    """Start the server (not waiting for it: see :func:`wait_healthy`)."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    command = [
        sys.executable, "-m", "genops.core.serving.server",
        "--model-uri", model_uri, "--tracking-uri", tracking_uri,
        "--port", str(port), "--max-rows", str(max_rows),
        "--log-level", "warning", "--no-access-log", *extra,
    ]  # fmt: skip
    env = {**os.environ, "GENOPS_HOME": str(workdir / "genops-home")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    return ServerProcess(f"http://127.0.0.1:{port}", port, process, log)


def wait_healthy(server: ServerProcess, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n{server.log.read_text()}"
            )
        try:
            conn = server.connection(2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"server not healthy after {timeout:.0f} s:\n{server.log.read_text()}"
            )
        time.sleep(0.25)
