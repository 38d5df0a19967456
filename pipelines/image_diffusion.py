"""The image-diffusion pipeline, tracked in MLflow:

prepare -> data representation gate -> tune -> train (class-conditional DDPM) -> evaluate
(CAS, Fréchet distance, generated-representation gate) -> register -> bless -> promote ->
deploy -> smoke test (-> rollback).

Everything after evaluate, the tuning study and the MLflow run bookkeeping are the same
components the tabular pipeline runs (components/shared.py, pipelines/shared.py).
"""

from kfp import dsl

from components.image import (
    evaluate_generator,
    prepare_images,
    representation_check,
    train_generator,
)
from pipelines.cluster import configure_task
from pipelines.shared import closing_mlflow_run, open_run_then, release_steps, tune_study

PIPELINE_NAME = "image-diffusion"


@dsl.pipeline(name=f"{PIPELINE_NAME}-steps")
def image_diffusion_steps(
    config: dsl.Input[dsl.Artifact],
    tracking_uri: str,
    pipeline_version: str,
    git_commit: str,
    run_id: str,
):
    """The steps, inside an exit handler that always closes the MLflow parent run."""
    with closing_mlflow_run(tracking_uri, run_id):
        prep = configure_task(
            prepare_images(config=config, tracking_uri=tracking_uri, run_id=run_id)
        )
        check = configure_task(
            representation_check(
                config=config, train=prep.outputs["train"], tracking_uri=tracking_uri, run_id=run_id
            )
        )
        # Gate 1: classes missing or too rare and policy block -> "stop": nothing is trained.
        with dsl.If(check.outputs["Output"] != "stop", name="data-representation-allows-training"):
            best = tune_study(
                config=config,
                train=prep.outputs["train"],
                validation=prep.outputs["validation"],
                tracking_uri=tracking_uri,
                run_id=run_id,
            )
            trained = configure_task(
                train_generator(
                    config=config,
                    train=prep.outputs["train"],
                    params=best.output,
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                ),
                "gpu",
            )
            evaluated = configure_task(
                evaluate_generator(
                    config=config,
                    model=trained.outputs["model"],
                    train=prep.outputs["train"],
                    holdout=prep.outputs["holdout"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                ),
                "gpu",
            )
            # Gate 2: a generator that collapses or drops a class is not registered.
            with dsl.If(evaluated.outputs["Output"] == "passed", name="representation-passed"):
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
        "Class-conditional image generation (DDPM, classifier-free guidance): prepare, "
        "representation gates, tune, train, evaluate, register, bless, promote, deploy."
    ),
)
def image_diffusion(
    config_uri: str,
    tracking_uri: str,
    pipeline_version: str = "dev",
    git_commit: str = "unknown",
) -> str:
    """Validate the config and open the MLflow run, then run the steps under it.

    Returns the MLflow parent run id.
    """
    return open_run_then(
        image_diffusion_steps, config_uri, tracking_uri, pipeline_version, git_commit
    )
