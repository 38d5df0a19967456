"""A class-conditional DDPM for small images, sampled with DDIM and classifier-free guidance.

* Forward process (Ho et al., 2020): ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` with
  ``abar`` from :func:`make_schedule` (cosine, Nichol & Dhariwal 2021, or linear).
* Network: a small U-Net (:class:`UNet`) predicting ``eps`` from ``(x_t, t, y)``; the class
  embedding has one extra "null" row, the unconditional label.
* Training: epsilon MSE with ``t`` uniform, the label replaced by the null label with
  probability ``cond_drop_prob`` (classifier-free guidance, Ho & Salimans 2022), AdamW with a
  short linear warm-up and cosine decay, gradient clipping and EMA weights.
* Sampling: DDIM (Song et al., 2021) over evenly spaced timesteps, guided with
  ``eps = (1 + w) eps(x, y) - w eps(x, null)``; the conditional and unconditional passes run
  as one batched forward pass.

Images are ``(N, C, H, W)`` float arrays in ``[-1, 1]``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import secrets
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from genops.core.device import apply_thread_env, is_int_like
from genops.workloads.image.config import DiffusionSpec

__all__ = ["DiffusionModel", "UNet", "make_schedule"]

FORMAT_VERSION = 1

_MODEL_FILE = "model.pt"
_META_FILE = "meta.json"
_COSINE_S = 0.008
_MAX_BETA = 0.999
# Residual blocks per U-Net level on the way down (the way up has one more per level).
_RES_BLOCKS = 2
# Self-attention in the middle block only when the lowest resolution has at most this many
# pixels (its memory grows with their square).
_MAX_ATTENTION_TOKENS = 256
# Linear learning-rate warm-up: this fraction of all steps, at most _MAX_WARMUP_STEPS.
_WARMUP_FRACTION = 0.05
_MAX_WARMUP_STEPS = 500


# ---------------------------------------------------------------------- noise schedule
def make_schedule(kind: Literal["cosine", "linear"], timesteps: int) -> torch.Tensor:
    """``alphas_cumprod`` (``abar_1 .. abar_T``): shape ``(T,)``, float32, strictly decreasing.

    ``cosine``: ``abar(t) = f(t) / f(0)`` with ``f(t) = cos(((t / T) + s) / (1 + s) * pi / 2)^2``
    and ``s = 0.008``, betas clipped to at most 0.999 (Nichol & Dhariwal, 2021).
    ``linear``: betas evenly spaced from ``1e-4`` to ``0.02`` for ``T = 1000`` (Ho et al.,
    2020), both ends scaled by ``1000 / T`` for other ``T`` (and clipped to 0.999).
    Index ``i`` of the result is diffusion step ``i + 1``.
    """
    if isinstance(timesteps, bool) or not isinstance(timesteps, int | np.integer):
        raise ValueError(f"timesteps must be an integer, got {timesteps!r}")
    if timesteps < 2:
        raise ValueError(f"timesteps must be at least 2, got {timesteps}")
    t_count = int(timesteps)
    if kind == "cosine":
        steps = np.arange(t_count + 1, dtype=np.float64) / t_count
        f = np.cos((steps + _COSINE_S) / (1.0 + _COSINE_S) * math.pi / 2.0) ** 2
        abar = f / f[0]
        betas = 1.0 - abar[1:] / abar[:-1]
    elif kind == "linear":
        scale = 1000.0 / t_count
        betas = np.linspace(1e-4 * scale, 0.02 * scale, t_count, dtype=np.float64)
    else:
        raise ValueError(f"Unknown schedule {kind!r}; expected 'cosine' or 'linear'")
    betas = np.clip(betas, 1e-8, _MAX_BETA)
    return torch.as_tensor(np.cumprod(1.0 - betas), dtype=torch.float32)


# ---------------------------------------------------------------------- network
def _groups(channels: int) -> int:
    """GroupNorm groups: about four channels per group, at most 32, dividing ``channels``."""
    g = min(32, max(1, channels // 4))
    while channels % g:
        g -= 1
    return g


def _timestep_embedding(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(
        -math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _zero(module: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


class _ResBlock(nn.Module):
    """GroupNorm/SiLU/conv twice; the embedding scales and shifts the second norm (FiLM)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip: nn.Module = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1.0 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        out: Tensor = self.skip(x) + h
        return out


class _Attention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        # about 32 channels per head, and a head count that divides the channels
        self.heads = max(h for h in range(1, max(1, channels // 32) + 1) if channels % h == 0)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (b, heads, hw, d)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class _Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(x)
        return out


class _Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return out


class UNet(nn.Module):
    """A small U-Net predicting the noise ``eps`` from ``(x_t, t, y)``.

    Sinusoidal time embedding and an MLP; a class embedding with ``num_classes + 1`` rows
    (the last, ``y == num_classes``, is the null label) added to it; per level
    ``_RES_BLOCKS`` residual blocks (GroupNorm, SiLU, FiLM conditioning) and a strided-conv
    downsampling, a middle block with self-attention when the lowest resolution is small, and
    the mirrored way up with skip connections. Inputs whose size is not a multiple of
    ``2 ** (len(channel_mults) - 1)`` are zero-padded (bottom/right) and the output cropped.
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        num_classes: int,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        mults = [int(m) for m in channel_mults]
        if channels < 1 or image_size < 1 or num_classes < 1 or base_channels < 1:
            raise ValueError(
                "channels, image_size, num_classes and base_channels must be positive, got "
                f"{channels}, {image_size}, {num_classes}, {base_channels}"
            )
        if not mults or any(m < 1 for m in mults):
            raise ValueError(f"channel_mults must be non-empty positive integers, got {mults}")
        self.channels = channels
        self.image_size = image_size
        self.num_classes = num_classes
        self.multiple = 2 ** (len(mults) - 1)
        self.padded_size = -(-image_size // self.multiple) * self.multiple

        self.time_dim = 2 * max(8, base_channels // 2)
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(self.time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim)

        self.input = nn.Conv2d(channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels = [base_channels]
        ch = base_channels
        for level, mult in enumerate(mults):
            out_ch = base_channels * mult
            for _ in range(_RES_BLOCKS):
                self.down.append(_ResBlock(ch, out_ch, emb_dim, dropout))
                ch = out_ch
                skip_channels.append(ch)
            if level < len(mults) - 1:
                self.down.append(_Downsample(ch))
                skip_channels.append(ch)

        lowest = self.padded_size // self.multiple
        self.mid1 = _ResBlock(ch, ch, emb_dim, dropout)
        self.mid_attn: nn.Module = (
            _Attention(ch) if lowest * lowest <= _MAX_ATTENTION_TOKENS else nn.Identity()
        )
        self.mid2 = _ResBlock(ch, ch, emb_dim, dropout)

        self.up = nn.ModuleList()
        for level in reversed(range(len(mults))):
            out_ch = base_channels * mults[level]
            for _ in range(_RES_BLOCKS + 1):
                self.up.append(_ResBlock(ch + skip_channels.pop(), out_ch, emb_dim, dropout))
                ch = out_ch
            if level > 0:
                self.up.append(_Upsample(ch))
        self.out_norm = nn.GroupNorm(_groups(ch), ch)
        self.out = _zero(nn.Conv2d(ch, channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        """``x`` ``(B, C, H, W)``, ``t`` ``(B,)`` steps in ``[0, T)``, ``y`` ``(B,)`` labels
        in ``[0, num_classes]`` (``num_classes``: unconditional); returns ``(B, C, H, W)``."""
        size = x.shape[-1]
        pad = (-size) % self.multiple
        if x.shape[-2] != size:
            raise ValueError(f"UNet expects square images, got {tuple(x.shape)}")
        if pad:
            x = F.pad(x, (0, pad, 0, pad))
        emb = self.time_mlp(_timestep_embedding(t, self.time_dim)) + self.class_emb(y)
        emb = F.silu(emb)

        h = self.input(x)
        skips = [h]
        for module in self.down:
            h = module(h, emb) if isinstance(module, _ResBlock) else module(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for module in self.up:
            if isinstance(module, _ResBlock):
                h = module(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = module(h)
        out: Tensor = self.out(F.silu(self.out_norm(h)))
        if pad:
            out = out[..., :size, :size]
        return out


# ---------------------------------------------------------------------- helpers


def _resolve_device(requested: str) -> str:
    """``"cuda"`` when CUDA is available and ``requested`` is not ``"cpu"``, else ``"cpu"``."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        warnings.warn(
            "device 'cuda' was requested but CUDA is not available; using the CPU.",
            RuntimeWarning,
            stacklevel=4,
        )
    return "cpu"


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------- model
class DiffusionModel:
    """Class-conditional DDPM (see the module docstring) with classifier-free guidance.

    Args:
        spec: every hyper-parameter, of training and of the default sampler.
        channels: image channels (1 or 3).
        image_size: height and width of the (square) images.
        class_names: the name of label ``i`` at index ``i``.
    """

    def __init__(
        self, spec: DiffusionSpec, channels: int, image_size: int, class_names: list[str]
    ) -> None:
        self._init(spec, channels, image_size, class_names, spec.device)

    def _init(
        self,
        spec: DiffusionSpec,
        channels: int,
        image_size: int,
        class_names: Sequence[str],
        device: str,
    ) -> None:
        if not is_int_like(channels) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if not is_int_like(image_size) or image_size < 2:
            raise ValueError(f"image_size must be an integer >= 2, got {image_size!r}")
        names = [str(name) for name in class_names]
        if not names:
            raise ValueError("class_names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names must be unique, got {names}")
        self.spec = spec
        self.channels = int(channels)
        self.image_size = int(image_size)
        self.class_names = names
        self.device: str = _resolve_device(device)
        self.loss_history: list[dict[str, float]] = []
        self._alphas_cumprod = make_schedule(spec.schedule, spec.timesteps).to(self.device)
        # The network sample() uses (EMA weights when ema_decay > 0); None until fitted.
        self._net: UNet | None = None

    # ------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def null_label(self) -> int:
        """The label the U-Net reads as "no class"."""
        return self.num_classes

    @property
    def fitted(self) -> bool:
        return self._net is not None

    def _build_unet(self) -> UNet:
        s = self.spec
        return UNet(
            self.channels,
            self.image_size,
            self.num_classes,
            base_channels=s.base_channels,
            channel_mults=s.channel_mults,
            dropout=s.dropout,
        )

    def _fork_rng(self) -> contextlib.AbstractContextManager[Any]:
        devices = [torch.cuda.current_device()] if self.device == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device == "cuda" and self.spec.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ fit
    def _check_data(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images)
        labels = np.asarray(labels)
        expected = (self.channels, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images must have shape (N, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"(N, channels, height, width), got {images.shape}"
            )
        if images.shape[0] == 0:
            raise ValueError("images is empty: nothing to train on")
        if images.dtype.kind not in "fiu":
            raise ValueError(f"images must be numeric, got dtype {images.dtype}")
        images = images.astype(np.float32, copy=False)
        if not np.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        low, high = float(images.min()), float(images.max())
        if low < -1.0 - 1e-4 or high > 1.0 + 1e-4:
            raise ValueError(f"images must be scaled to [-1, 1], got values in [{low:g}, {high:g}]")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) (one per image), got {labels.shape}"
            )
        if labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"labels must be in [0, {self.num_classes}) for {self.num_classes} classes, "
                f"got {sorted(set(labels[bad].tolist()))[:10]}"
            )
        return np.clip(images, -1.0, 1.0), labels.astype(np.int64)

    def fit(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        progress: bool = True,
    ) -> DiffusionModel:
        """Train from scratch on ``images`` ``(N, C, H, W)`` in ``[-1, 1]`` and ``labels``.

        After every epoch ``{"epoch": e, "loss": mean batch loss}`` is appended to
        :attr:`loss_history` and passed to ``on_epoch_end(e, metrics)``; the callback may
        call :meth:`sample` (on the weights as they are then). An exception raised by the
        callback stops training, leaves the model unfitted and propagates. Two CPU fits with
        the same ``spec.seed`` (and thread count) give identical weights.
        """
        x_np, y_np = self._check_data(images, labels)
        apply_thread_env()
        s = self.spec
        device = self.device
        use_cuda = device == "cuda"

        self._net = None
        self.loss_history = []
        with self._fork_rng():
            torch.manual_seed(s.seed % 2**64)
            unet = self._build_unet().to(device)
            ema = copy.deepcopy(unet).eval().requires_grad_(False) if s.ema_decay > 0 else None
            torch.manual_seed((s.seed + 1) % 2**64)  # dropout draws from the global generator
            self._train(unet, ema, x_np, y_np, on_epoch_end, progress, use_cuda)
        self._install(unet, ema)
        return self

    def _train(
        self,
        unet: UNet,
        ema: UNet | None,
        x_np: np.ndarray,
        y_np: np.ndarray,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None,
        progress: bool,
        use_cuda: bool,
    ) -> None:
        s = self.spec
        device = self.device
        x_all = torch.as_tensor(x_np, device=device)
        y_all = torch.as_tensor(y_np, device=device)
        abar = self._alphas_cumprod
        n = x_all.shape[0]
        batch_size = min(s.batch_size, n)
        batches_per_epoch = -(-n // batch_size)
        total_steps = s.epochs * batches_per_epoch
        warmup = max(1, min(_MAX_WARMUP_STEPS, int(_WARMUP_FRACTION * total_steps)))

        optimizer = torch.optim.AdamW(
            unet.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _lr_factor(step, warmup, total_steps)
        )
        forward: Callable[[Tensor, Tensor, Tensor], Tensor] = unet
        if use_cuda and s.compile:
            forward = torch.compile(unet)
        generator = torch.Generator(device=device)
        generator.manual_seed(s.seed % 2**64)
        params: list[Tensor] = list(unet.parameters())
        ema_params: list[Tensor] = list(ema.parameters()) if ema is not None else []

        step = 0
        unet.train()
        bar = tqdm(range(s.epochs), desc="DDPM", unit="epoch", disable=not progress)
        for epoch in bar:
            perm = torch.randperm(n, generator=generator, device=device)
            x_epoch = x_all[perm]
            y_epoch = y_all[perm]
            total = torch.zeros((), device=device)
            for start in range(0, n, batch_size):
                x0 = x_epoch[start : start + batch_size]
                y = y_epoch[start : start + batch_size]
                b = x0.shape[0]
                t = torch.randint(0, s.timesteps, (b,), generator=generator, device=device)
                noise = torch.randn(x0.shape, generator=generator, device=device)
                drop = torch.rand(b, generator=generator, device=device) < s.cond_drop_prob
                y = torch.where(drop, torch.full_like(y, self.null_label), y)
                a = abar[t][:, None, None, None]
                x_t = a.sqrt() * x0 + (1.0 - a).sqrt() * noise
                with self._autocast():
                    pred = forward(x_t, t, y)
                loss = F.mse_loss(pred.float(), noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, s.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                if ema is not None:
                    # Warm-up of the decay, so short runs are not dominated by the init.
                    decay = min(s.ema_decay, (1.0 + step) / (10.0 + step))
                    with torch.no_grad():
                        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
                total += loss.detach() * b
            mean_loss = float(total.item()) / n
            if not math.isfinite(mean_loss):
                raise FloatingPointError(f"DDPM loss is not finite at epoch {epoch}")
            metrics: dict[str, float] = {"epoch": epoch, "loss": mean_loss}
            self.loss_history.append(metrics)
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            if on_epoch_end is not None:
                # The callback may sample (pruning, sample grids): install the sampling
                # weights in eval mode, then go back to training.
                self._install(unet, ema)
                try:
                    on_epoch_end(epoch, dict(metrics))
                except BaseException:
                    self._net = None
                    raise
                self._net = None
                unet.train()
        bar.close()

    def _install(self, unet: UNet, ema: UNet | None) -> None:
        net = ema if ema is not None else unet
        net.eval()
        self._net = net

    def _require_net(self) -> UNet:
        if self._net is None:
            raise RuntimeError("DiffusionModel is not fitted; call fit() or load() first.")
        return self._net

    # ------------------------------------------------------------------ sampling
    def _check_labels(self, labels: Sequence[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(labels)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.ndim != 1:
            raise ValueError(f"labels must be a 1-D sequence of integers, got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
        bad = (arr < -1) | (arr >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"labels must be in [0, {self.num_classes}) for the classes "
                f"{self.class_names}, or -1 for unconditional; got "
                f"{sorted(set(arr[bad].tolist()))[:10]}"
            )
        return arr.astype(np.int64)

    def _timestep_sequence(self, steps: int) -> list[int]:
        """``steps`` evenly spaced timesteps from ``T - 1`` down to 0 (one step: ``T - 1``)."""
        t_max = self.spec.timesteps - 1
        return [int(v) for v in np.round(np.linspace(t_max, 0, steps))]

    @torch.inference_mode()
    def sample(
        self,
        labels: Sequence[int] | np.ndarray,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        eta: float | None = None,
        batch_size: int = 1024,
    ) -> np.ndarray:
        """One image per label: ``(n, C, H, W)`` float32 in ``[-1, 1]``.

        DDIM over ``steps`` evenly spaced timesteps (default ``spec.sample_steps``) with
        ``eta`` (default ``spec.eta``; 0 is deterministic given the initial noise) and
        classifier-free guidance ``w = guidance_scale`` (default ``spec.guidance_scale``).
        A label of ``-1`` is unconditional (the null label, no guidance). The same ``seed``
        gives the same images (for the same ``batch_size`` when ``eta > 0``); ``seed=None``
        draws fresh noise. Thread-safe: the model is not modified.
        """
        net = self._require_net()
        y_np = self._check_labels(labels)
        s = self.spec
        steps = s.sample_steps if steps is None else steps
        if not is_int_like(steps) or not 1 <= steps <= s.timesteps:
            raise ValueError(f"steps must be an integer in [1, {s.timesteps}], got {steps!r}")
        w = float(s.guidance_scale if guidance_scale is None else guidance_scale)
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale}")
        eta_value = float(s.eta if eta is None else eta)
        if not 0.0 <= eta_value <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        if not is_int_like(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if seed is not None and not is_int_like(seed):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")

        n = int(y_np.shape[0])
        shape = (self.channels, self.image_size, self.image_size)
        if n == 0:
            return np.zeros((0, *shape), dtype=np.float32)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed) % 2**64 if seed is not None else secrets.randbits(63))
        x_init = torch.randn((n, *shape), generator=gen)
        timesteps = self._timestep_sequence(int(steps))
        chunks: list[np.ndarray] = []
        for start in range(0, n, batch_size):
            y = torch.as_tensor(y_np[start : start + batch_size])
            x = x_init[start : start + batch_size].to(self.device)
            out = self._ddim(net, x, y, timesteps, w, eta_value, gen)
            chunks.append(out.float().clamp(-1.0, 1.0).cpu().numpy())
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)

    def _guided_eps(self, net: UNet, x: Tensor, t: int, y: Tensor, w: float) -> Tensor:
        """``(1 + w) eps(x, y) - w eps(x, null)`` for rows with a label, ``eps(x, null)`` for
        the rest; the two passes are one batched forward pass."""
        m = x.shape[0]
        null = self.null_label
        conditional = y >= 0
        y_in = torch.where(conditional, y, torch.full_like(y, null)).to(self.device)
        rows = torch.nonzero(conditional).flatten().to(self.device) if w != 0.0 else None
        if rows is not None and rows.numel():
            x_in = torch.cat([x, x[rows]], dim=0)
            y_in = torch.cat([y_in, torch.full((rows.numel(),), null, device=self.device)])
        else:
            x_in, rows = x, None
        t_in = torch.full((x_in.shape[0],), t, dtype=torch.long, device=self.device)
        with self._autocast():
            out = net(x_in, t_in, y_in).float()
        eps = out[:m]
        if rows is not None:
            eps = eps.clone()
            eps[rows] = (1.0 + w) * eps[rows] - w * out[m:]
        return eps

    def _ddim(
        self,
        net: UNet,
        x: Tensor,
        y: Tensor,
        timesteps: list[int],
        w: float,
        eta: float,
        gen: torch.Generator,
    ) -> Tensor:
        abar = self._alphas_cumprod
        for i, t in enumerate(timesteps):
            a_t = abar[t]
            a_prev = abar[timesteps[i + 1]] if i + 1 < len(timesteps) else abar.new_ones(())
            eps = self._guided_eps(net, x, t, y, w)
            x0 = ((x - (1.0 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1.0, 1.0)
            # Re-derive eps from the clipped x0, so that both stay consistent.
            eps = (x - a_t.sqrt() * x0) / (1.0 - a_t).sqrt()
            sigma = eta * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)).clamp(min=0).sqrt()
            direction = (1.0 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
            x = a_prev.sqrt() * x0 + direction
            if eta > 0 and i + 1 < len(timesteps):
                x = x + sigma * torch.randn(x.shape, generator=gen).to(self.device)
        return x

    def sample_unconditional(
        self, n: int, steps: int | None = None, seed: int | None = None
    ) -> np.ndarray:
        """``n`` images from the unconditional model (null label, no guidance)."""
        if not is_int_like(n) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return self.sample(np.full(int(n), -1, dtype=np.int64), steps=steps, seed=seed)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``model.pt`` (the sampling weights: EMA when used) and ``meta.json``."""
        net = self._require_net()
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        torch.save(state, directory / _MODEL_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "class_name": type(self).__name__,
            "spec": self.spec.model_dump(mode="json"),
            "channels": self.channels,
            "image_size": self.image_size,
            "class_names": self.class_names,
            "loss_history": self.loss_history,
            "versions": {"torch": torch.__version__, "numpy": np.__version__},
        }
        (directory / _META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> DiffusionModel:
        """Load a directory written by :meth:`save`; ``device`` replaces the spec's device."""
        directory = Path(path)
        meta_path = directory / _META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: not a saved DiffusionModel")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("class_name") != cls.__name__:
            raise ValueError(
                f"{directory} holds a {meta.get('class_name')!r}, not a DiffusionModel"
            )
        version = int(meta.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"Model format version {version} is newer than supported ({FORMAT_VERSION})."
            )
        spec = DiffusionSpec.model_validate(meta["spec"])
        obj = cls.__new__(cls)
        obj._init(spec, int(meta["channels"]), int(meta["image_size"]), meta["class_names"], device)
        net = obj._build_unet()
        state = torch.load(directory / _MODEL_FILE, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        obj._install(net.to(obj.device).requires_grad_(False), None)
        obj.loss_history = [dict(entry) for entry in meta.get("loss_history", [])]
        return obj

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else "unfitted"
        return (
            f"DiffusionModel({state}, channels={self.channels}, image_size={self.image_size}, "
            f"classes={self.class_names}, device={self.device!r})"
        )
