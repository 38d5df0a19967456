"""Results of the bias checks: one :class:`MetricResult` per metric, one :class:`BiasVerdict`
per check, and :func:`decide`, which turns a verdict and a policy into what the pipeline does next.

A result may carry a confidence interval ``[low, high]`` of its value; it is then judged on the
interval, not the point (:func:`interval_passes`): it fails only when the whole interval lies
beyond the threshold. A result about a group too small to judge (``too_small``, the reason in
``note``) is reported with its value and never passes or fails on it: it does not fail the
verdict, and reports show "too small to judge" instead of pass. Which group is too small is
the workload's rule (tabular: ``min_group_rows``); :func:`make_result` applies it.

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


def interval_passes(low: float, high: float, threshold: float | None, comparison: str) -> bool:
    """Whether an interval ``[low, high]`` does *not* lie wholly beyond the threshold.

    ``"<="`` fails when ``low > threshold``, ``"<"`` when ``low >= threshold``, ``">="`` when
    ``high < threshold``, ``">"`` when ``high <= threshold``, ``"|x|<="`` when the interval lies
    wholly outside ``[-threshold, threshold]``. A NaN bound, a ``None`` threshold or ``"report"``
    pass (as in :func:`compare`).
    """
    if threshold is None or comparison == "report" or math.isnan(low) or math.isnan(high):
        return True
    if comparison == "<=":
        return not low > threshold
    if comparison == "<":
        return not low >= threshold
    if comparison == ">=":
        return not high < threshold
    if comparison == ">":
        return not high <= threshold
    if comparison == "|x|<=":
        return not (low > threshold or high < -threshold)
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


def format_interval(low: float | None, high: float | None, fmt: str = ".3f") -> str:
    """``"[0.170, 0.210]"``, or ``""`` without an interval."""
    if low is None or high is None or (math.isnan(low) and math.isnan(high)):
        return ""

    def one(x: float) -> str:
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return format(x, fmt)

    return f"[{one(low)}, {one(high)}]"


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
    low: float | None = None
    high: float | None = None
    """Confidence interval of ``value`` (both None: none computed); ``passed`` was decided on
    it (:func:`interval_passes`)."""
    interval_method: str = ""
    """How the interval was computed, e.g. ``"Newcombe 95%"``, ``"bootstrap 95%, 1000"``."""
    too_small: bool = False
    """The group is too small to judge: reported, never passed or failed on its value."""

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def interval_text(self) -> str:
        """``"[0.170, 0.210]"`` or ``""``."""
        return format_interval(self.low, self.high)

    @property
    def status(self) -> str:
        """``"pass"``, ``"FAIL"``, ``"too small to judge"`` or ``"report"`` (no threshold)."""
        if self.too_small:
            return "too small to judge"
        if not self.passed:
            return "FAIL"
        if self.threshold is None or self.comparison == "report":
            return "report"
        return "pass"

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
        if self.has_interval:
            text += f" {self.interval_text()}"
        if self.too_small:
            return text + f" [{self.note or 'too small to judge'}]"
        reaches = self.has_interval and not compare(self.value, self.threshold, self.comparison)
        if (
            self.threshold is not None
            and self.comparison != "report"
            and not (self.passed and reaches)
        ):
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
            "low": None if self.low is None else _encode_float(self.low),
            "high": None if self.high is None else _encode_float(self.high),
            "interval_method": self.interval_method,
            "too_small": self.too_small,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricResult:
        threshold = data.get("threshold")
        low, high = data.get("low"), data.get("high")
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
            low=None if low is None else _decode_float(low),
            high=None if high is None else _decode_float(high),
            interval_method=str(data.get("interval_method", "")),
            too_small=bool(data.get("too_small", False)),
        )


def _rule(metric: str, comparison: str, threshold: float) -> str:
    """``"|DPL| <= 0.100"``, ``"<= 0.050"``."""
    if comparison == "|x|<=":
        return f"|{metric}| <= {_fmt(threshold)}"
    return f"{comparison} {_fmt(threshold)}"


def _join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


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
    interval: tuple[float, float] | None = None,
    interval_method: str = "",
    too_small: str = "",
) -> MetricResult:
    """Build a :class:`MetricResult` and judge it.

    * ``too_small`` (a reason, e.g. ``"8 rows < 100"``): the result is too small to judge;
      it passes whatever its value, and the note says why.
    * else with an ``interval`` whose bounds are numbers: ``passed`` by
      :func:`interval_passes`; a point value beyond the threshold whose interval still
      reaches it gets a note saying so.
    * else: ``passed`` by :func:`compare` on the point value.
    """
    value = float(value)
    low, high = (None, None) if interval is None else (float(interval[0]), float(interval[1]))
    if too_small:
        passed = True
        note = _join_notes(f"too small to judge: {too_small}", note)
    elif low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        passed = interval_passes(low, high, threshold, comparison)
        if passed and not compare(value, threshold, comparison):
            rule = _rule(metric, comparison, float(threshold or 0.0))
            note = _join_notes(note, f"point value beyond {rule}, but the interval reaches it")
    else:
        passed = compare(value, threshold, comparison)
    return MetricResult(
        check=check,
        metric=metric,
        attribute=attribute,
        groups=[str(g) for g in groups],
        value=value,
        threshold=None if threshold is None else float(threshold),
        comparison=comparison,
        passed=passed,
        note=note,
        details={k: float(v) for k, v in (details or {}).items()},
        group_only=group_only,
        low=low,
        high=high,
        interval_method=interval_method if low is not None else "",
        too_small=bool(too_small),
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
    def too_small(self) -> list[MetricResult]:
        """Results about groups too small to judge (reported, not judged)."""
        return [r for r in self.results if r.too_small]

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
            "n_too_small": len(self.too_small),
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


def verdict_reasons(verdict: BiasVerdict, max_items: int | None = 10) -> str:
    """Why a verdict is what it is, in one line (for a summary or an MLflow tag).

    Failed: :func:`failure_message`. Passed: ``"<check> bias gate passed: 0 of N results
    failed"``, followed by the groups too small to judge, e.g. ``"; too small to judge:
    race='Other' vs rest (8 rows < 100)"`` (each subject once).
    """
    if verdict.failures:
        return failure_message(verdict, max_items)
    text = f"{verdict.check} bias gate passed: 0 of {len(verdict.results)} results failed"
    subjects: list[str] = []
    for r in verdict.too_small:
        reason = r.note.split(";")[0].removeprefix("too small to judge: ")
        item = f"{r.subject()} ({reason})"
        if item not in subjects:
            subjects.append(item)
    if subjects:
        shown = subjects if max_items is None else subjects[:max_items]
        text += "; too small to judge: " + ", ".join(shown)
        if len(shown) < len(subjects):
            text += f" and {len(subjects) - len(shown)} more"
    return text
