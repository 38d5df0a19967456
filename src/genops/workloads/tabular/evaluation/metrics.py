"""How good is synthetic data: fidelity, utility and privacy.

- Fidelity: column shapes (1 - KS statistic for continuous columns, 1 - total variation
  distance for categorical ones) and column-pair trends (correlation similarity for two
  continuous columns, contingency similarity otherwise, continuous columns binned on the
  real data's quantiles). Quality = mean of the two, as SDMetrics defines it.
- Utility: train-synthetic-test-real (TSTR) against train-real-test-real (TRTR) with a
  gradient-boosting classifier, ROC AUC and F1 on the real holdout.
- Privacy: distance to closest record (DCR) of synthetic rows to the training rows, against
  the same distance for real holdout rows (a synthesizer that copies would sit far below it),
  and the share of synthetic rows that are exact copies of a training row.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score, roc_auc_score


def continuous_shape(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - two-sample Kolmogorov-Smirnov statistic."""
    return float(1.0 - ks_2samp(real.to_numpy(float), synthetic.to_numpy(float)).statistic)


def categorical_shape(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - total variation distance between category frequencies."""
    p = real.astype(str).value_counts(normalize=True)
    q = synthetic.astype(str).value_counts(normalize=True)
    cats = p.index.union(q.index)
    return float(
        1.0 - 0.5 * np.abs(p.reindex(cats, fill_value=0) - q.reindex(cats, fill_value=0)).sum()
    )


def column_shapes(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    continuous: Sequence[str],
    categorical: Sequence[str],
    skip_missing: bool = False,
) -> dict[str, float]:
    """Per column: :func:`continuous_shape` or :func:`categorical_shape` of real vs synthetic.

    With ``skip_missing``, missing values are left out (so are values of a continuous column
    that are not numbers) and a column with no values left on one side scores NaN.
    """
    scores: dict[str, float] = {}
    columns = [(c, True) for c in continuous] + [(c, False) for c in categorical]
    for c, numeric in columns:
        r, s = real[c], synthetic[c]
        if skip_missing:
            if numeric:
                r, s = pd.to_numeric(r, errors="coerce"), pd.to_numeric(s, errors="coerce")
            r, s = r.dropna(), s.dropna()
            if r.empty or s.empty:
                scores[c] = math.nan
                continue
        scores[c] = continuous_shape(r, s) if numeric else categorical_shape(r, s)
    return scores


def _binned(series: pd.Series, edges: np.ndarray) -> pd.Series:
    return pd.Series(np.digitize(series.to_numpy(float), edges[1:-1]), index=series.index).astype(
        str
    )


def pair_trends(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    continuous: list[str],
    categorical: list[str],
    bins: int = 10,
) -> dict[str, float]:
    """Similarity of every column pair's joint behaviour, in [0, 1]."""
    discrete_real: dict[str, pd.Series] = {c: real[c].astype(str) for c in categorical}
    discrete_syn: dict[str, pd.Series] = {c: synthetic[c].astype(str) for c in categorical}
    for c in continuous:
        edges = np.unique(np.quantile(real[c].to_numpy(float), np.linspace(0, 1, bins + 1)))
        discrete_real[c] = _binned(real[c], edges)
        discrete_syn[c] = _binned(synthetic[c], edges)
    scores: dict[str, float] = {}
    for a, b in itertools.combinations(continuous + categorical, 2):
        if a in continuous and b in continuous:
            r = real[[a, b]].astype(float).corr().iloc[0, 1]
            s = synthetic[[a, b]].astype(float).corr().iloc[0, 1]
            r, s = np.nan_to_num(r), np.nan_to_num(s)
            scores[f"{a}|{b}"] = float(1.0 - abs(r - s) / 2.0)
        else:
            p = pd.crosstab(discrete_real[a], discrete_real[b], normalize=True).stack()
            q = pd.crosstab(discrete_syn[a], discrete_syn[b], normalize=True).stack()
            idx = p.index.union(q.index)
            tvd = 0.5 * np.abs(p.reindex(idx, fill_value=0) - q.reindex(idx, fill_value=0)).sum()
            scores[f"{a}|{b}"] = float(1.0 - tvd)
    return scores


def _encode_for_classifier(
    frame: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    categories: dict[str, list[str]],
) -> pd.DataFrame:
    out = frame[features].copy()
    for c in features:
        if c in categorical:
            out[c] = pd.Categorical(out[c].astype(str), categories=categories[c])
        else:
            out[c] = out[c].astype(float)
    return out


@dataclass
class UtilityResult:
    auc: float
    f1: float


def classifier_utility(
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    positive_label: str,
    continuous: list[str],
    categorical: list[str],
    seed: int = 0,
) -> tuple[UtilityResult, np.ndarray]:
    """Fit gradient boosting on ``train``, score on ``test``; returns metrics and predictions."""
    features = [c for c in continuous + categorical if c != target]
    cat_features = [c for c in categorical if c != target]
    categories = {
        c: sorted(set(train[c].astype(str)) | set(test[c].astype(str))) for c in cat_features
    }
    y_train = (train[target].astype(str) == positive_label).to_numpy(int)
    y_test = (test[target].astype(str) == positive_label).to_numpy(int)
    x_train = _encode_for_classifier(train, features, cat_features, categories)
    x_test = _encode_for_classifier(test, features, cat_features, categories)
    if len(np.unique(y_train)) < 2:
        # A synthesizer that never produces one class gives a useless classifier.
        return UtilityResult(auc=0.5, f1=0.0), np.full(
            len(test), int(y_train[0]) if len(y_train) else 0
        )
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype", random_state=seed, max_iter=200
    )
    model.fit(x_train, y_train)
    proba = model.predict_proba(x_test)[:, 1]
    pred = (proba >= 0.5).astype(int)
    return UtilityResult(
        auc=float(roc_auc_score(y_test, proba)), f1=float(f1_score(y_test, pred))
    ), pred


def _privacy_matrix(
    frame: pd.DataFrame,
    continuous: list[str],
    categorical: list[str],
    stats: dict[str, tuple[float, float]],
    categories: dict[str, list[str]],
) -> np.ndarray:
    parts = [((frame[c].to_numpy(float) - stats[c][0]) / stats[c][1])[:, None] for c in continuous]
    for c in categorical:
        codes = pd.Categorical(frame[c].astype(str), categories=categories[c]).codes
        onehot = np.zeros((len(frame), len(categories[c])))
        valid = codes >= 0
        onehot[np.flatnonzero(valid), codes[valid]] = 1.0
        parts.append(onehot)
    return np.hstack(parts) if parts else np.zeros((len(frame), 0))


@dataclass
class PrivacyResult:
    dcr_synthetic_median: float
    dcr_holdout_median: float
    dcr_ratio: float
    exact_copy_share: float
    holdout_exact_copy_share: float


def privacy(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    continuous: list[str],
    categorical: list[str],
    sample: int = 2000,
    seed: int = 0,
) -> PrivacyResult:
    """Distance to closest training record, synthetic vs a real holdout baseline.

    The training rows are encoded and searched in blocks of :data:`_DCR_BLOCK` rows, so
    memory does not grow with the training set; exact copies are found by hashing rows."""
    rng = np.random.default_rng(seed)
    stats = {c: (float(train[c].mean()), float(train[c].std() or 1.0)) for c in continuous}
    categories = {c: sorted(train[c].astype(str).unique()) for c in categorical}

    def encode(frame: pd.DataFrame) -> np.ndarray:
        return _privacy_matrix(frame, continuous, categorical, stats, categories)

    def drawn(frame: pd.DataFrame) -> np.ndarray:
        idx = rng.choice(len(frame), size=min(sample, len(frame)), replace=False)
        return encode(frame.iloc[idx])

    queries = [drawn(synthetic), drawn(holdout)]
    # one pass over the training rows for both samples
    distances = _closest_distances(np.vstack(queries), train, encode)
    syn, hold = distances[: len(queries[0])], distances[len(queries[0]) :]
    cols = continuous + categorical
    train_keys = _row_hashes(train[cols])
    syn_med, hold_med = float(np.median(syn)), float(np.median(hold))
    return PrivacyResult(
        dcr_synthetic_median=syn_med,
        dcr_holdout_median=hold_med,
        dcr_ratio=float(syn_med / hold_med) if hold_med > 0 else float("inf"),
        exact_copy_share=float(np.isin(_row_hashes(synthetic[cols]), train_keys).mean()),
        holdout_exact_copy_share=float(np.isin(_row_hashes(holdout[cols]), train_keys).mean()),
    )


_DCR_BLOCK = 8192


def _closest_distances(
    queries: np.ndarray, reference: pd.DataFrame, encode: Callable[[pd.DataFrame], np.ndarray]
) -> np.ndarray:
    """Euclidean distance of each query row to its closest row of ``reference`` (encoded
    with ``encode`` one block at a time). Blocks are searched with ``|r|^2 - 2 q.r``; the
    distance to the row found is then computed directly (float64), so an exact copy is at
    0.0."""
    if not len(queries) or not len(reference):
        return np.zeros(len(queries))
    best = np.full(len(queries), np.inf, dtype=np.float32)
    best_row = np.zeros(len(queries), dtype=np.int64)
    rows = np.arange(len(queries))
    q32 = np.ascontiguousarray(queries, dtype=np.float32) * np.float32(-2.0)
    for start in range(0, len(reference), _DCR_BLOCK):
        block = encode(reference.iloc[start : start + _DCR_BLOCK]).astype(np.float32)
        partial = q32 @ block.T  # float32: the search only ranks; the distance is exact below
        partial += (block * block).sum(axis=1)[None, :]
        arg = partial.argmin(axis=1)
        value = partial[rows, arg]
        better = value < best
        best[better] = value[better]
        best_row[better] = start + arg[better]
    closest = encode(reference.iloc[best_row])
    return np.sqrt(((queries - closest) ** 2).sum(axis=1))


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of the rows' values as text (``1`` and ``1.0`` differ, as
    they do when rows are compared as strings)."""
    return np.asarray(pd.util.hash_pandas_object(frame.astype(str), index=False), dtype=np.uint64)
