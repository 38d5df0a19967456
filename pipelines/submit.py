"""Submit a pipeline to Kubeflow Pipelines on the cluster: compile, upload, run.

    genops submit tabular-synth [--config pipelines/configs/adult.yaml | s3://...]
                                [--experiment NAME] [--tracking-uri URI] [--host URL]
                                [--registry HOST] [--run-name NAME] [--dry-run]

Steps: compile for the cluster (pipelines/targets.py settings, images of this version in
``$GENOPS_IMAGE_REGISTRY``), upload the pipeline if KFP does not know it yet, upload the
pipeline version named by ``genops.version.pipeline_version()`` (reused when it exists),
create the experiment if needed, start the run and print its URL.

Endpoint and auth, in this order:
- ``--host`` / ``$KFP_HOST`` (or KFP's own ``$KF_PIPELINES_ENDPOINT``), e.g.
  ``http://localhost:8080`` while ``make kfp-ui`` port-forwards the KFP UI (which also serves
  the API); ``$KFP_TOKEN`` is sent as a bearer token when set;
- otherwise the current kubeconfig context (``$KUBE_CONTEXT`` to choose another), through the
  Kubernetes API server's service proxy to ``ml-pipeline`` in ``$KFP_NAMESPACE`` (kubeflow).

``--dry-run`` compiles and prints what would be uploaded and run; it contacts nothing.
Only the standard library is imported at module level: the kfp imports happen in the
functions that need them, so ``genops --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
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
        ]
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


def plan(
    pipeline: str,
    config: str | None = None,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    host: str | None = None,
    registry: str | None = None,
    run_name: str | None = None,
    out_dir: Path | None = None,
    require_endpoint: bool = True,
    env: Mapping[str, str] | None = None,
) -> SubmitPlan:
    """Everything a submission needs, compiled and checked; contacts nothing."""
    from genops.version import git_commit, pipeline_version
    from pipelines.compile import compile_pipeline
    from pipelines.registry import DEFAULT_CONFIGS, PIPELINES
    from pipelines.targets import REGISTRY_ENV

    env = os.environ if env is None else env
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
    config_uri = config_uri_for(config, pipeline)
    check_config(config, pipeline)
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
    )


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
    pipeline: str,
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
) -> SubmitResult | SubmitPlan:
    """Compile ``pipeline`` for the cluster and run it on KFP (or, dry, print the plan)."""
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
    )
    if dry_run:
        print("Dry run: nothing was uploaded or started. Would upload and run:", file=out)
        print(submit_plan.render(), file=out)
        return submit_plan
    for note in submit_plan.notes:
        print(f"note: {note}", file=sys.stderr)
    result = execute(submit_plan, client_factory)
    print(result.render(), file=out)
    return result


# ------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genops submit",
        description="Compile a pipeline for the cluster and run it on Kubeflow Pipelines.",
    )
    parser.add_argument("pipeline", help="pipeline name, e.g. tabular-synth")
    parser.add_argument(
        "--config",
        default=None,
        help="s3:// URI, or a file under pipelines/configs/ (shipped in the images); "
        "default: the pipeline's default config",
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
        help="print what would be uploaded and run; contact nothing",
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
        )
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
