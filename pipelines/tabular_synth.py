"""The tabular-synth pipeline, tracked in MLflow:

prepare -> data bias gate -> train -> evaluate (+ synthetic-data bias gate) -> register
-> bless -> promote -> deploy -> smoke test (-> rollback).

The same definition compiles to KFP IR YAML for the cluster and runs on one machine with
``kfp.local.SubprocessRunner``. Where it runs is configuration (tracking URI, image), never code.
"""

from typing import Any

from kfp import dsl

from components.tabular import (
    data_bias_check,
    evaluate_synthesizer,
    prepare_data,
    train_synthesizer,
)
from pipelines.builder import build_pipeline, closing_mlflow_run, release_chain, tune_study
from pipelines.targets import LOCAL, Target

PIPELINE_NAME = "tabular-synth"


def tabular_synth(target: Target = LOCAL) -> Any:
    """The pipeline built for ``target`` (local or cluster)."""
    configure_task = target.configure
    tune = tune_study(target)  # built first: a sub-pipeline cannot be traced inside another

    @dsl.pipeline(name=f"{PIPELINE_NAME}-steps")
    def tabular_synth_steps(
        config: dsl.Input[dsl.Artifact],
        tracking_uri: str,
        pipeline_version: str,
        git_commit: str,
        run_id: str,
    ):
        """The steps, inside an exit handler that always closes the MLflow parent run."""
        with closing_mlflow_run(target, tracking_uri, run_id):
            prep = configure_task(
                prepare_data(config=config, tracking_uri=tracking_uri, run_id=run_id)
            )
            bias = configure_task(
                data_bias_check(
                    config=config,
                    train=prep.outputs["train"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                )
            )
            # Gate 1: the data bias verdict decides (policy block -> "stop": nothing is trained).
            with dsl.If(bias.outputs["Output"] != "stop", name="data-bias-allows-training"):
                best = tune(
                    config=config,
                    train=prep.outputs["train"],
                    validation=prep.outputs["validation"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                )
                trained = configure_task(
                    train_synthesizer(
                        config=config,
                        train=prep.outputs["train"],
                        params=best.output,
                        tracking_uri=tracking_uri,
                        run_id=run_id,
                    ),
                    "gpu",
                )
                evaluated = evaluate_synthesizer(
                    config=config,
                    model=trained.outputs["model"],
                    train=prep.outputs["train"],
                    holdout=prep.outputs["holdout"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                    bias_decision=bias.outputs["Output"],
                )
                configure_task(evaluated)
                # Gate 2: a synthesizer that drops a group or amplifies bias is not registered.
                with dsl.If(evaluated.outputs["Output"] == "passed", name="synthetic-bias-passed"):
                    release_chain(
                        target,
                        config=config,
                        trained=trained,
                        evaluated=evaluated,
                        dataset_hash=prep.outputs["dataset_hash"],
                        tracking_uri=tracking_uri,
                        run_id=run_id,
                        pipeline_version=pipeline_version,
                        git_commit=git_commit,
                    )

    return build_pipeline(
        target,
        PIPELINE_NAME,
        (
            "Tabular synthetic-data generator: prepare, bias gate, train, evaluate, register, "
            "bless, promote, deploy."
        ),
        tabular_synth_steps,
    )
