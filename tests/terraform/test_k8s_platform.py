"""Offline checks of the cluster platform manifests (k8s/platform).

`k8s/scripts/platform.sh render` turns terraform outputs into manifests without
touching a cluster; these tests render them from a fixture of
`terraform output -json` and validate every document against the Kubernetes
OpenAPI schemas (kubernetes_validate, strict: unknown fields fail).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "k8s" / "platform"
PLATFORM_SH = REPO / "k8s" / "scripts" / "platform.sh"
RENDER_PY = REPO / "k8s" / "scripts" / "render_platform.py"
FIXTURE = Path(__file__).parent / "fixtures" / "dev-outputs.json"

# Characters RDS may put in a generated password that must survive URL encoding.
PASSWORD = "p@ss:w/rd#?%&!x"


def load_outputs() -> dict:
    return json.loads(FIXTURE.read_text())


def versions() -> dict[str, str]:
    lines = (line.strip() for line in (PLATFORM / "versions.env").read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def render(
    tmp_path: Path, outputs: dict, password: str | None = PASSWORD
) -> subprocess.CompletedProcess:
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(outputs))
    env = {k: v for k, v in os.environ.items() if k != "GENOPS_DB_PASSWORD"}
    env["GENOPS_TF_OUTPUTS"] = str(outputs_file)
    if password is not None:
        env["GENOPS_DB_PASSWORD"] = password
    return subprocess.run(
        ["bash", str(PLATFORM_SH), "render", "dev", str(tmp_path / "rendered")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def documents(directory: Path) -> list[dict]:
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def find(docs: list[dict], kind: str, name: str, namespace: str | None = None) -> dict:
    for d in docs:
        meta = d["metadata"]
        if (
            d["kind"] == kind
            and meta["name"] == name
            and (namespace is None or meta.get("namespace") == namespace)
        ):
            return d
    raise AssertionError(f"{kind} {namespace}/{name} not rendered")


@pytest.fixture(params=["BOTTLEROCKET_x86_64_NVIDIA", "AL2023_x86_64_NVIDIA"])
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict, list[dict]]:
    outputs = load_outputs()
    outputs["gpu_ami_type"]["value"] = request.param
    outputs["nvidia_device_plugin_required"]["value"] = request.param.startswith("AL2023")
    result = render(tmp_path, outputs)
    assert result.returncode == 0, result.stderr
    return outputs, documents(tmp_path / "rendered")


def test_fixture_has_exactly_the_terraform_outputs() -> None:
    """The fixture must track the env roots' outputs, or the renderer tests drift."""
    declared = {
        env: set(
            re.findall(
                r'^output "([a-z0-9_]+)"',
                (REPO / f"terraform/envs/{env}/outputs.tf").read_text(),
                re.M,
            )
        )
        for env in ("dev", "prod")
    }
    assert declared["dev"] == declared["prod"]
    assert set(load_outputs()) == declared["dev"]


def test_every_rendered_manifest_is_schema_valid(rendered: tuple[dict, list[dict]]) -> None:
    outputs, docs = rendered
    k8s_version = outputs["kubernetes_version"]["value"]
    assert len(docs) >= 15
    for doc in docs:
        kubernetes_validate.validate(doc, k8s_version, strict=True)


def test_nvidia_device_plugin_only_where_the_ami_lacks_it(
    rendered: tuple[dict, list[dict]],
) -> None:
    outputs, docs = rendered
    plugins = [
        d
        for d in docs
        if d["kind"] == "DaemonSet" and d["metadata"]["name"] == "nvidia-device-plugin-daemonset"
    ]
    if outputs["gpu_ami_type"]["value"].startswith("BOTTLEROCKET"):
        assert plugins == [], (
            "Bottlerocket NVIDIA ships the device plugin; a second one would double-register GPUs"
        )
        return
    (plugin,) = plugins
    pod = plugin["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["containers"][0]["image"].endswith(":" + versions()["NVIDIA_DEVICE_PLUGIN_VERSION"])


def test_config_and_secret_carry_the_terraform_outputs(rendered: tuple[dict, list[dict]]) -> None:
    outputs, docs = rendered
    value = {k: v["value"] for k, v in outputs.items()}

    config = find(docs, "ConfigMap", "genops-config", "kubeflow")["data"]
    assert config["MLFLOW_TRACKING_URI"] == value["mlflow_tracking_uri"]
    assert config["GENOPS_S3_BUCKET"] == value["artifacts_bucket"]
    assert config["GENOPS_PIPELINE_ROOT"] == value["pipeline_root"]
    assert config["AWS_REGION"] == "us-west-2"
    assert config["GENOPS_GPU_NODE_SELECTOR"] == "genops.io/node-pool=gpu"
    assert config["GENOPS_IMAGE_TRAIN_CUDA"] == value["ecr_repository_urls"]["genops/train-cuda"]
    for name, url in value["ecr_repository_urls"].items():
        # genops.version.image(): $GENOPS_IMAGE_REGISTRY/genops/<kind>:<version>
        assert f"{config['GENOPS_IMAGE_REGISTRY']}/{name}" == url
    assert config["GENOPS_DB_SECRET_ARN"] == value["database_secret_arn"]
    assert all(isinstance(v, str) for v in config.values())

    secret = find(docs, "Secret", "genops-secrets", "kubeflow")["stringData"]
    for key, database in (("OPTUNA_STORAGE_URL", "optuna"), ("MLFLOW_BACKEND_STORE_URI", "mlflow")):
        url = urlsplit(secret[key])
        assert url.scheme == "postgresql"
        assert url.hostname == value["database_address"]
        assert url.port == value["database_port"]
        assert url.path == f"/{database}"
        assert url.query == "sslmode=require"
        assert unquote(url.username) == value["database_username"]
        assert unquote(url.password) == PASSWORD

    mlflow_secret = find(docs, "Secret", "genops-secrets", "mlflow")["stringData"]
    assert set(mlflow_secret) == {"MLFLOW_BACKEND_STORE_URI"}


def test_kfp_launcher_points_the_pipeline_root_at_s3(rendered: tuple[dict, list[dict]]) -> None:
    outputs, docs = rendered
    launcher = find(docs, "ConfigMap", "kfp-launcher", "kubeflow")["data"]
    assert launcher["defaultPipelineRoot"] == outputs["pipeline_root"]["value"]
    providers = yaml.safe_load(launcher["providers"])
    assert providers["s3"]["default"]["region"] == "us-west-2"
    assert providers["s3"]["default"]["credentials"] == {"fromEnv": True}


def test_autoscaler_discovers_this_clusters_node_groups(rendered: tuple[dict, list[dict]]) -> None:
    _, docs = rendered
    deployment = find(docs, "Deployment", "cluster-autoscaler", "kube-system")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "cluster-autoscaler"
    assert pod["nodeSelector"] == {"genops.io/node-pool": "system"}
    container = pod["containers"][0]
    assert (
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/genops-dev"
        in container["command"]
    )
    assert container["image"].endswith(":" + versions()["CLUSTER_AUTOSCALER_VERSION"])
    assert {"name": "AWS_REGION", "value": "us-west-2"} in container["env"]


def test_namespaces_and_service_accounts_match_the_pod_identity_bindings(
    rendered: tuple[dict, list[dict]],
) -> None:
    outputs, docs = rendered
    bindings = outputs["service_accounts"]["value"]
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    assert {b.split("/")[0] for k, b in bindings.items() if k != "cluster_autoscaler"} <= namespaces
    serving_ns, serving_sa = bindings["model_server"].split("/")
    find(docs, "ServiceAccount", serving_sa, serving_ns)
    autoscaler_ns, autoscaler_sa = bindings["cluster_autoscaler"].split("/")
    find(docs, "ServiceAccount", autoscaler_sa, autoscaler_ns)


def test_db_init_job_reads_credentials_from_the_secret(rendered: tuple[dict, list[dict]]) -> None:
    _, docs = rendered
    job = find(docs, "Job", "genops-db-init", "kubeflow")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert PASSWORD not in json.dumps(job), (
        "the password must come from the Secret, not the Job spec"
    )
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "genops-secrets",
        "key": "MLFLOW_BACKEND_STORE_URI",
    }
    assert "$MLFLOW_BACKEND_STORE_URI" in container["args"][0], (
        "shell variables must survive rendering"
    )


def test_render_without_password_writes_a_placeholder_and_render_py_refuses(tmp_path: Path) -> None:
    result = render(tmp_path, load_outputs(), password=None)
    assert result.returncode == 0, result.stderr
    assert "placeholder" in result.stderr
    outputs_file = tmp_path / "outputs.json"
    env = {k: v for k, v in os.environ.items() if k != "GENOPS_DB_PASSWORD"}
    strict = subprocess.run(
        [
            sys.executable,
            str(RENDER_PY),
            "--outputs",
            str(outputs_file),
            "--out",
            str(tmp_path / "strict"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert strict.returncode == 2
    assert "GENOPS_DB_PASSWORD" in strict.stderr


def test_render_refuses_an_autoscaler_for_another_kubernetes_minor(tmp_path: Path) -> None:
    outputs = copy.deepcopy(load_outputs())
    outputs["kubernetes_version"]["value"] = "1.33"
    result = render(tmp_path, outputs)
    assert result.returncode != 0
    assert "CLUSTER_AUTOSCALER_VERSION" in result.stderr


def test_render_reports_missing_outputs(tmp_path: Path) -> None:
    outputs = load_outputs()
    del outputs["database_secret_arn"]
    result = render(tmp_path, outputs)
    assert result.returncode != 0
    assert "database_secret_arn" in result.stderr


def test_platform_sh_rejects_an_unknown_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(PLATFORM_SH), "render", "staging", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "dev or prod" in result.stderr


@pytest.mark.parametrize(
    ("kustomization", "key"),
    [
        ("cert-manager", "CERT_MANAGER_VERSION"),
        ("kfp-cluster-scoped", "KFP_VERSION"),
        ("kfp", "KFP_VERSION"),
        ("kserve", "KSERVE_VERSION"),
        ("kserve-runtimes", "KSERVE_VERSION"),
    ],
)
def test_upstream_installs_are_pinned_to_versions_env(kustomization: str, key: str) -> None:
    doc = yaml.safe_load((PLATFORM / "upstream" / kustomization / "kustomization.yaml").read_text())
    version = versions()[key]
    assert doc["resources"], "an upstream kustomization must reference its release"
    for resource in doc["resources"]:
        assert resource.startswith("https://github.com/"), resource
        pinned = (
            resource.endswith(f"?ref={version}") or f"/releases/download/{version}/" in resource
        )
        assert pinned, f"{resource} is not pinned to {key}={version}"
        assert not re.search(r"latest|master|main", resource), resource


def test_kserve_defaults_to_raw_deployment() -> None:
    doc = yaml.safe_load((PLATFORM / "upstream" / "kserve" / "kustomization.yaml").read_text())
    (patch,) = doc["patches"]
    ops = yaml.safe_load(patch["patch"])
    assert ops == [
        {
            "op": "replace",
            "path": "/data/deploy",
            "value": '{"defaultDeploymentMode": "RawDeployment"}',
        }
    ]
