"""Resolve a dataset spec against its data: the columns a spec does not list are inferred
(:mod:`genops.workloads.tabular.data.infer`), or under ``columns_mode: listed`` named as
unused; the result records which column was written, which inferred, which left out and why.

The run resolves the spec once, in the pipeline's start step (the CLI does the same before
the run to report it early); every later step reads the resolved spec from the run's config.
:func:`render_spec` writes a resolved spec back as YAML, each column marked; the prepare step
logs it as ``data_spec/resolved_spec.yaml`` and ``genops init`` writes a starter spec with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import yaml

from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.data.infer import (
    Inference,
    SpecResolutionError,
    infer_as_role,
    infer_column,
)

LISTED_ONLY = "not listed (columns_mode: listed)"
EXCLUDED_BY_SPEC = "left out by the spec (exclude_columns)"


def _roles(spec: DatasetSpec) -> dict[str, str]:
    roles = {a: "sensitive attribute" for a in spec.sensitive_attributes}
    roles[spec.target] = "target"
    return roles


def _with_resolution(
    spec: DatasetSpec,
    added: Mapping[str, Inference],
    excluded: Mapping[str, str],
) -> DatasetSpec:
    columns = {name: col.model_dump() for name, col in spec.columns.items()}
    for name, inference in added.items():
        assert inference.spec is not None
        columns[name] = inference.spec.model_dump()
    return DatasetSpec.model_validate(
        {
            **spec.model_dump(),
            "columns": columns,
            "resolution": {
                "inferred": {name: inf.note for name, inf in added.items()},
                "excluded": dict(excluded),
            },
        }
    )


def _headers(spec: DatasetSpec) -> list[list[str]]:
    from genops.workloads.tabular.data.sources import SourceProblem, read_header

    headers = []
    for uri in spec.sources:
        try:
            headers.append(read_header(uri, spec.format))
        except SourceProblem as exc:
            raise SpecResolutionError(f"{uri}: {exc}") from exc
    return headers


def resolve_spec(spec: DatasetSpec, frames: Sequence[pd.DataFrame] | None = None) -> DatasetSpec:
    """The spec with its columns resolved against the data (``frames``: the sources as
    :func:`genops.workloads.tabular.data.prepare.load_source` reads them; read here when not
    given). A spec already resolved comes back as it is.

    Raises :class:`SpecResolutionError` (naming the column and the rule) when the data cannot
    fit the spec: a target or sensitive attribute that is not a column, or not categorical;
    a positive label the target never takes; an ``exclude_columns`` or ``value_map`` entry
    that names no column.
    """
    if spec.resolution is not None:
        return spec
    if frames is None and spec.columns_mode == "listed":
        headers = _headers(spec)
    else:
        if frames is None:
            from genops.workloads.tabular.data.prepare import load_source

            frames = [load_source(spec, uri) for uri in spec.sources]
        headers = [[str(c) for c in f.columns] for f in frames]
    order = list(dict.fromkeys(c for header in headers for c in header))
    present = {c: sum(c in header for header in headers) for c in order}
    if spec.columns_mode == "listed":
        unused = {c: LISTED_ONLY for c in order if c not in spec.columns}
        return _with_resolution(spec, {}, unused)

    assert frames is not None
    where = spec.sources[0] if len(spec.sources) == 1 else f"the {len(spec.sources)} sources"
    roles = _roles(spec)
    for name, role in roles.items():
        if name not in spec.columns and name not in present:
            raise SpecResolutionError(f"{role} '{name}' is not a column of {where}")
    for field, names in (("exclude_columns", spec.exclude_columns), ("value_map", spec.value_map)):
        for name in names:
            if name not in present:
                raise SpecResolutionError(
                    f"{field} names '{name}', which is not a column of {where}"
                )

    complete = [c for c in order if present[c] == len(frames)]
    joined = pd.concat([f[complete] for f in frames], ignore_index=True)
    added: dict[str, Inference] = {}
    excluded: dict[str, str] = {}
    for name in order:
        if name in spec.columns:
            continue
        if name in spec.exclude_columns:
            excluded[name] = EXCLUDED_BY_SPEC
            continue
        if present[name] < len(frames):
            if name in roles:
                raise SpecResolutionError(
                    f"{roles[name]} '{name}' is in {present[name]} of {len(frames)} sources only"
                )
            excluded[name] = f"in {present[name]} of {len(frames)} sources only"
            continue
        if name in roles:
            inference = infer_as_role(name, joined[name], roles[name], spec.missing_strategy)
        else:
            inference = infer_column(name, joined[name], spec.missing_strategy)
        if inference.spec is not None:
            added[name] = inference
        else:
            excluded[name] = inference.note
    for name in spec.value_map:
        if name in excluded:
            raise SpecResolutionError(
                f"value_map names '{name}', which is left out: {excluded[name]}"
            )
    target = spec.columns.get(spec.target) or added[spec.target].spec
    assert target is not None
    if target.allowed is not None and spec.positive_label not in target.allowed:
        raise SpecResolutionError(
            f"positive_label '{spec.positive_label}' is not a value of the target "
            f"'{spec.target}' in the data: {target.allowed[:20]}"
        )
    return _with_resolution(spec, added, excluded)


def resolution_summary(spec: DatasetSpec) -> list[str]:
    """What resolving the spec did, for a person: one line each."""
    res = spec.resolution
    if res is None:
        return [f"columns: {len(spec.columns)} listed (not resolved against the data yet)"]
    written = [c for c in spec.columns if c not in res.inferred]
    lines = [
        f"columns: {len(spec.columns)} used ({len(written)} written, {len(res.inferred)} "
        f"inferred), {len(res.excluded)} left out"
    ]
    lines += [f"  inferred  {name}: {note}" for name, note in res.inferred.items()]
    lines += [f"  left out  {name}: {why}" for name, why in res.excluded.items()]
    return lines


def _dump(key: str, value: Any, indent: int) -> list[str]:
    """``key: value`` in block style, the value's innermost collections in flow style."""
    text = yaml.safe_dump(
        {key: value},
        sort_keys=False,
        default_flow_style=None if isinstance(value, dict | list) and value else False,
        width=96,
        allow_unicode=True,
    )
    return [" " * indent + line for line in text.rstrip("\n").splitlines()]


def render_spec(
    spec: DatasetSpec,
    header: Sequence[str] = (),
    key_comments: Mapping[str, str] | None = None,
) -> str:
    """The dataset spec as YAML (a ``dataset:`` section a config can hold), each column
    marked ``# written`` or ``# inferred: ...`` and each column left out listed under
    ``exclude_columns`` with its reason. ``key_comments`` puts a comment above a key."""
    key_comments = key_comments or {}
    res = spec.resolution
    inferred = res.inferred if res is not None else {}
    excluded = dict(res.excluded) if res is not None else {}
    for name in spec.exclude_columns:
        excluded.setdefault(name, EXCLUDED_BY_SPEC)
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append("dataset:")
    data = spec.model_dump(mode="json", exclude={"resolution"}, exclude_none=True)
    for key, value in data.items():
        if key in key_comments:
            lines.extend(f"  # {c}" for c in key_comments[key].splitlines())
        if key == "columns":
            lines.append("  columns:")
            for name, column in spec.columns.items():
                mark = f"inferred: {inferred[name]}" if name in inferred else "written"
                lines.append(f"    # {mark}")
                lines.extend(_dump(name, column.model_dump(mode="json", exclude_defaults=True), 4))
        elif key == "exclude_columns":
            if not excluded:
                lines.append("  exclude_columns: []")
                continue
            lines.append("  exclude_columns:")
            for name, why in excluded.items():
                item = yaml.safe_dump([name], default_flow_style=False).strip()
                lines.append(f"    {item}  # {why}")
        else:
            lines.extend(_dump(key, value, 2))
    return "\n".join(lines) + "\n"
