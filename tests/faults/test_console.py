"""What `genops run` makes of its steps' output: the step lines, the live progress bar, the
error line of a failed step, and the full log (pipelines/console.py), fed real lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from genops.core.tracking import STEP_MARKER
from pipelines.console import RunConsole, TaskRecord, headline

FIGURES = ("fidelity_column_shapes", "utility_tstr_auc", "synthetic_bias_passed")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _marker(**payload: object) -> str:
    return f"{STEP_MARKER} {json.dumps(payload)}"


def test_step_lines_carry_status_duration_and_a_headline(tmp_path: Path) -> None:
    out = io.StringIO()
    console = RunConsole(tmp_path / "run.log", out, figures=FIGURES)
    train = TaskRecord("train-synthesizer", started=0.0, ended=21.5)
    console.task_line(train, _marker(step="train", event="start", run_id="r1"))
    console.task_line(train, "TVAE:  40%|####      | 2/5 [00:01<00:02,  1.52epoch/s]")
    console.task_line(
        train,
        _marker(step="train", event="end", metrics={"final_loss": 3.21, "train_seconds": 9.0}),
    )
    train.status = "ok"
    console.step_finished(train)
    evaluate = TaskRecord("evaluate-synthesizer", started=0.0, ended=30.0, status="ok")
    evaluate.metrics = {"fidelity_column_shapes": 0.9437, "synthetic_bias_passed": 1.0}
    evaluate.outputs = {"Output": "passed"}
    console.step_finished(evaluate)
    console.close()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["train-synthesizer", "ok", "21.5", "s", "final_loss", "3.2100"]
    assert lines[1].split()[:4] == ["evaluate-synthesizer", "ok", "30.0", "s"]
    assert lines[1].endswith("fidelity_column_shapes 0.9437; gate passed")  # not "passed" twice
    assert train.step == "train"  # the MLflow step the task announced
    # not a terminal: no progress bar; the log has everything, the step's lines prefixed
    assert "TVAE" not in out.getvalue()
    log = (tmp_path / "run.log").read_text()
    assert "[train-synthesizer] TVAE:  40%" in log and STEP_MARKER in log


def test_a_progress_bar_on_a_terminal_is_replaced_by_the_step_line(tmp_path: Path) -> None:
    out = Terminal()
    console = RunConsole(tmp_path / "run.log", out)
    train = TaskRecord("train-synthesizer")
    console.task_line(train, "TVAE:  40%|####      | 2/5 [00:01<00:02,  1.52epoch/s]")
    shown = out.getvalue()
    assert "\r" in shown and "[#########---------------] 2/5 TVAE epoch" in shown
    train.status, train.ended = "ok", train.started + 3
    console.step_finished(train)
    assert out.getvalue().endswith("\r\x1b[2K  train-synthesizer          ok         3.0 s\n")


def test_a_failed_step_shows_its_message_not_its_traceback(tmp_path: Path) -> None:
    out = io.StringIO()
    console = RunConsole(tmp_path / "run.log", out)
    prepare = TaskRecord("prepare-data", started=0.0, ended=4.0)
    for line in [
        "Traceback (most recent call last):",
        '  File "steps.py", line 62, in prepare',
        "    validate(frame)",
        "ValueError: adult.csv: column 'age': 3 values below min 17",
        "    [KFP Executor] finished",
    ]:
        console.task_line(prepare, line)
    prepare.status = "FAILED"
    assert prepare.error_line() == "ValueError: adult.csv: column 'age': 3 values below min 17"
    assert prepare.traceback().startswith("Traceback (most recent call last):")
    console.step_finished(prepare)
    assert "FAILED" in out.getvalue() and "column 'age'" in out.getvalue()
    assert "Traceback" not in out.getvalue()
    # what the step's own MLflow run recorded wins over the traceback's last line
    prepare.failure = "adult.csv: column 'age': 3 values below min 17"
    assert headline(prepare) == "adult.csv: column 'age': 3 values below min 17"
    # a step killed by a signal through KFP's `sh -c`: exit status 137
    killed = TaskRecord("train-synthesizer", status="FAILED", returncode=137)
    assert headline(killed) == "killed by SIGKILL"


def test_verbose_streams_everything(tmp_path: Path) -> None:
    out = io.StringIO()
    console = RunConsole(tmp_path / "run.log", out, verbose=True)
    console.driver_write("12:00:00 - INFO - Executing task 'train'\n")
    console.task_line(TaskRecord("train"), "epoch 1")
    console.close()
    assert out.getvalue() == "12:00:00 - INFO - Executing task 'train'\n    epoch 1\n"
