"""Faults injected into real local runs of the fast Adult pipeline: `genops run` as a child
process, real signals to the real processes (found by their command lines under /proc), and
what the run recorded read back from MLflow.

Every case ends with a parent run in a final state that names the step and the reason, no
nested run left RUNNING, nothing registered (but for the tuning case, where the run recovers
and succeeds), and ``champion`` where it was (a champion, v1, is registered before each run
but the two-first-runs one, whose store must start fresh). Each case stops its run as early
as its fault allows.

The cases are independent runs (one ``$GENOPS_HOME`` each), so they run at the same time,
``GENOPS_FAULT_PARALLEL`` at once (default: the cores + 1, at most 6): the module starts them
all, and each test waits for its own and checks what it left.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.helpers import (
    GENOPS,
    Run,
    alive,
    assert_final_record,
    client,
    descendants,
    find_descendant,
    nested_runs,
    no_traceback,
    parent_runs,
    registry_state,
    running,
    seed_champion,
    start_run,
    step_running,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.e2e

PARALLEL = int(os.environ.get("GENOPS_FAULT_PARALLEL", str(min(6, (os.cpu_count() or 2) + 1))))
# the Python process of a KFP task (not the `sh -c` that starts it, whose script names it too)
TASK = ("-m kfp.dsl.executor_main --component_module_path", "--function_to_execute")
TRIAL_PROCESS = "-m genops.core.tuning.worker --worker"
LONG_TRAINING = {"model": {"epochs": 400}}  # the signal always lands mid-training
REACH_S = 900  # generous: a loaded 2-core machine took 3 minutes to reach training
# Four short trials on two workers. The search space (laid over adult.yaml's) holds only the
# fast config's own settings, so the model trained after tuning is the fast run's model,
# which passes both gates: the run succeeds whatever the trials score.
TUNING = {
    "enabled": True,
    "n_trials": 4,
    "n_workers": 2,
    "trial_epochs": 3,
    "pruner": "none",
    "objective": {"report_every": 3},
    "search_space": {
        "learning_rate": {"type": "categorical", "choices": [0.001]},
        "batch_size": {"type": "categorical", "choices": [250]},
        "embedding_dim": {"type": "categorical", "choices": [128]},
    },
}


@dataclass
class Outcome:
    """What a scenario left: its run(s), the store, and what it saw on the way."""

    runs: list[Run]
    uri: str
    seen: dict[str, Any] = field(default_factory=dict)
    codes: list[int] = field(default_factory=list)

    @property
    def run(self) -> Run:
        return self.runs[0]


SCENARIOS: dict[str, Callable[[Path], Outcome]] = {}


def scenario(fn: Callable[[Path], Outcome]) -> Callable[[Path], Outcome]:
    SCENARIOS[fn.__name__] = fn
    return fn


def _home(tmp: Path, seed: bool = True) -> tuple[Path, str]:
    home = tmp / "home"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    if seed:
        seed_champion(uri)
    return home, uri


@scenario
def train_step_sigkill(tmp: Path) -> Outcome:
    home, uri = _home(tmp)
    with running(home, write_config(tmp / "run.yaml", **LONG_TRAINING)) as run:
        train = wait_for(lambda: step_running(uri, "train"), REACH_S, "training", run)
        pid = wait_for(
            lambda: find_descendant(run.proc.pid, *TASK, "train_synthesizer"),
            60,
            "the train step's process",
            run,
        )
        os.kill(pid, signal.SIGKILL)
        code = run.wait(300)
    return Outcome([run], uri, {"train": train}, [code])


@scenario
def run_sigint(tmp: Path) -> Outcome:
    home, uri = _home(tmp)
    with running(home, write_config(tmp / "run.yaml")) as run:
        prepare = wait_for(lambda: step_running(uri, "prepare"), REACH_S, "prepare", run)
        below = descendants(run.proc.pid)
        os.kill(run.proc.pid, signal.SIGINT)  # what Ctrl-C sends `genops run`
        code = run.wait(120)
        left = [pid for pid in below if alive(pid)]
    return Outcome([run], uri, {"prepare": prepare, "left": left}, [code])


@scenario
def tune_worker_sigkill(tmp: Path) -> Outcome:
    """Worker 1's trial process is killed mid-trial; the run goes on and succeeds."""
    home, uri = _home(tmp)
    config = write_config(
        tmp / "run.yaml",
        tuning=TUNING,
        # never blessed (Adult's fidelity is ~0.9): the champion stays where it was
        blessing={"min_metrics": {"fidelity_quality": 0.999}},
    )
    from genops.core.tuning.study import PID_ATTR, WORKER_ATTR, open_storage

    def running_trial() -> int | None:
        for journal in (home / "optuna").glob("*.journal"):
            storage = open_storage(f"journal://{journal}")
            for study in storage.get_all_studies():
                for t in storage.get_all_trials(study._study_id, deepcopy=False):
                    attrs = t.user_attrs
                    if t.state.name == "RUNNING" and attrs.get(WORKER_ATTR) == 1:
                        return int(attrs[PID_ATTR]) if PID_ATTR in attrs else None
        return None

    with running(home, config) as run:
        pid = wait_for(running_trial, REACH_S, "a trial of worker 1", run)
        cmdline = descendants(run.proc.pid).get(pid, "")
        os.kill(pid, signal.SIGKILL)
        code = run.wait(900)
    trials = []
    for journal in (home / "optuna").glob("*.journal"):
        storage = open_storage(f"journal://{journal}")
        for study in storage.get_all_studies():
            trials += storage.get_all_trials(study._study_id)
    seen = {"killed": pid, "cmdline": cmdline, "trials": trials}
    return Outcome([run], uri, seen, [code])


@scenario
def unwritable_artifact_root(tmp: Path) -> Outcome:
    home, uri = _home(tmp)
    artifacts = home / "mlartifacts"  # where the local store keeps artifacts
    if os.geteuid() == 0:  # root writes anywhere: a file where the folder should be
        artifacts.write_text("not a folder")
    else:
        artifacts.mkdir()
        artifacts.chmod(0o500)
    with running(home, write_config(tmp / "run.yaml")) as run:
        code = run.wait(300)
    return Outcome([run], uri, {}, [code])


@scenario
def two_first_runs_at_once(tmp: Path) -> Outcome:
    """Both set up the same fresh store at the same moment; the data gate under policy
    'block' stops both (Adult's sex gap), after prepare and the gate."""
    home = tmp / "home"
    uri = f"sqlite:///{home / 'mlflow.db'}"
    config = write_config(tmp / "run.yaml", bias={"policy": "block"})
    runs = [start_run(home, config, out=f"run{i}") for i in (1, 2)]
    try:
        codes = [r.wait(900) for r in runs]
    finally:
        for r in runs:
            if r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGKILL)
    return Outcome(runs, uri, {}, codes)


@scenario
def driver_sigkill_then_reconcile(tmp: Path) -> Outcome:
    """SIGKILL of `genops run` itself: its step stops (it watches its driver) and
    `genops runs reconcile` closes the run."""
    home, uri = _home(tmp)
    with running(home, write_config(tmp / "run.yaml")) as run:
        prepare = wait_for(lambda: step_running(uri, "prepare"), REACH_S, "prepare", run)
        below = descendants(run.proc.pid)
        os.kill(run.proc.pid, signal.SIGKILL)
        run.wait(30)
        wait_for(lambda: not any(alive(p) for p in below), 60, "the orphaned step to stop")
    parent_id = prepare.data.tags["mlflow.parentRunId"]
    before = client(uri).get_run(parent_id).info.status
    # beside it: a run whose driver lives (this test process) and one with no driver recorded
    # (a cluster run): reconcile leaves both alone
    from genops.core import process
    from genops.core.tracking import start_pipeline_run

    others = {
        "alive": start_pipeline_run(
            uri, "others", "alive", {}, driver=(process.identity(), "launch-alive")
        ),
        "no driver": start_pipeline_run(uri, "others", "cluster", {}, driver=None),
    }
    done = subprocess.run(
        [GENOPS, "runs", "reconcile", "--tracking-uri", uri], capture_output=True, text=True
    )
    seen = {"prepare": prepare, "before": before, "reconcile": done, "others": others}
    return Outcome([run], uri, seen, [])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Outcome]]]:
    pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="fault")
    futures = {
        name: pool.submit(fn, tmp_path_factory.mktemp(name)) for name, fn in SCENARIOS.items()
    }
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _outcome(outcomes: dict[str, Future[Outcome]], name: str) -> Outcome:
    return outcomes[name].result(timeout=3000)


def _log_of(run: Run) -> str:
    text = run.stderr.read_text() + run.stdout.read_text()
    path = Path(text.split("Full log:")[1].split()[0])
    return (path if path.is_absolute() else Path.cwd() / path).read_text()


def test_sigkill_of_the_train_step_names_the_step_and_the_signal(
    outcomes: dict[str, Future[Outcome]],
) -> None:
    o = _outcome(outcomes, "train_step_sigkill")
    assert o.codes == [1], o.run.output()
    train = o.seen["train"]
    parent = assert_final_record(
        o.uri, train.data.tags["mlflow.parentRunId"], "FAILED", "train", "killed by SIGKILL"
    )
    assert parent.data.tags["genops.status"] == "failed"
    assert client(o.uri).get_run(train.info.run_id).info.status == "FAILED"
    # the terminal: one line per step, then the step, the reason and the log; no traceback
    out, err = o.run.stdout.read_text(), o.run.stderr.read_text()
    assert any(
        line.split()[:2] == ["train-synthesizer", "FAILED"] and "killed by SIGKILL" in line
        for line in out.splitlines()
    ), out
    assert "error: step 'train-synthesizer' failed: its process was killed by SIGKILL" in err
    assert "genops.failed_step = train" in err, err
    assert "[train-synthesizer]" in _log_of(o.run), "the full log keeps the step's output"
    no_traceback(o.run)
    assert registry_state(o.uri) == (["1"], "1")  # nothing registered, champion unmoved


def test_sigint_of_the_run_stops_the_step_and_closes_every_run(
    outcomes: dict[str, Future[Outcome]],
) -> None:
    o = _outcome(outcomes, "run_sigint")
    assert o.codes == [130], o.run.output()
    assert not o.seen["left"], "a step outlived the run"
    prepare = o.seen["prepare"]
    parent = assert_final_record(
        o.uri, prepare.data.tags["mlflow.parentRunId"], "KILLED", "prepare", "interrupted"
    )
    assert parent.data.tags["genops.failure"] == "interrupted (SIGINT)"
    assert parent.data.tags["genops.status"] == "interrupted"
    assert client(o.uri).get_run(prepare.info.run_id).info.status == "KILLED"
    err = o.run.stderr.read_text()
    assert "error: interrupted by SIGINT during step 'prepare-data'" in err, err
    assert "Full log:" in err
    no_traceback(o.run)
    assert registry_state(o.uri) == (["1"], "1")


def test_sigkill_of_one_tune_worker_loses_one_trial_and_the_run_succeeds(
    outcomes: dict[str, Future[Outcome]],
) -> None:
    o = _outcome(outcomes, "tune_worker_sigkill")
    assert TRIAL_PROCESS + " 1" in o.seen["cmdline"], o.seen["cmdline"]
    assert o.codes == [0], o.run.output()
    (parent,) = parent_runs(o.uri)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["genops.status"] == "succeeded"
    assert "genops.failed_step" not in parent.data.tags
    steps = {r.data.tags["genops.step"]: r for r in nested_runs(o.uri, parent.info.run_id)}
    assert all(r.info.status == "FINISHED" for r in steps.values())
    tune = client(o.uri).get_run(steps["tune"].info.run_id)
    # four trials: three completed (the summary used them all), the killed one FAIL
    assert tune.data.metrics["trials_complete"] == 3
    assert tune.data.metrics["trials_fail"] == 1
    study = o.seen["trials"]
    assert sorted(t.state.name for t in study) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    (failed,) = [t for t in study if t.state.name == "FAIL"]
    assert failed.user_attrs["genops_pid"] == o.seen["killed"]
    assert failed.user_attrs["genops_worker"] == 1
    # worker 1 ran the rest of its share in a new trial process
    assert sum(t.user_attrs["genops_worker"] == 1 for t in study) == 2
    trials = nested_runs(o.uri, tune.info.run_id)
    (lost,) = [t for t in trials if t.data.tags["genops.trial_state"] == "FAIL"]
    assert f"(pid {o.seen['killed']}) killed by SIGKILL" in lost.data.tags["genops.error"]
    assert lost.info.status == "FAILED"
    # ... and training went on with the best of them
    best = {k.removeprefix("best_"): v for k, v in tune.data.params.items() if "best_" in k}
    assert set(best) == {"learning_rate", "batch_size", "embedding_dim"}
    train = client(o.uri).get_run(steps["train"].info.run_id)
    assert train.data.tags["genops.tuned"] == "true"
    for key, value in best.items():
        assert float(train.data.params[f"model_{key}"]) == float(value)
    out = o.run.stdout.read_text()
    assert "1 lost" in out and "killed by SIGKILL" in out, out
    # registered (the run succeeded) but not blessed: the champion did not move
    assert registry_state(o.uri) == (["1", "2"], "1")
    no_traceback(o.run)


def test_an_unwritable_artifact_root_fails_start_run_and_closes_it(
    outcomes: dict[str, Future[Outcome]],
) -> None:
    o = _outcome(outcomes, "unwritable_artifact_root")
    assert o.codes == [1], o.run.output()
    (parent,) = parent_runs(o.uri)
    assert_final_record(o.uri, parent.info.run_id, "FAILED", "start-run", "mlartifacts")
    err = o.run.stderr.read_text()
    assert "error: step 'start-run' failed: " in err and "mlartifacts" in err, err
    no_traceback(o.run)
    assert registry_state(o.uri) == (["1"], "1")


def test_two_first_runs_at_once_on_a_fresh_store(outcomes: dict[str, Future[Outcome]]) -> None:
    o = _outcome(outcomes, "two_first_runs_at_once")
    output = "\n".join(r.output() for r in o.runs)
    assert o.codes == [3, 3], output  # 3: a gate stopped the run
    assert "duplicate column" not in output and "Traceback" not in output, output
    runs = parent_runs(o.uri)
    assert len(runs) == 2
    for run in runs:
        assert_final_record(o.uri, run.info.run_id, "FINISHED", "data-bias-check", "")
        assert run.data.tags["genops.status"] == "blocked"
    assert registry_state(o.uri) == ([], None)


def test_a_run_whose_driver_died_is_closed_by_reconcile(
    outcomes: dict[str, Future[Outcome]],
) -> None:
    o = _outcome(outcomes, "driver_sigkill_then_reconcile")
    prepare = o.seen["prepare"]
    parent_id = prepare.data.tags["mlflow.parentRunId"]
    assert o.seen["before"] == "RUNNING"  # nobody had closed it
    done = o.seen["reconcile"]
    assert done.returncode == 0, done.stderr
    assert f"closed {parent_id}" in done.stdout, done.stdout
    record = assert_final_record(o.uri, parent_id, "FAILED", "prepare", "process gone")
    assert (
        "the last step that had started: 'prepare' (KILLED)" in (record.data.tags["genops.failure"])
    )
    alive_run, cluster_run = o.seen["others"]["alive"], o.seen["others"]["no driver"]
    assert f"running {alive_run}" in done.stdout
    assert cluster_run not in done.stdout
    assert client(o.uri).get_run(alive_run).info.status == "RUNNING"
    assert client(o.uri).get_run(cluster_run).info.status == "RUNNING"
    # the orphaned step stopped itself when it saw its driver gone
    step = client(o.uri).get_run(prepare.info.run_id)
    assert step.info.status == "KILLED"
    assert "`genops run` process" in step.data.tags.get("genops.failure", ""), step.data.tags
    assert registry_state(o.uri) == (["1"], "1")
