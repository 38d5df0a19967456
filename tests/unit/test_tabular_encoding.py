"""Unit tests for genops.workloads.tabular.models.tabular_encoding.TabularEncoder."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genops.workloads.tabular.models import TabularEncoder
from genops.workloads.tabular.models.tabular_encoding import (
    CategoricalColumnInfo,
    ContinuousColumnInfo,
)

CATEGORICAL = ["color", "group"]
CONTINUOUS = ["bimodal", "count", "zeros"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    group = rng.choice(["A", "B", "C"], size=n, p=[0.5, 0.3, 0.2])
    bimodal = np.where(rng.random(n) < 0.5, rng.normal(-5.0, 0.5, n), rng.normal(5.0, 0.5, n))
    zeros = np.where(rng.random(n) < 0.7, 0.0, rng.gamma(2.0, 100.0, n))
    # Column order interleaves kinds on purpose: the transformer must keep it.
    return pd.DataFrame(
        {
            "bimodal": bimodal,
            "color": rng.choice(["red", "green", "blue"], size=n),
            "count": rng.poisson(6.0, n).astype(np.int64),
            "group": group,
            "zeros": zeros,
        }
    )


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> TabularEncoder:
    return TabularEncoder(CATEGORICAL, CONTINUOUS, seed=0).fit(frame)


def _info(t: TabularEncoder, name: str) -> ContinuousColumnInfo | CategoricalColumnInfo:
    return next(i for i in t.column_infos if i.name == name)


def test_round_trip_recovers_values(frame: pd.DataFrame, fitted: TabularEncoder) -> None:
    encoded = fitted.transform(frame)
    assert encoded.dtype == np.float32
    assert encoded.shape == (len(frame), fitted.output_dimensions)
    decoded = fitted.inverse_transform(encoded)
    assert list(decoded.columns) == list(frame.columns)
    for col in CATEGORICAL:
        assert decoded[col].tolist() == frame[col].tolist()
    np.testing.assert_allclose(decoded["bimodal"], frame["bimodal"], atol=1e-3)
    np.testing.assert_array_equal(decoded["count"], frame["count"])
    np.testing.assert_allclose(decoded["zeros"], frame["zeros"], atol=1e-3)
    # Point mass decodes to exactly zero, not to something near it.
    assert ((decoded["zeros"] == 0.0) == (frame["zeros"] == 0.0)).all()


def test_output_dtypes(frame: pd.DataFrame, fitted: TabularEncoder) -> None:
    decoded = fitted.inverse_transform(fitted.transform(frame))
    assert decoded["count"].dtype == np.int64
    assert decoded["bimodal"].dtype == np.float64
    assert decoded["zeros"].dtype == np.float64
    for col in CATEGORICAL:
        assert all(type(v) is str for v in decoded[col])
        assert decoded[col].dtype == pd.Series(["x"], dtype="str").dtype


def test_bimodal_column_gets_two_modes(fitted: TabularEncoder) -> None:
    info = _info(fitted, "bimodal")
    assert isinstance(info, ContinuousColumnInfo)
    assert info.n_modes >= 2
    assert not info.is_point.any()
    assert info.means.min() < -3.0 and info.means.max() > 3.0
    assert np.isclose(info.weights.sum(), 1.0)


def test_zero_inflated_column_gets_point_mass(fitted: TabularEncoder) -> None:
    info = _info(fitted, "zeros")
    assert isinstance(info, ContinuousColumnInfo)
    assert info.is_point.sum() == 1
    assert info.means[info.is_point][0] == 0.0
    assert info.weights[info.is_point][0] == pytest.approx(0.7, abs=0.07)


def test_integer_detection(fitted: TabularEncoder) -> None:
    count, bimodal = _info(fitted, "count"), _info(fitted, "bimodal")
    assert isinstance(count, ContinuousColumnInfo) and count.is_integer
    assert isinstance(bimodal, ContinuousColumnInfo) and not bimodal.is_integer


def test_output_info_spans(fitted: TabularEncoder) -> None:
    spans = fitted.output_info
    assert sum(dim for dim, _ in spans) == fitted.output_dimensions
    assert {act for _, act in spans} == {"tanh", "softmax"}
    # One tanh + one softmax per continuous column, one softmax per categorical column.
    assert sum(act == "tanh" for _, act in spans) == len(CONTINUOUS)
    assert len(spans) == 2 * len(CONTINUOUS) + len(CATEGORICAL)
    assert fitted.categories == {"color": ["blue", "green", "red"], "group": ["A", "B", "C"]}


def test_inverse_clips_to_training_range(fitted: TabularEncoder, frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    arr = rng.normal(0.0, 50.0, size=(500, fitted.output_dimensions)).astype(np.float32)
    decoded = fitted.inverse_transform(arr)
    for col in CONTINUOUS:
        assert decoded[col].min() >= frame[col].min()
        assert decoded[col].max() <= frame[col].max()
    assert set(decoded["color"]) <= {"red", "green", "blue"}


def test_inverse_with_sigmas_adds_noise(fitted: TabularEncoder, frame: pd.DataFrame) -> None:
    encoded = fitted.transform(frame)
    sigmas = np.full(len(CONTINUOUS), 0.5)
    noisy = fitted.inverse_transform(encoded, sigmas=sigmas, rng=np.random.default_rng(0))
    assert not np.allclose(noisy["bimodal"], frame["bimodal"], atol=1e-2)
    with pytest.raises(ValueError, match="sigmas"):
        fitted.inverse_transform(encoded, sigmas=[0.1])


def test_mode_draws_follow_the_posterior_and_the_seed(
    frame: pd.DataFrame, fitted: TabularEncoder
) -> None:
    """Between the two modes of ``bimodal`` the mode is drawn, not picked: the draws follow
    the posterior, and the encoder's seed (not a global generator) decides them."""
    info = _info(fitted, "bimodal")
    assert isinstance(info, ContinuousColumnInfo) and info.n_modes == 2
    posterior = fitted._mode_posteriors(info, np.array([0.0]))[0]
    assert 0.2 < posterior.min() < 0.5  # a real choice between the two modes at 0.0
    between = pd.concat([frame] * 5, ignore_index=True).assign(bimodal=0.0)
    start, width = fitted.column_offsets()["bimodal"]
    encoded = fitted.transform(between)
    modes = encoded[:, start + 1 : start + width]
    assert (modes.sum(axis=1) == 1.0).all()
    # 2,000 draws: the share of each mode is its posterior (binomial sd about 0.01)
    np.testing.assert_allclose(modes.mean(axis=0), posterior, atol=0.05)
    # the same encoder draws the same modes every time ...
    np.testing.assert_array_equal(fitted.transform(between), encoded)
    # ... and the same mixtures under another seed draw other ones
    meta, arrays = fitted.to_state()
    reseeded = TabularEncoder.from_state({**meta, "seed": meta["seed"] + 1}, arrays)
    other = reseeded.transform(between)[:, start + 1 : start + width]
    assert (other != modes).any(axis=1).mean() > 0.2
    # refitting with the same seed gives the same mixtures, hence the same encoding
    again = TabularEncoder(CATEGORICAL, CONTINUOUS, seed=0).fit(frame)
    np.testing.assert_array_equal(again.transform(frame), fitted.transform(frame))


def test_missing_column_named(frame: pd.DataFrame, fitted: TabularEncoder) -> None:
    with pytest.raises(ValueError, match="'count'"):
        TabularEncoder(CATEGORICAL, CONTINUOUS).fit(frame.drop(columns=["count"]))
    with pytest.raises(ValueError, match="'group'"):
        fitted.transform(frame.drop(columns=["group"]))


def test_non_numeric_continuous_named(frame: pd.DataFrame) -> None:
    bad = frame.assign(count=frame["count"].astype(str))
    with pytest.raises(ValueError, match="'count'.*numeric"):
        TabularEncoder(CATEGORICAL, CONTINUOUS).fit(bad)


def test_unknown_category_named(frame: pd.DataFrame, fitted: TabularEncoder) -> None:
    bad = frame.copy()
    bad.loc[0, "color"] = "purple"
    with pytest.raises(ValueError, match="'color'.*purple"):
        fitted.transform(bad)


def test_missing_values_rejected(frame: pd.DataFrame) -> None:
    bad = frame.copy()
    bad.loc[3, "bimodal"] = np.nan
    with pytest.raises(ValueError, match="'bimodal'"):
        TabularEncoder(CATEGORICAL, CONTINUOUS).fit(bad)


def test_bad_declarations() -> None:
    with pytest.raises(ValueError, match="both"):
        TabularEncoder(["a"], ["a"])
    with pytest.raises(ValueError, match="At least one"):
        TabularEncoder([], [])


def test_state_round_trip(frame: pd.DataFrame, fitted: TabularEncoder, tmp_path: Path) -> None:
    meta, arrays = fitted.to_state()
    json.dumps(meta)  # plain JSON
    restored = TabularEncoder.from_state(json.loads(json.dumps(meta)), arrays)
    np.testing.assert_array_equal(restored.transform(frame), fitted.transform(frame))

    fitted.save(tmp_path)
    assert (tmp_path / "transformer.json").is_file()
    assert (tmp_path / "transformer.npz").is_file()
    loaded = TabularEncoder.load(tmp_path)
    encoded = fitted.transform(frame)
    pd.testing.assert_frame_equal(
        loaded.inverse_transform(encoded), fitted.inverse_transform(encoded)
    )

    unpickled = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(unpickled.transform(frame), encoded)


def test_mixture_of_a_large_column_is_fit_on_a_capped_seeded_subsample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above ``_GMM_MAX_FIT_ROWS`` values the mixture sees a seeded subsample of that size
    (what keeps fitting large tables affordable); the range and the encoding use every row."""
    from sklearn.mixture import BayesianGaussianMixture

    from genops.workloads.tabular.models import tabular_encoding

    fitted_rows: list[int] = []

    class SpyMixture(BayesianGaussianMixture):
        def fit(self, X: np.ndarray, y: object = None) -> SpyMixture:
            fitted_rows.append(len(X))
            return super().fit(X, y)

    monkeypatch.setattr(tabular_encoding, "BayesianGaussianMixture", SpyMixture)
    cap = tabular_encoding._GMM_MAX_FIT_ROWS
    rng = np.random.default_rng(3)
    n = 6 * cap
    df = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n)})
    df.loc[0, "x"], df.loc[1, "x"] = -50.0, 50.0  # two outliers a subsample would likely miss
    t = TabularEncoder(["c"], ["x"], seed=0).fit(df)
    assert fitted_rows == [cap]
    info = _info(t, "x")
    assert isinstance(info, ContinuousColumnInfo)
    assert (info.min, info.max) == (-50.0, 50.0)  # the range comes from every row
    inner = df.iloc[2:]  # the outliers sit beyond any mode's reach; the rest round-trips
    decoded = t.inverse_transform(t.transform(inner))
    np.testing.assert_allclose(decoded["x"], inner["x"], atol=1e-3)
    # the subsample is drawn from the encoder's seed: the same seed, the same mixture
    same = TabularEncoder(["c"], ["x"], seed=0).fit(df)
    np.testing.assert_array_equal(_info(same, "x").means, info.means)
    # at or below the cap, every row is used
    fitted_rows.clear()
    TabularEncoder(["c"], ["x"], seed=0).fit(df.iloc[:cap])
    assert fitted_rows == [cap]
    fitted_rows.clear()
    TabularEncoder(["c"], ["x"], seed=0).fit(df.iloc[: cap // 2])
    assert fitted_rows == [cap // 2]
