"""Data validation with a Great Expectations suite derived from the dataset spec.

The suite is built from the spec, never written by hand: columns present, numeric types for
continuous columns, ranges, allowed categories, null fractions, at least one row. Each source
file is validated on its own so a failure names the file, the column and the expectation.
"""

from __future__ import annotations

import html
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.data.values import category_strings

NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "Int64", "float32", "float64", "Float64"]


class DataValidationError(ValueError):
    """Raised when a source file breaks an expectation; the message says where and why."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ExpectationOutcome:
    source: str
    expectation: str
    column: str | None
    success: bool
    detail: str


@dataclass
class ValidationReport:
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def to_dict(self) -> dict[str, Any]:
        return {"success": self.success, "outcomes": [asdict(o) for o in self.outcomes]}

    def failure_message(self) -> str:
        lines = [
            f"{o.source}: column '{o.column}' failed {o.expectation}: {o.detail}"
            if o.column
            else f"{o.source}: {o.expectation} failed: {o.detail}"
            for o in self.failures
        ]
        return "data validation failed:\n  " + "\n  ".join(lines)

    def to_html(self) -> str:
        rows = "".join(
            f"<tr class='{'ok' if o.success else 'bad'}'><td>{html.escape(o.source)}</td>"
            f"<td>{html.escape(o.column or '')}</td><td>{html.escape(o.expectation)}</td>"
            f"<td>{'pass' if o.success else 'FAIL'}</td><td>{html.escape(o.detail)}</td></tr>"
            for o in self.outcomes
        )
        verdict = "passed" if self.success else f"FAILED ({len(self.failures)} expectations)"
        return (
            "<html><head><meta charset='utf-8'><title>Data validation</title><style>"
            "body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px}.bad{background:#fdd}"
            "</style></head><body>"
            f"<h1>Data validation: {verdict}</h1>"
            "<p>Great Expectations suite derived from the dataset spec.</p><table>"
            "<tr><th>file</th><th>column</th><th>expectation</th><th>result</th>"
            f"<th>detail</th></tr>{rows}</table></body></html>"
        )


def build_suite(spec: DatasetSpec, present_columns: set[str]) -> list[Any]:
    """Expectations for one file, for the columns it has (missing ones are reported apart)."""
    import great_expectations as gx

    exp = gx.expectations
    suite: list[Any] = [exp.ExpectTableRowCountToBeBetween(min_value=1)]
    for name, col in spec.columns.items():
        suite.append(exp.ExpectColumnToExist(column=name))
        if name not in present_columns:
            continue
        suite.append(
            exp.ExpectColumnValuesToNotBeNull(column=name, mostly=1.0 - col.max_null_fraction)
            if col.max_null_fraction < 1.0
            else None
        )
        if col.type == "continuous":
            suite.append(exp.ExpectColumnValuesToBeInTypeList(column=name, type_list=NUMERIC_TYPES))
            if col.min is not None or col.max is not None:
                suite.append(
                    exp.ExpectColumnValuesToBeBetween(
                        column=name, min_value=col.min, max_value=col.max
                    )
                )
        elif col.allowed is not None:
            suite.append(exp.ExpectColumnValuesToBeInSet(column=name, value_set=list(col.allowed)))
    return [e for e in suite if e is not None]


def _describe(result: Any, frame: pd.DataFrame) -> str:
    cfg = result.expectation_config
    kind, kwargs, res = cfg.type, cfg.kwargs, result.result or {}
    column = kwargs.get("column")
    if kind == "expect_column_to_exist":
        return "column is missing" if not result.success else "present"
    if kind == "expect_table_row_count_to_be_between":
        return f"{res.get('observed_value')} rows (need at least 1)"
    if kind == "expect_column_values_to_be_in_type_list":
        detail = f"type {res.get('observed_value')}, expected numeric"
        if not result.success and column in frame:
            values = frame[column].dropna()
            bad = values[pd.to_numeric(values, errors="coerce").isna()].unique()[:5]
            detail += f"; non-numeric values e.g. {[str(v) for v in bad]}"
        return detail
    unexpected = res.get("partial_unexpected_list") or []
    share = res.get("unexpected_percent")
    parts = []
    if kind == "expect_column_values_to_be_in_set":
        parts.append(f"values outside the allowed set: {sorted({str(v) for v in unexpected})}")
    elif kind == "expect_column_values_to_be_between":
        parts.append(
            f"values outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}], "
            f"e.g. {[str(v) for v in unexpected[:5]]}"
        )
    elif kind == "expect_column_values_to_not_be_null":
        parts.append(f"null share above {1 - float(kwargs.get('mostly', 1.0)):.3f}")
    if share is not None:
        parts.append(f"{share:.2f}% of rows")
    if result.exception_info and result.exception_info.get("raised_exception"):
        parts.append(str(result.exception_info.get("exception_message")))
    return "; ".join(parts) or "ok"


def validate_frame(spec: DatasetSpec, frame: pd.DataFrame, source: str) -> ValidationReport:
    """Run the derived suite against one file's frame (after markers and value maps)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # Categories compared as the spec writes them: a column of codes 1, 2, 3 read as numbers
    # holds the allowed values '1', '2', '3'.
    frame = frame.copy()
    for name in spec.categorical_columns:
        if name in frame.columns:
            frame[name] = category_strings(frame[name])
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("genops").add_dataframe_asset("source")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": frame}
    )
    suite = gx.ExpectationSuite(name=f"{spec.name}-derived")
    for expectation in build_suite(spec, set(frame.columns)):
        suite.add_expectation(expectation)
    result = batch.validate(suite, result_format="SUMMARY")
    report = ValidationReport()
    for r in result.results:
        cfg = r.expectation_config
        assert cfg is not None  # GX always attaches the configuration to a result
        report.outcomes.append(
            ExpectationOutcome(
                source=source,
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                success=bool(r.success),
                detail=_describe(r, frame),
            )
        )
    order = {name: i for i, name in enumerate(spec.columns)}
    report.outcomes.sort(key=lambda o: (o.success, order.get(o.column or "", -1)))
    return report
