"""`genops submit`: dry run, and the calls kfp.Client makes against a recording KFP API.

The fake KFP is a stdlib HTTP server on 127.0.0.1 that answers the KFP v2beta1 API with
minimal valid JSON and records every request (method, path, query, headers, body).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from genops.version import git_commit, pipeline_version
from pipelines import submit as submit_mod
from pipelines.submit import IN_CLUSTER_TRACKING_URI, main

REGISTRY = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
PROXY_PREFIX = "/api/v1/namespaces/kubeflow/services/ml-pipeline:http/proxy"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form_file(self) -> str:
        """The uploaded file of a multipart upload."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=default_policy).parsebytes(head + self.body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                content = part.get_payload(decode=True)
                return content.decode()
        raise AssertionError("no uploadfile in the multipart body")

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class FakeKFP:
    """State of the fake API: what exists, and every call in order."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    pipelines: dict[str, str] = field(default_factory=dict)  # name -> id
    versions: dict[tuple[str, str], str] = field(default_factory=dict)  # (pipeline id, name) -> id
    experiments: dict[str, str] = field(default_factory=dict)
    status: int | None = None  # answer every request with this status when set
    prefix: str = ""  # path prefix (the Kubernetes API proxy)

    def routes(self) -> list[str]:
        return [c.route for c in self.calls]

    def answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        path = call.path
        now = "2026-01-01T00:00:00Z"
        if path == "/apis/v2beta1/healthz":
            return 200, {"commit_sha": "abc", "tag_name": "2.14.3", "multi_user": False}
        if call.method == "GET" and path == "/apis/v2beta1/pipelines":
            wanted = _filter_value(call)
            found = [
                {"pipeline_id": pid, "display_name": name, "created_at": now}
                for name, pid in self.pipelines.items()
                if name == wanted
            ]
            return 200, ({"pipelines": found, "total_size": len(found)} if found else {})
        if call.method == "POST" and path == "/apis/v2beta1/pipelines/upload":
            name = call.query["name"][0]
            pid = f"p-{len(self.pipelines) + 1}"
            self.pipelines[name] = pid
            self.versions[(pid, name)] = f"{pid}-v0"
            return 200, {"pipeline_id": pid, "display_name": name, "created_at": now}
        if call.method == "GET" and path.endswith("/versions"):
            pid = path.split("/")[4]
            wanted = _filter_value(call)
            found = [
                {"pipeline_id": p, "pipeline_version_id": vid, "display_name": n}
                for (p, n), vid in self.versions.items()
                if p == pid and n == wanted
            ]
            return 200, ({"pipeline_versions": found, "total_size": len(found)} if found else {})
        if call.method == "POST" and path == "/apis/v2beta1/pipelines/upload_version":
            pid, name = call.query["pipelineid"][0], call.query["name"][0]
            vid = f"{pid}-v{len(self.versions) + 1}"
            self.versions[(pid, name)] = vid
            return 200, {"pipeline_id": pid, "pipeline_version_id": vid, "display_name": name}
        if call.method == "GET" and path == "/apis/v2beta1/experiments":
            wanted = _filter_value(call)
            found = [
                {"experiment_id": eid, "display_name": name}
                for name, eid in self.experiments.items()
                if name == wanted
            ]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if call.method == "POST" and path == "/apis/v2beta1/experiments":
            name = call.json()["display_name"]
            self.experiments[name] = eid = f"e-{len(self.experiments) + 1}"
            return 200, {"experiment_id": eid, "display_name": name}
        if call.method == "POST" and path == "/apis/v2beta1/runs":
            body = call.json()
            return 200, {
                "run_id": "r-1",
                "display_name": body["display_name"],
                "experiment_id": body["experiment_id"],
                "state": "PENDING",
            }
        return 404, {"error": f"no route {call.route}", "code": 5}


def _filter_value(call: Call) -> str | None:
    predicates = json.loads(call.query.get("filter", ["{}"])[0]).get("predicates", [])
    return predicates[0]["stringValue"] if predicates else None


@pytest.fixture
def kfp_server() -> Iterator[FakeKFP]:
    state = FakeKFP()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            path = parts.path
            if state.prefix and path.startswith(state.prefix):
                path = path[len(state.prefix) :]
            call = Call(
                method=self.command,
                path=path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            state.calls.append(call)
            status, payload = (
                (state.status, {"error": "nope"}) if state.status else state.answer(call)
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No endpoint, token or kubeconfig from the machine running the tests."""
    for key in (
        "KFP_HOST",
        "KF_PIPELINES_ENDPOINT",
        "KFP_TOKEN",
        "KFP_UI_HOST",
        "KF_PIPELINES_UI_ENDPOINT",
        "KFP_NAMESPACE",
        "KUBE_CONTEXT",
        "MLFLOW_TRACKING_URI",
        "GENOPS_TARGET",
        "GENOPS_S3_BUCKET",
        "GENOPS_ENV",
        "GENOPS_TF_OUTPUTS",
        "GENOPS_MAX_UPLOAD_MB",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("GENOPS_IMAGE_REGISTRY", REGISTRY)


def _submit(tmp_path: Path, *args: str) -> int:
    return main(["tabular-synth", "--out-dir", str(tmp_path / "dist"), *args])


def test_dry_run_compiles_and_prints_the_plan_without_contacting_kfp(
    kfp_server: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_server.url)
    assert _submit(tmp_path, "--dry-run", "--experiment", "nightly") == 0
    out = capsys.readouterr().out
    version = pipeline_version()
    assert kfp_server.calls == []
    assert "Dry run: nothing was uploaded or started" in out
    assert f"Version:         {version}" in out
    assert "Experiment:      nightly" in out
    assert "config_uri       /app/pipelines/configs/adult.yaml" in out
    assert f"tracking_uri     {IN_CLUSTER_TRACKING_URI}" in out
    assert f"{REGISTRY}/genops/train-cuda:{version}" in out
    package = tmp_path / "dist" / f"tabular-synth-{version}.yaml"
    assert f"Package:         {package}" in out
    ir = list(yaml.safe_load_all(package.read_text()))
    assert len(ir) == 2, "the cluster IR carries the kubernetes platform spec"


def test_dry_run_needs_no_endpoint_and_says_the_registry_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("GENOPS_IMAGE_REGISTRY")
    assert _submit(tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Endpoint:        not set" in out
    assert "GENOPS_IMAGE_REGISTRY is not set" in out


def test_submit_uploads_pipeline_and_version_then_runs_it(
    kfp_server: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_server.url + "/")
    monkeypatch.setenv("KFP_TOKEN", "s3cret")
    config = "pipelines/configs/adult-fast.yaml"
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert _submit(tmp_path, "--config", config, "--experiment", "ci") == 0
    out = capsys.readouterr().out
    version = pipeline_version()

    routes = [r for r in kfp_server.routes() if r != "GET /apis/v2beta1/healthz"]
    assert routes == [
        "GET /apis/v2beta1/pipelines",  # get_pipeline_id: unknown
        "POST /apis/v2beta1/pipelines/upload",  # new pipeline
        "GET /apis/v2beta1/pipelines/p-1/versions",  # is this version there?
        "POST /apis/v2beta1/pipelines/upload_version",  # the version named by the version
        "GET /apis/v2beta1/experiments",  # create_experiment: look up first
        "POST /apis/v2beta1/experiments",
        "POST /apis/v2beta1/runs",
    ]
    assert kfp_server.routes()[0] == "GET /apis/v2beta1/healthz", "checked before anything"
    assert all(c.headers.get("authorization") == "Bearer s3cret" for c in kfp_server.calls)
    by_route = {c.route: c for c in kfp_server.calls}

    upload = by_route["POST /apis/v2beta1/pipelines/upload"]
    assert upload.query["name"] == ["tabular-synth"]
    uploaded_ir = list(yaml.safe_load_all(upload.form_file()))
    assert uploaded_ir[0]["pipelineInfo"]["name"] == "tabular-synth"
    platform = uploaded_ir[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "tolerations" in platform["exec-train-synthesizer"]

    upload_version = by_route["POST /apis/v2beta1/pipelines/upload_version"]
    assert upload_version.query["name"] == [version]
    assert upload_version.query["pipelineid"] == ["p-1"]
    assert upload_version.form_file() == upload.form_file()

    assert by_route["POST /apis/v2beta1/experiments"].json()["display_name"] == "ci"

    run = by_route["POST /apis/v2beta1/runs"].json()
    assert run["experiment_id"] == "e-1"
    assert run["display_name"].startswith(f"tabular-synth-{version}-")
    assert run["pipeline_version_reference"] == {
        "pipeline_id": "p-1",
        "pipeline_version_id": kfp_server.versions[("p-1", version)],
    }
    assert "pipeline_spec" not in run or run["pipeline_spec"] is None
    assert run["runtime_config"]["parameters"] == {
        "config_uri": "/app/pipelines/configs/adult-fast.yaml",
        "tracking_uri": IN_CLUSTER_TRACKING_URI,
        "pipeline_version": version,
        "git_commit": git_commit(),
    }
    assert f"Run URL:    {kfp_server.url}/#/runs/details/r-1" in out
    assert "Pipeline:   tabular-synth (p-1, uploaded)" in out


def test_submit_reuses_an_existing_pipeline_and_version(
    kfp_server: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    version = pipeline_version()
    kfp_server.pipelines["tabular-synth"] = "p-9"
    kfp_server.versions[("p-9", version)] = "v-9"
    kfp_server.experiments["tabular-synth"] = "e-9"
    monkeypatch.setenv("KFP_HOST", kfp_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert _submit(tmp_path, "--config", "s3://bucket/configs/adult.yaml") == 0
    routes = [r for r in kfp_server.routes() if r != "GET /apis/v2beta1/healthz"]
    assert routes == [
        "GET /apis/v2beta1/pipelines",
        "GET /apis/v2beta1/pipelines/p-9/versions",
        "GET /apis/v2beta1/experiments",
        "POST /apis/v2beta1/runs",
    ]
    run = kfp_server.calls[-1].json()
    assert run["experiment_id"] == "e-9"
    assert run["pipeline_version_reference"]["pipeline_version_id"] == "v-9"
    assert run["runtime_config"]["parameters"]["config_uri"] == "s3://bucket/configs/adult.yaml"
    assert run["runtime_config"]["parameters"]["tracking_uri"] == "http://mlflow.example:5000"
    assert "(v-9, already there)" in capsys.readouterr().out


def test_submit_through_the_kubeconfig_api_proxy(
    kfp_server: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """No KFP_HOST: kfp.Client goes through the API server's service proxy."""
    kfp_server.prefix = PROXY_PREFIX
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": kfp_server.url}}],
                "users": [{"name": "u", "user": {"token": "kube-token"}}],
                "contexts": [{"name": "genops-dev", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "genops-dev",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # the kubernetes client reads $KUBECONFIG once, when first imported
    from kubernetes.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    assert _submit(tmp_path) == 0
    assert kfp_server.calls[-1].route == "POST /apis/v2beta1/runs"
    assert kfp_server.calls[-1].headers.get("authorization") == "Bearer kube-token"
    out = capsys.readouterr().out
    assert "make kfp-ui" in out and "/#/runs/details/r-1" in out


def test_missing_endpoint_is_a_clear_error(tmp_path: Path, capsys: Any) -> None:
    assert _submit(tmp_path) == 2
    err = capsys.readouterr().err
    assert "no Kubeflow Pipelines endpoint" in err
    assert "KFP_HOST" in err and "kubeconfig" in err
    assert not (tmp_path / "dist").exists(), "fails before compiling"


def test_unreachable_endpoint_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("KFP_HOST", f"http://127.0.0.1:{port}")
    assert _submit(tmp_path) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}" in err
    assert "make kfp-ui" in err


def test_rejected_token_is_a_clear_error(
    kfp_server: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    kfp_server.status = 401
    monkeypatch.setenv("KFP_HOST", kfp_server.url)
    assert _submit(tmp_path) == 1
    assert "set KFP_TOKEN" in capsys.readouterr().err
    assert kfp_server.routes() == ["GET /apis/v2beta1/healthz"]


def test_a_failing_api_call_names_the_step(
    kfp_server: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_server.url)
    original = kfp_server.answer

    def refuse_runs(call: Call) -> tuple[int, dict[str, Any]]:
        if call.route == "POST /apis/v2beta1/runs":
            return 400, {"error": "bad run", "code": 3}
        return original(call)

    kfp_server.answer = refuse_runs  # type: ignore[method-assign]
    assert _submit(tmp_path) == 1
    err = capsys.readouterr().err
    assert "failed while starting the run" in err and "HTTP 400" in err


def test_submit_needs_the_image_registry(
    kfp_server: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("GENOPS_IMAGE_REGISTRY")
    monkeypatch.setenv("KFP_HOST", kfp_server.url)
    assert _submit(tmp_path) == 2
    assert "GENOPS_IMAGE_REGISTRY is not set" in capsys.readouterr().err
    assert kfp_server.calls == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, "/app/pipelines/configs/adult.yaml"),
        ("pipelines/configs/adult-fast.yaml", "/app/pipelines/configs/adult-fast.yaml"),
        ("s3://b/k/my.yaml", "s3://b/k/my.yaml"),
        ("/app/pipelines/configs/adult.yaml", "/app/pipelines/configs/adult.yaml"),
    ],
)
def test_config_uri_is_what_the_image_sees(
    config: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert submit_mod.config_uri_for(config, "tabular-synth") == expected


def test_a_config_the_cluster_cannot_read_is_refused(tmp_path: Path, capsys: Any) -> None:
    """A local config is uploaded (tests/pipelines/test_submit_uploads.py), once it is valid;
    other schemes and missing files are refused."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("dataset: {}\n")
    assert _submit(tmp_path, "--dry-run", "--config", str(mine)) == 2
    err = capsys.readouterr().err
    assert f"{mine}: invalid configuration" in err and "dataset.name" in err
    assert _submit(tmp_path, "--dry-run", "--config", "gs://b/k.yaml") == 2
    assert "use an s3:// URI or a file" in capsys.readouterr().err
    assert _submit(tmp_path, "--dry-run", "--config", "pipelines/configs/nope.yaml") == 2
    assert _submit(tmp_path, "--dry-run", "--config", str(tmp_path / "nope.yaml")) == 2
    assert "no such file" in capsys.readouterr().err


def test_tracking_uri_defaults_and_local_stores() -> None:
    assert submit_mod.tracking_uri_for(None, {}) == IN_CLUSTER_TRACKING_URI
    local = {"MLFLOW_TRACKING_URI": "sqlite:///.genops/mlflow.db"}
    assert submit_mod.tracking_uri_for(None, local) == IN_CLUSTER_TRACKING_URI
    server = {"MLFLOW_TRACKING_URI": "https://mlflow.example"}
    assert submit_mod.tracking_uri_for(None, server) == "https://mlflow.example"
    with pytest.raises(submit_mod.SubmitError, match="http"):
        submit_mod.tracking_uri_for("sqlite:///x.db", {})
