from __future__ import annotations

import json

import pytest

from genops.core.blessing import BlessingSpec, RelativeFloor, bless
from genops.core.config import ConfigError, parse_config
from genops.workloads.tabular.config import TABULAR_BLESSING_DEFAULTS
from tests.conftest import SMALL_SPEC

GOOD = {
    "fidelity_column_shapes": 0.90,
    "fidelity_quality": 0.85,
    "utility_tstr_auc": 0.86,
    "utility_trtr_auc": 0.90,
    "privacy_exact_copy_share": 0.0,
    "privacy_holdout_exact_copy_share": 0.0,
    "privacy_dcr_synthetic_median": 1.2,
    "privacy_dcr_holdout_median": 1.0,
}
SPEC = BlessingSpec.model_validate(TABULAR_BLESSING_DEFAULTS)


def test_first_model_is_judged_on_thresholds_and_relative_floors_only() -> None:
    result = bless(GOOD, SPEC, synthetic_bias_passed=True, data_bias_passed=False)
    assert result.blessed
    assert result.baseline_version is None
    assert {c.kind for c in result.checks} == {"threshold", "relative", "gate"}
    assert {c.name for c in result.checks if c.kind == "relative"} == {
        "tstr_trtr_ratio",
        "exact_copies_vs_holdout",
        "dcr_vs_holdout",
    }
    assert result.summary() == "blessed (against thresholds)"
    assert result.reasons() == []


def test_relative_failures_name_value_limit_and_baseline() -> None:
    # TSTR 0.61 / TRTR 0.74 = 0.824 < 0.9; copies 0.20 > 1.1 × 0.05 + 0.02 = 0.075;
    # DCR 0.5 < 0.8 × 1.0
    bad = {
        **GOOD,
        "utility_tstr_auc": 0.61,
        "utility_trtr_auc": 0.74,
        "privacy_exact_copy_share": 0.20,
        "privacy_holdout_exact_copy_share": 0.05,
        "privacy_dcr_synthetic_median": 0.5,
    }
    result = bless(bad, SPEC, True, True)
    assert not result.blessed
    assert result.reasons() == [
        "tstr_trtr_ratio 0.824 < 0.900 (utility_tstr_auc 0.6100, utility_trtr_auc 0.7400)",
        "exact_copies_vs_holdout: privacy_exact_copy_share 0.2000 > 0.0750 "
        "(= 1.1 × privacy_holdout_exact_copy_share 0.0500 + 0.02)",
        "dcr_vs_holdout 0.500 < 0.800 (privacy_dcr_synthetic_median 0.5000, "
        "privacy_dcr_holdout_median 1.0000)",
    ]
    assert result.summary() == "not blessed: " + "; ".join(result.reasons())
    data = json.loads(result.to_json())
    assert data["reasons"] == result.reasons()
    ratio = next(c for c in data["checks"] if c["name"] == "tstr_trtr_ratio")
    assert ratio["threshold"] == pytest.approx(0.9 * 0.74)
    assert ratio["baseline"] == 0.74 and ratio["baseline_metric"] == "utility_trtr_auc"


def test_relative_floors_follow_the_data_not_an_absolute_number() -> None:
    # a low-signal target: TRTR 0.62, TSTR 0.61 (ratio 0.98) is blessed; the old absolute
    # floor (TSTR >= 0.75) would have refused it
    low_signal = {**GOOD, "utility_tstr_auc": 0.61, "utility_trtr_auc": 0.62}
    assert bless(low_signal, SPEC, True, True).blessed
    old = BlessingSpec(min_metrics={"utility_tstr_auc": 0.75})
    assert not bless(low_signal, old, True, True).blessed
    # repeated rows: 19% synthetic copies under the holdout's own 27% is blessed; the old
    # absolute 5% ceiling refused it
    repeats = {
        **GOOD,
        "privacy_exact_copy_share": 0.19,
        "privacy_holdout_exact_copy_share": 0.27,
    }
    assert bless(repeats, SPEC, True, True).blessed
    absolute = BlessingSpec(max_metrics={"privacy_exact_copy_share": 0.05})
    assert not bless(repeats, absolute, True, True).blessed
    copies = {**repeats, "privacy_exact_copy_share": 0.40}  # > 1.1 × 0.27 + 0.02 = 0.317
    (failure,) = bless(copies, SPEC, True, True).failures
    assert failure.name == "exact_copies_vs_holdout"
    assert failure.threshold == pytest.approx(0.317)


def test_absolute_floors_still_apply_and_name_themselves() -> None:
    spec = BlessingSpec(
        min_metrics={"utility_tstr_auc": 0.75}, max_metrics={"privacy_exact_copy_share": 0.05}
    )
    bad = {**GOOD, "utility_tstr_auc": 0.70, "privacy_exact_copy_share": 0.2}
    result = bless(bad, spec, True, True)
    assert result.reasons() == [
        "utility_tstr_auc 0.7000 < 0.7500 (absolute floor)",
        "privacy_exact_copy_share 0.2000 > 0.0500 (absolute ceiling)",
    ]


def test_missing_metric_fails_its_check() -> None:
    metrics = {k: v for k, v in GOOD.items() if k not in ("fidelity_quality", "utility_trtr_auc")}
    result = bless(metrics, SPEC, True, True)
    assert [c.name for c in result.failures] == ["fidelity_quality", "tstr_trtr_ratio"]
    assert result.reasons() == [
        "fidelity_quality missing (absolute floor 0.7500)",
        "tstr_trtr_ratio: utility_trtr_auc missing",
    ]


def test_a_zero_baseline_is_read_as_a_limit_not_a_ratio() -> None:
    # no holdout row repeats a training row: the ceiling is the slack alone
    spec = BlessingSpec(
        relative={
            "copies": RelativeFloor(
                metric="syn", baseline="hold", comparison="<=", factor=1.1, slack=0.02
            )
        }
    )
    result = bless({"syn": 0.03, "hold": 0.0}, spec, True, True)
    assert result.reasons() == ["copies: syn 0.0300 > 0.0200 (= 1.1 × hold 0.0000 + 0.02)"]
    assert bless({"syn": 0.01, "hold": 0.0}, spec, True, True).blessed


def test_gates() -> None:
    failed = bless(GOOD, SPEC, synthetic_bias_passed=False, data_bias_passed=True)
    assert not failed.blessed and failed.reasons() == ["synthetic_bias_gate failed"]
    strict = BlessingSpec(require_data_bias_pass=True)
    assert not bless(GOOD, strict, True, data_bias_passed=False).blessed
    assert bless(GOOD, strict, True, True).blessed


def test_no_regression_against_the_champion() -> None:
    champion = {**GOOD, "utility_tstr_auc": 0.90}
    # 0.86 < 0.90 - 0.02: a regression
    worse = bless(GOOD, SPEC, True, True, champion_metrics=champion, champion_version="3")
    assert not worse.blessed
    (failure,) = worse.failures
    assert (failure.name, failure.kind) == ("utility_tstr_auc", "regression")
    assert "champion v3 = 0.9000" in failure.note
    assert failure.reason() == (
        "utility_tstr_auc 0.8600 < 0.8800 (regression: champion v3 = 0.9000, tolerance 0.02)"
    )
    # within tolerance: 0.89 >= 0.88
    close = bless(
        {**GOOD, "utility_tstr_auc": 0.89}, SPEC, True, True, champion, champion_version="3"
    )
    assert close.blessed and close.baseline_version == "3"


def test_champion_without_a_metric_is_not_compared_on_it() -> None:
    result = bless(GOOD, SPEC, True, True, champion_metrics={}, champion_version="1")
    assert result.blessed
    assert all("not compared" in c.note for c in result.checks if c.kind == "regression")


def test_markdown_and_json() -> None:
    result = bless({**GOOD, "utility_tstr_auc": 0.5}, SPEC, True, True)
    md = result.to_markdown()
    assert "NOT BLESSED" in md
    assert "tstr_trtr_ratio 0.556 < 0.900 (utility_tstr_auc 0.5000" in md
    assert '"blessed": false' in result.to_json()


def _tabular(blessing: dict | None = None) -> BlessingSpec:  # type: ignore[type-arg]
    raw: dict = {"dataset": SMALL_SPEC}  # type: ignore[type-arg]
    if blessing is not None:
        raw["blessing"] = blessing
    return parse_config(raw).blessing  # type: ignore[no-any-return]


def test_tabular_config_merges_relative_checks_by_name() -> None:
    assert _tabular() == SPEC
    # one factor changed: the rest of that check and the other checks stay
    tuned = _tabular({"relative": {"tstr_trtr_ratio": {"factor": 0.8}}})
    ratio = tuned.relative["tstr_trtr_ratio"]
    assert ratio is not None and ratio.factor == 0.8 and ratio.baseline == "utility_trtr_auc"
    assert tuned.relative["dcr_vs_holdout"] == SPEC.relative["dcr_vs_holdout"]
    # null turns a check off, and it stays off when the resolved config is read again
    off = _tabular({"relative": {"dcr_vs_holdout": None}})
    assert off.relative["dcr_vs_holdout"] is None
    assert "dcr_vs_holdout" not in {c.name for c in bless(GOOD, off, True, True).checks}
    again = parse_config({"dataset": SMALL_SPEC, "blessing": off.model_dump(mode="json")})
    assert again.blessing == off
    # absolute floors as before: a given min_metrics replaces the defaults'
    assert _tabular({"min_metrics": {"utility_tstr_auc": 0.7}}).min_metrics == {
        "utility_tstr_auc": 0.7
    }


def test_tabular_config_refuses_unknown_metrics() -> None:
    with pytest.raises(ConfigError, match="blessing: 'utility_tsr_auc' is not a tabular metric"):
        _tabular(
            {
                "relative": {
                    "x": {
                        "metric": "utility_tsr_auc",
                        "baseline": "utility_trtr_auc",
                        "comparison": ">=",
                    }
                }
            }
        )
    with pytest.raises(ConfigError, match="blessing: 'auc' is not a tabular metric"):
        _tabular({"min_metrics": {"auc": 0.5}})
