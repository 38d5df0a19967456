"""A denoising-diffusion synthesizer for tables, TabDDPM-style (Kotelnikov et al., ICML 2023).

TabDDPM diffuses a table with an MLP denoiser conditioned on the time step (and on a label),
Gaussian noise for numeric columns and multinomial diffusion for categorical ones. This
family keeps the MLP denoiser, its time and label embeddings and the cosine schedule, and
works in the encoding every family here shares
(:class:`~genops.workloads.tabular.models.tabular_encoding.TabularEncoder`), which already
turns each numeric column into a mode indicator plus a scalar and makes the spikes of
zero-inflated columns (``capital_gain``) exact modes of their own.

Why not multinomial diffusion for the one-hot blocks: one Gaussian process over the whole
encoded row keeps the sampler one loop that can skip steps (50 sampling steps for 1,000
training steps, DDIM's respacing), which multinomial diffusion cannot, and the blocks are
treated as categorical where it matters. Each one-hot block is diffused as ``+-1`` values,
the network predicts its clean value as logits trained with cross-entropy (the continuous
relaxation of CDCD, Dieleman et al. 2022), and the last step draws the category from those
logits. The scalars are standardised and predicted as noise (the ``epsilon`` loss of
DDPM). Sampling is DDIM with ``eta`` (1 is ancestral sampling, 0 deterministic), with an
exponential moving average of the weights (what the sampler and ``save`` use).

Why not TabSyn (diffusion in a VAE's latent space): it needs a transformer VAE trained
first and a second model trained in its latent space; at this project's CPU budget the two
stages cost twice the training time for what the one-stage model reaches here
(``benchmarks/results/diffusion.md`` has the curves).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from genops.workloads.tabular.models.base import BaseSynthesizer, EpochCallback, fork_devices
from genops.workloads.tabular.models.tabular_encoding import TabularEncoder
from genops.workloads.tabular.models.tvae import _Layout

__all__ = ["DiffusionParams", "DiffusionSynthesizer"]

_TIME_DIM = 128


@dataclass(frozen=True)
class DiffusionParams:
    """Hyper-parameters of :class:`DiffusionSynthesizer` (TabDDPM's MLP and schedule)."""

    epochs: int = 400
    batch_size: int = 1024
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    dropout: float = 0.0
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    num_timesteps: int = 1000
    sample_steps: int = 50
    eta: float = 1.0
    ema_decay: float = 0.999
    categorical_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(int(d) for d in self.hidden_dims))
        for name in ("epochs", "batch_size", "num_timesteps", "sample_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DiffusionParams.{name} must be >= 1, got {getattr(self, name)}")
        if not self.hidden_dims or any(d < 1 for d in self.hidden_dims):
            raise ValueError("DiffusionParams.hidden_dims must hold one or more positive sizes")
        if self.sample_steps > self.num_timesteps:
            raise ValueError(
                f"DiffusionParams.sample_steps ({self.sample_steps}) must be <= num_timesteps "
                f"({self.num_timesteps})"
            )
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("DiffusionParams.learning_rate must be > 0, weight_decay >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DiffusionParams.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"DiffusionParams.eta must be in [0, 1], got {self.eta}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"DiffusionParams.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.categorical_weight <= 0:
            raise ValueError("DiffusionParams.categorical_weight must be > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DiffusionParams:
        """Build from a mapping; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown DiffusionParams field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


def cosine_alphas_cumprod(num_timesteps: int) -> np.ndarray:
    """``alpha_bar_t`` of the cosine schedule (Nichol and Dhariwal, 2021), ``t = 1..T``."""
    s = 0.008
    steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def _timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer time steps, ``(n, dim)``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class _Denoiser(nn.Module):
    """TabDDPM's MLP: the noisy row projected to ``_TIME_DIM`` plus the embeddings of the
    time step and of the condition, then SiLU blocks. The outputs are the scalars' noise and
    the one-hot blocks' clean logits (the model's column order, see :class:`_Layout`).

    The buffers ``scalar_mean`` / ``scalar_std`` standardise the scalars, so ``model.pt``
    holds everything the sampler needs."""

    scalar_mean: torch.Tensor
    scalar_std: torch.Tensor

    def __init__(
        self, data_dim: int, n_tanh: int, cond_dim: int, hidden: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(data_dim, _TIME_DIM)
        self.time_mlp = nn.Sequential(
            nn.Linear(_TIME_DIM, _TIME_DIM), nn.SiLU(), nn.Linear(_TIME_DIM, _TIME_DIM)
        )
        self.cond = nn.Linear(cond_dim, _TIME_DIM, bias=False) if cond_dim else None
        layers: list[nn.Module] = []
        dim = _TIME_DIM
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.SiLU(), nn.Dropout(dropout)]
            dim = h
        layers.append(nn.Linear(dim, data_dim))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("scalar_mean", torch.zeros(n_tanh))
        self.register_buffer("scalar_std", torch.ones(n_tanh))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.proj(x) + self.time_mlp(_timestep_embedding(t, _TIME_DIM))
        if self.cond is not None and cond is not None:
            h = h + self.cond(cond)
        out: torch.Tensor = self.mlp(h)
        return out


def _span_log_softmax(logits: torch.Tensor, layout: _Layout) -> torch.Tensor:
    """Log-softmax of every one-hot block at once (``logits``: the blocks' columns)."""
    b = logits.shape[0]
    index = layout.span_of_col.expand(b, -1)
    with torch.no_grad():
        shift = torch.full(
            (b, layout.n_spans), -torch.inf, device=logits.device, dtype=logits.dtype
        ).scatter_reduce(1, index, logits, reduce="amax")
    shifted = logits - shift.index_select(1, layout.span_of_col)
    lse = torch.log(torch.exp(shifted) @ layout.membership)
    return shifted - lse.index_select(1, layout.span_of_col)


def _draw(
    fn: Any, parts: Sequence[tuple[np.ndarray | None, int, torch.Generator]], width: int
) -> torch.Tensor:
    """``fn`` (``torch.randn`` or ``torch.rand``) of ``(n, width)`` from each request's own
    generator, stacked in request order."""
    return torch.cat(
        [fn((n, width), generator=gen, device=gen.device) for _, n, gen in parts], dim=0
    )


class DiffusionSynthesizer(BaseSynthesizer[DiffusionParams]):
    """Gaussian diffusion over the encoded table with an MLP denoiser (see the module
    docstring); conditional on some categorical columns when asked.

    Fitting, conditioning, sampling and persistence come from
    :class:`~genops.workloads.tabular.models.base.BaseSynthesizer`. The metrics of each epoch
    (in :attr:`loss_history`, and passed to ``fit``'s ``on_epoch_end``) are ``epoch`` (from
    0), ``loss`` (their sum), ``numeric`` (the scalars' noise MSE) and ``categorical`` (the
    blocks' cross-entropy per block), each the mean over the epoch's batches.

    Args:
        categorical_columns: columns modelled as categories (values become ``str``).
        continuous_columns: numeric columns (integral ones come back as ``int64``).
        params: hyper-parameters; ``DiffusionParams()`` when omitted.
        conditional_columns: subset of ``categorical_columns`` whose one-hots condition the
            denoiser, so they can be fixed exactly when sampling.
        seed: seeds the encoding, the weights, the noise of training and the batch order.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    """

    _denoiser: _Denoiser | None
    _ema: _Denoiser | None
    _layout: _Layout | None

    # ------------------------------------------------------------------ networks
    @classmethod
    def _default_params(cls) -> DiffusionParams:
        return DiffusionParams()

    @classmethod
    def _params_from_dict(cls, values: Mapping[str, Any]) -> DiffusionParams:
        return DiffusionParams.from_dict(values)

    def _networks(self) -> tuple[_Denoiser, _Layout]:
        if self._ema is None or self._layout is None:
            raise RuntimeError("DiffusionSynthesizer is not fitted; call fit() or load() first.")
        return self._ema, self._layout

    def _networks_ready(self) -> bool:
        return self._ema is not None and self._layout is not None

    def _drop_networks(self) -> None:
        self._denoiser = self._ema = self._layout = None
        self._cond_offsets = []
        self._cond_dim = 0

    def _set_training(self, training: bool) -> None:
        # Sampling always uses the moving average (kept in eval mode); only the trained
        # network's dropout follows the mode.
        if self._denoiser is not None:
            self._denoiser.train(training)
        if self._ema is not None:
            self._ema.eval()

    def _build_denoiser(self, layout: _Layout) -> _Denoiser:
        p = self.params
        with torch.random.fork_rng(devices=fork_devices(self.device)):
            torch.manual_seed(self.seed)
            net = _Denoiser(
                layout.data_dim, layout.n_tanh, self._cond_dim, p.hidden_dims, p.dropout
            )
        return net.to(self.device)

    def _alphas_cumprod(self) -> torch.Tensor:
        return torch.as_tensor(
            cosine_alphas_cumprod(self.params.num_timesteps),
            dtype=torch.float32,
            device=self.device,
        )

    @staticmethod
    def _to_model_space(data: np.ndarray, layout: _Layout, net: _Denoiser) -> torch.Tensor:
        """Encoded rows (model column order) -> the diffused space: standardised scalars,
        one-hot blocks as ``+-1``."""
        x = torch.as_tensor(data, device=net.scalar_mean.device).clone()
        nt = layout.n_tanh
        x[:, :nt] = (x[:, :nt] - net.scalar_mean) / net.scalar_std
        x[:, nt:] = x[:, nt:] * 2.0 - 1.0
        return x

    # ------------------------------------------------------------------ fit
    def _fit_networks(
        self,
        df: pd.DataFrame,
        transformer: TabularEncoder,
        cond_codes: np.ndarray,
        end_epoch: EpochCallback,
        progress: bool,
    ) -> None:
        p = self.params
        device = self.device
        layout = _Layout.build(transformer, device)
        data = transformer.transform(df)[:, layout.perm]
        self._setup_conditions(transformer)
        net = self._build_denoiser(layout)
        nt = layout.n_tanh
        if nt:
            scalars = data[:, :nt].astype(np.float64)
            net.scalar_mean.copy_(torch.as_tensor(scalars.mean(axis=0), dtype=torch.float32))
            std = np.maximum(scalars.std(axis=0), 1e-3)
            net.scalar_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        ema = copy.deepcopy(net)
        ema.requires_grad_(False)
        self._denoiser, self._ema, self._layout = net, ema, layout
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay
        )
        x_all = self._to_model_space(data, layout, net)
        targets_all = torch.as_tensor(layout.target_columns(data), device=device)
        c_all = (
            torch.as_tensor(self._cond_onehot(cond_codes), device=device)
            if self._cond_dim
            else None
        )
        abar = self._alphas_cumprod()
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed)

        n = x_all.shape[0]
        batch_size = min(p.batch_size, n)
        steps_per_epoch = math.ceil(n / batch_size)
        total_steps = p.epochs * steps_per_epoch
        step = 0
        n_spans = max(layout.n_spans, 1)
        net.train()
        bar = tqdm(range(p.epochs), desc="Diffusion", unit="epoch", disable=not progress)
        for epoch in bar:
            perm = torch.randperm(n, generator=generator, device=device)
            x_epoch = x_all[perm]
            t_epoch = targets_all[perm]
            c_epoch = c_all[perm] if c_all is not None else None
            totals = torch.zeros(2, device=device)
            n_batches = 0
            for start in range(0, n, batch_size):
                x0 = x_epoch[start : start + batch_size]
                b = x0.shape[0]
                cond = c_epoch[start : start + batch_size] if c_epoch is not None else None
                t = torch.randint(0, p.num_timesteps, (b,), generator=generator, device=device)
                noise = torch.randn(x0.shape, generator=generator, device=device)
                a = abar[t][:, None]
                xt = a.sqrt() * x0 + (1.0 - a).sqrt() * noise
                out = net(xt, t, cond)
                numeric = ((out[:, :nt] - noise[:, :nt]) ** 2).mean() if nt else out.new_zeros(())
                if layout.n_spans:
                    logp = _span_log_softmax(out[:, nt:], layout)
                    picked = logp.gather(1, t_epoch[start : start + batch_size])
                    categorical = -picked.sum() / (b * n_spans)
                else:
                    categorical = out.new_zeros(())
                loss = numeric + p.categorical_weight * categorical
                # Linear learning-rate decay to zero, as TabDDPM anneals its schedule.
                for group in optimizer.param_groups:
                    group["lr"] = p.learning_rate * (1.0 - step / total_steps)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                with torch.no_grad():
                    decay = min(p.ema_decay, (1.0 + step) / (10.0 + step))
                    for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                        pe.lerp_(pn, 1.0 - decay)
                totals += torch.stack([numeric.detach(), categorical.detach()])
                n_batches += 1
            num_mean, cat_mean = (totals / n_batches).tolist()
            metrics: dict[str, float] = {
                "epoch": epoch,
                "loss": num_mean + p.categorical_weight * cat_mean,
                "numeric": num_mean,
                "categorical": cat_mean,
            }
            if not np.isfinite(metrics["loss"]):
                raise FloatingPointError(
                    f"Diffusion loss is not finite at epoch {epoch}: {metrics}"
                )
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            end_epoch(epoch, metrics)
        bar.close()

    # ------------------------------------------------------------------ sampling
    def _sampling_plan(self) -> list[tuple[int, float, float]]:
        """``(t, alpha_bar_t, alpha_bar_next)`` of each sampling step, noisiest first; the
        ``sample_steps`` time steps are evenly spaced over the training schedule."""
        p = self.params
        abar = cosine_alphas_cumprod(p.num_timesteps)
        ts = np.unique(np.linspace(0, p.num_timesteps - 1, p.sample_steps).round().astype(int))
        ts = ts[::-1]
        plan = []
        for i, t in enumerate(ts):
            nxt = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
            plan.append((int(t), float(abar[t]), nxt))
        return plan

    @torch.inference_mode()
    def _denoise(
        self,
        parts: Sequence[tuple[np.ndarray | None, int, torch.Generator]],
    ) -> list[np.ndarray]:
        """Run the sampler over several requests at once, each ``(cond_codes, n, gen)``.

        Each request draws its noise from its own generator in a fixed order (the start
        noise, then each step's noise, then the Gumbel noise of the last step), so its rows
        do not depend on what else is in the batch."""
        net, layout = self._networks()
        p = self.params
        nt, dim, device = layout.n_tanh, layout.data_dim, self.device
        sizes = [n for _, n, _ in parts]
        x = _draw(torch.randn, parts, dim)
        cond = None
        if self._cond_dim:
            cond = torch.cat(
                [
                    torch.as_tensor(self._cond_onehot(c), device=device)
                    for c, _, _ in parts
                    if c is not None
                ]
            )
        plan = self._sampling_plan()
        logits = x[:, nt:]
        lo = (-1.0 - net.scalar_mean) / net.scalar_std
        hi = (1.0 - net.scalar_mean) / net.scalar_std
        for i, (t, a, a_next) in enumerate(plan):
            t_batch = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
            out = net(x, t_batch, cond)
            eps_num = out[:, :nt]
            logits = out[:, nt:]
            x0 = torch.empty_like(x)
            sa, s1a = math.sqrt(a), math.sqrt(1.0 - a)
            # Clipped to the scalars' range: at the noisiest steps dividing by sqrt(a)
            # amplifies the noise estimate's error far beyond any encoded value.
            x0[:, :nt] = torch.clamp((x[:, :nt] - s1a * eps_num) / sa, lo, hi)
            if layout.n_spans:
                probs = torch.exp(_span_log_softmax(logits, layout))
                x0[:, nt:] = probs * 2.0 - 1.0
            if i == len(plan) - 1:
                x = x0
                break
            eps = (x - sa * x0) / s1a
            sigma = (
                p.eta
                * math.sqrt((1.0 - a_next) / (1.0 - a))
                * math.sqrt(max(0.0, 1.0 - a / a_next))
            )
            mean = math.sqrt(a_next) * x0 + math.sqrt(max(0.0, 1.0 - a_next - sigma**2)) * eps
            if sigma > 0:
                noise = _draw(torch.randn, parts, dim)
                x = mean + sigma * noise
            else:
                x = mean
        out_rows = torch.empty_like(x)
        out_rows[:, :nt] = x[:, :nt] * net.scalar_std + net.scalar_mean
        if layout.n_spans:
            # The category of each block is drawn from the last step's predicted
            # distribution (Gumbel-max; the decoder takes the argmax of each block).
            u = _draw(torch.rand, parts, dim - nt)
            out_rows[:, nt:] = _span_log_softmax(logits, layout) - torch.log(
                -torch.log(u.clamp(1e-10, 1.0 - 1e-7))
            )
        encoded = out_rows.float().cpu().numpy()[:, layout.inv_perm]
        return np.split(encoded, np.cumsum(sizes)[:-1])

    def _generate_encoded(
        self,
        cond_codes: np.ndarray | None,
        n: int,
        rng: np.random.Generator,
        gen: torch.Generator,
        batch_size: int,
    ) -> np.ndarray:
        chunks: list[np.ndarray] = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            codes = cond_codes[start : start + m] if cond_codes is not None else None
            chunks.extend(self._denoise([(codes, m, gen)]))
        return np.concatenate(chunks, axis=0)

    def _generate_encoded_many(
        self,
        parts: Sequence[tuple[np.ndarray | None, int, np.random.Generator, torch.Generator]],
        batch_size: int,
    ) -> list[np.ndarray]:
        """Several requests through the sampler in one pass (a server's micro-batch); a seed
        gives the same rows alone or batched (see :meth:`_denoise`)."""
        if len(parts) < 2 or sum(n for _, n, _, _ in parts) > batch_size:
            return super()._generate_encoded_many(parts, batch_size)
        return self._denoise([(codes, n, gen) for codes, n, _, gen in parts])

    # ------------------------------------------------------------------ persistence
    def _network_modules(self) -> dict[str, nn.Module]:
        net, _ = self._networks()
        return {"denoiser": net}

    def _dims(self) -> tuple[int, int]:
        return self._networks()[1].data_dim, self._cond_dim

    def _restore_networks(
        self,
        transformer: TabularEncoder,
        state: Mapping[str, dict[str, torch.Tensor]],
        meta: Mapping[str, Any],
    ) -> None:
        layout = _Layout.build(transformer, self.device)
        self._setup_conditions(transformer)
        net = self._build_denoiser(layout)
        net.load_state_dict(state["denoiser"])
        net.eval()
        net.requires_grad_(False)
        self._denoiser, self._ema, self._layout = None, net, layout
