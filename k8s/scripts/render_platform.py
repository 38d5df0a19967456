#!/usr/bin/env python3
"""Render the genops platform manifests from terraform outputs.

Offline and side-effect free apart from writing OUT_DIR: no cluster, no AWS
call. `platform.sh render` and `platform.sh apply` call it; the tests call it
with a fixture of `terraform output -json`.

Templates are k8s/platform/base/*.yaml.tmpl (always) and
k8s/platform/components/*/*.yaml.tmpl (NVIDIA device plugin only when the GPU
AMI needs it; Cluster Autoscaler always). Placeholders are ${UPPER_CASE}
only; every value is inserted as a JSON string, which is a valid YAML scalar,
so no value can break the document structure. Shell-style $var and $(cmd) in
the templates are left alone.

No credential is rendered: database and MLflow passwords stay in Secrets
Manager and reach the cluster through External Secrets (30-external-secrets).
Images come from the environment's ECR by digest, read from the image lock
that k8s/scripts/mirror_images.sh writes (k8s/platform/images/<env>.lock.json,
or --images-lock / $GENOPS_IMAGES_LOCK); --allow-unpinned-images renders the
upstream references instead, for review only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import sys
from pathlib import Path
from urllib.parse import quote

PLATFORM_DIR = Path(__file__).resolve().parent.parent / "platform"
IMAGES_DIR = PLATFORM_DIR / "images"
SYSTEM_NAMESPACE = "genops-system"
DIGEST_REF = re.compile(r"^(?P<registry>[^/]+)/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$")

REQUIRED_OUTPUTS = (
    "region",
    "cluster_name",
    "kubernetes_version",
    "artifacts_bucket",
    "pipeline_root",
    "mlflow_artifacts_destination",
    "datasets_uri",
    "ecr_repository_urls",
    "image_registry",
    "database_address",
    "database_port",
    "database_name",
    "database_username",
    "database_secret_arn",
    "database_app_secret_arns",
    "database_client_security_group_id",
    "cluster_security_group_id",
    "mlflow_user_secret_arns",
    "vpc_cidr",
    "service_accounts",
    "gpu_node_selector",
    "gpu_node_taint",
    "nvidia_device_plugin_required",
    "mlflow_tracking_uri",
    "environment_summary",
)


class BracedTemplate(string.Template):
    """string.Template that substitutes only ${UPPER_CASE} placeholders."""

    pattern = r"""
    \$(?:
      (?P<escaped>\$) |
      \{(?P<braced>[A-Z][A-Z0-9_]*)\} |
      (?P<named>(?!x)x) |
      (?P<invalid>(?!x)x)
    )
    """


def load_versions(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines of versions.env (comments and blanks ignored)."""
    versions: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        versions[key.strip()] = value.strip()
    return versions


def load_outputs(path: Path) -> dict[str, object]:
    """Read `terraform output -json` (values wrapped in {"value": ...}) or a flat map."""
    raw = json.loads(path.read_text())
    outputs = {
        k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()
    }
    missing = [k for k in REQUIRED_OUTPUTS if k not in outputs]
    if missing:
        raise SystemExit(
            f"terraform outputs are missing: {', '.join(missing)} (run `make tf-apply` first)"
        )
    return outputs


def split_service_account(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise SystemExit(f"service account {value!r} is not namespace/name")
    return namespace, name


def postgres_url_template(host: str, port: object, database: str) -> str:
    """An External Secrets template (engine v2) of a PostgreSQL URL: user and password are
    filled in, URL-encoded, from the synced secret whenever it is refreshed."""
    return (
        "postgresql://{{ .username | urlquery }}:{{ .password | urlquery }}"
        f"@{host}:{port}/{quote(database, safe='')}?sslmode=require"
    )


class ImageLock:
    """The image mirror's lock: upstream reference -> <registry>/mirror/...@sha256:...,
    and genops/<kind> -> <registry>/genops/<kind>@sha256:... ."""

    def __init__(self, data: dict[str, object] | None, registry: str) -> None:
        self.data = data
        self.registry = registry

    @classmethod
    def load(cls, path: Path | None, registry: str, allow_unpinned: bool) -> ImageLock:
        if path is None or not path.is_file():
            if allow_unpinned:
                print(
                    "warning: no image lock: rendering upstream image references (review only; "
                    "run k8s/scripts/mirror_images.sh ENV before apply)",
                    file=sys.stderr,
                )
                return cls(None, registry)
            raise SystemExit(
                f"image lock {path} not found: run k8s/scripts/mirror_images.sh ENV first "
                "(it copies every image into the environment's ECR and records the digests)"
            )
        data = json.loads(path.read_text())
        if data.get("registry") != registry:
            raise SystemExit(
                f"{path}: images were mirrored to {data.get('registry')}, this environment's "
                f"registry is {registry}"
            )
        for section in ("upstream", "genops"):
            for ref, pinned in dict(data.get(section) or {}).items():
                match = DIGEST_REF.match(str(pinned))
                if not match or match.group("registry") != registry:
                    raise SystemExit(f"{path}: {ref} -> {pinned} is not {registry}/...@sha256")
        return cls(data, registry)

    def upstream(self, ref: str) -> str:
        if self.data is None:
            return ref
        pinned = dict(self.data.get("upstream") or {}).get(ref)
        if not pinned:
            raise SystemExit(f"image {ref} is not in the image lock: re-run mirror_images.sh")
        return str(pinned)

    def genops(self, repository_url: str, name: str) -> str:
        if self.data is None:
            return f"{repository_url}:UNPINNED"
        pinned = dict(self.data.get("genops") or {}).get(name)
        if not pinned:
            raise SystemExit(
                f"image {name} is not in the image lock: push it, then re-run mirror_images.sh"
            )
        return str(pinned)


def build_values(
    outputs: dict[str, object], versions: dict[str, str], images: ImageLock
) -> dict[str, str]:
    region = str(outputs["region"])
    cluster = str(outputs["cluster_name"])
    k8s_minor = str(outputs["kubernetes_version"])

    autoscaler = versions["CLUSTER_AUTOSCALER_VERSION"]
    if not autoscaler.lstrip("v").startswith(k8s_minor + "."):
        raise SystemExit(
            f"CLUSTER_AUTOSCALER_VERSION {autoscaler} does not match the cluster's Kubernetes "
            f"{k8s_minor}; set a v{k8s_minor}.x release in k8s/platform/versions.env"
        )

    accounts = {
        k: split_service_account(str(v)) for k, v in dict(outputs["service_accounts"]).items()
    }
    repos = {str(k): str(v) for k, v in dict(outputs["ecr_repository_urls"]).items()}
    selector = dict(outputs["gpu_node_selector"])
    host = str(outputs["database_address"])
    port = outputs["database_port"]
    app_secrets = {str(k): str(v) for k, v in dict(outputs["database_app_secret_arns"]).items()}
    mlflow_users = {str(k): str(v) for k, v in dict(outputs["mlflow_user_secret_arns"]).items()}
    pipeline_root = str(outputs["pipeline_root"])
    root_prefix = pipeline_root.split("/", 3)[3] if pipeline_root.count("/") >= 3 else ""
    kfp = versions["KFP_VERSION"]

    providers = (
        "s3:\n"
        "  default:\n"
        f"    endpoint: s3.{region}.amazonaws.com\n"
        f"    region: {region}\n"
        "    disableSSL: false\n"
        "    credentials:\n"
        "      fromEnv: true\n"
    )

    return {
        "ENVIRONMENT": str(dict(outputs["environment_summary"])["environment"]),
        "REGION": region,
        "CLUSTER_NAME": cluster,
        "PIPELINE_NAMESPACE": accounts["pipeline_runner"][0],
        "MLFLOW_NAMESPACE": accounts["mlflow"][0],
        "RUNNER_SERVICE_ACCOUNT": accounts["pipeline_runner"][1],
        "SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
        "EXTERNAL_SECRETS_NAMESPACE": accounts["external_secrets"][0],
        "SERVING_NAMESPACE": accounts["model_server"][0],
        "SERVING_SERVICE_ACCOUNT": accounts["model_server"][1],
        "AUTOSCALER_NAMESPACE": accounts["cluster_autoscaler"][0],
        "AUTOSCALER_SERVICE_ACCOUNT": accounts["cluster_autoscaler"][1],
        "MLFLOW_TRACKING_URI": str(outputs["mlflow_tracking_uri"]),
        "ARTIFACTS_BUCKET": str(outputs["artifacts_bucket"]),
        "PIPELINE_ROOT": str(outputs["pipeline_root"]),
        "MLFLOW_ARTIFACTS_DESTINATION": str(outputs["mlflow_artifacts_destination"]),
        "DATASETS_URI": str(outputs["datasets_uri"]),
        "IMAGE_REGISTRY": str(outputs["image_registry"]),
        "IMAGE_COMPONENT": repos["genops/component"],
        "IMAGE_TRAIN_CUDA": repos["genops/train-cuda"],
        "IMAGE_SERVING": repos["genops/serving"],
        "GPU_NODE_SELECTOR": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        "GPU_NODE_TAINT": str(outputs["gpu_node_taint"]),
        "DB_HOST": host,
        "DB_PORT": str(port),
        "VPC_CIDR": str(outputs["vpc_cidr"]),
        "CLUSTER_SECURITY_GROUP_ID": str(outputs["cluster_security_group_id"]),
        "DATABASE_CLIENT_SECURITY_GROUP_ID": str(outputs["database_client_security_group_id"]),
        "DB_MASTER_SECRET_ARN": str(outputs["database_secret_arn"]),
        "DB_MLFLOW_SECRET_ARN": app_secrets["mlflow"],
        "DB_OPTUNA_SECRET_ARN": app_secrets["optuna"],
        "DB_KFP_SECRET_ARN": app_secrets["kfp"],
        "MLFLOW_ADMIN_SECRET_ARN": mlflow_users["admin"],
        "MLFLOW_PIPELINES_SECRET_ARN": mlflow_users["pipelines"],
        "OPTUNA_STORAGE_URL_TEMPLATE": postgres_url_template(host, port, "optuna"),
        "MLFLOW_BACKEND_STORE_URI_TEMPLATE": postgres_url_template(
            host, port, str(outputs["database_name"])
        ),
        "KFP_PROVIDERS": providers,
        "KFP_VERSION": kfp,
        "S3_ENDPOINT": f"s3.{region}.amazonaws.com",
        "KFP_OBJECT_PREFIX": f"{root_prefix}pipelines",
        "KFP_CACHE_IMAGE": images.upstream("ghcr.io/containerd/busybox:latest"),
        "KFP_DRIVER_IMAGE": images.upstream(f"ghcr.io/kubeflow/kfp-driver:{kfp}"),
        "KFP_LAUNCHER_IMAGE": images.upstream(f"ghcr.io/kubeflow/kfp-launcher:{kfp}"),
        "SERVING_IMAGE": images.genops(repos["genops/serving"], "genops/serving"),
        "HF_SERVING_IMAGE": images.upstream(
            f"kserve/huggingfaceserver:{versions['KSERVE_VERSION']}"
        ),
        "HF_SERVING_GPU_IMAGE": images.upstream(
            f"kserve/huggingfaceserver:{versions['KSERVE_VERSION']}-gpu"
        ),
        "POSTGRES_CLIENT_IMAGE": images.upstream(versions["POSTGRES_CLIENT_IMAGE"]),
        "NVIDIA_DEVICE_PLUGIN_IMAGE": images.upstream(
            f"nvcr.io/nvidia/k8s-device-plugin:{versions['NVIDIA_DEVICE_PLUGIN_VERSION']}"
        ),
        "CLUSTER_AUTOSCALER_IMAGE": images.upstream(
            f"registry.k8s.io/autoscaling/cluster-autoscaler:{autoscaler}"
        ),
        "AUTOSCALER_AUTO_DISCOVERY_FLAG": (
            "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
            f"k8s.io/cluster-autoscaler/{cluster}"
        ),
    }


def selected_templates(outputs: dict[str, object], platform_dir: Path) -> list[tuple[str, Path]]:
    """(output file name, template) pairs in apply order."""
    chosen = [
        (t.name.removesuffix(".tmpl"), t)
        for t in sorted((platform_dir / "base").glob("*.yaml.tmpl"))
    ]
    if outputs["nvidia_device_plugin_required"]:
        chosen.append(
            (
                "70-nvidia-device-plugin.yaml",
                platform_dir / "components/nvidia-device-plugin/daemonset.yaml.tmpl",
            )
        )
    chosen.append(
        (
            "80-cluster-autoscaler.yaml",
            platform_dir / "components/cluster-autoscaler/cluster-autoscaler.yaml.tmpl",
        )
    )
    return chosen


def render(
    outputs_path: Path,
    out_dir: Path,
    images_lock: Path | None = None,
    allow_unpinned_images: bool = False,
    platform_dir: Path = PLATFORM_DIR,
) -> list[Path]:
    outputs = load_outputs(outputs_path)
    versions = load_versions(platform_dir / "versions.env")
    environment = str(dict(outputs["environment_summary"])["environment"])
    if images_lock is None:
        images_lock = platform_dir / "images" / f"{environment}.lock.json"
    images = ImageLock.load(images_lock, str(outputs["image_registry"]), allow_unpinned_images)
    values = {k: json.dumps(v) for k, v in build_values(outputs, versions, images).items()}

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, template in selected_templates(outputs, platform_dir):
        text = BracedTemplate(template.read_text()).substitute(values)
        leftover = re.findall(r"\$\{[A-Z][A-Z0-9_]*\}", text)
        if leftover:
            raise SystemExit(f"{template}: unrendered placeholders {leftover}")
        target = out_dir / name
        target.write_text(text)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--outputs", required=True, type=Path, help="file with `terraform output -json`"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="directory for the rendered manifests"
    )
    parser.add_argument(
        "--images-lock",
        type=Path,
        default=Path(os.environ["GENOPS_IMAGES_LOCK"])
        if os.environ.get("GENOPS_IMAGES_LOCK")
        else None,
        help="image lock from mirror_images.sh (default: k8s/platform/images/<env>.lock.json)",
    )
    parser.add_argument(
        "--allow-unpinned-images",
        action="store_true",
        help="render upstream image references when there is no lock (review only)",
    )
    args = parser.parse_args(argv)
    for path in render(args.outputs, args.out, args.images_lock, args.allow_unpinned_images):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
