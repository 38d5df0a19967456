"""The tabular-synth pipeline, tracked in MLflow:

prepare -> data bias gate -> train -> evaluate (+ synthetic-data bias gate) -> register
-> bless -> promote -> deploy -> smoke test (-> rollback).

The same definition compiles to KFP IR YAML for the cluster and runs on one machine with
``kfp.local.SubprocessRunner``. Where it runs is configuration (tracking URI, image), never code.
"""

from kfp import dsl

from components.tabular import (
    bless_model,
    data_bias_check,
    deploy_model,
    evaluate_synthesizer,
    finish_run,
    prepare_data,
    promote_model,
    register_model,
    rollback_champion,
    smoke_test_endpoint,
    start_run,
    train_synthesizer,
    tune_setup,
    tune_summarize,
    tune_worker,
)
from pipelines.cluster import configure_task

PIPELINE_NAME = "tabular-synth"


@dsl.pipeline(name="tune-study")
def tune_study(
    config: dsl.Input[dsl.Artifact],
    train: dsl.Input[dsl.Dataset],
    validation: dsl.Input[dsl.Dataset],
    tracking_uri: str,
    run_id: str,
) -> dsl.Artifact:
    """N parallel workers share one Optuna study; returns the best params (JSON).

    One no-op worker and ``{}`` when tuning is disabled, so the pipeline's shape does not
    depend on the config. (KFP's local runner resolves a ParallelFor over an upstream task's
    single ``Output`` only, hence the study's coordinates travel as an artifact.)"""
    setup = configure_task(tune_setup(config=config, tracking_uri=tracking_uri, run_id=run_id))
    with dsl.ParallelFor(setup.outputs["Output"], name="tune-workers") as worker:
        trials = configure_task(
            tune_worker(
                config=config,
                train=train,
                validation=validation,
                study=setup.outputs["study"],
                tracking_uri=tracking_uri,
                worker=worker,
            ),
            "gpu",
        )
    best = configure_task(
        tune_summarize(
            config=config,
            study=setup.outputs["study"],
            tracking_uri=tracking_uri,
            run_id=run_id,
            worker_results=dsl.Collected(trials.output),
        )
    )
    return best.outputs["best_params"]


@dsl.pipeline(name=f"{PIPELINE_NAME}-steps")
def tabular_synth_steps(
    config: dsl.Input[dsl.Artifact],
    tracking_uri: str,
    pipeline_version: str,
    git_commit: str,
    run_id: str,
):
    """The steps, inside an exit handler that always closes the MLflow parent run."""
    closer = configure_task(finish_run(tracking_uri=tracking_uri, run_id=run_id))
    closer.set_caching_options(False)
    with dsl.ExitHandler(closer, name="close-mlflow-run"):
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
                registered = register_model(
                    config=config,
                    model=trained.outputs["model"],
                    evaluation=evaluated.outputs["evaluation"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                    dataset_hash=prep.outputs["dataset_hash"],
                    pipeline_version=pipeline_version,
                    git_commit=git_commit,
                )
                configure_task(registered)
                version = registered.outputs["Output"]
                blessing = configure_task(
                    bless_model(
                        config=config,
                        evaluation=evaluated.outputs["evaluation"],
                        tracking_uri=tracking_uri,
                        run_id=run_id,
                        model_version=version,
                    )
                )
                # Gate 3: blessed -> champion and deployed; else the version stays challenger.
                with dsl.If(blessing.outputs["Output"] == "blessed", name="blessed"):
                    promoted = configure_task(
                        promote_model(
                            config=config,
                            tracking_uri=tracking_uri,
                            run_id=run_id,
                            model_version=version,
                        )
                    )
                    deployed = configure_task(
                        deploy_model(
                            config=config,
                            tracking_uri=tracking_uri,
                            run_id=run_id,
                            model_version=version,
                        ).after(promoted)
                    )
                    smoke = configure_task(
                        smoke_test_endpoint(
                            config=config,
                            tracking_uri=tracking_uri,
                            run_id=run_id,
                            endpoint=deployed.output,
                        )
                    )
                    with dsl.If(smoke.output == "failed", name="smoke-test-failed"):
                        configure_task(
                            rollback_champion(
                                config=config, tracking_uri=tracking_uri, run_id=run_id
                            )
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
    start = start_run(
        config_uri=config_uri,
        tracking_uri=tracking_uri,
        pipeline_version=pipeline_version,
        git_commit=git_commit,
    )
    start.set_caching_options(False)
    configure_task(start)
    tabular_synth_steps(
        config=start.outputs["config"],
        tracking_uri=tracking_uri,
        pipeline_version=pipeline_version,
        git_commit=git_commit,
        run_id=start.outputs["Output"],
    )
    return start.outputs["Output"]
