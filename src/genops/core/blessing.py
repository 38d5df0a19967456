"""Blessing: may this candidate replace the champion?

Three kinds of check, as TFX's Evaluator does it and beyond:
- absolute thresholds on the evaluation metrics (``min_metrics``/``max_metrics``) and the
  bias verdicts (from the YAML);
- relative floors (``relative``): a metric against a baseline metric of the same run, e.g. the
  utility of a model trained on synthetic rows against one trained on real rows, or the
  synthetic rows' exact-copy share against the real holdout's own. Data sets differ in how
  much signal and how many repeated rows they hold; a floor relative to the data's own
  baseline means the same on each;
- no regression beyond a tolerance against the current ``champion`` version's logged
  metrics. The first model ever (no champion) is judged on the other checks alone.

The result is a verdict a person can read, not an exception: :meth:`Blessing.reasons` names
each check that failed with its value, its limit and the baseline the limit came from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Comparison = Literal[">=", "<="]


class RelativeFloor(BaseModel):
    """``metric >= factor × baseline - slack`` (comparison ``>=``) or ``metric <= factor ×
    baseline + slack`` (``<=``), both metrics of the same evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="The candidate's metric, e.g. utility_tstr_auc.")
    baseline: str = Field(description="The metric it is measured against, e.g. utility_trtr_auc.")
    comparison: Comparison = Field(description="'>=': a floor; '<=': a ceiling.")
    factor: float = Field(1.0, gt=0.0, description="Multiplies the baseline.")
    slack: float = Field(
        0.0, ge=0.0, description="Absolute allowance added to a ceiling (taken off a floor)."
    )

    def limit(self, baseline: float) -> float:
        if self.comparison == ">=":
            return self.factor * baseline - self.slack
        return self.factor * baseline + self.slack


class BlessingSpec(BaseModel):
    """Thresholds, relative floors and the no-regression rule; each workload's config supplies
    its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_metrics: dict[str, float] = Field(
        default_factory=dict, description="metric -> smallest acceptable value (absolute)"
    )
    max_metrics: dict[str, float] = Field(
        default_factory=dict, description="metric -> largest acceptable value (absolute)"
    )
    relative: dict[str, RelativeFloor | None] = Field(
        default_factory=dict,
        description="check name -> a metric judged against a baseline metric of the same run "
        "(RelativeFloor); null turns a default check off.",
    )
    require_synthetic_bias_pass: bool = True
    require_data_bias_pass: bool = Field(
        False, description="Also refuse when the data bias check failed (policy warn)."
    )
    regression_metrics: list[str] = Field(
        default_factory=list,
        description="Higher-is-better metrics that must not fall below the champion's.",
    )
    regression_tolerance: float = Field(
        0.02, ge=0.0, description="Allowed drop against the champion (absolute)."
    )

    def metric_names(self) -> set[str]:
        """Every metric a check reads (for a workload to validate against what it logs)."""
        names = set(self.min_metrics) | set(self.max_metrics) | set(self.regression_metrics)
        for floor in self.relative.values():
            if floor is not None:
                names |= {floor.metric, floor.baseline}
        return names


def _num(x: float | None, fmt: str = ".4f") -> str:
    if x is None:
        return "missing"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return format(x, fmt)


@dataclass
class BlessingCheck:
    name: str
    kind: Literal["threshold", "relative", "gate", "regression"]
    value: float | None
    threshold: float | None
    comparison: str
    passed: bool
    note: str = ""
    metric: str = ""
    """relative: the metric judged (``name`` is the check's name)."""
    baseline_metric: str = ""
    """relative: the metric the limit comes from."""
    baseline: float | None = None
    """relative: the baseline's value; regression: the champion's."""
    factor: float | None = None
    slack: float = 0.0

    @property
    def ratio_form(self) -> bool:
        """A relative check without slack against a positive baseline reads as a ratio."""
        return (
            self.kind == "relative"
            and self.slack == 0.0
            and self.factor is not None
            and self.baseline is not None
            and self.baseline > 0
            and math.isfinite(self.baseline)
        )

    def _violation(self) -> str:
        if self.comparison == ">=":
            return ">=" if self.passed else "<"
        return "<=" if self.passed else ">"

    def reason(self) -> str:
        """One line with the value, the limit and where the limit comes from, e.g.
        ``tstr_trtr_ratio 0.820 < 0.900 (utility_tstr_auc 0.6100, utility_trtr_auc 0.7439)``."""
        op = self._violation()
        if self.kind == "gate":
            return f"{self.name} {'passed' if self.passed else 'failed'}"
        if self.kind == "relative":
            if self.value is None or self.baseline is None:
                missing = self.metric if self.value is None else self.baseline_metric
                return f"{self.name}: {missing} missing"
            if self.ratio_form:
                assert self.baseline is not None and self.factor is not None
                return (
                    f"{self.name} {self.value / self.baseline:.3f} {op} {self.factor:.3f} "
                    f"({self.metric} {_num(self.value)}, {self.baseline_metric} "
                    f"{_num(self.baseline)})"
                )
            sign = "-" if self.comparison == ">=" else "+"
            slack = f" {sign} {self.slack:g}" if self.slack else ""
            return (
                f"{self.name}: {self.metric} {_num(self.value)} {op} {_num(self.threshold)} "
                f"(= {self.factor:g} × {self.baseline_metric} {_num(self.baseline)}{slack})"
            )
        if self.kind == "regression":
            if self.threshold is None:
                return f"{self.name} {_num(self.value)} ({self.note})"
            return (
                f"{self.name} {_num(self.value)} {op} {_num(self.threshold)} "
                f"(regression: {self.note})"
            )
        bound = "floor" if self.comparison == ">=" else "ceiling"
        if self.value is None:
            return f"{self.name} missing (absolute {bound} {_num(self.threshold)})"
        return f"{self.name} {_num(self.value)} {op} {_num(self.threshold)} (absolute {bound})"

    def describe(self) -> str:
        return f"{self.reason()}: {'pass' if self.passed else 'FAIL'}"


@dataclass
class Blessing:
    blessed: bool
    checks: list[BlessingCheck] = field(default_factory=list)
    baseline_version: str | None = None

    @property
    def failures(self) -> list[BlessingCheck]:
        return [c for c in self.checks if not c.passed]

    def reasons(self) -> list[str]:
        """One line per failed check (:meth:`BlessingCheck.reason`); empty when blessed."""
        return [c.reason() for c in self.failures]

    def summary(self) -> str:
        if self.blessed:
            base = f"champion v{self.baseline_version}" if self.baseline_version else "thresholds"
            return f"blessed (against {base})"
        return "not blessed: " + "; ".join(self.reasons())

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "baseline_version": self.baseline_version,
            "summary": self.summary(),
            "reasons": self.reasons(),
            "checks": [asdict(c) for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        rows = [
            f"| {c.name} | {c.kind} | {'' if c.value is None else _num(c.value)} | "
            f"{c.comparison} {'' if c.threshold is None else _num(c.threshold)} | "
            f"{'pass' if c.passed else '**FAIL**'} | {c.reason()} |"
            for c in self.checks
        ]
        return (
            f"# Blessing: {'BLESSED' if self.blessed else 'NOT BLESSED'}\n\n{self.summary()}\n\n"
            "| check | kind | value | rule | result | why |\n|---|---|---:|---|---|---|\n"
            + "\n".join(rows)
            + "\n"
        )


def _compare(value: float | None, threshold: float, comparison: Comparison) -> bool:
    if value is None or math.isnan(value):
        return False
    return value >= threshold if comparison == ">=" else value <= threshold


def _relative_check(name: str, floor: RelativeFloor, metrics: dict[str, float]) -> BlessingCheck:
    value, base = metrics.get(floor.metric), metrics.get(floor.baseline)
    check = BlessingCheck(
        name,
        "relative",
        value,
        None,
        floor.comparison,
        False,
        metric=floor.metric,
        baseline_metric=floor.baseline,
        baseline=base,
        factor=floor.factor,
        slack=floor.slack,
    )
    if value is None or base is None:
        check.note = f"{floor.metric if value is None else floor.baseline} missing"
        return check
    check.threshold = floor.limit(base)
    check.passed = _compare(value, check.threshold, floor.comparison)
    sign = "-" if floor.comparison == ">=" else "+"
    check.note = f"{floor.factor:g} × {floor.baseline} ({_num(base)})" + (
        f" {sign} {floor.slack:g}" if floor.slack else ""
    )
    return check


def bless(
    metrics: dict[str, float],
    spec: BlessingSpec,
    synthetic_bias_passed: bool,
    data_bias_passed: bool,
    champion_metrics: dict[str, float] | None = None,
    champion_version: str | None = None,
) -> Blessing:
    """Judge a candidate. ``champion_metrics`` None means there is no champion yet."""
    checks: list[BlessingCheck] = []
    for name, minimum in spec.min_metrics.items():
        value = metrics.get(name)
        checks.append(
            BlessingCheck(name, "threshold", value, minimum, ">=", _compare(value, minimum, ">="))
        )
    for name, maximum in spec.max_metrics.items():
        value = metrics.get(name)
        checks.append(
            BlessingCheck(name, "threshold", value, maximum, "<=", _compare(value, maximum, "<="))
        )
    for name, rel in spec.relative.items():
        if rel is not None:
            checks.append(_relative_check(name, rel, metrics))
    if spec.require_synthetic_bias_pass:
        checks.append(
            BlessingCheck(
                "synthetic_bias_gate",
                "gate",
                float(synthetic_bias_passed),
                1.0,
                ">=",
                synthetic_bias_passed,
            )
        )
    if spec.require_data_bias_pass:
        checks.append(
            BlessingCheck(
                "data_bias_gate", "gate", float(data_bias_passed), 1.0, ">=", data_bias_passed
            )
        )
    if champion_metrics is not None:
        for name in spec.regression_metrics:
            base = champion_metrics.get(name)
            value = metrics.get(name)
            if base is None:
                checks.append(
                    BlessingCheck(
                        name,
                        "regression",
                        value,
                        None,
                        ">=",
                        True,
                        note=f"champion v{champion_version} has no {name}: not compared",
                    )
                )
                continue
            floor = base - spec.regression_tolerance
            checks.append(
                BlessingCheck(
                    name,
                    "regression",
                    value,
                    floor,
                    ">=",
                    _compare(value, floor, ">="),
                    note=f"champion v{champion_version} = {base:.4f}, tolerance "
                    f"{spec.regression_tolerance}",
                    baseline=base,
                )
            )
    return Blessing(
        blessed=all(c.passed for c in checks),
        checks=checks,
        baseline_version=champion_version if champion_metrics is not None else None,
    )
