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
CHANCE = 0.1  # ten classes: what a classifier that guesses reaches


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
    # blessed against floors above chance, so a model that draws noise would not be
    assert finished.tags["genops.blessed"] == "true"
    floors = load_config(FAST).blessing.min_metrics
    assert min(floors["cas"], floors["domain_accuracy_conditional"]) > CHANCE
    assert finished.tags["genops.champion"] == "digits-diffusion@champion: none -> v1"
    assert finished.tags["genops.smoke_test"] == "passed"


# What the seeded fast run gives (8 epochs of a small model on 600 digits, PyTorch on CPU).
# Two runs here gave the same values, but CPU training need not repeat bit for bit across
# machines and thread counts, so the generated-image metrics get margins; the
# real-data baselines are fitted with fixed seeds on fixed splits and barely move.
FAST_RUN = {
    "cas": 0.3333,
    "cas_real_baseline": 0.9667,
    "domain_accuracy_conditional": 0.22,
    "frechet_distance": 29.60,
    "frechet_distance_baseline": 1.86,
    "domain_accuracy_holdout": 0.96,
    "representation_tvd": 0.16,
    "fairness_discrepancy": 0.12,
}


def test_metrics_match_the_seeded_fast_run_beside_their_real_baselines(
    finished: RunSummary,
) -> None:
    m = finished.metrics
    print(finished.render())
    # the real-data baselines of the same run: an SVC on real digits, real holdout vs train
    assert m["cas_real_baseline"] == pytest.approx(FAST_RUN["cas_real_baseline"], abs=0.02)
    assert m["frechet_distance_baseline"] == pytest.approx(
        FAST_RUN["frechet_distance_baseline"], abs=1.0
    )
    # CAS: a classifier trained on generated digits reads real ones well above chance
    assert m["cas"] == pytest.approx(FAST_RUN["cas"], abs=0.12)
    assert m["cas"] >= 2 * CHANCE
    assert m["cas_ratio"] == pytest.approx(m["cas"] / m["cas_real_baseline"])
    # the classifier trained on real digits reads real holdout digits (its baseline) and
    # the class that was asked for in generated ones, above chance
    assert m["domain_accuracy_holdout"] == pytest.approx(
        FAST_RUN["domain_accuracy_holdout"], abs=0.03
    )
    assert m["domain_accuracy_conditional"] == pytest.approx(
        FAST_RUN["domain_accuracy_conditional"], abs=0.08
    )
    assert m["domain_accuracy_conditional"] > 1.4 * CHANCE
    # Fréchet distance of the conditional samples to the holdout, near the seeded run's
    assert m["frechet_distance"] == pytest.approx(FAST_RUN["frechet_distance"], rel=0.4)
    # the class mix of guidance-free samples against the real one (reported, not gated here)
    assert m["representation_tvd"] == pytest.approx(FAST_RUN["representation_tvd"], abs=0.12)
    assert m["fairness_discrepancy"] == pytest.approx(FAST_RUN["fairness_discrepancy"], abs=0.1)


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
