"""Blessing relative to the data's own baselines, on planted tables scored by the tabular
evaluation (TSTR/TRTR classifiers, exact copies, distance to closest record) and judged with the
tabular defaults: a low-signal target (TRTR AUC about 0.6) and a table of few discrete values
whose real holdout rows repeat training rows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from genops.core.blessing import BlessingSpec, bless
from genops.workloads.tabular.config import TABULAR_BLESSING_DEFAULTS, DatasetSpec
from genops.workloads.tabular.evaluation import evaluate

DEFAULTS = BlessingSpec.model_validate(TABULAR_BLESSING_DEFAULTS)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The gradient-boosting classifiers on one thread: on a shared machine OpenMP threads
    wait on each other far longer than these small fits take."""
    with threadpool_limits(limits=1):
        yield


#: What blessed a first model before (absolute floors tuned to Adult).
OLD_ABSOLUTE = BlessingSpec(
    min_metrics={
        "fidelity_column_shapes": 0.80,
        "fidelity_quality": 0.75,
        "utility_tstr_auc": 0.75,
    },
    max_metrics={"privacy_exact_copy_share": 0.05},
)


def _spec(columns: dict[str, str]) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "planted",
            "sources": ["planted.csv"],
            "target": "label",
            "positive_label": "yes",
            "columns": {c: {"type": t} for c, t in columns.items()},
        }
    )


def _low_signal(n: int, seed: int) -> pd.DataFrame:
    """A label that two continuous columns predict only a little (AUC about 0.6)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.normal(0, 1, n)
    colour = rng.choice(["red", "green", "blue"], n)
    logit = 0.45 * x1 + 0.1 * x2
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "label": label})


LOW_SIGNAL = _spec(
    {"x1": "continuous", "x2": "continuous", "colour": "categorical", "label": "categorical"}
)


def test_low_signal_target_is_blessed_when_the_synthetic_rows_keep_its_signal() -> None:
    train, holdout = _low_signal(3000, 0), _low_signal(1500, 1)
    synthetic = _low_signal(3000, 2)  # a generator that learnt the distribution
    m = evaluate(LOW_SIGNAL, train, holdout, synthetic, seed=0).metrics
    assert 0.55 < m["utility_trtr_auc"] < 0.66, m  # the premise: little signal to keep
    result = bless(m, DEFAULTS, synthetic_bias_passed=True, data_bias_passed=True)
    assert result.blessed, result.summary()
    ratio = next(c for c in result.checks if c.name == "tstr_trtr_ratio")
    assert ratio.value == m["utility_tstr_auc"] and ratio.baseline == m["utility_trtr_auc"]
    # the absolute floor tuned to Adult refuses the same model on its TSTR AUC alone
    old = bless(m, OLD_ABSOLUTE, True, True)
    assert [c.name for c in old.failures] == ["utility_tstr_auc"]

    # a generator that lost the signal (labels shuffled): TSTR falls to chance, refused with
    # the ratio, its value and both AUCs named
    lost = synthetic.assign(label=np.random.default_rng(3).permutation(synthetic["label"]))
    m_lost = evaluate(LOW_SIGNAL, train, holdout, lost, seed=0).metrics
    refused = bless(m_lost, DEFAULTS, True, True)
    assert not refused.blessed
    (reason,) = refused.reasons()
    ratio_value = m_lost["utility_tstr_auc"] / m_lost["utility_trtr_auc"]
    assert reason == (
        f"tstr_trtr_ratio {ratio_value:.3f} < 0.900 (utility_tstr_auc "
        f"{m_lost['utility_tstr_auc']:.4f}, utility_trtr_auc {m_lost['utility_trtr_auc']:.4f})"
    )


def _few_values(n: int, seed: int) -> pd.DataFrame:
    """Three categorical columns and one integer column of few values: about 30% of fresh rows
    repeat a row of a 3,000-row sample."""
    rng = np.random.default_rng(seed)
    a = rng.choice(list("pqrs"), n, p=[0.4, 0.3, 0.2, 0.1])
    b = rng.choice(list("vwxyz"), n, p=[0.35, 0.25, 0.2, 0.1, 0.1])
    c = rng.choice(list("ghijklmnop"), n)
    d = rng.integers(0, 30, n)
    logit = -0.5 + 0.8 * (a == "p") - 0.6 * (b == "z") + 0.04 * d
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d.astype(float), "label": label})


FEW_VALUES = _spec(
    {
        "a": "categorical",
        "b": "categorical",
        "c": "categorical",
        "d": "continuous",
        "label": "categorical",
    }
)


def test_repeated_rows_are_judged_against_the_holdouts_own_share() -> None:
    train, holdout = _few_values(3000, 0), _few_values(1000, 1)
    fresh = _few_values(3000, 2)  # the same distribution: repeats training rows as often
    m = evaluate(FEW_VALUES, train, holdout, fresh, seed=0).metrics
    share, baseline = m["privacy_exact_copy_share"], m["privacy_holdout_exact_copy_share"]
    assert 0.2 < baseline < 0.4, m  # the premise: real held-out rows repeat training rows
    assert share == pytest.approx(baseline, abs=0.05)
    result = bless(m, DEFAULTS, True, True)
    assert result.blessed, result.summary()
    # the old absolute ceiling of 5% refuses rows as private as real held-out ones
    old = bless(m, OLD_ABSOLUTE, True, True)
    assert "privacy_exact_copy_share" in [c.name for c in old.failures]

    # a generator that memorised its training rows: every row a copy, at distance 0
    copied = train.sample(3000, replace=True, random_state=4).reset_index(drop=True)
    m_copied = evaluate(FEW_VALUES, train, holdout, copied, seed=0).metrics
    assert m_copied["privacy_exact_copy_share"] == 1.0
    refused = bless(m_copied, DEFAULTS, True, True)
    assert not refused.blessed
    names = [c.name for c in refused.failures]
    assert "exact_copies_vs_holdout" in names
    limit = 1.1 * m_copied["privacy_holdout_exact_copy_share"] + 0.02
    assert (
        f"exact_copies_vs_holdout: privacy_exact_copy_share 1.0000 > {limit:.4f} "
        f"(= 1.1 × privacy_holdout_exact_copy_share "
        f"{m_copied['privacy_holdout_exact_copy_share']:.4f} + 0.02)"
    ) in refused.reasons()
