"""``make serve-stop`` (``python -m genops.core.serving.deploy stop``) tells the truth about
the recorded server: stopped now, found dead, or none recorded; and the running-server
records ``genops promote`` / ``genops rollback`` report on. Real processes, real signals."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from genops.core.serving import deploy
from tests.conftest import free_port

# A stand-in whose command line names the server module (stop_local checks it before it
# signals a pid); it does nothing but wait for a signal.
SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)", deploy.SERVER_MODULE]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GENOPS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _pidfile(port: int, pid: int) -> Path:
    path = deploy.serving_dir() / f"{port}.pid"
    path.write_text(json.dumps({"pid": pid, "model_uri": "models:/toy@champion", "url": "x"}))
    return path


def _stop(port: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = deploy.main(["stop", "--port", str(port)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_no_record_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _stop(8123, capsys)
    assert code == 0
    assert out.startswith("no server recorded on port 8123: no pid file ")


def test_a_running_server_is_stopped_with_its_pid(
    home: Path, processes: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    process = subprocess.Popen(SLEEPER, start_new_session=True)
    processes.append(process)
    pidfile = _pidfile(8124, process.pid)
    code, out = _stop(8124, capsys)
    assert code == 0
    assert (
        out.strip() == f"stopped: the server on port 8124 (pid {process.pid}); it exited on SIGTERM"
    )
    assert process.wait(timeout=10) == -15 and not pidfile.exists()
    # a second stop finds no record
    assert _stop(8124, capsys) == (0, f"no server recorded on port 8124: no pid file {pidfile}\n")


def test_a_dead_server_is_found_dead_and_fails(
    home: Path, processes: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    process = subprocess.Popen(SLEEPER, start_new_session=True)
    processes.append(process)
    pidfile = _pidfile(8125, process.pid)
    process.kill()  # the server died (not reaped yet: a zombie counts as dead)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, out = _stop(8125, capsys)
    assert code == 1
    assert out.startswith(
        f"found dead: the server on port 8125 (pid {process.pid}) was not running"
    )
    assert str(deploy.serving_dir() / "8125.log") in out and not pidfile.exists()
    process.wait(timeout=10)
    # and reaped: the same
    _pidfile(8125, process.pid)
    assert _stop(8125, capsys)[0] == 1


def test_a_pid_now_held_by_another_program_is_left_alone(
    home: Path, processes: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    processes.append(other)
    _pidfile(8126, other.pid)
    code, out = _stop(8126, capsys)
    assert code == 1
    assert f"pid {other.pid} is now another program, left alone" in out
    time.sleep(0.2)
    assert other.poll() is None  # not signalled


def test_garbage_in_the_pid_file_is_reported(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (deploy.serving_dir() / "8127.pid").write_text("not json")
    code, out = _stop(8127, capsys)
    assert code == 1 and "found dead: the server on port 8127 (pid None) has an unreadable" in out


def test_records_of_running_servers_and_the_alias_move_report(
    home: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing answers /metadata there
    uris = {
        "models:/toy@champion": 30.0,  # follows
        "models:/toy@champion ": 0.0,  # does not follow (the space: a distinct record)
        "models:/toy/1": 0.0,  # pinned
        "models:/other@champion": 30.0,  # another model
    }
    pids = []
    for uri, interval in uris.items():
        process = subprocess.Popen(SLEEPER, start_new_session=True)
        processes.append(process)
        deploy.record_server(process.pid, closed, uri.strip(), interval)
        pids.append(process.pid)
    dead = subprocess.Popen(SLEEPER)
    dead.kill()
    dead.wait(timeout=10)
    stale = deploy.record_server(dead.pid, closed, "models:/toy@champion", 30.0)

    listed = deploy.local_servers()
    assert sorted(s.pid for s in listed) == sorted(pids)
    assert not stale.exists()  # the record of a dead server is dropped
    lines = deploy.alias_move_report("toy", "champion", "2")
    where = f"{closed} (models:/toy@champion): not answering /metadata"
    assert sorted(lines) == sorted(
        [
            f"pid {pids[0]} {where}; follows @champion every 30 s: will serve v2 within 30 s "
            "plus its load time",
            f"pid {pids[1]} {where}; does not follow @champion (--follow-interval 0): "
            "restart it to serve v2",
            f"pid {pids[2]} {closed} (models:/toy/1): not answering /metadata; not on "
            "@champion: not affected",
        ]
    )
    assert deploy.alias_move_report("toy", "champion", None)[0].endswith(
        "@champion was removed: it keeps serving it"
    )
