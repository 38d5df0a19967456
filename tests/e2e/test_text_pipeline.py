"""The text-lm pipeline through KFP's local runner on the fast WikiText-2 config: the core's
release steps on a third workload (registered with its tokenizer, blessed, promoted, served
and smoke-tested, streaming included); a corpus with personal data under policy block stops
before training with nothing registered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
import yaml

from genops.core.serving.deploy import stop_local
from pipelines.local import RunSummary, run_local
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.e2e

FAST = REPO / "pipelines" / "configs" / "wikitext-fast.yaml"
UNIFORM_WORD_PPL = 450_000  # a model that learned nothing: uniform over the 1,000 tokens


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
            "text-lm",
            str(config),
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            pipeline_root=str(home / "kfp"),
        )
    finally:
        os.environ["GENOPS_HOME"] = str(home)  # another test of this module may have reset it
        stop_local(port)
        os.environ.pop("GENOPS_HOME", None)


def test_run_registers_blesses_promotes_and_serves(finished: RunSummary) -> None:
    tags, m = finished.tags, finished.metrics
    assert finished.status == "FINISHED", tags.get("genops.failure")
    assert finished.outcome == "succeeded"
    assert finished.registered == "wikitext-2-lm/1"
    assert tags["genops.data_bias"] == "passed" and tags["genops.synthetic_bias"] == "passed"
    assert tags["genops.blessed"] == "true"
    assert tags["genops.smoke_test"] == "passed"
    # word-level perplexity over the words of the scored test lines, beside its int8 copy
    assert 1.0 < m["word_perplexity"] < UNIFORM_WORD_PPL / 9  # the fast config's floor
    assert m["quantized_perplexity_increase"] < 0.05
    assert 0.0 < m["bits_per_byte"] < 8.0
    assert 0.0 <= m["memorised_share"] <= 1.0 and "memorised_share_holdout" in m
    assert 0.0 < m["distinct_2"] <= 1.0 and 0.0 < m["distinct_2_holdout"] <= 1.0
    assert "word_perplexity" in finished.render()


def test_the_registered_version_carries_the_tokenizer_and_is_served(
    finished: RunSummary,
) -> None:
    mlflow.set_tracking_uri(finished.tracking_uri)
    client = mlflow.MlflowClient()
    version = client.get_model_version("wikitext-2-lm", "1")
    files = mlflow.artifacts.list_artifacts("models:/wikitext-2-lm/1/artifacts/lm")
    assert {Path(f.path).name for f in files} >= {"tokenizer.json", "genops_lm.json", "model"}
    assert version.tags["genops.pipeline"] == "text-lm"
    endpoint = finished.tags["genops.endpoint"]
    reply = httpx.post(
        f"{endpoint}/generate", json={"prompt": " The", "max_new_tokens": 5, "seed": 1}, timeout=60
    )
    assert reply.status_code == 200 and isinstance(reply.json()["completions"][0]["text"], str)
    bad = httpx.post(f"{endpoint}/generate", json={"prompt": " The", "top_k": -1}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"].startswith("top_k")


def test_personal_data_under_policy_block_stops_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"doc{i:02d}.txt").write_text(f"Paragraph {i} about the river and the town .\n")
    (corpus / "leak.txt").write_text("Write to jane.doe@example.com for the tickets .\n")
    config = tmp_path / "leak.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "base": str(FAST),
                "dataset": {
                    "name": "leaky",
                    "source": str(corpus),
                    "format": "txt",
                    "max_documents": None,
                },
                "checks": {"pii_policy": "block"},
            }
        )
    )
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path / "home"))  # restored afterwards
    summary = run_local(
        "text-lm",
        str(config),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        pipeline_root=str(tmp_path / "kfp"),
    )
    assert summary.outcome == "blocked"
    assert summary.registered is None
    assert "email" in summary.tags["genops.failure"]
    assert summary.tags["genops.failed_step"] == "data-bias-check"
