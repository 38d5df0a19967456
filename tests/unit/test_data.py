from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from genops.core.config import load_config
from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.data import (
    DataLoadError,
    DataValidationError,
    content_hash,
    prepare,
    read_table,
)
from genops.workloads.tabular.data.prepare import clean, split
from tests.conftest import ADULT_CONFIG, SMALL_SPEC, small_frame


def toy_spec(path: Path, **changes: object) -> DatasetSpec:
    return DatasetSpec.model_validate({**SMALL_SPEC, "sources": [str(path)], **changes})


def test_read_csv_gz_and_parquet_give_the_same_frame(tmp_path: Path) -> None:
    frame = small_frame(50)
    frame.to_csv(tmp_path / "t.csv.gz", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv = read_table(str(tmp_path / "t.csv.gz"))
    from_pq = read_table(str(tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(from_csv, from_pq, check_dtype=False)
    assert list(from_csv.columns) == list(frame.columns)


def test_missing_markers_become_nan(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("a,b\n1,?\n2,x\n")
    frame = read_table(str(tmp_path / "m.csv"), na_values=["?"])
    assert frame["b"].isna().tolist() == [True, False]


def test_unreadable_sources_say_which_file(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="nope.csv: file not found"):
        read_table(str(tmp_path / "nope.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataLoadError, match="empty.csv: the file is empty"):
        read_table(str(tmp_path / "empty.csv"))
    with pytest.raises(DataLoadError, match="unsupported scheme"):
        read_table("gs://bucket/x.csv")
    with pytest.raises(DataLoadError, match="cannot tell the format"):
        read_table(str(tmp_path / "x.json"))


def test_prepare_splits_stratified_and_reproducibly(tmp_path: Path) -> None:
    path = tmp_path / "toy.csv"
    small_frame(1000).to_csv(path, index=False)
    spec = toy_spec(path)
    first, second = prepare(spec), prepare(spec)
    sizes = (len(first.train), len(first.validation), len(first.holdout))
    assert sizes == (700, 100, 200)
    pd.testing.assert_frame_equal(first.train, second.train)
    assert first.dataset_hash == second.dataset_hash and len(first.dataset_hash) == 64
    rates = [f["label"].eq("yes").mean() for f in (first.train, first.validation, first.holdout)]
    assert max(rates) - min(rates) < 0.02
    assert first.report.success
    assert first.profile["rows"] == 1000
    assert first.train["age"].dtype == "int64" and first.train["income"].dtype == "float64"


def test_content_hash_changes_with_content() -> None:
    frame = small_frame(100)
    other = frame.copy()
    other.loc[0, "age"] += 1
    assert content_hash(frame) == content_hash(frame.copy())
    assert content_hash(frame) != content_hash(other)


# Bad input: each kind fails at prepare with a message naming file, column and rule.


def _bad(tmp_path: Path, frame: pd.DataFrame) -> DataValidationError:
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as info:
        prepare(toy_spec(path))
    assert str(path) in str(info.value)
    return info.value


def test_missing_column_is_named(tmp_path: Path) -> None:
    err = _bad(tmp_path, small_frame(50).drop(columns=["color"]))
    assert "column 'color' failed expect_column_to_exist: column is missing" in str(err)


def test_wrong_type_is_named_with_examples(tmp_path: Path) -> None:
    frame = small_frame(50).astype({"age": object})
    frame.loc[3, "age"] = "old"
    err = _bad(tmp_path, frame)
    assert "column 'age' failed expect_column_values_to_be_in_type_list" in str(err)
    assert "'old'" in str(err)


def test_empty_file_is_reported(tmp_path: Path) -> None:
    err = _bad(tmp_path, small_frame(5).iloc[0:0])
    assert "expect_table_row_count_to_be_between failed: 0 rows" in str(err)


def test_unknown_category_is_named(tmp_path: Path) -> None:
    frame = small_frame(50)
    frame.loc[7, "color"] = "purple"
    err = _bad(tmp_path, frame)
    assert "column 'color' failed expect_column_values_to_be_in_set" in str(err)
    assert "purple" in str(err)
    # the report artifact lists every expectation, passed ones too
    assert not err.report.success
    assert any(o.success for o in err.report.outcomes)
    assert "FAIL" in err.report.to_html()


def test_out_of_range_value_is_named(tmp_path: Path) -> None:
    frame = small_frame(50)
    frame.loc[0, "age"] = 150
    err = _bad(tmp_path, frame)
    assert "column 'age' failed expect_column_values_to_be_between" in str(err)
    assert "150" in str(err)


def test_clean_drops_missing_rows_and_split_sizes() -> None:
    frame = small_frame(200)
    frame.loc[0, "color"] = None
    spec = DatasetSpec.model_validate(SMALL_SPEC)
    cleaned = clean(spec, frame)
    assert len(cleaned) == 199
    train, val, hold = split(spec, cleaned)
    assert len(train) + len(val) + len(hold) == 199


def test_adult_files_prepare_with_value_map_applied() -> None:
    spec = load_config(ADULT_CONFIG).dataset.model_copy(update={"sample_rows": 5000})
    data = prepare(spec)
    assert data.report.success
    labels = set(data.train["income"]) | set(data.holdout["income"])
    assert labels == {"<=50K", ">50K"}  # the test file's '>50K.' was normalised
    assert not data.train.isna().any().any()


def test_s3_source_through_a_local_s3_endpoint(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="genops-data")
    frame = small_frame(300)
    frame.to_parquet(tmp_path / "toy.parquet", index=False)
    s3.upload_file(str(tmp_path / "toy.parquet"), "genops-data", "toy/toy.parquet")
    data = prepare(
        toy_spec(Path("x")).model_copy(update={"sources": ["s3://genops-data/toy/toy.parquet"]})
    )
    assert len(data.train) + len(data.validation) + len(data.holdout) == 300
    with pytest.raises(DataLoadError, match="s3://genops-data/missing.csv: cannot read from S3"):
        read_table("s3://genops-data/missing.csv")
