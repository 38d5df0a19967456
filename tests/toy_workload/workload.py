"""The toy workload's config and its Workload (registered by the test, not by pyproject)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from genops.core.blessing import BlessingSpec
from genops.core.config import Strict, lay_section_defaults
from genops.core.specs import DeploySpec
from genops.core.tuning.space import TuningSpec
from genops.core.workload import ServingAdapter, SmokeResult, TrialObjective, Workload

NAME = "toy-gaussian"
BLESSING_DEFAULTS: dict[str, Any] = {
    "min_metrics": {"std_ratio": 0.8},
    "max_metrics": {"mean_error": 0.2},
    "regression_metrics": [],
}


class ToyDataset(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    rows: int = Field(400, ge=10)
    mean: float = 3.0
    std: float = Field(2.0, gt=0)
    min_rows: int = Field(50, ge=1, description="The data check: fewer training rows fail.")
    seed: int = 0


class ToyModelSpec(Strict):
    shrink: float = Field(1.0, gt=0, description="Scales the fitted spread (1: none).")
    seed: int = 0


class ToyRunConfig(Strict):
    pipeline: Literal["toy-gaussian"] = NAME
    dataset: ToyDataset
    model: ToyModelSpec = Field(default_factory=lambda: ToyModelSpec())
    tuning: TuningSpec = Field(default_factory=lambda: TuningSpec())
    blessing: BlessingSpec = Field(
        default_factory=lambda: BlessingSpec.model_validate(BLESSING_DEFAULTS)
    )
    deploy: DeploySpec = Field(default_factory=lambda: DeploySpec())

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return lay_section_defaults(data, {"blessing": BLESSING_DEFAULTS})

    @property
    def pipeline_name(self) -> str:
        return NAME

    @property
    def model_name(self) -> str:
        return f"{self.dataset.name}-gaussian"

    @property
    def experiment_name(self) -> str:
        return f"{NAME}-{self.dataset.name}"


class ToyWorkload(Workload):
    name = NAME
    config_class = ToyRunConfig
    headline_metrics = ("mean_error", "std_ratio")

    def tuning_objective(
        self, config: Any, train_path: str, validation_path: str, budget: dict[str, Any]
    ) -> tuple[TrialObjective, Callable[[dict[str, Any]], Any]]:
        raise NotImplementedError("the toy workload is not tuned (tuning.enabled: false)")

    def smoke_test(self, config: Any, endpoint: str) -> SmokeResult:
        import httpx

        try:
            reply = httpx.post(f"{endpoint}/generate", json={"n": 5, "seed": 1}, timeout=30)
            values = reply.json()["values"]
        except Exception as exc:  # a failed smoke test, not a crashed step
            return SmokeResult(False, f"smoke test error: {type(exc).__name__}: {exc}")
        ok = reply.status_code == 200 and len(values) == 5
        return SmokeResult(ok, f"{len(values)} values from {endpoint}")

    def serving_adapter(self, python_model: Any, pyfunc: Any) -> ServingAdapter:
        from tests.toy_workload.model import ToyAdapter

        return ToyAdapter(python_model)


WORKLOAD = ToyWorkload()
