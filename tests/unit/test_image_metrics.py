"""genops.workloads.image.metrics: Fréchet distance, class-mix distances, the domain classifier
and CAS."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from genops.workloads.image.metrics import (
    CASResult,
    DomainClassifier,
    class_distribution,
    classification_accuracy_score,
    fairness_discrepancy,
    flatten,
    frechet_distance,
    total_variation,
)

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Split:
    """Digits as the pipeline sees them: (N, 1, 8, 8) in [-1, 1], stratified 75/25 split."""
    data = load_digits()
    images = (data.images / 16.0 * 2.0 - 1.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, data.target, test_size=0.25, stratify=data.target, random_state=42
    )
    return x_tr, x_te, y_tr, y_te


@pytest.fixture(scope="module")
def classifier(digits: Split) -> DomainClassifier:
    x_tr, _, y_tr, _ = digits
    return DomainClassifier(hidden=128, seed=0).fit(x_tr, y_tr)


# --------------------------------------------------------------------------- flatten


def test_flatten_shape_and_dtype() -> None:
    images = np.zeros((5, 3, 4, 4), dtype=np.float64)
    flat = flatten(images)
    assert flat.shape == (5, 48) and flat.dtype == np.float32


# --------------------------------------------------------------------------- Fréchet distance


def test_frechet_identical_sets_is_zero() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_grows_monotonically_with_shift() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 8))
    b = rng.normal(size=(500, 8))
    values = [frechet_distance(a, a + s) for s in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-8)
    assert all(x < y for x, y in itertools.pairwise(values)), values
    # a pure shift adds exactly ||shift||^2 to the mean term
    base = frechet_distance(a, b)
    assert frechet_distance(a, b + 1.0) - base == pytest.approx(
        8.0 + 2 * float((b.mean(0) - a.mean(0)).sum()), rel=1e-6
    )


def test_frechet_symmetric() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 6))
    b = rng.normal(loc=0.3, scale=1.5, size=(250, 6))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)


def test_frechet_one_dimensional_matches_closed_form() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=1000)
    z = rng.normal(-1.0, 0.5, size=800)
    expected = (x.mean() - z.mean()) ** 2 + (x.std(ddof=1) - z.std(ddof=1)) ** 2
    assert frechet_distance(x, z) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(x[:, None], z[:, None]) == pytest.approx(expected, rel=1e-9)


def test_frechet_singular_covariance_is_finite_and_nonnegative() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(10, 40))  # fewer rows than features: rank-deficient covariances
    b = rng.normal(size=(12, 40))
    b[:, :5] = 0.0  # dead units
    value = frechet_distance(a, b)
    assert math.isfinite(value) and value >= 0.0


def test_frechet_needs_two_rows() -> None:
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros((4, 3)), np.zeros((5, 2)))


# --------------------------------------------------------------------------- class mixes


def test_total_variation_and_fairness_discrepancy_by_hand() -> None:
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.3, 0.5])
    assert total_variation(p, q) == pytest.approx(0.3)
    assert fairness_discrepancy(p, q) == pytest.approx(math.sqrt(0.09 + 0.09))
    assert total_variation(p, p) == 0.0 and fairness_discrepancy(p, p) == 0.0
    uniform = np.full(4, 0.25)
    collapsed = np.array([1.0, 0.0, 0.0, 0.0])
    assert total_variation(collapsed, uniform) == pytest.approx(0.75)
    assert fairness_discrepancy(collapsed, uniform) == pytest.approx(math.sqrt(0.75))
    with pytest.raises(ValueError):
        total_variation(p, uniform)


def test_class_distribution() -> None:
    shares = class_distribution(np.array([0, 0, 1, 3]), 5)
    np.testing.assert_allclose(shares, [0.5, 0.25, 0.0, 0.25, 0.0])
    assert shares.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(class_distribution(np.array([], dtype=int), 3), np.zeros(3))
    with pytest.raises(ValueError):
        class_distribution(np.array([0, 3]), 3)


# --------------------------------------------------------------------------- domain classifier


def test_domain_classifier_on_digits(digits: Split, classifier: DomainClassifier) -> None:
    _, x_te, _, y_te = digits
    assert classifier.accuracy(x_te, y_te) >= 0.93
    feats = classifier.features(x_te)
    assert feats.shape == (len(x_te), 128) and (feats >= 0).all()
    pred = classifier.predict(x_te[:7])
    assert pred.shape == (7,) and pred.dtype.kind == "i"
    proba = classifier.predict_proba(x_te[:7])
    assert proba.shape == (7, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), pred)


def test_domain_classifier_is_seeded(digits: Split, classifier: DomainClassifier) -> None:
    x_tr, x_te, y_tr, _ = digits
    again = DomainClassifier(hidden=128, seed=0).fit(x_tr, y_tr)
    np.testing.assert_allclose(again.features(x_te[:20]), classifier.features(x_te[:20]))


def test_domain_classifier_unfitted_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        DomainClassifier().predict(np.zeros((2, 1, 8, 8)))


def test_frechet_in_feature_space_separates_noise(
    digits: Split, classifier: DomainClassifier
) -> None:
    x_tr, x_te, _, _ = digits
    real = classifier.features(x_tr)
    holdout = frechet_distance(classifier.features(x_te), real)
    noise = np.random.default_rng(0).uniform(-1, 1, size=x_te.shape).astype(np.float32)
    assert holdout < 0.1 * frechet_distance(classifier.features(noise), real)


# --------------------------------------------------------------------------- CAS


def test_cas_with_real_training_data(digits: Split) -> None:
    x_tr, x_te, y_tr, y_te = digits
    result = classification_accuracy_score(x_tr, y_tr, x_te, y_te, num_classes=10)
    assert isinstance(result, CASResult)
    assert result.accuracy >= 0.95
    assert sorted(result.per_class) == list(range(10))
    assert all(0.0 <= v <= 1.0 for v in result.per_class.values())
    assert result.n_train == len(y_tr)


def test_cas_single_class_training_set_is_low(digits: Split) -> None:
    x_tr, x_te, y_tr, y_te = digits
    only_threes = y_tr == 3
    result = classification_accuracy_score(
        x_tr[only_threes], y_tr[only_threes], x_te, y_te, num_classes=10
    )
    assert result.accuracy < 0.2
    assert result.per_class[3] == 1.0 and result.per_class[0] == 0.0


def test_cas_per_class_omits_classes_absent_from_test(digits: Split) -> None:
    x_tr, x_te, y_tr, y_te = digits
    keep = y_te != 5
    result = classification_accuracy_score(x_tr, y_tr, x_te[keep], y_te[keep], num_classes=10)
    assert 5 not in result.per_class and len(result.per_class) == 9
    assert not any(math.isnan(v) for v in result.per_class.values())
