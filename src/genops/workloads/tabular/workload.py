"""The ``tabular-synth`` workload: synthetic tables (TVAE, CTGAN, diffusion) with bias gates.

Registered by the ``genops.workloads`` entry point in ``pyproject.toml``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genops.core.workload import (
    PreflightProblem,
    Resolution,
    ServingAdapter,
    SmokeResult,
    TrialObjective,
    Workload,
)
from genops.workloads.tabular.config import PIPELINE_NAME, RunConfig


class TabularWorkload(Workload):
    name = PIPELINE_NAME
    config_class = RunConfig
    default = True  # a config without a `pipeline` key is a tabular one
    headline_metrics = (
        "fidelity_column_shapes",
        "fidelity_pair_trends",
        "fidelity_quality",
        "utility_tstr_auc",
        "utility_trtr_auc",
        "synthetic_bias_passed",
        "privacy_dcr_ratio",
        "privacy_exact_copy_share",
    )

    def preflight(self, config: Any) -> list[PreflightProblem]:
        from genops.workloads.tabular.data.sources import check_sources

        return check_sources(config.dataset)

    def resolve_config(self, config: Any) -> Resolution:
        """Infer the columns the spec does not list (or, under ``columns_mode: listed``,
        name the ones it leaves unused)."""
        from genops.workloads.tabular.data.resolve import resolution_summary, resolve_spec

        spec = resolve_spec(config.dataset)
        resolved = config.model_validate(
            {**config.model_dump(mode="json"), "dataset": spec.model_dump(mode="json")}
        )
        return Resolution(resolved, resolution_summary(spec))

    def model_card_facts(self, config: Any, run: Any) -> Any:
        from genops.workloads.tabular.card import card_facts

        return card_facts(config, run)

    def tuning_objective(
        self, config: Any, train_path: str, validation_path: str, budget: dict[str, Any]
    ) -> tuple[TrialObjective, Callable[[dict[str, Any]], Any]]:
        from genops.workloads.tabular.data import read_parquet
        from genops.workloads.tabular.steps import build_synthesizer
        from genops.workloads.tabular.tuning import ObjectiveData, TabularObjective

        spec = config.dataset
        data = ObjectiveData(
            train=read_parquet(train_path, spec),
            validation=read_parquet(validation_path, spec),
            continuous=spec.continuous_columns,
            categorical=spec.categorical_columns,
            target=spec.target,
            positive_label=spec.positive_label,
        )

        def build(params: dict[str, Any]) -> Any:
            return build_synthesizer(config, {**budget, **params})

        return TabularObjective(data, config.tuning), build

    def smoke_test(self, config: Any, endpoint: str) -> SmokeResult:
        from genops.workloads.tabular.serving import smoke_test

        # local or KServe: the platform's runtime runs the same server (genops serve)
        spec = config.dataset
        categories = {
            name: col.allowed for name, col in spec.columns.items() if col.allowed is not None
        }
        return smoke_test(endpoint, list(spec.columns), categories, rows=config.deploy.smoke_rows)

    def serving_adapter(self, python_model: Any, pyfunc: Any) -> ServingAdapter:
        from genops.workloads.tabular.serving import TabularAdapter

        schema = pyfunc.metadata.get_output_schema()
        columns = list(schema.input_names()) if schema is not None else None
        return TabularAdapter(python_model, columns)


WORKLOAD = TabularWorkload()
