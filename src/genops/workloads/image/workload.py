"""The ``image-diffusion`` workload: class-conditional image generation (DDPM) with
representation gates.

Registered by the ``genops.workloads`` entry point in ``pyproject.toml``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genops.core.workload import ServingAdapter, SmokeResult, TrialObjective, Workload
from genops.workloads.image.config import PIPELINE_NAME, ImageRunConfig


class ImageWorkload(Workload):
    name = PIPELINE_NAME
    config_class = ImageRunConfig
    headline_metrics = (
        "synthetic_bias_passed",
        "cas",
        "cas_real_baseline",
        "domain_accuracy_conditional",
        "frechet_distance",
        "frechet_distance_baseline",
        "representation_tvd",
        "min_relative_share",
    )

    def model_card_facts(self, config: Any, run: Any) -> Any:
        from genops.workloads.image.card import card_facts

        return card_facts(config, run)

    def tuning_objective(
        self, config: Any, train_path: str, validation_path: str, budget: dict[str, Any]
    ) -> tuple[TrialObjective, Callable[[dict[str, Any]], Any]]:
        from genops.workloads.image.steps import tuning_objective

        return tuning_objective(config, train_path, validation_path, budget)

    def smoke_test(self, config: Any, endpoint: str) -> SmokeResult:
        from genops.workloads.image.serving import smoke_check

        return smoke_check(config, endpoint)

    def serving_adapter(self, python_model: Any, pyfunc: Any) -> ServingAdapter:
        from genops.workloads.image.serving import ImageAdapter

        return ImageAdapter(python_model)


WORKLOAD = ImageWorkload()
