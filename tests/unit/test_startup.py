"""Task start-up (issue 18): a step says how long its process had existed when the step
started; `genops run` collects it per task, prints the median, the slowest and their share of
the run, and logs them on the parent run. The library's imports stay light: reading a
tabular run config does not import scikit-learn or fairlearn."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from genops.core.process import seconds_since_start
from genops.core.tracking import STEP_MARKER
from pipelines.console import RunConsole, TaskRecord
from pipelines.local import RunSummary


def test_a_process_knows_how_long_it_has_existed() -> None:
    code = (
        "import time; time.sleep(1.0); "
        "from genops.core.process import seconds_since_start; print(seconds_since_start())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) >= 1.0  # it slept a second before asking
    here = seconds_since_start()
    assert here is not None and here > 0


def test_a_step_start_marker_carries_the_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    from genops.core.tracking import announce

    announce("train", "start", run_id="r1")
    line = capsys.readouterr().out.strip()
    event = json.loads(line[len(STEP_MARKER) :])
    assert event["event"] == "start" and event["startup_s"] > 0


def test_the_console_and_the_summary_report_start_up(tmp_path: Path) -> None:
    console = RunConsole(tmp_path / "run.log", io.StringIO())
    records = {name: TaskRecord(name, started=0.0) for name in ("prepare-data", "train", "bless")}
    for (name, record), startup in zip(records.items(), (2.0, 3.5, 1.0), strict=True):
        payload = {"step": name, "event": "start", "run_id": "x", "startup_s": startup}
        console.task_line(record, f"{STEP_MARKER} {json.dumps(payload)}")
        # a later start (a second nested run in the same task) does not replace it
        payload["startup_s"] = 99.0
        console.task_line(record, f"{STEP_MARKER} {json.dumps(payload)}")
    assert [r.startup for r in records.values()] == [2.0, 3.5, 1.0]
    summary = RunSummary("run", "sqlite:///x.db", "FINISHED", seconds=65.0)
    summary.startups = {name: r.startup for name, r in records.items() if r.startup is not None}
    assert summary.startup_line() == (
        "median 2.0 s, max 3.5 s (train); 3 tasks, 6 s in all = 10 % of the run"
    )
    assert "Task start-up:     median 2.0 s" in summary.render()
    assert summary.startup_figures == {
        "task_startup_median_seconds": 2.0,
        "task_startup_max_seconds": 3.5,
        "orchestration_seconds": 6.5,
        "orchestration_share": 0.1,
    }


def test_step_modules_import_neither_the_bias_metrics_nor_torch() -> None:
    code = (
        "import sys; import genops.workloads.tabular.steps; "
        "from genops.workloads.tabular.bias import BiasConfig; "
        "print(sorted(m for m in ('sklearn', 'fairlearn', 'torch', 'great_expectations') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # nor does an image step module import torch before a step needs it
    code = "import sys, genops.workloads.image.steps; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    # the training step reads its splits without loading scikit-learn (prepare splits)
    code = (
        "import sys; from genops.workloads.tabular.data import read_parquet; "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    code = "from genops.workloads.tabular.bias import dpl; print(dpl.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "genops.workloads.tabular.bias.metrics"
