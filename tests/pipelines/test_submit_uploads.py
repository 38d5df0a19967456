"""`genops submit --config my.yaml` with local files, against a local S3 endpoint (moto's
server) and the recording KFP API of test_submit.py: the upload plan, the rewritten config,
content addressing (a second identical submission uploads nothing), the refusals, and the
start step reading the uploaded config and data back from S3."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from pipelines import submit as submit_mod
from pipelines.submit import main
from tests.conftest import REPO
from tests.pipelines.test_submit import FakeKFP, clean_env, kfp_server  # noqa: F401

BUCKET = "genops-dev-artifacts-123456789012-us-west-2"
CSV = "age,sex,income\n" + "".join(
    f"{20 + i % 50},{'Female' if i % 3 else 'Male'},{'>50K' if i % 4 == 0 else '<=50K'}\n"
    for i in range(300)
)


@pytest.fixture
def bucket(s3_endpoint: str) -> Any:
    """An empty bucket (moto keeps its state in the process: reset first)."""
    urllib.request.urlopen(urllib.request.Request(f"{s3_endpoint}/moto-api/reset", method="POST"))
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return client


def objects(client: Any) -> dict[str, Any]:
    """key -> LastModified of every object in the bucket."""
    found: dict[str, Any] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        found |= {obj["Key"]: obj["LastModified"] for obj in page.get("Contents", [])}
    return found


def my_config(tmp_path: Path) -> Path:
    """A tabular config of one's own: a base file, a CSV beside it (relative path) and one
    in a folder of its own, none of them under pipelines/configs/."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "part1.csv").write_text(CSV)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "part2.csv").write_text(CSV.replace("20,", "21,"))
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {
                    "name": "mine",
                    "sources": ["data/part1.csv", str(tmp_path / "more" / "part2.csv")],
                    "target": "income",
                    "positive_label": ">50K",
                    "sensitive_attributes": ["sex"],
                }
            }
        )
    )
    config = tmp_path / "my.yaml"
    config.write_text("base: base.yaml\nmodel: {epochs: 2}\ntuning: {enabled: false}\n")
    return config


def _submit(tmp_path: Path, *args: str) -> int:
    return main(["--out-dir", str(tmp_path / "dist"), *args])


def test_dry_run_plans_every_upload_and_rewrites_the_paths(
    tmp_path: Path, bucket: Any, capsys: Any
) -> None:
    config = my_config(tmp_path)
    # no pipeline named: the config's (tabular, the default workload) is used
    assert _submit(tmp_path, "--config", str(config), "--bucket", BUCKET, "--dry-run") == 0
    out = capsys.readouterr().out
    assert objects(bucket) == {}, "a dry run writes nothing"
    part1 = hashlib.sha256((tmp_path / "data" / "part1.csv").read_bytes()).hexdigest()
    part2 = hashlib.sha256((tmp_path / "more" / "part2.csv").read_bytes()).hexdigest()
    prefix = f"s3://{BUCKET}/datasets/inputs/sha256"
    assert "Pipeline:        tabular-synth" in out
    assert f"dataset.sources[0]     {tmp_path / 'data' / 'part1.csv'}" in out
    assert f"-> {prefix}/{part1}/part1.csv  [to upload]" in out
    assert f"-> {prefix}/{part2}/part2.csv  [to upload]" in out
    # the config as uploaded: the base merged, the sources rewritten, nothing local left
    shown = [line.removeprefix("  | ") for line in out.splitlines() if line.startswith("  | ")]
    uploaded = yaml.safe_load("\n".join(shown))
    assert uploaded["dataset"]["sources"] == [
        f"{prefix}/{part1}/part1.csv",
        f"{prefix}/{part2}/part2.csv",
    ]
    assert uploaded["model"] == {"epochs": 2} and uploaded["pipeline"] == "tabular-synth"
    assert "base" not in uploaded and str(tmp_path) not in "\n".join(shown)
    digest = hashlib.sha256(("\n".join(shown) + "\n").encode()).hexdigest()
    assert f"-> {prefix}/{digest}/my.yaml  [to upload]" in out
    assert f"config_uri       {prefix}/{digest}/my.yaml" in out


def test_submit_uploads_once_then_finds_everything_there(
    tmp_path: Path,
    bucket: Any,
    kfp_server: FakeKFP,  # noqa: F811 (the fixture of test_submit.py)
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_server.url)
    monkeypatch.setenv("GENOPS_S3_BUCKET", BUCKET)
    config = my_config(tmp_path)
    assert _submit(tmp_path, "tabular-synth", "--config", str(config)) == 0
    out = capsys.readouterr().out
    first = objects(bucket)
    assert len(first) == 3, first  # two CSVs and the config
    assert f"Uploaded 3 object(s) to s3://{BUCKET}/datasets/inputs/ (0 already there)" in out
    run = kfp_server.calls[-1].json()
    config_uri = run["runtime_config"]["parameters"]["config_uri"]
    key = config_uri.removeprefix(f"s3://{BUCKET}/")
    body = bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert key.split("/")[-2] == hashlib.sha256(body).hexdigest(), "addressed by its content"
    for source in yaml.safe_load(body)["dataset"]["sources"]:
        source_key = source.removeprefix(f"s3://{BUCKET}/")
        data = bucket.get_object(Bucket=BUCKET, Key=source_key)["Body"].read()
        assert source_key.split("/")[-2] == hashlib.sha256(data).hexdigest()
    assert f"Config:     {config_uri}" in out

    time.sleep(1.1)  # LastModified has a resolution of a second
    assert _submit(tmp_path, "tabular-synth", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert objects(bucket) == first, "the second submission wrote nothing"
    assert "Uploaded 0 object(s)" in out and "(3 already there)" in out
    assert out.count("[already there]") == 3
    assert kfp_server.calls[-1].json()["runtime_config"]["parameters"]["config_uri"] == config_uri

    # an edit to one source uploads that source and a new config, nothing else
    (tmp_path / "data" / "part1.csv").write_text(CSV + "33,Male,<=50K\n")
    assert _submit(tmp_path, "tabular-synth", "--config", str(config)) == 0
    assert "Uploaded 2 object(s)" in capsys.readouterr().out
    assert len(objects(bucket)) == 5


def test_the_start_step_reads_the_uploaded_config_and_data_from_s3(
    tmp_path: Path, bucket: Any, tracking_uri: str, capsys: Any
) -> None:
    from mlflow.tracking import MlflowClient

    from genops.core import steps

    config = my_config(tmp_path)
    plan = submit_mod.plan_uploads(config, "tabular-synth", BUCKET)
    submit_mod.check_present(plan, submit_mod.s3_client(), strict=True)
    assert submit_mod.upload(plan, submit_mod.s3_client()) == 3
    run_id = steps.start(
        plan.config_uri, tracking_uri, "0.9.0+test", "abc", str(tmp_path / "resolved.yaml")
    )
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags["genops.config_uri"] == plan.config_uri
    assert tags["genops.config_sha256"] == plan.uploads[-1].digest
    resolved = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    # the columns were inferred from the CSVs read back from S3
    assert set(resolved["dataset"]["columns"]) == {"age", "sex", "income"}
    assert resolved["dataset"]["sources"][0].startswith(f"s3://{BUCKET}/datasets/inputs/")


def test_a_folder_source_goes_up_as_a_prefix(tmp_path: Path, bucket: Any) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("one document.\n")
    (corpus / "sub" / "b.txt").write_text("another document.\n")
    (corpus / ".hidden").write_text("left out\n")
    config = tmp_path / "text.yaml"
    config.write_text(
        yaml.safe_dump(
            {"pipeline": "text-lm", "dataset": {"name": "mine", "source": "corpus"}},
        )
    )
    plan = submit_mod.plan_uploads(config, None, BUCKET)
    folder = plan.uploads[0]
    assert folder.field == "dataset.source"
    assert [key.rsplit("/", 2)[-2:] for _, key in folder.files] == [
        ["corpus", "a.txt"],
        ["sub", "b.txt"],
    ]
    assert folder.uri.endswith(f"/sha256/{folder.digest}/corpus")
    client = submit_mod.s3_client()
    submit_mod.check_present(plan, client, strict=True)
    assert submit_mod.upload(plan, client) == 3  # two files and the config
    assert yaml.safe_load(plan.config_text)["dataset"]["source"] == folder.uri
    # the digest covers names and contents: a renamed file is another folder
    (corpus / "sub" / "b.txt").rename(corpus / "sub" / "c.txt")
    assert submit_mod.plan_uploads(config, None, BUCKET).uploads[0].digest != folder.digest
    # the text workload reads the corpus back from the prefix
    from genops.workloads.text.corpus import _list_files

    assert [u.rsplit("/", 1)[-1] for u in _list_files(folder.uri)] == ["a.txt", "b.txt"]


def test_a_source_over_the_limit_is_refused(tmp_path: Path, bucket: Any, capsys: Any) -> None:
    config = my_config(tmp_path)
    args = ["--config", str(config), "--bucket", BUCKET, "--dry-run", "--max-upload-mb", "0.002"]
    assert _submit(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert f"dataset.sources[0]: {tmp_path / 'data' / 'part1.csv'} is" in err
    assert "over the upload limit of 2.0 KB" in err and "--max-upload-mb" in err


def test_a_bucket_it_cannot_write_to_is_named_with_the_aws_error(
    tmp_path: Path,
    bucket: Any,
    kfp_server: FakeKFP,  # noqa: F811 (the fixture of test_submit.py)
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_server.url)
    config = my_config(tmp_path)
    assert _submit(tmp_path, "--config", str(config), "--bucket", "no-such-bucket") == 1
    err = capsys.readouterr().err
    assert "cannot read bucket no-such-bucket: NoSuchBucket" in err
    assert kfp_server.calls == [], "nothing was submitted"


def test_no_bucket_is_a_clear_error_and_terraform_outputs_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    config = my_config(tmp_path)
    monkeypatch.delenv("GENOPS_S3_BUCKET", raising=False)
    monkeypatch.delenv("GENOPS_ENV", raising=False)
    assert _submit(tmp_path, "--config", str(config), "--dry-run") == 2
    assert "--bucket, $GENOPS_S3_BUCKET, or --env" in capsys.readouterr().err
    outputs = REPO / "tests" / "terraform" / "fixtures" / "dev-outputs.json"
    monkeypatch.setenv("GENOPS_TF_OUTPUTS", str(outputs))
    assert submit_mod.resolve_bucket(None, "dev") == (BUCKET, "datasets/inputs/")
    # without credentials the dry run still shows the plan, "not checked"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("GENOPS_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert _submit(tmp_path, "--config", str(config), "--env", "dev", "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"s3://{BUCKET}/datasets/inputs/sha256/" in out
    assert "[not checked: NoCredentialsError" in out


def test_a_config_for_another_pipeline_or_a_missing_source_is_refused(
    tmp_path: Path, capsys: Any
) -> None:
    config = my_config(tmp_path)
    args = ["--bucket", BUCKET, "--dry-run"]
    assert _submit(tmp_path, "text-lm", "--config", str(config), *args) == 2
    assert "is a 'tabular-synth' config" in capsys.readouterr().err
    (tmp_path / "data" / "part1.csv").unlink()
    assert _submit(tmp_path, "--config", str(config), *args) == 2
    assert f"dataset.sources[0]: {tmp_path / 'data' / 'part1.csv'}: no such file" in (
        capsys.readouterr().err
    )
