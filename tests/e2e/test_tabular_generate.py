"""The tabular-generate pipeline: a KFP ParallelFor over the shards, run with KFP's local
runner (`genops generate --kfp`), and compiled for the cluster (each shard a task with its
own resources, the plan and the check around them)."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from genops.workloads.tabular.generation import MANIFEST, GenerationError, plan_shards
from genops.workloads.tabular.models import TVAEParams, TVAESynthesizer
from pipelines.compile import compile_pipeline
from pipelines.tabular_generate import run_generate_local
from tests.conftest import small_frame

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = TVAEParams(
        epochs=2, batch_size=100, embedding_dim=8, compress_dims=(16,), decompress_dims=(16,)
    )
    synth = TVAESynthesizer(["group", "color", "label"], ["age", "income"], params)
    synth.fit(small_frame(300))
    path = tmp_path_factory.mktemp("model") / "synthesizer"
    synth.save(path)
    return path


def test_the_pipeline_writes_every_shard_then_the_manifest(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path / "home"))
    out = tmp_path / "release"
    print_before = builtins.print
    manifest = run_generate_local(
        str(model_dir),
        rows=1_500,
        shards=3,
        destination=str(out),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        seed=5,
        conditions={"group": "a"},
        pipeline_root=str(tmp_path / "kfp"),
    )
    assert manifest.rows == 1_500 and manifest.shards == 3
    # kfp.local's indented print, swapped by two shard threads at once, does not outlive it
    assert builtins.print is print_before
    assert [f["seed"] for f in manifest.files] == [p.seed for p in plan_shards(1_500, 3, 5)]
    frame = pd.concat([pd.read_parquet(out / f["name"]) for f in manifest.files])
    assert len(frame) == 1_500 and set(frame["group"]) == {"a"}
    assert json.loads((out / MANIFEST).read_text())["conditions"] == {"group": "a"}
    # a second run at the same destination is refused by the plan step, with the reason
    with pytest.raises(GenerationError, match="already holds 4 release file"):
        run_generate_local(
            str(model_dir),
            rows=1_500,
            shards=3,
            destination=str(out),
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            pipeline_root=str(tmp_path / "kfp"),
        )


def test_compiled_for_the_cluster_the_shards_are_a_parallel_for(tmp_path: Path) -> None:
    path = compile_pipeline("tabular-generate", tmp_path, target="cluster", registry="ecr.test")
    ir, platform = yaml.safe_load_all(path.read_text())
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert {"model_uri", "rows", "shards", "destination", "seed", "tracking_uri"} <= set(params)
    tasks = ir["root"]["dag"]["tasks"]
    loop = next(t for t in tasks.values() if "parameterIterator" in t)
    assert (
        loop["parameterIterator"]["items"]["inputParameter"]
        == "pipelinechannel--plan-generation-Output"
    )
    assert tasks["check-generation"]["dependentTasks"] == ["for-loop-1", "plan-generation"]
    shard = ir["deploymentSpec"]["executors"]["exec-generate-shard"]["container"]
    assert shard["image"].startswith("ecr.test/") and shard["resources"]["cpuLimit"] == 2.0
    # every step reads the tracking server and S3 settings from the cluster's ConfigMap
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {"exec-plan-generation", "exec-generate-shard", "exec-check-generation"} <= set(
        executors
    )
