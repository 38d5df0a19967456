"""Run a pipeline on this machine with KFP's local subprocess runner and a local MLflow store.

No Docker, no cluster: each task is a Python subprocess of this interpreter; MLflow is a
SQLite database plus an artifact folder under ``$GENOPS_HOME`` (default ``./.genops``).

This process (the *driver*) also keeps the run's record true and its output readable:

- **Every run ends in a final state with its reason.** SIGINT and SIGTERM stop the running
  step (the signal is passed on to its process group; SIGKILL after a grace period, or at a
  second signal), start no other step, and close the parent and nested MLflow runs as KILLED
  with ``genops.failed_step`` and ``genops.failure`` ("interrupted (SIGINT)");
  :class:`PipelineInterrupted` carries the exit code (130, 143). A step whose process died
  (SIGKILL, the OOM killer) is named with its exit signal, or its last error line. The
  driver's pid, host and start are tags of the parent run, and every run first closes the
  runs whose driver is gone (``genops runs reconcile`` does it on demand).
- **A run that reads well.** The runner's and the steps' output go to
  ``$GENOPS_HOME/logs/<pipeline>-<time>-<launch>.log``; the terminal gets one line per step
  (pipelines/console.py), and ``verbose=True`` streams everything as well.

How: the driver wraps two functions of ``kfp.local`` (pinned at kfp 2.17.0): the one that
runs a task (to know which task runs, its outputs and status, and to start no task once
stopping) and the one that runs a task's subprocess (to read its output line by line, put
it in its own process group so only the driver gets the terminal's Ctrl-C, and keep its
exit status). Both are restored when the run ends.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kfp import local

from genops.core import process
from genops.paths import default_tracking_uri as _default_tracking_uri
from genops.paths import genops_home
from genops.version import git_commit, pipeline_version
from pipelines.console import DriverStream, RunConsole, TaskRecord
from pipelines.registry import get_pipeline

STOP_GRACE_S = 10.0  # after SIGINT/SIGTERM, how long a step has to record why it stopped


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the local SQLite store (its folder created)."""
    genops_home().mkdir(parents=True, exist_ok=True)
    return _default_tracking_uri()


def _shown(path: str | Path) -> str:
    """A path as the user would type it: relative to the working directory when inside."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


@dataclass
class RunSummary:
    run_id: str
    tracking_uri: str
    status: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    registered: str | None = None
    experiment_id: str = ""
    log_path: str = ""
    steps: list[str] = field(default_factory=list)  # the step lines the terminal showed
    #: each task's start-up: seconds from its process start to its step's start
    startups: dict[str, float] = field(default_factory=dict)

    @property
    def startup_figures(self) -> dict[str, float]:
        """The tasks' start-up as the parent run's metrics: median, max, sum and its share of
        the run's time (empty when no task reported one)."""
        if not self.startups:
            return {}
        values = list(self.startups.values())
        total = sum(values)
        return {
            "task_startup_median_seconds": statistics.median(values),
            "task_startup_max_seconds": max(values),
            "orchestration_seconds": total,
            "orchestration_share": total / self.seconds if self.seconds else 0.0,
        }

    def startup_line(self) -> str | None:
        """The tasks' start-up: median, the slowest, and their sum against the run's time."""
        figures = self.startup_figures
        if not figures:
            return None
        slowest = max(self.startups, key=lambda k: self.startups[k])
        return (
            f"median {figures['task_startup_median_seconds']:.1f} s, "
            f"max {figures['task_startup_max_seconds']:.1f} s ({slowest}); "
            f"{len(self.startups)} tasks, {figures['orchestration_seconds']:.0f} s in all = "
            f"{100 * figures['orchestration_share']:.0f} % of the run"
        )

    def headline_metrics(self) -> tuple[str, ...]:
        """The metrics the run's workload prints under the summary."""
        from genops.core.workload import WorkloadError, get_workload

        try:
            return get_workload(self.tags.get("genops.pipeline", "")).headline_metrics
        except WorkloadError:
            return ()

    @property
    def outcome(self) -> str:
        """succeeded (registered), blocked (data gate), rejected (synthetic gate), rolled_back
        (smoke test failed), interrupted or failed."""
        return self.tags.get("genops.status", "failed")

    def gate_reasons(self, gate: str, shown: int = 3) -> list[str]:
        """Why a gate failed (its ``genops.<gate>.reasons`` tag), the first ``shown``."""
        if self.tags.get(f"genops.{gate}") != "failed":
            return []
        text = self.tags.get(f"genops.{gate}.reasons", "")
        text = text.split(" failed: ", 1)[-1]
        reasons = [r.strip() for r in text.split("; ") if r.strip()]
        more = len(reasons) - shown
        return reasons[:shown] + (
            [f"... {more} more (MLflow: genops.{gate}.reasons)"] if more > 0 else []
        )

    def blessing_reasons(self) -> list[str]:
        """Why the model was not blessed (the bless step's ``genops.blessing.reasons``)."""
        if self.tags.get("genops.blessed") != "false":
            return []
        text = self.tags.get("genops.blessing.reasons", "").removeprefix("not blessed: ")
        return [r.strip() for r in text.split("; ") if r.strip()]

    def render(self) -> str:
        blessed = self.tags.get("genops.blessed", "not judged")
        lines = [
            f"MLflow run:        {self.run_id} ({self.status}) in {self.seconds:.0f} s",
            f"Outcome:           {self.outcome}",
            f"Tracking URI:      {self.tracking_uri}",
            f"Registered model:  {self.registered or 'none'}",
            f"Data bias gate:    {self.tags.get('genops.data_bias', 'not run')}",
            *(f"  failed:          {reason[:200]}" for reason in self.gate_reasons("data_bias")),
            f"Synthetic gate:    {self.tags.get('genops.synthetic_bias', 'not run')}",
            *(
                f"  failed:          {reason[:200]}"
                for reason in self.gate_reasons("synthetic_bias")
            ),
            f"Blessed:           {blessed}",
            *(f"  not blessed:     {reason[:200]}" for reason in self.blessing_reasons()[:8]),
            f"Champion:          {self.tags.get('genops.champion', 'unchanged')}",
            f"Endpoint:          {self.tags.get('genops.endpoint', 'none')}"
            + (
                f" (smoke test {self.tags['genops.smoke_test']})"
                if "genops.smoke_test" in self.tags
                else ""
            ),
        ]
        if self.outcome != "succeeded" and "genops.failed_step" in self.tags:
            lines.append(f"Failed step:       {self.tags['genops.failed_step']}")
        failure = self.tags.get("genops.failure", "")
        gate_said = failure in (
            self.tags.get("genops.data_bias.reasons"),
            self.tags.get("genops.synthetic_bias.reasons"),
        )
        if self.outcome != "succeeded" and failure:
            reason = "the gate above failed" if gate_said else failure[:600]
            lines.append(f"Reason:            {reason}")
        for key in self.headline_metrics():
            if key in self.metrics:
                lines.append(f"  {key:<28} {self.metrics[key]:.4f}")
        startup = self.startup_line()
        if startup:
            lines.append(f"Task start-up:     {startup}")
        if self.log_path:
            lines.append(f"Full log:          {_shown(self.log_path)}")
        if self.tracking_uri.startswith("sqlite:"):
            lines.append("Open the MLflow UI with:  make mlflow-ui")
        return "\n".join(lines)


def summarize(tracking_uri: str, run_id: str, seconds: float) -> RunSummary:
    from genops.core.tracking import use_store

    run = use_store(tracking_uri).get_run(run_id)
    return RunSummary(
        run_id=run_id,
        tracking_uri=tracking_uri,
        status=run.info.status,
        seconds=seconds,
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        registered=run.data.tags.get("genops.registered_model"),
        experiment_id=run.info.experiment_id,
    )


class PipelineFailed(RuntimeError):
    """A run that failed: which step, why (its own message, not a traceback), its MLflow
    run and where the full log is."""

    exit_code = 1

    def __init__(
        self,
        step: str | None,
        message: str,
        log_path: str,
        summary: RunSummary | None = None,
        traceback_text: str = "",
    ) -> None:
        self.step = step
        self.message = message
        self.log_path = log_path
        self.summary = summary
        self.traceback_text = traceback_text
        where = f"step '{step}' failed" if step else "the pipeline failed"
        super().__init__(f"{where}: {message}")

    def render(self, traceback: bool = False) -> str:
        lines = []
        if traceback and self.traceback_text:
            lines += [self.traceback_text, ""]
        lines.append(f"error: {self}")
        if self.summary is not None:
            s = self.summary
            step = s.tags.get("genops.failed_step", "?")
            lines.append(
                f"MLflow run:  {s.run_id} ({s.status}); genops.failed_step = {step}, "
                "genops.failure says why"
            )
        lines.append(f"Full log:    {_shown(self.log_path)}")
        if self.traceback_text and not traceback:
            lines.append("(--traceback prints the step's traceback)")
        return "\n".join(lines)


class PipelineInterrupted(PipelineFailed):
    """The run was stopped by SIGINT or SIGTERM; ``exit_code`` is 128 + the signal."""

    def __init__(
        self, signum: int, step: str | None, log_path: str, summary: RunSummary | None = None
    ) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(step, f"interrupted ({process.signal_name(signum)})", log_path, summary)

    def __str__(self) -> str:
        where = f" during step '{self.step}'" if self.step else ""
        return f"interrupted by {process.signal_name(self.signum)}{where}"


class _Stopping(BaseException):
    """Raised where the runner would start a task once the run is stopping: unwinds kfp."""


class _RunState:
    """The tasks of one run, their processes, and whether (and why) the run is stopping."""

    def __init__(self, console: RunConsole) -> None:
        self.console = console
        self.records: list[TaskRecord] = []
        self.lock = threading.RLock()  # the signal handler takes it in the main thread too
        self.run_id: str | None = None
        self.stopping: int | None = None
        self.running_at_stop: list[TaskRecord] = []
        self.stop_containers: Any = None  # the docker runner's way to stop its containers
        self._killer: threading.Timer | None = None

    def begin(self, name: str, index: int | None) -> TaskRecord:
        record = TaskRecord(name=name, index=index)
        with self.lock:
            self.records.append(record)
        return record

    def running(self) -> list[TaskRecord]:
        with self.lock:
            return [r for r in self.records if r.status == "running"]

    def _signal_tasks(self, signum: int) -> None:
        for record in self.running():
            proc = record.process
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signum)  # the task and what it started (trials)
        if self.stop_containers is not None:
            with contextlib.suppress(Exception):
                self.stop_containers(signum == signal.SIGKILL)

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping is None:
            self.stopping = signum
            self.running_at_stop = self.running()
            names = ", ".join(r.label for r in self.running_at_stop) or "no step running"
            self.console.note(
                f"{process.signal_name(signum)}: stopping ({names}); no other step will start"
            )
            self._signal_tasks(signum)
            self._killer = threading.Timer(STOP_GRACE_S, self._signal_tasks, (signal.SIGKILL,))
            self._killer.daemon = True
            self._killer.start()
        else:
            self.console.note(f"{process.signal_name(signum)} again: killing the running steps")
            self._signal_tasks(signal.SIGKILL)

    def cancel_killer(self) -> None:
        if self._killer is not None:
            self._killer.cancel()


@contextlib.contextmanager
def _instrumented(state: _RunState) -> Iterator[None]:
    """Wrap kfp.local's task runner and subprocess runner for the length of one run."""
    from kfp.local import status as kfp_status
    from kfp.local import subprocess_task_handler, task_dispatcher

    run_task_original = task_dispatcher.run_single_task_implementation
    run_subprocess_original = subprocess_task_handler.run_local_subprocess
    console = state.console

    def run_task(*args: Any, **kwargs: Any) -> Any:
        if state.stopping is not None:
            raise _Stopping()
        component = str(kwargs.get("component_name") or args[1])
        arguments = kwargs.get("arguments") or {}
        index = arguments.get("worker") if isinstance(arguments, dict) else None
        record = state.begin(
            component.removeprefix("comp-"), int(index) if isinstance(index, int | float) else None
        )
        console.current.record = record
        try:
            outputs, task_status = run_task_original(*args, **kwargs)
        except BaseException:
            record.status, record.ended = "FAILED", time.monotonic()
            raise
        finally:
            console.current.record = None
        record.ended = time.monotonic()
        record.outputs = dict(outputs or {})
        if task_status == kfp_status.Status.SUCCESS:
            record.status = "ok"
            if record.name == "start-run":
                state.run_id = str(record.outputs.get("Output") or "") or None
        else:
            record.status = "stopped" if state.stopping is not None else "FAILED"
            if record.status == "FAILED" and not record.failure:
                record.failure = record.error_line() or None
        console.step_finished(record)
        return outputs, task_status

    def run_subprocess(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        record = getattr(console.current, "record", None)
        env = {**os.environ, **env_vars} if env_vars else None
        with subprocess.Popen(
            full_command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            env=env,
            start_new_session=True,  # the terminal's Ctrl-C reaches the driver only
        ) as proc:
            if record is not None:
                record.process = proc
            if state.stopping is not None:  # started just as the run was stopped
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, state.stopping)
            stdout = proc.stdout
            assert stdout is not None

            def pump() -> None:
                for line in iter(stdout.readline, ""):
                    if record is not None:
                        console.task_line(record, line)
                    else:
                        console.driver_write(line)

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            code = proc.wait()
            if process.exit_signal(code) is not None and state.stopping is None:
                # KFP runs the step under `sh -c`: if that shell was killed, the step's Python
                # process lives on without anyone to collect it. Stop it (it records why).
                # (When the run is stopping, the step got the signal itself: let it finish.)
                _stop_group(proc.pid, reader)
            reader.join()
        if record is not None:
            record.returncode = code
        return code

    task_dispatcher.run_single_task_implementation = run_task
    subprocess_task_handler.run_local_subprocess = run_subprocess
    try:
        yield
    finally:
        task_dispatcher.run_single_task_implementation = run_task_original
        subprocess_task_handler.run_local_subprocess = run_subprocess_original


def _stop_group(pgid: int, reader: threading.Thread) -> None:
    """SIGTERM what is left of a task's process group, SIGKILL after the grace period."""
    for signum, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return  # nothing left
        reader.join(wait)  # the output ends when the last process holding it has gone
        if not reader.is_alive():
            return


@contextlib.contextmanager
def _signals(state: _RunState) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: a run started elsewhere keeps defaults
        return
    saved = {sig: signal.signal(sig, state.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        state.cancel_killer()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reconcile(tracking_uri: str, console: RunConsole | None = None) -> list[Any]:
    """Close the runs whose `genops run` process is gone (before a new run starts)."""
    from genops.core.tracking import reconcile_runs, use_store

    try:
        closed = [r for r in reconcile_runs(tracking_uri) if r.action == "closed"]
    except Exception as exc:  # e.g. a tracking server not up yet: the run will say so itself
        if console is not None:
            console.note(f"could not look for runs left RUNNING: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            use_store(tracking_uri)  # a fresh local store is still set up under its lock
        return []
    for r in closed:
        if console is not None:
            console.note(
                f"closed run {r.run_id} left RUNNING: its driver ({r.driver}) is gone; "
                f"last step started: {r.step}"
            )
    return closed


def _workload_figures(pipeline: str) -> tuple[str, ...]:
    from genops.core.workload import WorkloadError, get_workload

    try:
        return tuple(get_workload(pipeline).headline_metrics)
    except WorkloadError:
        return ()


RUNNERS = ("subprocess", "docker")


def run_local(
    pipeline: str,
    config: str,
    tracking_uri: str | None = None,
    pipeline_root: str | None = None,
    runner: str = "subprocess",
    verbose: bool = False,
    out: TextIO | None = None,
    log_dir: str | Path | None = None,
    **arguments: Any,
) -> RunSummary:
    """Run ``pipeline`` locally and return its summary. Raises :class:`PipelineFailed` (a
    RuntimeError naming the step and its message) when a step fails,
    :class:`PipelineInterrupted` on SIGINT/SIGTERM (after closing the MLflow runs), and
    ConfigError before anything runs when a local config is invalid or written for another
    pipeline.

    The terminal (``out``, default stdout) gets one line per step; everything goes to a log
    under ``log_dir`` (default ``$GENOPS_HOME/logs``); ``verbose`` streams it all.

    ``runner="docker"`` runs every step in the images ``make images`` built (KFP's
    DockerRunner, host network) and tracks to a local MLflow server it starts and stops
    (pipelines/runners.py); the config must be one baked into the images or on ``s3://``.
    """
    if runner not in RUNNERS:
        raise ValueError(f"runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    if "://" not in config:  # an s3:// config is read by the start step
        from genops.core.config import load_config_for

        load_config_for(config, pipeline)
    root = Path(pipeline_root or genops_home() / "kfp-local")
    root.mkdir(parents=True, exist_ok=True)
    launch = uuid.uuid4().hex[:12]
    log_path = Path(log_dir or genops_home() / "logs") / (
        f"{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}-{launch[:6]}.log"
    )
    console = RunConsole(log_path, out or sys.stdout, verbose, _workload_figures(pipeline))
    state = _RunState(console)
    # Locally the components run in this interpreter (it holds genops and its pinned
    # dependencies, as the image does); KFP warns about the non-Python base image each task.
    warnings.filterwarnings(
        "ignore", message="You may be attemping to run a task", category=RuntimeWarning
    )
    with contextlib.ExitStack() as stack:
        stack.callback(console.close)
        stack.enter_context(print_restored())
        stack.enter_context(_signals(state))
        stack.enter_context(_environment(process.driver_environment(launch)))
        stream = DriverStream(console)
        stack.enter_context(contextlib.redirect_stdout(stream))  # type: ignore[type-var]
        stack.enter_context(contextlib.redirect_stderr(stream))  # type: ignore[type-var]
        stack.enter_context(_instrumented(state))
        console.note(f"{pipeline}: {_shown(config)} (full log: {_shown(log_path)})")
        if runner == "docker":
            from pipelines.runners import container_config_uri, docker_runner, stop_containers

            kfp_runner, tracking_uri = stack.enter_context(docker_runner(root, launch_id=launch))
            state.stop_containers = lambda kill: stop_containers(launch, kill)
            config_uri = container_config_uri(config)
        else:
            kfp_runner = local.SubprocessRunner(use_venv=False)
            tracking_uri = tracking_uri or default_tracking_uri()
            config_uri = config if "://" in config else str(Path(config).resolve())
        reconcile(tracking_uri, console)  # also sets up a fresh store, under its lock
        local.init(runner=kfp_runner, pipeline_root=str(root))
        started = time.perf_counter()
        try:
            task = get_pipeline(pipeline)(
                config_uri=config_uri,
                tracking_uri=tracking_uri,
                pipeline_version=pipeline_version(),
                git_commit=git_commit(),
                **arguments,
            )
            run_id = str(task.output)
        except _Stopping:
            raise _interrupted(state, tracking_uri, launch, started, log_path) from None
        except Exception as exc:
            if state.stopping is not None:
                raise _interrupted(state, tracking_uri, launch, started, log_path) from None
            raise _failed(state, tracking_uri, launch, started, log_path, exc) from None
        # inside the block: a docker run's MLflow server is still up
        summary = summarize(tracking_uri, run_id, time.perf_counter() - started)
        summary.log_path = str(log_path)
        summary.steps = [r.label for r in state.records]
        summary.startups = {r.label: r.startup for r in state.records if r.startup is not None}
        _log_startup(tracking_uri, summary)
        return summary
    raise AssertionError("unreachable")


@contextlib.contextmanager
def print_restored() -> Iterator[None]:
    """``print`` as it was, whatever happens inside. kfp.local indents ``print`` while a task
    runs by swapping ``builtins.print`` and swapping it back; two ParallelFor iterations in
    threads interleave those swaps and can leave ``print`` indented for the rest of the
    process (seen: a later CLI's output shifted by four spaces)."""
    saved = builtins.print
    try:
        yield
    finally:
        builtins.print = saved


def _log_startup(tracking_uri: str, summary: RunSummary) -> None:
    """The tasks' start-up on the parent run (metrics; the per-task figures as a JSON)."""
    if not summary.startups:
        return
    from genops.core.tracking import use_store

    with contextlib.suppress(Exception):
        client = use_store(tracking_uri)
        stamp = int(time.time() * 1000)
        for key, value in summary.startup_figures.items():
            client.log_metric(summary.run_id, key, float(value), timestamp=stamp)
            summary.metrics[key] = float(value)
        client.log_dict(summary.run_id, summary.startups, "task_startup_seconds.json")


def _step_of(record: TaskRecord | None) -> str | None:
    """The MLflow step a task ran (``genops.step``), else the task's name."""
    if record is None:
        return None
    return record.step or record.name


def _summary_or_none(tracking_uri: str, run_id: str | None, started: float) -> RunSummary | None:
    if not run_id:
        return None
    with contextlib.suppress(Exception):
        return summarize(tracking_uri, run_id, time.perf_counter() - started)
    return None


def _interrupted(
    state: _RunState, tracking_uri: str, launch: str, started: float, log_path: Path
) -> PipelineInterrupted:
    """Close the run as KILLED, naming the step that was running, and say so."""
    from genops.core.tracking import close_pipeline_run, find_launch

    signum = state.stopping or signal.SIGINT
    reason = f"interrupted ({process.signal_name(signum)})"
    stopped = state.running_at_stop or state.records[-1:]
    # the steps should be gone by now; make sure (and wait for them) before closing the run
    for record in state.running():
        if record.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                record.process.wait(STOP_GRACE_S)
    state.cancel_killer()
    run_id = None
    with contextlib.suppress(Exception):
        run_id = state.run_id or find_launch(tracking_uri, launch)
    if run_id:
        with process.signals_ignored():
            close_pipeline_run(
                tracking_uri,
                run_id,
                "KILLED",
                _step_of(stopped[0]) if stopped else None,
                reason,
                outcome="interrupted",
                overwrite=True,
            )
    summary = _summary_or_none(tracking_uri, run_id, started)
    if summary is not None:
        summary.log_path = str(log_path)
    return PipelineInterrupted(
        signum, stopped[0].label if stopped else None, str(log_path), summary
    )


def _failed(
    state: _RunState,
    tracking_uri: str,
    launch: str,
    started: float,
    log_path: Path,
    exc: Exception,
) -> PipelineFailed:
    """Make sure the run is closed and names its failed step, then say which and why: the
    step's own record when it made one (a step that raised: the bad-data message), else its
    exit signal (a killed process) or the last line of its traceback."""
    from genops.core.tracking import (
        DIED_SILENTLY,
        FAILURE_TAG,
        close_pipeline_run,
        find_launch,
        use_store,
    )

    failed = [r for r in state.records if r.status == "FAILED"]
    record = failed[0] if failed else None
    run_id = None
    with contextlib.suppress(Exception):
        run_id = state.run_id or find_launch(tracking_uri, launch)
    step = _step_of(record)
    message = str(exc)
    signum = process.exit_signal(record.returncode) if record is not None else None
    if record is not None:
        if signum is not None:
            message = f"its process was killed by {process.signal_name(signum)}"
        else:
            message = (
                record.failure
                or record.error_line()
                or (
                    f"exited with status {record.returncode}"
                    if record.returncode is not None
                    else "failed (see the full log)"
                )
            )
    if run_id:
        tags = use_store(tracking_uri).get_run(run_id).data.tags
        recorded = tags.get(FAILURE_TAG, "")
        own = bool(recorded) and not recorded.endswith(DIED_SILENTLY) and signum is None
        if own:  # the step recorded why it failed: that is the message
            step, message = tags.get("genops.failed_step", step), recorded
        with contextlib.suppress(Exception), process.signals_ignored():
            close_pipeline_run(
                tracking_uri,
                run_id,
                "FAILED",
                step,
                message if own else f"step '{step}': {message}",
                overwrite=not own,
            )
    summary = _summary_or_none(tracking_uri, run_id, started)
    if summary is not None:
        summary.log_path = str(log_path)
    return PipelineFailed(
        record.label if record is not None else step,
        message,
        str(log_path),
        summary,
        record.traceback() if record is not None else "",
    )
