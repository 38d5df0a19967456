"""Representation checks of the ``image-diffusion`` pipeline: the class is the group.

Two checks produce :class:`~genops.core.verdict.BiasVerdict` objects of the same shape as the
tabular bias checks (attribute ``"class"``, ``groups = [class name]``), so the same
:func:`~genops.core.verdict.decide`, :func:`~genops.core.verdict.failure_message`, JSON
artifacts and reports apply:

* ``"data"`` (:func:`data_representation`), before training: every class has enough images
  (``coverage``), none is far below the uniform share (``class_share_ratio``), and the largest
  over the smallest class count (``imbalance_ratio``).
* ``"synthetic"`` (:func:`generated_representation`), after sampling: the class mix of
  guidance-free samples, as the domain classifier reads it, against the real one —
  per class ``relative_share``, overall ``tvd`` and ``fairness_discrepancy`` (Choi et al.
  2020), and per class ``conditional_accuracy`` of class-conditional samples.

:func:`shares_table`, :func:`shares_figure`, :func:`report_html` and :func:`report_markdown`
render them; the HTML and Markdown pages are the tabular reports
(:func:`genops.core.report.render_html` / :func:`~genops.core.report.render_markdown`) with a
per-class share table and bar chart added.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genops.core.report import figure_png, render_html, render_markdown
from genops.core.verdict import BiasVerdict, MetricResult, make_result
from genops.workloads.image.config import RepresentationSpec
from genops.workloads.image.metrics import (
    class_distribution,
    fairness_discrepancy,
    total_variation,
)

__all__ = [
    "ATTRIBUTE",
    "data_representation",
    "generated_representation",
    "report_html",
    "report_markdown",
    "shares_figure",
    "shares_table",
]

#: The attribute name of every representation result.
ATTRIBUTE = "class"


def _labels(labels: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class indices, got shape {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name}: class indices must lie in [0, {num_classes})")
    return arr


def _class_names(class_names: list[str]) -> list[str]:
    names = [str(c) for c in class_names]
    if not names:
        raise ValueError("class_names: at least one class is needed")
    if len(set(names)) != len(names):
        raise ValueError("class_names: names must be unique")
    return names


def data_representation(
    labels: np.ndarray,
    class_names: list[str],
    spec: RepresentationSpec,
    min_images_per_class: int,
) -> BiasVerdict:
    """The ``"data"`` check of the training images' class mix.

    Overall ``imbalance_ratio`` = largest / smallest class count (``<= spec.max_imbalance_ratio``,
    report only when it is None; infinite when a class has no image). Per class ``coverage`` =
    image count (``>= min_images_per_class``) and ``class_share_ratio`` = share / (1/K)
    (``>= spec.min_class_share_ratio``). Every class of ``class_names`` is reported, a class
    without images too. The verdict's policy is ``spec.policy``.
    """
    names = _class_names(class_names)
    k = len(names)
    y = _labels(labels, k, "labels")
    counts = np.bincount(y, minlength=k)
    shares = class_distribution(y, k)
    n = int(counts.sum())

    largest, smallest = int(counts.max()), int(counts.min())
    if n == 0:
        ratio, note = math.nan, "no images"
    elif smallest == 0:
        empty = [names[i] for i in range(k) if counts[i] == 0]
        ratio, note = math.inf, f"classes without images: {empty}"
    else:
        ratio, note = largest / smallest, ""
    results: list[MetricResult] = [
        make_result(
            "data",
            "imbalance_ratio",
            ATTRIBUTE,
            [],
            ratio,
            spec.max_imbalance_ratio,
            "<=",
            note=note,
            details={"n_images": n, "max_count": largest, "min_count": smallest},
        )
    ]
    if n == 0:
        results[0].passed = False
    for i, name in enumerate(names):
        count = int(counts[i])
        details = {"count": float(count), "share": float(shares[i]), "uniform_share": 1.0 / k}
        cov = make_result(
            "data",
            "coverage",
            ATTRIBUTE,
            [name],
            count,
            min_images_per_class,
            ">=",
            note="" if count >= min_images_per_class else "too few images for the class",
            group_only=True,
        )
        if count == 0:
            cov.passed = False
            cov.note = "no images of the class"
        results.append(cov)
        results.append(
            make_result(
                "data",
                "class_share_ratio",
                ATTRIBUTE,
                [name],
                float(shares[i]) * k,
                spec.min_class_share_ratio,
                ">=",
                details=details,
                group_only=True,
            )
        )
    return BiasVerdict.from_results("data", results, policy=spec.policy)


def generated_representation(
    real_labels: np.ndarray,
    generated_labels: np.ndarray,
    class_names: list[str],
    spec: RepresentationSpec,
    conditional_accuracy: Mapping[int, float] | None = None,
) -> BiasVerdict:
    """The ``"synthetic"`` check: the class mix of generated images against the real one.

    ``generated_labels`` are the domain classifier's labels of guidance-free samples. Results:

    * ``tvd`` — ``0.5 * sum |p_gen - p_real|`` (``<= spec.max_tvd``; report when None);
    * ``fairness_discrepancy`` — ``||p_gen - p_real||_2`` (``<= spec.max_fairness_discrepancy``);
    * ``fairness_discrepancy_uniform`` — ``||p_gen - uniform||_2``, report only (the real data's
      own distance to uniform is in its details);
    * per class ``relative_share`` — ``p_gen / p_real`` (``>= spec.min_class_share_ratio``); a
      class of the real data that is never generated fails whatever the threshold (as an absent
      group does in the tabular check); NaN, with a note, for a class absent from the real data;
    * per class ``conditional_accuracy`` — for each entry of ``conditional_accuracy`` (class index
      → share of that class's conditional samples the domain classifier reads as the class;
      ``>= spec.min_conditional_accuracy``, report when None).

    The verdict's policy is ``"warn"``: the pipeline gates on ``verdict.passed``.
    """
    names = _class_names(class_names)
    k = len(names)
    real = _labels(real_labels, k, "real_labels")
    gen = _labels(generated_labels, k, "generated_labels")
    real_counts = np.bincount(real, minlength=k)
    gen_counts = np.bincount(gen, minlength=k)
    p_real = class_distribution(real, k)
    p_gen = class_distribution(gen, k)
    uniform = np.full(k, 1.0 / k)

    note = ""
    if gen.size == 0:
        note = "no generated images"
    elif real.size == 0:
        note = "no real images"
    empty = gen.size == 0 or real.size == 0
    sizes = {"n_real": float(real.size), "n_generated": float(gen.size)}
    results: list[MetricResult] = [
        make_result(
            "synthetic",
            "tvd",
            ATTRIBUTE,
            [],
            math.nan if empty else total_variation(p_gen, p_real),
            spec.max_tvd,
            "<=",
            note=note,
            details=sizes,
        ),
        make_result(
            "synthetic",
            "fairness_discrepancy",
            ATTRIBUTE,
            [],
            math.nan if empty else fairness_discrepancy(p_gen, p_real),
            spec.max_fairness_discrepancy,
            "<=",
            note=note,
        ),
        make_result(
            "synthetic",
            "fairness_discrepancy_uniform",
            ATTRIBUTE,
            [],
            math.nan if gen.size == 0 else fairness_discrepancy(p_gen, uniform),
            None,
            "report",
            note="no generated images" if gen.size == 0 else "",
            details={"real_vs_uniform": fairness_discrepancy(p_real, uniform)}
            if real.size
            else None,
        ),
    ]
    if empty:
        for r in results[:2]:
            r.passed = False

    for i, name in enumerate(names):
        sr, sg = float(p_real[i]), float(p_gen[i])
        details = {
            "real_share": sr,
            "generated_share": sg,
            "real_count": float(real_counts[i]),
            "generated_count": float(gen_counts[i]),
        }
        if sr == 0.0:
            res = make_result(
                "synthetic",
                "relative_share",
                ATTRIBUTE,
                [name],
                math.nan,
                spec.min_class_share_ratio,
                ">=",
                note="class absent from the real data",
                details=details,
                group_only=True,
            )
        else:
            res = make_result(
                "synthetic",
                "relative_share",
                ATTRIBUTE,
                [name],
                sg / sr,
                spec.min_class_share_ratio,
                ">=",
                details=details,
                group_only=True,
            )
            if sg == 0.0 and spec.min_class_share_ratio is not None:
                res.passed = False
                res.note = "class present in the real data but never generated"
        results.append(res)

    for idx in sorted(conditional_accuracy or {}):
        if not 0 <= idx < k:
            raise ValueError(f"conditional_accuracy: class index {idx} not in [0, {k})")
        acc = float((conditional_accuracy or {})[idx])
        results.append(
            make_result(
                "synthetic",
                "conditional_accuracy",
                ATTRIBUTE,
                [names[idx]],
                acc,
                spec.min_conditional_accuracy,
                ">=",
                group_only=True,
            )
        )
    return BiasVerdict.from_results("synthetic", results, policy="warn")


def shares_table(
    real_labels: np.ndarray,
    generated_labels: np.ndarray | None,
    class_names: list[str],
) -> list[dict[str, Any]]:
    """One row per class: ``class``, ``real_count``, ``real_share``, ``generated_count``,
    ``generated_share``, ``ratio`` (generated / real share). The generated columns are None
    without generated labels; ``ratio`` is None too when the class has no real image."""
    names = _class_names(class_names)
    k = len(names)
    real = _labels(real_labels, k, "real_labels")
    real_counts = np.bincount(real, minlength=k)
    p_real = class_distribution(real, k)
    gen_counts: np.ndarray | None = None
    p_gen: np.ndarray | None = None
    if generated_labels is not None:
        gen = _labels(generated_labels, k, "generated_labels")
        gen_counts = np.bincount(gen, minlength=k)
        p_gen = class_distribution(gen, k)
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {
            "class": name,
            "real_count": int(real_counts[i]),
            "real_share": float(p_real[i]),
            "generated_count": None,
            "generated_share": None,
            "ratio": None,
        }
        if gen_counts is not None and p_gen is not None:
            row["generated_count"] = int(gen_counts[i])
            row["generated_share"] = float(p_gen[i])
            if p_real[i] > 0:
                row["ratio"] = float(p_gen[i] / p_real[i])
        rows.append(row)
    return rows


def _has_generated(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("generated_share") is not None for r in rows)


def shares_figure(rows: list[dict[str, Any]], title: str) -> Figure:
    """Grouped bars of the real and (when present) generated share per class, with the uniform
    share as a dashed line. An Agg :class:`~matplotlib.figure.Figure`, no pyplot."""
    names = [str(r["class"]) for r in rows]
    series: list[tuple[str, list[float]]] = [
        ("real", [float(r["real_share"]) for r in rows]),
    ]
    if _has_generated(rows):
        series.append(
            ("generated", [float(r.get("generated_share") or 0.0) for r in rows]),
        )
    fig = Figure(
        figsize=(min(14.0, max(5.0, 0.25 * len(names) * len(series) + 2.0)), 3.4),
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.arange(len(names))
    width = 0.8 / len(series)
    for j, (label, values) in enumerate(series):
        ax.bar(x + (j - (len(series) - 1) / 2) * width, values, width, label=label)
    if names:
        ax.axhline(1.0 / len(names), color="0.3", linestyle="--", linewidth=1, label="uniform")
    ax.set_xticks(x, names, rotation=30 if max(map(len, names), default=0) > 3 else 0)
    ax.set_xlabel("class")
    ax.set_ylabel("share of images")
    top = max([v for _, vals in series for v in vals] + [1.0 / max(1, len(names))])
    ax.set_ylim(0, min(1.0, top * 1.3) if top > 0 else 1.0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="upper center")
    return fig


def _cell(value: Any, share: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4f}" if share else f"{value:.3f}"
    return str(value)


_COLUMNS = ("class", "real_count", "real_share", "generated_count", "generated_share", "ratio")


def _table_columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(_COLUMNS) if _has_generated(rows) else list(_COLUMNS[:3])


def _shares_html(rows: list[dict[str, Any]], title: str) -> str:
    esc = html.escape
    parts = ["<h2>Class shares</h2>"]
    data = base64.b64encode(figure_png(shares_figure(rows, title))).decode("ascii")
    parts.append(f'<img src="data:image/png;base64,{data}" alt="class shares: real vs generated">')
    cols = _table_columns(rows)
    parts.append('<table class="shares"><thead><tr>')
    parts.append("".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr></thead><tbody>")
    for r in rows:
        cells = []
        for c in cols:
            text = esc(_cell(r.get(c), share=c.endswith("share")))
            cells.append(f"<td>{text}</td>" if c == "class" else f"<td class=num>{text}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def report_html(
    verdict: BiasVerdict,
    rows: list[dict[str, Any]],
    title: str,
    extra_html: str = "",
) -> str:
    """A self-contained HTML page: the tabular bias report of ``verdict`` (banner, failures,
    metrics table) with the class-share chart (inline base64 PNG) and table inserted before the
    metrics, and ``extra_html`` (e.g. sample grids) at the end."""
    page = render_html(verdict, None, title)
    shares = _shares_html(rows, title)
    marker = "<h2>Metrics</h2>"
    if marker in page:
        page = page.replace(marker, shares + "\n" + marker, 1)
    else:  # pragma: no cover - the tabular layout changed; still keep everything
        extra_html = shares + "\n" + extra_html
    if extra_html:
        head, sep, tail = page.rpartition("</body>")
        page = head + extra_html + "\n" + sep + tail if sep else page + extra_html
    return page


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(verdict: BiasVerdict, rows: list[dict[str, Any]], title: str) -> str:
    """The tabular Markdown report of ``verdict`` followed by the per-class share table."""
    cols = _table_columns(rows)
    lines = [
        render_markdown(verdict, title).rstrip("\n"),
        "",
        "## Class shares",
        "",
        "| " + " | ".join(cols) + " |",
        "|---|" + "---:|" * (len(cols) - 1),
    ]
    for r in rows:
        cells = [_cell(r.get(c), share=c.endswith("share")) for c in cols]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
