from __future__ import annotations

from pathlib import Path

import pytest

from genops.cli import main
from tests.conftest import ADULT_FAST_CONFIG


def test_check_config_prints_the_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ADULT_FAST_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "sample_rows: 3000" in out and "epochs: 5" in out


def test_bad_config_exits_2_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {ADULT_FAST_CONFIG}\nmodel: {{epochs: -1}}\n")
    assert main(["check-config", str(bad)]) == 2
    assert "model.epochs" in capsys.readouterr().err
    assert main(["run", "tabular-synth", "--config", str(bad)]) == 2


def test_run_refuses_a_config_written_for_the_other_pipeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "image-diffusion", "--config", str(ADULT_FAST_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert "is a 'tabular-synth' config (its 'pipeline' key), not one for 'image-diffusion'" in err


def test_rollback_with_nothing_registered_says_so(
    tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rollback", "--model", "nothing-synthesizer", "--tracking-uri", tracking_uri])
    assert code == 2
    assert "has no champion: nothing to roll back" in capsys.readouterr().err
    code = main(["promote", "--model", "nothing", "--version", "1", "--tracking-uri", tracking_uri])
    assert code == 2
    assert "nothing has no version 1" in capsys.readouterr().err
