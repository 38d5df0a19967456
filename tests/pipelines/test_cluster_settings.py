"""Cluster settings in the compiled IR: GPU, toleration, node selector, ConfigMap/Secret,
resources and retries, only where they belong; and none of it when compiling locally."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from genops.version import pipeline_version
from pipelines import targets as cluster
from pipelines.compile import compile_pipeline, main

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
TRAIN = "exec-train-synthesizer"
# The GPU steps (role "gpu" in pipelines/tabular_synth.py); tune-worker once tuning is in.
GPU_STEPS = {TRAIN, "exec-tune-worker"}
# The steps that open the Optuna study, and only they, get the database URL.
DB_STEPS = {f"exec-{name}" for name in cluster.SECRET_COMPONENTS}


def _load(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else None)


@pytest.fixture(scope="module")
def cluster_ir(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    out = tmp_path_factory.mktemp("cluster")
    ir, platform = _load(
        compile_pipeline("tabular-synth", out, target="cluster", registry=REGISTRY)
    )
    assert platform is not None, "a cluster IR has a platform spec"
    return ir, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.fixture(scope="module")
def local_ir(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Any]:
    out = tmp_path_factory.mktemp("local")
    return _load(compile_pipeline("tabular-synth", out, target="local"))


@pytest.fixture(scope="module")
def gpu_tasks(cluster_ir: Any) -> set[str]:
    executors = set(cluster_ir[0]["deploymentSpec"]["executors"])
    assert TRAIN in executors
    return GPU_STEPS & executors


def _all_tasks(ir: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of every DAG (root and sub-DAGs), by task name."""
    tasks: dict[str, dict[str, Any]] = {}
    dags = [ir["root"]["dag"]] + [c["dag"] for c in ir["components"].values() if "dag" in c]
    for dag in dags:
        tasks.update(dag["tasks"])
    return tasks


def test_only_the_train_and_tune_steps_ask_for_a_gpu_node(
    cluster_ir: Any, gpu_tasks: set[str]
) -> None:
    ir, platform = cluster_ir
    executors = ir["deploymentSpec"]["executors"]
    assert len(executors) > len(gpu_tasks)
    for name, executor in executors.items():
        resources = executor["container"]["resources"]
        k8s = platform.get(name, {})
        if name in gpu_tasks:
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
            assert resources["accelerator"]["resourceCount"] == "1"
            assert k8s["tolerations"] == [
                {
                    "key": "nvidia.com/gpu",
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            ]
            assert k8s["nodeSelector"] == {"labels": {"genops.io/node-pool": "gpu"}}
        else:
            assert "accelerator" not in resources, name
            assert "tolerations" not in k8s and "nodeSelector" not in k8s, name


def test_every_task_has_requests_and_limits_by_role(cluster_ir: Any, gpu_tasks: set[str]) -> None:
    ir, _ = cluster_ir
    for name, executor in ir["deploymentSpec"]["executors"].items():
        role = "gpu" if name in gpu_tasks else "cpu"
        expected = cluster.RESOURCES[role]
        resources = executor["container"]["resources"]
        assert resources["resourceCpuRequest"] == expected.cpu_request, name
        assert resources["resourceCpuLimit"] == expected.cpu_limit, name
        assert resources["resourceMemoryRequest"] == expected.memory_request, name
        assert resources["resourceMemoryLimit"] == expected.memory_limit, name


def test_config_comes_from_the_configmap_and_the_db_url_from_the_secret(cluster_ir: Any) -> None:
    ir, platform = cluster_ir
    for name in ir["deploymentSpec"]["executors"]:
        k8s = platform[name]
        (config_map,) = k8s["configMapAsEnv"]
        assert config_map["configMapName"] == "genops-config"
        keys = {item["configMapKey"]: item["envVar"] for item in config_map["keyToEnv"]}
        assert keys == {k: k for k in cluster.CONFIG_MAP_KEYS}
        assert {"MLFLOW_TRACKING_URI", "GENOPS_S3_BUCKET", "AWS_REGION"} <= set(keys)
        secrets = {s["secretName"]: s["keyToEnv"] for s in k8s["secretAsEnv"]}
        # every step logs to MLflow, which asks for the pipelines' login
        assert secrets.pop(cluster.MLFLOW_SECRET) == [
            {"secretKey": key, "envVar": key} for key in cluster.MLFLOW_SECRET_KEYS
        ]
        if name in DB_STEPS:
            assert secrets == {
                "genops-secrets": [
                    {"secretKey": "OPTUNA_STORAGE_URL", "envVar": "OPTUNA_STORAGE_URL"}
                ]
            }
            labels = k8s["podMetadata"]["labels"]
            assert labels == {cluster.DATABASE_CLIENT_LABEL[0]: cluster.DATABASE_CLIENT_LABEL[1]}
        else:
            assert secrets == {}, f"{name} does not need the database password"
            assert "podMetadata" not in k8s, f"{name} is no database client"
    # ...and no value of them is baked into the IR
    text = json.dumps(ir)
    assert "postgresql://" not in text and "mlflow.svc" not in text


def test_images_carry_the_registry_and_the_current_version(
    cluster_ir: Any, gpu_tasks: set[str]
) -> None:
    ir, _ = cluster_ir
    version = pipeline_version()
    for name, executor in ir["deploymentSpec"]["executors"].items():
        kind = "train-cuda" if name in gpu_tasks else "component"
        assert executor["container"]["image"] == f"{REGISTRY}/genops/{kind}:{version}"
    assert ir["root"]["inputDefinitions"]["parameters"]["pipeline_version"]["defaultValue"] == (
        version
    )


def test_retries_only_on_the_mlflow_only_steps(cluster_ir: Any) -> None:
    ir, _ = cluster_ir
    tasks = _all_tasks(ir)
    retried = {name for name, task in tasks.items() if "retryPolicy" in task}
    assert retried == set(cluster.RETRIED_COMPONENTS)
    policy = tasks["finish-run"]["retryPolicy"]
    assert policy["maxRetryCount"] == 3
    assert policy["backoffDuration"] == "30s" and policy["backoffMaxDuration"] == "300s"


def test_local_compile_has_no_cluster_settings(local_ir: Any) -> None:
    ir, platform = local_ir
    assert platform is None
    for name, executor in ir["deploymentSpec"]["executors"].items():
        assert "resources" not in executor["container"], name
    assert not any("retryPolicy" in task for task in _all_tasks(ir).values())


def test_settings_match_the_terraform_outputs_and_platform_manifests() -> None:
    """The constants here name what terraform/ and k8s/platform/ create."""
    outputs_file = REPO / "tests/terraform/fixtures/dev-outputs.json"
    config_map = REPO / "k8s/platform/base/20-genops-config.yaml.tmpl"
    secret = REPO / "k8s/platform/base/30-external-secrets.yaml.tmpl"
    if not (outputs_file.is_file() and config_map.is_file() and secret.is_file()):
        pytest.skip("terraform fixture or platform manifests not in this checkout")
    outputs = {k: v["value"] for k, v in json.loads(outputs_file.read_text()).items()}
    key, value = cluster.GPU_NODE_SELECTOR
    assert outputs["gpu_node_selector"] == {key: value}
    toleration = cluster.GPU_TOLERATION
    assert outputs["gpu_node_taint"] == (
        f"{toleration['key']}={toleration['value']}:{cluster.GPU_TAINT_EFFECT}"
    )
    config_map_doc = next(yaml.safe_load_all(config_map.read_text()))
    assert config_map_doc["metadata"]["name"] == cluster.CONFIG_MAP
    assert set(cluster.CONFIG_MAP_KEYS) <= set(config_map_doc["data"])
    # the Secrets the steps read are synced by External Secrets, under the names they read
    synced = {
        doc["spec"]["target"]["name"]: doc["spec"]
        # the template's ${VARIABLES} are rendered by k8s/scripts/render_platform.py
        for doc in yaml.safe_load_all(re.sub(r"\$\{(\w+)\}", r"\1", secret.read_text()))
        if doc
        and doc.get("kind") == "ExternalSecret"
        and doc["metadata"].get("namespace") == "PIPELINE_NAMESPACE"
    }
    assert set(cluster.SECRET_KEYS) <= set(synced[cluster.SECRET]["target"]["template"]["data"])
    mlflow_keys = {item["secretKey"] for item in synced[cluster.MLFLOW_SECRET]["data"]}
    assert set(cluster.MLFLOW_SECRET_KEYS) <= mlflow_keys


def test_one_process_compiles_both_targets_in_any_order(tmp_path: Path) -> None:
    """The target is a factory argument: a cluster compile then a local one in the same
    process, with no module reloaded, give a local IR without any cluster setting."""
    from pipelines import tabular_synth as module_before

    compile_pipeline("tabular-synth", tmp_path, target="cluster", registry=REGISTRY)
    assert sys.modules["pipelines.tabular_synth"] is module_before
    _, platform = _load(compile_pipeline("tabular-synth", tmp_path / "l", target="local"))
    assert platform is None
    _, platform = _load(compile_pipeline("tabular-synth", tmp_path / "c", target="cluster"))
    assert platform is not None


def test_compile_cli_target_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("GENOPS_IMAGE_REGISTRY", raising=False)
    main(["tabular-synth", "--target", "cluster", "--out-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert "GENOPS_IMAGE_REGISTRY is not set" in captured.err
    path = Path(captured.out.strip())
    assert path == tmp_path / f"tabular-synth-{pipeline_version()}.yaml"
    assert _load(path)[1] is not None


def test_target_and_role_are_checked() -> None:
    with pytest.raises(ValueError, match="target"):
        cluster.Target("cloud")
    with pytest.raises(ValueError, match="role"):
        cluster.LOCAL.configure(object(), "tpu")  # type: ignore[arg-type]
