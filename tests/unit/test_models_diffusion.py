"""Unit tests for genops.workloads.tabular.models.diffusion.DiffusionSynthesizer
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

from genops.workloads.tabular.models import Synthesizer, load_synthesizer
from genops.workloads.tabular.models.diffusion import (
    DiffusionParams,
    DiffusionSynthesizer,
    cosine_alphas_cumprod,
)
from tests.conftest import small_frame

CATEGORICAL = ["group", "color", "label"]
CONTINUOUS = ["age", "income"]
CONDITIONAL = ["label", "group"]
COLUMNS = ["age", "income", "group", "color", "label"]
# 4 batches x 150 epochs = 600 steps: enough for the label -> income link.
SMALL = DiffusionParams(
    epochs=150,
    batch_size=100,
    hidden_dims=(64, 64),
    learning_rate=3e-3,
    num_timesteps=200,
    sample_steps=20,
    ema_decay=0.99,
)
HISTORY_KEYS = {"epoch", "loss", "numeric", "categorical"}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """``small_frame``: ``label`` is ``yes`` iff ``income`` (modes ~20 and ~60) is high."""
    return small_frame()


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> DiffusionSynthesizer:
    return DiffusionSynthesizer(
        CATEGORICAL, CONTINUOUS, SMALL, conditional_columns=CONDITIONAL, seed=0, device="cpu"
    ).fit(frame, progress=False)


def _quick(seed: int = 0, epochs: int = 2, conditional: bool = True) -> DiffusionSynthesizer:
    params = DiffusionParams(
        epochs=epochs, batch_size=100, hidden_dims=(16,), num_timesteps=50, sample_steps=5
    )
    return DiffusionSynthesizer(
        CATEGORICAL,
        CONTINUOUS,
        params,
        conditional_columns=CONDITIONAL if conditional else None,
        seed=seed,
        device="cpu",
    )


# ---------------------------------------------------------------------- params, schedule
def test_params_defaults_and_round_trip() -> None:
    p = DiffusionParams()
    assert (p.epochs, p.batch_size, p.hidden_dims) == (400, 1024, (512, 512, 512))
    assert (p.num_timesteps, p.sample_steps, p.eta, p.ema_decay) == (1000, 50, 1.0, 0.999)
    d = p.to_dict()
    assert d["hidden_dims"] == [512, 512, 512]
    assert DiffusionParams.from_dict(json.loads(json.dumps(d))) == p


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"epochs": 0}, "epochs"),
        ({"hidden_dims": (8, 0)}, "hidden_dims"),
        ({"hidden_dims": ()}, "hidden_dims"),
        ({"sample_steps": 20, "num_timesteps": 10}, "sample_steps \\(20\\).*num_timesteps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"dropout": 1.0}, "dropout"),
        ({"eta": 1.5}, "eta"),
        ({"ema_decay": 1.0}, "ema_decay"),
    ],
)
def test_bad_params_raise(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        DiffusionParams(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bogus"):
        DiffusionParams.from_dict({"bogus": 1})


def test_cosine_schedule() -> None:
    abar = cosine_alphas_cumprod(1000)
    assert abar.shape == (1000,)
    assert np.all(np.diff(abar) < 0)
    assert abar[0] > 0.999 and abar[-1] < 1e-3
    # Nichol and Dhariwal: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi/2)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert abar[499] == pytest.approx(f(500) / f(0), rel=1e-9)


def test_sampling_plan_spans_the_schedule(model: DiffusionSynthesizer) -> None:
    plan = model._sampling_plan()
    assert len(plan) == SMALL.sample_steps
    ts = [t for t, _, _ in plan]
    assert ts[0] == SMALL.num_timesteps - 1 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    # each step goes to the next step's alpha_bar; the last to the clean data
    assert [nxt for _, _, nxt in plan[:-1]] == [a for _, a, _ in plan[1:]]
    assert plan[-1][2] == 1.0


# ---------------------------------------------------------------------- samples
def test_sample_columns_dtypes_and_range(model: DiffusionSynthesizer, frame: pd.DataFrame) -> None:
    out = model.sample(500, seed=1, batch_size=128)
    assert len(out) == 500 and list(out.columns) == COLUMNS
    assert isinstance(out.index, pd.RangeIndex)
    assert out["age"].dtype == np.int64 and out["income"].dtype == np.float64
    for col in CATEGORICAL:
        assert all(type(v) is str for v in out[col])
    assert set(out["color"]) == {"blue", "green", "red"}
    assert out["age"].between(frame["age"].min(), frame["age"].max()).all()
    assert out["income"].between(frame["income"].min(), frame["income"].max()).all()
    assert isinstance(model, Synthesizer)
    assert "fitted on 400 rows" in repr(model)


def test_learns_the_marginals(model: DiffusionSynthesizer, frame: pd.DataFrame) -> None:
    """Income is bimodal (about 20 and 60, half each); age uniform on 18..69."""
    out = model.sample(2000, seed=3)
    high = (out["income"] > 40).mean()
    assert abs(high - (frame["income"] > 40).mean()) < 0.08
    assert abs(out.loc[out["income"] < 40, "income"].mean() - 20) < 4
    assert abs(out.loc[out["income"] > 40, "income"].mean() - 60) < 6
    assert abs(out["age"].mean() - frame["age"].mean()) < 4
    for value, share in frame["color"].value_counts(normalize=True).items():
        assert abs((out["color"] == value).mean() - share) < 0.06


def test_conditional_sampling_fixes_value_and_conditions_the_model(
    model: DiffusionSynthesizer,
) -> None:
    yes = model.sample(400, conditions={"label": "yes"}, seed=1)
    no = model.sample(400, conditions={"label": "no"}, seed=1)
    assert (yes["label"] == "yes").all() and (no["label"] == "no").all()
    # The denoiser saw the condition: income follows the label (training: yes iff > 40).
    assert (yes["income"] > 40).mean() - (no["income"] > 40).mean() > 0.5


def test_denoiser_itself_honours_the_condition(model: DiffusionSynthesizer) -> None:
    """Before the conditional columns are overwritten, the generated one-hot blocks of the
    conditional columns already agree with the condition."""
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    codes = model._draw_condition_codes(1000, {}, rng)
    assert codes is not None
    raw = model.transformer.inverse_transform(
        model._generate_encoded(codes, 1000, rng, gen, batch_size=1000)
    )
    for j, col in enumerate(CONDITIONAL):
        wanted = np.asarray(model.categories[col], dtype=object)[codes[:, j]]
        assert (raw[col].to_numpy(dtype=object) == wanted).mean() > 0.9


def test_unconditioned_draws_follow_training_joint(
    model: DiffusionSynthesizer, frame: pd.DataFrame
) -> None:
    out = model.sample(4000, seed=9)
    real = frame.groupby(CONDITIONAL).size() / len(frame)
    synthetic = out.groupby(CONDITIONAL).size() / len(out)
    pd.testing.assert_series_equal(synthetic, real, atol=0.03, check_names=False)


def test_rejection_sampling_and_sample_conditions(model: DiffusionSynthesizer) -> None:
    out = model.sample(60, conditions={"color": "green", "group": "b"}, seed=3)
    assert (out["color"] == "green").all() and (out["group"] == "b").all()
    wanted = pd.DataFrame({"label": ["yes", "no", "yes"] * 10})
    rows = model.sample_conditions(wanted, seed=2)
    assert rows["label"].tolist() == wanted["label"].tolist()
    pd.testing.assert_frame_equal(rows, model.sample_conditions(wanted, seed=2))


def test_batched_requests_match_requests_alone(model: DiffusionSynthesizer) -> None:
    """A server's micro-batch: each request draws from its own generators, so a seed gives
    the same rows alone or batched with others."""
    requests = [(30, None, 1), (20, {"label": "yes"}, 2), (10, {"group": "b"}, 3)]
    batched = model.sample_arrays_many(requests)
    for (n, conditions, seed), got in zip(requests, batched, strict=True):
        assert isinstance(got, dict)
        alone = model.sample(n, conditions=conditions, seed=seed)
        for col in CATEGORICAL:
            assert got[col].tolist() == alone[col].tolist()
        np.testing.assert_allclose(got["income"], alone["income"], rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------------- reproducibility
def test_same_seed_same_model_and_samples(frame: pd.DataFrame) -> None:
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


# ---------------------------------------------------------------------- fit behaviour
def test_losses_recorded_and_falling(model: DiffusionSynthesizer) -> None:
    history = model.loss_history
    assert [h["epoch"] for h in history] == list(range(SMALL.epochs))
    for h in history:
        assert set(h) == HISTORY_KEYS
        assert all(math.isfinite(v) for v in h.values())
        assert h["loss"] == pytest.approx(h["numeric"] + h["categorical"])
    first = np.mean([h["loss"] for h in history[:10]])
    last = np.mean([h["loss"] for h in history[-10:]])
    assert last < 0.8 * first


def test_callback_can_sample_and_exception_unfits(frame: pd.DataFrame) -> None:
    sizes: list[int] = []
    m = _quick(epochs=2)
    m.fit(frame, on_epoch_end=lambda e, _: sizes.append(len(m.sample(30, seed=e))))
    assert sizes == [30, 30]
    pd.testing.assert_frame_equal(
        m.sample(50, seed=3), _quick(epochs=2).fit(frame, progress=False).sample(50, seed=3)
    )

    class Stop(Exception):
        pass

    def stop(epoch: int, _: dict[str, float]) -> None:
        if epoch == 1:
            raise Stop

    m = _quick(epochs=5)
    with pytest.raises(Stop):
        m.fit(frame, on_epoch_end=stop, progress=False)
    assert len(m.loss_history) == 2 and not m.fitted


def test_continuous_only_and_unconditional_models(frame: pd.DataFrame) -> None:
    df = pd.DataFrame({"x": np.linspace(0.0, 1.0, 60), "k": [3] * 60})
    params = DiffusionParams(
        epochs=2, batch_size=20, hidden_dims=(8,), num_timesteps=20, sample_steps=4
    )
    m = DiffusionSynthesizer([], ["x", "k"], params, device="cpu").fit(df, progress=False)
    out = m.sample(15, seed=0)
    assert (out["k"] == 3).all() and out["k"].dtype == np.int64
    assert out["x"].between(0.0, 1.0).all()
    plain = _quick(conditional=False).fit(frame, progress=False)
    assert plain.conditional_columns == []
    assert (plain.sample(20, conditions={"label": "yes"}, seed=0)["label"] == "yes").all()


def test_not_fitted_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _quick().save(tmp_path)
    with pytest.raises(RuntimeError, match="not fitted"):
        _quick().sample(5)


# ---------------------------------------------------------------------- save / load
def test_save_load_round_trip(model: DiffusionSynthesizer, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["class_name"] == "DiffusionSynthesizer"
    assert meta["params"]["hidden_dims"] == [64, 64]
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert set(state) == {"denoiser"}
    assert {"scalar_mean", "scalar_std"} <= set(state["denoiser"])

    loaded = load_synthesizer(tmp_path / "m", device="cpu")
    assert isinstance(loaded, DiffusionSynthesizer)
    pd.testing.assert_frame_equal(loaded.sample(300, seed=11), model.sample(300, seed=11))
    cond = {"group": "b", "label": "yes"}
    pd.testing.assert_frame_equal(
        loaded.sample(50, conditions=cond, seed=4), model.sample(50, conditions=cond, seed=4)
    )
    assert loaded.loss_history == model.loss_history and loaded.params == model.params


# ---------------------------------------------------------------------- config
def test_the_run_config_selects_and_tunes_the_family(tmp_path: Path) -> None:
    import yaml

    from genops.core.config import load_config, load_raw_config
    from genops.workloads.tabular.steps import build_synthesizer
    from tests.conftest import ADULT_FAST_CONFIG

    raw = load_raw_config(ADULT_FAST_CONFIG)
    raw["dataset"]["sources"] = [
        str((ADULT_FAST_CONFIG.parent / s).resolve()) for s in raw["dataset"]["sources"]
    ]
    raw["model"] = {"family": "diffusion", "hidden_dims": [32, 32], "sample_steps": 10}
    raw["tuning"]["search_space"] = {
        "family": {"type": "categorical", "choices": ["tvae", "diffusion"]},
        "diffusion.dropout": {"type": "float", "low": 0.0, "high": 0.2},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    synthesizer = build_synthesizer(config, {"dropout": 0.1})
    assert isinstance(synthesizer, DiffusionSynthesizer)
    assert synthesizer.params.hidden_dims == (32, 32) and synthesizer.params.dropout == 0.1
    raw["model"] = {"family": "diffusion", "num_timesteps": 10, "sample_steps": 20}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="sample_steps \\(20\\) must be <= num_timesteps"):
        load_config(path)
