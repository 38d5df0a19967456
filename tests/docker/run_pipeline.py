"""Run a pipeline locally with KFP's Docker or subprocess runner; write its metrics as JSON.

A driver for `make test-containers` and for comparing the two runners until
`genops run --runner docker` exists:

    python tests/docker/run_pipeline.py --runner docker --config pipelines/configs/adult-fast.yaml \
        --out docker.json
    python tests/docker/run_pipeline.py --runner subprocess --config ... --out subprocess.json
    python tests/docker/run_pipeline.py --compare docker.json subprocess.json

Each run gets its own $GENOPS_HOME (``--home``, default a new temporary folder), so both start
from an empty MLflow store and registry: the same model version, the same champion (none).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def execute(
    pipeline: str, config: str, config_uri: str, runner: Any, tracking_uri: str, root: Path
) -> dict[str, Any]:
    """Run ``pipeline`` with a KFP local ``runner``; its parent run's metrics and tags."""
    from kfp import local

    from genops.version import git_commit, pipeline_version
    from pipelines.registry import get_pipeline

    warnings.filterwarnings(
        "ignore", message="You may be attemping to run a task", category=RuntimeWarning
    )
    local.init(runner=runner, pipeline_root=str(root))
    started = time.perf_counter()
    task = get_pipeline(pipeline)(
        config_uri=config_uri,
        tracking_uri=tracking_uri,
        pipeline_version=pipeline_version(),
        git_commit=git_commit(),
    )
    seconds = time.perf_counter() - started
    run_id = str(task.output)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
    )
    return {
        "runner": type(runner).__name__,
        "pipeline": pipeline,
        "config": config,
        "version": pipeline_version(),
        "seconds": round(seconds, 1),
        "run_id": run_id,
        "status": parent.info.status,
        "tags": {k: v for k, v in parent.data.tags.items() if k.startswith("genops.")},
        "metrics": dict(sorted(parent.data.metrics.items())),
        "step_metrics": {
            child.data.tags.get("mlflow.runName", child.info.run_id): dict(
                sorted(child.data.metrics.items())
            )
            for child in children
        },
    }


def run(pipeline: str, config: str, runner: str, home: Path) -> dict[str, Any]:
    """``execute`` with a fresh $GENOPS_HOME: the Docker runner (and its MLflow server) or
    the subprocess runner over SQLite."""
    os.environ["GENOPS_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    from kfp import local

    root = home / "kfp-local"
    if runner == "docker":
        from pipelines.runners import container_config_uri, docker_runner

        with docker_runner(root) as (kfp_runner, tracking_uri):
            return execute(
                pipeline, config, container_config_uri(config), kfp_runner, tracking_uri, root
            )
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    config_uri = str(Path(config).resolve())
    return execute(
        pipeline, config, config_uri, local.SubprocessRunner(use_venv=False), tracking_uri, root
    )


# Tags that name the run, the host or the time, not the outcome.
VOLATILE_TAGS = (
    "genops.endpoint",
    "genops.run",
    "genops.tracking",
    "genops.champion",
    "genops.config_uri",
)


# Metrics that measure time, not the model: never the same twice.
TIMING_METRICS = ("_seconds", "_per_second")


def compare(a: dict[str, Any], b: dict[str, Any], rel: float = 1e-9) -> list[str]:
    """Differences between two results' metrics (but timings) and outcome tags; empty when
    equal (to ``rel``)."""
    out = []
    for scope in ("metrics",):
        keys = sorted(k for k in set(a[scope]) | set(b[scope]) if not k.endswith(TIMING_METRICS))
        for key in keys:
            x, y = a[scope].get(key), b[scope].get(key)
            if x is None or y is None or not math.isclose(x, y, rel_tol=rel, abs_tol=1e-12):
                out.append(f"{scope}.{key}: {x} vs {y}")
    for key in sorted(set(a["tags"]) | set(b["tags"])):
        if key.startswith(VOLATILE_TAGS) or "version" in key or "commit" in key or "id" in key:
            continue
        if a["tags"].get(key) != b["tags"].get(key):
            out.append(f"tags.{key}: {a['tags'].get(key)!r} vs {b['tags'].get(key)!r}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=["docker", "subprocess"], default="docker")
    parser.add_argument("--pipeline", default="tabular-synth")
    parser.add_argument("--config", default="pipelines/configs/adult-fast.yaml")
    parser.add_argument("--home", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    parser.add_argument("--rel", type=float, default=1e-9, help="relative tolerance (--compare)")
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        diffs = compare(a, b, args.rel)
        print(f"{a['runner']}: {a['seconds']} s, {b['runner']}: {b['seconds']} s")
        print("\n".join(diffs) if diffs else f"the same {len(a['metrics'])} metrics and tags")
        return 1 if diffs else 0
    home = args.home or Path(tempfile.mkdtemp(prefix=f"genops-{args.runner}-"))
    result = run(args.pipeline, args.config, args.runner, home.resolve())
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(
        f"{result['runner']}: {result['status']} outcome={result['tags'].get('genops.status')} "
        f"in {result['seconds']} s; {len(result['metrics'])} metrics; home {home}"
    )
    return 0 if result["status"] == "FINISHED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
