"""The pages a reviewer reads in MLflow, written by the pipeline's own step functions (the toy
workload's steps, then the core's register, bless, promote and exit handler) on a SQLite
store: the experiment's kind, the parent run's description, its data set input and its
registered version, the model card of every version, the registered model's description.
Then each real workload's card facts, and the card's size limit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from genops.core import modelcard, steps
from genops.core.config import load_config
from genops.core.verdict import BiasVerdict, make_result
from genops.core.workload import (
    CardFigure,
    ModelCardFacts,
    RunRecord,
    get_workload,
    register_workload,
)
from tests.conftest import REPO

TOY = "toy-gaussian"
SECTIONS = (
    "## Model details",
    "## Intended use",
    "## Out-of-scope use",
    "## Training data",
    "## Evaluation",
    "## Gates per group",
    "## Blessing",
    "## Known limitations",
    "## How to use",
)


@pytest.fixture(autouse=True)
def toy_workload() -> None:
    register_workload(TOY, "tests.toy_workload.workload:WORKLOAD")


def toy_run(tmp_path: Path, tracking_uri: str, name: str, shrink: float = 1.0) -> dict[str, Any]:
    """One pipeline run of the toy workload, step function by step function."""
    from tests.toy_workload import steps as toy

    work = tmp_path / name
    work.mkdir()
    config = work / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "pipeline": TOY,
                "dataset": {"name": "toy", "rows": 500},
                "model": {"shrink": shrink},
                "tuning": {"enabled": False},
                "deploy": {"target": "none"},
            }
        )
    )
    resolved = str(work / "config.yaml")
    run_id = steps.start(str(config), tracking_uri, "0.9.0+test", "abc123def456", resolved)
    train, holdout = str(work / "train.npy"), str(work / "holdout.npy")
    dataset_hash = toy.prepare(resolved, tracking_uri, run_id, train, holdout)

    def outputs(stem: str) -> steps.ReportOutputs:
        return steps.ReportOutputs(*(str(work / f"{stem}.{x}") for x in ("json", "html", "md")))

    assert toy.data_check(resolved, train, tracking_uri, run_id, outputs("data")) == "continue"
    model_dir = str(work / "model")
    toy.train(resolved, train, tracking_uri, run_id, model_dir)
    evaluation = str(work / "evaluation.json")
    assert toy.evaluate(
        resolved, model_dir, holdout, tracking_uri, run_id, evaluation, outputs("gen")
    )
    version = steps.register(
        resolved, model_dir, tracking_uri, run_id, dataset_hash, "0.9.0+test", "abc123def456"
    )
    card_at_register = MlflowClient().get_model_version("toy-gaussian", version).description
    blessed = steps.bless(
        resolved,
        evaluation,
        tracking_uri,
        run_id,
        version,
        str(work / "bless.json"),
        str(work / "bless.md"),
    )
    if blessed:
        steps.promote(resolved, tracking_uri, run_id, version)
    assert steps.finish(tracking_uri, run_id) == "FINISHED"
    return {
        "run_id": run_id,
        "version": version,
        "blessed": blessed,
        "config": config,
        "card_at_register": card_at_register,
    }


def test_a_run_writes_the_pages_a_reviewer_reads(tmp_path: Path, tracking_uri: str) -> None:
    first = toy_run(tmp_path, tracking_uri, "first")
    client = MlflowClient()
    run = client.get_run(first["run_id"])
    tags = run.data.tags

    # the experiment is a model-training one
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    # the config's URI and hash
    assert tags["genops.config_uri"] == str(first["config"])
    assert tags["genops.config_sha256"] == hashlib.sha256(first["config"].read_bytes()).hexdigest()

    # the description: the summary `genops run` prints, with the gates' reasons and each check
    note = tags[modelcard.NOTE_TAG]
    assert "- **Outcome:** **succeeded** (MLflow run FINISHED)" in note
    assert "- **Data bias gate:** passed (0 of 1 results failed)" in note
    assert "- **Synthetic gate:** passed (0 of 1 results failed)" in note
    why = note[note.index("**Why the gates decided so**") :]
    assert "- **Data bias gate:** data bias gate passed: 0 of 1 results failed" in why
    assert "- **Synthetic gate:** synthetic bias gate passed: 0 of 1 results failed" in why
    assert "- **Blessed:** true (blessed (against thresholds))" in note
    assert "- **Champion:** toy-gaussian@champion: none -> v1" in note
    assert "- **Endpoint:** none" in note
    assert "[toy-gaussian/1](#/models/toy-gaussian/versions/1)" in note
    # each blessing check: the absolute floor and ceiling of the toy's defaults
    assert "**Blessing checks**" in note
    assert "std_ratio" in note and "(absolute floor): pass" in note
    assert "mean_error" in note and "(absolute ceiling): pass" in note
    assert f"sha256 `{tags['genops.config_sha256']}`" in note
    assert len(note) <= modelcard.NOTE_LIMIT

    # the parent run names the data set (by its hash) and is the version's run
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.digest == "toy-0-500"
    assert {t.key: t.value for t in inputs[0].tags}["genops.dataset_hash"] == "toy-0-500"
    versions = client.search_model_versions(f"run_id='{first['run_id']}'")
    assert [str(v.version) for v in versions] == ["1"]
    # lineage kept: the logged model names the train run and links the version
    train_run = client.get_run(versions[0].tags["genops.train_run_id"])
    assert train_run.data.tags["mlflow.parentRunId"] == first["run_id"]
    logged = client.get_logged_model(versions[0].source.removeprefix("models:/"))
    assert logged.source_run_id == train_run.info.run_id
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [
        {"name": "toy-gaussian", "version": 1}
    ]

    # the card at registration: blessing pending
    assert "pending: the bless step has not judged it yet" in first["card_at_register"]
    # the card after the run: every section, the blessing, within the registry's limit
    card = versions[0].description
    for section in SECTIONS:
        assert section in card, section
    assert len(card) <= modelcard.DESCRIPTION_LIMIT
    assert "aliases: challenger, champion" in card or "aliases: champion, challenger" in card
    assert "Decision: blessed (against thresholds)." in card
    assert "there was no champion" in card
    assert "| all | 1 pass | 1 pass |" in card  # the toy's checks are about 'all' rows
    assert "hash `toy-0-500`" in card
    assert "models:/toy-gaussian/1" in card and '"n": 5' not in card
    assert versions[0].tags[modelcard.CARD_TAG] == (
        f"runs:/{first['run_id']}/model_card/model_card.html"
    )
    page = Path(
        client.download_artifacts(first["run_id"], "model_card/model_card.html", str(tmp_path))
    ).read_text()
    for section in SECTIONS:
        assert f"<h2>{section.removeprefix('## ')}</h2>" in page
    assert "<h3>Every result</h3>" in page and "std_ratio" in page

    # the registered model says what it is and links the champion's card
    registered = client.get_registered_model("toy-gaussian").description
    assert "A generative model trained by the toy-gaussian pipeline." in registered
    assert "**Champion:** [version 1](#/models/toy-gaussian/versions/1)" in registered
    assert f"#/experiments/{run.info.experiment_id}/runs/{first['run_id']}" in registered

    # a second run is compared with the champion, and its card says so
    second = toy_run(tmp_path, tracking_uri, "second")
    card2 = client.get_model_version("toy-gaussian", second["version"]).description
    assert "Compared with the champion at the time, version 1 of `toy-gaussian`" in card2
    assert "([its card](#/models/toy-gaussian/versions/1))" in card2
    note2 = client.get_run(second["run_id"]).data.tags[modelcard.NOTE_TAG]
    assert "- **Blessed:** true (blessed (against champion v1))" in note2
    assert "toy-gaussian@champion: v1 -> v2" in note2
    registered = client.get_registered_model("toy-gaussian").description
    assert "**Champion:** [version 2](#/models/toy-gaussian/versions/2)" in registered


def test_an_existing_experiment_becomes_a_training_one(tracking_uri: str) -> None:
    from genops.core.tracking import ensure_experiment

    client = MlflowClient()
    old = client.create_experiment("made-before")
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert ensure_experiment(tracking_uri, "made-before") == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    new = ensure_experiment(tracking_uri, "made-now")
    assert client.get_experiment(new).tags["mlflow.experimentKind"] == "custom_model_development"


def _record(metrics: dict[str, float], **steps_: dict[str, float]) -> RunRecord:
    return RunRecord(metrics=metrics, params={}, tags={}, step_metrics=steps_, step_params={})


def test_the_tabular_card_reads_figures_against_the_real_data() -> None:
    config = load_config(REPO / "pipelines" / "configs" / "adult-fast.yaml")
    metrics = {
        "utility_tstr_auc": 0.69,
        "utility_trtr_auc": 0.91,
        "fidelity_column_shapes": 0.94,
        "privacy_exact_copy_share": 0.0,
        "privacy_holdout_exact_copy_share": 0.001,
    }
    facts = get_workload("tabular-synth").model_card_facts(
        config, _record(metrics, prepare={"rows_train": 2100.0, "rows_holdout": 600.0})
    )
    figures = {f.name: f for f in facts.figures}
    assert (figures["utility_tstr_auc"].baseline, figures["utility_tstr_auc"].baseline_value) == (
        "utility_trtr_auc",
        0.91,
    )
    assert figures["fidelity_column_shapes"].baseline_value == 1.0
    assert figures["privacy_exact_copy_share"].baseline == "privacy_holdout_exact_copy_share"
    assert "fidelity_pair_trends" not in figures  # not logged: not shown
    assert facts.sensitive_attributes == ["sex", "race"]
    assert facts.example_request == {"num_rows": 3, "seed": 1, "conditions": {"sex": "Female"}}
    assert "Rows after cleaning: 2,100 train, 600 holdout" in facts.training_data
    assert any("3,000" in line for line in facts.limitations)  # sample_rows of the fast config


def test_the_image_and_text_cards_name_their_own_figures() -> None:
    image = load_config(REPO / "pipelines" / "configs" / "digits-fast.yaml")
    facts = get_workload("image-diffusion").model_card_facts(
        image,
        _record({"cas": 0.33, "cas_real_baseline": 0.98, "cas_class_3": 0.4, "cas_class_7": 0.3}),
    )
    assert [(f.name, f.baseline, f.baseline_value) for f in facts.figures] == [
        ("cas", "cas_real_baseline", 0.98)
    ]
    assert facts.example_request["counts"] == {"3": 2}
    assert facts.example_request["steps"] == 10
    text = load_config(REPO / "pipelines" / "configs" / "wikitext-fast.yaml")
    facts = get_workload("text-lm").model_card_facts(
        text,
        _record(
            {"memorised_share": 0.01, "memorised_share_holdout": 0.0, "word_perplexity": 900.0},
            prepare={"documents_train": 1500.0, "words_train": 120000.0},
        ),
    )
    figures = {f.name: f for f in facts.figures}
    assert figures["memorised_share"].baseline == "memorised_share_holdout"
    assert figures["word_perplexity"].baseline == ""
    assert facts.example_request["max_new_tokens"] == 20
    assert "Documents: 1,500 train" in facts.training_data
    assert facts.sensitive_attributes[0].startswith("gender")


def test_a_long_card_is_shortened_to_the_registry_limit_and_keeps_its_sections() -> None:
    results = [
        make_result("data", "DPL", "group", [f"g{i:03d}"], 0.05, 0.1, "|x|<=") for i in range(300)
    ]
    facts = ModelCardFacts(
        model="A model.",
        intended_use=["Testing."],
        out_of_scope=["Anything else."],
        training_data=[f"Rows: {'1,000 ' * 40}"],
        sensitive_attributes=["sex", "race"],
        figures=[
            CardFigure(f"figure_{i}", 0.5, "what it is " * 10, "base", 0.6) for i in range(40)
        ],
        limitations=[f"limitation {i} " * 20 for i in range(30)],
        example_request={"num_rows": 3},
    )
    review = modelcard.Review(
        run_id="r",
        experiment_id="1",
        run_name="run",
        status="FINISHED",
        record=RunRecord(metrics={}, params={}, tags={}, step_metrics={}, step_params={}),
        gates={"data": BiasVerdict.from_results("data", results)},
        facts=facts,
    )
    sections = modelcard.card_sections(review, "m", "1")
    text = modelcard.card_markdown("Model card: m v1", sections, "#/x")
    assert len(text) <= modelcard.DESCRIPTION_LIMIT
    for section in SECTIONS:
        assert section in text
    assert "more rows in the HTML card" in text
    # what the model is, its data and how to use it are never shortened
    assert "- Sensitive attributes: sex, race" in text
    assert f"- Rows: {'1,000 ' * 40}" in text
    assert '"num_rows": 3' in text
    page = modelcard.card_html("Model card: m v1", sections)
    assert page.count("group=&#x27;g") >= 600  # the HTML card keeps every group, in both tables


def test_the_parent_run_description_stays_within_a_tag(tracking_uri: str) -> None:
    client = MlflowClient()
    experiment = client.create_experiment("long")
    run = client.create_run(experiment)
    long_reason = "data bias gate failed: " + "; ".join(
        f"DPL for group='g{i}' vs rest = 0.3 > 0.1" for i in range(400)
    )
    for key, value in {
        "genops.pipeline": "tabular-synth",
        "genops.status": "blocked",
        "genops.data_bias": "failed",
        "genops.data_bias.reasons": long_reason[:4000],
        "genops.failure": long_reason[:4000],
        "genops.failed_step": "data-bias-check",
    }.items():
        client.set_tag(run.info.run_id, key, value)
    mlflow.set_tracking_uri(tracking_uri)
    review = modelcard.publish(tracking_uri, run.info.run_id)
    note = client.get_run(run.info.run_id).data.tags[modelcard.NOTE_TAG]
    assert review.version is None
    assert len(note) <= modelcard.NOTE_LIMIT
    assert "- **Outcome:** **blocked**" in note
    assert "- **Data bias gate:** failed\n" in note
    assert "- **Data bias gate:** data bias gate failed: DPL for group='g0'" in note
    assert "- **Failed step:** data-bias-check" in note
