"""Spec inference: the columns a spec does not list are inferred from the data (types,
allowed values, ranges); identifiers, free text and dates are left out with their reason;
``columns_mode: listed`` keeps only the listed columns and says which it drops."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from genops.core.config import ConfigError, load_config, parse_config, resolve_config
from genops.core.io import read_table
from genops.workloads.tabular.config import DatasetSpec
from genops.workloads.tabular.data import prepare
from genops.workloads.tabular.data.infer import SpecResolutionError, infer_column
from genops.workloads.tabular.data.prepare import clean
from genops.workloads.tabular.data.resolve import (
    render_spec,
    resolution_summary,
    resolve_spec,
)
from tests.conftest import ADULT_CONFIG, ADULT_FAST_CONFIG

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "the",
    "service",
    "was",
    "slow",
    "and",
    "good",
]


def planted_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A table with every kind of column inference must tell apart."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(10, 0.5, n), 2)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),  # increasing ids
            "token": [str(uuid.UUID(int=int(rng.integers(0, 2**62)) + i)) for i in range(n)],
            "row": rng.permutation(n),  # a shuffled row number
            "age": rng.integers(18, 80, n),
            "income": income,
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "rating": rng.integers(1, 6, n),  # few whole numbers: codes
            "active": rng.choice([True, False], n),
            "opted_in": rng.choice(["yes", "no"], n),
            "signup": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "comment": [" ".join(rng.choice(WORDS, rng.integers(4, 12))) for _ in range(n)],
            "code": [f"C{v:06d}" for v in rng.permutation(n)],  # distinct short strings
            "country": "NZ",  # constant
            "group": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
            "label": np.where(income > np.median(income), "yes", "no"),
        }
    )


@pytest.fixture
def planted_csv(tmp_path: Path) -> Path:
    path = tmp_path / "planted.csv"
    planted_table().to_csv(path, index=False)
    return path


def spec_for(path: Path, **changes: object) -> DatasetSpec:
    raw: dict[str, object] = {
        "name": "planted",
        "sources": [str(path)],
        "target": "label",
        "positive_label": "yes",
        "sensitive_attributes": ["group"],
        "columns": {"income": {"type": "continuous", "min": 0}},
    }
    return DatasetSpec.model_validate({**raw, **changes})


def test_each_kind_of_column_is_inferred_or_left_out_with_its_reason(planted_csv: Path) -> None:
    frame = read_table(str(planted_csv))
    got = {name: infer_column(name, frame[name]) for name in frame.columns}
    kinds = {name: inf.kind for name, inf in got.items()}
    assert kinds == {
        "customer_id": "identifier",
        "token": "identifier",
        "row": "identifier",
        "age": "numerical",
        "income": "numerical",
        "plan": "categorical",
        "rating": "categorical",
        "active": "boolean",
        "opted_in": "boolean",
        "signup": "datetime",
        "comment": "free text",
        "code": "identifier",
        "country": "constant",
        "group": "categorical",
        "label": "boolean",
    }
    kept = {name: inf.spec for name, inf in got.items() if inf.spec is not None}
    assert set(kept) == {"age", "income", "plan", "rating", "active", "opted_in", "group", "label"}
    age = kept["age"]
    assert age.type == "continuous" and (age.min, age.max) == (
        float(frame["age"].min()),
        float(frame["age"].max()),
    )
    assert kept["plan"].allowed == ["basic", "plus", "pro"]
    # SDV's rule: few distinct non-negative whole numbers are codes, written as strings
    assert kept["rating"].type == "categorical" and kept["rating"].allowed == list("12345")
    assert kept["active"].allowed == ["False", "True"]
    assert "increasing whole numbers" in got["customer_id"].note
    assert "UUID" in got["token"].note
    assert "row number" in got["row"].note
    assert got["comment"].note.startswith("free text: 600 distinct values in 600 rows")
    assert got["signup"].note.startswith("dates or times (e.g. '2020-01-01')")
    assert "600 distinct values in 600 rows" in got["code"].note


def test_missing_values_decide_whether_a_column_is_kept() -> None:
    n = 400
    rng = np.random.default_rng(1)
    values = pd.Series(rng.normal(size=n))
    some = values.copy()
    some[:20] = np.nan  # 5 %: kept, with the default null tolerance
    many = values.copy()
    many[:80] = np.nan  # 20 %: drop_rows would drop them
    most = values.copy()
    most[:300] = np.nan
    assert infer_column("x", some).kind == "numerical"
    assert "drop_rows" in infer_column("x", many).note and infer_column("x", many).spec is None
    kept = infer_column("x", many, missing_strategy="category").spec
    assert kept is not None and kept.max_null_fraction == 0.2
    assert infer_column("x", most, "category").note == "mostly missing (75% of rows)"
    # numbers with an undeclared missing marker: say which strings to declare
    text = pd.Series([str(v) for v in range(n)], dtype=object)
    text[:10] = "unknown"
    assert "missing_markers" in infer_column("x", text).note
    assert "['unknown']" in infer_column("x", text).note


def test_names_like_an_identifier_and_codes() -> None:
    n = 500
    rng = np.random.default_rng(2)
    # a customer id repeated across rows is still an identifier
    repeated = pd.Series(rng.integers(10_000, 99_999, n) // 3 * 3)
    assert infer_column("customer_id", repeated).kind == "identifier"
    assert infer_column("customerId", pd.Series(rng.integers(0, 10**9, n))).kind == "identifier"
    # ... but a small code named like one is a category
    assert infer_column("grade_id", pd.Series(rng.integers(1, 5, n))).kind == "categorical"
    # the same numbers under another name are a quantity
    assert infer_column("amount", pd.Series(rng.integers(0, 10**9, n))).kind == "numerical"
    # 0/1 columns are booleans, whole-number floats with gaps are codes, not '3.0'
    assert infer_column("flag", pd.Series(rng.integers(0, 2, n))).kind == "boolean"
    gaps = pd.Series(rng.integers(1, 4, n).astype(float))
    gaps[:5] = np.nan
    spec = infer_column("level", gaps).spec
    assert spec is not None and spec.allowed == ["1", "2", "3"]


def test_resolve_infers_the_unlisted_columns_and_reports_the_rest(planted_csv: Path) -> None:
    spec = resolve_spec(spec_for(planted_csv))
    assert spec.resolution is not None
    assert next(iter(spec.columns)) == "income"  # the written columns first, as written
    assert spec.columns["income"].max is None  # a written column is never second-guessed
    assert set(spec.resolution.inferred) == {
        "age",
        "plan",
        "rating",
        "active",
        "opted_in",
        "group",
        "label",
    }
    assert set(spec.resolution.excluded) == {
        "customer_id",
        "token",
        "row",
        "signup",
        "comment",
        "code",
        "country",
    }
    assert spec.resolution.excluded["comment"].startswith("free text")
    # the target and the sensitive attribute were inferred as categorical
    assert spec.columns["label"].allowed == ["no", "yes"]
    assert "group" in spec.categorical_columns and "age" in spec.continuous_columns
    summary = resolution_summary(spec)
    assert summary[0] == "columns: 8 used (1 written, 7 inferred), 7 left out"
    assert any(line.startswith("  left out  customer_id: identifier") for line in summary)
    # resolving again changes nothing; the resolved spec survives the config artifact
    assert resolve_spec(spec) is spec
    again = DatasetSpec.model_validate(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json"))))
    assert again == spec


def test_the_prepared_data_holds_exactly_the_resolved_columns(planted_csv: Path) -> None:
    spec = resolve_spec(spec_for(planted_csv, exclude_columns=["opted_in"]))
    assert spec.resolution is not None
    assert spec.resolution.excluded["opted_in"] == "left out by the spec (exclude_columns)"
    data = prepare(spec)
    assert data.report.success
    assert list(data.train.columns) == list(spec.columns)
    assert "customer_id" not in data.train and "comment" not in data.train
    assert set(data.train["rating"]) <= {"1", "2", "3", "4", "5"}
    assert set(data.train["active"]) == {"True", "False"}


def test_listed_mode_uses_only_the_listed_columns_and_says_what_it_drops(
    planted_csv: Path,
) -> None:
    listed = {
        "income": {"type": "continuous"},
        "group": {"type": "categorical"},
        "label": {"type": "categorical", "allowed": ["yes", "no"]},
    }
    spec = resolve_spec(spec_for(planted_csv, columns_mode="listed", columns=listed))
    assert list(spec.columns) == ["income", "group", "label"]
    assert spec.resolution is not None and spec.resolution.inferred == {}
    assert spec.resolution.excluded["age"] == "not listed (columns_mode: listed)"
    assert len(spec.resolution.excluded) == 12
    assert list(prepare(spec).train.columns) == ["income", "group", "label"]
    # listed mode still needs the target and the sensitive attributes under columns
    with pytest.raises(ValueError, match="target 'label' is not declared under columns"):
        spec_for(planted_csv, columns_mode="listed")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target": "nope"}, "target 'nope' is not a column of"),
        ({"sensitive_attributes": ["age"]}, "sensitive attribute 'age' cannot be inferred as"),
        ({"sensitive_attributes": ["comment"]}, "'comment' cannot be inferred as categorical: "),
        ({"positive_label": "maybe"}, "positive_label 'maybe' is not a value of the target"),
        ({"exclude_columns": ["nope"]}, "exclude_columns names 'nope', which is not a column"),
        ({"value_map": {"comment": {"a": "b"}}}, "value_map names 'comment', which is left out"),
    ],
)
def test_data_that_cannot_fit_the_spec_is_named(
    planted_csv: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecResolutionError, match=message):
        resolve_spec(spec_for(planted_csv, **changes))


def test_spec_level_mistakes_fail_before_any_data_is_read() -> None:
    base = {"name": "x", "sources": ["x.csv"], "target": "y", "positive_label": "1"}
    cases = [
        ({"exclude_columns": ["y"]}, "under exclude_columns but the spec uses it"),
        (
            {"columns": {"a": {"type": "continuous"}}, "exclude_columns": ["a"]},
            "both declared and under exclude_columns",
        ),
        ({"columns_mode": "listed"}, "columns_mode 'listed' needs the columns listed"),
    ]
    for changes, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_config({"dataset": {**base, **changes}})


def test_a_column_missing_from_one_source_is_left_out(tmp_path: Path) -> None:
    frame = planted_table(300)
    frame.iloc[:150].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[150:].drop(columns=["plan"]).to_csv(tmp_path / "b.csv", index=False)
    spec = resolve_spec(
        spec_for(tmp_path / "a.csv", sources=[str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    )
    assert spec.resolution is not None
    assert spec.resolution.excluded["plan"] == "in 1 of 2 sources only"


def test_rendered_spec_marks_each_column_and_loads_back(planted_csv: Path, tmp_path: Path) -> None:
    spec = resolve_spec(spec_for(planted_csv))
    text = render_spec(spec, header=resolution_summary(spec))
    assert "    # written\n    income:" in text
    assert "    # inferred: numerical: whole numbers in [18, 79]\n    age:" in text
    assert "    - customer_id  # identifier: increasing whole numbers, all 600 distinct" in text
    path = tmp_path / "resolved.yaml"
    path.write_text(text)
    # the rendered spec is a spec: run again, it resolves to the same columns, now written
    reloaded = resolve_spec(load_config(path).dataset)
    assert reloaded.columns == spec.columns
    assert reloaded.resolution is not None and reloaded.resolution.inferred == {}
    assert set(reloaded.resolution.excluded) == set(spec.resolution.excluded)


def test_integer_coded_categories_validate_and_clean_as_strings(tmp_path: Path) -> None:
    """Codes 1, 2, 3 read as numbers (3.0 in a column with gaps) match allowed '1', '2', '3'."""
    path = tmp_path / "codes.csv"
    frame = planted_table(200)[["income", "group", "rating", "label"]]
    frame["rating"] = frame["rating"].astype(float)
    frame.loc[0, "rating"] = np.nan
    frame.to_csv(path, index=False)
    spec = spec_for(
        path,
        columns_mode="listed",
        columns={
            "income": {"type": "continuous"},
            "group": {"type": "categorical"},
            "rating": {"type": "categorical", "allowed": ["1", "2", "3", "4", "5"]},
            "label": {"type": "categorical"},
        },
    )
    data = prepare(spec)
    assert data.report.success
    assert set(data.train["rating"]) <= {"1", "2", "3", "4", "5"}
    # the empty cell is missing (a default marker): its row is dropped, the rest kept
    assert len(clean(spec, read_table(str(path), na_values=spec.missing_markers))) == 199
    assert len(data.train) + len(data.validation) + len(data.holdout) == 199


def test_adult_specs_list_every_column_so_inference_changes_nothing() -> None:
    for path in (ADULT_CONFIG, ADULT_FAST_CONFIG):
        config = load_config(path)
        assert config.dataset.columns_mode == "infer"
        resolution = resolve_config(config)
        spec = resolution.config.dataset
        assert spec.columns == config.dataset.columns
        assert list(spec.columns) == list(config.dataset.columns)
        assert spec.resolution is not None
        assert spec.resolution.inferred == {} and spec.resolution.excluded == {}
        assert resolution.summary == ["columns: 15 used (15 written, 0 inferred), 0 left out"]


def test_the_start_step_resolves_once_and_prepare_logs_the_resolved_spec(
    planted_csv: Path, tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from genops.core import steps as core_steps
    from genops.workloads.tabular import steps

    config = tmp_path / "run.yaml"
    dataset = spec_for(planted_csv).model_dump(mode="json", exclude_none=True)
    config.write_text(yaml.safe_dump({"dataset": dataset, "deploy": {"target": "none"}}))
    resolved = tmp_path / "resolved.yaml"
    run_id = core_steps.start(str(config), tracking_uri, "0.1.0-test", "c0ffee", resolved)
    spec = steps.read_run_config(resolved).dataset
    assert spec.resolution is not None and "age" in spec.columns and "comment" not in spec.columns
    out = steps.PrepareOutputs(*(str(tmp_path / n) for n in ("tr", "va", "ho", "p.html", "v.html")))
    result = steps.prepare(resolved, tracking_uri, run_id, out)
    assert (result["columns_used"], result["columns_inferred"], result["columns_excluded"]) == (
        8,
        7,
        7,
    )
    assert list(pd.read_parquet(out.train).columns) == list(spec.columns)
    printed = capsys.readouterr().out
    assert "# columns: 8 used (1 written, 7 inferred), 7 left out" in printed
    client = mlflow.MlflowClient(tracking_uri)
    (prepare_run,) = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'", output_format="list"
    )
    text = Path(
        client.download_artifacts(prepare_run.info.run_id, "data_spec/resolved_spec.yaml")
    ).read_text()
    assert "    # inferred: categorical: 3 values\n    plan:" in text
    assert "    - comment  # free text: 600 distinct values" in text
    assert prepare_run.data.params["columns_mode"] == "infer"
