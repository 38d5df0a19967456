"""Real processes and real signals for the fault suite: start `genops run` as a child
process, find the processes it started by their command lines (/proc), wait for MLflow to
show a state, and read back what the run recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.conftest import ADULT_FAST_CONFIG, REPO, default_sigint

GENOPS = str(Path(sys.executable).with_name("genops"))
MODEL = "adult-synthesizer"
T = TypeVar("T")


def write_config(path: Path, **overrides: Any) -> Path:
    """The fast Adult config with ``overrides`` laid over it (``base:``)."""
    path.write_text(yaml.safe_dump({"base": str(ADULT_FAST_CONFIG), **overrides}))
    return path


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process (Linux /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def descendants(root: int) -> dict[int, str]:
    """Every live process below ``root``: pid -> command line."""
    table = process_table()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmdline) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmdline
                frontier.append(pid)
    return found


def find_descendant(root: int, *needles: str) -> int | None:
    """The pid of a process below ``root`` whose command line holds all ``needles``."""
    for pid, cmdline in descendants(root).items():
        if all(n in cmdline for n in needles):
            return pid
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) is not alive
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(check: Callable[[], T | None], timeout: float, what: str, run: Run | None = None) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and showing
    the run's output) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(
                f"{what}: the run ended first (exit {run.proc.returncode})\n{run.output()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}\n"
                + (run.output() if run is not None else "")
            )
        time.sleep(0.2)


@dataclass
class Run:
    """A `genops run` started as a child process (its own session: signals go to it only)."""

    proc: subprocess.Popen[bytes]
    home: Path
    stdout: Path
    stderr: Path
    started: float

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def output(self) -> str:
        out = self.stdout.read_text(errors="replace") if self.stdout.exists() else ""
        err = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return f"--- stdout\n{out[-6000:]}\n--- stderr\n{err[-6000:]}"

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"`genops run` still running after {timeout:.0f} s\n" + self.output()
            ) from None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def start_run(
    home: Path, config: Path, *extra: str, pipeline: str = "tabular-synth", out: str = "run"
) -> Run:
    """`genops run` in its own session, its output in ``home/<out>.stdout|stderr``."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "GENOPS_"))}
    env |= {"GENOPS_HOME": str(home), "GENOPS_TORCH_THREADS": "1"}
    stdout, stderr = home / f"{out}.stdout", home / f"{out}.stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [GENOPS, "run", pipeline, "--config", str(config), *extra],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=default_sigint,
        )
    return Run(proc, home, stdout, stderr, time.monotonic())


@contextmanager
def running(home: Path, config: Path, *extra: str) -> Iterator[Run]:
    """:func:`start_run`; whatever happens, nothing it started outlives the test."""
    run = start_run(home, config, *extra)
    try:
        yield run
    finally:
        below = descendants(run.proc.pid)
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(30)
        for pid in below:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------- what MLflow recorded


def client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def parent_runs(tracking_uri: str) -> list[Any]:
    c = client(tracking_uri)
    experiments = [e.experiment_id for e in c.search_experiments()]
    if not experiments:
        return []
    runs = c.search_runs(experiments, max_results=100)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def nested_runs(tracking_uri: str, run_id: str) -> list[Any]:
    c = client(tracking_uri)
    run = c.get_run(run_id)
    return c.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )


def step_running(tracking_uri: str, step: str) -> Any:
    """The nested run of ``step`` while it is RUNNING (else None)."""
    if not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return None
    try:
        for parent in parent_runs(tracking_uri):
            for child in nested_runs(tracking_uri, parent.info.run_id):
                if child.data.tags.get("genops.step") == step and child.info.status == "RUNNING":
                    return child
    except Exception:  # the store is being created by the run: not yet
        return None
    return None


def seed_champion(tracking_uri: str) -> str:
    """A registered model with a champion (v1) before the run, so the test can show the
    fault did not move it. The version points at an empty folder: nothing loads it."""
    from genops.core.tracking import use_store

    c = use_store(tracking_uri)
    source = Path(tracking_uri.removeprefix("sqlite:///")).parent / "seed-model"
    source.mkdir(parents=True, exist_ok=True)
    c.create_registered_model(MODEL)
    version = c.create_model_version(MODEL, source.as_uri(), tags={"genops.seed": "true"})
    c.set_registered_model_alias(MODEL, "champion", version.version)
    return str(version.version)


def registry_state(tracking_uri: str) -> tuple[list[str], str | None]:
    """(the versions of the model, the champion's version)."""
    c = client(tracking_uri)
    versions = sorted(v.version for v in c.search_model_versions(f"name = '{MODEL}'"))
    try:
        champion = str(c.get_model_version_by_alias(MODEL, "champion").version)
    except Exception:
        champion = None
    return [str(v) for v in versions], champion


def assert_final_record(
    tracking_uri: str,
    run_id: str,
    status: str,
    step: str,
    failure: str,
) -> Any:
    """The parent run ended with ``status``, names ``step`` and a failure holding
    ``failure``; no nested run is left RUNNING."""
    run = client(tracking_uri).get_run(run_id)
    tags = run.data.tags
    assert run.info.status == status, (run.info.status, tags)
    assert tags.get("genops.failed_step") == step, tags
    assert failure in tags.get("genops.failure", ""), tags
    left = [
        (c.data.tags.get("genops.step"), c.info.status)
        for c in nested_runs(tracking_uri, run_id)
        if c.info.status == "RUNNING"
    ]
    assert not left, f"nested runs left RUNNING: {left}"
    return run


def no_traceback(run: Run) -> None:
    text = run.stdout.read_text(errors="replace") + run.stderr.read_text(errors="replace")
    assert "Traceback" not in text, run.output()
