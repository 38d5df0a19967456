"""The processes behind a local run: who drives it, whether that process is still alive, and
how a step turns a stop signal into an exception its MLflow run can record.

``genops run`` (the *driver*) starts every step as a child process. It puts its identity in
the environment (:func:`driver_environment`); the start step copies it onto the MLflow parent
run as tags, so a later process can tell a run whose driver died without a word (SIGKILL, a
crash, a reboot) from one still going (:func:`is_alive`), and close it.

In a step, :func:`stop_guard` makes SIGTERM raise :class:`Stopped` (SIGINT already raises
``KeyboardInterrupt``) and, when the driver is an ancestor of the step's process, watches
it: if it disappears, the step stops itself rather than train on for nobody. Standard
library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Environment variables the driver sets for its steps (and the start step records as tags).
ENV_PID = "GENOPS_DRIVER_PID"
ENV_HOST = "GENOPS_DRIVER_HOST"
ENV_STARTED = "GENOPS_DRIVER_STARTED"
ENV_LAUNCH = "GENOPS_LAUNCH_ID"
DRIVER_ENV = (ENV_PID, ENV_HOST, ENV_STARTED, ENV_LAUNCH)


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as another process can find it again: pid, host, and its start (Linux:
    ``<boot id>:<start time in clock ticks>``, so a reused pid or a reboot is not mistaken
    for the same process; empty where /proc is missing)."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_started(pid: int) -> str | None:
    """``<boot id>:<start ticks>`` of ``pid`` from /proc, or None (no such process, no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19]}"  # field 22 of the whole line: starttime


def seconds_since_start() -> float | None:
    """How long this process has existed (its start tick in /proc against the system's
    uptime; 10 ms resolution), or None without /proc. A pipeline task reports it when its
    step starts: the task's start-up (interpreter, kfp's executor, imports)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = int(stat[stat.rfind(")") + 2 :].split()[19])
        return max(0.0, round(uptime - ticks / os.sysconf("SC_CLK_TCK"), 3))
    except (OSError, ValueError, IndexError):
        return None


def identity(pid: int | None = None) -> ProcessIdentity:
    """This process (or ``pid`` on this host)."""
    pid = os.getpid() if pid is None else pid
    return ProcessIdentity(pid, socket.gethostname(), process_started(pid) or "")


def is_alive(who: ProcessIdentity) -> bool | None:
    """True: the process runs; False: it is gone (or the pid now belongs to another process);
    None: it ran on another host, so this one cannot tell."""
    if who.host != socket.gethostname():
        return None
    try:
        os.kill(who.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if who.started:
        started = process_started(who.pid)
        if started is not None and started != who.started:
            return False  # the pid was reused (or the machine rebooted)
    return True


def driver_environment(launch_id: str) -> dict[str, str]:
    """The variables a driver gives its steps: its identity and this launch's id."""
    me = identity()
    return {ENV_PID: str(me.pid), ENV_HOST: me.host, ENV_STARTED: me.started, ENV_LAUNCH: launch_id}


def driver_from_environment() -> tuple[ProcessIdentity, str] | None:
    """(the driver, the launch id) when this process was started by ``genops run``."""
    pid = os.environ.get(ENV_PID, "")
    if not pid.isdigit():
        return None
    who = ProcessIdentity(int(pid), os.environ.get(ENV_HOST, ""), os.environ.get(ENV_STARTED, ""))
    return who, os.environ.get(ENV_LAUNCH, "")


class Stopped(KeyboardInterrupt):
    """A step was told to stop (SIGTERM, or its driver is gone). A ``KeyboardInterrupt``, so
    libraries that clean up after Ctrl-C (Optuna marks the trial FAIL) do so here too."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_signal(returncode: int | None) -> int | None:
    """The signal that ended a process, from its exit status: negative for a direct child,
    128 + the signal through a shell (KFP runs each step under ``sh -c``)."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if 128 < returncode <= 128 + 64:
        return returncode - 128
    return None


def describe_exit(returncode: int) -> str:
    """'killed by SIGKILL' or 'exited with status 1'."""
    signum = exit_signal(returncode)
    if signum is not None:
        return f"killed by {signal_name(signum)}"
    return f"exited with status {returncode}"


_watched: list[tuple[ProcessIdentity, str]] = []  # what the innermost stop_guard watches
_received: list[str] = []  # the stop signals a stop_guard block received, as reasons


def stop_reason(exc: BaseException) -> str | None:
    """Why a step stopped when it was stopped (not failed): 'interrupted (SIGINT)', ...
    A broken pipe once the watched driver is gone is that, too (the driver read the step's
    output: the step's next print fails before the watchdog's next look)."""
    if isinstance(exc, Stopped):
        return exc.reason
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    if _received:
        # a library turned the interrupt into its own error (pandas' C reader does)
        return _received[-1]
    if isinstance(exc, BrokenPipeError) and _watched:
        who, what = _watched[-1]
        if is_alive(who) is False:
            return f"stopped: its {what} ({who.describe()}) is gone"
    return None


_stop_note: list[str] = []  # why the watchdog signalled this process


def _raise_stopped(signum: int, _frame: object) -> None:
    reason = _stop_note.pop() if _stop_note else f"terminated ({signal_name(signum)})"
    _received.append(reason)
    # once: a second signal must not interrupt the clean-up that records the first
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped(reason)


def _raise_interrupt(signum: int, _frame: object) -> None:
    _received.append(f"interrupted ({signal_name(signum)})")
    raise KeyboardInterrupt


def ancestors(pid: int | None = None) -> list[int]:
    """The pids above ``pid`` (default: this process), nearest first (Linux /proc; [] else)."""
    chain: list[int] = []
    current = os.getpid() if pid is None else pid
    while current > 1 and len(chain) < 64:
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            break
        current = int(stat[stat.rfind(")") + 2 :].split()[1])
        chain.append(current)
    return chain


def _watch(who: ProcessIdentity, what: str, done: threading.Event, every: float) -> None:
    while not done.wait(every):
        if is_alive(who) is False:
            _stop_note.append(f"stopped: its {what} ({who.describe()}) is gone")
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _driver_above() -> ProcessIdentity | None:
    """The `genops run` driver, when it is an ancestor of this process (not in a container,
    where its pid means nothing)."""
    found = driver_from_environment()
    if found is None or found[0].host != socket.gethostname():
        return None
    return found[0] if found[0].pid in ancestors() else None


@contextlib.contextmanager
def stop_guard(
    watch: ProcessIdentity | None = None, what: str = "parent", every: float = 1.0
) -> Iterator[None]:
    """SIGTERM raises :class:`Stopped` inside the block (main thread only). ``watch``: a
    process whose end stops the block the same way (default: the ``genops run`` driver
    above this process, if any), checked every ``every`` seconds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if watch is None:
        watch, what = _driver_above(), "`genops run` process"
    if watch is not None and is_alive(watch) is False:  # gone before we even started
        raise Stopped(f"stopped: its {what} ({watch.describe()}) is gone")
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:  # leave an ignored or custom SIGINT alone
        signal.signal(signal.SIGINT, _raise_interrupt)
    received = len(_received)
    done = threading.Event()
    if watch is not None:
        _watched.append((watch, what))
        threading.Thread(target=_watch, args=(watch, what, done, every), daemon=True).start()
    try:
        yield
    finally:
        done.set()
        if watch is not None:
            _watched.pop()
        del _received[received:]
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored inside the block (main thread only): for the few MLflow
    calls that record why a step stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
