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
PLACEHOLDER_PASSWORD = "PLACEHOLDER-set-GENOPS_DB_PASSWORD"

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


def postgres_url(user: str, password: str, host: str, port: object, database: str) -> str:
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(database, safe='')}?sslmode=require"
    )


def build_values(
    outputs: dict[str, object], versions: dict[str, str], password: str
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
    user = str(outputs["database_username"])

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
        "DB_SECRET_ARN": str(outputs["database_secret_arn"]),
        "OPTUNA_STORAGE_URL": postgres_url(user, password, host, port, "optuna"),
        "MLFLOW_BACKEND_STORE_URI": postgres_url(
            user, password, host, port, str(outputs["database_name"])
        ),
        "KFP_PROVIDERS": providers,
        "POSTGRES_CLIENT_IMAGE": versions["POSTGRES_CLIENT_IMAGE"],
        "NVIDIA_DEVICE_PLUGIN_IMAGE": (
            f"nvcr.io/nvidia/k8s-device-plugin:{versions['NVIDIA_DEVICE_PLUGIN_VERSION']}"
        ),
        "CLUSTER_AUTOSCALER_IMAGE": f"registry.k8s.io/autoscaling/cluster-autoscaler:{autoscaler}",
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
    outputs_path: Path, out_dir: Path, password: str, platform_dir: Path = PLATFORM_DIR
) -> list[Path]:
    outputs = load_outputs(outputs_path)
    versions = load_versions(platform_dir / "versions.env")
    values = {k: json.dumps(v) for k, v in build_values(outputs, versions, password).items()}

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, template in selected_templates(outputs, platform_dir):
        text = BracedTemplate(template.read_text()).substitute(values)
        leftover = re.findall(r"\$\{[A-Z][A-Z0-9_]*\}", text)
        if leftover:
            raise SystemExit(f"{template}: unrendered placeholders {leftover}")
        target = out_dir / name
        target.write_text(text)
        if "genops-secrets" in name:
            target.chmod(0o600)
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
        "--allow-placeholder-password",
        action="store_true",
        help="write a placeholder password when GENOPS_DB_PASSWORD is unset (review only)",
    )
    args = parser.parse_args(argv)

    password = os.environ.get("GENOPS_DB_PASSWORD", "")
    if not password:
        if not args.allow_placeholder_password:
            print("GENOPS_DB_PASSWORD is not set", file=sys.stderr)
            return 2
        print(
            "warning: GENOPS_DB_PASSWORD unset, genops-secrets holds a placeholder", file=sys.stderr
        )
        password = PLACEHOLDER_PASSWORD

    for path in render(args.outputs, args.out, password):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
