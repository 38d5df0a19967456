"""KServe InferenceService manifests, checked against the CRD schema shipped in the package."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from genops.core.serving import kserve
from genops.core.serving.kserve import (
    GPU_RESOURCE,
    KubernetesNotConfigured,
    crd_schema,
    manifest_problems,
    render_inference_service,
    to_yaml,
    validate_manifest,
)

STORAGE = "s3://genops-artifacts/mlflow-artifacts/3/models/m-0123abcd/artifacts"

VARIANTS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "gpu": {"gpu": True, "runtime_version": "1.6.1"},
    "canary": {"canary_traffic_percent": 10},
    "gpu-canary-scaled": {
        "gpu": True,
        "canary_traffic_percent": 25,
        "min_replicas": 0,
        "max_replicas": 4,
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "8Gi"}},
        "labels": {"genops.io/model-version": "7"},
        "annotations": {"genops.io/model-uri": "models:/adult-synthesizer/7"},
    },
}


def render(**overrides: Any) -> dict[str, Any]:
    return render_inference_service("adult-synthesizer", STORAGE, **overrides)


def test_the_shipped_crd_is_kserves_inferenceservice() -> None:
    folder = resources.files("genops.core.serving") / "crds"
    crd = yaml.safe_load((folder / kserve.CRD_FILE).read_text("utf-8"))
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "inferenceservices.serving.kserve.io"
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1beta1"]
    readme = (folder / "README.md").read_text("utf-8")
    assert "kserve/kserve" in readme and "047112c8916ef527b7a4b4090effdb1cbc5be29c" in readme
    schema = crd_schema()
    predictor = schema["properties"]["spec"]["properties"]["predictor"]["properties"]
    for field in ("serviceAccountName", "canaryTrafficPercent", "minReplicas", "maxReplicas"):
        assert field in predictor, field
    model = predictor["model"]["properties"]
    assert {"modelFormat", "storageUri", "runtime", "protocolVersion", "resources"} <= set(model)
    assert schema["properties"]["spec"]["required"] == ["predictor"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_matches_the_crd_schema(variant: str) -> None:
    manifest = render(**VARIANTS[variant])
    jsonschema.Draft7Validator(crd_schema()).validate(manifest)
    assert manifest_problems(manifest) == []
    validate_manifest(manifest)
    assert yaml.safe_load(to_yaml(manifest)) == manifest


def test_cpu_manifest_serves_the_mlflow_model_from_s3() -> None:
    manifest = render()
    assert (manifest["apiVersion"], manifest["kind"]) == (
        "serving.kserve.io/v1beta1",
        "InferenceService",
    )
    assert manifest["metadata"]["namespace"] == "genops-serving"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "adult-synthesizer"
    predictor = manifest["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "genops-model-server"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    model = predictor["model"]
    # The platform's runtime genops-server: genops serve, which speaks no KServe protocol.
    assert model["modelFormat"] == {"name": "genops"}
    assert "protocolVersion" not in model
    assert model["runtime"] == "genops-server"
    assert model["storageUri"] == STORAGE
    assert model["resources"] == kserve.DEFAULT_RESOURCES
    assert "runtimeVersion" not in model
    for absent in ("tolerations", "nodeSelector", "canaryTrafficPercent"):
        assert absent not in predictor
    assert GPU_RESOURCE not in model["resources"]["limits"]


def test_gpu_manifest_asks_for_one_gpu_and_lands_on_gpu_nodes() -> None:
    manifest = render(gpu=True, runtime_version="1.6.1")
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"]["resources"]["limits"][GPU_RESOURCE] == 1
    assert predictor["model"]["runtimeVersion"] == "1.6.1"
    assert predictor["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert predictor["nodeSelector"] == {"genops.io/node-pool": "gpu"}
    # The defaults are not mutated by a GPU render.
    assert GPU_RESOURCE not in kserve.DEFAULT_RESOURCES["limits"]
    assert GPU_RESOURCE not in render()["spec"]["predictor"]["model"]["resources"]["limits"]


def test_canary_and_user_labels() -> None:
    manifest = render(**VARIANTS["gpu-canary-scaled"])
    predictor = manifest["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 4)
    assert predictor["model"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "8Gi", GPU_RESOURCE: 1},
    }
    assert manifest["metadata"]["labels"]["genops.io/model-version"] == "7"
    assert manifest["metadata"]["annotations"] == {
        "genops.io/model-uri": "models:/adult-synthesizer/7"
    }
    assert render(canary_traffic_percent=0)["spec"]["predictor"]["canaryTrafficPercent"] == 0


@pytest.mark.parametrize(
    "uri",
    [
        "gs://bucket/model",
        "file:///tmp/mlartifacts/1/models/m-1/artifacts",
        "/tmp/model",
        "models:/adult-synthesizer@champion",
        "s3://",
        "s3://bucket",
        "s3://bucket/",
        "S3://bucket/model",
        "s3://Bad_Bucket/model",
    ],
)
def test_storage_uri_must_be_an_s3_object_path(uri: str) -> None:
    with pytest.raises(ValueError, match=r"must be an s3://bucket/key URI"):
        render_inference_service("adult-synthesizer", uri)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"canary_traffic_percent": 150}, r"canary_traffic_percent must be in 0\.\.100, got 150"),
        ({"canary_traffic_percent": -1}, r"canary_traffic_percent must be in 0\.\.100"),
        ({"canary_traffic_percent": True}, "canary_traffic_percent must be an integer"),
        ({"canary_traffic_percent": 12.5}, "canary_traffic_percent must be an integer"),
        ({"min_replicas": 3, "max_replicas": 2}, r"max_replicas \(2\) is below min_replicas"),
        ({"max_replicas": 0}, "max_replicas must be in 1 or more"),
        ({"resources": {"limits": {"cpu": "2 cores"}}}, "not a Kubernetes quantity"),
        ({"resources": {"limit": {"cpu": "2"}}}, r"unknown key\(s\) \['limit'\]"),
        ({"runtime_version": ""}, "runtime_version must be a non-empty string"),
        ({"service_account": ""}, "service_account must be a non-empty string"),
    ],
)
def test_bad_settings_raise_before_any_manifest(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(**overrides)


@pytest.mark.parametrize("name", ["Adult", "adult_synth", "1adult", "adult-", "a" * 64, ""])
def test_name_must_be_a_dns_label(name: str) -> None:
    with pytest.raises(ValueError, match="DNS-1035 label"):
        render_inference_service(name, STORAGE)


def _broken(change: str) -> dict[str, Any]:
    manifest = copy.deepcopy(render(gpu=True, canary_traffic_percent=10))
    predictor = manifest["spec"]["predictor"]
    if change == "no predictor":
        del manifest["spec"]["predictor"]
    elif change == "model format without name":
        predictor["model"]["modelFormat"] = {"version": "1"}
    elif change == "canary as a string":
        predictor["canaryTrafficPercent"] = "10"
    elif change == "bad quantity":
        predictor["model"]["resources"]["limits"]["cpu"] = "2 cores"
    elif change == "tolerations not a list":
        predictor["tolerations"] = {"key": "nvidia.com/gpu"}
    elif change == "replicas as a string":
        predictor["minReplicas"] = "1"
    return manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no predictor", "'predictor' is a required property"),
        ("model format without name", "'name' is a required property"),
        ("canary as a string", "'10' is not of type 'integer'"),
        ("bad quantity", "does not match"),
        ("tolerations not a list", "is not of type 'array'"),
        ("replicas as a string", "'1' is not of type 'integer'"),
    ],
)
def test_the_schema_rejects_broken_manifests(change: str, message: str) -> None:
    manifest = _broken(change)
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.Draft7Validator(crd_schema()).validate(manifest)
    with pytest.raises(ValueError, match=message):
        validate_manifest(manifest)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("spec", "predictor", "model"), "storageURI"),
        (("spec", "predictor"), "serviceAccount_name"),
        (("spec",), "predictr"),
    ],
)
def test_unknown_fields_pass_json_schema_but_not_the_strict_check(
    path: tuple[str, ...], field: str
) -> None:
    manifest = render()
    target = manifest
    for key in path:
        target = target[key]
    target[field] = "x"
    # The CRD declares no additionalProperties: false, so plain JSON Schema lets it through
    # (the API server would prune it, or refuse it under strict field validation) ...
    jsonschema.Draft7Validator(crd_schema()).validate(manifest)
    # ... the strict check names it.
    where = "$." + ".".join((*path, field))
    assert manifest_problems(manifest) == [f"{where}: unknown field"]
    with pytest.raises(ValueError, match="unknown field"):
        validate_manifest(manifest)


def test_wrong_kind_is_reported() -> None:
    manifest = render()
    manifest["kind"] = "Deployment"
    assert any("expected apiVersion" in p for p in manifest_problems(manifest))


def test_storage_uri_for_reads_the_registered_versions_location(tmp_path: Path) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("adult-synthesizer")
    client.create_model_version("adult-synthesizer", STORAGE)
    located = kserve.storage_uri_for("adult-synthesizer", 1, tracking_uri=uri)
    assert located == STORAGE
    assert (
        render_inference_service("adult-synthesizer", located)["spec"]["predictor"]["model"][
            "storageUri"
        ]
        == STORAGE
    )


def test_apply_without_a_cluster_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kubernetes.config import kube_config

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    missing = tmp_path / "no-kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(missing))
    with pytest.raises(KubernetesNotConfigured, match="No Kubernetes cluster is configured"):
        kserve.apply(render())


def test_apply_refuses_an_invalid_manifest_before_contacting_a_cluster() -> None:
    manifest = render()
    manifest["spec"]["predictor"]["model"]["storageURI"] = STORAGE
    with pytest.raises(ValueError, match=r"\$\.spec\.predictor\.model\.storageURI: unknown field"):
        kserve.apply(manifest)


def test_readiness_is_judged_for_the_applied_generation() -> None:
    from genops.core.serving.kserve import is_ready

    ready = {
        "status": {"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}]}
    }
    assert is_ready(ready, 3) and is_ready(ready)
    assert not is_ready(ready, 4)  # the old revision answers; the new one is not ready yet
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert not is_ready(not_ready) and not is_ready({})


def test_the_defaults_name_the_runtime_the_platform_renders() -> None:
    """kserve.py's defaults and k8s/platform/base/50-serving agree: the runtime's name, its
    model format, where it reads the model and the port it serves on."""
    template = Path(__file__).resolve().parents[2] / "k8s/platform/base/50-serving.yaml.tmpl"
    docs = list(yaml.safe_load_all(template.read_text()))
    (runtime,) = [d for d in docs if d["metadata"]["name"] == kserve.DEFAULT_RUNTIME]
    assert runtime["kind"] == "ServingRuntime"
    spec = runtime["spec"]
    assert [f["name"] for f in spec["supportedModelFormats"]] == [kserve.MODEL_FORMAT]
    assert "protocolVersions" not in spec and kserve.PROTOCOL_VERSION is None
    (container,) = spec["containers"]
    assert container["command"] == ["genops", "serve"]
    assert f"--model-uri={kserve.MODEL_DIR}" in container["args"]
    assert f"--port={kserve.SERVER_PORT}" in container["args"]
    assert container["ports"][0]["containerPort"] == kserve.SERVER_PORT


def test_the_endpoint_is_the_predictor_service_in_raw_deployment_mode() -> None:
    from genops.core.serving.kserve import endpoint_url, predictor_url

    assert predictor_url("adult-synthesizer", "genops-serving") == (
        "http://adult-synthesizer-predictor.genops-serving.svc.cluster.local"
    )
    applied = render()
    assert endpoint_url(applied) == predictor_url("adult-synthesizer", "genops-serving")
    ready = {
        **applied,
        "status": {"address": {"url": "http://adult-synthesizer-predictor.genops-serving.svc/"}},
    }
    assert endpoint_url(ready) == "http://adult-synthesizer-predictor.genops-serving.svc"
