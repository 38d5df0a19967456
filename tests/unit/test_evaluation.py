from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.evaluation import evaluate, render_html
from genops.workloads.tabular.evaluation.metrics import (
    categorical_shape,
    classifier_utility,
    column_shapes,
    continuous_shape,
    pair_trends,
    privacy,
)
from tests.conftest import SMALL_SPEC, small_frame

SPEC = DatasetSpec.model_validate(SMALL_SPEC)
CONT, CAT = SPEC.continuous_columns, SPEC.categorical_columns


def test_shapes_of_identical_data_are_perfect() -> None:
    frame = small_frame(300)
    scores = column_shapes(frame, frame.copy(), CONT, CAT)
    assert scores == pytest.approx({c: 1.0 for c in CONT + CAT})


def test_shape_scores_fall_with_distance() -> None:
    real = pd.Series(np.random.default_rng(0).normal(0, 1, 2000))
    near = pd.Series(np.random.default_rng(1).normal(0.1, 1, 2000))
    far = pd.Series(np.random.default_rng(1).normal(2.0, 1, 2000))
    assert continuous_shape(real, far) < continuous_shape(real, near) < 1.0
    # TVD by hand: real a/b = 0.5/0.5, synthetic 0.8/0.2 -> TVD 0.3 -> score 0.7
    assert categorical_shape(
        pd.Series(list("ab") * 5), pd.Series(list("aaaab") * 2)
    ) == pytest.approx(0.7)
    # a category that never appears in one of them still counts
    assert categorical_shape(pd.Series(["a", "b"]), pd.Series(["c", "c"])) == pytest.approx(0.0)


def test_pair_trends_detect_broken_correlation() -> None:
    frame = small_frame(1000)
    shuffled = frame.copy()
    rng = np.random.default_rng(0)
    for col in frame.columns:
        shuffled[col] = rng.permutation(frame[col].to_numpy())
    same = pair_trends(frame, frame.copy(), CONT, CAT)
    broken = pair_trends(frame, shuffled, CONT, CAT)
    assert len(same) == 10  # 5 columns -> 10 pairs
    assert min(same.values()) == pytest.approx(1.0)
    # income drives label: shuffling breaks that pair's trend
    assert broken["income|label"] < 0.8


def test_utility_of_real_vs_useless_training_data() -> None:
    train, test = small_frame(800, seed=1), small_frame(400, seed=2)
    good, pred = classifier_utility(train, test, "label", "yes", CONT, CAT)
    assert good.auc > 0.9 and pred.shape == (400,)
    noise = train.copy()
    noise["label"] = np.random.default_rng(3).permutation(noise["label"].to_numpy())
    bad, _ = classifier_utility(noise, test, "label", "yes", CONT, CAT)
    assert bad.auc < 0.7 < good.auc
    one_class = train.assign(label="no")
    degenerate, _ = classifier_utility(one_class, test, "label", "yes", CONT, CAT)
    assert degenerate.auc == 0.5


def test_privacy_flags_copies() -> None:
    train, holdout = small_frame(500, seed=1), small_frame(300, seed=2)
    copies = privacy(train, train.sample(300, random_state=0), holdout, CONT, CAT, sample=300)
    assert copies.exact_copy_share == 1.0
    assert copies.dcr_synthetic_median == 0.0
    fresh = privacy(train, small_frame(300, seed=5), holdout, CONT, CAT, sample=300)
    assert fresh.exact_copy_share == 0.0
    assert 0.5 < fresh.dcr_ratio < 2.0


def test_evaluate_and_report() -> None:
    train, holdout = small_frame(600, seed=1), small_frame(300, seed=2)
    result = evaluate(SPEC, train, holdout, small_frame(600, seed=3), privacy_sample=200)
    m = result.metrics
    for key in ("fidelity_column_shapes", "fidelity_pair_trends", "fidelity_quality"):
        assert 0.8 < m[key] <= 1.0
    assert 0.0 <= m["utility_tstr_auc"] <= 1.0 and 0.0 <= m["privacy_exact_copy_share"] <= 1.0
    assert m["utility_auc_ratio"] == pytest.approx(m["utility_tstr_auc"] / m["utility_trtr_auc"])
    html = render_html(SPEC, result, train, small_frame(600, seed=3))
    assert "data:image/png;base64," in html and "utility_tstr_auc" in html
