"""The record a run leaves when its processes are signalled or die, at the level of the
tracking code: real processes, real signals, a real SQLite store.

- a step stopped by a signal closes its nested run KILLED and tags the parent with the step
  and the signal, even when a library turned the interrupt into an error of its own;
- processes that set up one fresh SQLite store at the same moment all succeed.

(The rest, through `genops run` itself, is in test_pipeline_faults.py.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genops.core.tracking import use_store
from tests.conftest import default_sigint
from tests.faults.helpers import wait_for

PYTHON = sys.executable

# A pipeline run with one step that waits forever inside its MLflow run; with "converts", the
# step turns the interrupt into an error of its own, as pandas' C reader does.
STEP = """
import sys, time
from genops.core.tracking import start_pipeline_run, step_run
uri, ready, mode = sys.argv[1], sys.argv[2], sys.argv[3]
run_id = start_pipeline_run(uri, "signals", "run", {"genops.pipeline": "test"})
with step_run(uri, run_id, "train"):
    open(ready, "w").write(run_id)
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt as exc:
        if mode == "converts":
            raise ValueError("Calling read(nbytes) on source failed") from exc
        raise
"""


def _ready(path: Path) -> str | None:
    return path.read_text() if path.exists() and path.read_text() else None


@pytest.mark.parametrize(
    ("signum", "mode", "failure"),
    [
        (signal.SIGTERM, "plain", "terminated (SIGTERM)"),
        (signal.SIGINT, "converts", "interrupted (SIGINT)"),
    ],
)
def test_a_stopped_step_closes_its_run_killed_and_names_itself(
    tmp_path: Path, signum: int, mode: str, failure: str
) -> None:
    """A stop signal sent to a step's process (SIGTERM: what `kill` or a container runtime
    sends), even when a library turns the interrupt into an error of its own."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [PYTHON, "-c", STEP, uri, str(ready), mode],
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    try:
        run_id = wait_for(lambda: _ready(ready), 120, "the step to start")
        proc.send_signal(signum)
        try:  # closing the runs is a few SQLite writes: seconds, minutes on a loaded machine
            _, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            message = f"the step did not exit after {signum!r}: {err[-3000:]!r}"
            raise AssertionError(message) from None
    finally:
        proc.kill()
    assert proc.returncode != 0, err
    client = use_store(uri)
    parent = client.get_run(run_id)
    assert parent.data.tags["genops.failed_step"] == "train"
    assert parent.data.tags["genops.failure"] == failure
    assert parent.data.tags["genops.status"] == "interrupted"
    (child,) = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert child.info.status == "KILLED"


# Waits for the go file, then sets up the store and creates one experiment.
SETUP = """
import pathlib, sys, time
from genops.core.tracking import ensure_experiment
uri, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.write_text("ready")
while not go.exists():
    time.sleep(0.005)
print(ensure_experiment(uri, "race"))
"""


def test_processes_that_set_up_a_fresh_store_at_once_all_succeed(tmp_path: Path) -> None:
    """The first use of a fresh SQLite store creates and migrates its schema; without the
    store lock two processes doing it at once fail with 'duplicate column name'."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", SETUP, uri, str(tmp_path / f"ready-{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        wait_for(
            lambda: all((tmp_path / f"ready-{i}").exists() for i in range(4)),
            120,
            "the processes to import mlflow",
        )
        time.sleep(0.2)
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "duplicate column" not in err
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, found by all
