"""What `genops run` shows while a pipeline runs, and the full log it keeps.

Every line the local runner and the steps print goes to one log file under
``$GENOPS_HOME/logs/``. The terminal gets one line per step as it finishes (name, status,
duration, a headline figure), a live progress bar while a step trains (on a terminal only),
and the driver's own notes; ``--verbose`` streams everything as well, as the runner prints it.

Steps talk to the driver through the lines they print: a step's MLflow run announces its
start and end (``genops.core.tracking.announce``: the step's name, its metrics, a headline),
and a training loop's tqdm bar is read as progress. Nothing else is parsed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from genops.core.process import describe_exit
from genops.core.tracking import STEP_MARKER

# tqdm: "TVAE:  40%|####      | 2/5 [00:01<00:02, 1.52epoch/s, loss=3.2]"
PROGRESS = re.compile(
    r"(?:(?P<desc>[^|:]{1,40}):\s*)?(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)"
    r"(?:\s*\[[^\]]*?(?P<unit>[a-z]+)/s)?"
)
TRACEBACK = "Traceback (most recent call last):"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp colours its log lines
# what the terminal calls a step's main output parameter
OUTPUT_LABELS = {
    "start-run": "MLflow run",
    "register-model": "version",
    "promote-model": "replaced version",
    "deploy-model": "endpoint",
    "smoke-test-endpoint": "smoke test",
    "rollback-champion": "restored version",
    "finish-run": "MLflow run",
}
LINE_WIDTH = 100


@dataclass
class TaskRecord:
    """One task of the run, as the driver saw it."""

    name: str  # the KFP task (component) name, e.g. train-synthesizer
    index: int | None = None  # the ParallelFor item (the tuning worker)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    status: str = "running"  # running | ok | FAILED | stopped
    returncode: int | None = None
    process: Any = None  # the task's subprocess.Popen (subprocess runner)
    step: str | None = None  # the MLflow step it announced (genops.step)
    step_run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    headline: str = ""
    failure: str | None = None  # what its step run recorded as the failure
    outputs: dict[str, Any] = field(default_factory=dict)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=400))
    startup: float | None = None  # seconds from the task's process start to its step's start

    @property
    def label(self) -> str:
        return self.name if self.index is None else f"{self.name} {self.index}"

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def traceback(self) -> str:
        """The task's last traceback, as it printed it ('' when none)."""
        lines = list(self.lines)
        starts = [i for i, line in enumerate(lines) if line.strip() == TRACEBACK]
        if not starts:
            return ""
        return "\n".join(line for line in lines[starts[-1] :] if STEP_MARKER not in line)

    def error_line(self) -> str:
        """The exception line of the task's last traceback: 'ValueError: ...' ('' if none)."""
        text = self.traceback()
        if not text:
            return ""
        body = text.splitlines()[1:]
        for i, line in enumerate(body):
            if line and not line[0].isspace():
                message = [line.strip()]
                message += [m.strip() for m in body[i + 1 : i + 3] if m and not m[0].isspace()]
                return " ".join(message)
        return ""


def _format_number(value: float) -> str:
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.4f}"


def headline(record: TaskRecord, figures: tuple[str, ...] = ()) -> str:
    """A step's headline: what the step said, else a figure from its metrics (one of the
    workload's headline ``figures``, a final loss, the split sizes, a gate), and its main
    output parameter when that is short."""
    if record.status == "FAILED":
        return _shorten(record.failure or record.error_line() or _exit(record))
    parts = []
    metrics = record.metrics
    if record.headline:
        parts.append(record.headline)
    elif metrics:
        named = [k for k in figures if k in metrics and not k.endswith("_passed")]
        losses = [k for k in ("final_loss", "train_loss", "loss") if k in metrics]
        losses += sorted(k for k in metrics if k.endswith("_loss") and k not in losses)
        order = {"rows_train": 0, "rows_validation": 1, "rows_holdout": 2}
        rows = sorted(
            (k for k in metrics if k.startswith("rows_")), key=lambda k: (order.get(k, 9), k)
        )
        gates = [k for k in sorted(metrics) if k.endswith("_passed")]
        if named:
            parts.append(f"{named[0]} {_format_number(metrics[named[0]])}")
        elif losses:
            parts.append(f"{losses[0]} {_format_number(metrics[losses[0]])}")
        elif rows:
            parts.append(
                "rows: " + ", ".join(f"{k[5:]} {_format_number(metrics[k])}" for k in rows)
            )
        if gates:
            passed = all(metrics[k] >= 1.0 for k in gates)
            parts.append("gate passed" if passed else "gate failed")
    output = record.outputs.get("Output")
    if isinstance(output, str | int | float) and not isinstance(output, bool):
        text = str(output)
        label = OUTPUT_LABELS.get(record.name, "")
        if record.name == "start-run" and len(text) > 12:
            text = text[:12]
        if text in ("passed", "failed") and any(p.startswith("gate ") for p in parts):
            pass  # the gate said it already
        elif text and len(text) <= 48 and not text.startswith(("{", "[")):
            if not label and text.replace("_", "").isalpha():
                text = text.replace("_", " ")
                label = "decision" if text in ("continue", "mitigate", "stop") else ""
            parts.append(f"{label} {text}".strip())
        elif record.name == "deploy-model" and not text:
            parts.append("nothing deployed")
        elif record.name == "promote-model" and not text:
            parts.append("the first champion")
    return _shorten("; ".join(parts))


def _exit(record: TaskRecord) -> str:
    if record.returncode is None:
        return "failed"
    return describe_exit(record.returncode)


def _shorten(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class RunConsole:
    """The terminal and the log file of one run. Thread-safe: parallel tasks write at once."""

    def __init__(
        self,
        log_path: Path,
        out: TextIO,
        verbose: bool = False,
        figures: tuple[str, ...] = (),
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.out = out
        self.verbose = verbose
        self.figures = figures
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._log = open(log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._lock = threading.RLock()
        self._live = False  # a progress line is on the terminal
        self._pending: dict[int, str] = {}  # per thread: a partial line of driver output
        self.current = threading.local()  # the task this thread runs (TaskRecord)

    # -- output of the runner and the steps

    def driver_write(self, text: str) -> None:
        """What the runner prints in this process (its logging, its task banners)."""
        key = threading.get_ident()
        with self._lock:
            buffered = self._pending.pop(key, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._pending[key] = rest
            record = getattr(self.current, "record", None)
            for line in lines:
                self._write_log(line)
                if self.verbose:
                    self._terminal(line + "\n")
                if record is not None:  # the docker runner prints its task's log here
                    self._parse(record, line.strip())

    def task_line(self, record: TaskRecord, line: str) -> None:
        """One line a task's process printed."""
        line = line.rstrip("\n")
        with self._lock:
            self._write_log(f"    [{record.label}] {line}")
            if self.verbose:
                self._terminal(f"    {line}\n")
            self._parse(record, line)

    def _parse(self, record: TaskRecord, line: str) -> None:
        if line.startswith(STEP_MARKER):
            try:
                event = json.loads(line[len(STEP_MARKER) :])
            except ValueError:
                return
            self._on_marker(record, event)
            return
        record.lines.append(line)
        match = PROGRESS.search(line)
        if match and self.tty and not self.verbose:
            n, total = int(match["n"]), int(match["total"])
            what = (match["desc"] or "").strip()
            unit = "" if match["unit"] in (None, "it") else match["unit"]
            self._progress(record, n, total, " ".join(x for x in (what, unit) if x))

    @staticmethod
    def _on_marker(record: TaskRecord, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            record.step = str(event.get("step") or record.step or "")
            record.step_run_id = str(event.get("run_id") or record.step_run_id or "")
            if record.startup is None and isinstance(event.get("startup_s"), int | float):
                record.startup = float(event["startup_s"])
        elif kind == "end":
            record.step = record.step or str(event.get("step") or "")
            metrics = event.get("metrics") or {}
            record.metrics.update({k: float(v) for k, v in metrics.items()})
            if event.get("headline"):
                record.headline = str(event["headline"])
        elif kind in ("failed", "killed"):
            record.step = record.step or str(event.get("step") or "")
            record.failure = str(event.get("failure") or "")

    # -- the terminal

    def note(self, text: str) -> None:
        """A line from the driver itself, on the terminal and in the log."""
        with self._lock:
            self._write_log(f"[genops] {text}")
            self._clear_live()
            self._terminal(text + "\n")

    def step_finished(self, record: TaskRecord) -> None:
        status = record.status
        line = f"  {record.label:<26} {status:<7} {record.seconds:>6.1f} s"
        text = headline(record, self.figures)
        if text:
            line += f"  {text}"
        with self._lock:
            self._write_log(f"[genops] step {line.strip()}")
            self._clear_live()
            self._terminal(line + "\n")

    def _progress(self, record: TaskRecord, n: int, total: int, what: str) -> None:
        width = 24
        filled = int(width * n / total) if total else 0
        bar = "#" * filled + "-" * (width - filled)
        line = f"  {record.label:<26} running {record.seconds:>6.1f} s  [{bar}] {n}/{total} {what}"
        self._terminal("\r\x1b[2K" + line[: LINE_WIDTH + 20])
        self._live = True

    def _clear_live(self) -> None:
        if self._live:
            self._terminal("\r\x1b[2K")
            self._live = False

    def _terminal(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not stop the run

    def _write_log(self, line: str) -> None:
        try:
            self._log.write(ANSI.sub("", line) + "\n")
            self._log.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        with self._lock:
            for rest in self._pending.values():
                self._write_log(rest)
            self._pending.clear()
            self._clear_live()
            self._log.close()


class DriverStream:
    """A file-like ``sys.stdout``/``sys.stderr`` for the runner's own output."""

    def __init__(self, console: RunConsole) -> None:
        self.console = console

    def write(self, text: str) -> int:
        self.console.driver_write(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"
