"""Pre-flight: before any step starts, each source exists, can be read and has a header that
holds every column the spec names (local files, and s3:// through a local S3 endpoint when
credentials allow); YAML syntax errors name the file, line and column."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genops.cli import main
from genops.core.config import ConfigError, load_config, preflight
from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.data.sources import check_sources, read_header
from tests.conftest import SMALL_SPEC, small_frame


def spec_with(*sources: str, **changes: object) -> DatasetSpec:
    return DatasetSpec.model_validate({**SMALL_SPEC, "sources": list(sources), **changes})


def messages(spec: DatasetSpec) -> list[str]:
    return [str(p) for p in check_sources(spec)]


def test_good_sources_pass_in_every_format(tmp_path: Path) -> None:
    frame = small_frame(50)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.csv.gz", index=False)
    frame.to_csv(tmp_path / "t.csv.bz2", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    names = ["t.csv", "t.csv.gz", "t.csv.bz2", "t.parquet"]
    for name in names:
        assert read_header(str(tmp_path / name)) == list(frame.columns), name
    assert check_sources(spec_with(*(str(tmp_path / n) for n in names))) == []


def test_a_missing_file_a_folder_and_an_empty_file_are_named(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "dir.csv").mkdir()
    found = messages(
        spec_with(
            str(tmp_path / "nope.csv"), str(tmp_path / "dir.csv"), str(tmp_path / "empty.csv")
        )
    )
    assert found == [
        f"{tmp_path / 'nope.csv'}: file not found",
        f"{tmp_path / 'dir.csv'}: is a folder, not a file",
        f"{tmp_path / 'empty.csv'}: the file is empty",
    ]
    assert messages(spec_with(str(tmp_path / "x.json"))) == [
        f"{tmp_path / 'x.json'}: cannot tell the format from the name; set dataset.format"
    ]


def test_a_header_without_a_spec_column_names_file_column_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "short.csv.gz"
    small_frame(30).drop(columns=["color", "label"]).to_csv(path, index=False)
    (problem,) = check_sources(spec_with(str(path)))
    assert problem.blocking and problem.subject == str(path)
    assert problem.message.startswith("the header lacks column(s) ['color', 'label']: every ")
    assert "must be in each source" in problem.message
    # an undeclared column the spec names elsewhere (infer mode) is required too
    spec = spec_with(
        str(path),
        columns={"age": {"type": "continuous"}},
        sensitive_attributes=["group"],
        value_map={"shade": {"x": "y"}},
    )
    (problem,) = check_sources(spec)
    assert "['label', 'shade']" in problem.message


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    small_frame(10).to_csv(path, index=False)
    path.chmod(0o000)
    check = (
        "from genops.workloads.tabular.data.sources import SourceProblem, read_header\n"
        f"try:\n    read_header({str(path)!r})\nexcept SourceProblem as exc:\n    print(exc)\n"
    )
    command = [sys.executable, "-c", check]
    if os.geteuid() == 0:
        # root reads any file: check in a process without the capabilities that allow it
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    finally:
        path.chmod(0o600)
    assert result.stdout.strip() == "cannot be read: Permission denied"


def test_s3_sources_are_checked_through_ranged_reads(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="data")
    frame = small_frame(400)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    s3.upload_file(str(tmp_path / "t.parquet"), "data", "t.parquet")
    s3.put_object(
        Bucket="data", Key="t.csv.gz", Body=gzip.compress(frame.to_csv(index=False).encode())
    )
    s3.put_object(
        Bucket="data",
        Key="short.csv",
        Body=frame.drop(columns=["age"]).to_csv(index=False).encode(),
    )
    good = ["s3://data/t.parquet", "s3://data/t.csv.gz"]
    assert read_header(good[0]) == list(frame.columns)
    assert read_header(good[1]) == list(frame.columns)
    assert check_sources(spec_with(*good)) == []
    found = messages(
        spec_with("s3://data/short.csv", "s3://data/absent.csv", "s3://nobucket/x.csv")
    )
    assert found[0].startswith("s3://data/short.csv: the header lacks column(s) ['age']")
    assert found[1] == "s3://data/absent.csv: object not found"
    assert found[2].startswith("s3://nobucket/x.csv: ")


def test_s3_without_credentials_is_a_note_not_a_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (problem,) = check_sources(spec_with("s3://data/t.csv"))
    assert not problem.blocking
    assert str(problem) == "s3://data/t.csv: not checked: no credentials"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": {**SMALL_SPEC, "sources": ["s3://data/t.csv"]}}))
    assert [str(p) for p in preflight(load_config(config))] == [str(problem)]


def test_check_config_and_run_stop_before_any_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "toy.csv"
    small_frame(50).drop(columns=["color"]).to_csv(data, index=False)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": {**SMALL_SPEC, "sources": ["toy.csv"]}}))
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path / "home"))
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"error: pre-flight: {data}: the header lacks column(s) ['color']" in err
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["run", "tabular-synth", "--config", str(config), "--tracking-uri", uri]) == 2
    assert "the header lacks column(s) ['color']" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "home").exists()
    config.write_text(yaml.safe_dump({"dataset": {**SMALL_SPEC, "sources": ["absent.csv"]}}))
    assert main(["check-config", str(config)]) == 2
    assert f"{tmp_path / 'absent.csv'}: file not found" in capsys.readouterr().err


def test_check_config_prints_the_resolved_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = small_frame(200)
    frame["note"] = [f"free text number {i} with several words in it" for i in range(200)]
    frame.insert(0, "id", range(200))
    frame.to_csv(tmp_path / "toy.csv", index=False)
    config = tmp_path / "c.yaml"
    columns = {k: v for k, v in SMALL_SPEC["columns"].items() if k != "color"}  # type: ignore[attr-defined]
    config.write_text(
        yaml.safe_dump({"dataset": {**SMALL_SPEC, "sources": ["toy.csv"], "columns": columns}})
    )
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out)  # still YAML: the summary lines are comments
    assert "color" in resolved["dataset"]["columns"]
    assert resolved["dataset"]["resolution"]["inferred"] == {"color": "categorical: 3 values"}
    assert "# columns: 5 used (4 written, 1 inferred), 2 left out" in out
    assert "#   left out  id: identifier: increasing whole numbers, all 200 distinct" in out
    assert "#   left out  note: free text: 200 distinct values in 200 rows" in out


def test_yaml_syntax_errors_name_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  name: x\n  sources: [a.csv\n  target: y\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    text = str(info.value)
    assert text.startswith(f"{bad}, line 4, column 9: not valid YAML: expected ',' or ']'")
    assert "at line 3, column 12" in text and "<unicode string>" not in text
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("dataset:\n\tname: x\n")
    with pytest.raises(ConfigError, match=rf"{tabs}, line 2, column 1: not valid YAML"):
        load_config(tabs)
    # a base file's error names the base file
    child = tmp_path / "child.yaml"
    child.write_text("base: bad.yaml\n")
    with pytest.raises(ConfigError, match=rf"^{bad}, line 4"):
        load_config(child)


def test_a_yaml_error_in_an_s3_config_names_the_uri(s3_endpoint: str) -> None:
    import boto3

    from genops.core.steps import load_config_uri

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="configs")
    s3.put_object(Bucket="configs", Key="bad.yaml", Body=b"dataset:\n  name: [x\n  target: y\n")
    with pytest.raises(ValueError, match=r"^s3://configs/bad.yaml, line 3, column 9: not valid"):
        load_config_uri("s3://configs/bad.yaml")
