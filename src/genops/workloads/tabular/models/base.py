"""The interface every synthesizer family implements, and the base class TVAE and CTGAN share.

:class:`Synthesizer` is the protocol the pipeline relies on. :class:`BaseSynthesizer` holds
everything the families have in common (bookkeeping, conditioning, rejection sampling,
persistence); a family implements only its networks.
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
import pandas as pd
import torch
from torch import nn

from genops.core.device import apply_thread_env, is_int_like, resolve_device
from genops.workloads.tabular.models.tabular_encoding import (
    ContinuousColumnInfo,
    TabularEncoder,
    _describe_values,
    category_codes,
)

__all__ = ["BaseSynthesizer", "EpochCallback", "Synthesizer", "fork_devices"]

EpochCallback = Callable[[int, dict[str, float]], None]
"""Called after each epoch with ``(epoch, metrics)``; ``epoch`` counts from 0.

It may raise (e.g. ``optuna.TrialPruned``) to stop training; the exception propagates out of
``fit``.
"""


@runtime_checkable
class Synthesizer(Protocol):
    """A fitted-or-not tabular generator that can be saved, loaded and sampled."""

    @property
    def loss_history(self) -> list[dict[str, float]]:
        """One entry per finished epoch (keys include ``epoch`` and ``loss``)."""
        ...

    @property
    def columns(self) -> list[str]:
        """Training columns in training order (empty before ``fit``)."""
        ...

    @property
    def conditional_columns(self) -> list[str]:
        """Categorical columns the model is conditioned on (may be empty)."""
        ...

    @property
    def categories(self) -> dict[str, list[str]]:
        """Allowed values of every categorical column (empty before ``fit``)."""
        ...

    def fit(
        self,
        df: pd.DataFrame,
        on_epoch_end: EpochCallback | None = None,
        progress: bool = True,
    ) -> Self: ...

    def sample(
        self,
        n: int,
        conditions: dict[str, str] | None = None,
        seed: int | None = None,
        batch_size: int = 10_000,
    ) -> pd.DataFrame: ...

    def sample_conditions(
        self,
        frame: pd.DataFrame,
        seed: int | None = None,
        batch_size: int = 10_000,
    ) -> pd.DataFrame: ...

    def save(self, path: str | Path) -> None: ...

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self: ...


# ---------------------------------------------------------------------- shared base class
class _Params(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


P = TypeVar("P", bound=_Params)

FORMAT_VERSION = 1

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
TRANSFORMER_STEM = "transformer"
# Rejection sampling gives up after max(_REJECTION_FACTOR * n, _REJECTION_MIN_ROWS) rows.
_REJECTION_FACTOR = 100
_REJECTION_MIN_ROWS = 100_000


def fork_devices(device: torch.device) -> list[int]:
    """The CUDA device ``torch.random.fork_rng`` must fork for ``device`` (none on CPU)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


class BaseSynthesizer(ABC, Generic[P]):
    """What every tabular synthesizer family shares, as SDV's ``BaseSynthesizer`` does.

    The base class owns the column declarations, the :class:`TabularEncoder`, the fit/sample
    bookkeeping (the epoch callback, ``loss_history``, the seeded sampling streams), the
    conditioning (the training joint of the conditional columns, condition vectors drawn from
    it, the ``sample_conditions`` frame) and rejection sampling for conditions on other
    categorical columns, and ``save``/``load``. A family implements its networks: how they
    are built and trained (:meth:`_fit_networks`), how they turn condition codes into encoded
    rows (:meth:`_generate_encoded`), and how they are saved and restored.

    Args:
        categorical_columns: columns modelled as categories (values become ``str``).
        continuous_columns: numeric columns (integral ones come back as ``int64``).
        params: the family's hyper-parameters; its defaults when omitted.
        conditional_columns: subset of ``categorical_columns`` the model is conditioned on,
            so they can be fixed exactly when sampling.
        seed: seeds the encoding, the weights, the training draws and the default sampling
            stream.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    """

    def __init__(
        self,
        categorical_columns: Sequence[str],
        continuous_columns: Sequence[str],
        params: P | None = None,
        conditional_columns: Sequence[str] | None = None,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.categorical_columns = list(categorical_columns)
        self.continuous_columns = list(continuous_columns)
        # Validates overlaps / duplicates / emptiness early.
        TabularEncoder(self.categorical_columns, self.continuous_columns)
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
        self.params = params if params is not None else self._default_params()
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.loss_history: list[dict[str, float]] = []

        self._transformer: TabularEncoder | None = None
        self._cond_combos = np.zeros((0, len(conditional)), dtype=np.int64)
        self._cond_counts = np.zeros(0, dtype=np.int64)
        self._n_training_rows = 0
        self._sample_rng = np.random.default_rng(self.seed)
        self._drop_networks()

    # ------------------------------------------------------------------ what a family implements
    @classmethod
    @abstractmethod
    def _default_params(cls) -> P:
        """The family's default hyper-parameters (``params=None``)."""

    @classmethod
    @abstractmethod
    def _params_from_dict(cls, values: Mapping[str, Any]) -> P:
        """The family's hyper-parameters from their saved ``to_dict()`` form."""

    @abstractmethod
    def _networks_ready(self) -> bool:
        """Whether the family's networks are built (trained or loaded)."""

    @abstractmethod
    def _drop_networks(self) -> None:
        """Forget the networks and what was derived with them (the model becomes unfitted)."""

    @abstractmethod
    def _set_training(self, training: bool) -> None:
        """Put the networks in training (``True``) or evaluation (``False``) mode."""

    @abstractmethod
    def _fit_networks(
        self,
        df: pd.DataFrame,
        transformer: TabularEncoder,
        cond_codes: np.ndarray,
        end_epoch: EpochCallback,
        progress: bool,
    ) -> None:
        """Build the networks, make them the model's, and train them on ``df``.

        ``cond_codes`` holds the conditional columns' category codes of every row of ``df``.
        ``end_epoch(epoch, metrics)`` must run after every epoch, once the metrics are known
        to be finite; it records them and runs the user's callback.
        """

    @abstractmethod
    def _generate_encoded(
        self,
        cond_codes: np.ndarray | None,
        n: int,
        rng: np.random.Generator,
        gen: torch.Generator,
        batch_size: int,
    ) -> np.ndarray:
        """``n`` encoded rows (the transformer's column order) for these conditional codes."""

    def _generate_encoded_many(
        self,
        parts: Sequence[tuple[np.ndarray | None, int, np.random.Generator, torch.Generator]],
        batch_size: int,
    ) -> list[np.ndarray]:
        """:meth:`_generate_encoded` for several requests, each ``(cond_codes, n, rng, gen)``
        with its own generators; one encoded array per request, in order.

        The default calls :meth:`_generate_encoded` once per request. A family may override it
        to run its network once over all of them: each request's noise must then still be
        drawn from its own generators, in the order :meth:`_generate_encoded` draws it, so a
        seed gives the same rows alone or batched (up to the last bits of float arithmetic
        over a larger matrix)."""
        return [
            self._generate_encoded(codes, n, rng, gen, batch_size) for codes, n, rng, gen in parts
        ]

    @abstractmethod
    def _network_modules(self) -> dict[str, nn.Module]:
        """The modules whose state dicts ``model.pt`` holds, by key."""

    @abstractmethod
    def _restore_networks(
        self,
        transformer: TabularEncoder,
        state: Mapping[str, dict[str, torch.Tensor]],
        meta: Mapping[str, Any],
    ) -> None:
        """Rebuild the networks from ``model.pt``'s state dicts (evaluation mode)."""

    @abstractmethod
    def _dims(self) -> tuple[int, int]:
        """``(data_dim, cond_dim)`` recorded in ``meta.json``."""

    # ------------------------------------------------------------------ condition vectors
    # The families that feed the conditional columns as one concatenated one-hot vector
    # (TVAE, diffusion) share these; they reset both attributes in ``_drop_networks``.
    _cond_offsets: list[int]
    _cond_dim: int

    def _setup_conditions(self, transformer: TabularEncoder) -> None:
        """Offsets of each conditional column's one-hot block in the condition vector."""
        cats = transformer.categories
        offsets: list[int] = []
        dim = 0
        for col in self._conditional_columns:
            offsets.append(dim)
            dim += len(cats[col])
        self._cond_offsets = offsets
        self._cond_dim = dim

    def _cond_onehot(self, codes: np.ndarray) -> np.ndarray:
        """``(n, cond_dim)`` float32 condition vectors for ``(n, n_conditional)`` codes."""
        out = np.zeros((codes.shape[0], self._cond_dim), dtype=np.float32)
        rows = np.arange(codes.shape[0])
        for j, offset in enumerate(self._cond_offsets):
            out[rows, offset + codes[:, j]] = 1.0
        return out

    def _family_meta(self) -> dict[str, Any]:
        """Extra ``meta.json`` entries of the family (written after ``categories``)."""
        return {}

    # ------------------------------------------------------------------ properties
    @property
    def conditional_columns(self) -> list[str]:
        return list(self._conditional_columns)

    @property
    def fitted(self) -> bool:
        return self._transformer is not None and self._networks_ready()

    @property
    def transformer(self) -> TabularEncoder:
        return self._require_transformer()

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

    def _require_transformer(self) -> TabularEncoder:
        if self._transformer is None or not self._networks_ready():
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load() first.")
        return self._transformer

    def _unfit(self) -> None:
        self._transformer = None
        self._drop_networks()

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

    def _condition_codes_of(self, df: pd.DataFrame, transformer: TabularEncoder) -> np.ndarray:
        cats = transformer.categories
        codes = np.empty((len(df), len(self._conditional_columns)), dtype=np.int64)
        for j, col in enumerate(self._conditional_columns):
            values = df[col].astype(str).to_numpy(dtype=object)
            codes[:, j] = category_codes(values, cats[col])
        return codes

    def fit(
        self,
        df: pd.DataFrame,
        on_epoch_end: EpochCallback | None = None,
        progress: bool = True,
    ) -> Self:
        """Train on ``df``; ``on_epoch_end(epoch, metrics)`` runs after every epoch.

        ``metrics`` (also appended to :attr:`loss_history`) holds ``epoch`` (from 0) and the
        family's epoch losses (see the class docstring). The callback may sample from the
        model as it is at that epoch. An exception raised by the callback stops training,
        leaves the model unfitted and propagates.
        """
        self._check_frame(df)
        apply_thread_env()
        transformer = TabularEncoder(
            self.categorical_columns, self.continuous_columns, seed=self.seed
        ).fit(df)
        cond_codes = self._condition_codes_of(df, transformer)
        if self._conditional_columns:
            combos, counts = np.unique(cond_codes, axis=0, return_counts=True)
        else:
            combos, counts = np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)

        # Reset state before training so a failed/pruned fit never leaves a half-old model.
        self._unfit()
        self.loss_history = []

        def install() -> None:
            """Make the trained networks the model's (eval mode, fresh sampling stream)."""
            self._set_training(False)
            self._transformer = transformer
            self._cond_combos = combos.astype(np.int64)
            self._cond_counts = counts.astype(np.int64)
            self._n_training_rows = len(df)
            self._reset_sample_rng()

        def end_epoch(epoch: int, metrics: dict[str, float]) -> None:
            self.loss_history.append(metrics)
            if on_epoch_end is None:
                return
            # The callback may sample from the model as it is now (tuning scores
            # intermediate epochs for pruning): install it, then go back to training.
            install()
            try:
                on_epoch_end(epoch, dict(metrics))
            except BaseException:
                self._unfit()
                raise
            self._set_training(True)

        self._fit_networks(df, transformer, cond_codes, end_epoch, progress)
        install()
        return self

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

    def _decode_arrays(
        self, encoded: np.ndarray, cond_codes: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """The decoded columns as NumPy arrays (see :meth:`TabularEncoder.decode_arrays`)."""
        transformer = self._require_transformer()
        data = transformer.decode_arrays(encoded)
        if cond_codes is not None:
            # The conditional columns are overwritten with the values they were generated for.
            cats = transformer.categories
            for j, col in enumerate(self._conditional_columns):
                data[col] = np.asarray(cats[col], dtype=object)[cond_codes[:, j]]
        return data

    def _decode(self, encoded: np.ndarray, cond_codes: np.ndarray | None) -> pd.DataFrame:
        transformer = self._require_transformer()
        return transformer.frame_of(self._decode_arrays(encoded, cond_codes), transformer.columns)

    def _split_conditions(
        self, conditions: Mapping[str, Any]
    ) -> tuple[dict[int, int], dict[str, int]]:
        """Validate; return ``(conditional column index -> code, other column -> code)``."""
        transformer = self._require_transformer()
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
        fixed through the condition vector and the requested value is what the output holds
        (conditional columns not given are drawn from the training joint, given the fixed
        ones); other categorical columns are met by rejection sampling, which raises
        ``ValueError`` when the value is too rare in the output. With ``seed=None``
        successive calls continue one random stream seeded by the model seed; pass a seed to
        make a call reproducible on its own.
        """
        n, batch_size = self._check_sizes(n, batch_size)
        self._require_transformer()
        fixed, rejected = self._split_conditions(conditions or {})
        rng, gen = self._rngs(seed)
        if not rejected:
            codes = self._draw_condition_codes(n, fixed, rng)
            encoded = self._generate_encoded(codes, n, rng, gen, batch_size)
            return self._decode(encoded, codes)
        encoded, codes = self._sample_rejection(
            n, fixed, rejected, rng, gen, batch_size, conditions or {}
        )
        return self._decode(encoded, codes)

    @staticmethod
    def _check_sizes(n: Any, batch_size: Any) -> tuple[int, int]:
        if not is_int_like(n) or n <= 0:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if not is_int_like(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(n), int(batch_size)

    def sample_arrays_many(
        self,
        requests: Sequence[tuple[int, Mapping[str, Any] | None, int | None]],
        batch_size: int = 10_000,
    ) -> list[dict[str, np.ndarray] | ValueError]:
        """Several :meth:`sample` calls ``(n, conditions, seed)`` at once, for a server that
        answers concurrent requests together; each answer is ``column -> NumPy array`` (the
        values :meth:`sample` would put in its frame, ``str`` objects for categories), or
        the ``ValueError`` that :meth:`sample` would have raised for that request alone (a
        bad condition, a value too rare to meet): one bad request does not fail the others.

        The same seed gives the same rows as :meth:`sample`: each request draws its
        condition codes and noise from its own generators, seeded as :meth:`sample` seeds
        them, in request order (so ``seed=None`` requests take the model's stream in that
        order too). The requests' encoded rows are then decoded in one pass and split.
        Categorical values are identical; a family whose network runs over the whole batch
        at once (see :meth:`_generate_encoded_many`) may differ from one request alone in
        the last bits of a continuous value. Requests with conditions met by rejection
        sampling (on non-conditional columns) are sampled on their own, as :meth:`sample`
        does, and decoded with the rest.
        """
        transformer = self._require_transformer()
        if not is_int_like(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
        results: list[dict[str, np.ndarray] | ValueError | None] = [None] * len(requests)
        jobs: list[tuple[int, np.ndarray | None, int, np.random.Generator, torch.Generator]] = []
        done: list[tuple[int, np.ndarray, np.ndarray | None]] = []  # rejection-sampled
        for i, (n, conditions, seed) in enumerate(requests):
            try:
                n, _ = self._check_sizes(n, batch_size)
                fixed, rejected = self._split_conditions(conditions or {})
                rng, gen = self._rngs(seed)
                if rejected:
                    encoded, codes = self._sample_rejection(
                        n, fixed, rejected, rng, gen, batch_size, conditions or {}
                    )
                    done.append((i, encoded, codes))
                    continue
                codes = self._draw_condition_codes(n, fixed, rng)
            except ValueError as exc:
                results[i] = exc
                continue
            jobs.append((i, codes, n, rng, gen))
        generated = self._generate_encoded_many(
            [(codes, n, rng, gen) for _, codes, n, rng, gen in jobs], batch_size
        )
        parts = [(i, enc, codes) for (i, codes, *_), enc in zip(jobs, generated, strict=True)]
        parts += done
        if parts:
            encoded_all = np.concatenate([enc for _, enc, _ in parts], axis=0)
            codes_all = (
                np.concatenate([c for _, _, c in parts if c is not None], axis=0)
                if self._conditional_columns
                else None
            )
            decoded = self._decode_arrays(encoded_all, codes_all)
            columns = transformer.columns
            start = 0
            for i, enc, _ in parts:
                stop = start + enc.shape[0]
                results[i] = {name: decoded[name][start:stop] for name in columns}
                start = stop
        return [r if r is not None else ValueError("not sampled") for r in results]

    def _sample_rejection(
        self,
        n: int,
        fixed: Mapping[int, int],
        rejected: Mapping[str, int],
        rng: np.random.Generator,
        gen: torch.Generator,
        batch_size: int,
        conditions: Mapping[str, Any],
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` encoded rows (and their condition codes) that meet ``rejected``."""
        transformer = self._require_transformer()
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
            encoded = self._generate_encoded(codes, m, rng, gen, batch_size)
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
        return encoded_all, codes_all

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
        transformer = self._require_transformer()
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
        encoded = self._generate_encoded(all_codes, n, rng, gen, batch_size)
        return self._decode(encoded, all_codes)

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
        """Write ``model.pt``, ``transformer.json``/``.npz`` and ``meta.json`` into ``path``.

        ``model.pt`` holds the state dicts of the family's networks (tensors only, read back
        with ``weights_only=True``).
        """
        transformer = self._require_transformer()
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
            for name, module in self._network_modules().items()
        }
        torch.save(state, directory / MODEL_FILE)
        transformer.save(directory, stem=TRANSFORMER_STEM)
        data_dim, cond_dim = self._dims()
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
            **self._family_meta(),
            "condition_frequencies": self.condition_frequencies(),
            "n_training_rows": self._n_training_rows,
            "data_dim": data_dim,
            "cond_dim": cond_dim,
            "loss_history": self.loss_history,
            "versions": {"torch": torch.__version__, "numpy": np.__version__},
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        """Load a directory written by :meth:`save` (weights are mapped onto ``device``)."""
        directory = Path(path)
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        if meta.get("class_name") != cls.__name__:
            raise ValueError(
                f"{directory} holds a {meta.get('class_name')!r}, not a {cls.__name__!r}; "
                "use genops.workloads.tabular.models.load_synthesizer()."
            )
        version = int(meta.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"Model format version {version} is newer than supported ({FORMAT_VERSION})."
            )
        obj = cls(
            meta["categorical_columns"],
            meta["continuous_columns"],
            params=cls._params_from_dict(meta["params"]),
            conditional_columns=meta["conditional_columns"] or None,
            seed=int(meta["seed"]),
            device=device,
        )
        transformer = TabularEncoder.load(directory, stem=TRANSFORMER_STEM)
        state = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
        obj._restore_networks(transformer, state, meta)
        cats = transformer.categories
        freqs = meta["condition_frequencies"]
        conds = obj._conditional_columns
        obj._cond_combos = np.array(
            [[cats[c].index(f["values"][c]) for c in conds] for f in freqs], dtype=np.int64
        ).reshape(len(freqs), len(conds))
        obj._cond_counts = np.array([int(f["count"]) for f in freqs], dtype=np.int64)
        obj._transformer = transformer
        obj._n_training_rows = int(meta.get("n_training_rows", 0))
        obj.loss_history = [dict(entry) for entry in meta.get("loss_history", [])]
        obj._reset_sample_rng()
        return obj

    def __repr__(self) -> str:
        state = f"fitted on {self._n_training_rows} rows" if self.fitted else "unfitted"
        return (
            f"{type(self).__name__}({state}, conditional_columns={self._conditional_columns}, "
            f"params={self.params})"
        )
