"""TVAE tabular synthesizer (Xu et al., 2019), with an optional conditional (CVAE) variant.

The encoding is :class:`~genops.workloads.tabular.models.tabular_encoding.TabularEncoder`;
fitting, conditioning, sampling and persistence come from
:class:`~genops.workloads.tabular.models.base.BaseSynthesizer`. The encoder maps an encoded
row (plus, for the conditional variant, a one-hot condition vector) to a Gaussian posterior;
the decoder maps a latent draw (plus the condition vector) back to per-span outputs and
learns one noise scale per continuous column.

Sampling draws categorical blocks (and the mixture mode of continuous columns) from the
decoder's softmax (CTGAN's TVAE takes the argmax instead) and adds the learned Gaussian
noise to the ``tanh`` scalars.
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
from genops.workloads.tabular.models.tabular_encoding import TabularEncoder

__all__ = ["TVAEParams", "TVAESynthesizer"]

_SIGMA_MIN = 0.01
_SIGMA_MAX = 1.0
_SIGMA_INIT = 0.1


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
    def build(cls, transformer: TabularEncoder, device: torch.device) -> _Layout:
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


class TVAESynthesizer(BaseSynthesizer[TVAEParams]):
    """Tabular VAE; optionally a CVAE conditioned on some categorical columns.

    Fitting, conditioning, sampling and persistence come from
    :class:`~genops.workloads.tabular.models.base.BaseSynthesizer`. The metrics of each epoch
    (in :attr:`loss_history`, and passed to ``fit``'s ``on_epoch_end``) are ``epoch`` (from
    0), ``loss``, ``reconstruction`` and ``kld``, each the mean over the epoch's batches;
    ``reconstruction`` already includes ``loss_factor`` and ``loss`` is their sum (it can go
    negative: the Gaussian term includes ``log(sigma)``).

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

    _encoder: _Encoder | None
    _decoder: _Decoder | None
    _layout: _Layout | None

    # ------------------------------------------------------------------ networks
    @classmethod
    def _default_params(cls) -> TVAEParams:
        return TVAEParams()

    @classmethod
    def _params_from_dict(cls, values: Mapping[str, Any]) -> TVAEParams:
        return TVAEParams.from_dict(values)

    def _networks(self) -> tuple[_Encoder, _Decoder, _Layout]:
        if self._encoder is None or self._decoder is None or self._layout is None:
            raise RuntimeError("TVAESynthesizer is not fitted; call fit() or load() first.")
        return self._encoder, self._decoder, self._layout

    def _networks_ready(self) -> bool:
        return self._encoder is not None and self._decoder is not None and self._layout is not None

    def _drop_networks(self) -> None:
        self._encoder = self._decoder = self._layout = None
        self._cond_offsets = []
        self._cond_dim = 0

    def _set_training(self, training: bool) -> None:
        encoder, decoder, _ = self._networks()
        encoder.train(training)
        decoder.train(training)

    def _build_modules(self, data_dim: int, n_sigmas: int) -> tuple[_Encoder, _Decoder]:
        p = self.params
        with torch.random.fork_rng(devices=fork_devices(self.device)):
            torch.manual_seed(self.seed)
            encoder = _Encoder(data_dim + self._cond_dim, p.compress_dims, p.embedding_dim)
            decoder = _Decoder(
                p.embedding_dim + self._cond_dim, p.decompress_dims, data_dim, n_sigmas
            )
        return encoder.to(self.device), decoder.to(self.device)

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
        encoder, decoder = self._build_modules(layout.data_dim, layout.n_tanh)
        self._encoder, self._decoder, self._layout = encoder, decoder, layout
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
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            end_epoch(epoch, metrics)
        bar.close()

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

    # ------------------------------------------------------------------ sampling
    @torch.inference_mode()
    def _generate_encoded(
        self,
        cond_codes: np.ndarray | None,
        n: int,
        rng: np.random.Generator,
        gen: torch.Generator,
        batch_size: int,
    ) -> np.ndarray:
        _, decoder, layout = self._networks()
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

    @torch.inference_mode()
    def _generate_encoded_many(
        self,
        parts: Sequence[tuple[np.ndarray | None, int, np.random.Generator, torch.Generator]],
        batch_size: int,
    ) -> list[np.ndarray]:
        """Several requests through the decoder in one pass (a server's micro-batch). Each
        request draws its noise from its own generator in the order :meth:`_generate_encoded`
        does (z, then the tanh noise, then the Gumbel uniforms; the decoder draws nothing),
        so a seed gives the same rows alone or batched."""
        if len(parts) < 2 or sum(n for _, n, _, _ in parts) > batch_size:
            return super()._generate_encoded_many(parts, batch_size)
        _, decoder, layout = self._networks()
        emb, nt = self.params.embedding_dim, layout.n_tanh
        zs: list[torch.Tensor] = []
        noises: list[torch.Tensor] = []
        uniforms: list[torch.Tensor] = []
        for codes, n, _, gen in parts:
            z = torch.randn((n, emb), generator=gen, device=self.device)
            if codes is not None:
                cond = torch.as_tensor(self._cond_onehot(codes), device=self.device)
                z = torch.cat([z, cond], dim=1)
            zs.append(z)
            if nt:
                noises.append(torch.randn((n, nt), generator=gen, device=self.device))
            if layout.n_spans:
                shape = (n, layout.data_dim - nt)
                uniforms.append(torch.rand(shape, generator=gen, device=self.device))
        out = decoder(torch.cat(zs))
        if nt:
            sigma = decoder.sigma.clamp(_SIGMA_MIN, _SIGMA_MAX)
            out[:, :nt] = torch.tanh(out[:, :nt]) + torch.cat(noises) * sigma
        if layout.n_spans:
            u = torch.cat(uniforms).clamp(1e-10, 1.0 - 1e-7)
            out[:, nt:] -= torch.log(-torch.log(u))
        encoded = out.float().cpu().numpy()[:, layout.inv_perm]
        return np.split(encoded, np.cumsum([n for _, n, _, _ in parts])[:-1])

    # ------------------------------------------------------------------ persistence
    def _network_modules(self) -> dict[str, nn.Module]:
        encoder, decoder, _ = self._networks()
        return {"encoder": encoder, "decoder": decoder}

    def _dims(self) -> tuple[int, int]:
        return self._networks()[2].data_dim, self._cond_dim

    def _restore_networks(
        self,
        transformer: TabularEncoder,
        state: Mapping[str, dict[str, torch.Tensor]],
        meta: Mapping[str, Any],
    ) -> None:
        layout = _Layout.build(transformer, self.device)
        self._setup_conditions(transformer)
        encoder, decoder = self._build_modules(layout.data_dim, layout.n_tanh)
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
        encoder.eval()
        decoder.eval()
        self._encoder, self._decoder, self._layout = encoder, decoder, layout
