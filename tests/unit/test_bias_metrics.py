"""Pre-training bias metrics (SageMaker Clarify definitions) and the data gate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genops.workloads.tabular.bias import (
    BiasConfig,
    DataBiasThresholds,
    cddl,
    ci,
    data_bias_report,
    data_bias_verdict,
    dpl,
    failure_message,
    js,
    kl,
    ks,
    lp,
    tvd,
)

ADULT = Path(__file__).resolve().parents[2] / "data" / "adult" / "adult_train.csv.gz"


@pytest.fixture()
def tiny() -> pd.DataFrame:
    # facet d = "F": 4 rows, 1 positive  -> q_d = 1/4
    # facet a = "M": 6 rows, 3 positives -> q_a = 3/6 = 1/2
    # stratum X: F+ F- M+ M+        stratum Y: F- F- M+ M- M- M-
    rows = [
        ("F", 1, "X"),
        ("F", 0, "X"),
        ("M", 1, "X"),
        ("M", 1, "X"),
        ("F", 0, "Y"),
        ("F", 0, "Y"),
        ("M", 1, "Y"),
        ("M", 0, "Y"),
        ("M", 0, "Y"),
        ("M", 0, "Y"),
    ]
    return pd.DataFrame(
        {
            "sex": [r[0] for r in rows],
            "y": ["yes" if r[1] else "no" for r in rows],
            "s": [r[2] for r in rows],
        }
    )


def test_ci(tiny: pd.DataFrame) -> None:
    # CI = (n_a - n_d) / (n_a + n_d) = (6 - 4) / 10 = 0.2
    assert ci(tiny, "sex", "F") == pytest.approx(0.2)
    assert ci(tiny, "sex", "M") == pytest.approx(-0.2)


def test_dpl(tiny: pd.DataFrame) -> None:
    # DPL = q_a - q_d = 3/6 - 1/4 = 0.25
    assert dpl(tiny, "sex", "F", "y", "yes") == pytest.approx(0.25)


def test_kl(tiny: pd.DataFrame) -> None:
    # P_a = [no, yes] = [1/2, 1/2], P_d = [3/4, 1/4]
    # KL = 1/2·ln((1/2)/(3/4)) + 1/2·ln((1/2)/(1/4)) = 1/2·ln(2/3) + 1/2·ln(2) = 1/2·ln(4/3)
    assert kl(tiny, "sex", "F", "y", "yes") == pytest.approx(0.5 * math.log(4 / 3))


def test_js(tiny: pd.DataFrame) -> None:
    # P = (P_a + P_d)/2 = [5/8, 3/8]
    # KL(P_a||P) = 1/2·ln((1/2)/(5/8)) + 1/2·ln((1/2)/(3/8)) = 1/2·ln(4/5) + 1/2·ln(4/3)
    # KL(P_d||P) = 3/4·ln((3/4)/(5/8)) + 1/4·ln((1/4)/(3/8)) = 3/4·ln(6/5) + 1/4·ln(2/3)
    # JS = 1/2·(KL(P_a||P) + KL(P_d||P)) ≈ 1/2·(0.032270 + 0.035375) ≈ 0.033822
    kl_a = 0.5 * math.log(4 / 5) + 0.5 * math.log(4 / 3)
    kl_d = 0.75 * math.log(6 / 5) + 0.25 * math.log(2 / 3)
    assert js(tiny, "sex", "F", "y", "yes") == pytest.approx(0.5 * (kl_a + kl_d))
    assert js(tiny, "sex", "F", "y", "yes") == pytest.approx(0.033822, abs=1e-6)


def test_lp_tvd_ks(tiny: pd.DataFrame) -> None:
    # P_a - P_d = [1/2 - 3/4, 1/2 - 1/4] = [-1/4, 1/4]
    # LP (p=2) = sqrt(1/16 + 1/16) = sqrt(1/8) ≈ 0.353553
    # TVD = 1/2·(1/4 + 1/4) = 0.25 (half the L1 norm)
    # KS = max(1/4, 1/4) = 0.25
    assert lp(tiny, "sex", "F", "y", "yes") == pytest.approx(math.sqrt(1 / 8))
    assert tvd(tiny, "sex", "F", "y", "yes") == pytest.approx(0.25)
    assert ks(tiny, "sex", "F", "y", "yes") == pytest.approx(0.25)


def test_cddl(tiny: pd.DataFrame) -> None:
    # stratum X (n=4): accepted 3 (F: 1), rejected 1 (F: 1) -> DD_X = 1/1 - 1/3 = 2/3
    # stratum Y (n=6): accepted 1 (F: 0), rejected 5 (F: 2) -> DD_Y = 2/5 - 0/1 = 2/5
    # CDD = (4·2/3 + 6·2/5) / 10 = (8/3 + 12/5) / 10 = 0.506667
    expected = (4 * 2 / 3 + 6 * 2 / 5) / 10
    assert cddl(tiny, "sex", "F", "y", "yes", "s") == pytest.approx(expected)


def test_cddl_stratum_without_positives_counts_acceptance_share_as_zero(
    tiny: pd.DataFrame,
) -> None:
    # add stratum Z (n=2): F-, M-  -> accepted 0, so the acceptance share counts as 0 (smclarify)
    # DD_Z = 1/2 - 0 = 1/2;  CDD = (4·2/3 + 6·2/5 + 2·1/2) / 12
    extra = pd.DataFrame({"sex": ["F", "M"], "y": ["no", "no"], "s": ["Z", "Z"]})
    df = pd.concat([tiny, extra], ignore_index=True)
    expected = (4 * 2 / 3 + 6 * 2 / 5 + 2 * 0.5) / 12
    assert cddl(df, "sex", "F", "y", "yes", "s") == pytest.approx(expected)


def test_multi_valued_facet() -> None:
    df = pd.DataFrame(
        {"race": ["A", "A", "B", "B", "C", "C"], "y": [1, 1, 1, 0, 0, 0]},
    )
    # facet d = {B, C}: 4 rows, 1 positive -> q_d = 1/4; facet a = {A}: q_a = 1 -> DPL = 3/4
    assert dpl(df, "race", ["B", "C"], "y", 1) == pytest.approx(0.75)


def test_degenerate_cases_do_not_crash(tiny: pd.DataFrame) -> None:
    # group absent -> NaN
    assert math.isnan(dpl(tiny, "sex", "X", "y", "yes"))
    # facet d never positive while facet a is -> KL infinite
    df = tiny.assign(y=np.where(tiny["sex"] == "F", "no", tiny["y"]))
    assert math.isinf(kl(df, "sex", "F", "y", "yes"))
    # label never positive: DPL is 0 and CDDL is NaN, the report carries a note
    never = tiny.assign(y="no")
    assert dpl(never, "sex", "F", "y", "yes") == 0.0
    assert math.isnan(cddl(never, "sex", "F", "y", "yes", "s"))
    cfg = BiasConfig(cddl_group_by="s", data=DataBiasThresholds(min_group_rows=1))
    res = data_bias_report(never, ["sex"], "y", "yes", cfg)
    cddl_res = [r for r in res if r.metric == "CDDL"]
    assert cddl_res and all(math.isnan(r.value) and "never positive" in r.note for r in cddl_res)
    # attribute with a single group: metrics NaN with a note, no crash
    single = tiny.assign(sex="F")
    res = data_bias_report(single, ["sex"], "y", "yes", cfg)
    dpl_res = next(r for r in res if r.metric == "DPL")
    assert math.isnan(dpl_res.value) and "single group" in dpl_res.note
    # attribute entirely missing -> failing coverage result
    empty = tiny.assign(sex=None)
    res = data_bias_report(empty, ["sex"], "y", "yes", cfg)
    assert [r.metric for r in res] == ["coverage"] and not res[0].passed


def test_coverage_flags_small_groups() -> None:
    df = pd.DataFrame({"g": ["a"] * 150 + ["b"] * 20, "y": [0, 1] * 85})
    res = data_bias_report(df, ["g"], "y", 1, BiasConfig())
    cov = {r.groups[0]: r for r in res if r.metric == "coverage"}
    assert cov["a"].passed and not cov["b"].passed
    assert cov["b"].value == 20 and cov["b"].threshold == 100


def _fair_frame(n_per_group: int = 200, rate: float = 0.3) -> pd.DataFrame:
    rows = []
    for sex in ("Female", "Male"):
        for race in ("A", "B", "C", "D"):
            n = n_per_group // 4
            k = round(rate * n)
            rows += [(sex, race, ">50K" if i < k else "<=50K") for i in range(n)]
    return pd.DataFrame(rows, columns=["sex", "race", "income"])


def test_fair_data_passes_and_biased_data_fails_naming_the_group() -> None:
    cfg = BiasConfig(cddl_group_by="race", data=DataBiasThresholds(min_group_rows=10))
    fair = _fair_frame(400)
    verdict = data_bias_verdict(fair, ["sex", "race"], "income", ">50K", cfg)
    assert verdict.passed, failure_message(verdict)

    # delete most (80%) positive labels of the women, evenly across the race groups
    biased = fair.copy()
    for race in ("A", "B", "C", "D"):
        mask = (biased["sex"] == "Female") & (biased["race"] == race) & (biased["income"] == ">50K")
        women_pos = biased.index[mask]
        biased.loc[women_pos[: int(0.8 * len(women_pos))], "income"] = "<=50K"
    verdict = data_bias_verdict(biased, ["sex", "race"], "income", ">50K", cfg)
    assert not verdict.passed
    dpl_fail = [f for f in verdict.failures if f.metric == "DPL"]
    assert any(f.attribute == "sex" and f.groups == ["Female"] for f in dpl_fail)
    message = failure_message(verdict)
    # the value, its Newcombe interval (wholly above 0.1, so it fails) and the threshold
    assert "DPL for sex='Female' vs rest = 0.240 [0.189, 0.290] > 0.100" in message
    # the race groups stay balanced
    assert not any(f.attribute == "race" for f in verdict.failures)


def test_worst_pair_names_both_groups() -> None:
    # rates: A 0.5, B 0.3, C 0.1 (100 rows each) -> worst pair A vs C, DPL = 0.4
    rows = []
    for g, k in (("A", 50), ("B", 30), ("C", 10)):
        rows += [(g, int(i < k)) for i in range(100)]
    df = pd.DataFrame(rows, columns=["g", "y"])
    res = data_bias_report(df, ["g"], "y", 1, BiasConfig())
    pair = next(r for r in res if r.metric == "DPL_worst_pair")
    assert pair.groups == ["A", "C"]
    assert pair.value == pytest.approx(0.4)
    assert not pair.passed
    assert "DPL_worst_pair for g='A' vs g='C' = 0.400 [0.278, 0.506] > 0.100" in pair.describe()


def test_positive_label_from_config_and_missing() -> None:
    df = pd.DataFrame({"g": ["a", "b"] * 60, "y": ["p", "n", "n", "p"] * 30})
    res = data_bias_report(df, ["g"], "y", config=BiasConfig(positive_label="p"))
    assert any(r.metric == "DPL" for r in res)
    with pytest.raises(ValueError, match="positive_label"):
        data_bias_report(df, ["g"], "y")


def test_adult_sex_dpl() -> None:
    df = pd.read_csv(ADULT, na_values="?", usecols=["sex", "race", "education", "income"])
    value = dpl(df, "sex", "Female", "income", ">50K")
    assert 0.17 <= value <= 0.22
    cfg = BiasConfig(positive_label=">50K", cddl_group_by="education")
    verdict = data_bias_verdict(df, ["sex", "race"], "income", config=cfg)
    assert not verdict.passed  # the default data gate fails on sex DPL
    assert failure_message(verdict).startswith(
        "data bias gate failed: DPL for sex='Female' vs rest = 0.196 [0.188, 0.205] > 0.100"
    )
