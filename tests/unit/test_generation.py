"""Generation at scale (genops.workloads.tabular.generation/release): shard plans, seeded and
checked Parquet shards in a local folder or S3, the manifest written last, a refused
destination, a broken shard found, nothing left behind by a failed or interrupted release
(a real SIGINT to a real `genops generate`), and the release recorded in MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genops.workloads.tabular import release
from genops.workloads.tabular.generation import (
    MANIFEST,
    GenerationError,
    arrow_schema,
    check_release,
    plan_shards,
    write_shard,
)
from genops.workloads.tabular.models import TVAEParams, TVAESynthesizer
from tests.conftest import REPO, default_sigint, small_frame

TINY = TVAEParams(
    epochs=3, batch_size=100, embedding_dim=8, compress_dims=(16,), decompress_dims=(16,)
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = small_frame(300)
    synth = TVAESynthesizer(
        ["group", "color", "label"], ["age", "income"], TINY, conditional_columns=["group"]
    )
    synth.fit(frame)
    path = tmp_path_factory.mktemp("model") / "synthesizer"
    synth.save(path)
    return path


def read_release(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


# ------------------------------------------------------------------------------ plans
def test_plans_split_rows_evenly_with_distinct_reproducible_seeds() -> None:
    plans = plan_shards(10, 3, seed=7)
    assert [p.rows for p in plans] == [4, 3, 3]
    assert [p.name for p in plans] == [f"part-0000{i}-of-00003.parquet" for i in range(3)]
    assert len({p.seed for p in plans}) == 3
    assert all(0 <= p.seed < 2**53 for p in plans)  # exact as a JSON double (KFP's items)
    assert [p.seed for p in plans] == [p.seed for p in plan_shards(10, 3, seed=7)]
    assert [p.seed for p in plans] != [p.seed for p in plan_shards(10, 3, seed=8)]


@pytest.mark.parametrize(
    ("rows", "shards", "seed", "message"),
    [
        (0, 1, 0, "rows: must be at least 1"),
        (5, 0, 0, "shards: must be between 1"),
        (2, 3, 0, "leaves some empty"),
        (10, 2, -1, "seed: must be non-negative"),
        (True, 1, 0, "rows: expected an integer"),
    ],
)
def test_bad_plan_arguments_are_named(rows: int, shards: int, seed: int, message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        plan_shards(rows, shards, seed)


# ------------------------------------------------------------------ local releases
def test_release_writes_checked_shards_and_a_manifest(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    manifest = release.generate_release(
        str(model_dir), 5_000, 3, str(out), seed=1, workers=2, chunk_rows=700, progress=False
    )
    assert manifest.rows == 5_000 and manifest.shards == 3
    written = json.loads((out / MANIFEST).read_text())
    assert [f["name"] for f in written["files"]] == [p.name for p in plan_shards(5_000, 3, 1)]
    assert [f["rows"] for f in written["files"]] == [1667, 1667, 1666]
    assert all(f["row_groups"] == 3 for f in written["files"])  # 700-row chunks
    frame = read_release(out)
    assert len(frame) == 5_000
    assert list(frame.columns) == ["age", "income", "group", "color", "label"]
    assert str(frame["age"].dtype) == "int64" and str(frame["income"].dtype) == "float64"
    assert set(frame["group"]) <= {"a", "b"} and set(frame["color"]) <= {"red", "green", "blue"}
    assert not list(out.glob(".*tmp*"))  # no staging file left


def test_same_seed_same_rows_whatever_the_workers(model_dir: Path, tmp_path: Path) -> None:
    one = release.generate_release(
        str(model_dir), 2_000, 4, str(tmp_path / "a"), seed=3, workers=1, progress=False
    )
    two = release.generate_release(
        str(model_dir), 2_000, 4, str(tmp_path / "b"), seed=3, workers=2, progress=False
    )
    other = release.generate_release(
        str(model_dir), 2_000, 4, str(tmp_path / "c"), seed=4, workers=2, progress=False
    )
    assert one.files == two.files
    pd.testing.assert_frame_equal(read_release(tmp_path / "a"), read_release(tmp_path / "b"))
    assert not read_release(tmp_path / "a").equals(read_release(tmp_path / "c"))
    assert other.seed == 4


def test_conditions_hold_in_every_row_and_bad_ones_are_refused_before_writing(
    model_dir: Path, tmp_path: Path
) -> None:
    release.generate_release(
        str(model_dir),
        600,
        2,
        str(tmp_path / "b"),
        conditions={"group": "b"},
        workers=1,
        progress=False,
    )
    assert set(read_release(tmp_path / "b")["group"]) == {"b"}
    with pytest.raises(GenerationError, match="unknown value 'z' for column 'group'"):
        release.generate_release(
            str(model_dir), 600, 2, str(tmp_path / "z"), conditions={"group": "z"}
        )
    assert not (tmp_path / "z").exists()


def test_an_existing_release_is_refused_unless_overwritten(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    release.generate_release(str(model_dir), 400, 2, str(out), workers=1, progress=False)
    before = (out / MANIFEST).read_text()
    with pytest.raises(GenerationError, match=r"already holds 3 release file\(s\)"):
        release.generate_release(str(model_dir), 300, 3, str(out), workers=1, progress=False)
    assert (out / MANIFEST).read_text() == before  # nothing lost
    release.generate_release(
        str(model_dir), 300, 3, str(out), workers=1, overwrite=True, progress=False
    )
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST] + [
        p.name for p in plan_shards(300, 3)
    ]


def test_the_check_names_a_short_a_missing_and_a_stray_shard(
    model_dir: Path, tmp_path: Path
) -> None:
    synth = release.load_for_release(str(model_dir))
    schema = arrow_schema(list(synth.columns), synth.dtypes)
    plans = plan_shards(900, 3)
    for plan in plans[:2]:
        write_shard(synth, plan, str(tmp_path))
    short = pa.Table.from_pandas(synth.sample(10, seed=0), schema=schema, preserve_index=False)
    pq.write_table(short, tmp_path / plans[1].name)  # a shard overwritten with 10 rows
    pq.write_table(short, tmp_path / "part-00009-of-00009.parquet")
    with pytest.raises(GenerationError) as caught:
        check_release(str(tmp_path), plans, schema)
    message = str(caught.value)
    assert f"{plans[1].name}: row count: holds 10 rows, the plan says 300" in message
    assert f"{plans[2].name}: missing" in message
    assert "part-00009-of-00009.parquet: not in the plan" in message
    wrong = schema.set(1, pa.field("income", pa.string(), nullable=False))
    with pytest.raises(GenerationError, match=r"schema: holds \(age:int64, income:double"):
        check_release(str(tmp_path), plans[:1], wrong)


def test_a_failed_release_removes_what_it_wrote_and_writes_no_manifest(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = release._run_pool

    def half_then_fail(path: str, plans: list, destination: str, *args: object) -> list:
        real(path, plans[:1], destination, *args)  # one shard published
        # and one a killed writer left staged
        (Path(destination) / f".{plans[1].name}.tmp-999").write_bytes(b"PAR1")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(release, "_run_pool", half_then_fail)
    out = tmp_path / "release"
    with pytest.raises(OSError, match="No space left"):
        release.generate_release(str(model_dir), 600, 3, str(out), workers=1, progress=False)
    assert list(out.iterdir()) == []


def test_ctrl_c_stops_a_release_and_leaves_nothing(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "genops.cli", "generate", "--model", str(model_dir)),
            *("--rows", "3000000", "--shards", "4", "--workers", "2", "--out", str(out)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 120
    while not any(out.glob(".part-*")) and time.monotonic() < deadline:  # shards under way
        assert process.poll() is None, process.communicate()[0].decode()[-2000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 130, output[-2000:]
    assert "interrupted" in output
    assert not out.exists() or list(out.iterdir()) == []


# ------------------------------------------------------------- S3 and the registry
def test_a_release_to_s3_is_checked_from_its_footers(
    model_dir: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="releases")
    uri = "s3://releases/adult/v1"
    manifest = release.generate_release(str(model_dir), 1_000, 2, uri, workers=1, progress=False)
    assert manifest.destination == uri
    names = release.Destination(uri).names()
    assert names == [MANIFEST, "part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    meta = release.Destination(uri).parquet_metadata(names[1])
    assert meta.num_rows == 500
    with pytest.raises(GenerationError, match="already holds 3 release file"):
        release.generate_release(str(model_dir), 1_000, 2, uri, workers=1, progress=False)


def test_a_registered_model_is_released_and_the_release_is_a_run(
    model_dir: Path, tracking_uri: str, tmp_path: Path
) -> None:
    from genops.workloads.tabular.models import load_synthesizer
    from genops.workloads.tabular.pyfunc import log_synthesizer

    example = load_synthesizer(model_dir).sample(5, seed=0)
    with mlflow.start_run() as run:
        info = log_synthesizer(model_dir, example)
    mlflow.register_model(info.model_uri, "toy-synthesizer")
    mlflow.MlflowClient().set_registered_model_alias("toy-synthesizer", "champion", "1")
    manifest = release.generate_release(
        "models:/toy-synthesizer@champion",
        800,
        2,
        str(tmp_path / "out"),
        workers=1,
        tracking_uri=tracking_uri,
        progress=False,
    )
    assert manifest.model == "models:/toy-synthesizer/1"
    runs = mlflow.search_runs(
        [run.info.experiment_id], "tags.`genops.kind` = 'release'", output_format="list"
    )
    assert len(runs) == 1
    logged = runs[0]
    assert logged.data.params["rows"] == "800" and logged.data.params["model_version"] == "1"
    assert logged.data.metrics["rows_per_second"] > 0
    assert logged.data.tags["genops.model"] == "models:/toy-synthesizer/1"
    with pytest.raises(GenerationError, match="no such|not found|RESOURCE_DOES_NOT_EXIST|alias"):
        release.generate_release(
            "models:/toy-synthesizer@nope", 10, 1, str(tmp_path / "x"), tracking_uri=tracking_uri
        )
