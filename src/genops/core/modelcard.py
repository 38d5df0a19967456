"""The pages a reviewer reads in MLflow: the pipeline run's description, a model card for every
registered version, and the registered model's description.

- **The parent run's description** (the ``mlflow.note.content`` tag, Markdown, shown on the
  run page): the summary ``genops run`` prints, with reasons: the outcome, both gates with
  their reasons, the blessing with each of its checks (floors, ceilings, the champion
  comparison), the champion change, the endpoint; then the headline metrics, the config's
  URI and hash, the data set's hash. The parent run also gets the training data set as an
  input (with its hash), and the registered version names it as its run, so the run page
  lists "Datasets" and "Registered models".
- **A model card** (Mitchell et al., *Model Cards for Model Reporting*, 2019, adapted to
  generative models) in the version's description (Markdown, within the registry's 5,000
  characters) and, complete, as the HTML artifact ``model_card/model_card.html`` of the run
  that registered it: model details; intended use and out-of-scope use; training data (hash,
  rows, sensitive attributes); evaluation figures with their baselines; both gates' verdicts
  per group; the blessing decision and the versions compared; known limitations (groups too
  small to judge among them); how to sample it, with an example request. The sections are
  the core's; each workload supplies its facts and figures
  (:meth:`genops.core.workload.Workload.model_card_facts`).
- **The registered model's description**: what the model is, and a link to the current
  champion's card (rewritten whenever a pipeline run ends, so after a promotion or a
  rollback).

The card is written when the version is registered (blessing pending) and rewritten by the
pipeline's exit handler (:func:`publish`), which runs after bless, promote, deploy and
rollback. Links are relative to the MLflow UI (``#/models/...``), so the same pages work on
the local store's UI and on the cluster's server.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import DatasetInput, InputTag
from mlflow.tracking import MlflowClient

from genops.core.blessing import BlessingCheck
from genops.core.verdict import BiasVerdict, MetricResult
from genops.core.workload import ModelCardFacts, RunRecord, WorkloadError, get_workload

NOTE_TAG = "mlflow.note.content"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
#: The experiment kind of a model-training experiment (MLflow 3's UI: "Machine learning").
TRAINING_KIND = "custom_model_development"
#: MLflow 3.17's UI picks the landing page from a per-browser switch (GenAI by default); this
#: query opens an experiment on its runs whatever the switch says.
RUNS_VIEW = "workflowType=machine_learning"
CARD_FOLDER = "model_card"
CARD_TAG = "genops.model_card"  # on the version: the run artifact that holds the HTML card
#: The registry keeps descriptions in VARCHAR(5000) columns (PostgreSQL enforces it).
DESCRIPTION_LIMIT = 5000
#: Run tag values hold at most 8,000 characters.
NOTE_LIMIT = 8000
GATES = (("data", "Data bias gate"), ("synthetic", "Synthetic gate"))


# ---------------------------------------------------------------- what a run recorded


@dataclass
class Review:
    """Everything the pages say about one pipeline run, read back from MLflow."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    record: RunRecord
    step_runs: dict[str, str] = field(default_factory=dict)  # step -> run id
    config: Any = None  # the resolved RunConfig (None when the start step did not write it)
    gates: dict[str, BiasVerdict] = field(default_factory=dict)  # "data" / "synthetic"
    blessing: dict[str, Any] | None = None  # blessing/verdict.json
    facts: ModelCardFacts | None = None
    version_info: Any = None  # the registered ModelVersion, when the run registered one

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.record.tags)

    @property
    def version(self) -> tuple[str, str] | None:
        """(model name, version) the run registered, if it did."""
        name, sep, version = self.tags.get("genops.registered_model", "").rpartition("/")
        return (name, version) if sep and name and version else None


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """MLflow draws a progress bar per download; a step's log needs none of them."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _load_text(client: MlflowClient, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="genops-card-") as tmp, _no_progress_bars():
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # not there (a step that did not run), or unreadable
            return None
        return Path(local).read_text(encoding="utf-8")


def _verdict_files(client: MlflowClient, run_id: str) -> Iterable[str]:
    """``<folder>/verdict.json`` artifacts of a step run (gate and blessing verdicts)."""
    with contextlib.suppress(Exception):
        for item in client.list_artifacts(run_id):
            if item.is_dir:
                for inner in client.list_artifacts(run_id, item.path):
                    if inner.path.endswith("/verdict.json"):
                        yield inner.path


def collect(tracking_uri: str, run_id: str) -> Review:
    """Read a pipeline run back: its parent run, its step runs, its config, the gates' and the
    blessing's verdicts and (through its workload) the facts of its model card."""
    from genops.core.config import parse_config
    from genops.core.tracking import use_store

    client = use_store(tracking_uri)
    run = client.get_run(run_id)
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    step_runs: dict[str, Any] = {}
    for child in children:  # the last run of a step wins (a retried step)
        step_runs[child.data.tags.get("genops.step", child.info.run_name or "?")] = child
    record = RunRecord(
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        step_metrics={s: dict(r.data.metrics) for s, r in step_runs.items()},
        step_params={s: dict(r.data.params) for s, r in step_runs.items()},
    )
    review = Review(
        run_id=run_id,
        experiment_id=str(run.info.experiment_id),
        run_name=run.info.run_name or run_id,
        status=run.info.status,
        record=record,
        step_runs={s: r.info.run_id for s, r in step_runs.items()},
    )
    text = _load_text(client, run_id, "config/run_config.yaml")
    if text is not None:
        with contextlib.suppress(Exception):  # a config this install cannot read: no facts
            review.config = parse_config(yaml.safe_load(text), origin="config/run_config.yaml")
    for step_run_id in review.step_runs.values():
        for path in _verdict_files(client, step_run_id):
            raw = _load_text(client, step_run_id, path)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                data = json.loads(raw or "")
                if isinstance(data, dict) and "blessed" in data:
                    review.blessing = data
                elif isinstance(data, dict) and "results" in data:
                    verdict = BiasVerdict.from_dict(data)
                    review.gates[verdict.check] = verdict
    if review.version is not None:
        with contextlib.suppress(Exception):
            review.version_info = client.get_model_version(*review.version)
    if review.config is not None:
        with contextlib.suppress(WorkloadError):
            workload = get_workload(review.config.pipeline_name)
            review.facts = workload.model_card_facts(review.config, record)
    return review


# ---------------------------------------------------------------- formatting


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4f}"


def _short(value: float | None) -> str:
    """A count as a count (``28``), any other value as :func:`_num` writes it."""
    if value is not None and value == value and abs(value) >= 1 and float(value).is_integer():
        return f"{int(value):,}"
    return _num(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _version_link(name: str, version: str) -> str:
    return f"#/models/{name}/versions/{version}"


def _run_link(experiment_id: str, run_id: str, artifact: str = "") -> str:
    """A run's page (or one of its artifacts) in the MLflow UI, in the training-runs view."""
    suffix = f"/artifacts/{artifact}" if artifact else ""
    return f"#/experiments/{experiment_id}/runs/{run_id}{suffix}?{RUNS_VIEW}"


def blessing_checks(review: Review) -> list[BlessingCheck]:
    """The blessing's checks as the bless step recorded them (each floor, ceiling, gate and
    champion comparison)."""
    checks = []
    for raw in (review.blessing or {}).get("checks", []):
        with contextlib.suppress(TypeError):
            checks.append(BlessingCheck(**raw))
    return checks


def _blessed_line(review: Review) -> str:
    tags = review.tags
    blessed = tags.get("genops.blessed", "not judged")
    reason = tags.get("genops.blessing.reasons") or tags.get("genops.blessing")
    if review.blessing is not None:
        reason = str(review.blessing.get("summary") or reason or "")
    return f"{blessed} ({reason})" if reason else blessed


def _gate_key(check: str) -> str:
    return "genops.data_bias" if check == "data" else "genops.synthetic_bias"


def _gate_line(review: Review, check: str) -> str:
    """The gate's state, with its counts when its verdict was read back."""
    state = review.tags.get(_gate_key(check), "not run")
    verdict = review.gates.get(check)
    if verdict is None:
        return state
    counts = f"{len(verdict.failures)} of {len(verdict.results)} results failed"
    if verdict.too_small:
        counts += f", {len(verdict.too_small)} too small to judge"
    return f"{state} ({counts})"


def gate_reasons(review: Review, check: str) -> str:
    """Why the gate decided as it did (the reasons its step wrote on the run)."""
    return review.tags.get(f"{_gate_key(check)}.reasons", "")


def summary_lines(review: Review) -> list[tuple[str, str]]:
    """The lines ``genops run`` prints at the end of a run, with their reasons."""
    tags = review.tags
    registered = tags.get("genops.registered_model", "none")
    version = review.version
    if version:
        registered = f"[{registered}]({_version_link(*version)}) (its model card)"
    endpoint = tags.get("genops.endpoint", "none")
    if "genops.smoke_test" in tags:
        endpoint += f" (smoke test {_cut(tags['genops.smoke_test'], 500)})"
    outcome = tags.get("genops.status", "failed")
    lines = [
        ("Outcome", f"**{outcome}** (MLflow run {review.status})"),
        ("Registered model", registered),
        ("Data bias gate", _gate_line(review, "data")),
        ("Synthetic gate", _gate_line(review, "synthetic")),
        ("Blessed", _blessed_line(review)),
        ("Champion", tags.get("genops.champion", "unchanged")),
        ("Endpoint", endpoint),
    ]
    if outcome != "succeeded" and "genops.failed_step" in tags:
        lines.append(("Failed step", tags["genops.failed_step"]))
    if outcome != "succeeded" and "genops.failure" in tags:
        lines.append(("Reason", _cut(tags["genops.failure"], 1200)))
    if "genops.rollback" in tags:
        lines.append(("Rollback", tags["genops.rollback"]))
    return lines


def run_description(review: Review) -> str:
    """The parent run's description (Markdown, at most :data:`NOTE_LIMIT` characters)."""
    tags, metrics = review.tags, review.record.metrics
    out = [
        f"## {tags.get('genops.pipeline', 'pipeline')} run: {tags.get('genops.status', '?')}",
        "",
    ]
    out += [f"- **{label}:** {value}" for label, value in summary_lines(review)]
    reasons = [(label, gate_reasons(review, check)) for check, label in GATES]
    if any(text for _, text in reasons):
        out += ["", "**Why the gates decided so**", ""]
        out += [f"- **{label}:** {_cut(text, 2000)}" for label, text in reasons if text]
    checks = blessing_checks(review)
    if checks:
        out += ["", "**Blessing checks**", ""]
        out += [f"- {_cut(c.describe(), 400)}" for c in checks]
    headline: Sequence[str] = ()
    with contextlib.suppress(WorkloadError):
        headline = get_workload(tags.get("genops.pipeline", "")).headline_metrics
    shown = [k for k in headline if k in metrics]
    if shown:
        out += ["", "| metric | value |", "|---|---:|"]
        out += [f"| {k} | {_num(metrics[k])} |" for k in shown]
    out += ["", "**Inputs**", ""]
    if "genops.config_uri" in tags:
        sha = tags.get("genops.config_sha256", "")
        out.append(f"- Config: `{tags['genops.config_uri']}`" + (f" (sha256 `{sha}`)" * bool(sha)))
    if "genops.dataset_hash" in tags:
        out.append(
            f"- Data set `{tags.get('genops.dataset', '?')}`, hash `{tags['genops.dataset_hash']}`"
        )
    out.append(
        f"- genops {tags.get('genops.pipeline_version', '?')}, commit "
        f"`{tags.get('genops.git_commit', '?')[:12]}`"
    )
    text = "\n".join(out) + "\n"
    return _cut(text, NOTE_LIMIT)


# ---------------------------------------------------------------- the model card


@dataclass
class Section:
    """One section of the card: paragraphs, bullet points, a table, code blocks."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None
    code: list[tuple[str, str]] = field(default_factory=list)  # (language, text)
    full_table: tuple[list[str], list[list[str]]] | None = None  # the HTML card's table


def _group_table(review: Review) -> tuple[list[str], list[list[str]]]:
    """Per group (subject): how each gate judged it, counted by status, with what failed;
    the groups with a failure first, then those too small to judge."""
    subjects: dict[str, dict[str, list[MetricResult]]] = {}
    for check, _ in GATES:
        for result in review.gates.get(check, BiasVerdict(check, True, "warn", [])).results:
            subjects.setdefault(result.subject(), {}).setdefault(check, []).append(result)

    def cell(results: list[MetricResult]) -> str:
        if not results:
            return "–"
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        parts = []
        for status, n in sorted(counts.items()):
            text = f"{n} {status}"
            if status == "FAIL":
                failed = [r for r in results if r.status == "FAIL"]
                text += (
                    " ("
                    + "; ".join(
                        f"{r.metric} {_short(r.value)}"
                        + (
                            ""
                            if r.threshold is None
                            else f", rule {r.comparison} {_short(r.threshold)}"
                        )
                        for r in failed[:3]
                    )
                    + ")"
                )
            parts.append(text)
        return ", ".join(parts)

    def order(item: tuple[str, dict[str, list[MetricResult]]]) -> tuple[int, int, str]:
        results = [r for rs in item[1].values() for r in rs]
        failed = sum(r.status == "FAIL" for r in results)
        small = sum(r.too_small for r in results)
        return (-failed, -small, item[0])

    rows = [
        [s, cell(by.get("data", [])), cell(by.get("synthetic", []))]
        for s, by in sorted(subjects.items(), key=order)
    ]
    return ["group", "data gate", "synthetic gate"], rows


def _results_table(review: Review) -> tuple[list[str], list[list[str]]]:
    rows = []
    for check, label in GATES:
        verdict = review.gates.get(check)
        for r in verdict.results if verdict else []:
            rows.append(
                [
                    label,
                    r.subject(),
                    r.metric,
                    _num(r.value) + (f" {r.interval_text()}" if r.has_interval else ""),
                    "" if r.threshold is None else f"{r.comparison} {_num(r.threshold)}",
                    r.status,
                    r.note,
                ]
            )
    return ["gate", "group", "metric", "value", "rule", "result", "note"], rows


def _too_small(review: Review) -> list[str]:
    found: list[str] = []
    for check, label in GATES:
        verdict = review.gates.get(check)
        for r in verdict.too_small if verdict else []:
            reason = r.note.split(";")[0].removeprefix("too small to judge: ")
            item = f"{r.subject()} ({reason}, {label.lower()})"
            if item not in found:
                found.append(item)
    return found


def card_sections(
    review: Review, name: str, version: str, version_info: Any = None
) -> list[Section]:
    """The card's sections, in Mitchell et al.'s order, for ``name`` version ``version``."""
    facts = review.facts or ModelCardFacts(
        model="A generative model.", intended_use=[], out_of_scope=[], training_data=[],
        sensitive_attributes=[], figures=[],
    )  # fmt: skip
    tags = review.tags
    aliases = list(getattr(version_info, "aliases", []) or [])
    vtags = dict(getattr(version_info, "tags", {}) or {})
    blessing = review.blessing
    if blessing is None:
        decision = "pending: the bless step has not judged it yet"
        if "genops.blessing" in vtags:
            decision = vtags["genops.blessing"]
    else:
        decision = str(blessing.get("summary", ""))
    details = Section(
        "Model details",
        paragraphs=[facts.model],
        bullets=[
            f"Registered model `{name}`, version {version}"
            + (f", aliases: {', '.join(aliases)}" if aliases else ""),
            f"Pipeline `{tags.get('genops.pipeline', '?')}`, genops "
            f"{tags.get('genops.pipeline_version', '?')}, commit "
            f"`{tags.get('genops.git_commit', '?')[:12]}`",
            f"Trained and judged by pipeline run [{review.run_name}]"
            f"({_run_link(review.experiment_id, review.run_id)})"
            + (
                f"; train step run [{review.step_runs['train']}]"
                f"({_run_link(review.experiment_id, review.step_runs['train'])})"
                if "train" in review.step_runs
                else ""
            ),
            f"All runs of the experiment: [{tags.get('genops.pipeline', 'runs')} runs]"
            f"(#/experiments/{review.experiment_id}?{RUNS_VIEW})",
            f"Blessing: {_cut(decision, 600)}",
        ],
    )
    uses = Section("Intended use", bullets=list(facts.intended_use) or ["Not stated."])
    misuse = Section("Out-of-scope use", bullets=list(facts.out_of_scope) or ["Not stated."])
    data_hash = tags.get("genops.dataset_hash") or vtags.get("genops.dataset_hash", "not recorded")
    source = review.record.step_params.get("prepare", {})
    sources = source.get("sources") or source.get("source") or ""
    data = Section(
        "Training data",
        bullets=[
            f"Data set `{tags.get('genops.dataset', '?')}`, hash `{data_hash}`",
            *([f"Source: `{_cut(sources, 300)}`"] if sources else []),
            *facts.training_data,
            "Sensitive attributes: "
            + (
                ", ".join(facts.sensitive_attributes)
                if facts.sensitive_attributes
                else "none named"
            ),
        ],
    )
    if "genops.config_uri" in tags:
        data.bullets.append(
            f"Config: `{tags['genops.config_uri']}`"
            + (
                f" (sha256 `{tags['genops.config_sha256']}`)"
                if "genops.config_sha256" in tags
                else ""
            )
        )
    figures = Section(
        "Evaluation",
        paragraphs=["Each figure beside the baseline it is read against."],
        table=(
            ["figure", "value", "baseline", "what it measures"],
            [
                [
                    f.name,
                    _num(f.value),
                    (
                        f"{f.baseline} {_num(f.baseline_value)}"
                        if f.baseline_value is not None
                        else f.baseline
                    )
                    or "–",
                    f.meaning,
                ]
                for f in facts.figures
            ],
        ),
    )
    gate_lines = []
    for check, label in GATES:
        verdict = review.gates.get(check)
        if verdict is None:
            gate_lines.append(f"**{label}: not run**")
            continue
        gate_lines.append(
            f"**{label}: {'passed' if verdict.passed else 'FAILED'}** (policy {verdict.policy}; "
            f"{len(verdict.results)} results, {len(verdict.failures)} failed, "
            f"{len(verdict.too_small)} too small to judge)"
        )
    gates = Section(
        "Gates per group",
        paragraphs=gate_lines,
        table=_group_table(review),
        full_table=_results_table(review),
    )
    compared = blessing.get("baseline_version") if blessing else None
    bless_section = Section(
        "Blessing",
        paragraphs=[
            f"Decision: {_cut(decision, 800)}.",
            (
                f"Compared with the champion at the time, version {compared} of `{name}` "
                f"([its card]({_version_link(name, str(compared))}))."
                if compared
                else "Compared with no earlier version: there was no champion, so it was judged "
                "on its thresholds and gates alone."
            ),
        ],
        bullets=[c.describe() for c in blessing_checks(review)],
    )
    if "genops.champion" in tags:
        bless_section.paragraphs.append(f"Champion change: {tags['genops.champion']}.")
    if "genops.rollback" in tags:
        bless_section.paragraphs.append(f"Rolled back: {tags['genops.rollback']}.")
    limits: list[str] = []  # what this run found first, then what the workload knows
    for check, label in GATES:
        verdict = review.gates.get(check)
        if verdict is not None and not verdict.passed:
            limits.append(
                f"The {label.lower()} failed under policy {verdict.policy}: "
                f"{len(verdict.failures)} results, first in the table above."
            )
    small = _too_small(review)
    if small:
        limits.append(
            "Groups too small to judge (reported, not judged): "
            + "; ".join(small[:12])
            + (f"; and {len(small) - 12} more" if len(small) > 12 else "")
        )
    limits += facts.limitations
    limitations = Section("Known limitations", bullets=limits or ["None recorded."])
    request = json.dumps(facts.example_request or {}, sort_keys=False)
    endpoint = tags.get("genops.endpoint", "")
    base = endpoint if endpoint.startswith("http") else "http://127.0.0.1:8080"
    usage = Section(
        "How to use",
        paragraphs=[
            "Serve the version with `genops serve` (the same server the deploy step runs) and "
            "ask for samples:"
        ],
        code=[
            (
                "bash",
                (
                    f"genops serve --model-uri models:/{name}/{version} --port 8080\n"
                    if not endpoint.startswith("http")
                    else ""
                )
                + f"curl -s -X POST {base}/generate -H 'content-type: application/json' \\\n"
                f"     -d '{request}'",
            ),
            (
                "python",
                f'import mlflow\nmodel = mlflow.pyfunc.load_model("models:/{name}/{version}")',
            ),
        ],
    )
    return [details, uses, misuse, data, figures, gates, bless_section, limitations, usage]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


#: Sections a shortened card keeps whole (they are short and say what the model is).
KEPT_WHOLE = {"Model details", "Intended use", "Out-of-scope use", "Training data", "How to use"}
#: The section whose table may lose rows (the others' tables keep every row).
ROWS_CUT = "Gates per group"
#: How a card too long for the registry is shortened, step by step: (rows of the groups
#: table, characters per cell of it, characters per cell of the other tables, bullets of the
#: gate, blessing and limitation sections, characters per paragraph or bullet of them).
SHORTER: tuple[tuple[int | None, int | None, int | None, int | None, int | None], ...] = (
    (12, 120, None, None, None),
    (8, 90, 90, 8, 400),
    (6, 70, 70, 5, 300),
    (4, 60, 60, 3, 200),
    (2, 50, 50, 2, 150),
    (0, 40, 40, 1, 100),
)


def card_markdown(
    title: str,
    sections: list[Section],
    html_link: str,
    limit: int | None = DESCRIPTION_LIMIT,
) -> str:
    """The card as Markdown within ``limit`` characters (None: whole). A card too long is
    shortened in steps: the rows and cells of the groups table first, then the cells of the
    figures table and the bullets of the gate, blessing and limitation sections; never the
    sections that say what the model is, what it was trained on and how to use it. The HTML
    card, linked at the top, keeps everything."""

    def render(
        rows_max: int | None,
        cell_max: int | None,
        other_cell_max: int | None,
        bullets_max: int | None,
        text_max: int | None,
    ) -> str:
        def cut(text: str, keep: bool) -> str:
            return text if keep or text_max is None else _cut(text, text_max)

        out = [
            f"# {title}",
            "",
            f"The full card, with every gate result: [model_card.html]({html_link})",
            "",
        ]
        for section in sections:
            keep = section.title in KEPT_WHOLE
            out += [f"## {section.title}", ""]
            for p in section.paragraphs:
                out += [cut(p, keep), ""]
            bullets = section.bullets
            if bullets_max is not None and not keep:
                bullets = bullets[:bullets_max]
            out += [f"- {cut(b, keep)}" for b in bullets]
            if len(bullets) < len(section.bullets):
                out.append(f"- … {len(section.bullets) - len(bullets)} more in the HTML card")
            if bullets:
                out.append("")
            if section.table is not None:
                header, rows = section.table
                shown, width = rows, other_cell_max
                if section.title == ROWS_CUT:
                    shown = rows if rows_max is None else rows[:rows_max]
                    width = cell_max
                if width is not None:
                    shown = [[_cut(c, width) for c in row] for row in shown]
                if shown:
                    out += _md_table(header, shown)
                if len(shown) < len(rows):
                    out.append(f"\n… {len(rows) - len(shown)} more rows in the HTML card")
                out.append("")
            for language, text in section.code:
                out += [f"```{language}", text, "```", ""]
        return "\n".join(out)

    text = render(None, None, None, None, None)
    for step in SHORTER:
        if limit is None or len(text) <= limit:
            break
        text = render(*step)
    return text if limit is None else _cut(text, limit)


def card_html(title: str, sections: list[Section]) -> str:
    """The complete card as a standalone HTML page."""

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def inline(text: str) -> str:
        escaped = html.escape(text)
        # `code` and **bold**, the only Markdown the sections use inline; links become text
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        escaped = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
        return re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", escaped)

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left;vertical-align:top;font-size:.9em}th{background:#f3f3f3}"
        "pre{background:#f6f6f6;padding:.7em;overflow-x:auto}code{background:#f3f3f3}",
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{inline(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            parts.append(
                "<ul>" + "".join(f"<li>{inline(b)}</li>" for b in section.bullets) + "</ul>"
            )
        if section.table is not None:
            parts.append(table(*section.table))
        if section.full_table is not None and section.full_table[1]:
            parts.append("<h3>Every result</h3>" + table(*section.full_table))
        parts += [f"<pre><code>{html.escape(text)}</code></pre>" for _, text in section.code]
    parts.append("<p><small>Model card after Mitchell et al., <em>Model Cards for Model "
                 "Reporting</em> (FAT* 2019), adapted to generative models; written by "
                 "genops.</small></p></body></html>")  # fmt: skip
    return "\n".join(parts)


def write_card(tracking_uri: str, run_id: str, review: Review | None = None) -> str | None:
    """Write the model card of the version ``run_id`` registered: the HTML artifact on the
    run and the version's description; returns the artifact path (None: nothing
    registered)."""
    from genops.core.tracking import use_store

    review = review or collect(tracking_uri, run_id)
    if review.version is None:
        return None
    name, version = review.version
    client = use_store(tracking_uri)
    info = client.get_model_version(name, version)
    sections = card_sections(review, name, version, info)
    title = f"Model card: {name} v{version}"
    path = f"{CARD_FOLDER}/model_card.html"
    client.log_text(run_id, card_html(title, sections), path)
    link = _run_link(review.experiment_id, run_id, path)
    markdown = card_markdown(title, sections, link)
    client.log_text(
        run_id, card_markdown(title, sections, link, None), f"{CARD_FOLDER}/model_card.md"
    )
    client.update_model_version(name, version, description=markdown)
    client.set_model_version_tag(name, version, CARD_TAG, f"runs:/{run_id}/{path}")
    return path


def describe_registered_model(tracking_uri: str, name: str, model: str = "") -> str:
    """Write the registered model's description: what the model is and a link to the current
    champion's card. ``model`` (one sentence) is kept from the description written before
    when empty."""
    from genops.core.aliases import CHAMPION
    from genops.core.tracking import use_store

    client = use_store(tracking_uri)
    registered = client.get_registered_model(name)
    marker = "\n\n**Champion:**"
    if not model:
        model = (registered.description or "").split(marker)[0].strip() or f"`{name}`"
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:
        champion = None
    if champion is None:
        line = "none yet: no version has been blessed and promoted."
    else:
        line = f"[version {champion.version}]({_version_link(name, champion.version)})"
        card = champion.tags.get(CARD_TAG, "")
        if card.startswith("runs:/"):
            run_id, _, path = card.removeprefix("runs:/").partition("/")
            with contextlib.suppress(Exception):
                experiment = client.get_run(run_id).info.experiment_id
                line += f": its model card, and [as HTML]({_run_link(experiment, run_id, path)})"
        else:
            line += " (registered before model cards were written: no card)"
    text = (
        f"{model}{marker} {line}\n\nEvery version's description is its model card (intended "
        "use, training data, evaluation against baselines, the gates per group, the blessing)."
    )
    client.update_registered_model(name, description=_cut(text, DESCRIPTION_LIMIT))
    return text


def link_dataset(tracking_uri: str, review: Review) -> bool:
    """Give the parent run the training data set as an input (the one the prepare step
    logged, or one named by the data set's hash); False when there is none to give."""
    from genops.core.tracking import use_store

    client = use_store(tracking_uri)
    parent = client.get_run(review.run_id)
    have = {
        (d.dataset.name, d.dataset.digest)
        for d in (parent.inputs.dataset_inputs if parent.inputs else [])
    }
    inputs: list[DatasetInput] = []
    prepare = review.step_runs.get("prepare")
    if prepare:
        prepared = client.get_run(prepare).inputs
        for item in prepared.dataset_inputs if prepared else []:
            if (item.dataset.name, item.dataset.digest) not in have:
                inputs.append(DatasetInput(item.dataset, list(item.tags)))
    version_tags = dict(getattr(review.version_info, "tags", {}) or {})
    digest = review.tags.get("genops.dataset_hash") or version_tags.get("genops.dataset_hash")
    if not inputs and not have and digest:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        params = review.record.step_params.get("prepare", {})
        source = (
            params.get("source") or params.get("sources") or review.tags.get("genops.dataset", "")
        )
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "can be interpreted in multiple ways"
            dataset = MetaDataset(  # type: ignore[abstract]
                resolve_dataset_source(source),
                name=f"{review.tags.get('genops.dataset', 'data')}-train",
                digest=digest[:36],
            )
            inputs.append(
                DatasetInput(
                    dataset._to_mlflow_entity(),
                    [
                        InputTag("mlflow.data.context", "training"),
                        InputTag("genops.dataset_hash", digest),
                    ],
                )
            )
    if inputs:
        client.log_inputs(review.run_id, datasets=inputs)
    return bool(inputs or have)


def publish(tracking_uri: str, run_id: str) -> Review:
    """Everything a reviewer reads, after the run's last step: the parent run's description
    and its data set input, the registered version's card, the registered model's
    description (the champion may have moved)."""
    from genops.core.tracking import use_store

    review = collect(tracking_uri, run_id)
    client = use_store(tracking_uri)
    client.set_tag(run_id, NOTE_TAG, run_description(review))
    link_dataset(tracking_uri, review)
    if review.version is not None:
        write_card(tracking_uri, run_id, review)
        describe_registered_model(
            tracking_uri, review.version[0], review.facts.model if review.facts else ""
        )
    return review


def training_experiment_tags() -> dict[str, str]:
    """The tags of an experiment of model-training runs (MLflow 3's "Machine learning")."""
    return {EXPERIMENT_KIND_TAG: TRAINING_KIND}


def experiment_url(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs in the MLflow UI of a tracking server (``tracking_uri``
    http(s)), or the path to append to the UI's address (a local store)."""
    path = f"#/experiments/{experiment_id}?{RUNS_VIEW}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{path}"
    return path
