from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genops.core.config import ConfigError, load_config, parse_config
from tests.conftest import ADULT_CONFIG, ADULT_FAST_CONFIG, SMALL_SPEC


def test_adult_config_is_valid_and_complete() -> None:
    config = load_config(ADULT_CONFIG)
    spec = config.dataset
    assert spec.target == "income"
    assert spec.sensitive_attributes == ["sex", "race"]
    assert set(spec.continuous_columns) == {
        "age",
        "fnlwgt",
        "education_num",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
    }
    assert len(spec.columns) == 15
    assert all(Path(s).is_file() for s in spec.sources)
    assert config.model_name == "adult-synthesizer"


def test_fast_config_overrides_its_base_key_by_key() -> None:
    base, fast = load_config(ADULT_CONFIG), load_config(ADULT_FAST_CONFIG)
    assert fast.dataset.sample_rows == 3000
    assert fast.model.epochs < base.model.epochs
    # untouched keys come from the base
    assert fast.dataset.columns == base.dataset.columns
    assert fast.model.embedding_dim == base.model.embedding_dim


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # (columns_mode: infer, the default, infers an undeclared target from the data)
        ({"target": "nope", "columns_mode": "listed"}, "target 'nope' is not declared"),
        ({"sensitive_attributes": ["age"]}, "sensitive attribute 'age' must be a categorical"),
        ({"positive_label": "maybe"}, "positive_label 'maybe' is not in the allowed values"),
        ({"name": "Bad Name"}, "dataset.name"),
        ({"sources": []}, "dataset.sources"),
    ],
)
def test_bad_dataset_specs_name_the_problem(change: dict, expected: str) -> None:
    raw = {"dataset": {**SMALL_SPEC, **change}}
    with pytest.raises(ConfigError, match=expected):
        parse_config(raw)


def test_column_rules_are_checked() -> None:
    raw = {"dataset": {**SMALL_SPEC}}
    raw["dataset"]["columns"] = {
        **SMALL_SPEC["columns"],
        "age": {"type": "continuous", "min": 5, "max": 1},
    }
    with pytest.raises(ConfigError, match=r"dataset\.columns\.age.*min \(5.0\) is greater"):
        parse_config(raw)


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"dataset": SMALL_SPEC, "modle": {"epochs": 3}}))
    with pytest.raises(ConfigError, match="modle"):
        load_config(path)


def test_relative_sources_resolve_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text(
        yaml.safe_dump({"dataset": {**SMALL_SPEC, "sources": ["../toy.csv", "s3://b/k.csv"]}})
    )
    spec = load_config(path).dataset
    assert spec.sources == [str(tmp_path / "toy.csv"), "s3://b/k.csv"]


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"bias": {"policy": "mitigate"}, "model": {"conditional": False}},
            "set model.conditional",
        ),
        (
            {
                "tuning": {
                    "search_space": {"learnin_rate": {"type": "float", "low": 0.1, "high": 1}}
                }
            },
            "'learnin_rate' is not a model parameter",
        ),
        ({"tuning": {"enqueue": [{"epochs": 3}]}}, "'epochs' is not in tuning.search_space"),
        ({"tuning": {"storage": "postgresql://u:secret@db/optuna"}}, "must not hold a password"),
    ],
)
def test_inconsistent_settings_are_rejected(override: dict, expected: str) -> None:
    raw = {"dataset": {**SMALL_SPEC}, **override}
    with pytest.raises(ConfigError, match=expected):
        parse_config(raw)
