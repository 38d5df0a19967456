"""Benchmark of the local model server against MLflow's stock scoring server, same model.

Starts both as real processes on this machine: ``python -m genops.core.serving.server`` (our
FastAPI app, ``POST /generate``) and ``mlflow models serve --env-manager local`` (its
``POST /invocations`` with a ``dataframe_split`` payload), then, for each concurrency level,
sends a warm-up and then a fixed number of generate requests (100 rows each, a fresh seed per
request) from that many client threads, in rounds that alternate the two servers (A B B A), so
a slow spell of a shared machine falls on both. Reports latency p50/p99, throughput and the
ratio, plus how each server answers two bad requests, and writes ``serving.json`` and
``serving.md``.

The model is the registered Adult synthesizer when ``--model-uri`` resolves at
``--tracking-uri`` (read from a snapshot copy of the store, so a pipeline writing to it at
the same time is not disturbed), else a toy TVAE trained here in seconds; the output says
which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "serving.json"
# Tried in order when --model-uri is not given: the promoted version, else the candidate.
DEFAULT_MODEL_URIS = ("models:/adult-synthesizer@champion", "models:/adult-synthesizer@challenger")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home = Path(os.environ.get("GENOPS_HOME", REPO / ".genops")).resolve()
    return f"sqlite:///{home / 'mlflow.db'}"


def snapshot_store(tracking_uri: str, workdir: Path) -> str:
    """A consistent copy of a SQLite store (artifacts stay where they are); others as is."""
    if not tracking_uri.startswith("sqlite:///"):
        return tracking_uri
    source = Path(tracking_uri.removeprefix("sqlite:///"))
    if not source.is_file():
        raise FileNotFoundError(f"no MLflow store at {source}")
    target = workdir / "mlflow-snapshot.db"
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{target}"


def resolve_model(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The registered model named on the command line, else a toy one trained here."""
    import mlflow

    from genops.core.serving.server import resolve_model_version

    candidates = [args.model_uri] if args.model_uri else list(DEFAULT_MODEL_URIS)
    reasons = []
    try:
        uri = snapshot_store(args.tracking_uri, workdir)
    except Exception as exc:
        uri = None
        reasons.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    for model_uri in candidates if uri else []:
        try:
            mlflow.set_tracking_uri(uri)
            version = resolve_model_version(model_uri)
            return {
                "kind": "registered",
                "model_uri": model_uri,
                "tracking_uri": uri,
                "source_tracking_uri": args.tracking_uri,
                "name": version["name"],
                "version": version["version"],
                "tags": version["tags"],
            }
        except Exception as exc:
            reasons.append(f"{model_uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    reason = "; ".join(reasons)
    print(f"[bench] no registered model at {args.tracking_uri} ({reason}); training a toy")
    sys.path.insert(0, str(REPO))
    from tests.integration.test_serving_server import register_toy_model

    toy = register_toy_model(workdir / "toy")
    return {
        "kind": "toy (tests/integration register_toy_model: 400 rows, 5 columns, 3 epochs)",
        "model_uri": toy.model_uri,
        "tracking_uri": toy.tracking_uri,
        "source_tracking_uri": None,
        "name": "toy-synthesizer",
        "version": "1",
        "why_not_registered": reason,
    }


class Process:
    """A server process in its own session, so stopping it stops its workers too."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                command,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait_healthy(self, url: str, timeout: float = 180) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{url} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{url} not healthy after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


def ours_request(base: str, rows: int) -> Callable[[httpx.Client, int], int]:
    def send(client: httpx.Client, seed: int) -> int:
        response = client.post(f"{base}/generate", json={"num_rows": rows, "seed": seed})
        response.raise_for_status()
        return len(response.json()["rows"])

    return send


def mlflow_request(base: str, rows: int) -> Callable[[httpx.Client, int], int]:
    columns = ["num_rows", "conditions", "seed"]

    def send(client: httpx.Client, seed: int) -> int:
        payload = {"dataframe_split": {"columns": columns, "data": [[rows, "", seed]]}}
        response = client.post(f"{base}/invocations", json=payload)
        response.raise_for_status()
        return len(response.json()["predictions"])

    return send


class Level:
    """One server at one concurrency level, measured over several rounds."""

    def __init__(self, send: Callable[[httpx.Client, int], int], clients: int, rows: int) -> None:
        self.send, self.clients, self.rows = send, clients, rows
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.wall = 0.0
        self.lock = threading.Lock()
        self.seeds = iter(range(10**9))

    def _worker(self, count: int, record: bool) -> None:
        with httpx.Client(timeout=120) as client:
            for _ in range(count):
                with self.lock:
                    seed = next(self.seeds)
                started = time.perf_counter()
                try:
                    got = self.send(client, seed)
                    if got != self.rows:
                        raise ValueError(f"{got} rows instead of {self.rows}")
                except Exception as exc:
                    with self.lock:
                        if record:
                            self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                elapsed = time.perf_counter() - started
                if record:
                    with self.lock:
                        self.latencies.append(elapsed)

    def round(self, total: int, record: bool = True) -> None:
        """``total`` requests shared by ``clients`` threads, each with its own connection."""
        c = self.clients
        shares = [total // c + (1 if i < total % c else 0) for i in range(c)]
        threads = [threading.Thread(target=self._worker, args=(n, record)) for n in shares]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if record:
            self.wall += time.perf_counter() - started

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            if not ordered:
                return float("nan")
            return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

        ok = len(ordered)
        return {
            "clients": self.clients,
            "requests": ok + len(self.errors),
            "ok": ok,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "wall_seconds": round(self.wall, 3),
            "p50_ms": round(pct(50), 2),
            "p99_ms": round(pct(99), 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
            "throughput_rps": round(ok / self.wall, 2) if self.wall else None,
            "rows_per_second": round(ok * self.rows / self.wall, 1) if self.wall else None,
        }


def measure_level(
    senders: dict[str, Callable[[httpx.Client, int], int]],
    clients: int,
    requests: int,
    warmup: int,
    rows: int,
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """Both servers at one level: a warm-up each, then ``rounds`` rounds in A B B A order.

    Alternating spreads slow spells of a shared machine over both servers instead of one.
    """
    levels = {key: Level(send, clients, rows) for key, send in senders.items()}
    for level in levels.values():
        level.round(max(warmup, clients), record=False)
    keys = list(levels)
    per_round = [requests // rounds + (1 if i < requests % rounds else 0) for i in range(rounds)]
    for i, count in enumerate(per_round):
        for key in keys if i % 2 == 0 else reversed(keys):
            levels[key].round(count)
    return {key: level.summary() for key, level in levels.items()}


def probe_bad_requests(ours: str, stock: str) -> list[dict[str, Any]]:
    """How each server answers an unknown condition value and a missing num_rows."""
    cases = [
        (
            "unknown condition value",
            {"num_rows": 5, "conditions": "sex=Unknown", "seed": 0},
            [[5, "sex=Unknown", 0]],
        ),
        ("num_rows above the cap", {"num_rows": 10**7}, [[10**7, "", 0]]),
    ]
    out = []
    for label, body, data in cases:
        a = httpx.post(f"{ours}/generate", json=body, timeout=60)
        b = httpx.post(
            f"{stock}/invocations",
            json={"dataframe_split": {"columns": ["num_rows", "conditions", "seed"], "data": data}},
            timeout=60,
        )
        out.append(
            {
                "case": label,
                "ours": {"status": a.status_code, "body": a.text[:300]},
                "mlflow": {"status": b.status_code, "body": b.text[:300]},
            }
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    model = results["model"]
    lines = [
        "# Serving benchmark: genops server vs `mlflow models serve`",
        "",
        f"Machine: {results['machine']}. Model: {model['kind']} `{model['model_uri']}`"
        f" (version {model['version']}). {results['rows_per_request']} rows per request,"
        f" {results['requests_per_level']} requests per server and level after"
        f" {results['warmup_requests']} warm-up requests, in {results['rounds_per_level']}"
        " rounds alternating the servers (A B B A); seeds differ per request.",
        f"Torch intra-op threads: genops {results['torch_threads']['genops']} (sampling in"
        f" {results['torch_threads']['genops_sample_workers']} worker threads); mlflow"
        f" {results['torch_threads']['mlflow']}.",
        f"Load average before {results['load_before']}, after {results['load_after']}.",
        "",
        "| clients | server | p50 ms | p99 ms | req/s | rows/s | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for level in results["levels"]:
        for key in ("genops", "mlflow"):
            r = level[key]
            lines.append(
                f"| {r['clients']} | {key} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['throughput_rps']} | {r['rows_per_second']} | {r['errors']} |"
            )
    lines += [
        "",
        "| clients | throughput genops / mlflow | p50 genops / mlflow |",
        "|---:|---:|---:|",
    ]
    for level in results["levels"]:
        lines.append(f"| {level['clients']} | {level['throughput_ratio']} | {level['p50_ratio']} |")
    lines += ["", "Bad requests (status and body of each server):", ""]
    for probe in results["bad_requests"]:
        lines.append(
            f"- {probe['case']}: genops {probe['ours']['status']} `{probe['ours']['body'][:150]}`;"
            f" mlflow {probe['mlflow']['status']} `{probe['mlflow']['body'][:150]}`"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracking-uri", default=default_tracking_uri())
    parser.add_argument(
        "--model-uri",
        default=None,
        help=f"default: the first of {', '.join(DEFAULT_MODEL_URIS)} that exists",
    )
    parser.add_argument("--levels", default="1,4,16", help="client counts, comma-separated")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per level")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per level")
    parser.add_argument(
        "--genops-torch-threads", type=int, default=1, help="our server's --torch-threads"
    )
    parser.add_argument(
        "--genops-workers", type=int, default=None, help="our server's --sample-workers"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="genops-bench-serving-") as tmp:
        workdir = Path(tmp)
        model = resolve_model(args, workdir)
        # mlflow models serve runs `uvicorn` from PATH: put this interpreter's scripts first.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": model["tracking_uri"], "PATH": path}
        ours_port, stock_port = free_port(), free_port()
        ours = Process(
            [
                sys.executable,
                "-m",
                "genops.core.serving.server",
                "--model-uri",
                model["model_uri"],
                "--tracking-uri",
                model["tracking_uri"],
                "--port",
                str(ours_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--torch-threads",
                str(args.genops_torch_threads),
                *(["--sample-workers", str(args.genops_workers)] if args.genops_workers else []),
            ],
            workdir / "genops-server.log",
            env,
        )
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        stock = Process(
            [
                mlflow_bin,
                "models",
                "serve",
                "-m",
                model["model_uri"],
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(stock_port),
                "--workers",
                "1",
            ],
            workdir / "mlflow-server.log",
            env,
        )
        ours_url, stock_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{stock_port}"
        try:
            startup = {
                "genops": round(ours.wait_healthy(f"{ours_url}/health"), 1),
                "mlflow": round(stock.wait_healthy(f"{stock_url}/ping"), 1),
            }
            ours_meta = httpx.get(f"{ours_url}/metadata", timeout=30).json()
            threads = {
                "genops": ours_meta.get("torch_threads"),
                "genops_sample_workers": ours_meta.get("sample_workers"),
                "mlflow": "torch default (one per core) unless OMP_NUM_THREADS is set: "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            }
            results_levels = []
            for clients in levels:
                senders = {
                    "genops": ours_request(ours_url, args.rows),
                    "mlflow": mlflow_request(stock_url, args.rows),
                }
                level: dict[str, Any] = {
                    "clients": clients,
                    **measure_level(
                        senders, clients, args.requests, args.warmup, args.rows, args.rounds
                    ),
                }
                for key in senders:
                    print(f"[bench] {key:6s} clients={clients:2d} {level[key]}")
                g, m = level["genops"], level["mlflow"]
                level["throughput_ratio"] = round(g["throughput_rps"] / m["throughput_rps"], 2)
                level["p50_ratio"] = round(g["p50_ms"] / m["p50_ms"], 2)
                results_levels.append(level)
            bad = probe_bad_requests(ours_url, stock_url)
        finally:
            ours.stop()
            stock.stop()

    import torch

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}",
        "torch_threads": threads,
        "model": model,
        "rows_per_request": args.rows,
        "requests_per_level": args.requests,
        "warmup_requests": args.warmup,
        "rounds_per_level": args.rounds,
        "startup_seconds": startup,
        "levels": results_levels,
        "bad_requests": bad,
        "load_before": load_before,
        "load_after": load_average(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
