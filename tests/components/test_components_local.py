"""Components run through KFP's local subprocess runner (no Docker, no cluster)."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from kfp import dsl, local

from components.tabular import prepare_data, start_run
from tests.conftest import SMALL_SPEC, small_frame


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    root = tmp_path / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


@dsl.pipeline(name="prepare-only")
def prepare_only(config_uri: str, tracking_uri: str) -> dsl.Dataset:
    start = start_run(
        config_uri=config_uri, tracking_uri=tracking_uri, pipeline_version="test", git_commit="abc"
    )
    prep = prepare_data(
        config=start.outputs["config"], tracking_uri=tracking_uri, run_id=start.outputs["Output"]
    )
    return prep.outputs["train"]


def _config(tmp_path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(tmp_path / "toy.csv", index=False)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"dataset": SMALL_SPEC}, sort_keys=False))
    return path


def test_start_run_component_opens_the_parent_run(
    runner: Path, tmp_path: Path, tracking_uri: str
) -> None:
    config = _config(tmp_path, small_frame(100))
    task = start_run(
        config_uri=str(config),
        tracking_uri=tracking_uri,
        pipeline_version="v1",
        git_commit="c0ffee",
    )
    run_id = task.outputs["Output"]
    mlflow.set_tracking_uri(tracking_uri)
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.tags["genops.pipeline_version"] == "v1"
    assert run.data.tags["genops.git_commit"] == "c0ffee"
    resolved = yaml.safe_load(Path(task.outputs["config"].path).read_text())
    assert resolved["dataset"]["name"] == "toy"
    assert resolved["model"]["epochs"] == 100  # defaults are filled in


def test_prepare_component_writes_splits(runner: Path, tmp_path: Path, tracking_uri: str) -> None:
    config = _config(tmp_path, small_frame(500))
    task = prepare_only(config_uri=str(config), tracking_uri=tracking_uri)
    train = pd.read_parquet(task.output.path)
    assert len(train) == 350
    assert list(train.columns) == list(SMALL_SPEC["columns"])
    assert task.output.metadata["rows"] == 350


def test_prepare_component_fails_on_bad_data(
    runner: Path, tmp_path: Path, tracking_uri: str
) -> None:
    frame = small_frame(100)
    frame.loc[0, "group"] = "zzz"
    config = _config(tmp_path, frame)
    with pytest.raises(RuntimeError, match="prepare"):
        prepare_only(config_uri=str(config), tracking_uri=tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["genops.status"] == "failed"
    assert parent.data.tags["genops.failed_step"] == "prepare"
    assert (
        "column 'group' failed expect_column_values_to_be_in_set"
        in parent.data.tags["genops.failure"]
    )
