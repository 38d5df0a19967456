"""KFP components of the image-diffusion pipeline (wiring only; logic in
genops.workloads.image.steps).

The rest of the pipeline (start, tuning, register, bless, promote, deploy, smoke test,
rollback, finish) is the components both pipelines share: components/shared.py.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from genops.version import image

BASE_IMAGE = image("component")
TRAIN_IMAGE = image("train-cuda")


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def prepare_images(
    config: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    holdout: Output[Dataset],
    profile: Output[HTML],
) -> NamedTuple("PrepareOutputs", [("dataset_hash", str), ("rows_train", int)]):  # type: ignore[valid-type]
    """Read (digits, PNG folders or .npz; local or s3://), validate, scale and split."""
    from collections import namedtuple

    from genops.workloads.image import steps

    out = steps.ImagePrepareOutputs(train.path, validation.path, holdout.path, profile.path)
    result = steps.prepare(config.path, tracking_uri, run_id, out)
    train.metadata["rows"] = result["rows_train"]
    train.metadata["dataset_hash"] = result["dataset_hash"]
    outputs = namedtuple("PrepareOutputs", ["dataset_hash", "rows_train"])
    return outputs(result["dataset_hash"], result["rows_train"])


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def representation_check(
    config: Input[Artifact],
    train: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    verdict: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> str:
    """Images per class and class balance; returns the decision (continue or stop)."""
    from genops.core.steps import ReportOutputs
    from genops.workloads.image import steps

    out = ReportOutputs(verdict.path, report.path, summary.path)
    decision = steps.data_representation_check(config.path, train.path, tracking_uri, run_id, out)
    verdict.metadata["decision"] = decision
    return decision


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train_generator(
    config: Input[Artifact],
    train: Input[Dataset],
    params: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    model: Output[Model],
):
    """Fit the class-conditional DDPM (CUDA, bf16 and torch.compile when present) and log it
    to MLflow as a pyfunc model."""
    from genops.workloads.image import steps

    meta = steps.train(config.path, train.path, tracking_uri, run_id, model.path, params.path)
    model.metadata["mlflow_model_uri"] = meta["model_uri"]
    model.metadata["family"] = meta["family"]
    model.metadata["device"] = meta["device"]
    model.metadata["train_seconds"] = round(meta["train_seconds"], 2)


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate_generator(
    config: Input[Artifact],
    model: Input[Model],
    train: Input[Dataset],
    holdout: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
    bias_verdict: Output[Artifact],
    bias_report: Output[HTML],
    bias_summary: Output[Markdown],
) -> str:
    """CAS, Fréchet distances and the generated-representation gate; returns passed/failed."""
    from genops.core.steps import ReportOutputs
    from genops.workloads.image import steps

    out = steps.ImageEvaluateOutputs(
        report_html=report.path,
        evaluation_json=evaluation.path,
        bias=ReportOutputs(bias_verdict.path, bias_report.path, bias_summary.path),
    )
    values, passed = steps.evaluate(
        config.path, model.path, train.path, holdout.path, tracking_uri, run_id, out
    )
    for name, value in values.items():
        metrics.log_metric(name, round(float(value), 6))
    bias_verdict.metadata["passed"] = passed
    return "passed" if passed else "failed"
