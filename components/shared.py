"""KFP components every workload's pipeline shares (wiring only; logic in genops.core.steps).

They act on the resolved run config whatever its pipeline: opening and closing the MLflow
parent run, the Optuna tuning study and its parallel workers, registration, blessing,
promotion, deployment, the smoke test and rollback. Only prepare, the data check, train and
evaluate are pipeline-specific (components/tabular.py, components/image.py).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from genops.version import image

BASE_IMAGE = image("component")
TRAIN_IMAGE = image("train-cuda")


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def start_run(
    config_uri: str,
    tracking_uri: str,
    pipeline_version: str,
    git_commit: str,
    config: Output[Artifact],
) -> str:
    """Validate the run config and open the MLflow parent run."""
    from genops.core import steps

    return steps.start(config_uri, tracking_uri, pipeline_version, git_commit, config.path)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def tune_setup(
    config: Input[Artifact], tracking_uri: str, run_id: str, study: Output[Artifact]
) -> list:
    """Create the shared Optuna study and the MLflow tuning run; returns the worker indices
    (the ParallelFor items) and writes the study's coordinates to ``study``."""
    import json
    from dataclasses import asdict

    from genops.core import steps

    setup = steps.tune_setup(config.path, tracking_uri, run_id)
    with open(study.path, "w") as handle:
        json.dump(asdict(setup), handle)
    study.metadata["study_name"] = setup.study_name
    return setup.workers


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def tune_worker(
    config: Input[Artifact],
    train: Input[Dataset],
    validation: Input[Dataset],
    study: Input[Artifact],
    tracking_uri: str,
    worker: int,
) -> str:
    """One of N parallel workers: runs its share of trials of the shared study."""
    import json

    from genops.core import steps

    with open(study.path) as handle:
        setup = json.load(handle)
    counts = steps.tune_worker(
        config.path,
        train.path,
        validation.path,
        tracking_uri,
        setup["tuning_run_id"],
        setup["storage_url"],
        setup["study_name"],
        int(worker),
    )
    return json.dumps(counts)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def tune_summarize(
    config: Input[Artifact],
    study: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    worker_results: list,
    best_params: Output[Artifact],
):
    """Best params of the study ({} when tuning is off) and its plots in MLflow."""
    import json

    from genops.core import steps

    with open(study.path) as handle:
        setup = json.load(handle)
    params = steps.tune_summarize(
        config.path,
        tracking_uri,
        run_id,
        setup["tuning_run_id"],
        setup["storage_url"],
        setup["study_name"],
        best_params.path,
    )
    best_params.metadata["workers"] = len(worker_results)
    best_params.metadata["tuned"] = bool(params)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_model(
    config: Input[Artifact],
    model: Input[Model],
    evaluation: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    dataset_hash: str,
    pipeline_version: str,
    git_commit: str,
) -> str:
    """Register the model version in the MLflow Model Registry (alias 'challenger')."""
    from genops.core import steps

    return steps.register(
        config.path, model.path, tracking_uri, run_id, dataset_hash, pipeline_version, git_commit
    )


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def bless_model(
    config: Input[Artifact],
    evaluation: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    model_version: str,
    blessing: Output[Artifact],
    summary: Output[Markdown],
) -> str:
    """Thresholds + no regression against the champion; returns blessed / not_blessed."""
    from genops.core import steps

    blessed = steps.bless(
        config.path,
        evaluation.path,
        tracking_uri,
        run_id,
        model_version,
        blessing.path,
        summary.path,
    )
    blessing.metadata["blessed"] = blessed
    return "blessed" if blessed else "not_blessed"


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def promote_model(
    config: Input[Artifact], tracking_uri: str, run_id: str, model_version: str
) -> str:
    """Move the champion alias to the blessed version; returns the replaced version."""
    from genops.core import steps

    return steps.promote(config.path, tracking_uri, run_id, model_version)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def deploy_model(
    config: Input[Artifact], tracking_uri: str, run_id: str, model_version: str
) -> str:
    """Deploy the champion to the configured target (none, local, kserve); returns the URL."""
    from genops.core import steps

    return steps.deploy(config.path, tracking_uri, run_id, model_version)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def smoke_test_endpoint(
    config: Input[Artifact], tracking_uri: str, run_id: str, endpoint: str
) -> str:
    """Call the deployed endpoint and check the response schema; returns passed / failed."""
    from genops.core import steps

    return "passed" if steps.smoke_test(config.path, tracking_uri, run_id, endpoint) else "failed"


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def rollback_champion(config: Input[Artifact], tracking_uri: str, run_id: str) -> str:
    """Move the champion alias back to the previous champion."""
    from genops.core import steps

    return steps.rollback(config.path, tracking_uri, run_id)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def finish_run(tracking_uri: str, run_id: str) -> str:
    """Exit handler: close the MLflow parent run as FINISHED or FAILED."""
    from genops.core import steps

    return steps.finish(tracking_uri, run_id)
