"""Optuna studies shared by parallel workers, with pruning and MLflow trial runs.

The pipeline runs ``setup`` once, N workers in parallel (a KFP ``ParallelFor``), then
``summarize``. Workers share one study through its storage: a journal file locally, the
cluster's PostgreSQL there. A worker that dies loses only the trial it was running: each
worker step supervises a trial process (:mod:`genops.core.tuning.worker`) and marks the
trial a dead process left RUNNING as FAIL (:func:`fail_running_trials`; on PostgreSQL the
storage's heartbeat does the same for a worker pod that vanished), the others go on, and a
failed trial is recorded as FAIL, not retried in a loop. :func:`summarize` uses every
completed trial; :func:`require_completed` fails the run only when fewer than
``tuning.min_completed_trials`` completed.

Every trial carries the worker that ran it and that worker's process id as user attributes
(:data:`WORKER_ATTR`, :data:`PID_ATTR`), so a supervisor fails exactly its own lost trials.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from genops.core.tuning.space import TuningSpec, suggest
from genops.core.workload import TrialObjective

ENV_STORAGE = "env:OPTUNA_STORAGE_URL"
WORKER_ATTR = "genops_worker"
PID_ATTR = "genops_pid"
FAILURE_ATTR = "genops_failure"


class TuningError(RuntimeError):
    """Too few trials completed for the run to go on."""


def resolve_storage(spec: TuningSpec, run_id: str) -> str:
    """Config value, else $OPTUNA_STORAGE_URL, else a journal file under $GENOPS_HOME.

    A URL taken from the environment (the cluster's Secret, with a password in it) is
    passed between steps as the reference ``env:OPTUNA_STORAGE_URL``, never as its value,
    so it shows up in no KFP parameter, artifact or MLflow param."""
    if spec.storage:
        return spec.storage
    if os.environ.get("OPTUNA_STORAGE_URL"):
        return ENV_STORAGE
    from genops.paths import genops_home

    home = genops_home() / "optuna"
    home.mkdir(parents=True, exist_ok=True)
    return f"journal://{home / f'{run_id}.journal'}"


def open_storage(url: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("env:"):
        name = url.removeprefix("env:")
        if not os.environ.get(name):
            raise RuntimeError(f"the Optuna storage is ${name}, which is not set in this step")
        url = os.environ[name]
    if url.startswith("journal://"):
        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal://")))
    return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)


def _sampler(spec: TuningSpec, worker: int) -> Any:
    import optuna

    seed = spec.seed + worker  # distinct streams, so parallel workers do not repeat points
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, spec.n_workers))


def _pruner(spec: TuningSpec) -> Any:
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.pruner_startup_trials)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def create_study(spec: TuningSpec, storage_url: str, name: str) -> Any:
    """Create the study (idempotent) and enqueue the configured first trials once."""
    import optuna

    study = optuna.create_study(
        study_name=name,
        storage=open_storage(storage_url),
        direction="maximize",
        sampler=_sampler(spec, 0),
        pruner=_pruner(spec),
        load_if_exists=True,
    )
    if not study.trials:
        for params in spec.enqueue:
            study.enqueue_trial(params)
    return study


def load_study(spec: TuningSpec, storage_url: str, name: str, worker: int) -> Any:
    import optuna

    return optuna.load_study(
        study_name=name,
        storage=open_storage(storage_url),
        sampler=_sampler(spec, worker),
        pruner=_pruner(spec),
    )


def run_worker(
    spec: TuningSpec,
    storage_url: str,
    study_name: str,
    worker: int,
    judge: TrialObjective,
    build: Any,
    log_trial: Any = None,
    n_trials: int | None = None,
    timeout: float | None = None,
) -> dict[str, int]:
    """Run this worker's share of trials (or ``n_trials``, within ``timeout`` seconds: what a
    supervisor leaves to a restarted trial process). ``build(params)`` returns an unfitted
    model; ``log_trial(trial_number, params, state, values, history)`` records a trial.

    ``judge`` is the workload's :class:`~genops.core.workload.TrialObjective`: its
    ``intermediate`` value is reported to the pruner every ``objective.report_every`` epochs,
    and ``final`` returns ``{"objective": ..., ...}``."""
    import optuna

    study = load_study(spec, storage_url, study_name, worker)
    metric = judge.intermediate_metric
    every = spec.objective.report_every
    record = log_trial

    def log_trial_safely(*args: Any) -> None:
        # a tracking hiccup must not fail the trial (nor the worker)
        if record is None:
            return
        with contextlib.suppress(Exception):
            record(*args)

    counts = {"complete": 0, "pruned": 0, "failed": 0}

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker)
        trial.set_user_attr(PID_ATTR, os.getpid())
        params: dict[str, Any] = {}
        history: list[dict[str, float]] = []
        model: Any = None

        def on_epoch_end(epoch: int, _losses: dict[str, float]) -> None:
            if (epoch + 1) % every:
                return
            value = judge.intermediate(model, trial.number)
            history.append({"epoch": float(epoch + 1), metric: value})
            trial.report(value, epoch + 1)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1} ({metric} {value:.4f})")

        try:
            params = suggest(trial, spec.search_space)  # enqueued values come back from suggest
            model = build(params)
            judge.fit(model, on_epoch_end)
            values = judge.final(model, trial.number)
        except optuna.TrialPruned:
            counts["pruned"] += 1
            log_trial_safely(trial.number, params, "PRUNED", {}, history)
            raise
        except Exception as exc:
            counts["failed"] += 1
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            with contextlib.suppress(Exception):
                trial.set_user_attr(FAILURE_ATTR, why[:300])
            log_trial_safely(trial.number, params, "FAIL", {"error": why}, history)
            raise
        counts["complete"] += 1
        log_trial_safely(trial.number, params, "COMPLETE", values, history)
        return values["objective"]

    study.optimize(
        objective,
        n_trials=spec.trials_for_worker(worker) if n_trials is None else n_trials,
        timeout=spec.timeout_s if timeout is None else timeout,
        catch=(Exception,),  # a failing trial is recorded FAIL; the worker goes on
        gc_after_trial=True,
    )
    return counts


def fail_running_trials(
    storage_url: str,
    study_name: str,
    reason: str,
    worker: int | None = None,
    pid: int | None = None,
) -> list[Any]:
    """Mark FAIL the trials left RUNNING (by ``worker``, by process ``pid``; all when None):
    their process is gone. Each gets ``reason`` as its :data:`FAILURE_ATTR`. Returns them
    (frozen, as they were: number and params)."""
    import optuna
    from optuna.trial import TrialState

    storage = open_storage(storage_url)
    study_id = storage.get_study_id_from_name(study_name)
    failed = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if worker is not None and attrs.get(WORKER_ATTR) != worker:
            continue
        if pid is not None and attrs.get(PID_ATTR) != pid:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, FAILURE_ATTR, reason[:1000])
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # it ended meanwhile (another process failed it first)
    return failed


def worker_states(storage_url: str, study_name: str, worker: int) -> dict[str, int]:
    """How many of ``worker``'s trials are in each state (COMPLETE, PRUNED, FAIL, RUNNING)."""
    storage = open_storage(storage_url)
    study_id = storage.get_study_id_from_name(study_name)
    states: dict[str, int] = {}
    for trial in storage.get_all_trials(study_id, deepcopy=False):
        if trial.user_attrs.get(WORKER_ATTR) == worker:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
    return states


@dataclass
class StudySummary:
    best_params: dict[str, Any]
    best_value: float | None
    states: dict[str, int]
    n_trials: int
    failures: list[str] = field(default_factory=list)  # "trial 3: <why>" for each FAIL

    @property
    def completed(self) -> int:
        return self.states.get("COMPLETE", 0)


def summarize(spec: TuningSpec, storage_url: str, study_name: str) -> StudySummary:
    """Best params over every completed trial. Every worker has ended when this runs, so a
    trial still RUNNING lost its process: it is marked FAIL first."""
    import optuna

    fail_running_trials(
        storage_url, study_name, "its worker process ended before the trial did (lost)"
    )
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    states: dict[str, int] = {}
    failures = []
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
        if t.state == optuna.trial.TrialState.FAIL:
            why = t.user_attrs.get(FAILURE_ATTR) or t.system_attrs.get("fail_reason") or "failed"
            failures.append(f"trial {t.number}: {str(why)[:300]}")
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        return StudySummary({}, None, states, len(study.trials), failures)
    best = study.best_trial
    params = {k.split(".", 1)[-1]: v for k, v in best.params.items()}
    return StudySummary(params, float(best.value or 0.0), states, len(study.trials), failures)


def require_completed(spec: TuningSpec, summary: StudySummary) -> None:
    """TuningError when fewer than ``spec.min_completed_trials`` trials completed."""
    if summary.completed >= spec.min_completed_trials:
        return
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.states.items())) or "none"
    why = "; ".join(summary.failures[:5])
    raise TuningError(
        f"tuning: {summary.completed} of {summary.n_trials} trials completed, fewer than "
        f"tuning.min_completed_trials = {spec.min_completed_trials} (trials: {states})"
        + (f"; {why}" if why else "")
    )


def study_figures(storage_url: str, study_name: str) -> dict[str, Any]:
    """Optimisation history and parameter importances (when they can be computed)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as ovm

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    figures: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        figures["optimization_history"] = ovm.plot_optimization_history(study).figure
    with contextlib.suppress(Exception):
        figures["intermediate_values"] = ovm.plot_intermediate_values(study).figure
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(completed) >= 2:
        with contextlib.suppress(Exception):
            figures["param_importances"] = ovm.plot_param_importances(study).figure
    return figures


def trials_table(storage_url: str, study_name: str) -> list[dict[str, Any]]:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "last_step": t.last_step,
        }
        for t in study.trials
    ]


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
