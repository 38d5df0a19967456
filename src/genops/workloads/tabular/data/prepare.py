"""The prepare step's logic: load, clean, validate, split, profile, hash."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genops.core.io import content_hash, read_table
from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.data.validate import (
    DataValidationError,
    ValidationReport,
    validate_frame,
)
from genops.workloads.tabular.data.values import category_strings


@dataclass
class PreparedData:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    report: ValidationReport
    dataset_hash: str
    profile: dict[str, Any]


def load_source(spec: DatasetSpec, uri: str) -> pd.DataFrame:
    """Read one source and apply the spec's value map (e.g. the Adult test file's '>50K.')."""
    frame = read_table(uri, spec.format, na_values=spec.missing_markers)
    for column, mapping in spec.value_map.items():
        if column in frame.columns:
            frame[column] = frame[column].replace(mapping)
    return frame


def clean(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the spec's columns in the spec's order, with canonical dtypes."""
    frame = frame[list(spec.columns)].copy()
    for name in spec.categorical_columns:
        # one string per category ('3', not '3.0' from a column with gaps), as the spec says
        frame[name] = category_strings(frame[name])
        if spec.missing_strategy == "category":
            frame[name] = frame[name].where(frame[name].notna(), "__missing__")
    if spec.missing_strategy == "drop_rows":
        frame = frame.dropna().reset_index(drop=True)
    for name in spec.categorical_columns:
        frame[name] = frame[name].astype(object)
    for name in spec.continuous_columns:
        values = pd.to_numeric(frame[name])
        if spec.missing_strategy == "category":
            values = values.fillna(values.median())
        integral = bool(np.all(np.isclose(values, np.round(values))))
        frame[name] = values.round().astype("int64") if integral else values.astype("float64")
    return frame


def split(
    spec: DatasetSpec, frame: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded train / validation / holdout split."""
    # imported here: steps that only read the splits (train, tuning) need not load sklearn
    from sklearn.model_selection import train_test_split

    s = spec.split
    stratify = frame[spec.target] if frame[spec.target].value_counts().min() >= 3 else None
    rest, holdout = train_test_split(
        frame, test_size=s.holdout, random_state=s.seed, stratify=stratify
    )
    val_share = s.validation / (1.0 - s.holdout)
    stratify_rest = rest[spec.target] if stratify is not None else None
    train, validation = train_test_split(
        rest, test_size=val_share, random_state=s.seed + 1, stratify=stratify_rest
    )
    return (
        train.reset_index(drop=True),
        validation.reset_index(drop=True),
        holdout.reset_index(drop=True),
    )


def profile(spec: DatasetSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """A compact per-column profile (what a person checks first)."""
    columns: dict[str, Any] = {}
    for name in spec.continuous_columns:
        v = frame[name]
        columns[name] = {
            "type": "continuous",
            "dtype": str(v.dtype),
            "min": float(v.min()),
            "max": float(v.max()),
            "mean": float(v.mean()),
            "std": float(v.std()),
            "quantiles": {str(q): float(v.quantile(q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
        }
    for name in spec.categorical_columns:
        shares = frame[name].value_counts(normalize=True)
        columns[name] = {
            "type": "categorical",
            "n_categories": int(shares.size),
            "shares": {str(k): round(float(v), 5) for k, v in shares.items()},
        }
    return {"rows": len(frame), "columns": columns}


def profile_html(name: str, prof: dict[str, Any]) -> str:
    rows = []
    for col, p in prof["columns"].items():
        if p["type"] == "continuous":
            desc = (
                f"min {p['min']:.4g}, median {p['quantiles']['0.5']:.4g}, max {p['max']:.4g}, "
                f"mean {p['mean']:.4g}, std {p['std']:.4g}"
            )
        else:
            top = list(p["shares"].items())[:6]
            desc = f"{p['n_categories']} categories; " + ", ".join(f"{k} {v:.1%}" for k, v in top)
        rows.append(
            f"<tr><td>{html.escape(col)}</td><td>{p['type']}</td><td>{html.escape(desc)}</td></tr>"
        )
    return (
        f"<html><head><meta charset='utf-8'><title>Profile {html.escape(name)}</title></head>"
        f"<body style='font-family:sans-serif'><h1>Data profile: {html.escape(name)}</h1>"
        f"<p>{prof['rows']} rows after cleaning.</p><table border='1' cellpadding='3'>"
        f"<tr><th>column</th><th>type</th><th>summary</th></tr>{''.join(rows)}</table>"
        "</body></html>"
    )


def prepare(spec: DatasetSpec) -> PreparedData:
    """Load every source, validate each, then clean, sample and split the union.

    Raises DataValidationError (with the full report attached) before anything is split
    when any file breaks an expectation.
    """
    report = ValidationReport()
    frames = []
    for uri in spec.sources:
        frame = load_source(spec, uri)
        file_report = validate_frame(spec, frame, source=uri)
        report.outcomes.extend(file_report.outcomes)
        frames.append(frame)
    if not report.success:
        raise DataValidationError(report.failure_message(), report)
    data = clean(spec, pd.concat([f[list(spec.columns)] for f in frames], ignore_index=True))
    if data.empty:
        raise DataValidationError(
            f"no rows left after dropping rows with missing values ({spec.sources})", report
        )
    if spec.sample_rows is not None and spec.sample_rows < len(data):
        data = data.sample(n=spec.sample_rows, random_state=spec.split.seed).reset_index(drop=True)
    train, validation, holdout = split(spec, data)
    return PreparedData(
        train=train,
        validation=validation,
        holdout=holdout,
        report=report,
        dataset_hash=content_hash(data),
        profile=profile(spec, data),
    )


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write atomically: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def read_parquet(path: str | Path, spec: DatasetSpec) -> pd.DataFrame:
    """Read a prepared split back with the canonical dtypes (categoricals as Python str)."""
    frame = pd.read_parquet(path)
    for name in spec.categorical_columns:
        frame[name] = frame[name].astype(object)
    return frame
