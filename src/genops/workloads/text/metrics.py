"""What the text model generates, measured: diversity (distinct-1/2, repetition) and
memorisation (generated spans found verbatim in the training text), each beside the same
figure for real holdout text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over ``texts`` (Li et al. 2016); nan if none."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition_rate(texts: Sequence[str], n: int = 4) -> float:
    """Mean share of each text's word n-grams that repeat an earlier n-gram of the same text
    (degenerate loops score high); texts shorter than ``n`` words are skipped."""
    rates = []
    for text in texts:
        words = text.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if grams:
            rates.append(1.0 - len(set(grams)) / len(grams))
    return float(np.mean(rates)) if rates else float("nan")


_MASK = np.uint64((1 << 64) - 1)


def _span_hashes(
    ids: np.ndarray, span: int, weights: np.ndarray, chunk: int = 200_000
) -> np.ndarray:
    """A 64-bit hash of every window of ``span`` token ids (a random linear hash mod 2^64)."""
    if len(ids) < span:
        return np.zeros(0, dtype=np.uint64)
    values = ids.astype(np.uint64) + np.uint64(1)
    out = np.empty(len(ids) - span + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(out), chunk):
            stop = min(len(out), start + chunk)
            windows = np.lib.stride_tricks.sliding_window_view(
                values[start : stop + span - 1], span
            )
            out[start:stop] = (windows * weights).sum(axis=1, dtype=np.uint64)
    return out


class SpanIndex:
    """Every ``span``-token window of the training stream, for verbatim look-ups."""

    def __init__(self, train_ids: np.ndarray, span: int = 50, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.span = span
        self.weights = rng.integers(1, 2**63, size=span, dtype=np.uint64) | np.uint64(1)
        self.hashes = np.unique(_span_hashes(np.asarray(train_ids), span, self.weights))

    def share_memorised(self, sequences: Sequence[np.ndarray]) -> tuple[float, int]:
        """Share of the ``span``-token windows of ``sequences`` found in the training stream,
        and how many windows there were (0: no sequence was long enough; share nan)."""
        found = total = 0
        for seq in sequences:
            hashes = _span_hashes(np.asarray(seq), self.span, self.weights)
            total += len(hashes)
            found += int(np.isin(hashes, self.hashes, assume_unique=False).sum())
        return (found / total if total else float("nan")), total
