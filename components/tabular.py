"""KFP components of the tabular-synth pipeline (wiring only; logic in
genops.workloads.tabular.steps)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.shared import (  # noqa: F401  (re-exported: the tabular pipeline uses them)
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
from genops.version import image

# The image tag is the pipeline version (package version + commit): a compiled pipeline
# names exactly the code it runs. genops.version is stdlib-only, so this import is cheap.
BASE_IMAGE = image("component")
TRAIN_IMAGE = image("train-cuda")


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def prepare_data(
    config: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    holdout: Output[Dataset],
    profile: Output[HTML],
    validation_report: Output[HTML],
) -> NamedTuple("PrepareOutputs", [("dataset_hash", str), ("rows_train", int)]):  # type: ignore[valid-type]
    """Load, validate (Great Expectations), clean and split the data set."""
    from collections import namedtuple

    from genops.workloads.tabular import steps

    out = steps.PrepareOutputs(
        train=train.path,
        validation=validation.path,
        holdout=holdout.path,
        profile_html=profile.path,
        validation_html=validation_report.path,
    )
    result = steps.prepare(config.path, tracking_uri, run_id, out)
    train.metadata["rows"] = result["rows_train"]
    train.metadata["dataset_hash"] = result["dataset_hash"]
    outputs = namedtuple("PrepareOutputs", ["dataset_hash", "rows_train"])
    return outputs(result["dataset_hash"], result["rows_train"])


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def data_bias_check(
    config: Input[Artifact],
    train: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    verdict: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> str:
    """Pre-training bias metrics (SageMaker Clarify definitions); returns the decision."""
    from genops.workloads.tabular import steps

    out = steps.ReportOutputs(verdict.path, report.path, summary.path)
    decision = steps.data_bias_check(config.path, train.path, tracking_uri, run_id, out)
    verdict.metadata["decision"] = decision
    return decision


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train_synthesizer(
    config: Input[Artifact],
    train: Input[Dataset],
    params: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    model: Output[Model],
):
    """Fit the synthesizer (CUDA when present) and log it to MLflow as a pyfunc model."""
    from genops.workloads.tabular import steps

    meta = steps.train(config.path, train.path, tracking_uri, run_id, model.path, params.path)
    model.metadata["mlflow_model_uri"] = meta["model_uri"]
    model.metadata["family"] = meta["family"]
    model.metadata["train_seconds"] = round(meta["train_seconds"], 2)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate_synthesizer(
    config: Input[Artifact],
    model: Input[Model],
    train: Input[Dataset],
    holdout: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    bias_decision: str,
    synthetic: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
    bias_verdict: Output[Artifact],
    bias_report: Output[HTML],
    bias_summary: Output[Markdown],
) -> str:
    """Fidelity, utility, privacy and the synthetic-data bias gate; returns passed/failed."""
    from genops.workloads.tabular import steps

    out = steps.EvaluateOutputs(
        synthetic=synthetic.path,
        report_html=report.path,
        evaluation_json=evaluation.path,
        bias=steps.ReportOutputs(bias_verdict.path, bias_report.path, bias_summary.path),
    )
    values, passed = steps.evaluate(
        config.path,
        model.path,
        train.path,
        holdout.path,
        tracking_uri,
        run_id,
        bias_decision,
        out,
    )
    for name, value in values.items():
        metrics.log_metric(name, round(float(value), 6))
    bias_verdict.metadata["passed"] = passed
    return "passed" if passed else "failed"


# ------------------------------------------------ generation at scale (tabular-generate)
@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def plan_generation(
    model_uri: str,
    rows: int,
    shards: int,
    destination: str,
    seed: int,
    conditions: str,
    overwrite: bool,
    tracking_uri: str,
    synthesizer: Output[Model],
) -> list:
    """Check the model, the arguments and the destination; returns the shard plans (the
    ParallelFor items) and hands the synthesizer to the shards as an artifact."""
    from genops.workloads.tabular import release

    plans, info = release.plan_step(
        model_uri,
        rows,
        shards,
        destination,
        seed,
        conditions,
        overwrite,
        tracking_uri,
        synthesizer.path,
    )
    synthesizer.metadata.update(info)
    return plans


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def generate_shard(
    synthesizer: Input[Model], shard: dict, destination: str, conditions: str
) -> dict:
    """Sample one shard, check it (row count, schema) and publish it under its final name."""
    from genops.workloads.tabular import release

    return release.shard_step(synthesizer.path, shard, destination, conditions)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def check_generation(
    synthesizer: Input[Model],
    plans: list,
    results: list,
    destination: str,
    seed: int,
    tracking_uri: str,
    manifest: Output[Artifact],
) -> str:
    """Read every shard back from the destination, write _manifest.json, log the release."""
    from genops.workloads.tabular import release

    written = release.check_step(
        synthesizer.path,
        dict(synthesizer.metadata),
        plans,
        results,
        destination,
        seed,
        tracking_uri,
        manifest.path,
    )
    manifest.metadata["rows"] = written.rows
    manifest.metadata["shards"] = written.shards
    return f"{written.rows} rows in {written.shards} shards at {written.destination}"
