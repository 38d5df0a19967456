"""Synthetic-data bias checks: representation, amplification, per-group fidelity and
downstream fairness."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from genops.workloads.tabular.bias import (
    BiasConfig,
    MetricResult,
    amplification_results,
    column_shape_scores,
    downstream_fairness,
    downstream_fairness_by_group,
    failure_message,
    group_shape_score,
    representation_results,
    synthetic_bias_report,
    synthetic_bias_verdict,
)


def _frame(counts: dict[str, tuple[int, int]], seed: int = 0) -> pd.DataFrame:
    """``{group: (rows, positives)}`` with a continuous and a categorical column."""
    rng = np.random.default_rng(seed)
    parts = []
    for g, (n, k) in counts.items():
        parts.append(
            pd.DataFrame(
                {
                    "race": g,
                    "age": rng.integers(18, 80, n),
                    "job": rng.choice(["a", "b", "c"], n),
                    "income": [">50K"] * k + ["<=50K"] * (n - k),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _by(results: list[MetricResult], metric: str, group: str | None = None) -> MetricResult:
    for r in results:
        if r.metric == metric and (group is None or r.groups == [group]):
            return r
    raise AssertionError(f"no {metric} {group}")


def test_representation_values() -> None:
    # shares real A/B/C = 0.5/0.3/0.2, synthetic 0.6/0.3/0.1 (1,000 rows each)
    # TVD = 1/2·(|0.5-0.6| + 0 + |0.2-0.1|) = 0.1
    # under-representation: A 1 - 0.6/0.5 = -0.2, B 0, C 1 - 0.1/0.2 = 0.5 (passes at <= 0.5)
    real = pd.DataFrame({"race": ["A"] * 500 + ["B"] * 300 + ["C"] * 200})
    syn = pd.DataFrame({"race": ["A"] * 600 + ["B"] * 300 + ["C"] * 100})
    res = representation_results(real, syn, "race")
    tvd_r = _by(res, "representation_tvd")
    assert tvd_r.value == pytest.approx(0.1) and not tvd_r.passed  # interval wholly > 0.05
    assert tvd_r.low is not None and 0.05 < tvd_r.low < 0.1 < tvd_r.high
    # a tenth of the rows: the same shares, but the interval reaches 0.05
    small = representation_results(real.iloc[::10], syn.iloc[::10], "race")
    assert _by(small, "representation_tvd").passed
    assert _by(res, "relative_underrepresentation", "A").value == pytest.approx(-0.2)
    assert _by(res, "relative_underrepresentation", "B").value == pytest.approx(0.0)
    c = _by(res, "relative_underrepresentation", "C")
    assert c.value == pytest.approx(0.5) and c.passed


def test_missing_group_fails_and_is_named() -> None:
    real = _frame({"A": (300, 90), "B": (300, 90), "C": (150, 45)})
    syn = real.loc[real["race"] != "C"].reset_index(drop=True)
    verdict = synthetic_bias_verdict(real, syn, ["race"], "income", ">50K", BiasConfig())
    assert not verdict.passed
    missing = [f for f in verdict.failures if f.metric == "relative_underrepresentation"]
    assert [f.groups for f in missing] == [["C"]]
    assert "absent from the synthetic data" in missing[0].note
    assert "relative_underrepresentation for race='C' = 1.000 [0.933, 1.000] > 0.500" in (
        failure_message(verdict)
    )
    # the missing group still fails with a report-only threshold
    cfg = BiasConfig.model_validate({"synthetic": {"max_relative_underrepresentation": None}})
    res = synthetic_bias_report(real, syn, ["race"], "income", ">50K", cfg)
    assert not _by(res, "relative_underrepresentation", "C").passed
    # group metrics on the missing group are NaN with a note, not a crash
    shape = _by(res, "group_shape_score", "C")
    assert math.isnan(shape.value) and shape.note


def test_identical_synthetic_data_passes() -> None:
    real = _frame({"A": (300, 90), "B": (300, 60), "C": (150, 45)})
    verdict = synthetic_bias_verdict(real, real.copy(), ["race"], "income", ">50K")
    assert verdict.passed, failure_message(verdict)
    shape = _by(verdict.results, "group_shape_score", "A")
    assert shape.value == pytest.approx(1.0)


def test_amplification_values() -> None:
    # real: d=F q_d = 200/1000 = 0.2, a=M q_a = 400/1000 = 0.4 -> DPL 0.2, DI 0.5
    # syn:  q_d = 100/1000 = 0.1, q_a = 0.4                  -> DPL 0.3, DI 0.25
    # DPL_amplification = |0.3| - |0.2| = 0.1 (interval wholly > 0.05: fails)
    # DI_ratio = r_syn / r_real = 0.25 / 0.5 = 0.5 (interval wholly < 0.8: fails)
    def make(k_f: int, n: int = 1000) -> pd.DataFrame:
        k_m = 4 * n // 10
        return pd.DataFrame(
            {
                "sex": ["F"] * n + ["M"] * n,
                "y": [1] * k_f + [0] * (n - k_f) + [1] * k_m + [0] * (n - k_m),
            }
        )

    res = amplification_results(make(200), make(100), "sex", "y", 1)
    amp = _by(res, "DPL_amplification", "F")
    assert amp.value == pytest.approx(0.1) and not amp.passed
    assert amp.details["DPL_real"] == pytest.approx(0.2)
    assert amp.details["DPL_synthetic"] == pytest.approx(0.3)
    di = _by(res, "DI_ratio", "F")
    assert di.value == pytest.approx(0.5) and not di.passed
    # the advantaged side reads the same (folded DI): M vs rest, r = min/max
    assert _by(res, "DI_ratio", "M").value == pytest.approx(0.5)
    # a tenth of the rows: the same point values, but both intervals reach the thresholds
    small = amplification_results(make(20, 100), make(10, 100), "sex", "y", 1)
    amp, di = _by(small, "DPL_amplification", "F"), _by(small, "DI_ratio", "F")
    assert amp.value == pytest.approx(0.1) and amp.passed and "interval reaches it" in amp.note
    assert di.value == pytest.approx(0.5) and di.passed


def test_column_shape_scores_and_group_shape_score() -> None:
    # continuous: identical -> 1 - KS = 1; shifted beyond range -> KS = 1 -> 0
    # categorical: real x,x,y,y vs syn x,x,x,y -> TVD = 1/2·(|.5-.75| + |.5-.25|) = 0.25 -> 0.75
    real = pd.DataFrame({"g": ["a"] * 4, "num": [1, 2, 3, 4], "cat": ["x", "x", "y", "y"]})
    syn = pd.DataFrame({"g": ["a"] * 4, "num": [1, 2, 3, 4], "cat": ["x", "x", "x", "y"]})
    scores = column_shape_scores(real, syn, ["num"], ["cat"])
    assert scores == pytest.approx({"num": 1.0, "cat": 0.75})
    shifted = syn.assign(num=[5, 6, 7, 8])
    assert column_shape_scores(real, shifted, ["num"], [])["num"] == pytest.approx(0.0)
    # group score = mean over columns (the attribute itself left out): (1 + 0.75) / 2
    assert group_shape_score(real, syn, "g", "a", ["num"], ["cat", "g"]) == pytest.approx(0.875)


def test_downstream_fairness_values() -> None:
    # groups A = rows 0-3, B = rows 4-7; y_true = 1,1,0,0 in each group
    # real-trained: A 1,0,1,0 / B 1,0,1,0 -> selection 0.5/0.5, TPR 0.5/0.5, FPR 0.5/0.5
    #   -> DP difference 0, DP ratio 1, EO difference 0
    # synthetic-trained: A 1,1,1,0 / B 1,0,0,0 -> selection 0.75/0.25 -> DP diff 0.5,
    #   DP ratio 1/3; TPR 1 vs 0.5, FPR 0.5 vs 0 -> EO difference max(0.5, 0.5) = 0.5
    # (the eight rows repeated 50 times: the same rates, intervals narrow enough to fail)
    y_true = (["hi", "hi", "lo", "lo"] * 2) * 50
    y_real = ["hi", "lo", "hi", "lo", "hi", "lo", "hi", "lo"] * 50
    y_syn = ["hi", "hi", "hi", "lo", "hi", "lo", "lo", "lo"] * 50
    sf = pd.DataFrame({"grp": (["A"] * 4 + ["B"] * 4) * 50})
    res = downstream_fairness(y_true, y_syn, y_real, sf, positive_label="hi")
    dp = _by(res, "dp_difference_increase")
    assert dp.value == pytest.approx(0.5) and not dp.passed
    assert dp.details["synthetic_trained"] == pytest.approx(0.5)
    assert dp.details["real_trained"] == pytest.approx(0.0)
    assert dp.details["selection_rate[synthetic_trained][A]"] == pytest.approx(0.75)
    eo = _by(res, "eo_difference_increase")
    assert eo.value == pytest.approx(0.5) and not eo.passed
    ratio = _by(res, "dp_ratio_relative")
    assert ratio.value == pytest.approx(1 / 3) and not ratio.passed
    table = downstream_fairness_by_group(y_true, y_syn, y_real, sf, positive_label="hi")
    row = table.loc[(table["model"] == "synthetic_trained") & (table["group"] == "B")]
    assert float(row["tpr"].iloc[0]) == pytest.approx(0.5)
    # appended to the synthetic report
    real = _frame({"A": (200, 60), "B": (200, 60)})
    verdict = synthetic_bias_verdict(real, real, ["race"], "income", ">50K", fairness=res)
    assert not verdict.passed
    assert {f.metric for f in verdict.failures} == {
        "dp_difference_increase",
        "eo_difference_increase",
        "dp_ratio_relative",
    }


def test_tiny_groups_are_too_small_to_judge_in_group_fidelity() -> None:
    import numpy as np
    import pandas as pd

    from genops.workloads.tabular.bias import group_fidelity_results

    rng = np.random.default_rng(0)
    real = pd.DataFrame({"g": ["big"] * 300 + ["tiny"] * 5, "x": rng.normal(0, 1, 305)})
    synthetic = real.assign(x=np.where(real["g"] == "tiny", 50.0, real["x"]))
    results = {
        r.groups[0]: r
        for r in group_fidelity_results(real, synthetic, "g", ["x"], [], min_rows=100)
    }
    assert results["big"].passed and not results["big"].too_small
    tiny = results["tiny"]
    # reported with its value and interval, neither passed nor failed on it
    assert tiny.value < 0.5 and tiny.too_small and tiny.passed and tiny.status != "pass"
    assert tiny.note == "too small to judge: 5 rows < 100"
    assert tiny.low == tiny.high == 0.0  # every resample: KS = 1
    strict = group_fidelity_results(real, synthetic, "g", ["x"], [], min_rows=0)
    assert not next(r for r in strict if r.groups == ["tiny"]).passed
