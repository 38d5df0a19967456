"""What a reviewer sees in the MLflow UI after a real run, in headless Chromium: the experiment
opens on its training runs, the pipeline run's description states both gates with their
reasons and the blessing's checks, the run lists its data set and its registered version, and
the version's page holds the model card with its sections and figures (and the complete card
as an HTML artifact).

The run is the session's fast Adult run on the PostgreSQL/S3 tracking server that
tests/integration/conftest.py starts and stops (scripts/mlflow_stack.py): PostgreSQL keeps
descriptions in VARCHAR(5000) columns, so the card's size limit is met for real. Chromium is
driven over the DevTools protocol (tests/integration/test_mlflow_ui.py); screenshots go to
$GENOPS_TEST_ARTIFACTS.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from genops.core import modelcard
from pipelines.local import RunSummary
from tests.integration.test_mlflow_ui import Browser, browser, chromium  # noqa: F401

pytestmark = pytest.mark.integration

SECTIONS = (
    "Model details",
    "Intended use",
    "Out-of-scope use",
    "Training data",
    "Evaluation",
    "Gates per group",
    "Blessing",
    "Known limitations",
    "How to use",
)


def _client(run: RunSummary) -> mlflow.MlflowClient:
    mlflow.set_tracking_uri(run.tracking_uri)
    return mlflow.MlflowClient()


def test_the_experiment_link_lands_on_the_training_runs(
    browser: Browser,  # noqa: F811
    server_run: RunSummary,
    artifacts_dir: Path,
) -> None:
    client = _client(server_run)
    run = client.get_run(server_run.run_id)
    experiment = client.get_experiment(server_run.experiment_id)
    assert experiment.tags[modelcard.EXPERIMENT_KIND_TAG] == modelcard.TRAINING_KIND
    # MLflow 3.17's UI opens an experiment on what a per-browser switch says (GenAI unless a
    # person chose "Model training"); the link genops writes asks for the runs
    url = modelcard.experiment_url(server_run.tracking_uri, server_run.experiment_id)
    text = browser.open(url, expect=[run.info.run_name, "Run Name"])
    href = browser.evaluate("location.href")
    assert f"#/experiments/{server_run.experiment_id}/runs" in href, href
    assert "Token Usage" not in text and "No data available" not in text
    assert "adult-train" in text  # the data set column of the runs table
    browser.screenshot(artifacts_dir / "mlflow-review-experiment.png")


def test_the_run_page_states_the_gates_the_blessing_and_links_data_and_model(
    browser: Browser,  # noqa: F811
    server_run: RunSummary,
    artifacts_dir: Path,
) -> None:
    tags = server_run.tags
    name, version = server_run.registered.split("/")  # type: ignore[union-attr]
    url = (
        f"{server_run.tracking_uri}/#/experiments/{server_run.experiment_id}/runs/"
        f"{server_run.run_id}?{modelcard.RUNS_VIEW}"
    )
    browser.open(url, expect=["Description", "Data bias gate:", "Registered models"])
    # the description's first lines: the summary `genops run` prints; "Show more": the rest
    shown = browser.text()
    assert f"Outcome: {tags['genops.status']}" in shown
    assert f"Data bias gate: {tags['genops.data_bias']} (" in shown
    browser.evaluate(
        "[...document.querySelectorAll('button, a, span')]"
        ".filter(e => e.innerText && e.innerText.trim() === 'Show more').forEach(e => e.click())"
    )
    text = browser.wait_until_settled("the whole description")
    assert f"Synthetic gate: {tags['genops.synthetic_bias']} (" in text
    assert "Why the gates decided so" in text
    assert tags["genops.data_bias.reasons"][:80] in text
    assert tags["genops.synthetic_bias.reasons"][:80] in text
    assert f"Blessed: {tags['genops.blessed']}" in text
    assert "Blessing checks" in text and "fidelity_column_shapes" in text
    assert "(absolute floor)" in text and "tstr_trtr_ratio" in text
    assert f"Champion: {tags.get('genops.champion', 'unchanged')}" in text
    # the run's inputs and outputs: its data set and its registered version
    datasets = browser.evaluate(
        "(() => { const t = document.body.innerText; const i = t.indexOf('Datasets');"
        " return t.slice(i, i + 200); })()"
    )
    assert "adult-train" in datasets, datasets
    registered = text[text.index("Registered models") :][:200]
    assert name in registered and f"v{version}" in registered, registered
    links = browser.evaluate(
        "[...document.querySelectorAll('a')].map(a => a.getAttribute('href')).join(' ')"
    )
    assert f"#/models/{name}/versions/{version}" in links
    browser.screenshot(artifacts_dir / "mlflow-review-run-description.png")


def test_the_registered_version_page_holds_the_model_card(
    browser: Browser,  # noqa: F811
    server_run: RunSummary,
    artifacts_dir: Path,
) -> None:
    client = _client(server_run)
    name, version = server_run.registered.split("/")  # type: ignore[union-attr]
    text = browser.open(
        f"{server_run.tracking_uri}/#/models/{name}/versions/{version}",
        expect=[f"Model card: {name} v{version}", "How to use"],
    )
    (artifacts_dir / "mlflow-review-model-card.txt").write_text(text)
    for section in SECTIONS:
        assert f"\n{section}\n" in text, section
    metrics = server_run.metrics
    # figures beside their baselines, as the card formats them
    assert f"utility_tstr_auc\t{metrics['utility_tstr_auc']:.4f}" in text
    assert f"utility_trtr_auc {metrics['utility_trtr_auc']:.4f}" in text
    assert "fidelity_column_shapes" in text and "identical columns 1.0000" in text
    # the gates per group (those with a failure first), the data set's hash, the sensitive
    # attributes, an example request
    review = modelcard.collect(server_run.tracking_uri, server_run.run_id)
    for check, label in modelcard.GATES:
        verdict = review.gates[check]
        state = "passed" if verdict.passed else "FAILED"
        assert f"{label}: {state} (policy {verdict.policy}; {len(verdict.results)} results" in text
    header, rows = modelcard.card_sections(review, name, version)[5].table or ([], [])
    assert "\t".join(header) in text and f"{rows[0][0]}\t" in text
    failed = [r.subject() for v in review.gates.values() for r in v.failures]
    assert not failed or rows[0][0] in failed
    assert f"hash {server_run.tags['genops.dataset_hash']}" in text
    assert "Sensitive attributes: sex, race" in text
    assert '"num_rows": 3' in text and '"conditions": {"sex": "Female"}' in text
    browser.screenshot(artifacts_dir / "mlflow-review-model-card.png")
    link = browser.evaluate(
        "[...document.querySelectorAll('a')].filter(a => a.innerText.trim() === "
        "'model_card.html').map(a => a.getAttribute('href'))[0] || ''"
    )
    description = client.get_model_version(name, version).description
    assert len(description) <= modelcard.DESCRIPTION_LIMIT

    # the registered model says what it is and, once there is a champion, links its card
    text = browser.open(f"{server_run.tracking_uri}/#/models/{name}", expect=["Champion:"])
    assert "synthesizer of the `adult` table" not in text  # rendered, not raw Markdown
    assert "synthesizer of the adult table" in text

    # the complete card: the HTML artifact of the run, through the server's S3 proxy, opened
    # by the card's link
    assert link.startswith(f"#/experiments/{server_run.experiment_id}/runs/"), link
    assert "/artifacts/model_card/model_card.html" in link
    browser.call("Page.navigate", url=f"{server_run.tracking_uri}/{link}")
    page = browser.wait_for_frame_text("Every result")
    for section in SECTIONS:
        assert section in page, section
    assert "sex='Female' vs rest" in page  # the HTML card keeps every group
    browser.wait_until_settled("the card preview")
    browser.screenshot(artifacts_dir / "mlflow-review-model-card-html.png")
