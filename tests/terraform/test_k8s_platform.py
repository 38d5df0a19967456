"""Offline checks of the cluster platform manifests (k8s/platform).

`k8s/scripts/platform.sh render` turns terraform outputs into manifests without
touching a cluster; these tests render them from a fixture of
`terraform output -json` (and of the image mirror's lock) and validate every
built-in document against the Kubernetes OpenAPI schemas (kubernetes_validate,
strict: unknown fields fail); custom resources (External Secrets, KServe,
SecurityGroupPolicy) are checked for the fields their controllers require.
The contracts across all of it are in tests/cluster/test_contracts.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "k8s" / "platform"
PLATFORM_SH = REPO / "k8s" / "scripts" / "platform.sh"
RENDER_PY = REPO / "k8s" / "scripts" / "render_platform.py"
FIXTURE = Path(__file__).parent / "fixtures" / "dev-outputs.json"
IMAGES_LOCK = REPO / "tests" / "cluster" / "fixtures" / "dev-images.lock.json"
STAGE_PY = REPO / "k8s" / "scripts" / "stage_upstream.py"
BUILT_IN_GROUPS = (
    "v1",
    "apps/v1",
    "batch/v1",
    "rbac.authorization.k8s.io/v1",
    "networking.k8s.io/v1",
    "storage.k8s.io/v1",
    "policy/v1",
)


def load_outputs() -> dict:
    return json.loads(FIXTURE.read_text())


def versions() -> dict[str, str]:
    lines = (line.strip() for line in (PLATFORM / "versions.env").read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def render(
    tmp_path: Path, outputs: dict, lock: Path | None = IMAGES_LOCK
) -> subprocess.CompletedProcess:
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(outputs))
    env = {
        k: v for k, v in os.environ.items() if k not in ("GENOPS_DB_PASSWORD", "GENOPS_IMAGES_LOCK")
    }
    env["GENOPS_TF_OUTPUTS"] = str(outputs_file)
    env["GENOPS_IMAGES_LOCK"] = str(lock) if lock else str(tmp_path / "no-such-lock.json")
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
    assert len(docs) >= 30
    for doc in docs:
        if doc["apiVersion"] in BUILT_IN_GROUPS:
            kubernetes_validate.validate(doc, k8s_version, strict=True)
            continue
        kind = doc["kind"]
        assert kind in {
            "ClusterSecretStore",
            "ExternalSecret",
            "ServingRuntime",
            "SecurityGroupPolicy",
        }, kind
        if kind == "ExternalSecret":
            assert doc["apiVersion"] == "external-secrets.io/v1"
            spec = doc["spec"]
            assert spec["secretStoreRef"] == {
                "kind": "ClusterSecretStore",
                "name": "genops-secrets-manager",
            }
            assert spec["refreshInterval"] == "1h" and spec["target"]["creationPolicy"] == "Owner"
            assert all(set(d["remoteRef"]) == {"key", "property"} for d in spec["data"])
        if kind == "SecurityGroupPolicy":
            assert doc["apiVersion"] == "vpcresources.k8s.aws/v1beta1"
            assert all(g.startswith("sg-") for g in doc["spec"]["securityGroups"]["groupIds"])


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
    lock = json.loads(IMAGES_LOCK.read_text())["upstream"]
    ref = "nvcr.io/nvidia/k8s-device-plugin:" + versions()["NVIDIA_DEVICE_PLUGIN_VERSION"]
    assert pod["containers"][0]["image"] == lock[ref], (
        "the mirrored image of the pinned release, by digest"
    )


def test_config_and_credentials_carry_the_terraform_outputs(
    rendered: tuple[dict, list[dict]],
) -> None:
    outputs, docs = rendered
    value = {k: v["value"] for k, v in outputs.items()}

    config = find(docs, "ConfigMap", "genops-config", "kubeflow")["data"]
    assert config["MLFLOW_TRACKING_URI"] == value["mlflow_tracking_uri"]
    assert config["GENOPS_S3_BUCKET"] == value["artifacts_bucket"]
    assert config["GENOPS_PIPELINE_ROOT"] == value["pipeline_root"]
    assert config["MLFLOW_ARTIFACTS_DESTINATION"] == value["mlflow_artifacts_destination"]
    assert config["AWS_REGION"] == "us-west-2"
    assert config["GENOPS_GPU_NODE_SELECTOR"] == "genops.io/node-pool=gpu"
    assert config["GENOPS_IMAGE_TRAIN_CUDA"] == value["ecr_repository_urls"]["genops/train-cuda"]
    for name, url in value["ecr_repository_urls"].items():
        # genops.version.image(): $GENOPS_IMAGE_REGISTRY/genops/<kind>:<version>
        assert f"{config['GENOPS_IMAGE_REGISTRY']}/{name}" == url
    assert all(isinstance(v, str) for v in config.values())
    mlflow_config = find(docs, "ConfigMap", "genops-config", "mlflow")["data"]
    assert mlflow_config["MLFLOW_ARTIFACTS_DESTINATION"] == value["mlflow_artifacts_destination"]

    # No password anywhere: External Secrets builds the URLs from Secrets Manager.
    assert not [d for d in docs if d["kind"] == "Secret"]
    optuna = find(docs, "ExternalSecret", "genops-secrets", "kubeflow")["spec"]
    template = optuna["target"]["template"]["data"]["OPTUNA_STORAGE_URL"]
    url = urlsplit(
        template.replace("{{ .username | urlquery }}", "u").replace(
            "{{ .password | urlquery }}", "p"
        )
    )
    assert (url.scheme, url.hostname, url.port, url.path, url.query) == (
        "postgresql",
        value["database_address"],
        value["database_port"],
        "/optuna",
        "sslmode=require",
    )
    assert {d["remoteRef"]["key"] for d in optuna["data"]} == {
        value["database_app_secret_arns"]["optuna"]
    }
    backend = find(docs, "ExternalSecret", "genops-secrets", "mlflow")["spec"]
    assert (
        "/mlflow?sslmode=require"
        in backend["target"]["template"]["data"]["MLFLOW_BACKEND_STORE_URI"]
    )
    assert {d["remoteRef"]["key"] for d in backend["data"]} == {
        value["database_app_secret_arns"]["mlflow"]
    }
    admin = find(docs, "ExternalSecret", "genops-db-admin", "genops-system")["spec"]
    assert value["database_secret_arn"] in {d["remoteRef"]["key"] for d in admin["data"]}
    store = find(docs, "ClusterSecretStore", "genops-secrets-manager", None)["spec"]
    assert store["provider"]["aws"] == {"service": "SecretsManager", "region": "us-west-2"}


def test_kfp_install_config_points_at_rds_and_s3(rendered: tuple[dict, list[dict]]) -> None:
    outputs, docs = rendered
    config = find(docs, "ConfigMap", "pipeline-install-config", "kubeflow")["data"]
    assert config["postgresHost"] == outputs["database_address"]["value"]
    assert config["bucketName"] == outputs["artifacts_bucket"]["value"]
    assert config["objectStoreHost"] == "s3.us-west-2.amazonaws.com"
    assert config["objectStorePipelinePath"] == "pipeline-root/pipelines"
    assert config["appVersion"] == versions()["KFP_VERSION"]
    registry = outputs["image_registry"]["value"]
    for key in ("v2DriverImage", "v2LauncherImage", "cacheImage"):
        assert config[key].startswith(registry + "/mirror/") and "@sha256:" in config[key], key


def test_render_without_an_image_lock_refuses_unless_allowed(tmp_path: Path) -> None:
    result = render(tmp_path, load_outputs(), lock=None)
    assert result.returncode == 0, result.stderr  # platform.sh render: review mode
    assert "no image lock" in result.stderr
    outputs_file = tmp_path / "outputs.json"
    strict = subprocess.run(
        [
            sys.executable,
            str(RENDER_PY),
            "--outputs",
            str(outputs_file),
            "--out",
            str(tmp_path / "s"),
            "--images-lock",
            str(tmp_path / "missing.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert strict.returncode != 0 and "mirror_images.sh" in strict.stderr


def test_stage_upstream_refuses_unlocked_files_and_pins_images(tmp_path: Path) -> None:
    sums = (PLATFORM / "upstream" / "checksums.sha256").read_text()
    refused = subprocess.run(
        [
            sys.executable,
            str(STAGE_PY),
            "--lock",
            str(IMAGES_LOCK),
            "--out",
            str(tmp_path),
            "external-secrets",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "UNLOCKED https://github.com/external-secrets" in sums:
        assert refused.returncode != 0 and "UNLOCKED" in refused.stderr
    staged = subprocess.run(
        [sys.executable, str(STAGE_PY), "--lock", str(IMAGES_LOCK), "--out", str(tmp_path), "kfp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert staged.returncode == 0, staged.stderr
    kustomization = yaml.safe_load((tmp_path / "kfp" / "kustomization.yaml").read_text())
    lock = json.loads(IMAGES_LOCK.read_text())
    names = {i["name"]: i for i in kustomization["images"]}
    assert names["ghcr.io/kubeflow/kfp-api-server"]["digest"].startswith("sha256:")
    assert names["ghcr.io/kubeflow/kfp-api-server"]["newName"].startswith(
        lock["registry"] + "/mirror/"
    )
    assert any("argoexec" in json.dumps(p) for p in kustomization["patches"])


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
    lock = json.loads(IMAGES_LOCK.read_text())["upstream"]
    ref = (
        "registry.k8s.io/autoscaling/cluster-autoscaler:" + versions()["CLUSTER_AUTOSCALER_VERSION"]
    )
    assert container["image"] == lock[ref], "the mirrored image of the pinned release, by digest"
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


def test_db_init_job_creates_the_application_users(rendered: tuple[dict, list[dict]]) -> None:
    _, docs = rendered
    job = find(docs, "Job", "genops-db-init", "genops-system")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "genops-db-admin"}}]
    script = container["args"][0]
    for user in ("mlflow", "optuna", "kfp"):
        assert f"ALTER ROLE :\"{user}_user\" WITH LOGIN PASSWORD :'{user}_pw'" in script
    for database in ("mlflow", "optuna", "mlpipeline", "cachedb", "metadb"):
        assert f"('{database}'," in script
    assert "$MLFLOW_DB_PASSWORD" in script, "shell variables must survive rendering"


def test_render_refuses_an_autoscaler_for_another_kubernetes_minor(tmp_path: Path) -> None:
    outputs = copy.deepcopy(load_outputs())
    outputs["kubernetes_version"]["value"] = "1.33"
    result = render(tmp_path, outputs)
    assert result.returncode != 0
    assert "CLUSTER_AUTOSCALER_VERSION" in result.stderr


def test_render_reports_missing_outputs(tmp_path: Path) -> None:
    outputs = load_outputs()
    del outputs["database_app_secret_arns"]
    result = render(tmp_path, outputs)
    assert result.returncode != 0
    assert "database_app_secret_arns" in result.stderr


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
    ("kustomization", "pins"),
    [
        ("cert-manager", ("009c88084074904c7743384ff50d3bd70012ef55",)),
        ("kfp-cluster-scoped", ("KFP_COMMIT",)),
        ("kfp", ("KFP_COMMIT",)),
        ("kserve", ("KSERVE_COMMIT", "KSERVE_VERSION")),
        ("external-secrets", ("EXTERNAL_SECRETS_VERSION",)),
    ],
)
def test_upstream_installs_are_pinned_to_versions_env(
    kustomization: str, pins: tuple[str, ...]
) -> None:
    doc = yaml.safe_load((PLATFORM / "upstream" / kustomization / "kustomization.yaml").read_text())
    wanted = [versions().get(p, p) for p in pins]
    assert doc["resources"], "an upstream kustomization must reference its release"
    for resource in doc["resources"]:
        if not resource.startswith("https://"):  # a local folder with its own kustomization
            assert (
                PLATFORM / "upstream" / kustomization / resource / "kustomization.yaml"
            ).is_file()
            continue
        if "/argoproj/argo-workflows/" in resource:  # KFP's Argo, by the commit of its tag
            assert versions()["ARGO_WORKFLOWS_COMMIT"] in resource, resource
            continue
        for pin in wanted:
            assert pin in resource, f"{resource} is not pinned to {pin}"
        assert not re.search(r"latest|master|main", resource), resource


def test_kfp_overlay_replaces_what_the_platform_renders() -> None:
    doc = yaml.safe_load((PLATFORM / "upstream" / "kfp" / "kustomization.yaml").read_text())
    deleted = set()
    for patch in doc["patches"]:
        for body in yaml.safe_load_all((PLATFORM / "upstream" / "kfp" / patch["path"]).read_text()):
            if body.get("$patch") == "delete":
                deleted.add((body["kind"], body["metadata"]["name"]))
    assert deleted == {
        ("ConfigMap", "pipeline-install-config"),
        ("ConfigMap", "kfp-launcher"),
        ("Secret", "postgres-secret-extended"),
    }


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
