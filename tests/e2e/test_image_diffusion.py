"""The image-diffusion pipeline through KFP's local runner on the fast digits config:
the shared release steps (register, bless, promote, deploy, smoke test) on a second,
non-tabular workload; and a bad data set that stops at prepare with nothing registered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from genops.core.config import load_config
from genops.core.serving.deploy import stop_local
from genops.workloads.image.request import decode_png
from pipelines.local import RunSummary, run_local
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.e2e

FAST = REPO / "pipelines" / "configs" / "digits-fast.yaml"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunSummary]:
    home = tmp_path_factory.mktemp("genops-home")
    port = free_port()
    config = home / "run.yaml"
    config.write_text(
        yaml.safe_dump({"base": str(FAST), "deploy": {"target": "local", "port": port}})
    )
    os.environ["GENOPS_HOME"] = str(home)
    try:
        yield run_local(
            "image-diffusion",
            str(config),
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            pipeline_root=str(home / "kfp"),
        )
    finally:
        stop_local(port)
        os.environ.pop("GENOPS_HOME", None)


def test_run_registers_blesses_and_promotes(finished: RunSummary) -> None:
    assert finished.status == "FINISHED"
    assert finished.tags["genops.pipeline"] == "image-diffusion"
    assert finished.registered == "digits-diffusion/1"
    assert finished.tags["genops.data_bias"] == "passed"
    assert finished.tags["genops.synthetic_bias"] == "passed"
    assert finished.tags["genops.blessed"] == "true"
    assert finished.tags["genops.champion"] == "digits-diffusion@champion: none -> v1"
    assert finished.tags["genops.smoke_test"] == "passed"


def test_metrics_sit_beside_their_real_baselines(finished: RunSummary) -> None:
    m = finished.metrics
    for key in ("cas", "cas_real_baseline", "domain_accuracy_conditional", "representation_tvd"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["cas_real_baseline"] > 0.9  # an SVC on real digits
    assert m["frechet_distance"] >= 0.0 and m["frechet_distance_baseline"] >= 0.0
    # eight epochs of a small model are far from the real images
    assert m["frechet_distance"] > m["frechet_distance_baseline"]
    assert m["fairness_discrepancy"] >= 0.0
    print(finished.render())


def test_each_step_logged_its_run_and_artifacts(finished: RunSummary) -> None:
    mlflow.set_tracking_uri(finished.tracking_uri)
    children = mlflow.search_runs(
        [finished.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{finished.run_id}'",
        output_format="list",
    )
    steps = {r.data.tags["genops.step"]: r for r in children}
    assert set(steps) == {
        "prepare",
        "data-bias-check",
        "tune",
        "train",
        "evaluate",
        "register",
        "bless",
        "promote",
        "deploy",
        "smoke-test",
    }
    client = mlflow.MlflowClient()
    train = steps["train"].info.run_id
    epochs = load_config(FAST).model.epochs
    assert len(client.get_metric_history(train, "train_loss")) == epochs
    names = {a.path for a in client.list_artifacts(train, "samples")}
    assert names == {"samples/epoch_0004.png", "samples/epoch_0008.png"}
    assert "plots/loss_curve.png" in {a.path for a in client.list_artifacts(train, "plots")}
    evaluate = steps["evaluate"].info.run_id
    per_class = [k for k in steps["evaluate"].data.metrics if k.startswith("cas_class_")]
    assert len(per_class) == 10
    verdict = client.download_artifacts(evaluate, "synthetic_bias/verdict.json")
    assert '"attribute": "class"' in Path(verdict).read_text()


def test_the_registered_pyfunc_generates_the_classes_asked_for(finished: RunSummary) -> None:
    mlflow.set_tracking_uri(finished.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/digits-diffusion@champion")
    request = pd.DataFrame(
        {
            "label": ["3", "7"],
            "count": [2, 1],
            "steps": [5, 5],
            "guidance": [2.0, 2.0],
            "seed": [1, 1],
        }
    )
    out = model.predict(request)
    assert out["label"].tolist() == ["3", "3", "7"]
    assert len(out["pixels"].iloc[0]) == 64
    pixels = np.array(out["pixels"].tolist())
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert decode_png(out["png_base64"].iloc[0]).shape == (1, 8, 8)
    again = model.predict(request)
    assert again["png_base64"].tolist() == out["png_base64"].tolist()  # same seed, same images


def test_the_endpoint_answers_pngs_and_names_bad_fields(finished: RunSummary) -> None:
    endpoint = finished.tags["genops.endpoint"]
    meta = httpx.get(f"{endpoint}/metadata", timeout=30).json()
    assert meta["classes"] == [str(i) for i in range(10)] and meta["version"] == "1"
    reply = httpx.post(
        f"{endpoint}/generate", json={"counts": {"0": 2, "9": 1}, "steps": 5, "seed": 3}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["labels"] == ["0", "0", "9"] and body["shape"] == [1, 8, 8]
    assert {decode_png(img).shape for img in body["images"]} == {(1, 8, 8)}
    arrays = httpx.post(
        f"{endpoint}/generate", json={"classes": ["5"], "steps": 5, "format": "array"}, timeout=60
    ).json()
    assert np.array(arrays["images"]).shape == (1, 1, 8, 8)
    bad = httpx.post(f"{endpoint}/generate", json={"classes": ["11"]}, timeout=10)
    assert bad.status_code == 400 and "unknown class '11'" in bad.text
    bad = httpx.post(f"{endpoint}/generate", json={"classes": ["1"], "steps": 5000}, timeout=10)
    assert bad.status_code == 400 and "steps: must be >= 1 and <= 200" in bad.text


def test_bad_images_stop_at_prepare_and_register_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = np.random.default_rng(0).integers(0, 17, size=(400, 8, 8))
    labels = np.repeat(np.arange(10), 40)
    images[5, 0, 0] = 99  # outside value_range [0, 16]
    np.savez(tmp_path / "bad.npz", images=images, labels=labels)
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "base": str(FAST),
                "dataset": {"name": "bad", "source": "bad.npz", "sample_per_class": None},
            }
        )
    )
    # monkeypatch restores the module fixture's GENOPS_HOME (its server's pid file is there)
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="prepare-images"):
        run_local("image-diffusion", str(config), tracking_uri=uri, pipeline_root=str(tmp_path))
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    assert client.search_registered_models() == []
    runs = mlflow.search_runs(experiment_names=["image-diffusion-bad"], output_format="list")
    (run,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert run.info.status == "FAILED"
    assert run.data.tags["genops.failed_step"] == "prepare"
    failure = run.data.tags["genops.failure"]
    assert "bad.npz: 1 problem(s)" in failure
    assert "bad.npz[5]: pixel values in [0, 99] outside dataset.value_range [0, 16]" in failure
