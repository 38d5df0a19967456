"""Verdicts, decisions, configuration, reports and mitigation frames."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from matplotlib.figure import Figure
from pydantic import ValidationError

from genops.workloads.tabular.bias import (
    BiasConfig,
    BiasVerdict,
    MetricResult,
    bias_figures,
    data_bias_verdict,
    decide,
    failure_message,
    figure_png,
    group_stats,
    group_stats_by_dataset,
    make_result,
    mitigation_condition_frame,
    render_html,
    render_markdown,
    target_condition_frame,
)


def _verdict(passed: bool, policy: str = "warn") -> BiasVerdict:
    value = 0.05 if passed else 0.196
    result = make_result("data", "DPL", "sex", ["Female"], value, 0.1, "|x|<=")
    return BiasVerdict.from_results("data", [result], policy)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "passed", "expected"),
    [
        ("block", False, "stop"),
        ("block", True, "continue"),
        ("warn", False, "continue"),
        ("warn", True, "continue"),
        ("mitigate", False, "mitigate"),
        ("mitigate", True, "continue"),
    ],
)
def test_decide(policy: str, passed: bool, expected: str) -> None:
    verdict = _verdict(passed, policy)
    assert verdict.passed is passed
    assert decide(verdict) == expected
    # an explicit policy overrides the verdict's own
    assert decide(_verdict(passed, "warn"), policy) == expected  # type: ignore[arg-type]


def test_failure_message() -> None:
    assert failure_message(_verdict(False)) == (
        "data bias gate failed: DPL for sex='Female' vs rest = 0.196 > 0.100"
    )
    assert failure_message(_verdict(True)) == "data bias gate passed"
    male = make_result("data", "DPL", "sex", ["Male"], -0.196, 0.1, "|x|<=")
    assert male.describe() == "DPL for sex='Male' vs rest = -0.196, |DPL| = 0.196 > 0.100"
    low = make_result("synthetic", "DI_ratio", "race", ["Black"], 0.5, 0.8, ">=")
    assert low.describe() == "DI_ratio for race='Black' vs rest = 0.500 < 0.800"


def test_json_round_trip_with_non_finite_values() -> None:
    results = [
        make_result("data", "DPL", "sex", ["Female"], 0.196, 0.1, "|x|<=", details={"q": 0.1}),
        make_result("data", "KL", "race", ["Other"], math.inf, None, "<=", note="infinite"),
        make_result("data", "DPL_worst_pair", "race", [], math.nan, 0.1, "|x|<="),
        make_result("data", "DPL_worst_pair", "race", ["A", "B"], 0.2, 0.1, "|x|<="),
    ]
    verdict = BiasVerdict.from_results("data", results, "block")
    text = verdict.to_json()
    json.loads(text)  # strict JSON, no bare NaN/Infinity tokens
    assert "NaN" in text and "Infinity" in text
    back = BiasVerdict.from_json(text)
    assert back.check == "data" and back.policy == "block" and back.passed is False
    assert len(back.results) == 4
    assert back.results[0] == results[0]
    assert math.isinf(back.results[1].value) and back.results[1].threshold is None
    assert math.isnan(back.results[2].value)
    assert back.results[3].groups == ["A", "B"]
    assert BiasVerdict.from_dict(verdict.to_dict()).to_dict() == verdict.to_dict()
    assert verdict.to_dict()["decision"] == "stop"
    assert [r.metric for r in back.failures] == ["DPL", "DPL_worst_pair"]


def test_config_defaults_and_validation() -> None:
    cfg = BiasConfig()
    assert cfg.policy == "warn" and cfg.positive_label is None
    assert cfg.data.max_abs_dpl == 0.1 and cfg.data.min_group_rows == 100
    assert cfg.synthetic.max_representation_tvd == 0.05
    assert cfg.synthetic.max_relative_underrepresentation == 0.5
    assert cfg.synthetic.max_dpl_amplification == 0.05
    assert cfg.mitigation.target == "balanced_groups"
    spec = {
        "policy": "block",
        "positive_label": ">50K",
        "cddl_group_by": "education",
        "data": {"max_abs_dpl": 0.2, "max_kl": None},
        "mitigation": {"target": "equal_positive_rate", "attributes": ["sex"]},
    }
    cfg = BiasConfig.model_validate(spec)
    assert cfg.data.max_abs_dpl == 0.2 and cfg.mitigation.attributes == ["sex"]
    with pytest.raises(ValidationError):
        BiasConfig.model_validate({"polcy": "block"})
    with pytest.raises(ValidationError):
        BiasConfig.model_validate({"data": {"max_abs_dpl": 0.1, "unknown": 1}})
    with pytest.raises(ValidationError):
        BiasConfig.model_validate({"policy": "ignore"})


def _people() -> pd.DataFrame:
    # sex: F 40 rows (10 positive), M 60 rows (30 positive); race: X 70, Y 30
    rows = []
    for i in range(100):
        sex = "F" if i < 40 else "M"
        pos = i < 10 or 40 <= i < 70
        race = "X" if i % 10 < 7 else "Y"
        rows.append((sex, race, ">50K" if pos else "<=50K"))
    return pd.DataFrame(rows, columns=["sex", "race", "income"])


def test_group_stats() -> None:
    stats = group_stats(_people(), "sex", "income", ">50K")
    # F: 40/100 rows, 10/40 positive; M: 60/100 rows, 30/60 positive
    assert list(stats["group"]) == ["F", "M"]
    assert list(stats["count"]) == [40, 60]
    assert list(stats["share"]) == pytest.approx([0.4, 0.6])
    assert list(stats["positive_rate"]) == pytest.approx([0.25, 0.5])


def test_html_and_markdown_reports() -> None:
    # five copies of the 100 people: the same rates, intervals narrow enough for DPL to fail
    people = pd.concat([_people()] * 5, ignore_index=True)
    cfg = BiasConfig(data={"min_group_rows": 10})  # type: ignore[arg-type]
    verdict = data_bias_verdict(people, ["sex", "race"], "income", ">50K", cfg)
    shares = group_stats_by_dataset(
        {"real": people, "synthetic": people.sample(frac=0.5, random_state=0)},
        ["sex", "race"],
        "income",
        ">50K",
    )
    page = render_html(verdict, shares, title="Adult <bias>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<table" in page and "</table>" in page
    assert page.count('<img src="data:image/png;base64,') == 2
    assert "Adult &lt;bias&gt;" in page
    assert "FAIL" in page and "DPL" in page
    assert page.count("<tr class=") == len(verdict.results)
    assert "<th>interval</th>" in page and "[0.1646, 0.3286]" in page  # DPL of F, Newcombe

    md = render_markdown(verdict)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(verdict.results)  # header + one row per result
    # value, its Newcombe interval, threshold, result
    assert any(
        "| DPL | sex | F vs rest | 0.2500 | [0.1646, 0.3286] | |x|<= 0.1000 | **FAIL** |"
        in r.replace("\\|", "|")
        for r in rows
    )
    assert "Newcombe 95%" in md and "whole interval lies beyond the threshold" in md

    figs = bias_figures(shares)
    assert set(figs) == {"sex", "race"}
    assert all(isinstance(f, Figure) for f in figs.values())
    assert figure_png(figs["sex"]).startswith(b"\x89PNG")


def _real_for_mitigation() -> pd.DataFrame:
    # sex F 300 (60 positive), M 700 (280 positive); race X on even rows, Y on odd rows
    rows = []
    for i in range(1000):
        sex = "F" if i < 300 else "M"
        pos = i < 60 or 300 <= i < 580
        rows.append((sex, "X" if i % 2 == 0 else "Y", ">50K" if pos else "<=50K", i % 7))
    return pd.DataFrame(rows, columns=["sex", "race", "income", "other"])


def test_balanced_groups_frame() -> None:
    real = _real_for_mitigation()
    frame = target_condition_frame(real, ["sex"], "income", ">50K", "balanced_groups", 500, 1)
    assert list(frame.columns) == ["sex"]
    assert len(frame) == 500
    assert frame["sex"].value_counts().to_dict() == {"F": 250, "M": 250}
    assert frame["sex"].dtype == real["sex"].dtype
    # joint over two attributes: 4 cells x 100 rows, so each marginal is balanced too
    joint = target_condition_frame(
        real, ["sex", "race"], "income", ">50K", "balanced_groups", 400, 1
    )
    assert set(joint.groupby(["sex", "race"]).size()) == {100}
    assert joint["race"].value_counts().to_dict() == {"X": 200, "Y": 200}
    # n not divisible by the cells: counts differ by at most one and sum to n
    odd = target_condition_frame(real, ["sex", "race"], "income", ">50K", "balanced_groups", 402)
    sizes = odd.groupby(["sex", "race"]).size()
    assert sizes.sum() == 402 and sizes.max() - sizes.min() <= 1


def test_equal_positive_rate_frame() -> None:
    real = _real_for_mitigation()
    overall = (real["income"] == ">50K").mean()  # (60 + 280) / 1000 = 0.34
    frame = target_condition_frame(real, ["sex"], "income", ">50K", "equal_positive_rate", 1000, 2)
    assert list(frame.columns) == ["sex", "income"]
    assert len(frame) == 1000
    # group sizes as in the real data, positive share equal to the overall rate in both
    assert frame["sex"].value_counts().to_dict() == {"F": 300, "M": 700}
    rates = frame.groupby("sex")["income"].apply(lambda s: (s == ">50K").mean())
    assert rates["F"] == pytest.approx(overall) and rates["M"] == pytest.approx(overall)
    assert set(frame["income"]) == {">50K", "<=50K"}
    # via the config: attributes from config.mitigation, positive label from config
    cfg = BiasConfig.model_validate(
        {
            "positive_label": ">50K",
            "mitigation": {"target": "equal_positive_rate", "attributes": ["sex", "race"]},
        }
    )
    joint = mitigation_condition_frame(real, ["sex"], "income", cfg, n=2000, seed=3)
    assert list(joint.columns) == ["sex", "race", "income"]
    cell_rates = joint.groupby(["sex", "race"])["income"].apply(lambda s: (s == ">50K").mean())
    assert cell_rates.to_numpy() == pytest.approx([overall] * 4, abs=1 / 300)


def test_metric_result_round_trip_single() -> None:
    r = MetricResult("data", "CI", "sex", ["F"], 0.3, None, "|x|<=", True)
    assert MetricResult.from_dict(r.to_dict()) == r
