"""The tabular-synth pipeline, tracked in MLflow:

prepare -> data bias gate -> train -> evaluate (+ synthetic-data bias gate) -> register
-> bless -> promote -> deploy -> smoke test (-> rollback).

The same definition compiles to KFP IR YAML for the cluster and runs on one machine with
``kfp.local.SubprocessRunner``. Where it runs is configuration (tracking URI, image), never code.
"""

from kfp import dsl

from components.tabular import (
    data_bias_check,
    evaluate_synthesizer,
    prepare_data,
    train_synthesizer,
)
from pipelines.cluster import configure_task
from pipelines.shared import closing_mlflow_run, open_run_then, release_steps, tune_study

PIPELINE_NAME = "tabular-synth"


@dsl.pipeline(name=f"{PIPELINE_NAME}-steps")
def tabular_synth_steps(
    config: dsl.Input[dsl.Artifact],
    tracking_uri: str,
    pipeline_version: str,
    git_commit: str,
    run_id: str,
):
    """The steps, inside an exit handler that always closes the MLflow parent run."""
    with closing_mlflow_run(tracking_uri, run_id):
        prep = configure_task(prepare_data(config=config, tracking_uri=tracking_uri, run_id=run_id))
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
            best = tune_study(
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
                release_steps(
                    config=config,
                    trained=trained,
                    evaluated=evaluated,
                    dataset_hash=prep.outputs["dataset_hash"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                    pipeline_version=pipeline_version,
                    git_commit=git_commit,
                )


@dsl.pipeline(
    name=PIPELINE_NAME,
    description=(
        "Tabular synthetic-data generator: prepare, bias gate, train, evaluate, register, "
        "bless, promote, deploy."
    ),
)
def tabular_synth(
    config_uri: str,
    tracking_uri: str,
    pipeline_version: str = "dev",
    git_commit: str = "unknown",
) -> str:
    """Validate the config and open the MLflow run, then run the steps under it.

    Returns the MLflow parent run id.
    """
    return open_run_then(
        tabular_synth_steps, config_uri, tracking_uri, pipeline_version, git_commit
    )
