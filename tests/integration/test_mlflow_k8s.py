"""Offline checks of the tracking server's cluster manifests (mlflow/k8s).

Every document is validated against the Kubernetes 1.31 OpenAPI schemas (strict: an
unknown field fails), both as written and as the deploy renders them (kustomize with the
image set, from a fixture of `terraform output -json`). No cluster, no network; fast, so
not marked integration.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from mlflow.server.security_utils import is_allowed_host_header

from tests.conftest import REPO

kubernetes_validate = pytest.importorskip("kubernetes_validate")

K8S = REPO / "mlflow" / "k8s"
OUTPUTS = REPO / "tests" / "terraform" / "fixtures" / "dev-outputs.json"
K8S_VERSION = "1.31"


def source_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"no {kind} {name}")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return source_documents()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """scripts/mlflow_k8s.sh render: kustomize (kubectl's or standalone) with the image set."""
    if not (shutil.which("kubectl") or shutil.which("kustomize")):
        pytest.skip("neither kubectl nor kustomize on PATH: cannot render the kustomization")
    out = tmp_path_factory.mktemp("mlflow-k8s") / "mlflow.yaml"
    env = {**os.environ, "GENOPS_TF_OUTPUTS": str(OUTPUTS), "MLFLOW_IMAGE_TAG": "0.1.0-abc"}
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "mlflow_k8s.sh"), "render", "dev", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(out.read_text()) if d]


def test_every_source_manifest_is_schema_valid(docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "Job", "PodDisruptionBudget", "Service", "ServiceAccount"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_an_unknown_field(docs: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(find(docs, "Deployment", "mlflow"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_every_rendered_manifest_is_schema_valid_and_names_the_ecr_image(
    rendered: list[dict[str, Any]],
) -> None:
    assert {d["kind"] for d in rendered} == {
        "ConfigMap",
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    }
    image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/genops/mlflow:0.1.0-abc"
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "mlflow"
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            assert c["image"] == image, (doc["kind"], c["name"])
    scripts = next(d for d in rendered if d["kind"] == "ConfigMap")
    assert set(scripts["data"]) == {"auth_config.py", "wait_for_schema.py"}
    assert scripts["data"]["auth_config.py"] == (K8S / "bin" / "auth_config.py").read_text()
    volumes = find(rendered, "Deployment", "mlflow")["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "scripts",
        "configMap": {"name": scripts["metadata"]["name"], "defaultMode": 0o444},
    } in volumes


def test_server_uses_the_database_secret_s3_destination_and_basic_auth(
    docs: list[dict[str, Any]],
) -> None:
    pod = find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    env = env_of(server)
    assert env["MLFLOW_BACKEND_STORE_URI"] == {
        "secretKeyRef": {"name": "genops-secrets", "key": "MLFLOW_BACKEND_STORE_URI"}
    }
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == {
        "configMapKeyRef": {"name": "genops-config", "key": "MLFLOW_ARTIFACTS_DESTINATION"}
    }
    assert env["AWS_REGION"]["configMapKeyRef"]["key"] == "AWS_REGION"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["secretKeyRef"]["name"] == "mlflow-auth"
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["secretKeyRef"]["name"] == "mlflow-auth"
    assert "--app-name=basic-auth" in server["args"]
    assert "--serve-artifacts" in server["args"]
    # No credential in the command line: the URI only reaches the process environment.
    assert not [a for a in server["args"] if "postgres" in a or "$(" in a]
    assert not [e for e in server["env"] if "value" in e and "postgres" in e["value"]]


def test_server_answers_the_tracking_uri_terraform_hands_out(docs: list[dict[str, Any]]) -> None:
    import json
    from urllib.parse import urlsplit

    outputs = json.loads(OUTPUTS.read_text())
    netloc = urlsplit(outputs["mlflow_tracking_uri"]["value"]).netloc
    (server,) = find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    allowed = [h.strip() for h in env_of(server)["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")]
    assert is_allowed_host_header(allowed, netloc)
    assert is_allowed_host_header(allowed, "localhost:5000")  # kubectl port-forward
    assert not is_allowed_host_header(allowed, "mlflow.attacker.example")
    service = find(docs, "Service", "mlflow")
    assert netloc == f"{service['metadata']['name']}.mlflow.svc.cluster.local:5000"
    assert service["spec"]["ports"][0]["port"] == 5000


def test_probes_resources_and_pod_security(docs: list[dict[str, Any]]) -> None:
    deployment = find(docs, "Deployment", "mlflow")
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    job = find(docs, "Job", "mlflow-db-upgrade")["spec"]["template"]["spec"]
    for spec in (pod, job):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
            assert c["resources"]["limits"]["memory"], c["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The Pod Identity binding: terraform associates mlflow/mlflow with the mlflow role.
    outputs = yaml.safe_load(OUTPUTS.read_text())
    assert outputs["service_accounts"]["value"]["mlflow"] == "mlflow/" + pod["serviceAccountName"]
    assert find(docs, "ServiceAccount", pod["serviceAccountName"])
    pdb = find(docs, "PodDisruptionBudget", "mlflow")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_schema_upgrade_job_runs_before_the_server_starts(docs: list[dict[str, Any]]) -> None:
    job = find(docs, "Job", "mlflow-db-upgrade")["spec"]["template"]["spec"]
    script = job["containers"][0]["args"][0]
    assert 'mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"' in script
    assert "python -m mlflow.server.auth db upgrade" in script
    assert job["restartPolicy"] == "Never"
    init = find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["auth-config", "wait-for-schema"]
    assert init[1]["command"][:2] == ["python", "/opt/genops/bin/wait_for_schema.py"]
    assert "--auth" in init[1]["command"]
