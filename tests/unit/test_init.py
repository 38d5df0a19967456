"""``genops init DATA``: a starter spec from a CSV or Parquet file that passes check-config
and loads as it is, with sensitive attributes and the target marked as suggestions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from genops.cli import main
from genops.core.config import load_config, resolve_config
from genops.workloads.tabular.data.starter import dataset_name


def people(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hours = rng.integers(10, 60, n)
    return pd.DataFrame(
        {
            "person_id": np.arange(1, n + 1),
            "age": rng.integers(18, 90, n),
            "Gender": rng.choice(["F", "M", "X"], n, p=[0.48, 0.48, 0.04]),
            "race": rng.choice(["A", "B", "C"], n),
            "marital_status": rng.choice(["single", "married"], n),
            "hours": hours,
            "city": rng.choice(["north", "south", ""], n, p=[0.5, 0.45, 0.05]),
            "notes": [f"called on day {i} and said the order was late again" for i in range(n)],
            "approved": np.where(hours + rng.normal(0, 10, n) > 45, "yes", "no"),
        }
    )


def test_init_check_config_load_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data" / "Loan Applications.csv"
    data.parent.mkdir()
    people().to_csv(data, index=False)
    out = tmp_path / "specs" / "loans.yaml"
    assert main(["init", str(data), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "left out  person_id: identifier" in printed
    assert "left out  notes: free text" in printed
    text = out.read_text()
    # suggestions are marked in comments; the source is relative to the spec
    assert "  # SUGGESTED target: named like a target ('approved')\n  target: approved\n" in text
    assert "  # SUGGESTED: 'yes' reads as the positive class\n  positive_label: 'yes'\n" in text
    assert "SUGGESTED from the column names" in text
    assert "'age' looks sensitive but is numerical" in text
    assert "sources: [../data/Loan Applications.csv]" in text
    assert "    - person_id  # identifier: increasing whole numbers" in text
    raw = yaml.safe_load(text)["dataset"]
    assert raw["sensitive_attributes"] == ["Gender", "race", "marital_status"]
    assert raw["missing_markers"] == [""]  # the empty cells of 'city'
    # check-config accepts it as it is
    assert main(["check-config", str(out)]) == 0
    assert "# columns: 7 used (7 written, 0 inferred), 2 left out" in capsys.readouterr().out
    # and it loads: every column written, the identifiers and free text left out
    config = load_config(out)
    spec = config.dataset
    assert spec.name == "loan-applications"
    assert spec.sources == [str(data.resolve())]
    assert spec.target == "approved" and spec.positive_label == "yes"
    assert set(spec.columns) == {
        "age",
        "Gender",
        "race",
        "marital_status",
        "hours",
        "city",
        "approved",
    }
    assert spec.columns["city"].allowed == ["north", "south"]
    assert spec.exclude_columns == ["person_id", "notes"]
    resolved = resolve_config(config).config.dataset
    assert resolved.columns == spec.columns
    assert resolved.resolution is not None and resolved.resolution.inferred == {}


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "p.parquet"
    people(200).to_parquet(data, index=False)
    out = tmp_path / "p.yaml"
    out.write_text("mine\n")
    assert main(["init", str(data), "-o", str(out)]) == 2
    assert f"error: {out} exists: pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_text() == "mine\n"
    assert main(["init", str(data), "-o", str(out), "--force", "--target", "race"]) == 0
    config = load_config(out)
    assert config.dataset.target == "race"
    # the target is not also suggested as a sensitive attribute
    assert config.dataset.sensitive_attributes == ["Gender", "marital_status"]


def test_init_guesses_a_target_by_shape_and_says_so(tmp_path: Path) -> None:
    frame = people(300).rename(columns={"approved": "outcome_flag"})
    frame = frame[["hours", "outcome_flag", "city", "race"]]
    frame.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "t.yaml"
    assert main(["init", str(tmp_path / "t.csv"), "-o", str(out)]) == 0
    text = out.read_text()
    assert "SUGGESTED target: the first column with two values: a guess" in text
    assert load_config(out).dataset.target == "outcome_flag"


def test_init_names_what_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"x": np.arange(100.0) * 1.5}).to_csv(tmp_path / "n.csv", index=False)
    assert main(["init", str(tmp_path / "n.csv"), "-o", str(tmp_path / "n.yaml")]) == 2
    assert "no categorical column to use as the target" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv: file not found" in capsys.readouterr().err
    assert (
        main(["init", str(tmp_path / "n.csv"), "--target", "y", "-o", str(tmp_path / "m.yaml")])
        == 2
    )
    assert "--target 'y' is not a column" in capsys.readouterr().err


def test_dataset_names_follow_the_spec_rule() -> None:
    assert dataset_name("/x/Loans 2024.csv.gz") == "loans-2024"
    assert dataset_name("_raw.parquet") == "raw"
    assert dataset_name("__.csv") == "data"
