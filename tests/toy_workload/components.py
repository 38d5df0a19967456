"""The toy workload's KFP components: thin wrappers over tests.toy_workload.steps."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from genops.version import image

BASE_IMAGE = image("component")


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def toy_prepare(
    config: Input[Artifact],
    tracking_uri: str,
    run_id: str,
    train: Output[Dataset],
    holdout: Output[Dataset],
) -> str:
    from tests.toy_workload import steps

    return steps.prepare(
        config.path, tracking_uri, run_id, train.path + ".npy", holdout.path + ".npy"
    )


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def toy_data_check(
    config: Input[Artifact],
    train: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    verdict: Output[Artifact],
    report: Output[Markdown],
) -> str:
    from genops.core.steps import ReportOutputs
    from tests.toy_workload import steps

    out = ReportOutputs(verdict.path, report.path + ".html", report.path)
    return steps.data_check(config.path, train.path + ".npy", tracking_uri, run_id, out)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def toy_train(
    config: Input[Artifact],
    train: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    model: Output[Model],
) -> None:
    from tests.toy_workload import steps

    steps.train(config.path, train.path + ".npy", tracking_uri, run_id, model.path)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def toy_evaluate(
    config: Input[Artifact],
    model: Input[Model],
    holdout: Input[Dataset],
    tracking_uri: str,
    run_id: str,
    evaluation: Output[Artifact],
    verdict: Output[Artifact],
    report: Output[Markdown],
) -> str:
    from genops.core.steps import ReportOutputs
    from tests.toy_workload import steps

    out = ReportOutputs(verdict.path, report.path + ".html", report.path)
    passed = steps.evaluate(
        config.path, model.path, holdout.path + ".npy", tracking_uri, run_id, evaluation.path, out
    )
    return "passed" if passed else "failed"
