"""TVAE tabular synthesizer (Xu et al., 2019), with an optional conditional (CVAE) variant.

The encoding is :class:`~genops.models.transformer.DataTransformer`. The encoder maps an
encoded row (plus, for the conditional variant, a one-hot condition vector) to a Gaussian
posterior; the decoder maps a latent draw (plus the condition vector) back to per-span
outputs and learns one noise scale per continuous column.

Sampling draws categorical blocks (and the mixture mode of continuous columns) from the
decoder's softmax (CTGAN's TVAE takes the argmax instead) and adds the learned Gaussian
noise to the ``tanh`` scalars.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from genops.models.base import EpochCallback
from genops.models.device import apply_thread_env, is_int_like, resolve_device
from genops.models.transformer import (
    ContinuousColumnInfo,
    DataTransformer,
    _describe_values,
    category_codes,
    string_series,
)

__all__ = ["TVAEParams", "TVAESynthesizer"]

FORMAT_VERSION = 1

_MODEL_FILE = "model.pt"
_META_FILE = "meta.json"
_TRANSFORMER_STEM = "transformer"
_SIGMA_MIN = 0.01
_SIGMA_MAX = 1.0
_SIGMA_INIT = 0.1
# Rejection sampling gives up after max(_REJECTION_FACTOR * n, _REJECTION_MIN_ROWS) rows.
_REJECTION_FACTOR = 100
_REJECTION_MIN_ROWS = 100_000


@dataclass(frozen=True)
class TVAEParams:
    """Hyper-parameters of :class:`TVAESynthesizer` (defaults follow SDV/CTGAN's TVAE)."""

    epochs: int = 100
    batch_size: int = 500
    embedding_dim: int = 128
    compress_dims: tuple[int, ...] = (128, 128)
    decompress_dims: tuple[int, ...] = (128, 128)
    l2scale: float = 1e-5
    loss_factor: float = 2.0
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        # Accept lists (e.g. from YAML/JSON) but store tuples so the dataclass stays hashable.
        object.__setattr__(self, "compress_dims", tuple(int(d) for d in self.compress_dims))
        object.__setattr__(self, "decompress_dims", tuple(int(d) for d in self.decompress_dims))
        for name in ("epochs", "batch_size", "embedding_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TVAEParams.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("compress_dims", "decompress_dims"):
            if any(d < 1 for d in getattr(self, name)):
                raise ValueError(f"TVAEParams.{name} must hold positive sizes")
        if self.learning_rate <= 0:
            raise ValueError(f"TVAEParams.learning_rate must be > 0, got {self.learning_rate}")
        if self.l2scale < 0 or self.loss_factor <= 0:
            raise ValueError("TVAEParams.l2scale must be >= 0 and loss_factor > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["compress_dims"] = list(self.compress_dims)
        out["decompress_dims"] = list(self.decompress_dims)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TVAEParams:
        """Build from a mapping; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TVAEParams field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


class _Encoder(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int], embedding_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.ReLU()]
            dim = h
        self.seq = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(dim, embedding_dim)
        self.fc_logvar = nn.Linear(dim, embedding_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.seq(x)
        return self.fc_mu(h), self.fc_logvar(h)


class _Decoder(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int], data_dim: int, n_sigmas: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.ReLU()]
            dim = h
        layers.append(nn.Linear(dim, data_dim))
        self.seq = nn.Sequential(*layers)
        self.sigma = nn.Parameter(torch.full((n_sigmas,), _SIGMA_INIT))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.seq(z)
        return out


@dataclass
class _Layout:
    """How the model orders the encoded columns, and tensors that vectorise the loss.

    The model works on a permuted copy of the transformer's encoding: all ``tanh`` scalars
    first (``n_tanh`` columns), then every softmax span back to back. Both groups are then
    plain slices, and per-span log-sum-exps reduce to one matmul with ``membership``.
    """

    data_dim: int
    n_tanh: int
    perm: np.ndarray  # model column -> transformer column
    inv_perm: np.ndarray  # transformer column -> model column
    span_starts: np.ndarray  # (spans,) start of each softmax span, relative to n_tanh
    span_dims: np.ndarray  # (spans,)
    span_of_col: torch.Tensor  # (n_softmax_cols,) span index of each softmax column
    membership: torch.Tensor  # (n_softmax_cols, spans) one-hot of span_of_col

    @property
    def n_spans(self) -> int:
        return len(self.span_dims)

    @classmethod
    def build(cls, transformer: DataTransformer, device: torch.device) -> _Layout:
        tanh_cols: list[int] = []
        soft_cols: list[int] = []
        dims: list[int] = []
        col = 0
        for span in transformer.output_info:
            block = list(range(col, col + span.dim))
            if span.activation == "tanh":
                tanh_cols.extend(block)
            else:
                soft_cols.extend(block)
                dims.append(span.dim)
            col += span.dim
        perm = np.asarray(tanh_cols + soft_cols, dtype=np.int64)
        dims_arr = np.asarray(dims, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(dims_arr)[:-1]]).astype(np.int64)
        span_of_col = np.repeat(np.arange(len(dims), dtype=np.int64), dims_arr)
        membership = np.zeros((len(soft_cols), len(dims)), dtype=np.float32)
        membership[np.arange(len(soft_cols)), span_of_col] = 1.0
        return cls(
            data_dim=col,
            n_tanh=len(tanh_cols),
            perm=perm,
            inv_perm=np.argsort(perm),
            span_starts=starts,
            span_dims=dims_arr,
            span_of_col=torch.as_tensor(span_of_col, device=device),
            membership=torch.as_tensor(membership, device=device),
        )

    def target_columns(self, model_data: np.ndarray) -> np.ndarray:
        """Active one-hot column of each span, relative to ``n_tanh``: ``(n, spans)``."""
        soft = model_data[:, self.n_tanh :]
        out = np.empty((model_data.shape[0], self.n_spans), dtype=np.int64)
        for i, (s, d) in enumerate(zip(self.span_starts, self.span_dims, strict=True)):
            out[:, i] = s + soft[:, s : s + d].argmax(axis=1)
        return out


class TVAESynthesizer:
    """Tabular VAE; optionally a CVAE conditioned on some categorical columns.

    Args:
        categorical_columns: columns modelled as categories (values become ``str``).
        continuous_columns: numeric columns (integral ones come back as ``int64``).
        params: hyper-parameters; ``TVAEParams()`` when omitted.
        conditional_columns: subset of ``categorical_columns`` whose one-hots are fed to both
            the encoder and the decoder, so they can be fixed exactly when sampling.
        seed: seeds the encoding, the weights and the batch order; two CPU fits with the same
            seed and thread count give identical models.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    """

    def __init__(
        self,
        categorical_columns: Sequence[str],
        continuous_columns: Sequence[str],
        params: TVAEParams | None = None,
        conditional_columns: Sequence[str] | None = None,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.categorical_columns = list(categorical_columns)
        self.continuous_columns = list(continuous_columns)
        # Validates overlaps / duplicates / emptiness early.
        DataTransformer(self.categorical_columns, self.continuous_columns)
        conditional = list(conditional_columns or [])
        not_categorical = [c for c in conditional if c not in self.categorical_columns]
        if not_categorical:
            raise ValueError(
                f"Conditional column(s) {not_categorical} must be among the categorical "
                f"columns {self.categorical_columns}."
            )
        if len(set(conditional)) != len(conditional):
            raise ValueError(f"Duplicate conditional columns: {conditional}")
        self._conditional_columns = conditional
        self.params = params if params is not None else TVAEParams()
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.loss_history: list[dict[str, float]] = []

        self._transformer: DataTransformer | None = None
        self._encoder: _Encoder | None = None
        self._decoder: _Decoder | None = None
        self._layout: _Layout | None = None
        self._cond_offsets: list[int] = []
        self._cond_dim = 0
        self._cond_combos = np.zeros((0, len(conditional)), dtype=np.int64)
        self._cond_counts = np.zeros(0, dtype=np.int64)
        self._n_training_rows = 0
        self._sample_rng = np.random.default_rng(self.seed)

    # ------------------------------------------------------------------ properties
    @property
    def conditional_columns(self) -> list[str]:
        return list(self._conditional_columns)

    @property
    def fitted(self) -> bool:
        return self._decoder is not None

    @property
    def transformer(self) -> DataTransformer:
        return self._require_fitted()[0]

    @property
    def columns(self) -> list[str]:
        return self._transformer.columns if self._transformer is not None else []

    @property
    def categories(self) -> dict[str, list[str]]:
        return self._transformer.categories if self._transformer is not None else {}

    @property
    def dtypes(self) -> dict[str, str]:
        """Output dtype of every column: ``int64``, ``float64`` or ``str``."""
        if self._transformer is None:
            return {}
        out: dict[str, str] = {}
        for info in self._transformer.column_infos:
            if isinstance(info, ContinuousColumnInfo):
                out[info.name] = "int64" if info.is_integer else "float64"
            else:
                out[info.name] = "str"
        return out

    def _require_fitted(self) -> tuple[DataTransformer, _Encoder, _Decoder, _Layout]:
        if (
            self._transformer is None
            or self._encoder is None
            or self._decoder is None
            or self._layout is None
        ):
            raise RuntimeError("TVAESynthesizer is not fitted; call fit() or load() first.")
        return self._transformer, self._encoder, self._decoder, self._layout

    # ------------------------------------------------------------------ setup helpers
    def _build_modules(self, data_dim: int, n_sigmas: int) -> tuple[_Encoder, _Decoder]:
        p = self.params
        fork_devices = (
            [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            if self.device.type == "cuda"
            else []
        )
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(self.seed)
            encoder = _Encoder(data_dim + self._cond_dim, p.compress_dims, p.embedding_dim)
            decoder = _Decoder(
                p.embedding_dim + self._cond_dim, p.decompress_dims, data_dim, n_sigmas
            )
        return encoder.to(self.device), decoder.to(self.device)

    def _setup_conditions(self, transformer: DataTransformer) -> None:
        cats = transformer.categories
        offsets: list[int] = []
        dim = 0
        for col in self._conditional_columns:
            offsets.append(dim)
            dim += len(cats[col])
        self._cond_offsets = offsets
        self._cond_dim = dim

    def _condition_codes_of(self, df: pd.DataFrame, transformer: DataTransformer) -> np.ndarray:
        cats = transformer.categories
        codes = np.empty((len(df), len(self._conditional_columns)), dtype=np.int64)
        for j, col in enumerate(self._conditional_columns):
            values = df[col].astype(str).to_numpy(dtype=object)
            codes[:, j] = category_codes(values, cats[col])
        return codes

    def _cond_onehot(self, codes: np.ndarray) -> np.ndarray:
        out = np.zeros((codes.shape[0], self._cond_dim), dtype=np.float32)
        rows = np.arange(codes.shape[0])
        for j, offset in enumerate(self._cond_offsets):
            out[rows, offset + codes[:, j]] = 1.0
        return out

    def _reset_sample_rng(self) -> None:
        self._sample_rng = np.random.default_rng([self.seed, 1])

    # ------------------------------------------------------------------ fit
    def _check_frame(self, df: pd.DataFrame) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"fit() expects a pandas DataFrame, got {type(df).__name__}")
        declared = self.categorical_columns + self.continuous_columns
        missing = [c for c in declared if c not in df.columns]
        if missing:
            raise ValueError(
                f"Column(s) {missing} declared but missing from the training data "
                f"(available: {list(df.columns)})."
            )
        for col in self.continuous_columns:
            if not pd.api.types.is_numeric_dtype(df[col].dtype):
                raise ValueError(
                    f"Continuous column {col!r} must be numeric, got dtype {df[col].dtype}."
                )
        if len(df) == 0:
            raise ValueError("Cannot fit on an empty data frame.")
        extra = [c for c in df.columns if c not in declared]
        if extra:
            warnings.warn(
                f"Columns {extra} are not declared categorical or continuous and are ignored.",
                stacklevel=3,
            )

    def fit(
        self,
        df: pd.DataFrame,
        on_epoch_end: EpochCallback | None = None,
        progress: bool = True,
    ) -> Self:
        """Train on ``df``; ``on_epoch_end(epoch, metrics)`` runs after every epoch.

        ``metrics`` (also appended to :attr:`loss_history`) holds ``epoch`` (from 0),
        ``loss``, ``reconstruction`` and ``kld``, each the mean over the epoch's batches;
        ``reconstruction`` already includes ``loss_factor`` and ``loss`` is their sum (it can
        go negative: the Gaussian term includes ``log(sigma)``). An exception raised by the
        callback stops training, leaves the model unfitted and propagates.
        """
        self._check_frame(df)
        apply_thread_env()
        p = self.params
        device = self.device

        transformer = DataTransformer(
            self.categorical_columns, self.continuous_columns, seed=self.seed
        ).fit(df)
        layout = _Layout.build(transformer, device)
        data = transformer.transform(df)[:, layout.perm]
        self._setup_conditions(transformer)
        cond_codes = self._condition_codes_of(df, transformer)
        if self._conditional_columns:
            combos, counts = np.unique(cond_codes, axis=0, return_counts=True)
        else:
            combos, counts = np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)

        encoder, decoder = self._build_modules(layout.data_dim, layout.n_tanh)
        optimizer = torch.optim.Adam(
            [*encoder.parameters(), *decoder.parameters()],
            lr=p.learning_rate,
            weight_decay=p.l2scale,
        )
        x_all = torch.as_tensor(data, device=device)
        targets_all = torch.as_tensor(layout.target_columns(data), device=device)
        c_all = (
            torch.as_tensor(self._cond_onehot(cond_codes), device=device)
            if self._cond_dim
            else None
        )
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed)

        # Reset state before training so a failed/pruned fit never leaves a half-old model.
        self._transformer = None
        self._encoder = None
        self._decoder = None
        self._layout = None
        self.loss_history = []

        n = x_all.shape[0]
        batch_size = min(p.batch_size, n)
        encoder.train()
        decoder.train()
        bar = tqdm(range(p.epochs), desc="TVAE", unit="epoch", disable=not progress)
        for epoch in bar:
            # One gather per epoch; batches are then contiguous slices.
            perm = torch.randperm(n, generator=generator, device=device)
            x_epoch = x_all[perm]
            t_epoch = targets_all[perm]
            c_epoch = c_all[perm] if c_all is not None else None
            totals = torch.zeros(2, device=device)
            n_batches = 0
            for start in range(0, n, batch_size):
                real = x_epoch[start : start + batch_size]
                cond = c_epoch[start : start + batch_size] if c_epoch is not None else None
                enc_in = torch.cat([real, cond], dim=1) if cond is not None else real
                mu, logvar = encoder(enc_in)
                std = torch.exp(0.5 * logvar)
                eps = torch.randn(std.shape, generator=generator, device=device)
                z = mu + eps * std
                dec_in = torch.cat([z, cond], dim=1) if cond is not None else z
                recon = decoder(dec_in)
                rec, kld = self._loss(
                    recon,
                    real,
                    t_epoch[start : start + batch_size],
                    decoder.sigma,
                    mu,
                    logvar,
                    layout,
                )
                loss = rec * p.loss_factor + kld
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    decoder.sigma.clamp_(_SIGMA_MIN, _SIGMA_MAX)
                totals += torch.stack([rec.detach() * p.loss_factor, kld.detach()])
                n_batches += 1
            rec_mean, kld_mean = (totals / n_batches).tolist()
            metrics: dict[str, float] = {
                "epoch": epoch,
                "loss": rec_mean + kld_mean,
                "reconstruction": rec_mean,
                "kld": kld_mean,
            }
            if not np.isfinite(metrics["loss"]):
                raise FloatingPointError(f"TVAE loss is not finite at epoch {epoch}: {metrics}")
            self.loss_history.append(metrics)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            if on_epoch_end is not None:
                # The callback may sample from the model as it is now (tuning scores
                # intermediate epochs for pruning): install it, then go back to training.
                self._install(transformer, encoder, decoder, layout, combos, counts, n)
                try:
                    on_epoch_end(epoch, dict(metrics))
                except BaseException:
                    self._transformer = self._encoder = self._decoder = self._layout = None
                    raise
                encoder.train()
                decoder.train()
        bar.close()

        self._install(transformer, encoder, decoder, layout, combos, counts, n)
        return self

    def _install(
        self,
        transformer: DataTransformer,
        encoder: _Encoder,
        decoder: _Decoder,
        layout: _Layout,
        combos: np.ndarray,
        counts: np.ndarray,
        n: int,
    ) -> None:
        """Make the trained networks the model's (eval mode, fresh sampling stream)."""
        encoder.eval()
        decoder.eval()
        self._transformer = transformer
        self._encoder = encoder
        self._decoder = decoder
        self._layout = layout
        self._cond_combos = combos.astype(np.int64)
        self._cond_counts = counts.astype(np.int64)
        self._n_training_rows = n
        self._reset_sample_rng()

    @staticmethod
    def _loss(
        recon: torch.Tensor,
        real: torch.Tensor,
        targets: torch.Tensor,
        sigma: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        layout: _Layout,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction, kld)``, both summed over the batch and divided by its size.

        Gaussian negative log-likelihood (learned sigma) for every tanh scalar, and
        cross-entropy for every softmax span, all spans at once: a per-span max (a constant
        shift, so detached), ``exp``, one matmul to sum each span, ``log``.
        """
        b = recon.shape[0]
        nt = layout.n_tanh
        total = recon.new_zeros(())
        if nt:
            diff = real[:, :nt] - torch.tanh(recon[:, :nt])
            total = total + (diff.pow(2) / (2.0 * sigma.pow(2))).sum()
            total = total + torch.log(sigma).sum() * b
        if layout.n_spans:
            logits = recon[:, nt:]
            index = layout.span_of_col.expand(b, -1)
            with torch.no_grad():
                shift = torch.full(
                    (b, layout.n_spans), -torch.inf, device=recon.device, dtype=recon.dtype
                ).scatter_reduce(1, index, logits, reduce="amax")
            shifted = logits - shift.index_select(1, layout.span_of_col)
            lse = torch.log(torch.exp(shifted) @ layout.membership) + shift
            total = total + (lse - logits.gather(1, targets)).sum()
        kld = -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())
        return total / b, kld / b

    # ------------------------------------------------------------------ sampling internals
    def _rngs(self, seed: int | None) -> tuple[np.random.Generator, torch.Generator]:
        if seed is None:
            seed = int(self._sample_rng.integers(0, 2**62))
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        return np.random.default_rng(int(seed)), gen

    def _draw_condition_codes(
        self, n: int, fixed: Mapping[int, int], rng: np.random.Generator
    ) -> np.ndarray | None:
        """``(n, n_conditional)`` codes: fixed ones as given, the rest from the joint."""
        if not self._conditional_columns:
            return None
        probs = self._cond_counts.astype(np.float64)
        if fixed:
            mask = np.ones(len(probs), dtype=bool)
            for j, code in fixed.items():
                mask &= self._cond_combos[:, j] == code
            if mask.any():  # else: combination unseen, draw the others unconditionally
                probs = probs * mask
        probs = probs / probs.sum()
        idx = rng.choice(len(probs), size=n, p=probs)
        codes = self._cond_combos[idx].copy()
        for j, code in fixed.items():
            codes[:, j] = code
        return codes

    @torch.inference_mode()
    def _generate_encoded(
        self, cond_codes: np.ndarray | None, n: int, gen: torch.Generator, batch_size: int
    ) -> np.ndarray:
        _, _, decoder, layout = self._require_fitted()
        emb = self.params.embedding_dim
        sigma = decoder.sigma.clamp(_SIGMA_MIN, _SIGMA_MAX)
        chunks: list[np.ndarray] = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = torch.randn((m, emb), generator=gen, device=self.device)
            if cond_codes is not None:
                cond = self._cond_onehot(cond_codes[start : start + m])
                z = torch.cat([z, torch.as_tensor(cond, device=self.device)], dim=1)
            out = decoder(z)
            nt = layout.n_tanh
            if nt:
                noise = torch.randn((m, nt), generator=gen, device=self.device)
                out[:, :nt] = torch.tanh(out[:, :nt]) + noise * sigma
            if layout.n_spans:
                # Gumbel-max: argmax of logits + Gumbel noise is a draw from the softmax.
                u = torch.rand((m, out.shape[1] - nt), generator=gen, device=self.device)
                out[:, nt:] -= torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
            chunks.append(out.float().cpu().numpy())
        return np.concatenate(chunks, axis=0)[:, layout.inv_perm]

    def _decode(self, encoded: np.ndarray, cond_codes: np.ndarray | None) -> pd.DataFrame:
        transformer = self._require_fitted()[0]
        frame = transformer.inverse_transform(encoded)
        if cond_codes is not None:
            cats = transformer.categories
            for j, col in enumerate(self._conditional_columns):
                values = np.asarray(cats[col], dtype=object)[cond_codes[:, j]]
                frame[col] = string_series(values, col)
        return frame

    def _split_conditions(
        self, conditions: Mapping[str, Any]
    ) -> tuple[dict[int, int], dict[str, int]]:
        """Validate; return ``(conditional column index -> code, other column -> code)``."""
        transformer = self._require_fitted()[0]
        cats = transformer.categories
        fixed: dict[int, int] = {}
        rejected: dict[str, int] = {}
        for col, raw in conditions.items():
            if col not in transformer.columns:
                raise ValueError(
                    f"Unknown column {col!r} in conditions; categorical columns are "
                    f"{self.categorical_columns}."
                )
            if col not in cats:
                raise ValueError(
                    f"Cannot condition on continuous column {col!r}; conditions are only "
                    f"supported on categorical columns {self.categorical_columns}."
                )
            value = str(raw)
            if value not in cats[col]:
                raise ValueError(
                    f"Unknown value {value!r} for column {col!r}; allowed values: "
                    f"{_describe_values(cats[col])}."
                )
            code = cats[col].index(value)
            if col in self._conditional_columns:
                fixed[self._conditional_columns.index(col)] = code
            else:
                rejected[col] = code
        return fixed, rejected

    # ------------------------------------------------------------------ public sampling
    def sample(
        self,
        n: int,
        conditions: dict[str, str] | None = None,
        seed: int | None = None,
        batch_size: int = 10_000,
    ) -> pd.DataFrame:
        """Generate ``n`` rows with the training columns, order and dtypes.

        ``conditions`` maps categorical columns to required values. Conditional columns are
        fixed through the condition vector (conditional columns not given are drawn from the
        training joint, given the fixed ones); other categorical columns are met by rejection
        sampling, which raises ``ValueError`` when the value is too rare in the output.
        With ``seed=None`` successive calls continue one random stream seeded by the model
        seed; pass a seed to make a call reproducible on its own.
        """
        if not is_int_like(n) or n <= 0:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if not is_int_like(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._require_fitted()
        n = int(n)
        fixed, rejected = self._split_conditions(conditions or {})
        rng, gen = self._rngs(seed)
        if not rejected:
            codes = self._draw_condition_codes(n, fixed, rng)
            return self._decode(self._generate_encoded(codes, n, gen, batch_size), codes)
        return self._sample_rejection(n, fixed, rejected, rng, gen, batch_size, conditions or {})

    def _sample_rejection(
        self,
        n: int,
        fixed: Mapping[int, int],
        rejected: Mapping[str, int],
        rng: np.random.Generator,
        gen: torch.Generator,
        batch_size: int,
        conditions: Mapping[str, Any],
    ) -> pd.DataFrame:
        transformer = self._require_fitted()[0]
        budget = max(_REJECTION_FACTOR * n, _REJECTION_MIN_ROWS)
        kept_enc: list[np.ndarray] = []
        kept_codes: list[np.ndarray] = []
        accepted = 0
        generated = 0
        while accepted < n:
            if generated >= budget:
                raise ValueError(
                    f"Could not generate {n} rows matching {dict(conditions)}: only {accepted} "
                    f"of {generated} generated rows matched, the value is too rare in the "
                    "model's output. Ask for fewer rows, or make the column conditional."
                )
            m = min(batch_size, budget - generated)
            codes = self._draw_condition_codes(m, fixed, rng)
            encoded = self._generate_encoded(codes, m, gen, batch_size)
            generated += m
            mask = np.ones(m, dtype=bool)
            for col, code in rejected.items():
                mask &= transformer.categorical_codes(encoded, col) == code
            kept_enc.append(encoded[mask])
            if codes is not None:
                kept_codes.append(codes[mask])
            accepted += int(mask.sum())
        encoded_all = np.concatenate(kept_enc, axis=0)[:n]
        codes_all = np.concatenate(kept_codes, axis=0)[:n] if kept_codes else None
        return self._decode(encoded_all, codes_all)

    def sample_conditions(
        self,
        frame: pd.DataFrame,
        seed: int | None = None,
        batch_size: int = 10_000,
    ) -> pd.DataFrame:
        """One generated row per row of ``frame`` (columns: some conditional columns).

        Row ``i`` of the result has the conditional values of row ``i`` of ``frame``;
        conditional columns absent from ``frame`` are drawn from the training joint given
        the present ones. The result has a fresh ``RangeIndex``.
        """
        transformer = self._require_fitted()[0]
        if not self._conditional_columns:
            raise ValueError(
                "sample_conditions() needs a model fitted with conditional_columns; "
                "use sample(n, conditions=...) instead."
            )
        if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
            raise ValueError("sample_conditions() needs a non-empty DataFrame of conditions.")
        if not is_int_like(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        cats = transformer.categories
        given: list[int] = []
        for col in frame.columns:
            if col not in self._conditional_columns:
                kind = "not a conditional column" if col in transformer.columns else "unknown"
                raise ValueError(
                    f"Column {col!r} in the conditions frame is {kind}; allowed columns: "
                    f"{self._conditional_columns}."
                )
            given.append(self._conditional_columns.index(str(col)))
        n = len(frame)
        given_codes = np.empty((n, len(given)), dtype=np.int64)
        for k, j in enumerate(given):
            col = self._conditional_columns[j]
            series = frame[col]
            if series.isna().any():
                raise ValueError(f"Conditions column {col!r} has missing values.")
            values = series.astype(str).to_numpy(dtype=object)
            codes = category_codes(values, cats[col])
            if (codes < 0).any():
                bad = sorted(set(values[codes < 0].tolist()))
                raise ValueError(
                    f"Unknown value(s) {_describe_values(bad)} for column {col!r}; allowed "
                    f"values: {_describe_values(cats[col])}."
                )
            given_codes[:, k] = codes
        rng, gen = self._rngs(seed)
        all_codes = np.empty((n, len(self._conditional_columns)), dtype=np.int64)
        if given:
            groups, inverse = np.unique(given_codes, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
        else:
            groups, inverse = np.zeros((1, 0), dtype=np.int64), np.zeros(n, dtype=np.int64)
        for g, group in enumerate(groups):
            rows = np.flatnonzero(inverse == g)
            fixed = {j: int(group[k]) for k, j in enumerate(given)}
            drawn = self._draw_condition_codes(rows.size, fixed, rng)
            assert drawn is not None
            all_codes[rows] = drawn
        return self._decode(self._generate_encoded(all_codes, n, gen, batch_size), all_codes)

    # ------------------------------------------------------------------ persistence
    def condition_frequencies(self) -> list[dict[str, Any]]:
        """Training joint of the conditional columns: ``[{"values": {...}, "count": k}]``."""
        cats = self.categories
        return [
            {
                "values": {
                    col: cats[col][int(combo[j])] for j, col in enumerate(self._conditional_columns)
                },
                "count": int(count),
            }
            for combo, count in zip(self._cond_combos, self._cond_counts, strict=True)
        ]

    def save(self, path: str | Path) -> None:
        """Write ``model.pt``, ``transformer.json``/``.npz`` and ``meta.json`` into ``path``."""
        transformer, encoder, decoder, layout = self._require_fitted()
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
            "decoder": {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
        }
        torch.save(state, directory / _MODEL_FILE)
        transformer.save(directory, stem=_TRANSFORMER_STEM)
        meta = {
            "format_version": FORMAT_VERSION,
            "class_name": type(self).__name__,
            "params": self.params.to_dict(),
            "seed": self.seed,
            "columns": self.columns,
            "categorical_columns": self.categorical_columns,
            "continuous_columns": self.continuous_columns,
            "conditional_columns": self._conditional_columns,
            "dtypes": self.dtypes,
            "categories": self.categories,
            "condition_frequencies": self.condition_frequencies(),
            "n_training_rows": self._n_training_rows,
            "data_dim": layout.data_dim,
            "cond_dim": self._cond_dim,
            "loss_history": self.loss_history,
            "versions": {"torch": torch.__version__, "numpy": np.__version__},
        }
        (directory / _META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        """Load a directory written by :meth:`save` (weights are mapped onto ``device``)."""
        directory = Path(path)
        meta = json.loads((directory / _META_FILE).read_text(encoding="utf-8"))
        if meta.get("class_name") != cls.__name__:
            raise ValueError(
                f"{directory} holds a {meta.get('class_name')!r}, not a {cls.__name__!r}; "
                "use genops.models.load_synthesizer()."
            )
        version = int(meta.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"Model format version {version} is newer than supported ({FORMAT_VERSION})."
            )
        obj = cls(
            meta["categorical_columns"],
            meta["continuous_columns"],
            params=TVAEParams.from_dict(meta["params"]),
            conditional_columns=meta["conditional_columns"] or None,
            seed=int(meta["seed"]),
            device=device,
        )
        transformer = DataTransformer.load(directory, stem=_TRANSFORMER_STEM)
        layout = _Layout.build(transformer, obj.device)
        obj._setup_conditions(transformer)
        encoder, decoder = obj._build_modules(layout.data_dim, layout.n_tanh)
        state = torch.load(directory / _MODEL_FILE, map_location="cpu", weights_only=True)
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
        encoder.eval()
        decoder.eval()
        cats = transformer.categories
        freqs = meta["condition_frequencies"]
        conds = obj._conditional_columns
        obj._cond_combos = np.array(
            [[cats[c].index(f["values"][c]) for c in conds] for f in freqs], dtype=np.int64
        ).reshape(len(freqs), len(conds))
        obj._cond_counts = np.array([int(f["count"]) for f in freqs], dtype=np.int64)
        obj._transformer = transformer
        obj._encoder = encoder
        obj._decoder = decoder
        obj._layout = layout
        obj._n_training_rows = int(meta.get("n_training_rows", 0))
        obj.loss_history = [dict(entry) for entry in meta.get("loss_history", [])]
        obj._reset_sample_rng()
        return obj

    def __repr__(self) -> str:
        state = f"fitted on {self._n_training_rows} rows" if self.fitted else "unfitted"
        return (
            f"TVAESynthesizer({state}, conditional_columns={self._conditional_columns}, "
            f"params={self.params})"
        )
