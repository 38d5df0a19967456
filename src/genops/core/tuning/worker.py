"""One tuning worker as two processes: the pipeline's ``tune-worker`` step supervises a trial
process that runs the trials, so a dead trial process costs only the trial it was running.

Why two processes. In KFP a ``ParallelFor`` iteration that fails fails the whole DAG (kfp's
local runner stops at the first failed iteration; on the cluster the loop fails and nothing
downstream runs), so a worker that died took the completed trials of every worker with it.
The step that KFP sees must therefore outlive the work that can die: :func:`supervise` runs
in the step's process and starts ``python -m genops.core.tuning.worker`` (the *trial
process*: imports, data, the workload's objective, ``study.optimize``). When the trial
process dies (SIGKILL, the OOM killer, a crash in native code), the supervisor

- marks FAIL the trial it left RUNNING (every trial records its worker and process id,
  :data:`~genops.core.tuning.study.WORKER_ATTR`), with the reason, and logs it as a FAIL
  trial run;
- starts a new trial process for what is left of this worker's share (the FAIL trial counts:
  no trial is retried in a loop), and gives up on the share only when a process dies twice
  in a row without finishing any trial;
- returns normally, so the loop succeeds and the summary step uses every completed trial;
  the run fails only when fewer than ``tuning.min_completed_trials`` completed.

A trial process that exits with an error before running any trial (bad data, a broken
import) is not a lost worker but a fault every worker would hit: the step fails with its
exit status. The supervisor is idempotent: started again (a retried step on the cluster) it
first fails the trials its previous attempt left RUNNING, then runs what is left of the
share, so the cluster target retries it (pipelines/builder.py).

The trial process watches its supervisor: if the supervisor disappears it stops, rather
than run trials nobody will collect.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genops.core.process import describe_exit, identity, signals_ignored, stop_guard
from genops.core.tuning.space import TuningSpec
from genops.core.tuning.study import fail_running_trials, worker_states

MODULE = "genops.core.tuning.worker"
FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass(frozen=True)
class TrialRequest:
    """What a trial process needs (written as JSON beside the step's outputs)."""

    config_path: str
    train_path: str
    validation_path: str
    tracking_uri: str
    tuning_run_id: str
    storage_url: str
    study_name: str
    worker: int
    n_trials: int
    timeout_s: float | None
    entry: str
    """``module:function`` the trial process calls with this request (the caller's trial
    loop: this module knows no step)."""


def _finished(storage_url: str, study_name: str, worker: int) -> dict[str, int]:
    states = worker_states(storage_url, study_name, worker)
    return {s: n for s, n in states.items() if s in FINISHED_STATES}


def supervise(
    spec: TuningSpec,
    request: TrialRequest,
    workdir: Path,
    log_lost: Callable[[int, dict[str, Any], str], None] | None = None,
    python: str = sys.executable,
) -> dict[str, Any]:
    """Run ``request.worker``'s share of trials in trial processes, restarting after a lost
    one; returns the worker's trial counts (complete, pruned, failed, lost) and the losses.
    ``log_lost(number, params, reason)`` records a lost trial (an MLflow trial run)."""
    worker, url, name = request.worker, request.storage_url, request.study_name
    share = spec.trials_for_worker(worker)
    deadline = time.monotonic() + spec.timeout_s if spec.timeout_s else None
    losses: list[str] = []

    def fail_lost(reason: str, pid: int | None = None, short: str = "") -> int:
        lost = fail_running_trials(url, name, reason, worker=worker, pid=pid)
        for trial in lost:
            losses.append(f"trial {trial.number} {short or reason}")
            if log_lost is not None:
                try:
                    log_lost(trial.number, dict(trial.params), reason)
                except Exception as exc:  # the study holds the truth; MLflow is the record
                    print(f"could not log lost trial {trial.number} to MLflow: {exc}")
        return len(lost)

    # a previous attempt of this step (a retry on the cluster) may have left a trial RUNNING
    fail_lost("its worker step was restarted before the trial ended")
    barren = 0  # trial processes in a row that died without finishing a trial
    attempt = 0
    workdir.mkdir(parents=True, exist_ok=True)
    with stop_guard():
        while True:
            done_before = sum(_finished(url, name, worker).values())
            remaining = share - done_before
            left = None if deadline is None else deadline - time.monotonic()
            if remaining <= 0 or (left is not None and left <= 0):
                break
            attempt += 1
            path = workdir / f"trials-worker{worker}-{attempt}.json"
            path.write_text(
                json.dumps(
                    asdict(
                        TrialRequest(
                            **{**asdict(request), "n_trials": remaining, "timeout_s": left}
                        )
                    )
                )
            )
            command = [python, "-m", MODULE, "--worker", str(worker), "--request", str(path)]
            proc = subprocess.Popen(command)
            try:
                code = proc.wait()
            except BaseException:
                # stopped: the trial process stops too, and its trial is not left RUNNING
                with signals_ignored():
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                        try:
                            proc.wait(20)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
                    fail_lost("the tuning worker was stopped", pid=proc.pid)
                raise
            if code == 0:
                # it ran its trials (or its time ran out); anything RUNNING is a bug: fail it
                fail_lost("its trial process ended before the trial did", pid=proc.pid)
                break
            how = describe_exit(code)
            lost = fail_lost(f"the trial process (pid {proc.pid}) {how}", proc.pid, how)
            done_after = sum(_finished(url, name, worker).values())
            if done_after == done_before and lost == 0:
                if code > 0:
                    raise RuntimeError(
                        f"tuning worker {worker}: the trial process {describe_exit(code)} "
                        "before it ran a trial (its error is in the log above)"
                    )
                barren += 1
                if barren >= 2:
                    losses.append(
                        f"worker {worker} gave up: the trial process was {describe_exit(code)}"
                        " twice before running a trial"
                    )
                    break
            else:
                barren = 0
            print(
                f"tuning worker {worker}: the trial process {describe_exit(code)}; "
                f"{share - done_after} of {share} trials left, starting a new one",
                flush=True,
            )
    states = _finished(url, name, worker)
    return {
        "complete": states.get("COMPLETE", 0),
        "pruned": states.get("PRUNED", 0),
        "failed": states.get("FAIL", 0),
        "lost": len(losses),
        "losses": losses,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The trial process: run the trials of one request, watching the supervisor."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--worker", type=int, required=True)  # shown in ps: which worker
    parser.add_argument("--request", required=True)
    args = parser.parse_args(argv)
    request = TrialRequest(**json.loads(Path(args.request).read_text()))
    import importlib

    module, _, function = request.entry.partition(":")
    run_trials = getattr(importlib.import_module(module), function)
    with stop_guard(identity(os.getppid()), what="tuning worker step"):
        run_trials(request)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
