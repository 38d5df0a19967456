"""What every workload's pipeline is built from: the MLflow run around it (start-run, and
an exit handler whose finish-run always closes the run), the tuning sub-pipeline, and the
release chain (register -> bless -> promote -> deploy -> smoke test -> rollback). The
components behind them are generic (components/shared.py); a workload's DAG adds only its
prepare, data gate, train and evaluate, and calls :func:`build_pipeline`.

Every piece takes the :class:`~pipelines.targets.Target` it is built for.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kfp import dsl
from kfp.dsl import PipelineTask

from components.shared import (
    bless_model,
    deploy_model,
    finish_run,
    promote_model,
    register_model,
    rollback_champion,
    smoke_test_endpoint,
    start_run,
    tune_setup,
    tune_summarize,
    tune_worker,
)
from pipelines.targets import Target


def tune_study(target: Target) -> Any:
    """The tuning sub-pipeline for ``target``: N parallel workers share one Optuna study and
    it returns the best params (JSON).

    One no-op worker and ``{}`` when tuning is disabled, so the pipeline's shape does not
    depend on the config. (KFP's local runner resolves a ParallelFor over an upstream task's
    single ``Output`` only, hence the study's coordinates travel as an artifact.) A worker
    whose trial process dies loses only that trial and still succeeds
    (genops.core.tuning.worker): a failed ParallelFor iteration would fail the whole DAG. On
    the cluster the three steps are retried (targets.RETRIED_COMPONENTS: safe by design)."""
    configure_task = target.configure

    @dsl.pipeline(name="tune-study")
    def study(
        config: dsl.Input[dsl.Artifact],
        train: dsl.Input[dsl.Dataset],
        validation: dsl.Input[dsl.Dataset],
        tracking_uri: str,
        run_id: str,
    ) -> dsl.Artifact:
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

    return study


def release_chain(
    target: Target,
    config: dsl.Input[dsl.Artifact],
    trained: PipelineTask,
    evaluated: PipelineTask,
    dataset_hash: str,
    tracking_uri: str,
    run_id: str,
    pipeline_version: str,
    git_commit: str,
) -> None:
    """Register the evaluated model, bless it, and when blessed promote, deploy and smoke
    test it (rolling back on failure). Call inside the pipeline's "gate passed" branch."""
    configure_task = target.configure
    registered = register_model(
        config=config,
        model=trained.outputs["model"],
        evaluation=evaluated.outputs["evaluation"],
        tracking_uri=tracking_uri,
        run_id=run_id,
        dataset_hash=dataset_hash,
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
                config=config, tracking_uri=tracking_uri, run_id=run_id, model_version=version
            )
        )
        deployed = configure_task(
            deploy_model(
                config=config, tracking_uri=tracking_uri, run_id=run_id, model_version=version
            ).after(promoted)
        )
        smoke = configure_task(
            smoke_test_endpoint(
                config=config, tracking_uri=tracking_uri, run_id=run_id, endpoint=deployed.output
            )
        )
        with dsl.If(smoke.output == "failed", name="smoke-test-failed"):
            configure_task(
                rollback_champion(config=config, tracking_uri=tracking_uri, run_id=run_id)
            )


def open_run_then(
    target: Target,
    steps: Callable[..., Any],
    config_uri: str,
    tracking_uri: str,
    pipeline_version: str,
    git_commit: str,
) -> Any:
    """Validate the config and open the MLflow parent run (start-run), then run ``steps``
    (a sub-pipeline) under it; returns the run id channel."""
    start = start_run(
        config_uri=config_uri,
        tracking_uri=tracking_uri,
        pipeline_version=pipeline_version,
        git_commit=git_commit,
    )
    start.set_caching_options(False)
    target.configure(start)
    steps(
        config=start.outputs["config"],
        tracking_uri=tracking_uri,
        pipeline_version=pipeline_version,
        git_commit=git_commit,
        run_id=start.outputs["Output"],
    )
    return start.outputs["Output"]


@contextmanager
def closing_mlflow_run(target: Target, tracking_uri: str, run_id: str) -> Iterator[None]:
    """The tasks added inside run in an exit handler whose finish-run always closes the
    MLflow parent run (FINISHED, or FAILED when a step raised)."""
    closer = target.configure(finish_run(tracking_uri=tracking_uri, run_id=run_id))
    closer.set_caching_options(False)
    with dsl.ExitHandler(closer, name="close-mlflow-run"):
        yield


def build_pipeline(
    target: Target,
    name: str,
    description: str,
    steps: Callable[..., Any],
) -> Callable[..., Any]:
    """A workload's whole pipeline: validate the config and open the MLflow run
    (start-run), then run ``steps`` (a ``@dsl.pipeline`` of the workload's DAG, taking
    ``config``, ``tracking_uri``, ``pipeline_version``, ``git_commit`` and ``run_id``) under
    it. The pipeline returns the MLflow parent run id."""

    @dsl.pipeline(name=name, description=description)
    def pipeline(
        config_uri: str,
        tracking_uri: str,
        pipeline_version: str = "dev",
        git_commit: str = "unknown",
    ) -> str:
        """Validate the config and open the MLflow run, then run the steps under it.

        Returns the MLflow parent run id.
        """
        return open_run_then(target, steps, config_uri, tracking_uri, pipeline_version, git_commit)

    return pipeline
