"""genops.workloads.image.representation: the class-mix checks and their reports."""

from __future__ import annotations

import html
import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.datasets import load_digits

from genops.core.verdict import BiasVerdict, decide, failure_message
from genops.workloads.image.config import RepresentationSpec
from genops.workloads.image.representation import (
    data_representation,
    generated_representation,
    report_html,
    report_markdown,
    shares_figure,
    shares_table,
)

NAMES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.asarray(load_digits().target, dtype=np.int64)


def _result(verdict: BiasVerdict, metric: str, group: str | None = None) -> float:
    for r in verdict.results:
        if r.metric == metric and (group is None or r.groups == [group]):
            return r.value
    raise KeyError((metric, group))


def _drop_most_of(labels: np.ndarray, cls: int, keep: int) -> np.ndarray:
    idx = np.flatnonzero(labels == cls)
    mask = np.ones(len(labels), dtype=bool)
    mask[idx[keep:]] = False
    return labels[mask]


# --------------------------------------------------------------------------- data check


def test_data_balanced_digits_pass(labels: np.ndarray) -> None:
    spec = RepresentationSpec(max_imbalance_ratio=1.5)
    verdict = data_representation(labels, NAMES, spec, min_images_per_class=10)
    assert verdict.check == "data" and verdict.passed, failure_message(verdict)
    assert verdict.policy == "warn"
    counts = np.bincount(labels)
    assert _result(verdict, "imbalance_ratio") == pytest.approx(counts.max() / counts.min())
    assert _result(verdict, "coverage", "7") == counts[7]
    assert _result(verdict, "class_share_ratio", "7") == pytest.approx(counts[7] / len(labels) * 10)
    assert all(r.attribute == "class" for r in verdict.results)


def test_data_depleted_class_fails_and_is_named(labels: np.ndarray) -> None:
    depleted = _drop_most_of(labels, 4, keep=5)
    spec = RepresentationSpec(policy="block")
    verdict = data_representation(depleted, NAMES, spec, min_images_per_class=10)
    assert not verdict.passed and decide(verdict) == "stop"
    failed = {(r.metric, tuple(r.groups)) for r in verdict.failures}
    assert failed == {("coverage", ("4",)), ("class_share_ratio", ("4",))}
    msg = failure_message(verdict)
    assert "coverage for class='4' = 5.000 < 10.000" in msg
    assert "class='4' vs rest" not in msg
    counts = np.bincount(depleted)
    assert _result(verdict, "imbalance_ratio") == pytest.approx(counts.max() / 5)


def test_data_imbalance_threshold_and_empty_class(labels: np.ndarray) -> None:
    no_nines = labels[labels != 9]
    spec = RepresentationSpec(min_class_share_ratio=0.0, max_imbalance_ratio=3.0)
    verdict = data_representation(no_nines, NAMES, spec, min_images_per_class=1)
    nine = [r for r in verdict.results if r.groups == ["9"]]
    assert {r.metric for r in nine} == {"coverage", "class_share_ratio"}
    assert not next(r for r in nine if r.metric == "coverage").passed
    imbalance = next(r for r in verdict.results if r.metric == "imbalance_ratio")
    assert math.isinf(imbalance.value) and not imbalance.passed
    assert "'9'" in imbalance.note


# --------------------------------------------------------------------------- generated check


def test_generated_same_distribution_passes(labels: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    generated = rng.permutation(labels)[:1000]
    spec = RepresentationSpec(max_tvd=0.1, max_fairness_discrepancy=0.1)
    verdict = generated_representation(labels, generated, NAMES, spec)
    assert verdict.check == "synthetic" and verdict.passed, failure_message(verdict)
    assert verdict.policy == "warn"
    rel = next(r for r in verdict.results if r.metric == "relative_share" and r.groups == ["2"])
    assert set(rel.details) == {"real_share", "generated_share", "real_count", "generated_count"}


def test_generated_dropped_class_fails_named(labels: np.ndarray) -> None:
    generated = labels[labels != 7]
    verdict = generated_representation(labels, generated, NAMES, RepresentationSpec())
    assert not verdict.passed and decide(verdict) == "continue"
    assert [(r.metric, r.groups) for r in verdict.failures] == [("relative_share", ["7"])]
    msg = failure_message(verdict)
    assert "class='7'" in msg and "vs rest" not in msg
    assert verdict.failures[0].value == 0.0


def test_generated_collapsed_class_fails_even_with_zero_threshold(labels: np.ndarray) -> None:
    generated = labels[labels != 2]
    spec = RepresentationSpec(min_class_share_ratio=0.0)
    verdict = generated_representation(labels, generated, NAMES, spec)
    assert [r.groups for r in verdict.failures] == [["2"]]
    assert "never generated" in verdict.failures[0].note


def test_generated_tvd_and_fairness_discrepancy_by_hand() -> None:
    names = ["a", "b", "c"]
    real = np.array([0] * 50 + [1] * 30 + [2] * 20)  # 0.5 0.3 0.2
    gen = np.array([0] * 20 + [1] * 30 + [2] * 50)  # 0.2 0.3 0.5
    spec = RepresentationSpec(max_tvd=0.2, max_fairness_discrepancy=0.5)
    verdict = generated_representation(real, gen, names, spec, conditional_accuracy={0: 0.9})
    assert _result(verdict, "tvd") == pytest.approx(0.3)
    assert _result(verdict, "fairness_discrepancy") == pytest.approx(math.sqrt(0.18))
    u = 1 / 3
    expected_u = math.sqrt((0.2 - u) ** 2 + (0.3 - u) ** 2 + (0.5 - u) ** 2)
    assert _result(verdict, "fairness_discrepancy_uniform") == pytest.approx(expected_u)
    assert _result(verdict, "relative_share", "a") == pytest.approx(0.4)
    assert _result(verdict, "relative_share", "c") == pytest.approx(2.5)
    assert _result(verdict, "conditional_accuracy", "a") == pytest.approx(0.9)
    failed = {(r.metric, tuple(r.groups)) for r in verdict.failures}
    assert failed == {("tvd", ()), ("relative_share", ("a",))}


def test_conditional_accuracy_threshold(labels: np.ndarray) -> None:
    spec = RepresentationSpec(min_conditional_accuracy=0.8)
    acc = {k: 0.95 for k in range(10)} | {3: 0.4}
    verdict = generated_representation(labels, labels, NAMES, spec, conditional_accuracy=acc)
    assert [(r.metric, r.groups) for r in verdict.failures] == [("conditional_accuracy", ["3"])]
    assert "conditional_accuracy for class='3' = 0.400 < 0.800" in failure_message(verdict)


def test_verdict_json_round_trip(labels: np.ndarray) -> None:
    generated = labels[labels != 7]
    verdict = generated_representation(
        labels, generated, NAMES, RepresentationSpec(), conditional_accuracy={7: 0.1}
    )
    text = verdict.to_json()
    again = BiasVerdict.from_json(text)
    assert again.to_dict() == verdict.to_dict()
    assert failure_message(again) == failure_message(verdict)


# --------------------------------------------------------------------------- reports


def test_shares_table_rows(labels: np.ndarray) -> None:
    rows = shares_table(labels, labels[labels != 7], NAMES)
    assert [r["class"] for r in rows] == NAMES
    assert rows[7]["generated_count"] == 0 and rows[7]["ratio"] == 0.0
    assert sum(r["real_share"] for r in rows) == pytest.approx(1.0)
    real_only = shares_table(labels, None, NAMES)
    assert all(r["generated_share"] is None and r["ratio"] is None for r in real_only)


def test_shares_figure(labels: np.ndarray) -> None:
    fig = shares_figure(shares_table(labels, labels, NAMES), "digits")
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].patches) == 20


def test_reports_name_classes_and_failures(labels: np.ndarray) -> None:
    generated = labels[labels != 7]
    verdict = generated_representation(labels, generated, NAMES, RepresentationSpec())
    rows = shares_table(labels, generated, NAMES)
    page = report_html(verdict, rows, "Digits: generated", extra_html="<p id=grid>grid</p>")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "FAILED" in page and "Digits: generated" in page
    assert '<img src="data:image/png;base64,' in page
    assert html.escape(verdict.failures[0].describe()) in page
    assert html.escape("class='7'") in page
    assert page.index("<p id=grid>") < page.index("</body>")
    assert all(f"<td>{name}</td>" in page for name in NAMES)

    md = report_markdown(verdict, rows, "Digits: generated")
    assert md.startswith("# Digits: generated")
    assert "class='7'" in md and "**FAIL**" in md
    assert "| generated_share |" in md
    assert all(f"| {name} |" in md for name in NAMES)

    data_verdict = data_representation(labels, NAMES, RepresentationSpec(), 10)
    data_page = report_html(data_verdict, shares_table(labels, None, NAMES), "Digits: data")
    assert "PASSED" in data_page and "data:image/png;base64," in data_page
