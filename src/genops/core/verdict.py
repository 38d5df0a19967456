"""Results of the bias checks: one :class:`MetricResult` per metric, one :class:`BiasVerdict`
per check, and :func:`decide`, which turns a verdict and a policy into what the pipeline does next.

A verdict serialises to strict JSON (no bare ``NaN``/``Infinity`` tokens): non-finite floats are
written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` and read back as floats.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

BiasPolicy = Literal["block", "warn", "mitigate"]
"""What a failed gate does: ``block`` stops the run, ``warn`` logs the failure and goes on,
``mitigate`` goes on with the workload's mitigation step."""

Decision = Literal["continue", "stop", "mitigate"]
"""What the pipeline does after a bias check."""

CheckName = Literal["data", "synthetic"]

#: Comparisons understood by :func:`compare`. ``"|x|<="`` gates the absolute value.
COMPARISONS: tuple[str, ...] = ("<=", "<", ">=", ">", "|x|<=", "report")

_VIOLATION = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}


def compare(value: float, threshold: float | None, comparison: str) -> bool:
    """Whether ``value`` satisfies ``comparison`` against ``threshold``.

    ``threshold=None`` (or comparison ``"report"``) means "report only" and always passes.
    A NaN value (a metric that cannot be computed, e.g. an empty facet) passes too: it is no
    evidence of bias, and the results that make it NaN (coverage, a group missing from the
    synthetic data) fail on their own.
    """
    if threshold is None or comparison == "report" or math.isnan(value):
        return True
    if comparison == "<=":
        return value <= threshold
    if comparison == "<":
        return value < threshold
    if comparison == ">=":
        return value >= threshold
    if comparison == ">":
        return value > threshold
    if comparison == "|x|<=":
        return abs(value) <= threshold
    raise ValueError(f"unknown comparison {comparison!r}; expected one of {COMPARISONS}")


def _encode_float(x: float) -> float | str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


def _decode_float(x: float | str | int) -> float:
    return float(x)


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3f}"


@dataclass
class MetricResult:
    """One metric for one attribute and one group (or pair of groups).

    ``groups`` holds the facet under test (``["Female"]``: "Female vs the rest"), or two groups
    for a pair (``["White", "Other"]``: facet *a* first, facet *d* second), or is empty for a
    metric over the whole attribute (e.g. representation TVD). ``details`` carries the inputs
    of the value (e.g. the real and the synthetic DPL behind an amplification) for reports.
    """

    check: str
    metric: str
    attribute: str
    groups: list[str]
    value: float
    threshold: float | None
    comparison: str
    passed: bool
    note: str = ""
    details: dict[str, float] = field(default_factory=dict)
    group_only: bool = False
    """A metric about one group on its own (coverage, a class share), not the group against
    the rest of the rows."""

    def subject(self) -> str:
        """Who the result is about, e.g. ``sex='Female' vs rest`` (or ``sex='Female'`` for
        the metrics with ``group_only``)."""
        a = self.attribute
        if len(self.groups) == 1:
            if self.group_only:
                return f"{a}={self.groups[0]!r}"
            return f"{a}={self.groups[0]!r} vs rest"
        if len(self.groups) == 2:
            return f"{a}={self.groups[0]!r} vs {a}={self.groups[1]!r}"
        if not self.groups:
            return a
        return f"{a} in {self.groups!r}"

    def describe(self) -> str:
        """One line naming metric, attribute, groups, value and (violated) threshold."""
        text = f"{self.metric} for {self.subject()} = {_fmt(self.value)}"
        if self.threshold is not None and self.comparison != "report":
            thr = _fmt(self.threshold)
            if self.comparison == "|x|<=":
                if self.passed:
                    text += f" (|{self.metric}| <= {thr})"
                elif self.value >= 0:
                    text += f" > {thr}"
                else:
                    text += f", |{self.metric}| = {_fmt(abs(self.value))} > {thr}"
            elif self.passed:
                text += f" ({self.comparison} {thr})"
            else:
                text += f" {_VIOLATION.get(self.comparison, 'violates ' + self.comparison)} {thr}"
        if self.note:
            text += f" [{self.note}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "metric": self.metric,
            "attribute": self.attribute,
            "groups": list(self.groups),
            "value": _encode_float(self.value),
            "threshold": None if self.threshold is None else _encode_float(self.threshold),
            "comparison": self.comparison,
            "passed": bool(self.passed),
            "note": self.note,
            "details": {k: _encode_float(v) for k, v in self.details.items()},
            "group_only": self.group_only,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricResult:
        threshold = data.get("threshold")
        return cls(
            check=str(data["check"]),
            metric=str(data["metric"]),
            attribute=str(data["attribute"]),
            groups=[str(g) for g in data.get("groups", [])],
            value=_decode_float(data["value"]),
            threshold=None if threshold is None else _decode_float(threshold),
            comparison=str(data["comparison"]),
            passed=bool(data["passed"]),
            note=str(data.get("note", "")),
            details={str(k): _decode_float(v) for k, v in dict(data.get("details", {})).items()},
            group_only=bool(data.get("group_only", False)),
        )


def make_result(
    check: str,
    metric: str,
    attribute: str,
    groups: Sequence[str],
    value: float,
    threshold: float | None,
    comparison: str,
    note: str = "",
    details: Mapping[str, float] | None = None,
    group_only: bool = False,
) -> MetricResult:
    """Build a :class:`MetricResult`, deciding ``passed`` with :func:`compare`."""
    value = float(value)
    return MetricResult(
        check=check,
        metric=metric,
        attribute=attribute,
        groups=[str(g) for g in groups],
        value=value,
        threshold=None if threshold is None else float(threshold),
        comparison=comparison,
        passed=compare(value, threshold, comparison),
        note=note,
        details={k: float(v) for k, v in (details or {}).items()},
        group_only=group_only,
    )


@dataclass
class BiasVerdict:
    """The outcome of one bias check ("data" before training, "synthetic" after sampling)."""

    check: str
    passed: bool
    policy: BiasPolicy
    results: list[MetricResult]

    @classmethod
    def from_results(
        cls, check: str, results: Sequence[MetricResult], policy: BiasPolicy = "warn"
    ) -> BiasVerdict:
        """A verdict that passes when every result passes."""
        return cls(
            check=check,
            passed=all(r.passed for r in results),
            policy=policy,
            results=list(results),
        )

    @property
    def failures(self) -> list[MetricResult]:
        return [r for r in self.results if not r.passed]

    @property
    def decision(self) -> Decision:
        return decide(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "passed": bool(self.passed),
            "policy": self.policy,
            "decision": decide(self),
            "n_results": len(self.results),
            "n_failures": len(self.failures),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON (``allow_nan=False``); see the module docstring for non-finite floats."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BiasVerdict:
        policy = str(data["policy"])
        if policy not in ("block", "warn", "mitigate"):
            raise ValueError(f"unknown bias policy {policy!r}")
        return cls(
            check=str(data["check"]),
            passed=bool(data["passed"]),
            policy=cast(BiasPolicy, policy),
            results=[MetricResult.from_dict(r) for r in data.get("results", [])],
        )

    @classmethod
    def from_json(cls, text: str) -> BiasVerdict:
        return cls.from_dict(json.loads(text))


def decide(verdict: BiasVerdict, policy: BiasPolicy | None = None) -> Decision:
    """What to do after a check.

    ``passed`` → ``"continue"``; failed and policy ``"block"`` → ``"stop"``; failed and
    ``"warn"`` → ``"continue"`` (the caller logs :func:`failure_message`); failed and
    ``"mitigate"`` → ``"mitigate"``. ``policy`` defaults to the verdict's own policy.
    """
    chosen = verdict.policy if policy is None else policy
    if verdict.passed:
        return "continue"
    if chosen == "block":
        return "stop"
    if chosen == "warn":
        return "continue"
    if chosen == "mitigate":
        return "mitigate"
    raise ValueError(f"unknown bias policy {chosen!r}")


def failure_message(verdict: BiasVerdict, max_items: int | None = 10) -> str:
    """A human-readable summary of the failures, e.g.

    ``data bias gate failed: DPL for sex='Female' vs rest = 0.196 > 0.100``.

    Several failures are joined with ``"; "``; beyond ``max_items`` the rest are counted.
    Returns ``"<check> bias gate passed"`` when nothing failed.
    """
    failures = verdict.failures
    if not failures:
        return f"{verdict.check} bias gate passed"
    shown = failures if max_items is None else failures[:max_items]
    text = f"{verdict.check} bias gate failed: " + "; ".join(r.describe() for r in shown)
    if len(shown) < len(failures):
        text += f"; and {len(failures) - len(shown)} more"
    return text
