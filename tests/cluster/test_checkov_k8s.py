"""checkov over every Kubernetes object genops renders for an environment: the platform
manifests (k8s/scripts/render_platform.py, with the image lock fixture) and the MLflow
manifests as scripts/mlflow_k8s.sh deploys them (image by digest, plus the mlflow-users Job).

Zero failed checks; every skip is a ``checkov.io/skip<N>: CKV_K8S_<id>=<reason>`` annotation
on the object it concerns, with a reason. (checkov over terraform/ is in tests/terraform.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cluster.test_contracts import (
    IMAGES_LOCK,
    MLFLOW_BASE,
    OUTPUTS,
    RENDER_PY,
    REPO,
    _documents,
    _kustomize_lite,
)


def _render_all(out: Path) -> list[Path]:
    platform = out / "platform"
    env = dict(os.environ, GENOPS_IMAGES_LOCK=str(IMAGES_LOCK))
    result = subprocess.run(
        [sys.executable, str(RENDER_PY), "--outputs", str(OUTPUTS), "--out", str(platform)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    image = json.loads(IMAGES_LOCK.read_text())["genops"]["genops/mlflow"]
    docs = _kustomize_lite(MLFLOW_BASE, {"genops/mlflow": image})
    for extra in sorted(MLFLOW_BASE.glob("*-job.yaml")):
        if extra.name == "db-upgrade-job.yaml":
            continue  # in the kustomization already
        for doc in _documents([extra]):
            text = yaml.safe_dump(doc).replace("image: genops/mlflow", f"image: {image}")
            docs.append(yaml.safe_load(text))
    mlflow = out / "mlflow.yaml"
    mlflow.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return [platform, mlflow]


def test_checkov_over_the_rendered_kubernetes_objects(tmp_path: Path) -> None:
    ensure = subprocess.run(
        ["bash", str(REPO / "terraform" / "scripts" / "ensure-checkov.sh")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert ensure.returncode == 0, f"could not install checkov: {ensure.stderr[-3000:]}"
    rendered = tmp_path / "rendered"
    _render_all(rendered)
    result = subprocess.run(
        [
            str(REPO / ".venv-checkov" / "bin" / "checkov"),
            "-d",
            str(rendered),
            "--framework",
            "kubernetes",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]
    skipped = report["results"].get("skipped_checks", [])
    print(
        f"\ncheckov {summary['checkov_version']} (kubernetes): passed {summary['passed']}, "
        f"failed {summary['failed']}, skipped {summary['skipped']}, "
        f"resources {summary['resource_count']}"
    )
    for check in skipped:
        reason = check["check_result"].get("suppress_comment")
        print(f"  skip {check['check_id']} {check['resource']}: {reason}")
    assert failed == [], "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 300 and summary["resource_count"] > 40, summary
    reasons = [c["check_result"].get("suppress_comment", "") for c in skipped]
    assert all(len(r.strip()) > 20 for r in reasons), "every skip needs a reason"
    # Skips live only as annotations on the objects they concern.
    for path in [*(REPO / "k8s").rglob("*.tmpl"), *(REPO / "mlflow" / "k8s").glob("*.yaml")]:
        for line in path.read_text().splitlines():
            if "checkov.io/skip" in line:
                assert re.fullmatch(r"\s*checkov\.io/skip\d+: CKV_K8S_\d+=\S.{20,}", line), (
                    f"{path}: {line}"
                )
