"""The cluster path as one system: the contracts between Terraform, the platform, MLflow, KFP
and KServe, checked across everything that would be applied for one environment.

Offline: nothing here reaches AWS or a cluster. The environment is rendered from the fixture
of ``terraform output -json`` (tests/terraform/fixtures/dev-outputs.json) and the fixture of
the image mirror's lock (tests/cluster/fixtures/dev-images.lock.json, what
``k8s/scripts/mirror_images.sh dev`` writes):

- the platform manifests (``k8s/scripts/render_platform.py``);
- the MLflow manifests (``mlflow/k8s``, rendered here the way ``scripts/mlflow_k8s.sh render``
  does: namespace, labels, generated ConfigMap, image);
- the InferenceService the deploy step renders, for every model URI the deploy step can get
  from MLflow on the cluster (the library function, imported lazily);
- the compiled cluster pipelines (through the CLI ``python -m pipelines.compile --target
  cluster``), each task turned into the pod it becomes: its image, its environment from
  ConfigMaps and Secrets, its service account.

The upstream installs (Kubeflow Pipelines, KServe, cert-manager, External Secrets) are not
rendered offline; what genops relies on from them is stated in :data:`UPSTREAM` with the file
it comes from, at the commit ``k8s/platform/upstream`` pins.

Each test names the problem of issue 15 it guards.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = REPO / "tests" / "terraform" / "fixtures" / "dev-outputs.json"
IMAGES_LOCK = Path(__file__).parent / "fixtures" / "dev-images.lock.json"
PLATFORM = REPO / "k8s" / "platform"
PLATFORM_SH = REPO / "k8s" / "scripts" / "platform.sh"
RENDER_PY = REPO / "k8s" / "scripts" / "render_platform.py"
MLFLOW_BASE = REPO / "mlflow" / "k8s"
PASSWORD = "p@ss:w/rd#?%&!x"  # only the renderer of before issue 15 still wanted one

# What the upstream installs create that the genops objects rely on, as of the commits
# k8s/platform/upstream pins. The default runner's Role is KFP's, unchanged:
# kubeflow/pipelines manifests/kustomize/base/pipeline/pipeline-runner-role.yaml
UPSTREAM: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pipeline-runner", "namespace": "kubeflow"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch", "list"]},
            {
                "apiGroups": [""],
                "resources": ["pods", "pods/exec", "pods/log", "services"],
                "verbs": ["*"],
            },
            {"apiGroups": ["kubeflow.org"], "resources": ["*"], "verbs": ["*"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "pipeline-runner-binding", "namespace": "kubeflow"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "pipeline-runner",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}
        ],
    },
]
# KFP's API server env var naming the service account pipeline pods run as (backend
# src/apiserver/common/config.go); its default is pipeline-runner (const.go).
RUNNER_SA_ENV = "DEFAULTPIPELINERUNNERSERVICEACCOUNT"
UPSTREAM_DEFAULT_RUNNER = "pipeline-runner"

# Addresses of things outside the cluster's pods.
POD_IDENTITY_AGENT = "169.254.170.23"  # EKS Pod Identity agent (link-local, port 80)
S3_IP = "52.92.128.10"  # an S3 address (gateway endpoint: public prefix list, routed privately)
KUBE_DNS = ("kube-system", {"k8s-app": "kube-dns"})
MLFLOW_PROXY_SCHEME = "mlflow-artifacts:"


# ---------------------------------------------------------------- the rendered environment


def _outputs() -> dict[str, Any]:
    raw = json.loads(OUTPUTS.read_text())
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()}


def _documents(paths: list[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
    return docs


def _render_platform(tmp: Path) -> list[dict[str, Any]]:
    outputs_file = tmp / "outputs.json"
    outputs_file.write_text(OUTPUTS.read_text())
    env = dict(os.environ, GENOPS_DB_PASSWORD=PASSWORD, GENOPS_IMAGES_LOCK=str(IMAGES_LOCK))
    result = subprocess.run(
        [sys.executable, str(RENDER_PY), "--outputs", str(outputs_file), "--out", str(tmp / "p")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return _documents(sorted((tmp / "p").glob("*.yaml")))


def _kustomize_lite(base: Path, images: dict[str, str]) -> list[dict[str, Any]]:
    """Our own kustomize bases use resources, namespace, labels, configMapGenerator (files)
    and images; this renders exactly that, so the test needs no kustomize binary."""
    k = yaml.safe_load((base / "kustomization.yaml").read_text())
    docs = _documents([base / r for r in k.get("resources", [])])
    for gen in k.get("configMapGenerator", []):
        data = {Path(f).name: (base / f).read_text() for f in gen.get("files", [])}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": gen["name"]},
                "data": data,
            }
        )
    extra = {}
    for entry in k.get("labels", []):
        extra.update(entry.get("pairs", {}))
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if k.get("namespace") and doc["kind"] not in (
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
        ):
            meta["namespace"] = k["namespace"]
        meta.setdefault("labels", {}).update(extra)
        for container in _containers(doc):
            if container.get("image") in images:
                container["image"] = images[container["image"]]
    return docs


def _mlflow_image(outputs: dict[str, Any], lock: dict[str, Any]) -> str:
    genops = lock.get("genops", {})
    if "genops/mlflow" in genops:
        return str(genops["genops/mlflow"])
    return f"{outputs['ecr_repository_urls']['genops/mlflow']}:0.1.0-test"


def _containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = _pod_spec(doc)
    if pod is None:
        return
    yield from pod.get("initContainers", []) or []
    yield from pod.get("containers", []) or []


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return spec.get("template", {}).get("spec")
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind == "Pod":
        return spec
    return None


def _pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    if doc.get("kind") == "Pod":
        return dict(doc["metadata"].get("labels") or {})
    if doc.get("kind") == "CronJob":
        tmpl = doc["spec"]["jobTemplate"]["spec"]["template"]
    else:
        tmpl = doc["spec"]["template"]
    return dict((tmpl.get("metadata") or {}).get("labels") or {})


def _kserve_module() -> Any:
    for name in ("genops.core.serving.kserve", "genops.serving.kserve"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise AssertionError(
        "no genops KServe module (genops.core.serving.kserve or genops.serving.kserve)"
    )


def _storage_uri(kserve: Any, download_uri: str, artifacts_destination: str) -> str:
    """What the deploy step puts into storageUri for a model version's download URI."""
    resolve = getattr(kserve, "resolve_storage_uri", None)
    if resolve is None:  # before the request: the deploy step passes the URI through
        return download_uri
    return str(resolve(download_uri, artifacts_destination))


def _compile_pipelines(tmp: Path, registry: str) -> list[dict[str, Any]]:
    out = tmp / "pipelines"
    env = dict(os.environ, GENOPS_IMAGE_REGISTRY=registry, GENOPS_TARGET="cluster")
    if IMAGES_LOCK.is_file():
        env["GENOPS_IMAGES_LOCK"] = str(IMAGES_LOCK)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.compile", "--target", "cluster", "--out-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"compile failed:\n{result.stderr[-4000:]}"
    files = sorted(out.glob("*.yaml"))
    assert files, "the cluster compile wrote no pipeline"
    return [{"file": f.name, "docs": list(yaml.safe_load_all(f.read_text()))} for f in files]


@dataclass
class Step:
    """A compiled pipeline task as the pod it becomes on the cluster."""

    pipeline: str
    name: str  # the component, e.g. deploy-model
    image: str
    config_env: list[tuple[str, str, bool]] = field(default_factory=list)  # (cm, key, optional)
    secret_env: list[tuple[str, str, bool]] = field(default_factory=list)  # (secret, key, optional)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def env_names(self) -> set[str]:
        return {k for _, k, _ in self.config_env} | {k for _, k, _ in self.secret_env}


def _steps(compiled: list[dict[str, Any]]) -> list[Step]:
    steps = []
    for item in compiled:
        ir, platform = item["docs"][0], (item["docs"][1] if len(item["docs"]) > 1 else {})
        k8s = (((platform or {}).get("platforms") or {}).get("kubernetes") or {}).get(
            "deploymentSpec"
        ) or {}
        k8s_exec = k8s.get("executors") or {}
        for exec_name, executor in ir["deploymentSpec"]["executors"].items():
            settings = k8s_exec.get(exec_name) or {}
            step = Step(
                pipeline=item["file"],
                name=exec_name.removeprefix("exec-"),
                image=executor["container"]["image"],
                labels=dict((settings.get("podMetadata") or {}).get("labels") or {}),
            )
            for cm in settings.get("configMapAsEnv", []):
                for kv in cm.get("keyToEnv", []):
                    step.config_env.append(
                        (cm["configMapName"], kv["configMapKey"], bool(cm.get("optional")))
                    )
            for sec in settings.get("secretAsEnv", []):
                for kv in sec.get("keyToEnv", []):
                    step.secret_env.append(
                        (sec["secretName"], kv["secretKey"], bool(sec.get("optional")))
                    )
            for sec in settings.get("secretAsVolume", []):
                step.secret_env.append((sec["secretName"], "*", bool(sec.get("optional"))))
            steps.append(step)
    return steps


@dataclass
class Environment:
    outputs: dict[str, Any]
    lock: dict[str, Any]
    platform: list[dict[str, Any]]
    mlflow: list[dict[str, Any]]
    inference_services: dict[str, Any]  # download URI -> InferenceService, or the error
    steps: list[Step]

    @property
    def objects(self) -> list[dict[str, Any]]:
        isvcs = [v for v in self.inference_services.values() if isinstance(v, dict)]
        return self.platform + self.mlflow + isvcs

    def ns(self, key: str) -> str:
        return str(self.outputs["service_accounts"][key]).split("/")[0]

    def find(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        for d in self.objects:
            meta = d.get("metadata") or {}
            if (
                d.get("kind") == kind
                and meta.get("name") == name
                and meta.get("namespace") == namespace
            ):
                return d
        return None

    @functools.cached_property
    def runner_service_account(self) -> tuple[str, str]:
        """(namespace, name) of the service account KFP runs pipeline pods as."""
        return (
            self.ns("pipeline_runner"),
            _runner_sa_from_kfp_overlay() or UPSTREAM_DEFAULT_RUNNER,
        )


def _runner_sa_from_kfp_overlay() -> str | None:
    """The DEFAULTPIPELINERUNNERSERVICEACCOUNT the KFP overlay sets on the API server."""
    for path in sorted((PLATFORM / "upstream" / "kfp").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for container in _containers(doc or {}) if isinstance(doc, dict) else []:
                for env in container.get("env") or []:
                    if isinstance(env, dict) and env.get("name") == RUNNER_SA_ENV:
                        return str(env.get("value"))
    return None


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    tmp = tmp_path_factory.mktemp("contracts")
    outputs = _outputs()
    lock = json.loads(IMAGES_LOCK.read_text())
    platform = _render_platform(tmp)
    images = {"genops/mlflow": _mlflow_image(outputs, lock)}
    mlflow = _kustomize_lite(MLFLOW_BASE, images)
    # Applied by scripts/mlflow_k8s.sh after the rollout, outside the kustomization.
    for extra in sorted(MLFLOW_BASE.glob("*-job.yaml")):
        if extra.name not in (
            yaml.safe_load((MLFLOW_BASE / "kustomization.yaml").read_text()).get("resources") or []
        ):
            for doc in _documents([extra]):
                for container in _containers(doc):
                    container["image"] = images.get(container["image"], container["image"])
                mlflow.append(doc)

    kserve = _kserve_module()
    destination = str(outputs["mlflow_artifacts_destination"])
    bucket_uri = destination.rstrip("/")
    # What MlflowClient.get_model_version_download_uri returns on the cluster's server
    # (--serve-artifacts, --artifacts-destination = the output above): MLflow 3 logged models
    # live under <experiment>/models/<model id>/artifacts, behind the server's proxy; a
    # version registered from a run artifact path may point at the store directly.
    download_uris = [
        f"{MLFLOW_PROXY_SCHEME}/3/models/m-0123456789abcdef0123456789abcdef/artifacts",
        f"{bucket_uri}/3/0123456789abcdef0123456789abcdef/artifacts/model",
    ]
    isvcs: dict[str, Any] = {}
    for uri in download_uris:
        try:
            storage = _storage_uri(kserve, uri, destination)
            isvcs[uri] = kserve.render_inference_service(
                name="adult-synthesizer", storage_uri=storage
            )
        except ValueError as exc:
            isvcs[uri] = exc

    steps = _steps(_compile_pipelines(tmp, str(outputs["image_registry"])))
    return Environment(outputs, lock, platform, mlflow, isvcs, steps)


# ----------------------------------------------------------------------- RBAC evaluation


def _role_rules(
    env: Environment, ref: dict[str, Any], namespace: str | None
) -> list[dict[str, Any]]:
    for d in env.objects + UPSTREAM:
        meta = d.get("metadata") or {}
        if d.get("kind") != ref["kind"] or meta.get("name") != ref["name"]:
            continue
        if ref["kind"] == "Role" and meta.get("namespace") != namespace:
            continue
        return list(d.get("rules") or [])
    return []


def _grants(env: Environment, sa: tuple[str, str]) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace or None for cluster-wide, rule) for every rule bound to ``sa``."""
    out: list[tuple[str | None, dict[str, Any]]] = []
    for d in env.objects + UPSTREAM:
        if d.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = d.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) == sa
            for s in subjects
        ):
            continue
        scope = d["metadata"].get("namespace") if d["kind"] == "RoleBinding" else None
        for rule in _role_rules(env, d["roleRef"], scope):
            out.append((scope, rule))
    return out


def _can(
    env: Environment, sa: tuple[str, str], verb: str, group: str, resource: str, namespace: str
) -> bool:
    for scope, rule in _grants(env, sa):
        if scope not in (None, namespace):
            continue
        if rule.get("resourceNames"):
            continue  # a grant on named objects only
        if not ({"*", group} & set(rule.get("apiGroups") or [])):
            continue
        if not ({"*", resource} & set(rule.get("resources") or [])):
            continue
        if {"*", verb} & set(rule.get("verbs") or []):
            return True
    return False


# ------------------------------------------------------------------ network policy evaluation


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: tuple[tuple[str, str], ...]

    @staticmethod
    def of(namespace: str, labels: dict[str, str]) -> Pod:
        return Pod(namespace, tuple(sorted(labels.items())))


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _namespace_labels(env: Environment, name: str) -> dict[str, str]:
    labels = {"kubernetes.io/metadata.name": name}
    ns = env.find("Namespace", name, None)
    if ns:
        labels.update(ns["metadata"].get("labels") or {})
    return labels


def _peer_matches(
    env: Environment, peer: dict[str, Any], policy_ns: str, target: Pod | str
) -> bool:
    if "ipBlock" in peer:
        if not isinstance(target, str):
            return False
        ip = ipaddress.ip_address(target)
        block = peer["ipBlock"]
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(e) for e in block.get("except") or [])
    if isinstance(target, str):
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], _namespace_labels(env, target.namespace)):
            return False
    elif target.namespace != policy_ns:
        return False
    if "podSelector" in peer:
        return _matches(peer["podSelector"], dict(target.labels))
    return True


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        if isinstance(p["port"], int) and p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


def _policies(env: Environment, pod: Pod, direction: str) -> list[dict[str, Any]]:
    found = []
    for d in env.objects:
        if d.get("kind") != "NetworkPolicy" or d["metadata"].get("namespace") != pod.namespace:
            continue
        spec = d.get("spec") or {}
        types = spec.get("policyTypes") or (
            ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
        )
        if direction in types and _matches(spec.get("podSelector", {}), dict(pod.labels)):
            found.append(d)
    return found


def _allowed(
    env: Environment, src: Pod, dst: Pod | str, port: int, protocol: str = "TCP"
) -> str | None:
    """None if the flow src -> dst:port is allowed by the NetworkPolicies, else why not."""
    egress = _policies(env, src, "Egress")
    if egress and not any(
        _port_matches(rule, port, protocol)
        and (
            not rule.get("to") or any(_peer_matches(env, p, src.namespace, dst) for p in rule["to"])
        )
        for pol in egress
        for rule in pol["spec"].get("egress") or []
    ):
        return f"egress from {src} to {dst}:{port}/{protocol} is not allowed"
    if isinstance(dst, Pod):
        ingress = _policies(env, dst, "Ingress")
        if ingress and not any(
            _port_matches(rule, port, protocol)
            and (
                not rule.get("from")
                or any(_peer_matches(env, p, dst.namespace, src) for p in rule["from"])
            )
            for pol in ingress
            for rule in pol["spec"].get("ingress") or []
        ):
            return f"ingress to {dst}:{port}/{protocol} from {src} is not allowed"
    return None


# ------------------------------------------------------------------------------ helpers


def _workloads(env: Environment) -> Iterator[dict[str, Any]]:
    for d in env.objects:
        if _pod_spec(d) is not None:
            yield d


def _secret_keys(env: Environment, namespace: str, name: str) -> set[str] | None:
    """Keys of Secret namespace/name as it will exist: rendered, or synced by an ExternalSecret."""
    secret = env.find("Secret", name, namespace)
    if secret is not None:
        return set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    for d in env.objects:
        if d.get("kind") != "ExternalSecret" or d["metadata"].get("namespace") != namespace:
            continue
        target = (d.get("spec") or {}).get("target") or {}
        if (target.get("name") or d["metadata"]["name"]) != name:
            continue
        template = (target.get("template") or {}).get("data")
        if template:
            return set(template)
        return {item["secretKey"] for item in d["spec"].get("data") or []}
    return None


def _configmap_keys(env: Environment, namespace: str, name: str) -> set[str] | None:
    cm = env.find("ConfigMap", name, namespace)
    return None if cm is None else set(cm.get("data") or {})


def _mlflow_server(env: Environment) -> dict[str, Any]:
    for d in env.mlflow:
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow":
            return d
    raise AssertionError("mlflow/k8s renders no Deployment mlflow")


def _step_pod(env: Environment, step: Step) -> Pod:
    labels = {"pipelines.kubeflow.org/v2_component": "true", **step.labels}
    return Pod.of(env.ns("pipeline_runner"), labels)


# ================================================================================ contracts


def test_every_env_key_a_container_reads_exists_in_its_namespace(env: Environment) -> None:
    """Problem 1 (and every other key): configMapKeyRef / secretKeyRef / envFrom of every
    rendered container, and every ConfigMap/Secret key a pipeline step reads, exist."""
    missing = []
    for doc in _workloads(env):
        ns = doc["metadata"].get("namespace")
        where = f"{doc['kind']} {ns}/{doc['metadata']['name']}"
        pod = _pod_spec(doc) or {}
        for container in _containers(doc):
            for item in container.get("env") or []:
                ref = item.get("valueFrom") or {}
                for kind, lookup in (
                    ("configMapKeyRef", _configmap_keys),
                    ("secretKeyRef", _secret_keys),
                ):
                    if kind in ref and not ref[kind].get("optional"):
                        keys = lookup(env, ns, ref[kind]["name"])
                        if keys is None or ref[kind]["key"] not in keys:
                            name, key = ref[kind]["name"], ref[kind]["key"]
                            missing.append(f"{where} {container['name']}: {kind} {name}.{key}")
            for src in container.get("envFrom") or []:
                for kind, lookup in (
                    ("configMapRef", _configmap_keys),
                    ("secretRef", _secret_keys),
                ):
                    if (
                        kind in src
                        and not src[kind].get("optional")
                        and lookup(env, ns, src[kind]["name"]) is None
                    ):
                        missing.append(f"{where} {container['name']}: {kind} {src[kind]['name']}")
        for volume in pod.get("volumes") or []:
            if (
                "configMap" in volume
                and _configmap_keys(env, ns, volume["configMap"]["name"]) is None
            ):
                missing.append(f"{where}: volume configMap {volume['configMap']['name']}")
            if "secret" in volume and _secret_keys(env, ns, volume["secret"]["secretName"]) is None:
                missing.append(f"{where}: volume secret {volume['secret']['secretName']}")
    ns = env.ns("pipeline_runner")
    for step in env.steps:
        for cm, key, optional in step.config_env:
            keys = _configmap_keys(env, ns, cm)
            if not optional and (keys is None or key not in keys):
                missing.append(f"step {step.name}: ConfigMap {ns}/{cm} key {key}")
        for secret, key, optional in step.secret_env:
            keys = _secret_keys(env, ns, secret)
            if not optional and (keys is None or (key != "*" and key not in keys)):
                missing.append(f"step {step.name}: Secret {ns}/{secret} key {key}")
    assert not missing, "read but never created:\n  " + "\n  ".join(sorted(set(missing)))


def test_mlflow_k8s_prerequisites_are_rendered_by_the_platform(env: Environment) -> None:
    """Problem 1: scripts/mlflow_k8s.sh stops unless `make platform` created what it checks."""
    script = (REPO / "scripts" / "mlflow_k8s.sh").read_text()
    ns = env.ns("mlflow")
    wanted = re.findall(r"get (configmap|secret) ([a-z0-9-]+) >/dev/null \|\| die", script)
    assert wanted, "mlflow_k8s.sh checks nothing before applying"
    for kind, name in wanted:
        found = (
            _configmap_keys(env, ns, name) if kind == "configmap" else _secret_keys(env, ns, name)
        )
        assert found is not None, (
            f"mlflow_k8s.sh needs {kind} {ns}/{name}; the platform does not render it"
        )


def test_every_mlflow_client_sends_credentials(env: Environment) -> None:
    """Problem 2: the tracking server runs basic auth, so every pod with an MLflow tracking
    URI also gets MLFLOW_TRACKING_USERNAME/PASSWORD from a Secret that exists."""
    server = _mlflow_server(env)
    args = [a for c in _containers(server) if c["name"] == "mlflow" for a in c.get("args") or []]
    if "--app-name=basic-auth" not in args:
        pytest.fail("the MLflow server no longer runs basic auth: revisit this contract")
    ns = env.ns("pipeline_runner")
    problems = []
    for step in env.steps:
        if "MLFLOW_TRACKING_URI" not in step.env_names:
            continue
        creds = {
            k: s
            for s, k, _ in step.secret_env
            if k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
        }
        if set(creds) != {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}:
            problems.append(f"{step.name}: no MLflow credentials from a Secret (HTTP 401)")
            continue
        for key, secret in creds.items():
            keys = _secret_keys(env, ns, secret)
            if keys is None or key not in keys:
                problems.append(f"{step.name}: Secret {ns}/{secret} key {key} is never created")
    assert not problems, "\n".join(problems)
    # The pipelines' MLflow user is an application user, not the server's admin.
    for secret in {
        s for st in env.steps for s, k, _ in st.secret_env if k == "MLFLOW_TRACKING_PASSWORD"
    }:
        es = next(
            d
            for d in env.objects
            if d["kind"] == "ExternalSecret"
            and (d["spec"].get("target", {}).get("name") or d["metadata"]["name"]) == secret
        )
        assert "admin" not in json.dumps(es["spec"]).lower(), (
            f"{secret} must not hold the MLflow admin"
        )


def test_platform_applies_with_one_field_manager_and_forced_conflicts() -> None:
    """Problem 3: a client-side apply followed by a server-side apply of the same objects
    under another field manager is a conflict; every apply is server-side, by one manager,
    forcing conflicts (the platform owns the fields it sets)."""
    script = PLATFORM_SH.read_text()
    applies = [
        line.strip() for line in script.splitlines() if re.search(r'"\$\{k\[@\]\}" apply\b', line)
    ]
    assert applies, "platform.sh applies nothing"
    bad = [
        line
        for line in applies
        if "--server-side" not in line
        or "--force-conflicts" not in line
        or "--field-manager=genops-platform" not in line
    ]
    assert not bad, "applies that can conflict:\n  " + "\n  ".join(bad)


def test_database_credentials_follow_rotation(env: Environment) -> None:
    """Problem 4: no database password is copied into a Kubernetes Secret at render time;
    Secrets with database credentials are ExternalSecrets from Secrets Manager that refresh,
    authenticated by Pod Identity, and applications use their own users, not the master."""
    literal = [
        f"Secret {d['metadata'].get('namespace')}/{d['metadata']['name']}"
        for d in env.objects
        if d["kind"] == "Secret" and re.search(r"postgres(ql)?://[^:@/]+:[^@]+@", json.dumps(d))
    ]
    assert not literal, f"database passwords rendered into manifests: {literal}"
    assert PASSWORD not in json.dumps(env.objects), "GENOPS_DB_PASSWORD leaked into the manifests"

    stores = {
        (d["kind"], d["metadata"]["name"]): d
        for d in env.objects
        if d["kind"] in ("ClusterSecretStore", "SecretStore")
    }
    assert stores, "no SecretStore: nothing syncs credentials from Secrets Manager"
    for (_, name), store in stores.items():
        aws = store["spec"]["provider"]["aws"]
        assert aws["service"] == "SecretsManager", name
        assert "auth" not in aws, f"{name}: credentials must come from Pod Identity, not a Secret"
    master = str(env.outputs["database_secret_arn"])
    app_secrets = env.outputs.get("database_app_secret_arns") or {}
    assert set(app_secrets) >= {"mlflow", "optuna", "kfp"}, "per-application database users"
    externals = [d for d in env.objects if d["kind"] == "ExternalSecret"]
    users_of_master = []
    for es in externals:
        spec = es["spec"]
        assert spec.get("refreshInterval") not in (None, "0", "0s"), (
            f"{es['metadata']['name']} never refreshes"
        )
        assert (spec["secretStoreRef"]["kind"], spec["secretStoreRef"]["name"]) in stores
        refs = [item["remoteRef"]["key"] for item in spec.get("data") or []]
        refs += [item["extract"]["key"] for item in spec.get("dataFrom") or [] if "extract" in item]
        if master in refs:
            users_of_master.append(f"{es['metadata'].get('namespace')}/{es['metadata']['name']}")
    # Only the database bootstrap Job may use the master user (it creates the app users).
    assert all(name.endswith("/genops-db-admin") for name in users_of_master), users_of_master


def test_pipeline_steps_cannot_read_secrets_they_do_not_mount(env: Environment) -> None:
    """Problem 5: the service account pipeline pods run as may not read Secrets (nor exec
    into pods that hold them); a step gets only the Secret keys mounted into it."""
    sa = env.runner_service_account
    ns = sa[0]
    leaks = [
        f"{verb} secrets in {target}"
        for target in {ns, env.ns("mlflow"), env.ns("model_server")}
        for verb in ("get", "list", "watch")
        if _can(env, sa, verb, "", "secrets", target)
    ]
    if _can(env, sa, "create", "", "pods/exec", ns):
        leaks.append(f"create pods/exec in {ns}")
    assert not leaks, f"pipeline pods ({sa[0]}/{sa[1]}) can {leaks}"
    assert env.outputs["service_accounts"]["pipeline_runner"] == f"{sa[0]}/{sa[1]}", (
        "the Pod Identity association must bind the service account the steps run as"
    )
    # Database credentials reach only the steps that open the Optuna study.
    for step in env.steps:
        if not step.name.startswith("tune-"):
            assert "OPTUNA_STORAGE_URL" not in step.env_names, step.name


NEEDED = "needed"


def _needed_flows(env: Environment) -> list[tuple[str, Pod, Pod | str, int, str]]:
    """(what, source, destination, port, protocol) the platform needs open."""
    vpc_host = str(ipaddress.ip_network(str(env.outputs.get("vpc_cidr", "10.40.0.0/16")))[10])
    mlflow_labels = _pod_labels(_mlflow_server(env))
    mlflow_pod = Pod.of(env.ns("mlflow"), mlflow_labels)
    dns = Pod.of(KUBE_DNS[0], KUBE_DNS[1])
    flows: list[tuple[str, Pod, Pod | str, int, str]] = []
    for step in env.steps:
        pod = _step_pod(env, step)
        flows += [
            (f"{step.name} -> MLflow", pod, mlflow_pod, 5000, "TCP"),
            (f"{step.name} -> DNS", pod, dns, 53, "UDP"),
            (f"{step.name} -> S3", pod, S3_IP, 443, "TCP"),
            (f"{step.name} -> Pod Identity agent", pod, POD_IDENTITY_AGENT, 80, "TCP"),
            (
                f"{step.name} -> KFP API server",
                pod,
                Pod.of(env.ns("pipeline_runner"), {"app": "ml-pipeline"}),
                8887,
                "TCP",
            ),
        ]
        if "OPTUNA_STORAGE_URL" in step.env_names:
            flows.append((f"{step.name} -> RDS", pod, vpc_host, 5432, "TCP"))
        if step.name.startswith(("deploy", "smoke-test", "rollback")):
            flows.append((f"{step.name} -> Kubernetes API", pod, vpc_host, 443, "TCP"))
            predictor = Pod.of(
                env.ns("model_server"), {"serving.kserve.io/inferenceservice": "adult-synthesizer"}
            )
            flows.append((f"{step.name} -> model server", pod, predictor, 8080, "TCP"))
    for labels in (mlflow_labels,):
        flows += [
            ("MLflow -> RDS", Pod.of(env.ns("mlflow"), labels), vpc_host, 5432, "TCP"),
            ("MLflow -> S3", Pod.of(env.ns("mlflow"), labels), S3_IP, 443, "TCP"),
            ("MLflow -> DNS", Pod.of(env.ns("mlflow"), labels), dns, 53, "UDP"),
            (
                "MLflow -> Pod Identity agent",
                Pod.of(env.ns("mlflow"), labels),
                POD_IDENTITY_AGENT,
                80,
                "TCP",
            ),
        ]
    predictor = Pod.of(
        env.ns("model_server"), {"serving.kserve.io/inferenceservice": "adult-synthesizer"}
    )
    flows += [
        ("model server -> S3 (storage initializer)", predictor, S3_IP, 443, "TCP"),
        ("model server -> Pod Identity agent", predictor, POD_IDENTITY_AGENT, 80, "TCP"),
        ("model server -> DNS", predictor, dns, 53, "UDP"),
    ]
    return flows


def test_every_namespace_is_default_deny(env: Environment) -> None:
    """Problem 5: the VPC CNI enforces NetworkPolicies; each genops namespace denies all
    ingress and egress unless a policy allows the flow."""
    missing = []
    for key in ("pipeline_runner", "mlflow", "model_server"):
        ns = env.ns(key)
        deny = [
            d
            for d in env.objects
            if d["kind"] == "NetworkPolicy"
            and d["metadata"].get("namespace") == ns
            and d["spec"].get("podSelector") == {}
            and set(d["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
            and not d["spec"].get("ingress")
            and not d["spec"].get("egress")
        ]
        if not deny:
            missing.append(ns)
    assert not missing, f"no default-deny NetworkPolicy in {missing}"
    # A pipeline step may not reach the MLflow database port on other pods, nor the
    # model server the metadata of another namespace: spot checks that deny bites.
    step = _step_pod(env, env.steps[0])
    assert _allowed(env, step, Pod.of(env.ns("mlflow"), {"app": "other"}), 5000) is not None


def test_every_needed_flow_is_allowed(env: Environment) -> None:
    """Problem 5: with default deny, every port a pod talks to must be open both ways."""
    blocked = [
        f"{what}: {why}"
        for what, src, dst, port, proto in _needed_flows(env)
        if (why := _allowed(env, src, dst, port, proto))
    ]
    assert not blocked, "\n".join(sorted(set(blocked)))


def test_database_accepts_only_its_clients(env: Environment) -> None:
    """Problem 5: the RDS security group admits only the database clients' security group,
    attached by SecurityGroupPolicy to exactly the pods that hold database credentials."""
    client_sg = env.outputs.get("database_client_security_group_id")
    assert client_sg, "terraform outputs no database client security group"
    assert client_sg != env.outputs.get("cluster_security_group_id"), (
        "the whole cluster SG is too wide"
    )
    policies = [d for d in env.objects if d["kind"] == "SecurityGroupPolicy"]
    covered = {
        d["metadata"]["namespace"]
        for d in policies
        if client_sg in d["spec"]["securityGroups"]["groupIds"]
    }
    assert {env.ns("mlflow"), env.ns("pipeline_runner")} <= covered, covered
    in_pipelines = [d for d in policies if d["metadata"]["namespace"] == env.ns("pipeline_runner")]
    for step in env.steps:
        labels = dict(_step_pod(env, step).labels)
        selected = any(_matches(d["spec"]["podSelector"], labels) for d in in_pipelines)
        assert selected == ("OPTUNA_STORAGE_URL" in step.env_names), (
            f"{step.name}: database SG {'given' if selected else 'missing'}"
        )


def test_deploy_step_can_manage_inference_services(env: Environment) -> None:
    """Problem 6: the deploy step creates or replaces, then polls, an InferenceService in the
    serving namespace as the pipeline pods' service account."""
    sa = env.runner_service_account
    serving = env.ns("model_server")
    missing = [
        verb
        for verb in ("create", "get", "update")
        if not _can(env, sa, verb, "serving.kserve.io", "inferenceservices", serving)
    ]
    assert not missing, f"{sa[0]}/{sa[1]} cannot {missing} inferenceservices in {serving}"


def test_every_model_uri_the_deploy_step_produces_is_fetchable(env: Environment) -> None:
    """Problem 6: whatever URI MLflow hands the deploy step becomes an s3:// storageUri under
    the MLflow artifacts prefix, read by a service account that exists and is bound (Pod
    Identity) to the model server's role, served by a runtime that exists."""
    kserve = _kserve_module()
    destination = str(env.outputs["mlflow_artifacts_destination"])
    serving_ns, serving_sa = str(env.outputs["service_accounts"]["model_server"]).split("/")
    runtimes = {
        d["metadata"]["name"]: d
        for d in env.objects
        if d["kind"] in ("ServingRuntime", "ClusterServingRuntime")
    }
    for uri, isvc in env.inference_services.items():
        assert isinstance(isvc, dict), f"the deploy step cannot deploy {uri}: {isvc}"
        kserve.validate_manifest(isvc)
        predictor = isvc["spec"]["predictor"]
        storage = predictor["model"]["storageUri"]
        assert storage.startswith(destination), f"{uri} -> {storage}: outside {destination}"
        assert isvc["metadata"]["namespace"] == serving_ns
        assert predictor["serviceAccountName"] == serving_sa
        assert env.find("ServiceAccount", serving_sa, serving_ns), (
            "serving service account not rendered"
        )
        runtime = predictor["model"].get("runtime")
        assert runtime in runtimes, f"runtime {runtime} is not rendered by the platform"


def test_kfp_metadata_and_artifacts_use_rds_and_s3(env: Environment) -> None:
    """Problem 7: no in-cluster MySQL/PostgreSQL/MinIO/SeaweedFS for KFP; its database is on
    RDS (own user, synced Secret) and its object store is the artifacts bucket."""
    kustomization = yaml.safe_load(
        (PLATFORM / "upstream" / "kfp" / "kustomization.yaml").read_text()
    )
    resources = " ".join(kustomization.get("resources") or [])
    for bundled in (
        "third-party/mysql",
        "third-party/postgresql",
        "third-party/minio",
        "third-party/seaweedfs",
        "env/platform-agnostic?",
        "env/platform-agnostic/",
    ):
        assert bundled not in resources, f"KFP installs its own {bundled}"
    install = env.find("ConfigMap", "pipeline-install-config", env.ns("pipeline_runner"))
    assert install, "the platform renders no pipeline-install-config for KFP"
    assert install["data"]["dbType"] == "postgres"
    assert install["data"]["postgresHost"] == env.outputs["database_address"]
    assert install["data"]["bucketName"] == env.outputs["artifacts_bucket"]
    assert _secret_keys(env, env.ns("pipeline_runner"), "postgres-secret-extended") == {
        "username",
        "password",
    }


def test_vpc_endpoints_cover_what_pods_call(env: Environment) -> None:
    """Problem 8: S3 (gateway) and ECR api/dkr, STS, CloudWatch Logs (interface) endpoints."""
    services = set(env.outputs.get("vpc_endpoint_services") or [])
    region = env.outputs["region"]
    wanted = {f"com.amazonaws.{region}.{s}" for s in ("s3", "ecr.api", "ecr.dkr", "sts", "logs")}
    assert wanted <= services, f"missing VPC endpoints: {sorted(wanted - services)}"


def test_kfp_backend_matches_the_sdk() -> None:
    """Problem 9: the KFP backend installed is the release of the SDK that compiles."""
    from importlib.metadata import version

    versions = dict(
        line.split("=", 1)
        for line in (PLATFORM / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert versions["KFP_VERSION"] == version("kfp"), (versions["KFP_VERSION"], version("kfp"))


def test_upstream_manifests_are_pinned_by_commit_and_checksum() -> None:
    """Problem 9: every upstream resource names a commit (or is a release asset); files
    fetched over HTTP carry a sha256 that platform.sh verifies before applying. A file whose
    checksum could not be recorded yet is marked UNLOCKED, and platform.sh must refuse it."""
    sums_file = PLATFORM / "upstream" / "checksums.sha256"
    script = PLATFORM_SH.read_text()
    sums = {}
    if sums_file.is_file():
        for line in sums_file.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                digest, url = line.split()
                sums[url] = digest
    problems = []
    refuses_unlocked = "UNLOCKED" in script and "lock_upstream.sh" in script
    for k in sorted((PLATFORM / "upstream").glob("*/kustomization.yaml")):
        for resource in yaml.safe_load(k.read_text()).get("resources") or []:
            if not resource.startswith("https://"):
                continue
            if "?ref=" in resource:
                if not re.search(r"\?ref=[0-9a-f]{40}$", resource):
                    problems.append(f"{k.parent.name}: {resource} is not pinned to a commit")
            else:
                release = re.search(
                    r"^https://github\.com/[^/]+/[^/]+/releases/download/v?[0-9][^/]*/", resource
                )
                if not release and not re.search(r"/[0-9a-f]{40}/", resource):
                    problems.append(f"{k.parent.name}: {resource} is not pinned to a commit")
                digest = sums.get(resource, "")
                if digest == "UNLOCKED" and refuses_unlocked:
                    continue
                if not re.fullmatch(r"[0-9a-f]{64}", digest):
                    problems.append(
                        f"{k.parent.name}: {resource} has no sha256 in checksums.sha256"
                    )
    assert not problems, "\n".join(problems)
    stage = (REPO / "k8s" / "scripts" / "stage_upstream.py").read_text()
    assert "stage_upstream.py" in script, "platform.sh must apply only staged (checked) copies"
    assert "checksums.sha256" in stage and "hashlib.sha256" in stage and "UNLOCKED" in stage


def test_every_image_comes_from_the_environments_ecr_by_digest(env: Environment) -> None:
    """Problem 9: every container image (platform, MLflow, model server runtime, pipeline
    steps, and the upstream installs through the mirror lock) is <env registry>/...@sha256."""
    registry = re.escape(str(env.outputs["image_registry"]))
    pinned = re.compile(rf"^{registry}/[a-z0-9._/-]+@sha256:[0-9a-f]{{64}}$")
    images = {}
    for doc in _workloads(env):
        meta = doc["metadata"]
        for c in _containers(doc):
            images[f"{doc['kind']} {meta.get('namespace')}/{meta['name']} {c['name']}"] = c["image"]
    for d in env.objects:
        if d["kind"] in ("ServingRuntime", "ClusterServingRuntime"):
            for c in d["spec"].get("containers") or []:
                images[f"{d['kind']} {d['metadata']['name']} {c['name']}"] = c["image"]
    for step in env.steps:
        images[f"step {step.name}"] = step.image
    upstream = PLATFORM / "upstream" / "images.txt"
    mirrored = env.lock.get("upstream", {})
    if upstream.is_file():
        for line in upstream.read_text().splitlines():
            ref = line.split("#", 1)[0].strip()
            if ref:
                images[f"upstream {ref}"] = mirrored.get(ref, ref)
    else:
        images["upstream images"] = "k8s/platform/upstream/images.txt is missing"
    bad = sorted(f"{where}: {image}" for where, image in images.items() if not pinned.match(image))
    assert not bad, (
        f"{len(bad)} images not pulled from {env.outputs['image_registry']} by digest:\n  "
        + "\n  ".join(bad)
    )


def test_render_needs_no_database_password(tmp_path: Path) -> None:
    """Problem 4: render without GENOPS_DB_PASSWORD (nothing is copied any more)."""
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(OUTPUTS.read_text())
    environ = {k: v for k, v in os.environ.items() if k != "GENOPS_DB_PASSWORD"}
    environ["GENOPS_IMAGES_LOCK"] = str(IMAGES_LOCK)
    result = subprocess.run(
        [
            sys.executable,
            str(RENDER_PY),
            "--outputs",
            str(outputs_file),
            "--out",
            str(tmp_path / "o"),
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "get-secret-value" not in PLATFORM_SH.read_text(), "platform.sh still copies a password"


def test_cluster_version_is_held_for_the_pinned_autoscaler() -> None:
    """Problem 10: the Cluster Autoscaler is pinned to the cluster's Kubernetes minor, so the
    control plane must not be upgraded by AWS at the end of standard support (EXTENDED);
    terraform test asserts the planned value, the fixture mirrors the output."""
    outputs = _outputs()
    assert outputs["environment_summary"].get("cluster_support_type") == "EXTENDED"
    versions = dict(
        line.split("=", 1)
        for line in (PLATFORM / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    minor = str(outputs["kubernetes_version"])
    assert versions["CLUSTER_AUTOSCALER_VERSION"].lstrip("v").startswith(minor + ".")
