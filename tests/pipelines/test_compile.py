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
    assert images["exec-train-synthesizer"] == image("train-cuda")
    others = {n: i for n, i in images.items() if n != "exec-train-synthesizer"}
    assert set(others.values()) == {image("component")}
    # the steps run inside an exit handler that closes the MLflow run
    steps = ir["components"]["comp-tabular-synth-steps"]["dag"]["tasks"]
    assert steps["finish-run"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    exit_tasks = ir["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert {"prepare-data", "data-bias-check"} <= set(exit_tasks)
    # gate 1: training only when the data bias decision is not "stop"
    gate1 = ir["components"]["comp-condition-2"]["dag"]["tasks"]
    assert {"train-synthesizer", "evaluate-synthesizer"} <= set(gate1)
    condition = exit_tasks["condition-2"]["triggerPolicy"]["condition"]
    assert "data-bias-check" in condition and "!= 'stop'" in condition
    # gate 2: registration only when the synthetic-data bias gate passed
    gate2 = ir["components"]["comp-condition-3"]["dag"]["tasks"]
    assert {"register-model", "bless-model"} <= set(gate2)
    assert "== 'passed'" in gate1["condition-3"]["triggerPolicy"]["condition"]
    # gate 3: only a blessed version is promoted, deployed and smoke-tested
    blessed = ir["components"]["comp-condition-4"]["dag"]["tasks"]
    assert {"promote-model", "deploy-model", "smoke-test-endpoint"} <= set(blessed)
    assert "bless-model-Output'] == 'blessed'" in gate2["condition-4"]["triggerPolicy"]["condition"]
    assert blessed["deploy-model"]["dependentTasks"] == ["promote-model"]
    # a failed smoke test rolls the champion back
    assert set(ir["components"]["comp-condition-5"]["dag"]["tasks"]) == {"rollback-champion"}
    assert "== 'failed'" in blessed["condition-5"]["triggerPolicy"]["condition"]
    # the image holds kfp and genops: nothing is pip-installed when a task starts
    for executor in executors.values():
        assert "pip install" not in " ".join(executor["container"]["command"])
