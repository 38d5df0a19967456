"""Benchmark of the local model server against MLflow's stock scoring server, same model.

Starts both as real processes on this machine: ``python -m genops.core.serving.server`` (our
FastAPI app, ``POST /generate``) and ``mlflow models serve --env-manager local`` (its
``POST /invocations`` with a ``dataframe_split`` payload), then, for each concurrency level,
sends a warm-up and then a fixed number of generate requests (100 rows each, a fresh seed per
request) from that many client threads, in rounds that alternate the two servers (A B B A), so
a slow spell of a shared machine falls on both. Reports latency p50/p99, throughput, the CPU
each server spent per request and the ratios, plus how each server answers two bad requests.

One run measures every serving target of issue 18, each next to its target:

- rows/s at 16 clients against ``mlflow models serve`` (target >= 5x);
- p99 latency at 4 clients (target <= 100 ms);
- errors over 16 clients x 1,000 requests (target 0), and the server's resident memory
  (``VmRSS``) over the first and the last thousand of them (target: within 10 %);
- the image server beside ``mlflow models serve`` on the same image model: images/s at 1, 4
  and 16 clients.

Before the servers start it profiles one request in-process, stage by stage (parse, condition
codes, network, decode, render), on the path the server took before micro-batching (a pandas
frame and Python's ``json``) and on the current one, alone and in a batch of 16; and, when
``py-spy`` is installed, it samples the running genops server under 16 clients and sorts the
samples by stage. Both land in ``serving.md``.

The clients are threads with one keep-alive connection each and a minimal HTTP/1.1 client
(raw sockets, orjson): httpx spent about as much CPU per request as the server it measured,
on the same two cores.

The tabular model is the registered Adult synthesizer when ``--model-uri`` resolves at
``--tracking-uri`` (read from a snapshot copy of the store, so a pipeline writing to it at
the same time is not disturbed), else a toy TVAE trained here in seconds; the image model is
a toy diffusion model trained here. The output says which.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
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
import orjson
from benchinfo import load_average, machine

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "serving.json"
# Tried in order when --model-uri is not given: the promoted version, else the candidate.
DEFAULT_MODEL_URIS = ("models:/adult-synthesizer@champion", "models:/adult-synthesizer@challenger")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TARGET_THROUGHPUT_RATIO = 5.0
TARGET_P99_MS = 100.0
TARGET_RSS_GROWTH = 0.10


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


IMAGE_CLASSES = ["ring", "bar", "dot"]


def register_toy_image_model(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A small class-conditional diffusion model (random pixels, one epoch: its quality does
    not matter here, its size does), logged as the genops pyfunc and registered."""
    import mlflow
    import numpy as np

    from genops.workloads.image.config import DiffusionSpec
    from genops.workloads.image.diffusion import DiffusionModel
    from genops.workloads.image.pyfunc import images_frame, log_generator

    size, channels = args.image_size, 1
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(IMAGE_CLASSES)), 16)
    images = rng.uniform(-1, 1, size=(labels.size, channels, size, size)).astype(np.float32)
    spec = DiffusionSpec(
        epochs=1,
        batch_size=16,
        base_channels=args.image_channels,
        timesteps=100,
        sample_steps=args.image_steps,
        device="cpu",
    )
    generator = DiffusionModel(spec, channels, size, IMAGE_CLASSES).fit(
        images, labels, progress=False
    )
    generator.save(workdir / "generator")
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment(
        "bench-image-serving", artifact_location=(workdir / "mlartifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        example = images_frame(generator.sample([0, 1], seed=0), [0, 1], IMAGE_CLASSES)
        info = log_generator(workdir / "generator", example)
    name = "bench-diffusion"
    version = mlflow.register_model(info.model_uri, name).version
    return {
        "kind": f"toy diffusion model trained here ({channels}x{size}x{size}, base channels "
        f"{args.image_channels}, channel mults {spec.channel_mults}, {spec.sample_steps} DDIM "
        f"steps, guidance {spec.guidance_scale})",
        "model_uri": f"models:/{name}/{version}",
        "tracking_uri": tracking_uri,
        "name": name,
        "version": str(version),
    }


def process_group_stats(pgid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident kB of every process in a process group."""
    cpu_ticks = 0
    rss_kb = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            cpu_ticks += int(fields[11]) + int(fields[12])
            rss_kb += vm_rss_kb(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return cpu_ticks / CLOCK_TICKS, rss_kb


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        return process_group_stats(self.popen.pid)[0]

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


class Connection:
    """One keep-alive HTTP/1.1 connection: POST a JSON body, read a Content-Length answer.

    A few lines of socket code instead of httpx, so the clients, which share the machine
    with the servers, spend little CPU per request."""

    def __init__(self, base: str, timeout: float = 120.0) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.address, self.timeout = (host, int(port)), timeout
        self.host = f"{host}:{port}".encode()
        self.sock: socket.socket | None = None
        self.buffer = bytearray()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, bytearray()
        return sock

    def _recv(self, sock: socket.socket) -> None:
        chunk = sock.recv(1 << 18)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        sock = self.sock or self._connect()
        head = (
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        try:
            sock.sendall(head + body)
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                self._recv(sock)
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            status = int(lines[0].split()[1])
            length, close = None, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            if length is None:
                raise ValueError("an answer without Content-Length")
            while len(self.buffer) < end + 4 + length:
                self._recv(sock)
            data = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, bytearray()


Sender = Callable[[Connection, int], int]


def _ok(status: int, data: bytes) -> Any:
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {data[:150].decode(errors='replace')}")
    return orjson.loads(data)


def ours_request(rows: int) -> Sender:
    def send(conn: Connection, seed: int) -> int:
        body = orjson.dumps({"num_rows": rows, "seed": seed})
        return len(_ok(*conn.post("/generate", body))["rows"])

    return send


def mlflow_request(rows: int) -> Sender:
    columns = ["num_rows", "conditions", "seed"]

    def send(conn: Connection, seed: int) -> int:
        payload = {"dataframe_split": {"columns": columns, "data": [[rows, "", seed]]}}
        return len(_ok(*conn.post("/invocations", orjson.dumps(payload)))["predictions"])

    return send


def ours_image_request(count: int) -> Sender:
    def send(conn: Connection, seed: int) -> int:
        label = IMAGE_CLASSES[seed % len(IMAGE_CLASSES)]
        body = orjson.dumps({"counts": {label: count}, "seed": seed, "format": "png"})
        return len(_ok(*conn.post("/generate", body))["images"])

    return send


def mlflow_image_request(count: int) -> Sender:
    columns = ["label", "count", "seed"]

    def send(conn: Connection, seed: int) -> int:
        label = IMAGE_CLASSES[seed % len(IMAGE_CLASSES)]
        payload = {"dataframe_split": {"columns": columns, "data": [[label, count, seed]]}}
        return len(_ok(*conn.post("/invocations", orjson.dumps(payload)))["predictions"])

    return send


class Level:
    """One server at one concurrency level, measured over several rounds."""

    def __init__(
        self, send: Sender, base: str, clients: int, items: int, server: Process | None = None
    ) -> None:
        self.send, self.base, self.clients, self.items = send, base, clients, items
        self.server = server
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.wall = 0.0
        self.cpu = 0.0
        self.lock = threading.Lock()
        self.seeds = iter(range(10**9))
        self.completed = 0  # requests answered so far, counted while they run

    def _worker(self, count: int, record: bool) -> None:
        conn = Connection(self.base)
        try:
            for _ in range(count):
                with self.lock:
                    seed = next(self.seeds)
                started = time.perf_counter()
                try:
                    got = self.send(conn, seed)
                    if got != self.items:
                        raise ValueError(f"{got} items instead of {self.items}")
                except Exception as exc:
                    with self.lock:
                        self.completed += 1
                        if record:
                            self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                elapsed = time.perf_counter() - started
                with self.lock:
                    self.completed += 1
                    if record:
                        self.latencies.append(elapsed)
        finally:
            conn.close()

    def round(self, total: int, record: bool = True) -> None:
        """``total`` requests shared by ``clients`` threads, each with its own connection."""
        c = self.clients
        shares = [total // c + (1 if i < total % c else 0) for i in range(c)]
        threads = [threading.Thread(target=self._worker, args=(n, record)) for n in shares]
        cpu = self.server.cpu_seconds() if self.server else 0.0
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if record:
            self.wall += time.perf_counter() - started
            if self.server:
                self.cpu += self.server.cpu_seconds() - cpu

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
            "items_per_second": round(ok * self.items / self.wall, 1) if self.wall else None,
            "server_cpu_ms_per_request": round(self.cpu / ok * 1000, 3) if ok else None,
        }


def measure_level(
    senders: dict[str, tuple[Sender, str, Process]],
    clients: int,
    requests: int,
    warmup: int,
    items: int,
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """Both servers at one level: a warm-up each, then ``rounds`` rounds in A B B A order.

    Alternating spreads slow spells of a shared machine over both servers instead of one.
    """
    levels = {
        key: Level(send, base, clients, items, server)
        for key, (send, base, server) in senders.items()
    }
    for level in levels.values():
        level.round(max(warmup, clients), record=False)
    keys = list(levels)
    per_round = [requests // rounds + (1 if i < requests % rounds else 0) for i in range(rounds)]
    for i, count in enumerate(per_round):
        for key in keys if i % 2 == 0 else reversed(keys):
            levels[key].round(count)
    return {key: level.summary() for key, level in levels.items()}


def run_levels(
    senders: dict[str, tuple[Sender, str, Process]],
    levels: list[int],
    requests: int,
    warmup: int,
    items: int,
    rounds: int,
    label: str,
) -> list[dict[str, Any]]:
    out = []
    for clients in levels:
        level: dict[str, Any] = {
            "clients": clients,
            **measure_level(senders, clients, requests, warmup, items, rounds),
        }
        for key in senders:
            print(f"[bench] {label} {key:6s} clients={clients:2d} {level[key]}", flush=True)
        g, m = level["genops"], level["mlflow"]
        level["throughput_ratio"] = (
            round(g["throughput_rps"] / m["throughput_rps"], 2)
            if g["throughput_rps"] and m["throughput_rps"]
            else None
        )
        level["p50_ratio"] = round(g["p50_ms"] / m["p50_ms"], 2) if m["p50_ms"] else None
        out.append(level)
    return out


def endurance(
    server: Process, base: str, send: Sender, clients: int, per_client: int, items: int
) -> dict[str, Any]:
    """``clients`` x ``per_client`` requests in one go; the server's VmRSS is sampled as they
    are answered and compared over the first and the last thousand."""
    level = Level(send, base, clients, items)
    total = clients * per_client
    samples: list[tuple[int, int]] = []  # (requests answered, VmRSS kB)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with level.lock:
                done = level.completed
            samples.append((done, vm_rss_kb(server.pid)))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample)
    rss_start = vm_rss_kb(server.pid)
    sampler.start()
    try:
        level.round(total)
    finally:
        stop.set()
        sampler.join()
    window = min(1000, total // 4)
    first = [rss for done, rss in samples if done < window]
    last = [rss for done, rss in samples if done >= total - window]
    first_mb = statistics.fmean(first) / 1024 if first else float("nan")
    last_mb = statistics.fmean(last) / 1024 if last else float("nan")
    summary = level.summary()
    return {
        "clients": clients,
        "requests": total,
        "errors": summary["errors"],
        "first_errors": summary["first_errors"],
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
        "items_per_second": summary["items_per_second"],
        "rss_window_requests": window,
        "rss_before_mb": round(rss_start / 1024, 1),
        "rss_first_window_mb": round(first_mb, 1),
        "rss_last_window_mb": round(last_mb, 1),
        "rss_max_mb": round(max((rss for _, rss in samples), default=0) / 1024, 1),
        "rss_growth": round(last_mb / first_mb - 1, 4) if first and last else None,
        "rss_samples": len(samples),
    }


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


# ---------------------------------------------------------------------------- profiling
def legacy_render(frame: Any, fmt: str = "records") -> bytes:
    """What the server rendered with before: per-column ``tolist`` of the frame, Python's
    ``json`` (kept here to profile the old path against the new one)."""
    columns = [str(c) for c in frame.columns]
    values = [frame[c].tolist() for c in frame.columns]
    body: dict[str, Any] = {"num_rows": len(frame), "columns": columns}
    body["rows"] = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
    return json.dumps(body, allow_nan=False).encode()


def profile_stages(model: dict[str, Any], rows: int, requests: int) -> dict[str, Any]:
    """Milliseconds per request, stage by stage, in this process (one torch thread, as the
    server runs): the old path (a pandas frame, Python's json) and the current one, alone
    and in batches of 16."""
    import torch

    from genops.core.serving.request import decode_json
    from genops.core.serving.server import load_served_model
    from genops.workloads.tabular.serving import render_columns

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adapter: Any = load_served_model(model["model_uri"], model["tracking_uri"]).adapter
        syn = adapter.synthesizer
        bodies = [orjson.dumps({"num_rows": rows, "seed": i}) for i in range(requests)]

        def stages_of(batch: list[bytes], legacy: bool) -> dict[str, float]:
            t: dict[str, float] = collections.defaultdict(float)
            c0 = time.perf_counter()
            parsed = [adapter.parse(decode_json(b), 100_000) for b in batch]
            c1 = time.perf_counter()
            t["parse + validate"] += c1 - c0
            jobs = []
            for request, _ in parsed:
                fixed, _ = syn._split_conditions(request.conditions)
                rng, gen = syn._rngs(request.seed)
                jobs.append((syn._draw_condition_codes(request.num_rows, fixed, rng), rng, gen))
            c2 = time.perf_counter()
            t["seeded generators + condition codes"] += c2 - c1
            parts = [(codes, rows, rng, gen) for codes, rng, gen in jobs]
            encoded = syn._generate_encoded_many(parts, 10_000)
            c3 = time.perf_counter()
            t["network (decoder + noise)"] += c3 - c2
            if legacy:
                frames = [syn._decode(enc, job[0]) for enc, job in zip(encoded, jobs, strict=True)]
                c4 = time.perf_counter()
                t["decode"] += c4 - c3
                for frame in frames:
                    legacy_render(frame)
                t["render JSON"] += time.perf_counter() - c4
            else:
                import numpy as np

                codes = [job[0] for job in jobs]
                decoded = syn._decode_arrays(
                    np.concatenate(encoded),
                    np.concatenate(codes) if codes[0] is not None else None,
                )
                c4 = time.perf_counter()
                t["decode"] += c4 - c3
                for i in range(len(batch)):
                    part = {k: v[i * rows : (i + 1) * rows] for k, v in decoded.items()}
                    render_columns(part, "records")
                t["render JSON"] += time.perf_counter() - c4
            return t

        def run(legacy: bool, size: int) -> dict[str, float]:
            for i in range(0, 32, size):  # warm-up
                stages_of(bodies[i : i + size], legacy)
            total: dict[str, float] = collections.defaultdict(float)
            for i in range(0, requests - size + 1, size):
                for k, v in stages_of(bodies[i : i + size], legacy).items():
                    total[k] += v
            n = (requests // size) * size
            out = {k: round(v / n * 1000, 4) for k, v in total.items()}
            out["total"] = round(sum(total.values()) / n * 1000, 4)
            return out

        return {
            "rows_per_request": rows,
            "requests": requests,
            "before: frame + json, alone": run(True, 1),
            "now: arrays + orjson, alone": run(False, 1),
            "now: arrays + orjson, batch of 16": run(False, 16),
        }
    finally:
        torch.set_num_threads(threads)


PROFILE_STAGES = [
    ("render JSON", ("render_columns", "render (genops", "legacy_render")),
    ("decode (inverse transform)", ("decode_arrays", "_decode (genops", "inverse_transform")),
    ("network (decoder + noise)", ("_generate_encoded",)),
    ("seeded generators + condition codes", ("_draw_condition_codes", "_rngs (genops")),
    ("parse + validate", ("decode_json", "Adapter.parse (genops", "validate_request")),
    ("batcher", ("MicroBatcher", "_answer_batch")),
    # the app runs inside uvicorn's protocol frames, and everything inside the loop's: the
    # inner layer is tried first
    (
        "ASGI app (starlette, fastapi, the handler)",
        ("starlette", "fastapi", "generate (genops/core", "_read_body (genops"),
    ),
    ("HTTP (uvicorn protocol)", ("h11", "httptools", "uvicorn/protocols")),
    ("asyncio loop, worker threads", ("asyncio", "concurrent/futures", "threading.py")),
]


def py_spy_profile(server: Process, base: str, rows: int, requests: int) -> dict[str, Any]:
    """Sample the genops server with py-spy (only the thread holding the GIL) while 16
    clients send ``requests`` requests, and sort the samples by stage."""
    exe = Path(sys.executable).with_name("py-spy")
    py_spy = str(exe) if exe.exists() else shutil.which("py-spy")
    if py_spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    raw = Path(tempfile.mkdtemp(prefix="genops-pyspy-")) / "server.txt"
    record = subprocess.Popen(
        [
            *(py_spy, "record", "-p", str(server.pid), "-r", "200", "-d", "600"),
            *("--gil", "--nonblocking", "-f", "raw", "-o", str(raw)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)
    level = Level(ours_request(rows), base, 16, rows)
    level.round(requests, record=False)
    record.send_signal(signal.SIGINT)
    try:
        _, err = record.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        record.kill()
        _, err = record.communicate()
    if not raw.exists():
        return {"skipped": f"py-spy wrote nothing: {err.decode(errors='replace')[-300:]}"}
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        name = next(
            (name for name, keys in PROFILE_STAGES if any(k in stack for k in keys)), "other"
        )
        counts[name] += int(n)
    shutil.rmtree(raw.parent, ignore_errors=True)
    return {
        "requests": requests,
        "samples": total,
        "share": {k: round(v / total, 4) for k, v in counts.most_common()} if total else {},
    }


# ---------------------------------------------------------------------------- report
def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    by_clients = {level["clients"]: level for level in results["levels"]}
    rows: list[dict[str, Any]] = []

    def add(name: str, value: Any, target: str, met: bool | None) -> None:
        rows.append({"target": name, "value": value, "goal": target, "met": met})

    top = by_clients.get(16)
    ratio = top["throughput_ratio"] if top else None
    add(
        "rows/s at 16 clients, genops / mlflow",
        ratio
        if top is None
        else f"{ratio} ({top['genops']['items_per_second']} / {top['mlflow']['items_per_second']})",
        f">= {TARGET_THROUGHPUT_RATIO}",
        None if ratio is None else ratio >= TARGET_THROUGHPUT_RATIO,
    )
    four = by_clients.get(4)
    p99 = four["genops"]["p99_ms"] if four else None
    add(
        "p99 latency at 4 clients (genops), ms",
        p99 if four is None else f"{p99} (mlflow {four['mlflow']['p99_ms']})",
        f"<= {TARGET_P99_MS:g}",
        None if p99 is None else p99 <= TARGET_P99_MS,
    )
    end = results.get("endurance")
    if end:
        add(
            f"errors over {end['clients']} clients x {end['requests'] // end['clients']:,} "
            "requests (genops)",
            end["errors"],
            "0",
            end["errors"] == 0,
        )
        growth = end["rss_growth"]
        add(
            f"RSS, last vs first {end['rss_window_requests']:,} requests",
            f"{end['rss_first_window_mb']} -> {end['rss_last_window_mb']} MB "
            f"({'n/a' if growth is None else f'{growth * 100:+.1f} %'})",
            f"within {TARGET_RSS_GROWTH * 100:g} %",
            None if growth is None else abs(growth) <= TARGET_RSS_GROWTH,
        )
    image = results.get("image")
    for level in image["levels"] if image else []:
        g, m = level["genops"], level["mlflow"]
        add(
            f"image server: images/s at {level['clients']} clients (genops; mlflow)",
            f"{g['items_per_second']} ({m['items_per_second']}; ratio {level['throughput_ratio']})",
            "measured, 0 errors",
            g["errors"] == 0 and g["items_per_second"] is not None,
        )
    return rows


def _level_table(levels: list[dict[str, Any]], unit: str) -> list[str]:
    lines = [
        f"| clients | server | p50 ms | p99 ms | req/s | {unit}/s | server CPU ms/req | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        for key in ("genops", "mlflow"):
            r = level[key]
            lines.append(
                f"| {r['clients']} | {key} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['throughput_rps']} | {r['items_per_second']} | "
                f"{r['server_cpu_ms_per_request']} | {r['errors']} |"
            )
    lines += [
        "",
        f"| clients | {unit}/s genops / mlflow | p50 genops / mlflow |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {x['clients']} | {x['throughput_ratio']} | {x['p50_ratio']} |" for x in levels]
    return lines


def profile_summary(prof: dict[str, Any]) -> list[str]:
    """Two sentences on where the time went, from the measured stages."""
    if not prof:
        return []
    names = [k for k in prof if k not in ("rows_per_request", "requests")]
    before, alone, batch = (prof[n] for n in names[:3])

    def top(stages: dict[str, float]) -> str:
        parts = sorted(((v, k) for k, v in stages.items() if k != "total"), reverse=True)
        return ", ".join(f"{k} {v:.3f} ms" for v, k in parts[:3])

    out = [
        f"Summary: on the old path a request cost {before['total']:.3f} ms, mostly {top(before)}"
        f"; now {alone['total']:.3f} ms alone ({top(alone)}) and {batch['total']:.3f} ms in a"
        f" batch of 16 ({top(batch)}).",
    ]
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
        f"genops server: torch intra-op threads {results['torch_threads']['genops']},"
        f" {results['torch_threads']['genops_sample_workers']} worker threads, micro-batching"
        f" {results['batching']['settings']}; mlflow: {results['torch_threads']['mlflow']}.",
        f"Load average before {results['load_before']}, after {results['load_after']}.",
        "",
        "## Targets",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
    ]
    for row in results["targets"]:
        met = "n/a" if row["met"] is None else ("met" if row["met"] else "**not met**")
        lines.append(f"| {row['target']} | {row['value']} | {row['goal']} | {met} |")
    lines += ["", "## Where the time goes", ""]
    prof = results.get("profile") or {}
    if prof:
        names = [k for k in prof if k not in ("rows_per_request", "requests")]
        stages = list(prof[names[0]])
        lines += [
            f"In-process, one torch thread, {prof['rows_per_request']} rows per request, ms per"
            f" request averaged over {prof['requests']} requests (no HTTP):",
            "",
            "| stage | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        stages += [k for n in names for k in prof[n] if k not in stages]
        for stage in stages:
            cells = [str(prof[n].get(stage, "")) for n in names]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    spy = results.get("py_spy") or {}
    if spy.get("share"):
        lines += [
            "",
            f"The genops server under 16 clients ({spy['requests']} requests), sampled by"
            f" py-spy while it held the GIL ({spy['samples']} samples):",
            "",
            "| stage | share of samples |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v * 100:.1f} % |" for k, v in spy["share"].items()]
    elif spy:
        lines += ["", f"py-spy profile: {spy.get('skipped')}"]
    lines += [
        "",
        *profile_summary(prof),
        "",
        "## Tabular server",
        "",
    ]
    lines += _level_table(results["levels"], "rows")
    batching = results["batching"]
    lines += [
        "",
        f"Micro-batching over the whole run: {batching['batches']} sampling calls answered"
        f" {batching['batched_requests']} requests (largest batch {batching['largest_batch']},"
        f" {batching['alone']} answered alone).",
    ]
    end = results.get("endurance")
    if end:
        lines += [
            "",
            f"Endurance: {end['clients']} clients x {end['requests'] // end['clients']:,}"
            f" requests to genops: {end['errors']} errors, p50 {end['p50_ms']} ms, p99"
            f" {end['p99_ms']} ms, {end['items_per_second']} rows/s; VmRSS {end['rss_before_mb']}"
            f" MB before, {end['rss_first_window_mb']} MB over the first"
            f" {end['rss_window_requests']:,} requests, {end['rss_last_window_mb']} MB over the"
            f" last {end['rss_window_requests']:,} (max {end['rss_max_mb']} MB,"
            f" {end['rss_samples']} samples).",
        ]
    image = results.get("image")
    if image:
        lines += [
            "",
            "## Image server",
            "",
            f"Model: {image['model']['kind']} `{image['model']['model_uri']}`."
            f" {image['images_per_request']} images per request (PNG),"
            f" {image['requests_per_level']} requests per server and level after"
            f" {image['warmup_requests']} warm-up requests, A B B A.",
            "",
        ]
        lines += _level_table(image["levels"], "images")
        lines += ["", f"Micro-batching: {image['batching']}."]
    lines += ["", "Bad requests (status and body of each server):", ""]
    for probe in results["bad_requests"]:
        lines.append(
            f"- {probe['case']}: genops {probe['ours']['status']} `{probe['ours']['body'][:150]}`;"
            f" mlflow {probe['mlflow']['status']} `{probe['mlflow']['body'][:150]}`"
        )
    return "\n".join(lines) + "\n"


def genops_command(model: dict[str, Any], port: int, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "genops.core.serving.server",
        "--model-uri",
        model["model_uri"],
        "--tracking-uri",
        model["tracking_uri"],
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--follow-interval",
        "0",
        "--torch-threads",
        str(args.genops_torch_threads),
        *(["--sample-workers", str(args.genops_workers)] if args.genops_workers else []),
        *(
            ["--batch-max-rows", str(args.batch_max_rows)]
            if args.batch_max_rows is not None
            else []
        ),
    ]


def mlflow_command(model: dict[str, Any], port: int) -> list[str]:
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    return [
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
        str(port),
        "--workers",
        "1",
    ]


def start_pair(
    model: dict[str, Any], args: argparse.Namespace, workdir: Path, tag: str
) -> tuple[Process, Process, str, str, dict[str, float]]:
    # mlflow models serve runs `uvicorn` from PATH: put this interpreter's scripts first.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": model["tracking_uri"], "PATH": path}
    ours_port, stock_port = free_port(), free_port()
    ours = Process(genops_command(model, ours_port, args), workdir / f"genops-{tag}.log", env)
    stock = Process(mlflow_command(model, stock_port), workdir / f"mlflow-{tag}.log", env)
    ours_url, stock_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{stock_port}"
    try:
        startup = {
            "genops": round(ours.wait_healthy(f"{ours_url}/health"), 1),
            "mlflow": round(stock.wait_healthy(f"{stock_url}/ping"), 1),
        }
    except BaseException:
        ours.stop()
        stock.stop()
        raise
    return ours, stock, ours_url, stock_url, startup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracking-uri", default=default_tracking_uri())
    parser.add_argument(
        "--model-uri",
        default=None,
        help=f"default: the first of {', '.join(DEFAULT_MODEL_URIS)} that exists",
    )
    parser.add_argument("--levels", default="1,4,16", help="client counts, comma-separated")
    parser.add_argument("--requests", type=int, default=400, help="measured requests per level")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per level")
    parser.add_argument(
        "--genops-torch-threads", type=int, default=1, help="our server's --torch-threads"
    )
    parser.add_argument(
        "--genops-workers", type=int, default=None, help="our server's --sample-workers"
    )
    parser.add_argument(
        "--batch-max-rows",
        type=int,
        default=None,
        help="our server's --batch-max-rows (0 turns micro-batching off; default: its default)",
    )
    parser.add_argument("--endurance-clients", type=int, default=16)
    parser.add_argument(
        "--endurance-requests", type=int, default=1000, help="requests per endurance client"
    )
    parser.add_argument("--profile-requests", type=int, default=320)
    parser.add_argument("--no-py-spy", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--image-levels", default="1,4,16", help="'' skips the image server")
    parser.add_argument("--image-requests", type=int, default=48)
    parser.add_argument("--image-warmup", type=int, default=8)
    parser.add_argument("--image-count", type=int, default=4, help="images per request")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--image-channels", type=int, default=16, help="U-Net base channels")
    parser.add_argument("--image-steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    image_levels = [int(x) for x in args.image_levels.split(",") if x.strip()]

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="genops-bench-serving-") as tmp:
        workdir = Path(tmp)
        model = resolve_model(args, workdir)
        print("[bench] profiling one request in-process", flush=True)
        profile = profile_stages(model, args.rows, args.profile_requests)
        print(f"[bench] {json.dumps(profile)}", flush=True)
        ours, stock, ours_url, stock_url, startup = start_pair(model, args, workdir, "tabular")
        try:
            ours_meta = httpx.get(f"{ours_url}/metadata", timeout=30).json()
            threads = {
                "genops": ours_meta.get("torch_threads"),
                "genops_sample_workers": ours_meta.get("sample_workers"),
                "mlflow": "torch default (one per core) unless OMP_NUM_THREADS is set: "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            }
            senders = {
                "genops": (ours_request(args.rows), ours_url, ours),
                "mlflow": (mlflow_request(args.rows), stock_url, stock),
            }
            results_levels = run_levels(
                senders, levels, args.requests, args.warmup, args.rows, args.rounds, "tabular"
            )
            print("[bench] endurance", flush=True)
            end = endurance(
                ours,
                ours_url,
                ours_request(args.rows),
                args.endurance_clients,
                args.endurance_requests,
                args.rows,
            )
            print(f"[bench] {end}", flush=True)
            batching_meta = httpx.get(f"{ours_url}/metadata", timeout=30).json().get("batching")
            spy = (
                {"skipped": "--no-py-spy"}
                if args.no_py_spy
                else py_spy_profile(ours, ours_url, args.rows, 2000)
            )
            bad = probe_bad_requests(ours_url, stock_url)
        finally:
            ours.stop()
            stock.stop()
        image: dict[str, Any] | None = None
        if image_levels:
            print("[bench] image server", flush=True)
            image_model = register_toy_image_model(workdir / "image", args)
            ours, stock, ours_url, stock_url, image_startup = start_pair(
                image_model, args, workdir, "image"
            )
            try:
                image_senders = {
                    "genops": (ours_image_request(args.image_count), ours_url, ours),
                    "mlflow": (mlflow_image_request(args.image_count), stock_url, stock),
                }
                image_levels_out = run_levels(
                    image_senders,
                    image_levels,
                    args.image_requests,
                    args.image_warmup,
                    args.image_count,
                    args.rounds,
                    "image",
                )
                image_batching = (
                    httpx.get(f"{ours_url}/metadata", timeout=30).json().get("batching")
                )
            finally:
                ours.stop()
                stock.stop()
            image = {
                "model": image_model,
                "images_per_request": args.image_count,
                "requests_per_level": args.image_requests,
                "warmup_requests": args.image_warmup,
                "startup_seconds": image_startup,
                "levels": image_levels_out,
                "batching": image_batching,
            }

    import torch

    batching = dict(batching_meta or {})
    settings = (
        "off"
        if not batching
        else f"(at most {batching.get('max_rows')} rows, {batching.get('wait_ms')} ms wait, "
        f"{batching.get('concurrency')} batches at once)"
    )
    results: dict[str, Any] = {
        "machine": machine(f"torch {torch.__version__}"),
        "torch_threads": threads,
        "model": model,
        "rows_per_request": args.rows,
        "requests_per_level": args.requests,
        "warmup_requests": args.warmup,
        "rounds_per_level": args.rounds,
        "startup_seconds": startup,
        "levels": results_levels,
        "endurance": end,
        "batching": {
            "settings": settings,
            **{k: batching.get(k) for k in ("batches", "batched_requests", "largest_batch")},
            "alone": batching.get("alone"),
        },
        "profile": profile,
        "py_spy": spy,
        "image": image,
        "bad_requests": bad,
        "load_before": load_before,
        "load_after": load_average(),
    }
    results["targets"] = targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
