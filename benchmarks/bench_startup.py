"""Task start-up (issue 18): the time from a task's process start to its step's start.

1. Every component, alone: a fresh interpreter that does what KFP's executor does before it
   calls the component's function (imports ``kfp.dsl.executor_main``), then the imports of
   the function's body, then reports how long its process has existed
   (``genops.core.process.seconds_since_start``). The median of ``--repeats`` runs per
   component; with ``--before DIR`` (a checkout of an earlier commit, e.g. made with
   ``git worktree add DIR <rev>``) the same for that code, measured alternately in the same
   run, so the two columns are side by side.
2. The default pipeline, as ``make run`` runs it (pipelines/configs/adult.yaml): every
   task's start-up as its step reported it, their sum, and that sum's share of the run.

Targets: <= 1.5 s per task; orchestration (the sum of the tasks' start-ups) <= 10 % of the
default run's wall time. Writes JSON and Markdown next to ``--out``.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from benchinfo import load_average, machine

REPO = Path(__file__).resolve().parents[1]
MODULES = ("components.shared", "components.tabular", "components.image", "components.text")
TARGET_TASK_SECONDS = 1.5
TARGET_SHARE = 0.10


def component_imports() -> dict[str, list[str]]:
    """component name -> the import statements of its function body, as source."""
    import importlib

    found: dict[str, list[str]] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            func = getattr(obj, "python_func", None)
            if func is None or func.__module__ != module_name:
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
            body = tree.body[0]
            imports = [
                ast.unparse(node)
                for node in ast.walk(body)
                if isinstance(node, ast.Import | ast.ImportFrom)
            ]
            found[obj.name] = imports
    return found


# genops.core.process.seconds_since_start, inline: an earlier checkout may not have it
PROCESS_AGE = """
import os as _os
_stat = open('/proc/self/stat').read()
_ticks = int(_stat[_stat.rfind(')') + 2:].split()[19])
_uptime = float(open('/proc/uptime').read().split()[0])
print(_uptime - _ticks / _os.sysconf('SC_CLK_TCK'))
"""


def probe(imports: list[str], root: Path) -> float:
    code = "\n".join(
        [
            "import kfp.dsl.executor_main",  # what the executor imports before the function
            *imports,
            PROCESS_AGE,
        ]
    )
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}:{root}"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def per_component(repeats: int, before: Path | None) -> dict[str, dict[str, Any]]:
    imports = component_imports()
    roots = {"now": REPO, **({"before": before} if before else {})}
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k in roots} for n in imports}
    for _ in range(repeats):
        for name, lines in imports.items():
            for label, root in roots.items():  # alternately, so load hits both alike
                samples[name][label].append(probe(lines, root))
    return {
        name: {label: round(statistics.median(v), 3) for label, v in by_root.items()}
        for name, by_root in samples.items()
    }


def default_run() -> dict[str, Any]:
    from pipelines.local import run_local

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    home = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    os.environ["GENOPS_HOME"] = str(home)
    with socket.socket() as sock:  # the run's server on a free port, stopped afterwards
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = home / "run.yaml"
    base = str(REPO / "pipelines/configs/adult.yaml")
    config.write_text(json.dumps({"base": base, "deploy": {"target": "local", "port": port}}))
    from genops.core.serving.deploy import stop_local

    try:
        summary = run_local(
            "tabular-synth",
            str(config),
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            pipeline_root=str(home / "kfp"),
        )
    finally:
        stop_local(port)
    total = sum(summary.startups.values())
    return {
        "outcome": summary.outcome,
        "wall_seconds": round(summary.seconds, 1),
        "tasks": summary.startups,
        "orchestration_seconds": round(total, 2),
        "orchestration_share": round(total / summary.seconds, 4),
        "median_task_seconds": round(statistics.median(summary.startups.values()), 3),
        "max_task_seconds": round(max(summary.startups.values()), 3),
    }


def markdown(r: dict[str, Any]) -> str:
    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    lines = [
        "# Task start-up: process start to step start",
        "",
        f"Machine: {r['machine']}. Load average before {r['load_before']}, after "
        f"{r['load_after']}. {r['repeats']} runs per component, median.",
        "",
    ]
    comps = r["components"]
    has_before = any("before" in v for v in comps.values())
    header = "| component | now s |" + (" before s | now / before |" if has_before else "")
    lines += [header, "|---|---:|" + ("---:|---:|" if has_before else "")]
    for name, v in sorted(comps.items(), key=lambda kv: -kv[1]["now"]):
        row = f"| {name} | {v['now']:.2f} |"
        if has_before:
            row += f" {v['before']:.2f} | {v['now'] / v['before']:.2f} |"
        lines.append(row)
    worst = max(v["now"] for v in comps.values())
    lines += [
        "",
        f"Slowest component now: {worst:.2f} s (target <= {TARGET_TASK_SECONDS} s: "
        f"**{met(worst <= TARGET_TASK_SECONDS)}**).",
    ]
    run = r.get("default_run")
    if run:
        lines += [
            "",
            f"## The default pipeline (`make run`): {run['outcome']} in {run['wall_seconds']} s",
            "",
            "| task | start-up s |",
            "|---|---:|",
            *(f"| {k} | {v:.2f} |" for k, v in run["tasks"].items()),
            "",
            f"Median {run['median_task_seconds']:.2f} s, max {run['max_task_seconds']:.2f} s "
            f"(target <= {TARGET_TASK_SECONDS} s: "
            f"**{met(run['max_task_seconds'] <= TARGET_TASK_SECONDS)}**); orchestration "
            f"{run['orchestration_seconds']:.1f} s = {100 * run['orchestration_share']:.1f} % "
            f"of the run (target <= {100 * TARGET_SHARE:.0f} %: "
            f"**{met(run['orchestration_share'] <= TARGET_SHARE)}**).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/startup.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", type=Path, default=None, help="an earlier checkout")
    parser.add_argument("--no-run", action="store_true", help="skip the default pipeline run")
    args = parser.parse_args()
    load_before = load_average()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "repeats": args.repeats,
        "components": per_component(args.repeats, args.before),
    }
    if not args.no_run:
        results["default_run"] = default_run()
    results["load_before"] = load_before
    results["load_after"] = load_average()
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
