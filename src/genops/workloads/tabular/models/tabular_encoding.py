"""Reversible tabular encoding for the synthesizers (CTGAN/TVAE style).

Continuous columns use mode-specific normalisation: a variational Gaussian mixture
(:class:`sklearn.mixture.BayesianGaussianMixture`) is fitted per column, and each value is
encoded as a ``tanh`` scalar (its offset from the mode's mean in units of ``4 * std``) plus a
one-hot of the mode. Categorical columns are one-hot encoded.

One addition to CTGAN's scheme: a single value that holds at least ``point_mass_threshold`` of
a continuous column (the zeros of ``capital_gain``, the 40 of ``hours_per_week``) becomes a
mode of its own that decodes to exactly that value; the mixture is fitted on the other values.
Without it the learned output noise smears such spikes (0 comes back as 0..5), which is what
most hurts the marginal fidelity of zero-inflated columns.

Everything the transformer needs after ``fit`` is plain Python data and numpy arrays, so it
pickles, and :meth:`TabularEncoder.to_state` / :meth:`TabularEncoder.from_state` give a JSON
document plus a dict of arrays (saved as ``.npz``) for a version-independent round trip.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

__all__ = [
    "CategoricalColumnInfo",
    "ContinuousColumnInfo",
    "SpanInfo",
    "TabularEncoder",
    "category_codes",
]

TRANSFORMER_FORMAT_VERSION = 1

Activation = Literal["tanh", "softmax"]

_GMM_WEIGHT_THRESHOLD = 0.005
_GMM_MAX_FIT_ROWS = 5_000
_GMM_WEIGHT_PRIOR = 0.001
_MIN_STD = 1e-6
_SCALAR_CLIP = 0.99
_MAX_LISTED_VALUES = 20


class SpanInfo(NamedTuple):
    """One contiguous block of the encoded vector: its width and the activation that fits it."""

    dim: int
    activation: Activation


@dataclass(frozen=True)
class ContinuousColumnInfo:
    """Fitted mixture of one continuous column (only the kept components)."""

    name: str
    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray
    is_point: np.ndarray  # bool per mode: a point mass, decoded to exactly its mean
    is_integer: bool
    min: float
    max: float

    @property
    def n_modes(self) -> int:
        return int(self.means.shape[0])

    @property
    def output_dim(self) -> int:
        return 1 + self.n_modes


@dataclass(frozen=True)
class CategoricalColumnInfo:
    """Categories of one categorical column, in encoding order."""

    name: str
    categories: list[str]

    @property
    def output_dim(self) -> int:
        return len(self.categories)


ColumnInfo = ContinuousColumnInfo | CategoricalColumnInfo


def string_series(values: np.ndarray | Sequence[str], name: str) -> pd.Series:
    """A series of Python ``str`` values in the installed pandas' default string dtype."""
    return pd.Series(np.asarray(values, dtype=object), name=name, dtype="str")


def category_codes(values: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """Position of each value in ``categories`` (``int64``), ``-1`` where it is not one."""
    codes = pd.Index(list(categories), dtype=object).get_indexer(pd.Index(values, dtype=object))
    return np.asarray(codes, dtype=np.int64)


def _describe_values(values: Sequence[str]) -> str:
    shown = [repr(v) for v in values[:_MAX_LISTED_VALUES]]
    more = len(values) - len(shown)
    return "[" + ", ".join(shown) + (f", ... ({more} more)" if more > 0 else "") + "]"


def _continuous_values(df: pd.DataFrame, column: str) -> np.ndarray:
    series = df[column]
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise ValueError(
            f"Continuous column {column!r} must be numeric, got dtype {series.dtype}; "
            "declare it as categorical or convert it first."
        )
    values = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"Continuous column {column!r} contains missing or infinite values; "
            "drop or impute them before fitting/transforming."
        )
    return values


def _categorical_values(df: pd.DataFrame, column: str) -> np.ndarray:
    series = df[column]
    if series.isna().any():
        raise ValueError(
            f"Categorical column {column!r} contains missing values; "
            "drop them or map them to an explicit category first."
        )
    return np.asarray(series.astype(str).to_numpy(dtype=object))


class TabularEncoder:
    """Mode-specific normalisation for continuous columns, one-hot for categorical ones.

    Args:
        categorical_columns: columns encoded one-hot (values are treated as strings).
        continuous_columns: numeric columns encoded with a Bayesian Gaussian mixture.
        max_clusters: upper bound on the mixture components per continuous column.
        point_mass_threshold: a continuous value this frequent (fraction of rows) gets an exact
            mode of its own; ``1.0`` or more turns this off.
        seed: seeds the mixture fit, its row subsample and the mode draws in ``transform``.
    """

    def __init__(
        self,
        categorical_columns: Sequence[str],
        continuous_columns: Sequence[str],
        max_clusters: int = 10,
        seed: int = 0,
        point_mass_threshold: float = 0.05,
    ) -> None:
        categorical = list(categorical_columns)
        continuous = list(continuous_columns)
        overlap = sorted(set(categorical) & set(continuous))
        if overlap:
            raise ValueError(f"Columns declared both categorical and continuous: {overlap}")
        for kind, cols in (("categorical", categorical), ("continuous", continuous)):
            dupes = sorted({c for c in cols if cols.count(c) > 1})
            if dupes:
                raise ValueError(f"Duplicate {kind} columns: {dupes}")
        if not categorical and not continuous:
            raise ValueError("At least one categorical or continuous column is required.")
        if max_clusters < 1:
            raise ValueError(f"max_clusters must be >= 1, got {max_clusters}")
        self.categorical_columns = categorical
        self.continuous_columns = continuous
        if point_mass_threshold <= 0:
            raise ValueError(f"point_mass_threshold must be > 0, got {point_mass_threshold}")
        self.max_clusters = int(max_clusters)
        self.point_mass_threshold = float(point_mass_threshold)
        self.seed = int(seed)
        self.column_infos: list[ColumnInfo] = []

    # ------------------------------------------------------------------ properties
    @property
    def fitted(self) -> bool:
        return bool(self.column_infos)

    @property
    def columns(self) -> list[str]:
        """Columns in the order of the frame passed to ``fit``."""
        return [info.name for info in self.column_infos]

    @property
    def categories(self) -> dict[str, list[str]]:
        return {
            info.name: list(info.categories)
            for info in self.column_infos
            if isinstance(info, CategoricalColumnInfo)
        }

    @property
    def output_info(self) -> list[SpanInfo]:
        """Spans of the encoded vector, in order (a continuous column gives tanh + softmax)."""
        spans: list[SpanInfo] = []
        for info in self.column_infos:
            if isinstance(info, ContinuousColumnInfo):
                spans.append(SpanInfo(1, "tanh"))
                spans.append(SpanInfo(info.n_modes, "softmax"))
            else:
                spans.append(SpanInfo(info.output_dim, "softmax"))
        return spans

    @property
    def output_dimensions(self) -> int:
        return sum(info.output_dim for info in self.column_infos)

    def column_offsets(self) -> dict[str, tuple[int, int]]:
        """``column -> (start, width)`` of its block in the encoded vector."""
        offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for info in self.column_infos:
            offsets[info.name] = (start, info.output_dim)
            start += info.output_dim
        return offsets

    # ------------------------------------------------------------------ fit
    def _check_columns(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.categorical_columns + self.continuous_columns if c not in df]
        if missing:
            raise ValueError(
                f"Column(s) {missing} declared but missing from the data frame "
                f"(available: {list(df.columns)})."
            )

    def _fit_mixture(
        self, values: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kept components ``(means, stds, weights)`` of a Bayesian GMM on ``values``."""
        if np.unique(values).size == 1:
            return np.array([values[0]]), np.array([1.0]), np.array([1.0])
        fit_values = values
        if values.size > _GMM_MAX_FIT_ROWS:
            idx = np.sort(rng.choice(values.size, size=_GMM_MAX_FIT_ROWS, replace=False))
            fit_values = values[idx]
        gmm = BayesianGaussianMixture(
            n_components=int(min(self.max_clusters, fit_values.size)),
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=_GMM_WEIGHT_PRIOR,
            n_init=1,
            random_state=int(rng.integers(0, 2**31 - 1)),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            gmm.fit(fit_values.reshape(-1, 1))
        all_weights = np.asarray(gmm.weights_, dtype=np.float64)
        keep = all_weights > _GMM_WEIGHT_THRESHOLD
        if not keep.any():  # pragma: no cover - weights sum to one, so one is large
            keep = all_weights == all_weights.max()
        means = np.asarray(gmm.means_, dtype=np.float64).reshape(-1)[keep]
        stds = np.sqrt(np.asarray(gmm.covariances_, dtype=np.float64).reshape(-1))[keep]
        weights = all_weights[keep] / all_weights[keep].sum()
        return means, np.maximum(stds, _MIN_STD), weights

    def _fit_continuous(
        self, name: str, values: np.ndarray, rng: np.random.Generator
    ) -> ContinuousColumnInfo:
        is_integer = bool(np.all(np.mod(values, 1.0) == 0.0))
        uniq, counts = np.unique(values, return_counts=True)
        freq = counts / values.size
        points = uniq[freq >= self.point_mass_threshold]
        rest = values[~np.isin(values, points)]
        means_l = [points]
        stds_l = [np.ones(points.size)]
        weights_l = [freq[freq >= self.point_mass_threshold]]
        is_point_l = [np.ones(points.size, dtype=bool)]
        if rest.size:
            m, sd, w = self._fit_mixture(rest, rng)
            means_l.append(m)
            stds_l.append(sd)
            weights_l.append(w * rest.size / values.size)
            is_point_l.append(np.zeros(m.size, dtype=bool))
        means = np.concatenate(means_l)
        order = np.argsort(means, kind="stable")
        return ContinuousColumnInfo(
            name=name,
            means=means[order],
            stds=np.concatenate(stds_l)[order],
            weights=np.concatenate(weights_l)[order],
            is_point=np.concatenate(is_point_l)[order],
            is_integer=is_integer,
            min=float(values.min()),
            max=float(values.max()),
        )

    def fit(self, df: pd.DataFrame) -> TabularEncoder:
        """Learn categories and mixtures; column order follows ``df``."""
        self._check_columns(df)
        if len(df) == 0:
            raise ValueError("Cannot fit a TabularEncoder on an empty data frame.")
        declared = set(self.categorical_columns) | set(self.continuous_columns)
        order = [str(c) for c in df.columns if c in declared]
        rng = np.random.default_rng(self.seed)
        infos: list[ColumnInfo] = []
        for name in order:
            if name in self.continuous_columns:
                infos.append(self._fit_continuous(name, _continuous_values(df, name), rng))
            else:
                values = _categorical_values(df, name)
                infos.append(CategoricalColumnInfo(name, sorted(set(values.tolist()))))
        self.column_infos = infos
        return self

    # ------------------------------------------------------------------ transform
    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("TabularEncoder is not fitted; call fit() first.")

    @staticmethod
    def _mode_posteriors(info: ContinuousColumnInfo, values: np.ndarray) -> np.ndarray:
        """``(n, modes)`` mode probabilities: exact match for point masses, else the mixture."""
        point_idx = np.flatnonzero(info.is_point)
        on_point = np.isin(values, info.means[point_idx])
        mixture = ~info.is_point if (~info.is_point).any() else info.is_point
        z = (values[:, None] - info.means[None, :]) / info.stds[None, :]
        log_p = np.log(info.weights)[None, :] - np.log(info.stds)[None, :] - 0.5 * z * z
        log_p[:, ~mixture] = -np.inf
        # Never pick a mode that cannot represent the value (|scalar| would exceed the clip),
        # unless no mode can: the posterior alone does this only almost surely.
        too_far = np.abs(z) > 4.0 * _SCALAR_CLIP
        too_far &= ~np.all(too_far | ~mixture[None, :], axis=1, keepdims=True)
        log_p[too_far] = -np.inf
        log_p -= log_p.max(axis=1, keepdims=True)
        p: np.ndarray = np.exp(log_p)
        p /= p.sum(axis=1, keepdims=True)
        if on_point.any():
            hit = values[on_point, None] == info.means[None, :]
            p[on_point] = (hit & info.is_point[None, :]).astype(np.float64)
        return p

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode ``df`` (float32, shape ``(len(df), output_dimensions)``).

        The mode of each continuous value is drawn from its posterior over the mixture
        components, with a generator seeded from ``seed`` (so the result is deterministic).
        """
        self._require_fitted()
        self._check_columns(df)
        n = len(df)
        out = np.zeros((n, self.output_dimensions), dtype=np.float32)
        rng = np.random.default_rng(self.seed + 1)
        rows = np.arange(n)
        start = 0
        for info in self.column_infos:
            if isinstance(info, ContinuousColumnInfo):
                values = _continuous_values(df, info.name)
                probs = self._mode_posteriors(info, values)
                cum = np.cumsum(probs, axis=1)
                u = rng.random(n)[:, None]
                modes = np.minimum((cum < u).sum(axis=1), info.n_modes - 1)
                scalar = (values - info.means[modes]) / (4.0 * info.stds[modes])
                out[:, start] = np.clip(scalar, -_SCALAR_CLIP, _SCALAR_CLIP)
                out[rows, start + 1 + modes] = 1.0
            else:
                values = _categorical_values(df, info.name)
                codes = category_codes(values, info.categories)
                if (codes < 0).any():
                    unknown = sorted(set(values[codes < 0].tolist()))
                    raise ValueError(
                        f"Column {info.name!r} has values not seen during fit: "
                        f"{_describe_values(unknown)}; allowed: {_describe_values(info.categories)}"
                    )
                out[rows, start + codes] = 1.0
            start += info.output_dim
        return out

    def categorical_codes(self, arr: np.ndarray, column: str) -> np.ndarray:
        """Decoded category codes (argmax of the column's block) of an encoded array."""
        self._require_fitted()
        start, width = self.column_offsets()[column]
        return np.asarray(arr[:, start : start + width].argmax(axis=1))

    def _decode_plan(self) -> list[tuple[ColumnInfo, int, np.ndarray | None]]:
        """``(info, start, categories as an object array or None)`` per column, built once
        per fitted state (``column_infos`` is replaced whole by ``fit`` and ``from_state``)."""
        cached = self.__dict__.get("_plan")
        if cached is not None and cached[0] is self.column_infos:
            plan: list[tuple[ColumnInfo, int, np.ndarray | None]] = cached[1]
            return plan
        plan = []
        start = 0
        for info in self.column_infos:
            cats = (
                np.asarray(info.categories, dtype=object)
                if isinstance(info, CategoricalColumnInfo)
                else None
            )
            plan.append((info, start, cats))
            start += info.output_dim
        self.__dict__["_plan"] = (self.column_infos, plan)
        return plan

    def decode_arrays(
        self,
        arr: np.ndarray,
        sigmas: np.ndarray | Sequence[float] | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, np.ndarray]:
        """:meth:`inverse_transform` without pandas: ``column -> values`` in the fitted
        column order, as NumPy arrays (``int64`` for integral columns, ``float64`` for other
        continuous ones, an object array of Python ``str`` for categorical ones).

        Each column is a handful of whole-array operations (argmax of its block, one gather
        of the mode's mean and scale, one clip); no per-row Python and no Series are built,
        which is what a request of a few hundred rows spends most of its time on otherwise.
        """
        self._require_fitted()
        arr = np.asarray(arr)
        if arr.ndim != 2 or arr.shape[1] != self.output_dimensions:
            raise ValueError(
                f"Expected an array of shape (n, {self.output_dimensions}), got {arr.shape}."
            )
        plan = self._decode_plan()
        n_cont = sum(cats is None for _, _, cats in plan)
        sigma_arr: np.ndarray | None = None
        if sigmas is not None:
            sigma_arr = np.asarray(sigmas, dtype=np.float64).reshape(-1)
            if sigma_arr.size != n_cont:
                raise ValueError(f"Expected {n_cont} sigmas (one per continuous column).")
            rng = rng if rng is not None else np.random.default_rng()
        n = arr.shape[0]
        data: dict[str, np.ndarray] = {}
        cont_idx = 0
        for info, start, cats in plan:
            if isinstance(info, ContinuousColumnInfo):
                scalar = arr[:, start].astype(np.float64)
                if sigma_arr is not None and rng is not None:
                    scalar = scalar + rng.normal(0.0, sigma_arr[cont_idx], size=n)
                np.clip(scalar, -1.0, 1.0, out=scalar)
                modes = arr[:, start + 1 : start + 1 + info.n_modes].argmax(axis=1)
                means = info.means[modes]
                values = scalar * 4.0 * info.stds[modes] + means
                if info.is_point.any():
                    values = np.where(info.is_point[modes], means, values)
                np.clip(values, info.min, info.max, out=values)
                data[info.name] = np.rint(values).astype(np.int64) if info.is_integer else values
                cont_idx += 1
            else:
                assert cats is not None
                codes = arr[:, start : start + info.output_dim].argmax(axis=1)
                data[info.name] = cats[codes]
        return data

    @staticmethod
    def frame_of(data: dict[str, np.ndarray], columns: Sequence[str]) -> pd.DataFrame:
        """The frame :meth:`inverse_transform` returns for :meth:`decode_arrays`' columns:
        object columns become the default string dtype, numbers keep their dtype."""
        series = {
            name: (
                string_series(data[name], name)
                if data[name].dtype == object
                else pd.Series(data[name], name=name)
            )
            for name in columns
        }
        return pd.DataFrame(series, columns=list(columns))

    def inverse_transform(
        self,
        arr: np.ndarray,
        sigmas: np.ndarray | Sequence[float] | None = None,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Decode an encoded (or generated) array back to a frame in the fitted column order.

        Softmax blocks are decoded by argmax, tanh scalars are clipped to ``[-1, 1]``.
        ``sigmas`` (one per continuous column, in column order) adds Gaussian noise to the
        tanh scalars before decoding, as CTGAN's TVAE does; ``rng`` draws that noise.
        Integer-valued columns come back as rounded ``int64``; every continuous column is
        clipped to its training range; categorical columns hold Python ``str`` values.
        (:meth:`decode_arrays` gives the same values as NumPy arrays.)
        """
        return self.frame_of(self.decode_arrays(arr, sigmas, rng), self.columns)

    # ------------------------------------------------------------------ serialisation
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-serialisable description plus the mixture arrays (for ``np.savez``)."""
        self._require_fitted()
        columns: list[dict[str, Any]] = []
        arrays: dict[str, np.ndarray] = {}
        for i, info in enumerate(self.column_infos):
            if isinstance(info, ContinuousColumnInfo):
                columns.append(
                    {
                        "name": info.name,
                        "kind": "continuous",
                        "is_integer": info.is_integer,
                        "min": info.min,
                        "max": info.max,
                        "n_modes": info.n_modes,
                    }
                )
                arrays[f"col{i}_means"] = info.means
                arrays[f"col{i}_stds"] = info.stds
                arrays[f"col{i}_weights"] = info.weights
                arrays[f"col{i}_is_point"] = info.is_point
            else:
                columns.append(
                    {"name": info.name, "kind": "categorical", "categories": info.categories}
                )
        meta = {
            "format_version": TRANSFORMER_FORMAT_VERSION,
            "categorical_columns": self.categorical_columns,
            "continuous_columns": self.continuous_columns,
            "max_clusters": self.max_clusters,
            "point_mass_threshold": self.point_mass_threshold,
            "seed": self.seed,
            "columns": columns,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TabularEncoder:
        version = int(meta.get("format_version", 0))
        if version > TRANSFORMER_FORMAT_VERSION:
            raise ValueError(
                f"Transformer format version {version} is newer than supported "
                f"({TRANSFORMER_FORMAT_VERSION})."
            )
        obj = cls(
            meta["categorical_columns"],
            meta["continuous_columns"],
            max_clusters=int(meta["max_clusters"]),
            seed=int(meta["seed"]),
            point_mass_threshold=float(meta.get("point_mass_threshold", 1.0)),
        )
        infos: list[ColumnInfo] = []
        for i, col in enumerate(meta["columns"]):
            if col["kind"] == "continuous":
                infos.append(
                    ContinuousColumnInfo(
                        name=str(col["name"]),
                        means=np.asarray(arrays[f"col{i}_means"], dtype=np.float64),
                        stds=np.asarray(arrays[f"col{i}_stds"], dtype=np.float64),
                        weights=np.asarray(arrays[f"col{i}_weights"], dtype=np.float64),
                        is_point=np.asarray(arrays[f"col{i}_is_point"], dtype=bool),
                        is_integer=bool(col["is_integer"]),
                        min=float(col["min"]),
                        max=float(col["max"]),
                    )
                )
            elif col["kind"] == "categorical":
                infos.append(CategoricalColumnInfo(str(col["name"]), list(col["categories"])))
            else:
                raise ValueError(f"Unknown column kind {col['kind']!r} in transformer state.")
        obj.column_infos = infos
        return obj

    def save(self, directory: str | Path, stem: str = "transformer") -> None:
        """Write ``<stem>.json`` and ``<stem>.npz`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta, arrays = self.to_state()
        (directory / f"{stem}.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        np.savez(directory / f"{stem}.npz", **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, directory: str | Path, stem: str = "transformer") -> TabularEncoder:
        directory = Path(directory)
        meta = json.loads((directory / f"{stem}.json").read_text(encoding="utf-8"))
        with np.load(directory / f"{stem}.npz", allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in npz.files}
        return cls.from_state(meta, arrays)

    def __repr__(self) -> str:
        state = f"{len(self.column_infos)} columns" if self.fitted else "unfitted"
        return f"TabularEncoder({state}, output_dimensions={self.output_dimensions})"
