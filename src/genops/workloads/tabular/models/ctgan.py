"""CTGAN-style conditional GAN tabular synthesizer (Xu et al., 2019).

The encoding is :class:`~genops.workloads.tabular.models.tabular_encoding.TabularEncoder` (the
same per-column transforms as the TVAE family); fitting, conditioning, sampling and
persistence come from :class:`~genops.workloads.tabular.models.base.BaseSynthesizer`. The
networks follow CTGAN:

* Generator: residual blocks (``Linear -> BatchNorm -> ReLU``, output concatenated with the
  block input), then a linear layer to the encoded width. ``tanh`` on the continuous scalars
  and a Gumbel-softmax (``tau = 0.2``) on every softmax span during training.
* Discriminator (critic): PacGAN, ``pac`` rows concatenated into one input, ``Linear ->
  LeakyReLU(0.2) -> Dropout(0.5)`` blocks, trained as a WGAN with gradient penalty
  (``lambda = 10``); Adam with ``betas = (0.5, 0.9)`` for both networks.
* Training-by-sampling: each row of a batch gets a conditional vector built by picking a
  categorical column uniformly and one of its categories with probability proportional to
  ``log(1 + count)``; the real rows shown to the critic are drawn among the training rows with
  that value, and the generator loss adds the cross-entropy between its output for that column
  and the chosen category.

The repo's ``conditional_columns`` are an extension of that vector: their blocks of the
conditional vector are *always* filled (with the values of the real row drawn for the batch
row), and the generator's cross-entropy always covers them, so the generator learns
``p(row | conditional values)``. At sampling time only those blocks are filled: with the
requested values, or with combinations drawn from the stored training joint of the
conditional columns (so unconditioned samples reproduce their joint frequencies). The decoded
conditional columns are then **overwritten** with the values in the conditional vector, so a
requested value is always met exactly; the generator was trained to agree with it, which is
what makes the other columns follow the condition. Without conditional columns, sampling
builds the conditional vector as CTGAN does (a categorical column picked uniformly, one of its
values drawn with its training frequency). Conditions on categorical columns that are not
conditional are met by rejection sampling, as in the TVAE family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from genops.workloads.tabular.models.base import BaseSynthesizer, EpochCallback, fork_devices
from genops.workloads.tabular.models.tabular_encoding import ContinuousColumnInfo, TabularEncoder

__all__ = ["CTGANParams", "CTGANSynthesizer"]

_GUMBEL_TAU = 0.2
_GP_LAMBDA = 10.0
_ADAM_BETAS = (0.5, 0.9)
_LEAKY_SLOPE = 0.2
_DROPOUT = 0.5


@dataclass(frozen=True)
class CTGANParams:
    """Hyper-parameters of :class:`CTGANSynthesizer` (defaults follow SDV's CTGAN).

    ``batch_size`` must be a multiple of ``pac`` (the critic judges ``pac`` rows at a time).
    Each epoch runs ``max(n_rows // batch_size, 1)`` generator steps, each preceded by
    ``discriminator_steps`` critic steps.
    """

    epochs: int = 100
    batch_size: int = 500
    embedding_dim: int = 128
    generator_dims: tuple[int, ...] = (256, 256)
    discriminator_dims: tuple[int, ...] = (256, 256)
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    weight_decay: float = 1e-6
    discriminator_steps: int = 1
    pac: int = 10

    def __post_init__(self) -> None:
        # Accept lists (e.g. from YAML/JSON) but store tuples so the dataclass stays hashable.
        object.__setattr__(self, "generator_dims", tuple(int(d) for d in self.generator_dims))
        object.__setattr__(
            self, "discriminator_dims", tuple(int(d) for d in self.discriminator_dims)
        )
        for name in ("epochs", "batch_size", "embedding_dim", "discriminator_steps", "pac"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CTGANParams.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("generator_dims", "discriminator_dims"):
            if any(d < 1 for d in getattr(self, name)):
                raise ValueError(f"CTGANParams.{name} must hold positive sizes")
        if self.batch_size % self.pac != 0:
            raise ValueError(
                f"CTGANParams.batch_size ({self.batch_size}) must be a multiple of "
                f"pac ({self.pac})."
            )
        if self.batch_size < 2:
            raise ValueError("CTGANParams.batch_size must be >= 2 (the generator batch-norms).")
        for name in ("generator_lr", "discriminator_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CTGANParams.{name} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"CTGANParams.weight_decay must be >= 0, got {self.weight_decay}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["generator_dims"] = list(self.generator_dims)
        out["discriminator_dims"] = list(self.discriminator_dims)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CTGANParams:
        """Build from a mapping; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown CTGANParams field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


# ---------------------------------------------------------------------- networks
class _Residual(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn(self.fc(x)))
        return torch.cat([out, x], dim=1)


class _Generator(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int], data_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for h in hidden:
            layers.append(_Residual(dim, h))
            dim += h
        layers.append(nn.Linear(dim, data_dim))
        self.seq = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.seq(z)
        return out


class _Discriminator(nn.Module):
    """PacGAN critic: rows ``k*pac .. k*pac + pac - 1`` of the input are judged together."""

    def __init__(self, in_dim: int, hidden: Sequence[int], pac: int) -> None:
        super().__init__()
        self.pac = pac
        self.pac_dim = in_dim * pac
        layers: list[nn.Module] = []
        dim = self.pac_dim
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.LeakyReLU(_LEAKY_SLOPE), nn.Dropout(_DROPOUT)]
            dim = h
        layers.append(nn.Linear(dim, 1))
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.seq(x.reshape(-1, self.pac_dim))
        return out


# ---------------------------------------------------------------------- layout
@dataclass
class _Layout:
    """Column order the networks use, and index tensors for the vectorised span operations.

    The model works on a permuted copy of the transformer's encoding: all ``tanh`` scalars
    first (``n_tanh`` columns), then every softmax span back to back, so per-span softmaxes
    and log-sum-exps reduce to a scatter-max and one matmul with ``membership``.

    The conditional vector has one one-hot block per categorical column, in the transformer's
    column order; categorical column ``c`` has ``cat_dims[c]`` categories, its block starts at
    ``cat_cond_offsets[c]`` in the conditional vector and at ``cat_model_starts[c]`` in the
    model's column order, and is softmax span ``cat_spans[c]``.
    """

    data_dim: int
    n_tanh: int
    perm: np.ndarray  # model column -> transformer column
    inv_perm: np.ndarray  # transformer column -> model column
    span_of_col: torch.Tensor  # (n_softmax_cols,) span index of each softmax column
    membership: torch.Tensor  # (n_softmax_cols, spans) one-hot of span_of_col
    cat_names: list[str]
    cat_dims: np.ndarray  # (n_cat,)
    cat_cond_offsets: torch.Tensor  # (n_cat,)
    cat_model_starts: torch.Tensor  # (n_cat,)
    cat_spans: torch.Tensor  # (n_cat,)

    @property
    def n_spans(self) -> int:
        return int(self.membership.shape[1])

    @property
    def n_cat(self) -> int:
        return len(self.cat_names)

    @property
    def cond_dim(self) -> int:
        return int(self.cat_dims.sum())

    @classmethod
    def build(cls, transformer: TabularEncoder, device: torch.device) -> _Layout:
        tanh_cols: list[int] = []
        soft_cols: list[int] = []
        span_dims: list[int] = []
        cat_names: list[str] = []
        cat_dims: list[int] = []
        cat_soft_starts: list[int] = []
        cat_spans: list[int] = []
        col = 0
        for info in transformer.column_infos:
            if isinstance(info, ContinuousColumnInfo):
                tanh_cols.append(col)
                soft_cols.extend(range(col + 1, col + 1 + info.n_modes))
                span_dims.append(info.n_modes)
            else:
                cat_names.append(info.name)
                cat_dims.append(info.output_dim)
                cat_soft_starts.append(len(soft_cols))
                cat_spans.append(len(span_dims))
                soft_cols.extend(range(col, col + info.output_dim))
                span_dims.append(info.output_dim)
            col += info.output_dim
        perm = np.asarray(tanh_cols + soft_cols, dtype=np.int64)
        dims_arr = np.asarray(span_dims, dtype=np.int64)
        span_of_col = np.repeat(np.arange(len(span_dims), dtype=np.int64), dims_arr)
        membership = np.zeros((len(soft_cols), len(span_dims)), dtype=np.float32)
        membership[np.arange(len(soft_cols)), span_of_col] = 1.0
        cat_dims_arr = np.asarray(cat_dims, dtype=np.int64)

        def as_index(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values, dtype=np.int64), device=device)

        return cls(
            data_dim=col,
            n_tanh=len(tanh_cols),
            perm=perm,
            inv_perm=np.argsort(perm),
            span_of_col=torch.as_tensor(span_of_col, device=device),
            membership=torch.as_tensor(membership, device=device),
            cat_names=cat_names,
            cat_dims=cat_dims_arr,
            cat_cond_offsets=as_index(np.cumsum(cat_dims_arr) - cat_dims_arr),
            cat_model_starts=as_index(len(tanh_cols) + np.asarray(cat_soft_starts, dtype=np.int64)),
            cat_spans=as_index(np.asarray(cat_spans, dtype=np.int64)),
        )

    def _span_exp(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(exp(logits - span max), per-span sums of it, span max)`` of ``(b, n_soft)``."""
        b = logits.shape[0]
        with torch.no_grad():  # a constant shift per span: softmax and lse do not depend on it
            shift = torch.full(
                (b, self.n_spans), -torch.inf, device=logits.device, dtype=logits.dtype
            ).scatter_reduce(1, self.span_of_col.expand(b, -1), logits, reduce="amax")
        expd = torch.exp(logits - shift.index_select(1, self.span_of_col))
        return expd, expd @ self.membership, shift

    def activate(self, raw: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``tanh`` on the scalars, Gumbel-softmax (``tau = 0.2``) on every span."""
        nt = self.n_tanh
        parts: list[torch.Tensor] = []
        if nt:
            parts.append(torch.tanh(raw[:, :nt]))
        if self.n_spans:
            logits = raw[:, nt:]
            u = torch.rand(logits.shape, generator=gen, device=raw.device, dtype=raw.dtype)
            gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
            expd, sums, _ = self._span_exp((logits + gumbel) / _GUMBEL_TAU)
            parts.append(expd / sums.index_select(1, self.span_of_col))
        return torch.cat(parts, dim=1)

    def conditional_cross_entropy(self, raw: torch.Tensor, cat_codes: torch.Tensor) -> torch.Tensor:
        """Sum over rows and active blocks of the cross-entropy, divided by the batch size.

        ``cat_codes`` is ``(b, n_cat)``: the category each block of the conditional vector
        asks for, ``-1`` where the block is empty.
        """
        b = raw.shape[0]
        if self.n_cat == 0:
            return raw.new_zeros(())
        _, sums, shift = self._span_exp(raw[:, self.n_tanh :])
        lse = (torch.log(sums) + shift).index_select(1, self.cat_spans)
        target_cols = self.cat_model_starts.unsqueeze(0) + cat_codes.clamp(min=0)
        ce = lse - raw.gather(1, target_cols)
        return (ce * (cat_codes >= 0)).sum() / b

    def cond_onehot(self, cat_codes: torch.Tensor) -> torch.Tensor:
        """``(b, cond_dim)`` conditional vector of ``(b, n_cat)`` codes (``-1``: empty)."""
        b = cat_codes.shape[0]
        out = torch.zeros((b, self.cond_dim + 1), device=cat_codes.device)
        # Empty blocks write into a spare last column, dropped below.
        idx = torch.where(
            cat_codes >= 0, self.cat_cond_offsets.unsqueeze(0) + cat_codes, self.cond_dim
        )
        out.scatter_(1, idx, 1.0)
        return out[:, : self.cond_dim]


@dataclass
class _ConditionSampler:
    """Training-by-sampling over the categorical columns (numpy, seeded).

    ``codes`` holds every training row's category code per categorical column; rows of each
    (column, category) pair are listed contiguously in ``rows_by_value``.
    """

    codes: np.ndarray  # (n, n_cat)
    log_cum: np.ndarray  # (n_cat, max_dim) cumulative log-frequency probabilities
    cat_dims: np.ndarray  # (n_cat,)
    value_offsets: np.ndarray  # (n_cat,) offset of each column's values in the flat lists
    value_starts: np.ndarray  # (n_values,) start of each value's rows in rows_by_value
    value_counts: np.ndarray  # (n_values,)
    rows_by_value: np.ndarray  # (n * n_cat,)
    conditional_idx: np.ndarray  # categorical-column index of each conditional column

    @classmethod
    def build(
        cls, codes: np.ndarray, cat_dims: np.ndarray, conditional_idx: Sequence[int]
    ) -> _ConditionSampler:
        n, n_cat = codes.shape
        max_dim = int(cat_dims.max()) if n_cat else 0
        log_cum = np.ones((n_cat, max_dim), dtype=np.float64)
        starts: list[np.ndarray] = []
        counts_l: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        offset = 0
        for c in range(n_cat):
            counts = np.bincount(codes[:, c], minlength=int(cat_dims[c]))
            logf = np.log1p(counts.astype(np.float64))
            log_cum[c, : cat_dims[c]] = np.cumsum(logf / logf.sum())
            order = np.argsort(codes[:, c], kind="stable")
            rows.append(order)
            starts.append(offset + np.concatenate([[0], np.cumsum(counts)[:-1]]))
            counts_l.append(counts)
            offset += n
        value_offsets = np.concatenate([[0], np.cumsum(cat_dims)[:-1]]) if n_cat else cat_dims
        return cls(
            codes=codes,
            log_cum=log_cum,
            cat_dims=cat_dims,
            value_offsets=np.asarray(value_offsets, dtype=np.int64),
            value_starts=np.concatenate(starts).astype(np.int64) if n_cat else cat_dims,
            value_counts=np.concatenate(counts_l).astype(np.int64) if n_cat else cat_dims,
            rows_by_value=np.concatenate(rows).astype(np.int64) if n_cat else cat_dims,
            conditional_idx=np.asarray(conditional_idx, dtype=np.int64),
        )

    def draw(self, b: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(cat_codes (b, n_cat), real row indices (b,))`` for one batch."""
        n, n_cat = self.codes.shape
        if n_cat == 0:
            return np.zeros((b, 0), dtype=np.int64), rng.integers(0, n, size=b)
        col = rng.integers(0, n_cat, size=b)
        u = rng.random(b)
        cat = np.minimum((self.log_cum[col] < u[:, None]).sum(axis=1), self.cat_dims[col] - 1)
        value = self.value_offsets[col] + cat
        pick = (rng.random(b) * self.value_counts[value]).astype(np.int64)
        rows = self.rows_by_value[self.value_starts[value] + pick]
        out = np.full((b, n_cat), -1, dtype=np.int64)
        out[np.arange(b), col] = cat
        if self.conditional_idx.size:
            out[:, self.conditional_idx] = self.codes[rows][:, self.conditional_idx]
        return out, rows


class CTGANSynthesizer(BaseSynthesizer[CTGANParams]):
    """Conditional tabular GAN (CTGAN); optionally conditioned on some categorical columns.

    Fitting, conditioning, sampling and persistence come from
    :class:`~genops.workloads.tabular.models.base.BaseSynthesizer`. The metrics of each epoch
    (in :attr:`loss_history`, and passed to ``fit``'s ``on_epoch_end``) are ``epoch`` (from
    0) and the epoch means of ``generator`` (``-critic(fake)`` plus the conditional
    cross-entropy), ``discriminator`` (the critic's Wasserstein loss ``critic(fake) -
    critic(real)``, without the penalty) and ``gradient_penalty`` (already times ``lambda =
    10``); ``loss`` repeats ``generator``. GAN losses do not decrease monotonically; they are
    for monitoring, not for comparing runs.

    Args:
        categorical_columns: columns modelled as categories (values become ``str``).
        continuous_columns: numeric columns (integral ones come back as ``int64``).
        params: hyper-parameters; ``CTGANParams()`` when omitted.
        conditional_columns: subset of ``categorical_columns`` whose blocks of the
            conditional vector are always set (see the module docstring), so they can be fixed
            exactly when sampling and their training joint is reproduced otherwise.
        seed: seeds the encoding, the weights, the training draws (noise, conditional vectors,
            dropout) and the default sampling stream; two CPU fits with the same seed and
            thread count give identical models. The global torch RNG is left as it was.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    """

    _generator: _Generator | None
    _discriminator: _Discriminator | None
    _layout: _Layout | None
    _category_counts: dict[str, list[int]]

    # ------------------------------------------------------------------ networks
    @classmethod
    def _default_params(cls) -> CTGANParams:
        return CTGANParams()

    @classmethod
    def _params_from_dict(cls, values: Mapping[str, Any]) -> CTGANParams:
        return CTGANParams.from_dict(values)

    def _networks(self) -> tuple[_Generator, _Discriminator | None, _Layout]:
        if self._generator is None or self._layout is None:
            raise RuntimeError("CTGANSynthesizer is not fitted; call fit() or load() first.")
        return self._generator, self._discriminator, self._layout

    def _networks_ready(self) -> bool:
        return self._generator is not None and self._layout is not None

    def _drop_networks(self) -> None:
        self._generator = self._discriminator = None
        self._layout = None
        self._category_counts = {}

    def _set_training(self, training: bool) -> None:
        generator, discriminator, _ = self._networks()
        generator.train(training)
        if discriminator is not None:
            discriminator.train(training)

    def _build_modules(self, layout: _Layout) -> tuple[_Generator, _Discriminator]:
        p = self.params
        with torch.random.fork_rng(devices=fork_devices(self.device)):
            torch.manual_seed(self.seed)
            generator = _Generator(
                p.embedding_dim + layout.cond_dim, p.generator_dims, layout.data_dim
            )
            discriminator = _Discriminator(
                layout.data_dim + layout.cond_dim, p.discriminator_dims, p.pac
            )
        return generator.to(self.device), discriminator.to(self.device)

    def _conditional_cat_index(self, layout: _Layout) -> list[int]:
        """Position of each conditional column among the categorical columns (layout order)."""
        return [layout.cat_names.index(c) for c in self._conditional_columns]

    # ------------------------------------------------------------------ fit
    def _fit_networks(
        self,
        df: pd.DataFrame,
        transformer: TabularEncoder,
        cond_codes: np.ndarray,
        end_epoch: EpochCallback,
        progress: bool,
    ) -> None:
        device = self.device
        layout = _Layout.build(transformer, device)
        encoded = transformer.transform(df)
        cat_codes = (
            np.stack(
                [transformer.categorical_codes(encoded, c) for c in layout.cat_names], axis=1
            ).astype(np.int64)
            if layout.n_cat
            else np.zeros((len(df), 0), dtype=np.int64)
        )
        sampler = _ConditionSampler.build(
            cat_codes, layout.cat_dims, self._conditional_cat_index(layout)
        )
        self._category_counts = {
            name: np.bincount(cat_codes[:, c], minlength=int(layout.cat_dims[c])).tolist()
            for c, name in enumerate(layout.cat_names)
        }
        x_all = torch.as_tensor(encoded[:, layout.perm], device=device)
        generator, discriminator = self._build_modules(layout)
        self._generator, self._discriminator, self._layout = generator, discriminator, layout
        with torch.random.fork_rng(devices=fork_devices(device)):
            torch.manual_seed(self.seed)  # dropout draws from the (forked) global generator
            self._train(x_all, layout, sampler, generator, discriminator, end_epoch, progress)

    def _train(
        self,
        x_all: torch.Tensor,
        layout: _Layout,
        sampler: _ConditionSampler,
        generator: _Generator,
        discriminator: _Discriminator,
        end_epoch: EpochCallback,
        progress: bool,
    ) -> None:
        p = self.params
        device = self.device
        opt_g = torch.optim.Adam(
            generator.parameters(),
            lr=p.generator_lr,
            betas=_ADAM_BETAS,
            weight_decay=p.weight_decay,
        )
        opt_d = torch.optim.Adam(
            discriminator.parameters(),
            lr=p.discriminator_lr,
            betas=_ADAM_BETAS,
            weight_decay=p.weight_decay,
        )
        gen = torch.Generator(device=device)
        gen.manual_seed(self.seed)
        rng = np.random.default_rng([self.seed, 2])
        b = p.batch_size
        steps = max(x_all.shape[0] // b, 1)
        generator.train()
        discriminator.train()

        def condition_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            codes_np, rows_np = sampler.draw(b, rng)
            codes = torch.as_tensor(codes_np, device=device)
            rows = torch.as_tensor(rows_np, device=device)
            return codes, layout.cond_onehot(codes), rows

        def noise(cond: torch.Tensor) -> torch.Tensor:
            z = torch.randn((b, p.embedding_dim), generator=gen, device=device)
            return torch.cat([z, cond], dim=1)

        bar = tqdm(range(p.epochs), desc="CTGAN", unit="epoch", disable=not progress)
        for epoch in bar:
            totals = torch.zeros(3, device=device)  # generator, critic, penalty
            for _ in range(steps):
                for _ in range(p.discriminator_steps):
                    _, cond, rows = condition_batch()
                    with torch.no_grad():
                        fake = layout.activate(generator(noise(cond)), gen)
                    fake_in = torch.cat([fake, cond], dim=1)
                    real_in = torch.cat([x_all[rows], cond], dim=1)
                    critic = discriminator(fake_in).mean() - discriminator(real_in).mean()
                    penalty = self._gradient_penalty(discriminator, real_in, fake_in, gen)
                    opt_d.zero_grad(set_to_none=True)
                    (critic + penalty).backward()
                    opt_d.step()
                    totals[1:] += torch.stack([critic.detach(), penalty.detach()])

                codes, cond, _ = condition_batch()
                raw = generator(noise(cond))
                fake_in = torch.cat([layout.activate(raw, gen), cond], dim=1)
                discriminator.requires_grad_(False)
                adversarial = -discriminator(fake_in).mean()
                discriminator.requires_grad_(True)
                loss_g = adversarial + layout.conditional_cross_entropy(raw, codes)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                totals[0] += loss_g.detach()
            g_mean, d_sum, gp_sum = totals.tolist()
            g_mean /= steps
            d_steps = steps * p.discriminator_steps
            metrics: dict[str, float] = {
                "epoch": epoch,
                "loss": g_mean,
                "generator": g_mean,
                "discriminator": d_sum / d_steps,
                "gradient_penalty": gp_sum / d_steps,
            }
            if not all(np.isfinite(v) for v in metrics.values()):
                raise FloatingPointError(f"CTGAN loss is not finite at epoch {epoch}: {metrics}")
            bar.set_postfix(g=f"{metrics['generator']:.3f}", d=f"{metrics['discriminator']:.3f}")
            end_epoch(epoch, metrics)
        bar.close()

    def _gradient_penalty(
        self,
        discriminator: _Discriminator,
        real: torch.Tensor,
        fake: torch.Tensor,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """WGAN-GP on pac-packed inputs: one interpolation weight per pac group."""
        pac = self.params.pac
        alpha = torch.rand((real.shape[0] // pac, 1), generator=gen, device=real.device)
        alpha = alpha.repeat_interleave(pac, dim=0)
        interpolates = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
        scores = discriminator(interpolates)
        (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
        norms = grads.reshape(-1, pac * real.shape[1]).norm(2, dim=1)
        return ((norms - 1.0) ** 2).mean() * _GP_LAMBDA

    # ------------------------------------------------------------------ sampling
    def _sampling_cat_codes(
        self, cond_codes: np.ndarray | None, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``(n, n_cat)`` blocks of the conditional vector used for sampling."""
        layout = self._networks()[2]
        out = np.full((n, layout.n_cat), -1, dtype=np.int64)
        if cond_codes is not None:
            out[:, self._conditional_cat_index(layout)] = cond_codes
        elif layout.n_cat:
            # CTGAN's sampling vector: a column uniformly, a value with its training frequency.
            col = rng.integers(0, layout.n_cat, size=n)
            u = rng.random(n)
            for c, name in enumerate(layout.cat_names):
                rows = np.flatnonzero(col == c)
                counts = np.asarray(self._category_counts[name], dtype=np.float64)
                cum = np.cumsum(counts / counts.sum())
                out[rows, c] = np.minimum(np.searchsorted(cum, u[rows]), len(counts) - 1)
        return out

    @torch.inference_mode()
    def _generate_encoded(
        self,
        cond_codes: np.ndarray | None,
        n: int,
        rng: np.random.Generator,
        gen: torch.Generator,
        batch_size: int,
    ) -> np.ndarray:
        generator, _, layout = self._networks()
        cat_codes = self._sampling_cat_codes(cond_codes, n, rng)
        emb = self.params.embedding_dim
        nt = layout.n_tanh
        chunks: list[np.ndarray] = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = torch.randn((m, emb), generator=gen, device=self.device)
            codes = torch.as_tensor(cat_codes[start : start + m], device=self.device)
            out = generator(torch.cat([z, layout.cond_onehot(codes)], dim=1))
            if nt:
                out[:, :nt] = torch.tanh(out[:, :nt])
            if layout.n_spans:
                # Gumbel-max: argmax of logits + Gumbel noise is a draw from the softmax.
                u = torch.rand((m, out.shape[1] - nt), generator=gen, device=self.device)
                out[:, nt:] -= torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
            chunks.append(out.float().cpu().numpy())
        return np.concatenate(chunks, axis=0)[:, layout.inv_perm]

    # ------------------------------------------------------------------ persistence
    def _network_modules(self) -> dict[str, nn.Module]:
        generator, discriminator, _ = self._networks()
        modules: dict[str, nn.Module] = {"generator": generator}
        if discriminator is not None:
            modules["discriminator"] = discriminator
        return modules

    def _family_meta(self) -> dict[str, Any]:
        return {"category_counts": self._category_counts}

    def _dims(self) -> tuple[int, int]:
        layout = self._networks()[2]
        return layout.data_dim, layout.cond_dim

    def _restore_networks(
        self,
        transformer: TabularEncoder,
        state: Mapping[str, dict[str, torch.Tensor]],
        meta: Mapping[str, Any],
    ) -> None:
        layout = _Layout.build(transformer, self.device)
        generator, discriminator = self._build_modules(layout)
        generator.load_state_dict(state["generator"])
        generator.eval()
        if "discriminator" in state:
            discriminator.load_state_dict(state["discriminator"])
            discriminator.eval()
            self._discriminator = discriminator
        self._category_counts = {
            k: [int(v) for v in vs] for k, vs in meta["category_counts"].items()
        }
        self._generator = generator
        self._layout = layout
