"""The pipeline compiles to KFP IR; the IR names the image of the current version."""

from __future__ import annotations

from pathlib import Path

import yaml

from genops.version import image, pipeline_version
from pipelines.compile import compile_pipeline


def test_tabular_synth_compiles_with_versioned_images(tmp_path: Path) -> None:
    path = compile_pipeline("tabular-synth", tmp_path)
    version = pipeline_version()
    assert path.name == f"tabular-synth-{version}.yaml"
    ir = yaml.safe_load(path.read_text())
    assert ir["pipelineInfo"]["name"] == "tabular-synth"
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"config_uri", "tracking_uri", "pipeline_version", "git_commit"}
    assert params["pipeline_version"]["defaultValue"] == version
    executors = ir["deploymentSpec"]["executors"]
    images = {name: e["container"]["image"] for name, e in executors.items()}
    gpu_steps = {"exec-train-synthesizer", "exec-tune-worker"}
    assert {images[n] for n in gpu_steps} == {image("train-cuda")}
    assert {i for n, i in images.items() if n not in gpu_steps} == {image("component")}
    comps = ir["components"]

    def tasks(component: str) -> dict:
        return comps[component]["dag"]["tasks"]

    def condition(component: str, task: str) -> str:
        return tasks(component)[task]["triggerPolicy"]["condition"]

    # the steps run inside an exit handler that closes the MLflow run
    steps = tasks("comp-tabular-synth-steps")
    assert steps["finish-run"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert {"prepare-data", "data-bias-check", "condition-2"} <= set(tasks("comp-exit-handler-1"))
    # gate 1: tuning and training only when the data bias decision is not "stop"
    assert "data-bias-check-Output'] != 'stop'" in condition("comp-exit-handler-1", "condition-2")
    gate1 = tasks("comp-condition-2")
    assert {"tune-study", "train-synthesizer", "evaluate-synthesizer"} <= set(gate1)
    # tuning: a ParallelFor of workers over the setup's worker list, collected by summarize
    study = tasks("comp-tune-study")
    assert {"tune-setup", "for-loop-1", "tune-summarize"} == set(study)
    assert set(tasks("comp-for-loop-1")) == {"tune-worker"}
    assert "tune-setup" in str(study["for-loop-1"]["parameterIterator"])
    assert (
        gate1["train-synthesizer"]["inputs"]["artifacts"]["params"]["taskOutputArtifact"][
            "producerTask"
        ]
        == "tune-study"
    )
    # gate 2: registration only when the synthetic-data bias gate passed
    assert "evaluate-synthesizer-Output'] == 'passed'" in condition(
        "comp-condition-2", "condition-3"
    )
    assert {"register-model", "bless-model"} <= set(tasks("comp-condition-3"))
    # gate 3: only a blessed version is promoted, deployed and smoke-tested
    assert "bless-model-Output'] == 'blessed'" in condition("comp-condition-3", "condition-4")
    blessed = tasks("comp-condition-4")
    assert {"promote-model", "deploy-model", "smoke-test-endpoint"} <= set(blessed)
    assert blessed["deploy-model"]["dependentTasks"] == ["promote-model"]
    # a failed smoke test rolls the champion back
    assert set(tasks("comp-condition-5")) == {"rollback-champion"}
    assert "smoke-test-endpoint-Output'] == 'failed'" in condition(
        "comp-condition-4", "condition-5"
    )
    # the image holds kfp and genops: nothing is pip-installed when a task starts
    for executor in executors.values():
        assert "pip install" not in " ".join(executor["container"]["command"])


def test_image_diffusion_compiles_and_shares_the_release_components(tmp_path: Path) -> None:
    path = compile_pipeline("image-diffusion", tmp_path)
    ir = yaml.safe_load(path.read_text())
    assert ir["pipelineInfo"]["name"] == "image-diffusion"
    executors = ir["deploymentSpec"]["executors"]
    images = {name: e["container"]["image"] for name, e in executors.items()}
    gpu_steps = {"exec-train-generator", "exec-evaluate-generator", "exec-tune-worker"}
    assert {images[n] for n in gpu_steps} == {image("train-cuda")}
    assert {i for n, i in images.items() if n not in gpu_steps} == {image("component")}
    comps = ir["components"]

    def tasks(component: str) -> dict:
        return comps[component]["dag"]["tasks"]

    def condition(component: str, task: str) -> str:
        return tasks(component)[task]["triggerPolicy"]["condition"]

    assert {"prepare-images", "representation-check", "condition-2"} <= set(
        tasks("comp-exit-handler-1")
    )
    assert "representation-check-Output'] != 'stop'" in condition(
        "comp-exit-handler-1", "condition-2"
    )
    assert {"tune-study", "train-generator", "evaluate-generator"} <= set(tasks("comp-condition-2"))
    assert "evaluate-generator-Output'] == 'passed'" in condition("comp-condition-2", "condition-3")
    assert {"register-model", "bless-model"} <= set(tasks("comp-condition-3"))
    assert {"promote-model", "deploy-model", "smoke-test-endpoint"} <= set(
        tasks("comp-condition-4")
    )
    # the shared steps are the very components the tabular pipeline runs
    tabular = yaml.safe_load(compile_pipeline("tabular-synth", tmp_path).read_text())
    shared = [
        "exec-start-run", "exec-finish-run", "exec-tune-setup", "exec-tune-worker",
        "exec-tune-summarize", "exec-register-model", "exec-bless-model", "exec-promote-model",
        "exec-deploy-model", "exec-smoke-test-endpoint", "exec-rollback-champion",
    ]  # fmt: skip
    for name in shared:
        assert executors[name] == tabular["deploymentSpec"]["executors"][name], name
