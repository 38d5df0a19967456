"""``genops init DATA``: a starter run config for a CSV or Parquet file.

Every column is inferred (:mod:`genops.workloads.tabular.data.infer`) and written out, so the
user edits one file that says everything; identifiers, free text and the like go under
``exclude_columns`` with their reasons. Sensitive attributes are suggested from common names
(sex, gender, race, age, religion, ...) and the target from common names or the shape of the
data; both are marked as suggestions in YAML comments. The file passes ``genops
check-config`` and runs as it is.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genops.core.io import read_table
from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.data.infer import SpecResolutionError, infer_column, name_tokens
from genops.workloads.tabular.data.resolve import render_spec, resolve_spec

#: Words in a column name that suggest a sensitive attribute (protected characteristics).
SENSITIVE_WORDS = {
    "sex",
    "gender",
    "race",
    "racial",
    "ethnicity",
    "ethnic",
    "age",
    "religion",
    "religious",
    "nationality",
    "citizenship",
    "disability",
    "disabled",
    "marital",
    "pregnancy",
    "pregnant",
    "orientation",
    "caste",
    "veteran",
}
#: Names (or last words of names) that suggest the target.
TARGET_WORDS = {
    "target",
    "label",
    "class",
    "outcome",
    "y",
    "churn",
    "churned",
    "default",
    "fraud",
    "income",
    "response",
    "survived",
    "diagnosis",
    "approved",
    "result",
    "converted",
}
#: Values that name the positive class when the target holds one of them.
POSITIVE_WORDS = ["1", "yes", "y", "true", "t", "positive", "pos", ">50k", "approved", "fraud"]
#: Cell values read as missing when a file holds them.
MISSING_CANDIDATES = ["?", "", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL"]


class InitError(ValueError):
    """The file cannot make a starter spec (the message says why)."""


@dataclass(frozen=True)
class Starter:
    text: str  # the YAML to write
    summary: list[str]  # what a person should check, one line each


def dataset_name(path: str) -> str:
    """``Loans 2024.csv.gz`` -> ``loans-2024``."""
    stem = Path(path).name.split(".")[0]
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return name if re.match(r"^[a-z0-9]", name) else f"data-{name}".rstrip("-")


def _missing_markers(frame: pd.DataFrame) -> list[str]:
    found = []
    text_columns = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    for marker in MISSING_CANDIDATES:
        if any(frame[c].astype(str).str.strip().eq(marker).any() for c in text_columns):
            found.append(marker)
    return found or ["?", ""]


def _is_sensitive(name: str) -> bool:
    tokens = name_tokens(name)
    return any(t in SENSITIVE_WORDS for t in tokens) or name.lower() in {
        "native_country",
        "country_of_birth",
    }


def _target(frame: pd.DataFrame, kinds: dict[str, str], avoid: set[str]) -> tuple[str, str]:
    """The suggested target and why."""
    categorical = [c for c in frame.columns if kinds.get(c) in ("categorical", "boolean")]

    def binary(name: str) -> bool:
        return int(frame[name].nunique()) == 2

    for name in categorical:
        tokens = name_tokens(name)
        if (
            name.lower() in TARGET_WORDS or (tokens and tokens[-1] in TARGET_WORDS)
        ) and name not in avoid:
            return name, f"named like a target ('{name}')"
    last = str(frame.columns[-1])
    if last in categorical and binary(last) and last not in avoid:
        return last, "the last column, with two values"
    for name in categorical:
        if binary(name) and name not in avoid:
            return name, "the first column with two values: a guess"
    for name in categorical:
        if name not in avoid:
            return name, "the first categorical column: a guess"
    raise InitError("no categorical column to use as the target (pass --target)")


def _positive(values: pd.Series) -> tuple[str, str]:
    from genops.workloads.tabular.data.values import category_strings

    shares = category_strings(values.dropna()).value_counts(normalize=True)
    for word in POSITIVE_WORDS:
        for value in shares.index:
            if str(value).lower() == word:
                return str(value), f"'{value}' reads as the positive class"
    rarest = str(shares.index[-1])
    return rarest, f"the rarer value ({shares.iloc[-1]:.0%} of rows): check it"


def starter_spec(data: str, out: str | Path, target: str | None = None) -> Starter:
    """A starter run config for the file ``data`` (local path), to be written at ``out``:
    its source is written relative to ``out``'s folder."""
    data_path = Path(data).resolve()
    try:
        probe = read_table(str(data_path))
    except ValueError as exc:
        raise InitError(str(exc)) from exc
    markers = _missing_markers(probe)
    frame = read_table(str(data_path), na_values=markers)
    if frame.empty:
        raise InitError(f"{data}: no rows")
    kinds = {str(c): infer_column(str(c), frame[c]).kind for c in frame.columns}
    sensitive = [c for c in map(str, frame.columns) if _is_sensitive(c)]
    usable = [c for c in sensitive if kinds[c] in ("categorical", "boolean")]
    if target is None:
        target, why_target = _target(frame, kinds, set(usable))
    elif target not in frame.columns:
        raise InitError(f"--target '{target}' is not a column of {data}: {list(frame.columns)}")
    else:
        why_target = "given with --target"
    usable = [c for c in usable if c != target]
    positive, why_positive = _positive(frame[target])
    source = os.path.relpath(data_path, Path(out).resolve().parent)
    spec = DatasetSpec.model_validate(
        {
            "name": dataset_name(str(data_path)),
            "sources": [str(data_path)],
            "target": target,
            "positive_label": positive,
            "sensitive_attributes": usable,
            "missing_markers": markers,
        }
    )
    try:
        resolved = resolve_spec(spec, [frame])
    except SpecResolutionError as exc:
        raise InitError(f"{data}: {exc}") from exc
    assert resolved.resolution is not None
    # Every column is written out (the run then reports it as written); the columns left out
    # go under exclude_columns, each with its reason in a comment.
    reasons = resolved.resolution.excluded
    written = resolved.model_copy(update={"sources": [source], "exclude_columns": list(reasons)})
    comments = {
        "sources": "CSV or Parquet files: relative to this file, absolute, or s3://bucket/key",
        "target": f"SUGGESTED target: {why_target}",
        "positive_label": f"SUGGESTED: {why_positive}",
        "sensitive_attributes": _sensitive_comment(sensitive, usable, kinds),
        "columns_mode": "infer: columns not listed below are inferred; listed: only these",
        "columns": "inferred from the data by `genops init`: edit the ranges and allowed values "
        "to what new data may hold",
    }
    text = render_spec(
        written,
        header=[
            f"Starter run config for {data_path.name}, written by `genops init`.",
            "Check the SUGGESTED lines, then:",
            f"  genops check-config {Path(out).name}",
            f"  genops run tabular-synth --config {Path(out).name}",
            "Other sections (model, bias, tuning, blessing, deploy) take their defaults;",
            "see pipelines/configs/adult.yaml and the README for every key.",
        ],
        key_comments=comments,
    )
    text += "\nbias:\n  policy: warn   # block | warn | mitigate (see the README)\n"
    summary = [
        f"{len(resolved.columns)} columns inferred, {len(reasons)} left out",
        *[f"  left out  {name}: {why}" for name, why in reasons.items()],
        f"target: {target} (suggested: {why_target}); positive_label: {positive}",
        "sensitive attributes: "
        + (", ".join(usable) if usable else "none found by name: add yours")
        + " (suggested from the column names)",
    ]
    return Starter(text, summary)


def _sensitive_comment(found: list[str], usable: list[str], kinds: dict[str, str]) -> str:
    lines = ["SUGGESTED from the column names (sex, gender, race, age, religion, ...): check them"]
    for name in found:
        if name not in usable:
            lines.append(
                f"'{name}' looks sensitive but is {kinds[name]}: group it into categories "
                "in the data to check it"
            )
    return "\n".join(lines)
