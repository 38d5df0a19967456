"""Submit a pipeline to Kubeflow Pipelines on the cluster: compile, upload, run.

    genops submit [tabular-synth] [--config my.yaml | pipelines/configs/adult.yaml | s3://...]
                                  [--bucket NAME | --env dev] [--max-upload-mb N]
                                  [--experiment NAME] [--tracking-uri URI] [--host URL]
                                  [--registry HOST] [--run-name NAME] [--dry-run]

Steps: compile for the cluster (pipelines/targets.py settings, images of this version in
``$GENOPS_IMAGE_REGISTRY``), upload the pipeline if KFP does not know it yet, upload the
pipeline version named by ``genops.version.pipeline_version()`` (reused when it exists),
create the experiment if needed, start the run and print its URL. The pipeline defaults to
the one the config names (its ``pipeline`` key).

A config on this machine (any file but the ones under pipelines/configs/, which the images
ship) is uploaded with every local source it names (its workload says which:
:meth:`genops.core.workload.Workload.local_sources`) to the environment's artifact bucket,
under a content-addressed prefix the pipelines may read, ``s3://<bucket>/datasets/inputs/
sha256/<digest>/<name>`` (a folder: the digest of its file list and contents, the files
under ``<name>/``). An object already there is not uploaded again. The uploaded copy of the
config has its ``base:`` chain merged and those paths replaced by their ``s3://`` URIs; the
run gets its URI, and its start step records the URI and the file's sha256 on the MLflow run
(``genops.config_uri``, ``genops.config_sha256``). The bucket: ``--bucket``, else
``$GENOPS_S3_BUCKET``, else Terraform's output ``artifacts_bucket`` of ``--env`` (``make
submit`` passes ``ENV``). A source larger than ``--max-upload-mb`` is refused.

Endpoint and auth, in this order:
- ``--host`` / ``$KFP_HOST`` (or KFP's own ``$KF_PIPELINES_ENDPOINT``), e.g.
  ``http://localhost:8080`` while ``make kfp-ui`` port-forwards the KFP UI (which also serves
  the API); ``$KFP_TOKEN`` is sent as a bearer token when set;
- otherwise the current kubeconfig context (``$KUBE_CONTEXT`` to choose another), through the
  Kubernetes API server's service proxy to ``ml-pipeline`` in ``$KFP_NAMESPACE`` (kubeflow).

``--dry-run`` compiles and prints what would be uploaded (and where, and what the bucket
holds already: read-only calls, "not checked" without credentials) and run; it writes
nothing and contacts no KFP.
Only the standard library is imported at module level: the kfp imports happen in the
functions that need them, so ``genops --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
IMAGE_APP_DIR = "/app"  # the component images keep pipelines/configs/ and data/ here
IMAGE_CONFIG_DIRS = ("pipelines/configs",)  # folders of this repo that the images hold
IN_CLUSTER_TRACKING_URI = "http://mlflow.mlflow.svc.cluster.local:5000"
DEFAULT_NAMESPACE = "kubeflow"
HEALTHZ_PATH = "/apis/v2beta1/healthz"
CONNECT_TIMEOUT_S = 10.0
BUCKET_ENV = "GENOPS_S3_BUCKET"  # the artifact bucket (also the cluster's ConfigMap key)
MAX_UPLOAD_ENV = "GENOPS_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 5000.0
# Under the bucket's datasets/ prefix (terraform/modules/storage): the pipelines' role may
# read it (terraform/modules/iam), not write it.
INPUTS_PREFIX = "datasets/inputs/"

# Exit codes of main(): 0 run started (or dry run printed), 2 bad input or settings (nothing
# was contacted), 1 KFP could not be reached or refused a call.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class SubmitError(Exception):
    """A submission that cannot go on; ``exit_code`` says whether it is the user's input."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Endpoint:
    """Where the KFP API is: an explicit host, or the kubeconfig's API-server proxy."""

    host: str | None
    token: str | None = None
    kube_context: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    ui_host: str | None = None

    def describe(self) -> str:
        if self.host:
            auth = "bearer token from KFP_TOKEN" if self.token else "no token"
            return f"{self.host} ({auth})"
        context = self.kube_context or "current context"
        return f"kubeconfig ({context}) -> service ml-pipeline in namespace {self.namespace}"


@dataclass
class SubmitPlan:
    pipeline: str
    version: str
    git_commit: str
    package_path: Path
    experiment: str
    run_name: str
    arguments: dict[str, str]
    images: dict[str, str]
    endpoint: Endpoint | None
    notes: list[str] = field(default_factory=list)
    uploads: UploadPlan | None = None  # a local config and its sources, to go to S3

    def render(self) -> str:
        lines = [
            f"Pipeline:        {self.pipeline}",
            f"Version:         {self.version}",
            f"Package:         {self.package_path}",
            f"Experiment:      {self.experiment}",
            f"Run name:        {self.run_name}",
            "Endpoint:        "
            + (self.endpoint.describe() if self.endpoint else "not set (KFP_HOST or kubeconfig)"),
            "Arguments:",
            *(f"  {key:<16} {value}" for key, value in self.arguments.items()),
            "Images:",
            *(f"  {task:<28} {image}" for task, image in sorted(self.images.items())),
        ]
        if self.uploads is not None:
            lines.append(self.uploads.render())
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class SubmitResult:
    plan: SubmitPlan
    pipeline_id: str
    pipeline_uploaded: bool
    version_id: str
    version_uploaded: bool
    experiment_id: str
    run_id: str
    run_url: str | None

    def render(self) -> str:
        def state(uploaded: bool) -> str:
            return "uploaded" if uploaded else "already there"

        lines = [
            f"Pipeline:   {self.plan.pipeline} ({self.pipeline_id}, "
            f"{state(self.pipeline_uploaded)})",
            f"Version:    {self.plan.version} ({self.version_id}, {state(self.version_uploaded)})",
            f"Experiment: {self.plan.experiment} ({self.experiment_id})",
            f"Run:        {self.plan.run_name} ({self.run_id})",
            f"Config:     {self.plan.arguments['config_uri']}",
        ]
        if self.plan.uploads is not None:
            for item in self.plan.uploads.uploads:
                lines.append(f"  {item.field:<22} {item.local} -> {item.uri} [{item.state}]")
        if self.run_url:
            lines.append(f"Run URL:    {self.run_url}")
        else:
            lines.append(
                "Run URL:    start `make kfp-ui`, then open "
                f"http://localhost:8080/#/runs/details/{self.run_id}"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------ settings


def resolve_endpoint(host: str | None = None, env: Mapping[str, str] | None = None) -> Endpoint:
    """The KFP endpoint from ``host``, the environment, or a kubeconfig; SubmitError if none."""
    env = os.environ if env is None else env
    host = host or env.get("KFP_HOST") or env.get("KF_PIPELINES_ENDPOINT")
    token = env.get("KFP_TOKEN") or None
    namespace = env.get("KFP_NAMESPACE") or DEFAULT_NAMESPACE
    ui_host = env.get("KFP_UI_HOST") or env.get("KF_PIPELINES_UI_ENDPOINT")
    if host:
        if not host.startswith(("http://", "https://")):
            raise SubmitError(
                f"KFP endpoint {host!r} must start with http:// or https://", EXIT_USAGE
            )
        host = host.rstrip("/")
        return Endpoint(host=host, token=token, namespace=namespace, ui_host=ui_host or host)
    kubeconfigs = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if not kubeconfigs:
        kubeconfigs = [str(Path(env.get("HOME", str(Path.home()))) / ".kube" / "config")]
    if not any(Path(p).is_file() for p in kubeconfigs):
        raise SubmitError(
            "no Kubeflow Pipelines endpoint: set KFP_HOST (for example http://localhost:8080 "
            "while `make kfp-ui` port-forwards the KFP UI) and KFP_TOKEN if the endpoint needs "
            "one, or point a kubeconfig at the cluster (`make platform` writes one with "
            f"`aws eks update-kubeconfig`); looked for {', '.join(kubeconfigs)}",
            EXIT_USAGE,
        )
    return Endpoint(
        host=None,
        token=token,
        kube_context=env.get("KUBE_CONTEXT") or None,
        namespace=namespace,
        ui_host=ui_host,
    )


def tracking_uri_for(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """``--tracking-uri``, else $MLFLOW_TRACKING_URI when it is a server, else the in-cluster
    MLflow service. A local store (sqlite:, file:, a path) cannot be reached from the cluster."""
    env = os.environ if env is None else env
    if explicit:
        if not explicit.startswith(("http://", "https://")):
            raise SubmitError(
                f"--tracking-uri {explicit!r}: the cluster needs an http(s) MLflow server, "
                f"e.g. {IN_CLUSTER_TRACKING_URI}",
                EXIT_USAGE,
            )
        return explicit
    from_env = env.get("MLFLOW_TRACKING_URI", "")
    if from_env.startswith(("http://", "https://")):
        return from_env
    return IN_CLUSTER_TRACKING_URI


def config_uri_for(config: str | None, pipeline: str, cwd: Path | None = None) -> str:
    """The config as the pipeline's first step sees it: an s3:// URI, or a path in the image.

    A file of this repo under pipelines/configs/ maps to the same path under /app (the images
    ship that folder and data/); any other local file must go to S3 first.
    """
    from pipelines.registry import DEFAULT_CONFIGS

    config = config or DEFAULT_CONFIGS.get(pipeline)
    if not config:
        raise SubmitError(f"no default config for pipeline {pipeline!r}: pass --config", EXIT_USAGE)
    if config.startswith("s3://"):
        return config
    if "://" in config:
        raise SubmitError(f"--config {config!r}: use an s3:// URI or a file", EXIT_USAGE)
    if config.startswith(IMAGE_APP_DIR + "/"):
        return config  # already a path inside the image
    path = Path(config)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    path = path.resolve()
    if not path.is_file():
        raise SubmitError(f"--config {config}: no such file", EXIT_USAGE)
    for folder in IMAGE_CONFIG_DIRS:
        root = (REPO / folder).resolve()
        if path.is_relative_to(root):
            return f"{IMAGE_APP_DIR}/{path.relative_to(REPO.resolve()).as_posix()}"
    raise SubmitError(
        f"--config {config}: the cluster cannot read this file. Copy it to S3 "
        "(aws s3 cp FILE s3://<artifacts bucket>/configs/) and pass the s3:// URI, or add it "
        f"under {', '.join(IMAGE_CONFIG_DIRS)}/ and rebuild the images (make images push)",
        EXIT_USAGE,
    )


def check_config(config: str | None, pipeline: str | None = None) -> None:
    """Validate a local config file (and that it is written for ``pipeline``) before
    anything is compiled or uploaded."""
    if not config or "://" in config or config.startswith(IMAGE_APP_DIR + "/"):
        return
    from genops.core.config import ConfigError, load_config, load_config_for

    try:
        if pipeline is None:
            load_config(config)
        else:
            load_config_for(config, pipeline)
    except ConfigError as exc:
        raise SubmitError(str(exc), EXIT_USAGE) from exc


def _dirty_tree_note() -> str | None:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "components", "pipelines", "data"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    changed = [line for line in out.splitlines() if "pipelines/dist/" not in line]
    if not changed:
        return None
    return (
        "the working tree has uncommitted changes; the version names the commit HEAD, "
        "so the images of this version may not hold them"
    )


def _images(package_path: Path) -> dict[str, str]:
    import yaml

    docs = list(yaml.safe_load_all(package_path.read_text()))
    executors = docs[0]["deploymentSpec"]["executors"]
    return {
        name.removeprefix("exec-"): spec["container"]["image"] for name, spec in executors.items()
    }


def pipeline_of(config: str | None, cwd: Path | None = None) -> str:
    """The pipeline a local config is written for (its ``pipeline`` key, else the default
    workload's), when the command line names none."""
    if not config or "://" in config:
        raise SubmitError(
            "name the pipeline (e.g. `genops submit tabular-synth`), or pass a local --config "
            "whose 'pipeline' key names it",
            EXIT_USAGE,
        )
    from genops.core.config import ConfigError, load_config

    path = Path(config.removeprefix(IMAGE_APP_DIR + "/"))
    path = path if path.is_absolute() else (cwd or Path.cwd()) / path
    try:
        return load_config(path).pipeline_name
    except ConfigError as exc:
        raise SubmitError(str(exc), EXIT_USAGE) from exc


def plan(
    pipeline: str | None,
    config: str | None = None,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    host: str | None = None,
    registry: str | None = None,
    run_name: str | None = None,
    out_dir: Path | None = None,
    require_endpoint: bool = True,
    env: Mapping[str, str] | None = None,
    bucket: str | None = None,
    env_name: str | None = None,
    max_upload_mb: float | None = None,
) -> SubmitPlan:
    """Everything a submission needs, compiled and checked; contacts nothing (a local config
    and its sources are read and hashed, not uploaded)."""
    from genops.version import git_commit, pipeline_version
    from pipelines.compile import compile_pipeline
    from pipelines.registry import DEFAULT_CONFIGS, PIPELINES
    from pipelines.targets import REGISTRY_ENV

    env = os.environ if env is None else env
    if pipeline is None:
        pipeline = pipeline_of(config)
    if pipeline not in PIPELINES:
        raise SubmitError(
            f"unknown pipeline {pipeline!r}; known: {', '.join(sorted(PIPELINES))}", EXIT_USAGE
        )
    notes: list[str] = []
    endpoint: Endpoint | None
    try:
        endpoint = resolve_endpoint(host, env)
    except SubmitError:
        if require_endpoint:
            raise
        endpoint = None
    registry = registry or env.get(REGISTRY_ENV)
    if not registry:
        message = (
            f"{REGISTRY_ENV} is not set, so the images name localhost:5000, which the cluster "
            "cannot pull; `make submit` reads the ECR registry from Terraform's outputs "
            "(or pass --registry <account>.dkr.ecr.<region>.amazonaws.com)"
        )
        if require_endpoint:
            raise SubmitError(message, EXIT_USAGE)
        notes.append(message)
    config = config or DEFAULT_CONFIGS.get(pipeline)
    if not config:
        raise SubmitError(f"no default config for pipeline {pipeline!r}: pass --config", EXIT_USAGE)
    if "://" in config and not config.startswith("s3://"):
        raise SubmitError(f"--config {config!r}: use an s3:// URI or a file", EXIT_USAGE)
    uploads: UploadPlan | None = None
    local = local_config_path(config)
    if local is None:
        config_uri = config_uri_for(config, pipeline)
        check_config(config, pipeline)
    else:
        check_config(str(local), pipeline)  # a bad config is named before any bucket is
        limit = max_upload_mb
        if limit is None:
            limit = float(env.get(MAX_UPLOAD_ENV) or DEFAULT_MAX_UPLOAD_MB)
        if limit <= 0:
            raise SubmitError(f"--max-upload-mb must be positive (got {limit:g})", EXIT_USAGE)
        name, prefix = resolve_bucket(bucket, env_name or env.get("GENOPS_ENV"), env)
        uploads = plan_uploads(local, pipeline, name, prefix, int(limit * 1024 * 1024))
        config_uri = uploads.config_uri
    tracking = tracking_uri_for(tracking_uri, env)
    version = pipeline_version()
    commit = git_commit()
    package_path = compile_pipeline(
        pipeline, out_dir, version=version, target="cluster", registry=registry
    )
    dirty = _dirty_tree_note()
    if dirty:
        notes.append(dirty)
    return SubmitPlan(
        pipeline=pipeline,
        version=version,
        git_commit=commit,
        package_path=package_path,
        experiment=experiment or pipeline,
        run_name=run_name or f"{pipeline}-{version}-{time.strftime('%Y%m%d-%H%M%S')}",
        arguments={
            "config_uri": config_uri,
            "tracking_uri": tracking,
            "pipeline_version": version,
            "git_commit": commit,
        },
        images=_images(package_path),
        endpoint=endpoint,
        notes=notes,
        uploads=uploads,
    )


# ------------------------------------------------------------------ local configs and sources


@dataclass
class Upload:
    """One local input (the config, or a source it names) and where it goes."""

    field: str  # "config", or the config field, e.g. "dataset.sources[0]"
    local: Path
    uri: str  # s3://bucket/key of a file, s3://bucket/prefix of a folder
    digest: str  # sha256 of a file's bytes, or of a folder's file list and contents
    files: list[tuple[Path, str]]  # (local file, key) for each object
    size: int  # bytes in all
    present: list[bool] | None = None  # per file: already in the bucket (None: not checked)
    check_note: str = ""  # why it was not checked
    uploaded: int = 0  # objects written by this submission

    @property
    def state(self) -> str:
        if self.present is None:
            return f"not checked: {self.check_note}" if self.check_note else "not checked"
        missing, total = self.present.count(False), len(self.present)
        if missing == 0:
            return "already there"
        verb = "uploaded" if self.uploaded else "to upload"
        return (
            verb if missing == total else f"{verb}: {missing} of {total} files (the rest are there)"
        )


@dataclass
class UploadPlan:
    bucket: str
    prefix: str  # the key prefix, e.g. datasets/inputs/
    config_path: Path
    config_text: str  # the uploaded copy of the config
    uploads: list[Upload]  # the sources, then the config

    @property
    def config_uri(self) -> str:
        return self.uploads[-1].uri

    def render(self) -> str:
        lines = [f"Uploads:         s3://{self.bucket}/{self.prefix}sha256/<sha256>/<name>"]
        for item in self.uploads:
            what = "folder, " if len(item.files) != 1 or item.local.is_dir() else ""
            lines.append(
                f"  {item.field:<22} {item.local} ({what}{_size(item.size)}, "
                f"{len(item.files)} file{'s' * (len(item.files) != 1)})"
            )
            lines.append(f"  {'':<22} -> {item.uri}  [{item.state}]")
        lines.append("Config as uploaded:")
        lines += [f"  | {line}" for line in self.config_text.rstrip().splitlines()]
        return "\n".join(lines)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def local_config_path(config: str, cwd: Path | None = None) -> Path | None:
    """The file ``config`` names when it must be uploaded: a local file outside the folders
    the images ship. None: an s3:// URI, a path in the image, or a file the images hold."""
    if "://" in config or config.startswith(IMAGE_APP_DIR + "/"):
        return None
    path = Path(config)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    path = path.resolve()
    for folder in IMAGE_CONFIG_DIRS:
        if path.is_relative_to((REPO / folder).resolve()):
            return None
    if not path.is_file():
        raise SubmitError(f"--config {config}: no such file", EXIT_USAGE)
    return path


def resolve_bucket(
    bucket: str | None, env_name: str | None, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(bucket, key prefix) for uploads: ``--bucket``, else ``$GENOPS_S3_BUCKET``, else
    Terraform's outputs of ``env_name`` (``artifacts_bucket``, ``datasets_uri``)."""
    env = os.environ if env is None else env
    bucket = bucket or env.get(BUCKET_ENV) or None
    if bucket:
        bucket = bucket.removeprefix("s3://").strip("/")
        if not bucket or "/" in bucket:
            raise SubmitError(f"--bucket {bucket!r}: a bucket name, without a path", EXIT_USAGE)
        return bucket, INPUTS_PREFIX
    if not env_name:
        raise SubmitError(
            "the config is a local file, so it and its local sources are uploaded to the "
            "environment's artifact bucket: name it with --bucket, $GENOPS_S3_BUCKET, or "
            "--env dev|prod (`make submit ENV=dev` reads Terraform's output artifacts_bucket)",
            EXIT_USAGE,
        )
    outputs = _terraform_outputs(env_name, env)
    try:
        value = outputs["artifacts_bucket"]
        name = str(value["value"] if isinstance(value, dict) else value)
    except KeyError:
        raise SubmitError(
            f"Terraform outputs of env {env_name} have no artifacts_bucket "
            f"(run `make tf-apply ENV={env_name}` first)"
        ) from None
    prefix = INPUTS_PREFIX
    datasets = outputs.get("datasets_uri")
    uri = str(datasets["value"] if isinstance(datasets, dict) else datasets or "")
    if uri.startswith(f"s3://{name}/"):
        prefix = uri.removeprefix(f"s3://{name}/").rstrip("/") + "/inputs/"
    return name, prefix


def _terraform_outputs(env_name: str, env: Mapping[str, str]) -> dict[str, Any]:
    """``terraform output -json`` of terraform/envs/<env>, or the file $GENOPS_TF_OUTPUTS
    (as docker/registry.sh reads them)."""
    if env.get("GENOPS_TF_OUTPUTS"):
        path = Path(env["GENOPS_TF_OUTPUTS"])
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise SubmitError(f"GENOPS_TF_OUTPUTS={path}: {exc}", EXIT_USAGE) from exc
    if env_name not in ("dev", "prod"):
        raise SubmitError(f"--env must be dev or prod (got {env_name!r})", EXIT_USAGE)
    try:
        done = subprocess.run(
            ["terraform", f"-chdir={REPO / 'terraform' / 'envs' / env_name}", "output", "-json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SubmitError(
            f"cannot read Terraform's outputs of env {env_name} ({exc}): pass --bucket or set "
            f"{BUCKET_ENV}"
        ) from exc
    if done.returncode != 0:
        raise SubmitError(
            f"no Terraform outputs for env {env_name} (run `make tf-apply ENV={env_name}` "
            f"first, or pass --bucket): {done.stderr.strip()[-500:]}"
        )
    return dict(json.loads(done.stdout or "{}"))


def _folder_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, sorted; hidden files and folders left out (the workloads
    leave them out when they read a folder)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_size(field_name: str, path: Path, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise SubmitError(
            f"{field_name}: {path} is {_size(size)}, over the upload limit of "
            f"{_size(max_bytes)}; raise it with --max-upload-mb (or ${MAX_UPLOAD_ENV}), or "
            "upload it yourself and name its s3:// URI in the config",
            EXIT_USAGE,
        )


def plan_source(field_name: str, path: Path, bucket: str, prefix: str, max_bytes: int) -> Upload:
    """Where one local file or folder goes, by the sha256 of its content."""
    if path.is_file():
        size = path.stat().st_size
        _check_size(field_name, path, size, max_bytes)
        digest = _file_sha256(path)
        key = f"{prefix}sha256/{digest}/{path.name}"
        return Upload(field_name, path, f"s3://{bucket}/{key}", digest, [(path, key)], size)
    if path.is_dir():
        files = _folder_files(path)
        if not files:
            raise SubmitError(f"{field_name}: {path} is an empty folder", EXIT_USAGE)
        size = sum(f.stat().st_size for f in files)
        _check_size(field_name, path, size, max_bytes)
        listing = hashlib.sha256()
        for f in files:
            listing.update(f"{f.relative_to(path).as_posix()}\0{_file_sha256(f)}\n".encode())
        digest = listing.hexdigest()
        root = f"{prefix}sha256/{digest}/{path.name}"
        keyed = [(f, f"{root}/{f.relative_to(path).as_posix()}") for f in files]
        return Upload(field_name, path, f"s3://{bucket}/{root}", digest, keyed, size)
    raise SubmitError(f"{field_name}: {path}: no such file or folder", EXIT_USAGE)


def _set_field(raw: dict[str, Any], field_path: tuple[str | int, ...], value: str) -> None:
    node: Any = raw
    for part in field_path[:-1]:
        node = node[part]
    node[field_path[-1]] = value


def plan_uploads(
    config_path: Path,
    pipeline: str | None,
    bucket: str,
    prefix: str = INPUTS_PREFIX,
    max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024),
) -> UploadPlan:
    """Validate a local config and plan the upload of it and its local sources (reads and
    hashes them; contacts nothing)."""
    import yaml

    from genops.core.config import ConfigError, load_raw_config, parse_config
    from genops.core.workload import get_workload

    try:
        raw = load_raw_config(config_path)  # the base: chain merged, sources made absolute
        config = parse_config(raw, origin=str(config_path))
    except ConfigError as exc:
        raise SubmitError(str(exc), EXIT_USAGE) from exc
    if pipeline is not None and config.pipeline_name != pipeline:
        raise SubmitError(
            f"{config_path} is a '{config.pipeline_name}' config (its 'pipeline' key), "
            f"not one for '{pipeline}'",
            EXIT_USAGE,
        )
    uploads: list[Upload] = []
    for source in get_workload(config.pipeline_name).local_sources(config):
        path = Path(source.path).resolve()
        item = plan_source(source.name, path, bucket, prefix, max_bytes)
        uploads.append(item)
        try:
            _set_field(raw, source.field, item.uri)
        except (KeyError, IndexError, TypeError) as exc:
            raise SubmitError(
                f"{config_path}: {source.name} is not in the file to rewrite ({exc})"
            ) from exc
    raw.setdefault("pipeline", config.pipeline_name)
    text = (
        f"# {config_path.name}, uploaded by genops submit: its base: chain merged, its local "
        "sources replaced by their s3:// copies\n" + yaml.safe_dump(raw, sort_keys=False)
    )
    data = text.encode()
    _check_size("config", config_path, len(data), max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    key = f"{prefix}sha256/{digest}/{config_path.name}"
    uploads.append(
        Upload(
            "config", config_path, f"s3://{bucket}/{key}", digest, [(config_path, key)], len(data)
        )
    )
    return UploadPlan(bucket, prefix, config_path, text, uploads)


def s3_client() -> Any:
    """boto3's S3 client, at $GENOPS_S3_ENDPOINT_URL when set (as genops.core.io)."""
    import boto3

    endpoint = os.environ.get("GENOPS_S3_ENDPOINT_URL") or None
    # a session of its own: the credentials of the environment now, not cached ones
    return boto3.session.Session().client("s3", endpoint_url=endpoint)


def _aws_error(exc: Exception) -> tuple[str, str]:
    """(code, message) of a botocore error (or of boto3's transfer error around one)."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code") or "")
    if not code:
        found = re.search(r"An error occurred \((\w+)\)", str(exc))
        code = found.group(1) if found else type(exc).__name__
    message = str(error.get("Message") or exc)
    return code, message


def _bucket_error(bucket: str, action: str, exc: Exception) -> SubmitError:
    code, message = _aws_error(exc)
    if code == "404" and "HeadBucket" in str(exc):
        code, message = "NoSuchBucket", "the bucket does not exist"
    hint = {
        "NoSuchBucket": "the bucket does not exist: check --bucket / $GENOPS_S3_BUCKET / --env",
        "AccessDenied": "these AWS credentials may not write there: use a role that may "
        "(s3:PutObject on the datasets/ prefix)",
        "403": "these AWS credentials may not read or write there",
        "NoCredentialsError": "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID",
    }.get(code, "")
    return SubmitError(
        f"cannot {action} bucket {bucket}: {code}: {message}" + (f" ({hint})" if hint else "")
    )


def check_present(upload_plan: UploadPlan, client: Any, strict: bool) -> None:
    """Which objects the bucket holds already (a HEAD per file; one listing per folder).
    ``strict`` (a real submission): an error is raised; else (a dry run) noted."""
    try:
        client.head_bucket(Bucket=upload_plan.bucket)
    except Exception as exc:
        error = _bucket_error(upload_plan.bucket, "read", exc)
        if strict:
            raise error from exc
        for item in upload_plan.uploads:
            item.present, item.check_note = None, str(error).split(": ", 1)[-1][:300]
        return
    for item in upload_plan.uploads:
        keys = [key for _, key in item.files]
        try:
            if len(keys) == 1 and item.uri.endswith(keys[0]):
                item.present = [_exists(client, upload_plan.bucket, keys[0])]
            else:
                root = item.uri.removeprefix(f"s3://{upload_plan.bucket}/") + "/"
                found: set[str] = set()
                pages = client.get_paginator("list_objects_v2").paginate(
                    Bucket=upload_plan.bucket, Prefix=root
                )
                for page in pages:
                    found |= {str(obj["Key"]) for obj in page.get("Contents", [])}
                item.present = [key in found for key in keys]
        except Exception as exc:
            if strict:
                raise _bucket_error(upload_plan.bucket, "read", exc) from exc
            code, message = _aws_error(exc)
            item.present, item.check_note = None, f"{code}: {message}"[:200]


def _exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _aws_error(exc)[0] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def upload(upload_plan: UploadPlan, client: Any) -> int:
    """Write every object the bucket does not hold yet; returns how many were written."""
    written = 0
    for item in upload_plan.uploads:
        if item.present is None:
            raise SubmitError("internal: upload before check_present")
        for (path, key), there in zip(item.files, item.present, strict=True):
            if there:
                continue
            try:
                if item.field == "config":
                    client.put_object(
                        Bucket=upload_plan.bucket,
                        Key=key,
                        Body=upload_plan.config_text.encode(),
                        ContentType="application/yaml",
                        Metadata={"sha256": item.digest},
                    )
                else:
                    client.upload_file(
                        str(path),
                        upload_plan.bucket,
                        key,
                        ExtraArgs={"Metadata": {"sha256": _file_sha256(path)}},
                    )
            except Exception as exc:
                raise _bucket_error(upload_plan.bucket, "write to", exc) from exc
            item.uploaded += 1
            written += 1
    return written


# ------------------------------------------------------------------ talking to KFP


def _check_reachable(endpoint: Endpoint) -> None:
    """One quick GET of the healthz API, so a wrong or dead endpoint fails in seconds with a
    clear message (kfp.Client would retry and then raise a bare urllib3 error)."""
    assert endpoint.host
    url = endpoint.host + HEALTHZ_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if endpoint.token:
        request.add_header("Authorization", f"Bearer {endpoint.token}")
    try:
        with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise SubmitError(
                f"KFP at {endpoint.host} refused the request (HTTP {exc.code}): set KFP_TOKEN "
                "to a valid token for this endpoint"
            ) from exc
        raise SubmitError(
            f"{url} answered HTTP {exc.code}: is KFP_HOST the KFP API or UI "
            "(e.g. http://localhost:8080 with `make kfp-ui`)?"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SubmitError(
            f"cannot reach Kubeflow Pipelines at {endpoint.host}: {reason}. Is the port-forward "
            "running (`make kfp-ui`) and KFP_HOST right?"
        ) from exc
    try:
        json.loads(body or b"{}")
    except ValueError as exc:
        raise SubmitError(
            f"{url} did not answer JSON: is KFP_HOST the KFP API or UI, not another service?"
        ) from exc


def make_client(endpoint: Endpoint) -> Any:
    """A ``kfp.Client`` for ``endpoint``; SubmitError when KFP cannot be reached."""
    if endpoint.host:
        _check_reachable(endpoint)
    import kfp

    kwargs: dict[str, Any] = {
        "host": endpoint.host,
        "existing_token": endpoint.token,
        "namespace": endpoint.namespace,
        "ui_host": endpoint.ui_host,
    }
    if not endpoint.host:
        kwargs["kube_context"] = endpoint.kube_context
    try:
        with _quiet():
            return kfp.Client(**kwargs)
    except Exception as exc:  # urllib3, kubernetes and ApiException errors alike
        raise SubmitError(
            f"cannot reach Kubeflow Pipelines ({endpoint.describe()}): {exc}"
        ) from exc


@contextlib.contextmanager
def _quiet() -> Any:
    """kfp.Client prints links and warns on every call; the summary says it once."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _find_version_id(client: Any, pipeline_id: str, version: str) -> str | None:
    flt = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": version}]}
    )
    response = client.list_pipeline_versions(pipeline_id=pipeline_id, filter=flt, page_size=10)
    for item in response.pipeline_versions or []:
        if item.display_name == version:
            return str(item.pipeline_version_id)
    return None


def _run_url(endpoint: Endpoint, run_id: str) -> str | None:
    return f"{endpoint.ui_host}/#/runs/details/{run_id}" if endpoint.ui_host else None


def execute(
    submit_plan: SubmitPlan, client_factory: Callable[[Endpoint], Any] = make_client
) -> SubmitResult:
    """Upload (when new) and run ``submit_plan``."""
    endpoint = submit_plan.endpoint
    if endpoint is None:
        raise SubmitError("no Kubeflow Pipelines endpoint", EXIT_USAGE)
    client = client_factory(endpoint)
    package = str(submit_plan.package_path)
    name, version = submit_plan.pipeline, submit_plan.version
    step = "looking up the pipeline"
    try:
        with _quiet():
            pipeline_id = client.get_pipeline_id(name)
            pipeline_uploaded = pipeline_id is None
            if pipeline_id is None:
                step = "uploading the pipeline"
                pipeline_id = client.upload_pipeline(
                    package,
                    pipeline_name=name,
                    description=f"{name}: compiled by genops submit",
                ).pipeline_id
            step = "looking up the pipeline version"
            version_id = _find_version_id(client, pipeline_id, version)
            version_uploaded = version_id is None
            if version_id is None:
                step = "uploading the pipeline version"
                version_id = client.upload_pipeline_version(
                    package,
                    pipeline_version_name=version,
                    pipeline_id=pipeline_id,
                    description=f"genops {version} (commit {submit_plan.git_commit})",
                ).pipeline_version_id
            step = "creating the experiment"
            experiment_id = client.create_experiment(submit_plan.experiment).experiment_id
            step = "starting the run"
            run = client.run_pipeline(
                experiment_id=experiment_id,
                job_name=submit_plan.run_name,
                params=dict(submit_plan.arguments),
                pipeline_id=pipeline_id,
                version_id=version_id,
            )
    except SubmitError:
        raise
    except Exception as exc:
        raise SubmitError(f"Kubeflow Pipelines failed while {step}: {_short(exc)}") from exc
    return SubmitResult(
        plan=submit_plan,
        pipeline_id=str(pipeline_id),
        pipeline_uploaded=pipeline_uploaded,
        version_id=str(version_id),
        version_uploaded=version_uploaded,
        experiment_id=str(experiment_id),
        run_id=str(run.run_id),
        run_url=_run_url(endpoint, str(run.run_id)),
    )


def _short(exc: Exception) -> str:
    status, body = getattr(exc, "status", None), getattr(exc, "body", None)
    if status is not None:
        return f"HTTP {status} {getattr(exc, 'reason', '')}: {str(body or '')[:500]}".strip()
    return str(exc)[:500]


def submit(
    pipeline: str | None,
    config: str | None = None,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    host: str | None = None,
    registry: str | None = None,
    run_name: str | None = None,
    dry_run: bool = False,
    out_dir: Path | None = None,
    out: TextIO | None = None,
    client_factory: Callable[[Endpoint], Any] = make_client,
    bucket: str | None = None,
    env_name: str | None = None,
    max_upload_mb: float | None = None,
) -> SubmitResult | SubmitPlan:
    """Compile ``pipeline`` for the cluster, upload a local config and its sources, and run
    it on KFP (or, dry, print the plan)."""
    out = out or sys.stdout
    submit_plan = plan(
        pipeline,
        config=config,
        experiment=experiment,
        tracking_uri=tracking_uri,
        host=host,
        registry=registry,
        run_name=run_name,
        out_dir=out_dir,
        require_endpoint=not dry_run,
        bucket=bucket,
        env_name=env_name,
        max_upload_mb=max_upload_mb,
    )
    uploads = submit_plan.uploads
    if dry_run:
        if uploads is not None:
            with contextlib.suppress(Exception):  # no boto3 or no credentials: not checked
                check_present(uploads, s3_client(), strict=False)
        print("Dry run: nothing was uploaded or started. Would upload and run:", file=out)
        print(submit_plan.render(), file=out)
        return submit_plan
    for note in submit_plan.notes:
        print(f"note: {note}", file=sys.stderr)
    if uploads is not None:
        client = s3_client()
        check_present(uploads, client, strict=True)
        written = upload(uploads, client)
        skipped = sum(item.present.count(True) for item in uploads.uploads if item.present)
        print(
            f"Uploaded {written} object(s) to s3://{uploads.bucket}/{uploads.prefix} "
            f"({skipped} already there)",
            file=out,
        )
    result = execute(submit_plan, client_factory)
    print(result.render(), file=out)
    return result


# ------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genops submit",
        description="Compile a pipeline for the cluster and run it on Kubeflow Pipelines.",
    )
    parser.add_argument(
        "pipeline",
        nargs="?",
        default=None,
        help="pipeline name, e.g. tabular-synth (default: the one --config names)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="a local config file (uploaded with its local sources), s3:// URI, or a file "
        "under pipelines/configs/ (shipped in the images); default: the pipeline's default",
    )
    parser.add_argument(
        "--bucket",
        default=None,
        help=f"artifact bucket for a local config's uploads (default: ${BUCKET_ENV}, else "
        "Terraform's output artifacts_bucket of --env)",
    )
    parser.add_argument(
        "--env",
        dest="env_name",
        default=None,
        help="the Terraform env (dev, prod) whose artifact bucket takes the uploads "
        "(default: $GENOPS_ENV)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=None,
        help=f"refuse a source larger than this (default: ${MAX_UPLOAD_ENV} or "
        f"{DEFAULT_MAX_UPLOAD_MB:g})",
    )
    parser.add_argument("--experiment", default=None, help="KFP experiment (default: pipeline)")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help=f"MLflow tracking URI seen from the cluster (default: $MLFLOW_TRACKING_URI when "
        f"http(s), else {IN_CLUSTER_TRACKING_URI})",
    )
    parser.add_argument("--host", default=None, help="KFP endpoint (default: $KFP_HOST)")
    parser.add_argument(
        "--registry", default=None, help="image registry (default: $GENOPS_IMAGE_REGISTRY)"
    )
    parser.add_argument(
        "--run-name", default=None, help="run name (default: <pipeline>-<version>-<time>)"
    )
    parser.add_argument("--out-dir", type=Path, default=None, help="where the compiled YAML goes")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be uploaded (and what the bucket holds) and run; write "
        "nothing, contact no KFP",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        submit(
            args.pipeline,
            config=args.config,
            experiment=args.experiment,
            tracking_uri=args.tracking_uri,
            host=args.host,
            registry=args.registry,
            run_name=args.run_name,
            dry_run=args.dry_run,
            out_dir=args.out_dir,
            bucket=args.bucket,
            env_name=args.env_name,
            max_upload_mb=args.max_upload_mb,
        )
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
