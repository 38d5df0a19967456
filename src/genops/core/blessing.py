"""Blessing: may this candidate replace the champion?

Two kinds of check, as TFX's Evaluator does it:
- absolute thresholds on the evaluation metrics and the bias verdicts (from the YAML);
- no regression beyond a tolerance against the current ``champion`` version's logged
  metrics. The first model ever (no champion) is judged on thresholds alone.

The result is a verdict a person can read, not an exception.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Comparison = Literal[">=", "<="]


class BlessingSpec(BaseModel):
    """Thresholds and the no-regression rule; each workload's config supplies its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_metrics: dict[str, float] = Field(
        default_factory=dict, description="metric -> smallest acceptable value"
    )
    max_metrics: dict[str, float] = Field(
        default_factory=dict, description="metric -> largest acceptable value"
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


@dataclass
class BlessingCheck:
    name: str
    kind: Literal["threshold", "gate", "regression"]
    value: float | None
    threshold: float | None
    comparison: str
    passed: bool
    note: str = ""

    def describe(self) -> str:
        value = "missing" if self.value is None else f"{self.value:.4f}"
        text = f"{self.name} ({self.kind}) = {value} {self.comparison} {self.threshold}"
        return f"{text}: {'pass' if self.passed else 'FAIL'}" + (
            f" [{self.note}]" if self.note else ""
        )


@dataclass
class Blessing:
    blessed: bool
    checks: list[BlessingCheck] = field(default_factory=list)
    baseline_version: str | None = None

    @property
    def failures(self) -> list[BlessingCheck]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.blessed:
            base = f"champion v{self.baseline_version}" if self.baseline_version else "thresholds"
            return f"blessed (against {base})"
        return "not blessed: " + "; ".join(c.describe() for c in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "baseline_version": self.baseline_version,
            "summary": self.summary(),
            "checks": [asdict(c) for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        rows = [
            f"| {c.name} | {c.kind} | {'' if c.value is None else f'{c.value:.4f}'} | "
            f"{c.comparison} {'' if c.threshold is None else f'{c.threshold:.4f}'} | "
            f"{'pass' if c.passed else '**FAIL**'} | {c.note} |"
            for c in self.checks
        ]
        return (
            f"# Blessing: {'BLESSED' if self.blessed else 'NOT BLESSED'}\n\n{self.summary()}\n\n"
            "| check | kind | value | rule | result | note |\n|---|---|---:|---|---|---|\n"
            + "\n".join(rows)
            + "\n"
        )


def _compare(value: float | None, threshold: float, comparison: Comparison) -> bool:
    if value is None:
        return False
    return value >= threshold if comparison == ">=" else value <= threshold


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
                )
            )
    return Blessing(
        blessed=all(c.passed for c in checks),
        checks=checks,
        baseline_version=champion_version if champion_metrics is not None else None,
    )
