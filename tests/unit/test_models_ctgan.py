"""Unit tests for genops.workloads.tabular.models.ctgan.CTGANSynthesizer
(small frames, small networks)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import genops.workloads.tabular.models.base as base_module
from genops.workloads.tabular.models import (
    CTGANParams,
    CTGANSynthesizer,
    Synthesizer,
    TVAEParams,
    TVAESynthesizer,
    load_synthesizer,
)
from tests.conftest import small_frame

CATEGORICAL = ["group", "color", "label"]
CONTINUOUS = ["age", "income"]
CONDITIONAL = ["label", "group"]
COLUMNS = ["age", "income", "group", "color", "label"]
# 400 steps; learning rates 10x the defaults so they learn the label -> income link.
SMALL = CTGANParams(
    epochs=100,
    batch_size=100,
    embedding_dim=16,
    generator_dims=(32, 32),
    discriminator_dims=(32, 32),
    generator_lr=2e-3,
    discriminator_lr=2e-3,
)
HISTORY_KEYS = {"epoch", "loss", "generator", "discriminator", "gradient_penalty"}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny networks gain nothing from intra-op threads, and on a busy 2-core box two
    threads are several times slower than one; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """``small_frame``: ``label`` is ``yes`` iff ``income`` (modes ~20 and ~60) is high."""
    return small_frame()


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> CTGANSynthesizer:
    return CTGANSynthesizer(
        CATEGORICAL, CONTINUOUS, SMALL, conditional_columns=CONDITIONAL, seed=0, device="cpu"
    ).fit(frame, progress=False)


def _quick(seed: int = 0, epochs: int = 3, conditional: bool = True) -> CTGANSynthesizer:
    params = CTGANParams(
        epochs=epochs,
        batch_size=100,
        embedding_dim=8,
        generator_dims=(16,),
        discriminator_dims=(16,),
    )
    return CTGANSynthesizer(
        CATEGORICAL,
        CONTINUOUS,
        params,
        conditional_columns=CONDITIONAL if conditional else None,
        seed=seed,
        device="cpu",
    )


# ---------------------------------------------------------------------- params
def test_params_defaults_and_round_trip() -> None:
    p = CTGANParams()
    assert (p.epochs, p.batch_size, p.embedding_dim, p.pac, p.discriminator_steps) == (
        100,
        500,
        128,
        10,
        1,
    )
    assert p.generator_dims == (256, 256) and p.discriminator_dims == (256, 256)
    assert (p.generator_lr, p.discriminator_lr, p.weight_decay) == (2e-4, 2e-4, 1e-6)
    d = p.to_dict()
    assert d["generator_dims"] == [256, 256]
    assert CTGANParams.from_dict(json.loads(json.dumps(d))) == p


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"batch_size": 55}, "batch_size \\(55\\).*multiple of pac \\(10\\)"),
        ({"batch_size": 40, "pac": 3}, "multiple of pac \\(3\\)"),
        ({"epochs": 0}, "epochs"),
        ({"pac": 0}, "pac"),
        ({"generator_dims": (8, 0)}, "generator_dims"),
        ({"discriminator_lr": 0.0}, "discriminator_lr"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_bad_params_raise(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        CTGANParams(**kwargs)  # type: ignore[arg-type]


def test_params_from_dict() -> None:
    with pytest.raises(ValueError, match="bogus"):
        CTGANParams.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="multiple of pac"):
        CTGANParams.from_dict({"batch_size": 25})
    assert CTGANParams.from_dict({"generator_dims": [8, 8]}).generator_dims == (8, 8)
    assert CTGANParams(batch_size=20, pac=1).batch_size == 20


# ---------------------------------------------------------------------- sample shape/dtypes
def test_sample_columns_dtypes_and_categories(model: CTGANSynthesizer) -> None:
    out = model.sample(300, seed=1)
    assert len(out) == 300
    assert list(out.columns) == COLUMNS
    assert isinstance(out.index, pd.RangeIndex)
    assert out["age"].dtype == np.int64
    assert out["income"].dtype == np.float64
    for col in CATEGORICAL:
        assert all(type(v) is str for v in out[col])
        assert set(out[col]) <= set(model.categories[col])
    assert model.categories == {
        "group": ["a", "b"],
        "color": ["blue", "green", "red"],
        "label": ["no", "yes"],
    }
    assert model.columns == COLUMNS
    assert model.dtypes == {
        "age": "int64",
        "income": "float64",
        "group": "str",
        "color": "str",
        "label": "str",
    }


def test_sample_stays_in_training_range(model: CTGANSynthesizer, frame: pd.DataFrame) -> None:
    out = model.sample(1000, seed=2, batch_size=128)
    assert len(out) == 1000
    assert out["age"].between(frame["age"].min(), frame["age"].max()).all()
    assert out["income"].between(frame["income"].min(), frame["income"].max()).all()
    assert set(out["color"]) == {"blue", "green", "red"}


def test_protocol_and_repr(model: CTGANSynthesizer) -> None:
    assert isinstance(model, Synthesizer)
    assert "fitted on 400 rows" in repr(model)
    assert model.conditional_columns == CONDITIONAL
    assert model.fitted and not _quick().fitted
    assert _quick().columns == [] and _quick().categories == {}


# ---------------------------------------------------------------------- reproducibility
def test_same_seed_same_samples_and_different_seed_differs(frame: pd.DataFrame) -> None:
    a = _quick(seed=0).fit(frame, progress=False)
    b = _quick(seed=0).fit(frame, progress=False)
    pd.testing.assert_frame_equal(a.sample(200, seed=5), b.sample(200, seed=5))
    assert a.loss_history == b.loss_history
    c = _quick(seed=1).fit(frame, progress=False)
    assert not a.sample(200, seed=5).equals(c.sample(200, seed=5))
    assert not a.sample(200, seed=5).equals(a.sample(200, seed=6))


def test_fit_leaves_global_torch_rng_alone(frame: pd.DataFrame) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _quick(epochs=1).fit(frame, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_unseeded_calls_differ(model: CTGANSynthesizer) -> None:
    assert not model.sample(100).equals(model.sample(100))


# ---------------------------------------------------------------------- save / load
def test_save_load_round_trip(model: CTGANSynthesizer, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    for name in ("model.pt", "meta.json", "transformer.json", "transformer.npz"):
        assert (tmp_path / "m" / name).is_file()
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["class_name"] == "CTGANSynthesizer"
    assert meta["format_version"] == 1
    assert meta["columns"] == COLUMNS
    assert meta["conditional_columns"] == CONDITIONAL
    assert meta["params"]["generator_dims"] == [32, 32]
    assert sum(f["count"] for f in meta["condition_frequencies"]) == 400
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert set(state) == {"generator", "discriminator"}

    loaded = CTGANSynthesizer.load(tmp_path / "m", device="cpu")
    pd.testing.assert_frame_equal(loaded.sample(300, seed=11), model.sample(300, seed=11))
    cond = {"group": "b", "color": "green"}
    pd.testing.assert_frame_equal(
        loaded.sample(50, conditions=cond, seed=4), model.sample(50, conditions=cond, seed=4)
    )
    wanted = pd.DataFrame({"label": ["yes", "no", "no"]})
    pd.testing.assert_frame_equal(
        loaded.sample_conditions(wanted, seed=3), model.sample_conditions(wanted, seed=3)
    )
    assert loaded.loss_history == model.loss_history
    assert loaded.params == model.params
    assert loaded.categories == model.categories


def test_load_synthesizer_dispatches_to_ctgan(model: CTGANSynthesizer, tmp_path: Path) -> None:
    model.save(tmp_path)
    generic = load_synthesizer(tmp_path, device="cpu")
    assert isinstance(generic, CTGANSynthesizer)
    pd.testing.assert_frame_equal(generic.sample(100, seed=1), model.sample(100, seed=1))


def test_load_rejects_other_class(frame: pd.DataFrame, tmp_path: Path) -> None:
    tvae = TVAESynthesizer(
        CATEGORICAL, CONTINUOUS, TVAEParams(epochs=1, batch_size=200), device="cpu"
    ).fit(frame, progress=False)
    tvae.save(tmp_path)
    with pytest.raises(ValueError, match="TVAESynthesizer"):
        CTGANSynthesizer.load(tmp_path)
    assert isinstance(load_synthesizer(tmp_path, device="cpu"), TVAESynthesizer)


def test_not_fitted_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _quick().save(tmp_path)
    with pytest.raises(RuntimeError, match="not fitted"):
        _quick().sample(5)


# ---------------------------------------------------------------------- conditions
def test_conditional_sampling_fixes_value_and_conditions_the_model(
    model: CTGANSynthesizer,
) -> None:
    yes = model.sample(400, conditions={"label": "yes"}, seed=1)
    no = model.sample(400, conditions={"label": "no"}, seed=1)
    assert (yes["label"] == "yes").all() and (no["label"] == "no").all()
    # The generator saw the condition: income follows the label (training: yes iff > 40).
    assert (yes["income"] > 40).mean() - (no["income"] > 40).mean() > 0.25
    both = model.sample(50, conditions={"label": "no", "group": "b"}, seed=2)
    assert (both["label"] == "no").all() and (both["group"] == "b").all()


def test_generator_itself_honours_the_conditional_vector(model: CTGANSynthesizer) -> None:
    """Before the conditional columns are overwritten, the generator's own output for them
    already matches the conditional vector (the cross-entropy term of its loss)."""
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    codes = model._draw_condition_codes(1000, {}, rng)
    assert codes is not None
    raw = model.transformer.inverse_transform(
        model._generate_encoded(codes, 1000, rng, gen, batch_size=1000)
    )
    for j, col in enumerate(CONDITIONAL):
        wanted = np.asarray(model.categories[col], dtype=object)[codes[:, j]]
        assert (raw[col].to_numpy(dtype=object) == wanted).mean() > 0.95


def test_unconditioned_draws_follow_training_joint(
    model: CTGANSynthesizer, frame: pd.DataFrame
) -> None:
    out = model.sample(4000, seed=9)
    real = frame.groupby(CONDITIONAL).size() / len(frame)
    synthetic = out.groupby(CONDITIONAL).size() / len(out)
    pd.testing.assert_series_equal(synthetic, real, atol=0.03, check_names=False)


def test_rejection_sampling_for_non_conditional_column(model: CTGANSynthesizer) -> None:
    out = model.sample(120, conditions={"color": "green"}, seed=3)
    assert len(out) == 120
    assert (out["color"] == "green").all()
    both = model.sample(60, conditions={"color": "blue", "group": "b"}, seed=3)
    assert (both["color"] == "blue").all() and (both["group"] == "b").all()


def test_rejection_sampling_gives_up_on_rare_value(
    model: CTGANSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Budget of 1 * n generated rows: only met if every row is green (about a third are).
    monkeypatch.setattr(base_module, "_REJECTION_FACTOR", 1)
    monkeypatch.setattr(base_module, "_REJECTION_MIN_ROWS", 10)
    with pytest.raises(ValueError, match="too rare"):
        model.sample(500, conditions={"color": "green"}, seed=0, batch_size=100)


def test_sample_conditions_one_row_per_condition(model: CTGANSynthesizer) -> None:
    wanted = pd.DataFrame({"group": ["a", "b", "b"] * 50, "label": ["yes", "no", "yes"] * 50})
    out = model.sample_conditions(wanted, seed=2)
    assert len(out) == 150
    assert list(out.columns) == COLUMNS
    assert out["group"].tolist() == wanted["group"].tolist()
    assert out["label"].tolist() == wanted["label"].tolist()
    pd.testing.assert_frame_equal(out, model.sample_conditions(wanted, seed=2))
    only_label = model.sample_conditions(pd.DataFrame({"label": ["no"] * 20}), seed=1)
    assert (only_label["label"] == "no").all()


def test_sample_conditions_errors(model: CTGANSynthesizer, frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'color'.*not a conditional"):
        model.sample_conditions(pd.DataFrame({"color": ["red"]}))
    with pytest.raises(ValueError, match="'nope'.*unknown"):
        model.sample_conditions(pd.DataFrame({"nope": ["red"]}))
    with pytest.raises(ValueError, match="'z'.*'group'"):
        model.sample_conditions(pd.DataFrame({"group": ["a", "z"]}))
    with pytest.raises(ValueError, match="non-empty"):
        model.sample_conditions(pd.DataFrame({"group": []}))
    plain = _quick(epochs=1, conditional=False).fit(frame, progress=False)
    with pytest.raises(ValueError, match="conditional_columns"):
        plain.sample_conditions(pd.DataFrame({"group": ["a"]}))


@pytest.mark.parametrize(
    ("conditions", "pattern"),
    [
        ({"nope": "x"}, "'nope'"),
        ({"group": "z"}, "'z'.*'group'.*'a', 'b'"),
        ({"color": "purple"}, "'purple'.*'color'.*'blue'"),
        ({"age": "30"}, "continuous column 'age'"),
    ],
)
def test_bad_conditions_raise(
    model: CTGANSynthesizer, conditions: dict[str, str], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        model.sample(10, conditions=conditions)


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_n_raises(model: CTGANSynthesizer, n: int) -> None:
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(n)


def test_unconditional_model_samples_and_rejects(frame: pd.DataFrame) -> None:
    m = _quick(epochs=2, conditional=False).fit(frame, progress=False)
    assert m.conditional_columns == []
    out = m.sample(40, conditions={"label": "yes"}, seed=0)
    assert len(out) == 40 and (out["label"] == "yes").all()
    assert list(m.sample(10, seed=0).columns) == COLUMNS


def test_continuous_only_model() -> None:
    df = pd.DataFrame({"x": np.linspace(0.0, 1.0, 60), "k": [3] * 60})
    params = CTGANParams(epochs=2, batch_size=20, embedding_dim=4, generator_dims=(8,))
    m = CTGANSynthesizer([], ["x", "k"], params, device="cpu").fit(df, progress=False)
    out = m.sample(15, seed=0)
    assert (out["k"] == 3).all() and out["k"].dtype == np.int64
    assert out["x"].between(0.0, 1.0).all()


# ---------------------------------------------------------------------- fit behaviour
def test_losses_recorded_for_both_networks(model: CTGANSynthesizer) -> None:
    history = model.loss_history
    assert len(history) == SMALL.epochs
    assert [h["epoch"] for h in history] == list(range(SMALL.epochs))
    for h in history:
        assert set(h) == HISTORY_KEYS
        assert h["loss"] == h["generator"]
        assert all(math.isfinite(v) for v in h.values())
        assert h["gradient_penalty"] >= 0.0
    for key in ("generator", "discriminator", "gradient_penalty"):
        assert len({h[key] for h in history}) > 1


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
    with pytest.raises(ValueError, match="'age'.*numeric"):
        _quick().fit(frame.assign(age=frame["age"].astype(str)), progress=False)


def test_undeclared_columns_warn_and_are_dropped(frame: pd.DataFrame) -> None:
    with pytest.warns(UserWarning, match="'extra'"):
        m = _quick(epochs=1).fit(frame.assign(extra=1.0), progress=False)
    assert "extra" not in m.sample(5, seed=0).columns


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="'age'.*categorical"):
        CTGANSynthesizer(CATEGORICAL, CONTINUOUS, conditional_columns=["age"])
    with pytest.raises(ValueError, match="Duplicate"):
        CTGANSynthesizer(CATEGORICAL, CONTINUOUS, conditional_columns=["group", "group"])
    with pytest.raises(ValueError, match="both"):
        CTGANSynthesizer(["a"], ["a"])


def test_thread_env_var(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv("GENOPS_TORCH_THREADS", "2")
    try:
        _quick(epochs=1).fit(frame, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_callback_can_sample_the_model_in_training() -> None:
    """Tuning scores intermediate epochs: sampling inside the callback must work."""
    frame = small_frame(200)
    model = CTGANSynthesizer(
        ["group", "color", "label"],
        ["age", "income"],
        params=CTGANParams(epochs=2, batch_size=50, pac=10),
        seed=0,
    )
    sizes: list[int] = []
    model.fit(
        frame, on_epoch_end=lambda e, m: sizes.append(len(model.sample(30, seed=e))), progress=False
    )
    assert sizes == [30, 30]
    with_cb = model.sample(50, seed=3)
    plain = CTGANSynthesizer(
        ["group", "color", "label"],
        ["age", "income"],
        params=CTGANParams(epochs=2, batch_size=50, pac=10),
        seed=0,
    ).fit(frame, progress=False)
    pd.testing.assert_frame_equal(with_cb, plain.sample(50, seed=3))
