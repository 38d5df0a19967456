"""Unit tests for genops.workloads.image.diffusion (tiny U-Nets, short schedules, 8x8 images)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from genops.workloads.image.config import DiffusionSpec
from genops.workloads.image.diffusion import DiffusionModel, UNet, make_schedule

CLASSES = ["top", "bottom"]
TINY = DiffusionSpec(
    epochs=2,
    batch_size=32,
    base_channels=8,
    timesteps=50,
    sample_steps=8,
    learning_rate=2e-3,
    ema_decay=0.9,
    device="cpu",
)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny networks gain nothing from intra-op threads; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def patterns(n: int, seed: int = 0, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: top half bright; class 1: bottom half bright; plus noise, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    base = np.full((n, 1, 8, 8), -0.8, dtype=np.float32)
    base[labels == 0, :, :4, :] = 0.8
    base[labels == 1, :, 4:, :] = 0.8
    images = base + noise * rng.standard_normal(base.shape).astype(np.float32)
    return np.clip(images, -1.0, 1.0).astype(np.float32), labels.astype(np.int64)


def class_pattern(label: int) -> np.ndarray:
    out = np.full((8, 8), -1.0)
    if label == 0:
        out[:4] = 1.0
    else:
        out[4:] = 1.0
    return out


@pytest.fixture(scope="module")
def fitted() -> DiffusionModel:
    images, labels = patterns(64)
    return DiffusionModel(TINY, 1, 8, CLASSES).fit(images, labels, progress=False)


# ---------------------------------------------------------------------- schedules
def test_cosine_schedule_matches_the_closed_form() -> None:
    steps = 1000
    abar = make_schedule("cosine", steps)
    assert abar.shape == (steps,) and abar.dtype == torch.float32

    def f(t: float) -> float:
        return math.cos((t / steps + 0.008) / 1.008 * math.pi / 2) ** 2

    for t in (1, 10, 250, 500, 900):  # index t - 1 holds step t
        assert abar[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-5, abs=1e-7)
    assert bool((abar[1:] < abar[:-1]).all())
    assert abar[0].item() > 0.999
    assert abar[-1].item() < 1e-4


def test_linear_schedule_follows_ho_et_al_and_scales_with_t() -> None:
    abar = make_schedule("linear", 1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(abar.numpy(), np.cumprod(1 - betas), rtol=1e-5)
    assert abar[0].item() == pytest.approx(1 - 1e-4)
    for steps in (50, 1000):
        short = make_schedule("linear", steps)
        assert short.shape == (steps,)
        assert bool((short[1:] < short[:-1]).all())
        assert short[0].item() > 0.99
        assert short[-1].item() < 1e-3


def test_schedule_and_spec_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="schedule"):
        make_schedule("quadratic", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timesteps"):
        make_schedule("cosine", 1)
    with pytest.raises(ValueError, match="sample_steps"):
        DiffusionSpec(timesteps=20, sample_steps=21)


# ---------------------------------------------------------------------- network
@pytest.mark.parametrize(
    ("channels", "size", "mults"),
    [(1, 8, (1, 2)), (3, 16, (1, 2)), (1, 7, (1, 2)), (1, 7, (1, 2, 2)), (1, 28, (1, 2))],
)
def test_unet_output_has_the_input_shape(channels: int, size: int, mults: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = UNet(channels, size, num_classes=3, base_channels=8, channel_mults=mults)
    x = torch.randn(4, channels, size, size)
    t = torch.tensor([0, 5, 17, 49])
    y = torch.tensor([0, 1, 2, 3])  # 3 is the null label
    with torch.no_grad():
        # the output layer starts at zero; perturb it so the shape check sees real values
        torch.nn.init.normal_(net.out.weight, std=0.1)
        out = net(x, t, y)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert out.abs().sum() > 0


def test_unet_uses_time_and_label() -> None:
    torch.manual_seed(0)
    net = UNet(1, 8, num_classes=2, base_channels=8)
    for p in net.parameters():  # zero-initialised layers would hide the conditioning
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        a = net(x, torch.tensor([3]), torch.tensor([0]))
        b = net(x, torch.tensor([3]), torch.tensor([2]))
        c = net(x, torch.tensor([30]), torch.tensor([0]))
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, c)


# ---------------------------------------------------------------------- sampling
def test_sample_shape_range_and_device(fitted: DiffusionModel) -> None:
    out = fitted.sample([0, 1, 1, -1], seed=0)
    assert out.shape == (4, 1, 8, 8) and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert fitted.device == "cpu" and fitted.num_classes == 2
    assert fitted.sample([], seed=0).shape == (0, 1, 8, 8)


def test_same_seed_same_images_other_seed_other_images(fitted: DiffusionModel) -> None:
    labels = np.array([0, 1, 0, 1])
    a = fitted.sample(labels, seed=7)
    np.testing.assert_array_equal(a, fitted.sample(labels, seed=7))
    assert not np.allclose(a, fitted.sample(labels, seed=8))
    assert not np.allclose(fitted.sample(labels), fitted.sample(labels))  # fresh noise
    # stochastic DDIM is reproducible too
    b = fitted.sample(labels, seed=7, eta=1.0)
    np.testing.assert_array_equal(b, fitted.sample(labels, seed=7, eta=1.0))
    assert not np.allclose(a, b)
    # eta = 0 does not depend on the batch size
    np.testing.assert_allclose(a, fitted.sample(labels, seed=7, batch_size=3), atol=1e-5)


def _count_forward(model: DiffusionModel, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    net = model._require_net()
    original = net.forward
    seen: list[torch.Tensor] = []

    def recording(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(y.clone())
        return original(x, t, y)

    monkeypatch.setattr(net, "forward", recording)
    return seen


def test_guidance_runs_one_batched_pass_per_step(
    fitted: DiffusionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _count_forward(fitted, monkeypatch)
    fitted.sample([0, 1, -1], steps=5, guidance_scale=2.0, seed=0)
    assert len(seen) == 5
    # the two labelled rows are repeated with the null label (2); the -1 row is null once
    assert all(y.tolist() == [0, 1, 2, 2, 2] for y in seen)
    seen.clear()
    fitted.sample([0, 1, -1], steps=5, guidance_scale=0.0, seed=0)
    assert len(seen) == 5 and all(y.tolist() == [0, 1, 2] for y in seen)


def test_guidance_combines_conditional_and_unconditional_eps(
    fitted: DiffusionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = [0, 1, 1, 0]
    w = 1.5
    guided = fitted.sample(labels, guidance_scale=w, seed=3)
    net = fitted._require_net()
    original = net.forward
    null = fitted.num_classes

    def combined(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cond = original(x, t, y)
        uncond = original(x, t, torch.full_like(y, null))
        return (1 + w) * cond - w * uncond

    monkeypatch.setattr(net, "forward", combined)
    # guidance 0 is the plain conditional sampler: here, of the already-combined eps
    np.testing.assert_allclose(guided, fitted.sample(labels, guidance_scale=0.0, seed=3), atol=1e-4)


def test_guidance_zero_ignores_the_unconditional_model(
    fitted: DiffusionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = [0, 1, 0]
    plain = fitted.sample(labels, guidance_scale=0.0, seed=4)
    assert not np.allclose(plain, fitted.sample(labels, guidance_scale=3.0, seed=4), atol=1e-3)
    net = fitted._require_net()
    original = net.forward
    null = fitted.num_classes

    def broken_null(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return original(x, t, y) + 100.0 * (y == null).float()[:, None, None, None]

    monkeypatch.setattr(net, "forward", broken_null)
    np.testing.assert_array_equal(plain, fitted.sample(labels, guidance_scale=0.0, seed=4))


def test_unconditional_label_gets_no_guidance(fitted: DiffusionModel) -> None:
    a = fitted.sample([-1, -1, -1], guidance_scale=0.0, seed=5)
    np.testing.assert_array_equal(a, fitted.sample([-1, -1, -1], guidance_scale=4.0, seed=5))
    np.testing.assert_array_equal(a, fitted.sample_unconditional(3, seed=5))
    mixed = fitted.sample(np.array([-1, 0, -1]), guidance_scale=4.0, seed=5)
    np.testing.assert_allclose(mixed[[0, 2]], a[[0, 2]], atol=1e-5)
    assert fitted.sample_unconditional(2, steps=1, seed=0).shape == (2, 1, 8, 8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": [0, 2]}, r"labels must be in \[0, 2\)"),
        ({"labels": [-2]}, "labels"),
        ({"labels": [0.5]}, "labels must be integers"),
        ({"labels": [[0, 1]]}, "1-D"),
        ({"labels": [0], "steps": 0}, r"steps must be an integer in \[1, 50\]"),
        ({"labels": [0], "steps": 51}, "steps"),
        ({"labels": [0], "guidance_scale": -1.0}, "guidance_scale"),
        ({"labels": [0], "eta": 1.5}, "eta"),
        ({"labels": [0], "batch_size": 0}, "batch_size"),
    ],
)
def test_sample_rejects_bad_arguments(
    fitted: DiffusionModel, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fitted.sample(**kwargs)


def test_sample_before_fit_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        DiffusionModel(TINY, 1, 8, CLASSES).sample([0])


# ---------------------------------------------------------------------- fit
@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (np.zeros((4, 1, 7, 7), np.float32), np.zeros(4, np.int64), "images must have shape"),
        (np.zeros((4, 3, 8, 8), np.float32), np.zeros(4, np.int64), "images must have shape"),
        (np.zeros((4, 1, 8, 8), np.float32), np.zeros(3, np.int64), "labels must have shape"),
        (np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 2, 0]), r"labels must be in"),
        (np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, -1, 0]), r"labels must be in"),
        (np.zeros((4, 1, 8, 8), np.float32), np.zeros(4), "labels must be integers"),
        (np.full((4, 1, 8, 8), 255.0, np.float32), np.zeros(4, np.int64), r"\[-1, 1\]"),
        (np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.int64), "empty"),
    ],
)
def test_fit_rejects_bad_data(images: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DiffusionModel(TINY, 1, 8, CLASSES).fit(images, labels, progress=False)


def test_fit_history_callback_and_determinism(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = patterns(96, seed=1)
    spec = TINY.model_copy(update={"epochs": 6})
    calls: list[tuple[int, dict[str, float]]] = []
    grids: list[np.ndarray] = []

    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        calls.append((epoch, metrics))
        grids.append(model.sample([0, 1], seed=0))  # sampling mid-fit must not disturb it

    monkeypatch.setenv("GENOPS_TORCH_THREADS", "1")
    model = DiffusionModel(spec, 1, 8, CLASSES)
    model.fit(images, labels, on_epoch_end=on_epoch_end, progress=False)
    assert [e for e, _ in calls] == list(range(6))
    assert [m["loss"] for _, m in calls] == [h["loss"] for h in model.loss_history]
    assert [h["epoch"] for h in model.loss_history] == list(range(6))
    losses = [h["loss"] for h in model.loss_history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert len(grids) == 6 and not np.allclose(grids[0], grids[-1])

    again = DiffusionModel(spec, 1, 8, CLASSES).fit(images, labels, progress=False)
    assert again.loss_history == model.loss_history
    for (name, a), b in zip(
        model._require_net().state_dict().items(),
        again._require_net().state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name
    other = DiffusionModel(spec.model_copy(update={"seed": 1}), 1, 8, CLASSES)
    assert other.fit(images, labels, progress=False).loss_history != model.loss_history


def test_callback_error_propagates_and_leaves_model_unfitted() -> None:
    images, labels = patterns(32)

    def stop(epoch: int, metrics: dict[str, float]) -> None:
        raise RuntimeError("pruned")

    model = DiffusionModel(TINY, 1, 8, CLASSES)
    with pytest.raises(RuntimeError, match="pruned"):
        model.fit(images, labels, on_epoch_end=stop, progress=False)
    assert not model.fitted
    with pytest.raises(RuntimeError, match="not fitted"):
        model.sample([0])


def test_odd_sized_rgb_images_train_and_sample() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(16, 3, 7, 7)).astype(np.float32)
    labels = np.arange(16) % 3
    spec = TINY.model_copy(update={"epochs": 1, "ema_decay": 0.0, "dropout": 0.1})
    model = DiffusionModel(spec, 3, 7, ["a", "b", "c"]).fit(images, labels, progress=False)
    assert model.sample([0, 1, 2, -1], steps=3, seed=0).shape == (4, 3, 7, 7)


def test_cuda_request_without_cuda_falls_back_to_cpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.warns(RuntimeWarning, match="CUDA is not available"):
        model = DiffusionModel(TINY.model_copy(update={"device": "cuda"}), 1, 8, CLASSES)
    assert model.device == "cpu"


# ---------------------------------------------------------------------- persistence
def test_save_load_round_trip(fitted: DiffusionModel, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["spec"] == TINY.model_dump(mode="json")
    assert meta["channels"] == 1 and meta["image_size"] == 8
    assert meta["class_names"] == CLASSES
    loaded = DiffusionModel.load(tmp_path / "model", device="cpu")
    assert loaded.spec == TINY and loaded.class_names == CLASSES
    assert loaded.loss_history == fitted.loss_history
    labels = [0, 1, -1, 1]
    np.testing.assert_array_equal(
        fitted.sample(labels, seed=11, eta=0.5), loaded.sample(labels, seed=11, eta=0.5)
    )
    with pytest.raises(RuntimeError, match="not fitted"):
        DiffusionModel(TINY, 1, 8, CLASSES).save(tmp_path / "unfitted")
    with pytest.raises(FileNotFoundError):
        DiffusionModel.load(tmp_path / "missing")


# ---------------------------------------------------------------------- learning
def test_conditional_samples_follow_their_class() -> None:
    images, labels = patterns(256, seed=2)
    spec = DiffusionSpec(
        epochs=25,
        batch_size=64,
        base_channels=8,
        timesteps=100,
        sample_steps=20,
        learning_rate=3e-3,
        ema_decay=0.99,
        device="cpu",
    )
    model = DiffusionModel(spec, 1, 8, CLASSES).fit(images, labels, progress=False)
    assert model.loss_history[-1]["loss"] < model.loss_history[0]["loss"]
    requested = np.repeat([0, 1], 16)
    samples = model.sample(requested, seed=0)[:, 0]
    patterns_ = [class_pattern(0).ravel(), class_pattern(1).ravel()]
    for sample, label in zip(samples, requested, strict=True):
        own = np.corrcoef(sample.ravel(), patterns_[label])[0, 1]
        other = np.corrcoef(sample.ravel(), patterns_[1 - label])[0, 1]
        assert own > other, (label, own, other)


class _Oracle(torch.nn.Module):
    """The exact noise predictor for data that is one fixed image per label."""

    def __init__(self, abar: torch.Tensor, images: torch.Tensor) -> None:
        super().__init__()
        self.abar, self.images = abar, images  # images[k]: label k's image (last: null label)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * self.images[y]) / (1.0 - a).sqrt()


# (one step from x_T divides by sqrt(abar_T) ~ 0: ill-conditioned in float32)
@pytest.mark.parametrize("steps", [2, 10, 50])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_an_oracle_recovers_the_data_and_guidance_extrapolates(
    steps: int, eta: float
) -> None:
    """With the exact eps, DDIM lands on the data for any step count and eta; guidance w
    moves the prediction to (1+w) x_cond - w x_uncond (clipped to [-1, 1])."""
    spec = DiffusionSpec(timesteps=50, sample_steps=10, base_channels=8)
    model = DiffusionModel(spec, 1, 4, ["a", "b"])
    rng = np.random.default_rng(0)
    images = torch.tensor(rng.uniform(-0.4, 0.4, size=(3, 1, 4, 4)), dtype=torch.float32)
    images[2] = 0.0  # the null label's image
    oracle = _Oracle(model._alphas_cumprod, images)
    model._require_net = lambda: oracle  # type: ignore[method-assign]
    out = model.sample([0, 1, -1], steps=steps, guidance_scale=0.0, seed=3, eta=eta)
    np.testing.assert_allclose(out, images.numpy(), atol=1e-4)
    guided = model.sample([0, 1], steps=steps, guidance_scale=1.0, seed=3, eta=eta)
    np.testing.assert_allclose(guided, np.clip(2 * images[:2].numpy(), -1, 1), atol=1e-4)
