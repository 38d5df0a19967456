"""What each image a rendered container names holds: the programs on its PATH, its
ENTRYPOINT/CMD, its working directory, and the Python distributions and modules installed.

- genops images (``genops/<kind>``) are read from ``docker/<kind>.Dockerfile``: the final
  stage's ``ENV PATH``, ``WORKDIR``, ``ENTRYPOINT`` and ``CMD``; ``/opt/venv`` holds the
  distributions its ``pip install -r`` names (pyproject's ``[project] dependencies`` through the
  ``requirements`` stage, or ``docker/mlflow-requirements.txt``) and everything they require,
  resolved in this checkout's ``.venv`` (built from the same lock, ``constraints.txt``), and
  their console scripts in ``/opt/venv/bin``; ``pip install --target /opt/genops .`` puts the
  genops package and its ``[project.scripts]`` (``/opt/genops/bin``) there.
- upstream images are not pulled here: :data:`UPSTREAM_IMAGES` states what genops relies on
  from each, with the file at the pinned release it comes from.

Offline and stdlib + PyYAML/packaging only; nothing here runs a container.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
import posixpath
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"

# The PATH of Debian-based python:3.11-slim images (and of the debootstrap base the offline
# build uses); ``ENV PATH=...:$PATH`` in a Dockerfile extends it.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the base images of docker/*.Dockerfile ship that containers call: python:3.11.15-slim-
# bookworm (docker-library/python 3.11/slim-bookworm/Dockerfile: /usr/local/bin/python*,
# pip*) on Debian bookworm (dash as /bin/sh, bash, coreutils).
BASE_FILES = frozenset(
    {
        "/usr/local/bin/python",
        "/usr/local/bin/python3",
        "/usr/local/bin/python3.11",
        "/usr/local/bin/pip",
        "/usr/local/bin/pip3",
        "/bin/sh",
        "/bin/bash",
        "/usr/bin/env",
        "/bin/cat",
        "/bin/sleep",
    }
)


@dataclass
class Image:
    """What a container of this image can run."""

    name: str
    source: str  # where these facts come from
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    workdir: str = "/"
    path: list[str] = field(default_factory=lambda: DEFAULT_PATH.split(":"))
    files: set[str] = field(default_factory=set)  # absolute paths of executables
    distributions: set[str] = field(default_factory=set)  # canonical names
    modules: set[str] = field(default_factory=set)  # top-level importable packages
    # A server this image runs by default: the port it listens on unless told otherwise and
    # the directory it loads the model from (KServe's storage initializer mounts /mnt/models).
    default_port: int | None = None

    def which(self, program: str, workdir: str | None = None) -> str | None:
        """Where ``program`` (argv[0]) resolves in this image, or None."""
        if "/" in program:
            full = posixpath.normpath(posixpath.join(workdir or self.workdir, program))
            return full if full in self.files else None
        for folder in self.path:
            candidate = posixpath.join(folder, program)
            if candidate in self.files:
                return candidate
        return None


# What genops relies on from upstream images it runs with its own command, or whose
# entrypoint it leaves in place: reference -> facts, with the file they come from.
UPSTREAM_IMAGES: dict[str, Image] = {
    "docker.io/library/postgres:16.6-alpine": Image(
        name="docker.io/library/postgres:16.6-alpine",
        source="docker-library/postgres 16/alpine*/Dockerfile: built with --prefix=/usr/local, "
        "busybox /bin/sh; ENTRYPOINT docker-entrypoint.sh, CMD postgres",
        entrypoint=["docker-entrypoint.sh"],
        cmd=["postgres"],
        files={
            "/bin/sh",
            "/usr/local/bin/psql",
            "/usr/local/bin/pg_isready",
            "/usr/local/bin/postgres",
            "/usr/local/bin/docker-entrypoint.sh",
        },
    ),
    "registry.k8s.io/autoscaling/cluster-autoscaler": Image(
        name="registry.k8s.io/autoscaling/cluster-autoscaler",
        source="kubernetes/autoscaler cluster-autoscaler/Dockerfile: distroless/static, "
        "COPY ... /cluster-autoscaler, WORKDIR /, CMD /cluster-autoscaler",
        cmd=["/cluster-autoscaler"],
        files={"/cluster-autoscaler"},
    ),
    "nvcr.io/nvidia/k8s-device-plugin": Image(
        name="nvcr.io/nvidia/k8s-device-plugin",
        source="NVIDIA/k8s-device-plugin deployments/container/Dockerfile: "
        "ENTRYPOINT nvidia-device-plugin (/usr/bin)",
        entrypoint=["nvidia-device-plugin"],
        files={"/usr/bin/nvidia-device-plugin", "/bin/sh"},
    ),
    # KServe v0.15.2 (d623ea29e4a7312e509829f9104209cd6f820268):
    # python/huggingface_server_cpu.Dockerfile (tag v0.15.2) and huggingface_server.Dockerfile
    # (tag v0.15.2-gpu, .github/workflows/huggingface-docker-publish.yml): ENTRYPOINT
    # python -m huggingfaceserver, the kserve model server on --http_port 8080, model from
    # --model_dir (default /mnt/models).
    "kserve/huggingfaceserver": Image(
        name="kserve/huggingfaceserver",
        source="kserve/kserve@v0.15.2 python/huggingface_server*.Dockerfile",
        entrypoint=["python", "-m", "huggingfaceserver"],
        path=["/prod_venv/bin", *DEFAULT_PATH.split(":")],
        files={"/prod_venv/bin/python", "/usr/bin/python", "/usr/bin/python3", "/bin/sh"},
        modules={"huggingfaceserver", "kserve"},
        default_port=8080,
    ),
}


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    if not isinstance(value, list):
        raise ValueError(f"not exec form: {rest}")
    return [str(v) for v in value]


@dataclass
class _Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _stages(text: str) -> list[_Stage]:
    stages: list[_Stage] = []
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            words = rest.split()
            name = words[words.index("AS") + 1] if "AS" in words else str(len(stages))
            base = next(w for w in words if not w.startswith("--"))
            stages.append(_Stage(name, base))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages


def _requires(dist: str, extras: frozenset[str]) -> set[tuple[str, frozenset[str]]]:
    try:
        requirements = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return set()
    out = set()
    env = dict(default_environment())
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None:
            ok = any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))
            if not ok:
                continue
        out.add((canonicalize_name(req.name), frozenset(req.extras)))
    return out


@functools.cache
def installed_closure(requirements: tuple[str, ...]) -> frozenset[str]:
    """Canonical names of ``requirements`` and everything they require (with their extras),
    as resolved in this checkout's venv, which the images' lock describes."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [
        (canonicalize_name(Requirement(r).name), frozenset(Requirement(r).extras))
        for r in requirements
    ]
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        todo.extend(_requires(*item) - seen)
    return frozenset(name for name, _ in seen)


def console_scripts(dists: frozenset[str]) -> set[str]:
    names = set()
    for dist in metadata.distributions():
        if canonicalize_name(dist.metadata["Name"]) in dists:
            names |= {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
    return names


def top_level_modules(dists: frozenset[str]) -> set[str]:
    return {
        module
        for module, owners in metadata.packages_distributions().items()
        if any(canonicalize_name(o) in dists for o in owners)
    }


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirement_lines(path: Path) -> tuple[str, ...]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return tuple(lines)


def genops_image(dockerfile: Path) -> Image:
    """The facts of ``genops/<kind>`` from its Dockerfile (see the module docstring)."""
    kind = dockerfile.name.removesuffix(".Dockerfile")
    stages = _stages(dockerfile.read_text())
    by_name = {s.name: s for s in stages}
    final = stages[-1]
    image = Image(name=f"genops/{kind}", source=f"docker/{dockerfile.name}")
    image.files = set(BASE_FILES)
    path = DEFAULT_PATH
    project = dict(_pyproject()["project"])  # type: ignore[arg-type]

    def lineage(stage: _Stage) -> list[_Stage]:
        chain = [stage]
        while chain[-1].base in by_name:
            chain.append(by_name[chain[-1].base])
        return chain

    def venv_requirements(stage: _Stage) -> tuple[str, ...]:
        found: list[str] = []
        for st in lineage(stage):
            for keyword, rest in st.instructions:
                if keyword != "RUN":
                    continue
                for match in re.finditer(r"pip install [^&;]*?-r\s+(\S+)", rest):
                    name = match.group(1)
                    if name == "requirements.txt":
                        found += [str(d) for d in project["dependencies"]]  # type: ignore[attr-defined]
                    else:
                        found += list(_requirement_lines(DOCKER / Path(name).name))
        return tuple(found)

    for keyword, rest in final.instructions:
        if keyword == "ENV":
            match = re.search(r"\bPATH=(\S+)", rest)
            if match:
                path = match.group(1).replace("$PATH", path).replace("${PATH}", path)
        elif keyword == "WORKDIR":
            image.workdir = rest
        elif keyword == "ENTRYPOINT":
            image.entrypoint = _exec_form(rest)
        elif keyword == "CMD":
            image.cmd = _exec_form(rest)
        elif keyword == "COPY" and rest.startswith("--from="):
            words = rest.split()
            source = by_name[words[0].removeprefix("--from=")]
            target = words[-1]
            if target == "/opt/venv":
                dists = installed_closure(venv_requirements(source))
                image.distributions |= dists
                image.modules |= top_level_modules(dists)
                bin_dir = "/opt/venv/bin"
                image.files |= {
                    f"{bin_dir}/{p}" for p in ("python", "python3", "python3.11", "pip", "pip3")
                }
                image.files |= {f"{bin_dir}/{s}" for s in console_scripts(dists)}
            elif target == "/opt/genops":
                # pip install --target /opt/genops . : the package, its modules and scripts
                scripts = dict(project.get("scripts") or {})  # type: ignore[call-overload]
                image.files |= {f"/opt/genops/bin/{s}" for s in scripts}
                image.distributions.add(canonicalize_name(str(project["name"])))
                image.modules |= {"genops", "components", "pipelines"}
    image.path = path.split(":")
    return image


@functools.cache
def genops_images() -> dict[str, Image]:
    return {
        f"genops/{p.name.removesuffix('.Dockerfile')}": genops_image(p)
        for p in sorted(DOCKER.glob("*.Dockerfile"))
    }


def image_for(reference: str, registry: str, upstream_lock: dict[str, str]) -> Image | None:
    """The facts for a container's image reference (``<registry>/genops/<kind>@sha256:...``,
    a mirrored upstream image, or an unrendered ``genops/<kind>``)."""
    original = next((ref for ref, pinned in upstream_lock.items() if pinned == reference), None)
    if original is not None:
        if original in UPSTREAM_IMAGES:
            return UPSTREAM_IMAGES[original]
        repository = re.sub(r":[^:/]+$", "", original)
        return UPSTREAM_IMAGES.get(repository) or UPSTREAM_IMAGES.get(
            repository.removeprefix("docker.io/")
        )
    name = reference.removeprefix(registry.rstrip("/") + "/")
    name = re.sub(r"(@sha256:[0-9a-f]+|:[^:/]+)$", "", name)
    return genops_images().get(name)


# ------------------------------------------------------------------- commands in scripts

SHELL_BUILTINS = frozenset(
    {
        "echo", "printf", "set", "export", "exit", "test", "[", "cd", "read", "true", "false",
        ":", "trap", "wait", "unset", "shift", "return", "local", "eval", ".", "source",
        "if", "then", "else", "elif", "fi", "for", "do", "done", "while", "until", "case",
        "esac", "{", "}", "!", "in", "break", "continue",
    }
)  # fmt: skip


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a POSIX sh script (argv lists), heredoc bodies skipped, as far
    as the scripts genops renders need: lines, ``&&``/``||``/``;``/``|`` lists."""
    commands: list[list[str]] = []
    lines = script.replace("\\\n", " ").splitlines()
    heredoc: str | None = None
    for line in lines:
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        match = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if match:
            heredoc = match.group(1)
            line = line[: match.start()]
        line = line.split(" #", 1)[0]
        if line.strip().startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                words = words[1:]
            if words and words[0] == "exec":
                words = words[1:]
            if words and words[0] not in SHELL_BUILTINS:
                commands.append(words)
    return commands
