"""Human-readable bias reports: per-group statistics, matplotlib figures, HTML and Markdown.

``shares`` arguments are nested mappings ``{dataset name: {attribute: group_stats frame}}``,
e.g. ``{"real": {...}}`` for the data check and ``{"real": {...}, "synthetic": {...}}`` for
the synthetic check (drawn side by side); :func:`group_stats_by_dataset` builds them.

Figures are created with :class:`matplotlib.figure.Figure` on an Agg canvas, without pyplot,
so nothing touches the caller's global matplotlib state; log them to MLflow with
``mlflow.log_figure(fig, "bias/sex.png")`` or write :func:`figure_png` bytes yourself.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genops.core.verdict import (
    BiasVerdict,
    MetricResult,
    decide,
    failure_message,
    format_interval,
)

Shares = Mapping[str, Mapping[str, pd.DataFrame]]
"""``{dataset name: {attribute: group_stats frame}}``."""


def group_stats(df: pd.DataFrame, attribute: str, label: str, positive_label: Any) -> pd.DataFrame:
    """Per group of ``attribute``: ``group`` (str), ``count``, ``share`` of the rows with a value,
    and ``positive_rate`` (share of rows whose ``label`` equals ``positive_label`` among rows
    with a label; NaN when the group has no labelled row). Sorted by group name."""
    sub = df.loc[df[attribute].notna()]
    groups = pd.Series(np.asarray(sub[attribute], dtype=object)).astype(str)
    labelled = np.asarray(sub[label].notna(), dtype=bool)
    pos = np.asarray(sub[label] == positive_label, dtype=bool) & labelled
    frame = pd.DataFrame(
        {"group": groups.to_numpy(), "pos": pos.astype(int), "lab": labelled.astype(int)}
    )
    agg = frame.groupby("group", sort=True).agg(
        count=("pos", "size"), pos=("pos", "sum"), lab=("lab", "sum")
    )
    total = int(agg["count"].sum())
    out = pd.DataFrame(
        {
            "group": agg.index.astype(str),
            "count": agg["count"].to_numpy(dtype=int),
            "share": (agg["count"] / total).to_numpy(dtype=float) if total else [],
            "positive_rate": np.where(
                agg["lab"] > 0, agg["pos"] / agg["lab"].where(agg["lab"] > 0, 1), np.nan
            ),
        }
    )
    return out.reset_index(drop=True)


def group_stats_by_dataset(
    datasets: Mapping[str, pd.DataFrame],
    attributes: Sequence[str],
    label: str,
    positive_label: Any,
) -> dict[str, dict[str, pd.DataFrame]]:
    """:func:`group_stats` for every data set and attribute, in the ``shares`` layout."""
    return {
        name: {a: group_stats(df, a, label, positive_label) for a in attributes}
        for name, df in datasets.items()
    }


def _attributes(shares: Shares) -> list[str]:
    seen: list[str] = []
    for per_attr in shares.values():
        for a in per_attr:
            if a not in seen:
                seen.append(a)
    return seen


def attribute_figure(shares: Shares, attribute: str) -> Figure:
    """Two bar charts for one attribute: group share and positive-label rate, one bar per
    data set and group."""
    names = [n for n in shares if attribute in shares[n]]
    groups: list[str] = []
    for n in names:
        for g in shares[n][attribute]["group"].astype(str):
            if g not in groups:
                groups.append(g)
    fig = Figure(figsize=(max(6.0, 1.1 * len(groups) * 2), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(names))
    for ax, col, ylabel in (
        (axes[0], "share", "share of rows"),
        (axes[1], "positive_rate", "positive-label rate"),
    ):
        for i, n in enumerate(names):
            stats = shares[n][attribute].set_index(shares[n][attribute]["group"].astype(str))
            vals = [float(stats[col].get(g, 0.0)) for g in groups]
            vals = [0.0 if math.isnan(v) else v for v in vals]
            ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=n)
        ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1 if col == "share" else max(0.05, ax.get_ylim()[1]))
        ax.set_title(f"{attribute}: {ylabel}", fontsize=10)
        if len(names) > 1:
            ax.legend(fontsize=8)
    return fig


def bias_figures(shares: Shares) -> dict[str, Figure]:
    """One :func:`attribute_figure` per attribute, keyed by attribute name."""
    return {a: attribute_figure(shares, a) for a in _attributes(shares)}


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.4f}"


def _groups(r: MetricResult) -> str:
    if len(r.groups) == 2:
        return f"{r.groups[0]} vs {r.groups[1]}"
    if len(r.groups) == 1:
        return r.groups[0] if r.group_only else f"{r.groups[0]} vs rest"
    return ", ".join(r.groups) if r.groups else "(all)"


def _interval(r: MetricResult) -> str:
    """``"[0.1700, 0.2100]"`` or ``""``."""
    return format_interval(r.low, r.high, ".4f")


def _counts(verdict: BiasVerdict) -> str:
    text = f"{len(verdict.failures)} of {len(verdict.results)} results failed"
    if verdict.too_small:
        text += f", {len(verdict.too_small)} too small to judge"
    return text


def _method_note(verdict: BiasVerdict) -> str:
    methods = sorted({r.interval_method for r in verdict.results if r.interval_method})
    if not methods:
        return ""
    return (
        "Values in brackets are confidence intervals; a metric fails only when its whole "
        "interval lies beyond the threshold. Methods: " + "; ".join(methods) + "."
    )


def _threshold(r: MetricResult) -> str:
    if r.threshold is None:
        return "report only"
    return f"{r.comparison} {_fmt(r.threshold)}"


def _details(r: MetricResult) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in r.details.items())


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}
table{border-collapse:collapse;font-size:0.85em;margin-top:8px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}tr.fail td{background:#fdecea}tr.small td{color:#777}
td.num{text-align:right;font-family:monospace}
td.small{font-size:0.8em;color:#555}img{max-width:100%;margin:8px 0}
"""


def render_html(
    verdict: BiasVerdict,
    shares: Shares | None = None,
    title: str | None = None,
) -> str:
    """A self-contained HTML page: verdict, failures, the charts of ``shares`` as inline
    base64 PNGs, and a table of every metric with pass/fail."""
    esc = html.escape
    heading = title or f"Bias report — {verdict.check} check"
    status = "PASSED" if verdict.passed else "FAILED"
    cls = "pass" if verdict.passed else "fail"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(heading)}</h1>",
        f'<p><span class="badge {cls}">{status}</span> &nbsp; check: <b>{esc(verdict.check)}</b>'
        f" &nbsp; policy: <b>{esc(verdict.policy)}</b> &nbsp; decision: "
        f"<b>{esc(decide(verdict))}</b> &nbsp; {esc(_counts(verdict))}</p>",
    ]
    if _method_note(verdict):
        parts.append(f"<p>{esc(_method_note(verdict))}</p>")
    if verdict.failures:
        parts.append("<h2>Failures</h2><ul>")
        parts += [f"<li>{esc(r.describe())}</li>" for r in verdict.failures]
        parts.append("</ul>")
    if shares:
        parts.append("<h2>Group shares and positive-label rates</h2>")
        for attribute, fig in bias_figures(shares).items():
            data = base64.b64encode(figure_png(fig)).decode("ascii")
            parts.append(
                f'<img src="data:image/png;base64,{data}" alt="{esc(attribute)} group shares '
                f'and positive rates">'
            )
    parts.append('<h2>Metrics</h2><table class="metrics"><thead><tr>')
    cols = [
        "metric",
        "attribute",
        "groups",
        "value",
        "interval",
        "threshold",
        "result",
        "note",
        "details",
    ]
    parts.append("".join(f"<th>{c}</th>" for c in cols) + "</tr></thead><tbody>")
    for r in verdict.results:
        row_cls = "small" if r.too_small else ("pass" if r.passed else "fail")
        parts.append(
            f'<tr class="{row_cls}"><td>{esc(r.metric)}</td><td>{esc(r.attribute)}</td>'
            f"<td>{esc(_groups(r))}</td><td class=num>{esc(_fmt(r.value))}</td>"
            f"<td class=num>{esc(_interval(r))}</td>"
            f"<td>{esc(_threshold(r))}</td><td>{esc(r.status)}</td>"
            f"<td>{esc(r.note)}</td><td class=small>{esc(_details(r))}</td></tr>"
        )
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(verdict: BiasVerdict, title: str | None = None) -> str:
    """The verdict as Markdown: status line, failure message and a table of every metric."""
    heading = title or f"Bias report — {verdict.check} check"
    status = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"# {heading}",
        "",
        f"**{status}** — policy `{verdict.policy}`, decision `{decide(verdict)}`, "
        f"{_counts(verdict)}.",
        "",
    ]
    if _method_note(verdict):
        lines += [_method_note(verdict), ""]
    if verdict.failures:
        lines += [_md_cell(failure_message(verdict, max_items=None)), ""]
    lines += [
        "| metric | attribute | groups | value | interval | threshold | result | note |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for r in verdict.results:
        cells = [
            r.metric,
            r.attribute,
            _groups(r),
            _fmt(r.value),
            _interval(r),
            _threshold(r),
            "**FAIL**" if not r.passed else r.status,
            r.note,
        ]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
