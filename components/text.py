"""KFP components of the text-lm pipeline (wiring only; logic in
genops.workloads.text.steps).

The rest of the pipeline (start, tuning, register, bless, promote, deploy, smoke test,
rollback, finish) is the components every workload shares (components/shared.py).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from genops.version import image

BASE_IMAGE = image("component")
TRAIN_IMAGE = image("train-cuda")


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def prepare_corpus(
    config: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
) -> NamedTuple("PrepareOutputs", [("dataset_hash", str), ("documents_train", int)]):  # type: ignore[valid-type]
    """Read the corpus (WikiText, .txt folder, JSON lines, CSV/Parquet; local or s3://) and
    split it; errors name the file and line."""
    from collections import namedtuple

    from genops.workloads.text import steps

    paths = {"train": train.path, "validation": validation.path, "test": test.path}
    result = steps.prepare(config.path, tracking_uri, run_id, paths)
    train.metadata["documents"] = int(result["documents_train"])
    outputs = namedtuple("PrepareOutputs", ["dataset_hash", "documents_train"])
    return outputs(result["dataset_hash"], int(result["documents_train"]))


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def corpus_check(
    config: Input[Artifact],
    train: Input[Dataset],
    validation: Input[Dataset],
    test: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    verdict: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> str:
    """Duplicates, personal data, split overlap and gender representation; returns the
    decision: stop, continue, or the mitigations (redact, augment) train applies."""
    from genops.core.steps import ReportOutputs
    from genops.workloads.text import steps

    out = ReportOutputs(verdict.path, report.path, summary.path)
    paths = {"train": train.path, "validation": validation.path, "test": test.path}
    decision = steps.data_check(config.path, paths, tracking_uri, run_id, out)
    verdict.metadata["decision"] = decision
    return decision


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train_language_model(
    config: Input[Artifact],
    train: Input[Dataset],
    validation: Input[Dataset],
    params: Input[Artifact],
    decision: str,
    tracking_uri: str,
    run_id: str,
    model: Output[Model],
):
    """Train the tokenizer and the language model (or fine-tune a checkpoint, LoRA on
    request; bf16 on CUDA) and log it with its tokenizer as a pyfunc model."""
    from genops.workloads.text import steps

    meta = steps.train(
        config.path,
        train.path,
        validation.path,
        decision,
        tracking_uri,
        run_id,
        model.path,
        params.path,
    )
    model.metadata["mlflow_model_uri"] = meta["model_uri"]
    model.metadata["train_seconds"] = round(meta["train_seconds"], 2)


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate_language_model(
    config: Input[Artifact],
    model: Input[Model],
    train: Input[Dataset],
    test: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
    bias_verdict: Output[Artifact],
    bias_report: Output[HTML],
    bias_summary: Output[Markdown],
) -> str:
    """Word-level perplexity (fp32, int8), diversity, memorisation and the generated-text
    gender gate; returns passed/failed."""
    from genops.core.steps import ReportOutputs
    from genops.workloads.text import steps

    out = ReportOutputs(bias_verdict.path, bias_report.path, bias_summary.path)
    values, passed = steps.evaluate(
        config.path, model.path, train.path, test.path, tracking_uri, run_id, evaluation.path, out
    )
    for name, value in values.items():
        metrics.log_metric(name, round(float(value), 6))
    bias_verdict.metadata["passed"] = passed
    return "passed" if passed else "failed"
