"""The image-diffusion pipeline, tracked in MLflow:

prepare -> data representation gate -> tune -> train (class-conditional DDPM) -> evaluate
(CAS, Fréchet distance, generated-representation gate) -> register -> bless -> promote ->
deploy -> smoke test (-> rollback).

Everything after evaluate, the tuning study and the MLflow run bookkeeping are the same
components the tabular pipeline runs (components/shared.py, pipelines/builder.py).
"""

from typing import Any

from kfp import dsl

from components.image import (
    evaluate_generator,
    prepare_images,
    representation_check,
    train_generator,
)
from pipelines.builder import build_pipeline, closing_mlflow_run, release_chain, tune_study
from pipelines.targets import LOCAL, Target

PIPELINE_NAME = "image-diffusion"


def image_diffusion(target: Target = LOCAL) -> Any:
    """The pipeline built for ``target`` (local or cluster)."""
    configure_task = target.configure
    tune = tune_study(target)  # built first: a sub-pipeline cannot be traced inside another

    @dsl.pipeline(name=f"{PIPELINE_NAME}-steps")
    def image_diffusion_steps(
        config: dsl.Input[dsl.Artifact],
        tracking_uri: str,
        pipeline_version: str,
        git_commit: str,
        run_id: str,
    ):
        """The steps, inside an exit handler that always closes the MLflow parent run."""
        with closing_mlflow_run(target, tracking_uri, run_id):
            prep = configure_task(
                prepare_images(config=config, tracking_uri=tracking_uri, run_id=run_id)
            )
            check = configure_task(
                representation_check(
                    config=config,
                    train=prep.outputs["train"],
                    tracking_uri=tracking_uri,
                    run_id=run_id,
                )
            )
            # Gate 1: classes missing or too rare and policy block -> "stop": nothing is trained.
            with dsl.If(
                check.outputs["Output"] != "stop", name="data-representation-allows-training"
            ):
                best = tune(
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
            "Class-conditional image generation (DDPM, classifier-free guidance): prepare, "
            "representation gates, tune, train, evaluate, register, bless, promote, deploy."
        ),
        image_diffusion_steps,
    )
