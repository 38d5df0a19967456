from __future__ import annotations

from genops.core.blessing import BlessingSpec, bless
from genops.workloads.tabular.config import TABULAR_BLESSING_DEFAULTS

GOOD = {
    "fidelity_column_shapes": 0.90,
    "fidelity_quality": 0.85,
    "utility_tstr_auc": 0.86,
    "privacy_exact_copy_share": 0.0,
}
SPEC = BlessingSpec.model_validate(TABULAR_BLESSING_DEFAULTS)


def test_first_model_is_judged_on_thresholds_only() -> None:
    result = bless(GOOD, SPEC, synthetic_bias_passed=True, data_bias_passed=False)
    assert result.blessed
    assert result.baseline_version is None
    assert {c.kind for c in result.checks} == {"threshold", "gate"}
    assert result.summary() == "blessed (against thresholds)"


def test_threshold_failures_are_named() -> None:
    bad = {**GOOD, "utility_tstr_auc": 0.70, "privacy_exact_copy_share": 0.2}
    result = bless(bad, SPEC, True, True)
    assert not result.blessed
    names = {c.name for c in result.failures}
    assert names == {"utility_tstr_auc", "privacy_exact_copy_share"}
    assert "utility_tstr_auc (threshold) = 0.7000 >= 0.75: FAIL" in result.summary()


def test_missing_metric_fails_its_check() -> None:
    metrics = {k: v for k, v in GOOD.items() if k != "fidelity_quality"}
    result = bless(metrics, SPEC, True, True)
    assert [c.name for c in result.failures] == ["fidelity_quality"]


def test_gates() -> None:
    assert not bless(GOOD, SPEC, synthetic_bias_passed=False, data_bias_passed=True).blessed
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
    assert "NOT BLESSED" in result.to_markdown()
    assert '"blessed": false' in result.to_json()
