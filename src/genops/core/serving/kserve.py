"""Cluster deployment target: a KServe ``InferenceService`` for a registered model version.

By default the manifest serves the MLflow model directory straight from S3 with the
platform's ServingRuntime ``genops-server`` (k8s/platform/base/50-serving): KServe's storage
initializer downloads ``storageUri`` into ``/mnt/models`` and the runtime runs genops' own
model server there (``genops serve --model-uri=/mnt/models``, port 8080: ``/health``,
``/metadata``, ``/generate``), the same server as the local target. Its model format is
``genops`` and it speaks neither of KServe's inference protocols, so no ``protocolVersion``
is set. In RawDeployment mode the predictor answers inside the cluster at
:func:`predictor_url`. :func:`render_inference_service` builds the manifest as plain data,
:func:`validate_manifest` checks it against the InferenceService CRD schema shipped in
``crds/`` (no cluster needed), :func:`to_yaml` prints it and :func:`apply` creates or
replaces it through the Kubernetes API.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import yaml

__all__ = [
    "API_VERSION",
    "GPU_NODE_SELECTOR",
    "GPU_RESOURCE",
    "KIND",
    "KubernetesNotConfigured",
    "apply",
    "crd_schema",
    "endpoint_url",
    "manifest_problems",
    "predictor_url",
    "render_inference_service",
    "storage_uri_for",
    "to_yaml",
    "validate_manifest",
]

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
CRD_FILE = "serving.kserve.io_inferenceservices.yaml"

# k8s/platform's ServingRuntime genops-server: `genops serve` in the genops serving image.
MODEL_FORMAT = "genops"  # an MLflow pyfunc model whose python model is a genops workload's
SCALE_METRICS = ("concurrency", "rps", "cpu", "memory")
DEFAULT_RUNTIME = "genops-server"
PROTOCOL_VERSION: str | None = None  # genops serve speaks its own REST API, not v1/v2
MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts storageUri
SERVER_PORT = 8080  # the runtime's containerPort; KServe's Service maps port 80 to it
DEFAULT_NAMESPACE = "genops-serving"
DEFAULT_SERVICE_ACCOUNT = "genops-model-server"
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
GPU_RESOURCE = "nvidia.com/gpu"
# The GPU node group's taint and label (terraform/modules/node-groups).
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
GPU_NODE_SELECTOR = {"genops.io/node-pool": "gpu"}
COMMON_LABELS = {"app.kubernetes.io/part-of": "genops", "app.kubernetes.io/component": "serving"}

# RFC 1035 label, as KServe requires for InferenceService names.
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>\S+)$")
# Kubernetes resource quantity (the pattern the CRD states for requests and limits).
_QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class KubernetesNotConfigured(RuntimeError):
    """Neither an in-cluster service account nor a kubeconfig is available."""


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        upper = f"..{high}" if high is not None else " or more"
        raise ValueError(f"{name} must be in {low}{upper}, got {value}")
    return value


def _check_resources(resources: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    unknown = sorted(set(resources) - {"requests", "limits"})
    if unknown:
        raise ValueError(f"resources: unknown key(s) {unknown}; use 'requests' and 'limits'")
    out: dict[str, dict[str, Any]] = {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"resources.{section} must be a mapping, got {values!r}")
        for key, quantity in values.items():
            if isinstance(quantity, bool) or not (
                isinstance(quantity, int)
                or (isinstance(quantity, str) and _QUANTITY.match(quantity))
            ):
                raise ValueError(
                    f"resources.{section}.{key}: {quantity!r} is not a Kubernetes quantity "
                    "(e.g. 500m, 2, 4Gi)"
                )
        if values:
            out[section] = dict(values)
    return out


def render_inference_service(
    name: str,
    storage_uri: str,
    namespace: str = DEFAULT_NAMESPACE,
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
    resources: Mapping[str, Any] | None = None,
    gpu: bool = False,
    canary_traffic_percent: int | None = None,
    runtime_version: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    runtime: str | None = DEFAULT_RUNTIME,
    model_format: str = MODEL_FORMAT,
    protocol_version: str | None = PROTOCOL_VERSION,
    args: Sequence[str] | None = None,
    scale_metric: str | None = None,
    scale_target: int | None = None,
) -> dict[str, Any]:
    """A ``serving.kserve.io/v1beta1`` InferenceService serving ``storage_uri``.

    ``storage_uri`` is the registered model version's artifact location on S3 (the folder
    holding ``MLmodel``; see :func:`storage_uri_for`). ``resources`` has ``requests`` and
    ``limits`` (default :data:`DEFAULT_RESOURCES`); ``gpu`` adds one ``nvidia.com/gpu`` to the
    limits, a toleration for the GPU nodes' taint and their node selector.
    ``canary_traffic_percent`` (0..100) sends that share of traffic to this revision.
    ``runtime_version`` replaces the runtime image's tag (KServe rewrites the text after the
    image's last ':'; the platform's runtimes pull by digest, so leave it unset for them). A
    workload may serve another
    ``model_format`` with another ``runtime`` and container ``args`` (the text model: the
    Hugging Face runtime, vLLM on GPU); ``scale_metric`` (concurrency, rps, cpu, memory) and
    ``scale_target`` set the autoscaler's target. Raises ``ValueError`` on any value KServe or
    Kubernetes would refuse.
    """
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise ValueError(
            f"name {name!r} must be a DNS-1035 label: lower-case letters, digits and '-', "
            "starting with a letter, at most 63 characters"
        )
    if not isinstance(storage_uri, str) or not _S3_URI.match(storage_uri):
        raise ValueError(
            f"storage_uri {storage_uri!r} must be an s3://bucket/key URI (the model version's "
            "artifact location on S3); KServe's storage initializer downloads it"
        )
    if not namespace or not isinstance(namespace, str):
        raise ValueError("namespace must be a non-empty string")
    if not service_account or not isinstance(service_account, str):
        raise ValueError("service_account must be a non-empty string")
    _check_int("min_replicas", min_replicas, 0)
    _check_int("max_replicas", max_replicas, 1)
    if max_replicas < min_replicas:
        raise ValueError(f"max_replicas ({max_replicas}) is below min_replicas ({min_replicas})")
    if canary_traffic_percent is not None:
        _check_int("canary_traffic_percent", canary_traffic_percent, 0, 100)
    if runtime_version is not None and (
        not isinstance(runtime_version, str) or not runtime_version
    ):
        raise ValueError("runtime_version must be a non-empty string when given")

    checked = _check_resources(DEFAULT_RESOURCES if resources is None else resources)
    if gpu:
        checked.setdefault("limits", {})[GPU_RESOURCE] = 1
    if scale_metric is not None and scale_metric not in SCALE_METRICS:
        raise ValueError(f"scale_metric {scale_metric!r}: expected one of {SCALE_METRICS}")
    if scale_target is not None:
        _check_int("scale_target", scale_target, 1)
    model: dict[str, Any] = {"modelFormat": {"name": model_format}}
    if protocol_version:
        model["protocolVersion"] = protocol_version
    model["storageUri"] = storage_uri
    if args:
        model["args"] = [str(a) for a in args]
    if runtime:
        model["runtime"] = runtime
    if runtime_version:
        model["runtimeVersion"] = runtime_version
    if checked:
        model["resources"] = checked
    predictor: dict[str, Any] = {
        "serviceAccountName": service_account,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "model": model,
    }
    if canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = canary_traffic_percent
    if scale_metric is not None:
        predictor["scaleMetric"] = scale_metric
    if scale_target is not None:
        predictor["scaleTarget"] = scale_target
    if gpu:
        predictor["tolerations"] = [dict(GPU_TOLERATION)]
        predictor["nodeSelector"] = dict(GPU_NODE_SELECTOR)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**COMMON_LABELS, "app.kubernetes.io/name": name, **dict(labels or {})},
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def predictor_url(name: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The in-cluster URL of an InferenceService's predictor in KServe's RawDeployment mode:
    its Service ``<name>-predictor`` (port 80 -> the runtime's 8080). No Service is named
    ``<name>`` itself in that mode (KServe v0.15.2 raw ingress reconciler)."""
    return f"http://{name}-predictor.{namespace}.svc.cluster.local"


def endpoint_url(obj: Mapping[str, Any]) -> str:
    """Where a Ready InferenceService answers inside the cluster: ``status.address.url``
    (KServe writes the predictor Service's host there), else :func:`predictor_url`."""
    address = ((obj.get("status") or {}).get("address") or {}).get("url")
    if isinstance(address, str) and address:
        return address.rstrip("/")
    meta = obj.get("metadata") or {}
    return predictor_url(str(meta.get("name")), str(meta.get("namespace") or DEFAULT_NAMESPACE))


def resolve_storage_uri(uri: str, artifacts_destination: str | None) -> str:
    """The ``s3://`` location KServe's storage initializer downloads for a model version's
    download URI. Behind MLflow's artifact proxy (``--serve-artifacts``) the URI is
    ``mlflow-artifacts:/<path>`` (or ``mlflow-artifacts://<host>/<path>``), which is
    ``<artifacts destination>/<path>`` on the store; ``s3://`` URIs pass through."""
    from urllib.parse import urlparse

    if _S3_URI.match(uri):
        return uri
    parsed = urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":
        base = (artifacts_destination or "").rstrip("/")
        if not _S3_URI.match(base + "/x"):
            raise ValueError(
                f"{uri!r} is behind MLflow's artifact proxy; set MLFLOW_ARTIFACTS_DESTINATION "
                f"to the server's s3:// artifacts destination (got {artifacts_destination!r})"
            )
        return f"{base}/{parsed.path.lstrip('/')}"
    raise ValueError(f"{uri!r}: KServe's storage initializer cannot fetch this model URI")


def to_yaml(manifest: Mapping[str, Any]) -> str:
    """The manifest as YAML, keys in the order they were built (kubectl-ready)."""
    return yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)


@cache
def _crd() -> dict[str, Any]:
    text = (importlib_resources.files("genops.core.serving") / "crds" / CRD_FILE).read_text("utf-8")
    crd: dict[str, Any] = yaml.safe_load(text)
    return crd


def crd_schema(version: str = VERSION) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the shipped InferenceService CRD (an excerpt: crds/README.md)."""
    for entry in _crd()["spec"]["versions"]:
        if entry["name"] == version:
            return copy.deepcopy(entry["schema"]["openAPIV3Schema"])
    raise KeyError(f"the shipped CRD has no version {version!r}")


def _unknown_fields(value: Any, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    """Fields the schema does not declare, as the API server's strict validation finds them."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}"
            if properties is not None and key in properties:
                yield from _unknown_fields(item, properties[key], where)
            elif isinstance(additional, Mapping):
                yield from _unknown_fields(item, additional, where)
            elif properties is not None:
                yield where
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{i}]")


def manifest_problems(manifest: Mapping[str, Any]) -> list[str]:
    """Every way ``manifest`` breaks the CRD schema (empty when it is valid).

    JSON Schema checks (types, required fields, enums, quantity patterns) plus a strict
    check for fields the schema does not declare, which the API server would drop or,
    under strict field validation, refuse.
    """
    import jsonschema

    problems: list[str] = []
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != KIND:
        problems.append(f"$: expected apiVersion {API_VERSION} and kind {KIND}")
    schema = crd_schema()
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        problems.append(f"${where}: {error.message}")
    problems += [f"{path}: unknown field" for path in _unknown_fields(manifest, schema, "$")]
    return problems


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` listing every problem :func:`manifest_problems` finds."""
    problems = manifest_problems(manifest)
    if problems:
        raise ValueError(
            "InferenceService does not match the CRD schema:\n  " + "\n  ".join(problems)
        )


def storage_uri_for(name: str, version: str | int, tracking_uri: str | None = None) -> str:
    """Where a registered model version's files are (``s3://...`` on the cluster's store)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return str(client.get_model_version_download_uri(name, str(version)))


def _load_kube_config() -> None:
    from kubernetes import config

    try:
        config.load_incluster_config()
        return
    except config.ConfigException as in_cluster:
        reason = str(in_cluster)
    try:
        config.load_kube_config()
    except (config.ConfigException, FileNotFoundError, TypeError) as exc:
        raise KubernetesNotConfigured(
            "No Kubernetes cluster is configured: not running in a pod with a service account "
            f"({reason}), and no usable kubeconfig ({exc}). Set KUBECONFIG or write "
            "~/.kube/config, or write the manifest with to_yaml() and apply it with kubectl."
        ) from exc


def apply(manifest: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """Create the InferenceService, or replace it when one of that name exists.

    Uses the in-cluster service account when running in a pod, else the kubeconfig; the
    server validates strictly (unknown fields are an error). Returns the stored object.
    """
    validate_manifest(manifest)
    _load_kube_config()
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    body = copy.deepcopy(dict(manifest))
    ns = namespace or body["metadata"].get("namespace") or DEFAULT_NAMESPACE
    body["metadata"]["namespace"] = ns
    name = body["metadata"]["name"]
    api = client.CustomObjectsApi()
    try:
        created: dict[str, Any] = api.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, body, field_validation="Strict"
        )
        return created
    except ApiException as exc:
        if exc.status != 409:
            raise
    current = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    replaced: dict[str, Any] = api.replace_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name, body, field_validation="Strict"
    )
    return replaced


def is_ready(obj: Mapping[str, Any], generation: int | None = None) -> bool:
    """An InferenceService whose Ready condition is True for ``generation`` (or later)."""
    status = obj.get("status") or {}
    if generation is not None and int(status.get("observedGeneration", -1)) < generation:
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def wait_ready(
    name: str, namespace: str, generation: int | None = None, timeout: float = 900.0
) -> dict[str, Any]:
    """Poll until the InferenceService is Ready for the applied generation (a replaced
    service's old revision must not pass a smoke test meant for the new one)."""
    import time

    _load_kube_config()
    from kubernetes import client

    api = client.CustomObjectsApi()
    deadline = time.monotonic() + timeout
    while True:
        obj: dict[str, Any] = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        if is_ready(obj, generation):
            return obj
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"InferenceService {namespace}/{name} not Ready after {timeout:.0f} s"
            )
        time.sleep(10)
