"""Offline Terraform checks: fmt, validate, `terraform test` with a mocked AWS provider, checkov.

Nothing here talks to AWS. Terraform runs on a temporary copy of terraform/
(no .terraform/ directory or lock file lands in the repo) and installs the
hashicorp/aws provider from a local mirror:

- GENOPS_TF_PLUGIN_DIR, the directory that contains registry.terraform.io/;
- otherwise Terraform's implied local mirror directories;
- otherwise a shallow search of /opt and /usr/local/share.

Without a terraform binary (>= 1.11, for `override_during`) or a mirror the
tests skip with the reason. checkov runs from its own virtualenv
(.venv-checkov, created by terraform/scripts/ensure-checkov.sh).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.terraform

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "terraform"
ENV_ROOTS = ("envs/dev", "envs/prod")
ROOTS = (*ENV_ROOTS, "tests")  # tests/ is the harness root of the module unit tests
MIN_TERRAFORM = (1, 11)
IMPLIED_MIRRORS = (
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
)
SEARCH_BASES = (Path("/opt"), Path("/usr/local/share"))
AWS_PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"

# One mocked plan of the dev root with every resource printed (terraform test -verbose).
INVENTORY_TEST = """
mock_provider "aws" {
  override_during = plan
  source          = "../../tests/mocks"
}

run "inventory" {
  command = plan
}
"""


def find_plugin_dir() -> Path | None:
    """The directory holding registry.terraform.io/hashicorp/aws, for `init -plugin-dir`."""
    configured = os.environ.get("GENOPS_TF_PLUGIN_DIR")
    if configured:
        return Path(configured) if (Path(configured) / AWS_PROVIDER).is_dir() else None
    for mirror in IMPLIED_MIRRORS:
        if (mirror / AWS_PROVIDER).is_dir():
            return mirror
    for base in SEARCH_BASES:
        for pattern in (
            "registry.terraform.io",
            "*/registry.terraform.io",
            "*/*/registry.terraform.io",
        ):
            for hit in sorted(base.glob(pattern)):
                if (hit.parent / AWS_PROVIDER).is_dir():
                    return hit.parent
    return None


def terraform_version(binary: str) -> tuple[int, int]:
    out = subprocess.run(
        [binary, "version", "-json"], capture_output=True, text=True, timeout=60
    ).stdout
    major, minor = json.loads(out)["terraform_version"].split(".")[:2]
    return int(major), int(minor)


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def explain(result: subprocess.CompletedProcess) -> str:
    return (
        f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}"
        f"\n--- stderr ---\n{result.stderr[-6000:]}"
    )


@pytest.fixture(scope="module")
def terraform() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not on PATH")
    version = terraform_version(binary)
    if version < MIN_TERRAFORM:
        pytest.skip(
            f"terraform {version} is older than {MIN_TERRAFORM} (tests need override_during)"
        )
    return binary


@pytest.fixture(scope="module")
def plugin_dir() -> Path:
    found = find_plugin_dir()
    if found is None:
        where = os.environ.get("GENOPS_TF_PLUGIN_DIR") or "implied mirrors, /opt, /usr/local/share"
        pytest.skip(
            f"no local hashicorp/aws provider mirror found ({where}); set GENOPS_TF_PLUGIN_DIR"
        )
    return found


@pytest.fixture(scope="module")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    env.pop("TF_DATA_DIR", None)
    env.pop("TF_WORKSPACE", None)
    cli_config = env.get("TF_CLI_CONFIG_FILE")
    if cli_config and not Path(cli_config).is_file():
        empty = tmp_path_factory.mktemp("tfrc") / "terraformrc"
        empty.write_text("")
        env["TF_CLI_CONFIG_FILE"] = str(empty)
    return env


@pytest.fixture(scope="module")
def workspace(
    terraform: str,
    plugin_dir: Path,
    tf_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A copy of terraform/ with every root initialised against the mirror (no backend)."""
    copy = tmp_path_factory.mktemp("tf") / "terraform"
    shutil.copytree(
        TF_DIR,
        copy,
        ignore=shutil.ignore_patterns(
            ".terraform",
            ".terraform.lock.hcl",
            "*.tfstate*",
            "*.tfplan",
            "backend.hcl",
            "*.tfvars",
            "*.tfvars.json",
        ),
    )
    for root in ROOTS:
        args = [
            terraform,
            f"-chdir={copy / root}",
            "init",
            "-backend=false",
            "-input=false",
            "-no-color",
        ]
        args.append(f"-plugin-dir={plugin_dir}")
        if root == "tests":
            args.append("-test-directory=.")
        result = run(args, tf_env)
        assert result.returncode == 0, f"init {root}: {explain(result)}"
    return copy


def test_fmt(terraform: str, tf_env: dict[str, str]) -> None:
    result = run(
        [terraform, f"-chdir={TF_DIR}", "fmt", "-check", "-recursive", "-diff", "-no-color"], tf_env
    )
    assert result.returncode == 0, (
        f"run `terraform -chdir=terraform fmt -recursive`: {explain(result)}"
    )


@pytest.mark.parametrize("root", ENV_ROOTS)
def test_validate(root: str, terraform: str, workspace: Path, tf_env: dict[str, str]) -> None:
    result = run([terraform, f"-chdir={workspace / root}", "validate", "-no-color"], tf_env)
    assert result.returncode == 0, explain(result)


@pytest.mark.parametrize("root", ROOTS)
def test_terraform_test(root: str, terraform: str, workspace: Path, tf_env: dict[str, str]) -> None:
    """Every run block of the root's *.tftest.hcl files passes (none skipped)."""
    directory = workspace / root
    test_dir = directory if root == "tests" else directory / "tests"
    expected_runs = sum(
        len(re.findall(r'^run "', f.read_text(), re.M)) for f in test_dir.glob("*.tftest.hcl")
    )
    assert expected_runs > 0

    args = [terraform, f"-chdir={directory}", "test", "-no-color"]
    if root == "tests":
        args.append("-test-directory=.")
    result = run(args, tf_env, timeout=600)
    assert result.returncode == 0, explain(result)
    summary = re.search(r"Success! (\d+) passed, (\d+) failed\.", result.stdout)
    assert summary, explain(result)
    assert (int(summary.group(1)), int(summary.group(2))) == (expected_runs, 0), explain(result)


def test_dev_plan_inventory(terraform: str, workspace: Path, tf_env: dict[str, str]) -> None:
    """Count what a mocked plan of envs/dev would create, by resource type."""
    directory = workspace / "envs" / "dev"
    (directory / "inventory").mkdir()
    (directory / "inventory" / "inventory.tftest.hcl").write_text(INVENTORY_TEST)
    result = run(
        [
            terraform,
            f"-chdir={directory}",
            "test",
            "-no-color",
            "-verbose",
            "-test-directory=inventory",
        ],
        tf_env,
    )
    assert result.returncode == 0, explain(result)

    addresses = re.findall(r"^\s*# (\S+) will be created$", result.stdout, re.M)
    managed = [a for a in addresses if ".data." not in a and not a.startswith("data.")]
    by_type = collections.Counter(re.search(r"(aws_[a-z0-9_]+)\.", a).group(1) for a in managed)
    print(f"\nenvs/dev mocked plan: {len(managed)} resources to create")
    for kind, count in sorted(by_type.items()):
        print(f"  {count:3d}  {kind}")

    assert by_type["aws_eks_cluster"] == 1
    assert by_type["aws_eks_node_group"] == 2
    assert by_type["aws_eks_addon"] == 5
    assert by_type["aws_ecr_repository"] == 4
    assert by_type["aws_db_instance"] == 1
    assert by_type["aws_eks_pod_identity_association"] == 7
    assert by_type["aws_subnet"] == 6
    assert by_type["aws_nat_gateway"] == 1
    assert by_type["aws_kms_key"] == 5
    assert by_type["aws_flow_log"] == 1
    assert by_type["aws_vpc_endpoint"] == 6, "S3 gateway + ECR api/dkr, STS, logs, Secrets Manager"
    # Application users (mlflow, optuna, kfp in PostgreSQL; admin, pipelines in MLflow); the
    # master user's secret is RDS-managed and not a terraform resource.
    assert by_type["aws_secretsmanager_secret"] == 5
    assert by_type["aws_security_group"] == 3, "database, database clients, VPC endpoints"


def test_checkov(tf_env: dict[str, str]) -> None:
    """checkov over terraform/: zero failed checks; every skip is inline with a reason."""
    ensure = run(
        ["bash", str(TF_DIR / "scripts" / "ensure-checkov.sh")], tf_env, cwd=REPO, timeout=900
    )
    assert ensure.returncode == 0, f"could not install checkov: {explain(ensure)}"

    result = run(
        [
            str(REPO / ".venv-checkov" / "bin" / "checkov"),
            "-d",
            "terraform",
            "--framework",
            "terraform",
            "--compact",
            "--skip-download",
            "--skip-path",
            r"\.terraform/",
            "-o",
            "json",
        ],
        tf_env,
        cwd=REPO,
        timeout=600,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range'][0]}"
        for c in report["results"].get("failed_checks", [])
    ]
    skipped = report["results"].get("skipped_checks", [])
    print(
        f"\ncheckov {summary['checkov_version']}: passed {summary['passed']}, "
        f"failed {summary['failed']}, skipped {summary['skipped']}, "
        f"resources {summary['resource_count']}"
    )
    for check in skipped:
        print(
            f"  skip {check['check_id']} {check['resource']}: "
            f"{check['check_result'].get('suppress_comment')}"
        )

    assert failed == [], "\n".join(failed)
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    assert summary["passed"] > 100 and summary["resource_count"] > 50, summary
    assert all(c["check_result"].get("suppress_comment", "").strip() for c in skipped), (
        "every skip needs a reason"
    )

    inline: set[tuple[str, str]] = set()
    for path in TF_DIR.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.fullmatch(r"\s*#checkov:skip=CKV2?_AWS_\d+:\S.{10,}", line), (
                    f"{path}: {line.strip()}"
                )
                check_id = line.split("=", 1)[1].split(":", 1)[0]
                inline.add(("/" + str(path.relative_to(TF_DIR)), check_id))
    reported = {(c["file_path"], c["check_id"]) for c in skipped}
    assert reported == inline, (
        "every skip must be an inline #checkov:skip comment with a reason, and be used"
    )
    assert not list(REPO.glob(".checkov.y*ml")) and not list(TF_DIR.glob(".checkov.y*ml"))
