"""Both bias gates judged with statistics: intervals on every group metric, and one
"too small to judge" rule. Planted data sets: a 10-row group whose synthetic rows come from
the same distribution must not fail the synthetic gate; a large group whose synthetic positive
rate is shifted must."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from genops.workloads.tabular.bias import (
    BiasConfig,
    MetricResult,
    Stats,
    data_bias_verdict,
    downstream_fairness,
    failure_message,
    synthetic_bias_verdict,
    verdict_reasons,
)

CONFIG = BiasConfig(positive_label="yes", cddl_group_by="job")


def _draw(sizes: dict[str, tuple[int, float]], seed: int) -> pd.DataFrame:
    """``{group: (rows, positive rate)}``; age and job depend on nothing, the label on the
    group's rate and (a little) on age."""
    rng = np.random.default_rng(seed)
    parts = []
    for g, (n, rate) in sizes.items():
        age = rng.normal(40, 10, n).round()
        logit = np.log(rate / (1 - rate)) + 0.03 * (age - 40)
        label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
        parts.append(
            pd.DataFrame(
                {
                    "group": g,
                    "age": age,
                    "job": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
                    "label": label,
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed)


POPULATION = {"big": (1500, 0.3), "other": (1000, 0.2), "tiny": (10, 0.5)}


def _fairness(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame) -> list:  # type: ignore[type-arg]
    """Downstream fairness of logistic regressions trained on each, on the real holdout."""

    def fit_predict(frame: pd.DataFrame) -> np.ndarray:
        x = pd.get_dummies(frame[["age", "job", "group"]], dtype=float)
        model = LogisticRegression(max_iter=500).fit(x, frame["label"] == "yes")
        xh = pd.get_dummies(holdout[["age", "job", "group"]], dtype=float)
        return np.asarray(model.predict(xh.reindex(columns=x.columns, fill_value=0.0)), int)

    return downstream_fairness(
        (holdout["label"] == "yes").to_numpy(int),
        fit_predict(synthetic),
        fit_predict(real),
        holdout[["group"]],
        positive_label=1,
        thresholds=CONFIG.synthetic,
        stats=Stats.from_config(CONFIG),
    )


def _for(results: list[MetricResult], group: str) -> list[MetricResult]:
    return [r for r in results if r.groups == [group]]


def test_a_ten_row_group_from_the_same_distribution_does_not_fail() -> None:
    beyond_point = 0  # results a point-value rule would have failed
    for seed in range(5):
        real = _draw(POPULATION, seed)
        synthetic = _draw(POPULATION, 100 + seed)  # the same distribution, fresh rows
        holdout = _draw(POPULATION, 200 + seed)
        verdict = synthetic_bias_verdict(
            real,
            synthetic,
            ["group"],
            "label",
            config=CONFIG,
            continuous_columns=["age"],
            categorical_columns=["job", "label"],
            fairness=_fairness(real, synthetic, holdout),
        )
        assert verdict.passed, (seed, failure_message(verdict))
        tiny = _for(verdict.results, "tiny")
        assert {r.metric for r in tiny} == {
            "relative_underrepresentation",
            "DPL_amplification",
            "DI_ratio",
            "group_shape_score",
        }
        assert all(r.too_small and "10 rows < 100" in r.note for r in tiny), tiny
        assert all(r.has_interval for r in tiny if r.metric != "relative_underrepresentation")
        beyond_point += sum(not make_point_judgement(r) for r in tiny if r.threshold is not None)
        # the large groups are judged, on their intervals, and pass
        assert not any(r.too_small for r in _for(verdict.results, "big"))
        # the downstream comparisons leave the tiny group out (10 holdout rows), and say so
        downstream = [r for r in verdict.results if r.metric.startswith(("dp_", "eo_"))]
        assert downstream and all("tiny (10 holdout rows < 100)" in r.note for r in downstream)
        assert "too small to judge: group='tiny'" in verdict_reasons(verdict)
    # the premise: judged on their point values, the tiny group's metrics would have failed
    assert beyond_point >= 3


def make_point_judgement(r: MetricResult) -> bool:
    """What the gate said before intervals: the point value against the threshold."""
    from genops.core.verdict import compare

    return compare(r.value, r.threshold, r.comparison)


def test_a_large_group_with_a_shifted_synthetic_positive_rate_fails() -> None:
    # 'other' (2,000 rows) has the lower positive rate (0.2 against about 0.3 for the rest);
    # the synthetic rows give it 0.05: its gap to the rest widens from about 0.1 to 0.25
    population = {"big": (3000, 0.3), "other": (2000, 0.2), "tiny": (10, 0.5)}
    real = _draw(population, 1)
    synthetic = _draw({**population, "other": (2000, 0.05)}, 2)
    verdict = synthetic_bias_verdict(
        real,
        synthetic,
        ["group"],
        "label",
        config=CONFIG,
        continuous_columns=["age"],
        categorical_columns=["job"],
    )
    assert not verdict.passed
    failed = {(r.metric, r.groups[0]) for r in verdict.failures}
    assert ("DPL_amplification", "other") in failed and ("DI_ratio", "other") in failed
    amp = next(
        r for r in verdict.failures if (r.metric, r.groups) == ("DPL_amplification", ["other"])
    )
    assert amp.value == pytest.approx(0.15, abs=0.04)
    assert amp.low is not None and amp.low > 0.05  # the whole interval beyond the threshold
    di = next(r for r in verdict.failures if (r.metric, r.groups) == ("DI_ratio", ["other"]))
    assert di.high is not None and di.high < 0.8
    assert f"DPL_amplification for group='other' vs rest = {amp.value:.3f} [" in (
        failure_message(verdict)
    )
    # representation and fidelity are untouched by the shift and pass; the tiny group is
    # too small to judge, never a failure
    assert not any(r.metric == "representation_tvd" for r in verdict.failures)
    assert not any(r.groups == ["tiny"] for r in verdict.failures)


def test_too_small_rule_in_every_data_gate_metric() -> None:
    real = _draw(POPULATION, 3)
    verdict = data_bias_verdict(real, ["group"], "label", config=CONFIG)
    tiny = _for(verdict.results, "tiny")
    metrics = {r.metric for r in tiny}
    assert metrics == {"coverage", "CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL"}
    for r in tiny:
        if r.metric == "coverage":  # the rule itself: names the group as under-covered
            assert not r.passed and not r.too_small and r.value == 10
        else:
            assert r.too_small and r.passed and r.note.startswith("too small to judge: 10 rows")
            assert r.has_interval, r.metric  # reported with its interval all the same
    # the large groups are judged (not too small) and carry intervals
    big = [r for r in _for(verdict.results, "big") if r.metric != "coverage"]
    assert big and all(not r.too_small and r.has_interval for r in big)
    # the tiny group fails coverage and nothing else
    assert [r.metric for r in verdict.failures if r.groups == ["tiny"]] == ["coverage"]


def test_a_rest_below_the_rule_is_too_small_too() -> None:
    # 'most' has 990 rows but its rest is the 10 rows of 'few': most vs rest is as noisy
    frame = _draw({"most": (990, 0.3), "few": (10, 0.9)}, 4)
    verdict = data_bias_verdict(frame, ["group"], "label", config=CONFIG)
    dpl = {r.groups[0]: r for r in verdict.results if r.metric == "DPL"}
    assert dpl["most"].too_small and "the rest has 10 rows < 100" in dpl["most"].note
    assert dpl["few"].too_small


def test_intervals_shrink_with_rows_and_the_gate_follows() -> None:
    # the same 0.15 gap in positive rate (threshold 0.1): 100 rows per group reach the
    # threshold (pass), 2,000 per group lie wholly beyond it (fail)
    def frame(n: int) -> pd.DataFrame:
        k_a, k_d = int(0.40 * n), int(0.25 * n)
        return pd.DataFrame(
            {
                "group": ["a"] * n + ["d"] * n,
                "label": ["yes"] * k_a + ["no"] * (n - k_a) + ["yes"] * k_d + ["no"] * (n - k_d),
            }
        )

    config = BiasConfig(positive_label="yes")
    small = data_bias_verdict(frame(100), ["group"], "label", config=config)
    large = data_bias_verdict(frame(2000), ["group"], "label", config=config)
    dpl_small = next(r for r in small.results if (r.metric, r.groups) == ("DPL", ["d"]))
    dpl_large = next(r for r in large.results if (r.metric, r.groups) == ("DPL", ["d"]))
    assert dpl_small.value == pytest.approx(0.15) == dpl_large.value
    assert dpl_small.passed and dpl_small.low is not None and dpl_small.low < 0.1
    assert not dpl_large.passed and dpl_large.low is not None and dpl_large.low > 0.1
    assert (dpl_large.high - dpl_large.low) < (dpl_small.high - dpl_small.low) / 3  # type: ignore[operator]


def test_bootstrap_intervals_are_seeded() -> None:
    real = _draw(POPULATION, 5)
    synthetic = _draw(POPULATION, 6)
    args = (real, synthetic, ["group"], "label")
    kw = {"continuous_columns": ["age"], "categorical_columns": ["job"]}
    one = synthetic_bias_verdict(*args, config=CONFIG, **kw)  # type: ignore[arg-type]
    two = synthetic_bias_verdict(*args, config=CONFIG, **kw)  # type: ignore[arg-type]
    assert one.to_json() == two.to_json()
    other = synthetic_bias_verdict(
        *args,  # type: ignore[arg-type]
        config=CONFIG.model_copy(update={"seed": 1}),
        **kw,  # type: ignore[arg-type]
    )
    amp = [(r.low, r.high) for r in one.results if r.metric == "DPL_amplification"]
    amp_other = [(r.low, r.high) for r in other.results if r.metric == "DPL_amplification"]
    assert amp != amp_other


def test_downstream_fairness_equals_fairlearn_when_every_group_takes_part() -> None:
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    rng = np.random.default_rng(7)
    n = 3000
    groups = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    y = (rng.random(n) < 0.3).astype(int)
    y_syn = (rng.random(n) < np.where(groups == "a", 0.4, 0.2)).astype(int)
    y_real = (rng.random(n) < 0.3).astype(int)
    res = {
        r.metric: r
        for r in downstream_fairness(y, y_syn, y_real, {"g": groups}, stats=Stats(min_rows=100))
    }
    for metric, fn in (
        ("dp_difference_increase", demographic_parity_difference),
        ("eo_difference_increase", equalized_odds_difference),
    ):
        expected = fn(y, y_syn, sensitive_features=groups) - fn(
            y, y_real, sensitive_features=groups
        )
        assert res[metric].value == pytest.approx(expected)
        assert res[metric].low < res[metric].value < res[metric].high  # type: ignore[operator]
    ratio = demographic_parity_ratio(y, y_syn, sensitive_features=groups) / (
        demographic_parity_ratio(y, y_real, sensitive_features=groups)
    )
    assert res["dp_ratio_relative"].value == pytest.approx(ratio)
    # a group below the rule is left out of the max - min, and named
    small = downstream_fairness(y, y_syn, y_real, {"g": groups}, stats=Stats(min_rows=700))
    assert all("left out, too small to judge: c (" in r.note for r in small)
    only_one = downstream_fairness(y, y_syn, y_real, {"g": groups}, stats=Stats(min_rows=1000))
    assert all(r.too_small and r.passed for r in only_one)
