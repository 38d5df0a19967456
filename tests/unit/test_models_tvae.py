"""Unit tests for genops.workloads.tabular.models.tvae.TVAESynthesizer
(small frames, small networks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import genops.workloads.tabular.models.base as base_module
from genops.workloads.tabular.models import (
    Synthesizer,
    TVAEParams,
    TVAESynthesizer,
    load_synthesizer,
    resolve_device,
)

CATEGORICAL = ["group", "color"]
CONTINUOUS = ["bimodal", "count"]
CONDITIONAL = ["group"]
COLUMNS = ["bimodal", "group", "count", "color"]
SMALL = TVAEParams(
    epochs=60,
    batch_size=100,
    embedding_dim=16,
    compress_dims=(64, 64),
    decompress_dims=(64, 64),
)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny networks gain nothing from intra-op threads, and on a busy 2-core box two
    threads are several times slower than one; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """``bimodal`` is around -5 for group A and +5 otherwise, so conditioning is learnable."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], size=n, p=[0.6, 0.4])
    bimodal = np.where(group == "A", rng.normal(-5.0, 0.5, n), rng.normal(5.0, 0.5, n))
    color = np.where(rng.random(n) < 0.75, np.where(group == "A", "red", "blue"), "green")
    return pd.DataFrame(
        {
            "bimodal": bimodal,
            "group": group,
            "count": rng.poisson(6.0, n).astype(np.int64),
            "color": color,
        }
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> TVAESynthesizer:
    return TVAESynthesizer(
        CATEGORICAL, CONTINUOUS, SMALL, conditional_columns=CONDITIONAL, seed=0, device="cpu"
    ).fit(frame, progress=False)


def _quick(seed: int = 0, epochs: int = 4) -> TVAESynthesizer:
    params = TVAEParams(
        epochs=epochs, batch_size=100, embedding_dim=8, compress_dims=(32,), decompress_dims=(32,)
    )
    return TVAESynthesizer(
        CATEGORICAL, CONTINUOUS, params, conditional_columns=CONDITIONAL, seed=seed, device="cpu"
    )


# ---------------------------------------------------------------------- sample shape/dtypes
def test_sample_columns_dtypes_and_categories(model: TVAESynthesizer) -> None:
    out = model.sample(300, seed=1)
    assert len(out) == 300
    assert list(out.columns) == COLUMNS
    assert isinstance(out.index, pd.RangeIndex)
    assert out["count"].dtype == np.int64
    assert out["bimodal"].dtype == np.float64
    for col in CATEGORICAL:
        assert all(type(v) is str for v in out[col])
        assert set(out[col]) <= set(model.categories[col])
    assert model.categories == {"group": ["A", "B"], "color": ["blue", "green", "red"]}
    assert model.columns == COLUMNS
    assert model.dtypes == {"bimodal": "float64", "group": "str", "count": "int64", "color": "str"}


def test_sample_spans_training_range_and_both_modes(
    model: TVAESynthesizer, frame: pd.DataFrame
) -> None:
    out = model.sample(1000, seed=2)
    assert out["count"].between(frame["count"].min(), frame["count"].max()).all()
    assert (out["bimodal"] < 0).mean() == pytest.approx((frame["bimodal"] < 0).mean(), abs=0.15)


def test_batch_size_smaller_than_n(model: TVAESynthesizer) -> None:
    out = model.sample(250, seed=3, batch_size=64)
    assert len(out) == 250


def test_protocol_and_repr(model: TVAESynthesizer) -> None:
    assert isinstance(model, Synthesizer)
    assert "fitted on 400 rows" in repr(model)
    assert model.conditional_columns == CONDITIONAL


# ---------------------------------------------------------------------- reproducibility
def test_same_seed_same_samples_and_different_seed_differs(frame: pd.DataFrame) -> None:
    a = _quick(seed=0).fit(frame, progress=False)
    b = _quick(seed=0).fit(frame, progress=False)
    pd.testing.assert_frame_equal(a.sample(200, seed=5), b.sample(200, seed=5))
    assert a.loss_history == b.loss_history
    c = _quick(seed=1).fit(frame, progress=False)
    assert not a.sample(200, seed=5).equals(c.sample(200, seed=5))
    assert not a.sample(200, seed=5).equals(a.sample(200, seed=6))


def test_unseeded_calls_differ(model: TVAESynthesizer) -> None:
    assert not model.sample(100).equals(model.sample(100))


# ---------------------------------------------------------------------- save / load
def test_save_load_round_trip(model: TVAESynthesizer, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    for name in ("model.pt", "meta.json", "transformer.json", "transformer.npz"):
        assert (tmp_path / "m" / name).is_file()
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["class_name"] == "TVAESynthesizer"
    assert meta["format_version"] == 1
    assert meta["columns"] == COLUMNS
    assert meta["conditional_columns"] == CONDITIONAL
    assert meta["params"]["compress_dims"] == [64, 64]
    assert sum(f["count"] for f in meta["condition_frequencies"]) == 400

    loaded = TVAESynthesizer.load(tmp_path / "m", device="cpu")
    pd.testing.assert_frame_equal(loaded.sample(300, seed=11), model.sample(300, seed=11))
    cond = {"group": "B", "color": "green"}
    pd.testing.assert_frame_equal(
        loaded.sample(50, conditions=cond, seed=4), model.sample(50, conditions=cond, seed=4)
    )
    assert loaded.loss_history == model.loss_history
    assert loaded.params == model.params

    generic = load_synthesizer(tmp_path / "m", device="cpu")
    assert isinstance(generic, TVAESynthesizer)
    pd.testing.assert_frame_equal(generic.sample(100, seed=1), model.sample(100, seed=1))


def test_load_rejects_other_class(model: TVAESynthesizer, tmp_path: Path) -> None:
    model.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["class_name"] = "NoSuchSynthesizer"
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="NoSuchSynthesizer"):
        load_synthesizer(tmp_path)
    with pytest.raises(ValueError, match="NoSuchSynthesizer"):
        TVAESynthesizer.load(tmp_path)


def test_save_before_fit_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _quick().save(tmp_path)
    with pytest.raises(RuntimeError, match="not fitted"):
        _quick().sample(5)


# ---------------------------------------------------------------------- conditions
def test_conditional_sampling_fixes_value_and_conditions_the_model(
    model: TVAESynthesizer,
) -> None:
    a = model.sample(400, conditions={"group": "A"}, seed=1)
    b = model.sample(400, conditions={"group": "B"}, seed=1)
    assert (a["group"] == "A").all() and (b["group"] == "B").all()
    # The decoder saw the condition: bimodal follows the group (training: A ~ -5, B ~ +5).
    assert (a["bimodal"] < 0).mean() > 0.7
    assert (b["bimodal"] > 0).mean() > 0.7


def test_unconditioned_draws_follow_training_frequencies(model: TVAESynthesizer) -> None:
    out = model.sample(2000, seed=9)
    assert (out["group"] == "A").mean() == pytest.approx(0.6, abs=0.05)


def test_rejection_sampling_for_non_conditional_column(model: TVAESynthesizer) -> None:
    out = model.sample(120, conditions={"color": "green"}, seed=3)
    assert len(out) == 120
    assert (out["color"] == "green").all()
    both = model.sample(60, conditions={"color": "blue", "group": "B"}, seed=3)
    assert (both["color"] == "blue").all() and (both["group"] == "B").all()


def test_rejection_sampling_gives_up_on_rare_value(
    model: TVAESynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Budget of 2 * n generated rows: needs a 50 % hit rate, green is ~25 % of the data.
    monkeypatch.setattr(base_module, "_REJECTION_FACTOR", 2)
    monkeypatch.setattr(base_module, "_REJECTION_MIN_ROWS", 10)
    with pytest.raises(ValueError, match="too rare"):
        model.sample(500, conditions={"color": "green"}, seed=0, batch_size=100)


def test_sample_conditions_one_row_per_condition(model: TVAESynthesizer) -> None:
    wanted = pd.DataFrame({"group": ["A", "B"] * 150})
    out = model.sample_conditions(wanted, seed=2)
    assert len(out) == 300
    assert list(out.columns) == COLUMNS
    assert out["group"].tolist() == wanted["group"].tolist()
    pd.testing.assert_frame_equal(out, model.sample_conditions(wanted, seed=2))


def test_sample_conditions_errors(model: TVAESynthesizer, frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'color'.*not a conditional"):
        model.sample_conditions(pd.DataFrame({"color": ["red"]}))
    with pytest.raises(ValueError, match="'Z'.*'group'"):
        model.sample_conditions(pd.DataFrame({"group": ["A", "Z"]}))
    with pytest.raises(ValueError, match="non-empty"):
        model.sample_conditions(pd.DataFrame({"group": []}))
    plain = TVAESynthesizer(CATEGORICAL, CONTINUOUS, SMALL, device="cpu")
    plain.fit(frame.iloc[:50], progress=False)
    with pytest.raises(ValueError, match="conditional_columns"):
        plain.sample_conditions(pd.DataFrame({"group": ["A"]}))


@pytest.mark.parametrize(
    ("conditions", "pattern"),
    [
        ({"nope": "x"}, "'nope'"),
        ({"group": "Z"}, "'Z'.*'group'.*'A', 'B'"),
        ({"color": "purple"}, "'purple'.*'color'.*'blue'"),
        ({"count": "3"}, "continuous column 'count'"),
    ],
)
def test_bad_conditions_raise(
    model: TVAESynthesizer, conditions: dict[str, str], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        model.sample(10, conditions=conditions)


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_n_raises(model: TVAESynthesizer, n: int) -> None:
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(n)


# ---------------------------------------------------------------------- fit behaviour
def test_loss_history_and_decrease(model: TVAESynthesizer) -> None:
    history = model.loss_history
    assert len(history) == SMALL.epochs
    assert [h["epoch"] for h in history] == list(range(SMALL.epochs))
    assert set(history[0]) == {"epoch", "loss", "reconstruction", "kld"}
    for h in history:
        assert h["loss"] == pytest.approx(h["reconstruction"] + h["kld"])
    assert history[-1]["loss"] < history[0]["loss"] - 1.0


def test_callback_once_per_epoch(frame: pd.DataFrame) -> None:
    calls: list[tuple[int, dict[str, float]]] = []
    m = _quick(epochs=3).fit(frame, on_epoch_end=lambda e, met: calls.append((e, met)))
    assert [e for e, _ in calls] == [0, 1, 2]
    assert [met for _, met in calls] == m.loss_history


def test_callback_exception_stops_fit(frame: pd.DataFrame) -> None:
    class Stop(Exception):
        pass

    seen: list[int] = []

    def callback(epoch: int, metrics: dict[str, float]) -> None:
        seen.append(epoch)
        if epoch == 1:
            raise Stop

    m = _quick(epochs=10)
    with pytest.raises(Stop):
        m.fit(frame, on_epoch_end=callback, progress=False)
    assert seen == [0, 1]
    assert len(m.loss_history) == 2
    assert not m.fitted


def test_missing_column_at_fit_named(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'color'"):
        _quick().fit(frame.drop(columns=["color"]), progress=False)


def test_non_numeric_continuous_at_fit_named(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'count'.*numeric"):
        _quick().fit(frame.assign(count=frame["count"].astype(str)), progress=False)


def test_undeclared_columns_warn_and_are_dropped(frame: pd.DataFrame) -> None:
    with pytest.warns(UserWarning, match="'extra'"):
        m = _quick(epochs=1).fit(frame.assign(extra=1.0), progress=False)
    assert "extra" not in m.sample(5, seed=0).columns


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="'count'.*categorical"):
        TVAESynthesizer(CATEGORICAL, CONTINUOUS, conditional_columns=["count"])
    with pytest.raises(ValueError, match="both"):
        TVAESynthesizer(["a"], ["a"])
    with pytest.raises(ValueError, match="epochs"):
        TVAEParams(epochs=0)
    with pytest.raises(ValueError, match="bogus"):
        TVAEParams.from_dict({"bogus": 1})
    assert TVAEParams.from_dict({"compress_dims": [8, 8]}).compress_dims == (8, 8)


def test_thread_env_var(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv("GENOPS_TORCH_THREADS", "2")
    try:
        _quick(epochs=1).fit(frame, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_unconditional_model_and_single_continuous_value() -> None:
    df = pd.DataFrame({"c": ["x", "y"] * 40, "k": [3] * 80})
    m = TVAESynthesizer(["c"], ["k"], TVAEParams(epochs=2, batch_size=32), device="cpu")
    out = m.fit(df, progress=False).sample(20, conditions={"c": "y"}, seed=0)
    assert (out["k"] == 3).all() and (out["c"] == "y").all()
    assert out["k"].dtype == np.int64


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError):
        resolve_device("not-a-device")
