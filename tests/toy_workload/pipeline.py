"""The toy workload's pipeline: its four steps, then the core's release chain."""

from typing import Any

from kfp import dsl

from pipelines.builder import build_pipeline, closing_mlflow_run, release_chain
from pipelines.targets import LOCAL, Target
from tests.toy_workload.components import toy_data_check, toy_evaluate, toy_prepare, toy_train


def toy_pipeline(target: Target = LOCAL) -> Any:
    @dsl.pipeline(name="toy-gaussian-steps")
    def steps(
        config: dsl.Input[dsl.Artifact],
        tracking_uri: str,
        pipeline_version: str,
        git_commit: str,
        run_id: str,
    ):
        with closing_mlflow_run(target, tracking_uri, run_id):
            prep = toy_prepare(config=config, tracking_uri=tracking_uri, run_id=run_id)
            check = toy_data_check(
                config=config, train=prep.outputs["train"], tracking_uri=tracking_uri, run_id=run_id
            )
            with dsl.If(check.outputs["Output"] != "stop", name="data-allows-training"):
                trained = toy_train(
                    config=config,
                    train=prep.outputs["train"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                )
                evaluated = toy_evaluate(
                    config=config,
                    model=trained.outputs["model"],
                    holdout=prep.outputs["holdout"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                )
                with dsl.If(evaluated.outputs["Output"] == "passed", name="generated-passed"):
                    release_chain(
                        target,
                        config=config,
                        trained=trained,
                        evaluated=evaluated,
                        dataset_hash=prep.outputs["Output"],
                        tracking_uri=tracking_uri,
                        run_id=run_id,
                        pipeline_version=pipeline_version,
                        git_commit=git_commit,
                    )

    return build_pipeline(target, "toy-gaussian", "A toy 1-D Gaussian generator.", steps)
