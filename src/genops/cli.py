"""``genops`` command line: run, compile and check pipelines.

The library never imports kfp; the commands that need it import the ``pipelines`` package
when they run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def _check_inputs(config: Any) -> tuple[bool, Any]:
    """Pre-flight (the sources exist, can be read, hold the columns the config names) and
    the resolution of what the config leaves to the data, before any step starts. Prints
    problems and notes to stderr; returns (passed, the Resolution, or None when a source
    could not be checked here, e.g. no S3 credentials: the run resolves it then)."""
    from genops.core.config import preflight, resolve_config

    problems = preflight(config)
    for problem in problems:
        if not problem.blocking:
            print(f"note: pre-flight: {problem}", file=sys.stderr)
    blocking = [p for p in problems if p.blocking]
    for problem in blocking:
        print(f"error: pre-flight: {problem}", file=sys.stderr)
    if blocking:
        return False, None
    if problems:
        return True, None
    try:
        return True, resolve_config(config)
    except ValueError as exc:  # names the column and the rule
        print(f"error: {exc}", file=sys.stderr)
        return False, None


def _cmd_check_config(args: argparse.Namespace) -> int:
    from genops.core.config import ConfigError, dump_config, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    passed, resolution = _check_inputs(config)
    if not passed:
        return 2
    print(dump_config(resolution.config if resolution is not None else config))
    for line in resolution.summary if resolution is not None else []:
        print(f"# {line}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genops.workloads.tabular.data.starter import InitError, dataset_name, starter_spec

    out = Path(args.output or f"{dataset_name(args.data)}.yaml")
    if out.exists() and not args.force:
        print(f"error: {out} exists: pass --force to overwrite it", file=sys.stderr)
        return 2
    try:
        starter = starter_spec(args.data, out, target=args.target)
    except InitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(starter.text)
    print(f"wrote {out}")
    for line in starter.summary:
        print(f"  {line}")
    print(f"next: genops check-config {out}, then genops run tabular-synth --config {out}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from genops.core.config import ConfigError, load_config_for

    if args.pipeline == "tabular-generate":
        print(
            "error: tabular-generate takes a model, not a run config: `genops generate "
            "--model models:/<name>@champion --rows N --out DIR --kfp`",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config_for(args.config, args.pipeline)  # fail fast, before any task
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    passed, resolution = _check_inputs(config)  # sources and columns, before any step
    if not passed:
        return 2
    for line in resolution.summary if resolution is not None else []:
        print(line)
    from pipelines.local import PipelineFailed, run_local
    from pipelines.runners import RunnerError

    try:
        summary = run_local(
            args.pipeline,
            args.config,
            tracking_uri=args.tracking_uri,
            runner=args.runner,
            verbose=args.verbose,
        )
    except PipelineFailed as exc:  # the step, its message, the MLflow run, the log
        print(exc.render(traceback=args.traceback or args.verbose), file=sys.stderr)
        return exc.exit_code
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.traceback:
            raise
        print(f"error: {type(exc).__name__}: {exc} (--traceback shows where)", file=sys.stderr)
        return 1
    print(summary.render())
    # 0: a model version was registered; 3: a gate stopped the run or the smoke test rolled
    # the champion back; 1: a step failed.
    return {"succeeded": 0, "blocked": 3, "rejected": 3, "rolled_back": 3}.get(summary.outcome, 1)


def _cmd_runs_reconcile(args: argparse.Namespace) -> int:
    from genops.core.tracking import reconcile_runs

    found = reconcile_runs(_tracking_uri(args.tracking_uri), dry_run=args.dry_run)
    closed = [r for r in found if r.action == "closed"]
    for r in found:
        if r.action == "closed":
            verb = "would close" if args.dry_run else "closed"
            print(f"{verb} {r.run_id} ({r.experiment}): FAILED, step {r.step}: {r.failure}")
        elif r.action == "alive":
            print(f"running {r.run_id} ({r.experiment}): its driver ({r.driver}) is alive")
        else:
            print(f"left {r.run_id} ({r.experiment}): its driver ran on another host ({r.driver})")
    if not closed:
        print("no run left RUNNING by a `genops run` that is gone")
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.compile import main as compile_main

    compile_main(args.pipelines)
    return 0


def _tracking_uri(arg: str | None) -> str:
    from genops.paths import default_tracking_uri

    return arg or default_tracking_uri()


def _cmd_promote(args: argparse.Namespace) -> int:
    from genops.core.aliases import RegistryError, promote

    try:
        move = promote(args.model, str(args.version), _tracking_uri(args.tracking_uri))
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"promoted: {move.describe()}")
    _report_servers(move.model, move.alias, move.to_version)
    return 0


def _report_servers(model: str, alias: str, version: str | None) -> None:
    """Which running local servers of ``model`` the move of ``alias`` reaches."""
    from genops.core.serving.deploy import alias_move_report

    lines = alias_move_report(model, alias, version)
    if not lines:
        print(f"local servers: none serves {model} (none listed in $GENOPS_HOME/serving/servers)")
    for line in lines:
        print(f"local server: {line}")


def _cmd_rollback(args: argparse.Namespace) -> int:
    from genops.core.aliases import RegistryError, rollback

    try:
        move = rollback(args.model, _tracking_uri(args.tracking_uri))
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rolled back: {move.describe()}")
    _report_servers(move.model, move.alias, move.to_version)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from genops.core.serving.server import serve

    serve(
        args.model_uri,
        host=args.host,
        port=args.port,
        tracking_uri=_tracking_uri(args.tracking_uri),
        max_rows=args.max_rows,
        max_body_bytes=args.max_body_bytes,
        follow_interval=args.follow_interval,
    )
    return 0


def _parse_conditions(items: Sequence[str]) -> dict[str, str]:
    conditions: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise ValueError(f"--condition {item!r}: expected COLUMN=VALUE, e.g. sex=Female")
        conditions[column] = value
    return conditions


def _cmd_generate(args: argparse.Namespace) -> int:
    from genops.workloads.tabular.generation import GenerationError

    try:
        conditions = _parse_conditions(args.condition)
        if args.kfp:
            from pipelines.tabular_generate import run_generate_local

            manifest = run_generate_local(
                model=args.model,
                rows=args.rows,
                shards=args.shards,
                destination=args.out,
                seed=args.seed,
                conditions=conditions,
                overwrite=args.overwrite,
                tracking_uri=_tracking_uri(args.tracking_uri),
            )
        else:
            from genops.workloads.tabular.release import generate_release

            manifest = generate_release(
                args.model,
                args.rows,
                args.shards,
                args.out,
                seed=args.seed,
                workers=args.workers,
                conditions=conditions,
                overwrite=args.overwrite,
                tracking_uri=_tracking_uri(args.tracking_uri),
            )
    except (GenerationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, S3 unreachable: nothing of the release is left
        print(f"error: {type(exc).__name__}: {exc}; no release was written", file=sys.stderr)
        return 1
    rate = manifest.rows / max(manifest.seconds, 1e-9)
    size = sum(int(f.get("bytes", 0)) for f in manifest.files) / 1e6
    print(
        f"released {manifest.rows:,} rows from {manifest.model} as {manifest.shards} Parquet "
        f"shards ({size:,.1f} MB) in {manifest.seconds:,.1f} s ({rate:,.0f} rows/s)"
    )
    print(f"  {manifest.destination}/_manifest.json lists the shards, their seeds and schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline locally (KFP local runner, MLflow)")
    run.add_argument("pipeline", help="pipeline name, e.g. tabular-synth")
    run.add_argument("--config", required=True, help="run configuration YAML")
    run.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./.genops/mlflow.db)",
    )
    run.add_argument(
        "--runner",
        choices=("subprocess", "docker"),
        default="subprocess",
        help="subprocess (default): steps in this interpreter; docker: steps in the images "
        "`make images` built, tracked by a local MLflow server started for the run",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="stream everything the runner and the steps print (it always goes to the log "
        "under $GENOPS_HOME/logs/)",
    )
    run.add_argument(
        "--traceback", action="store_true", help="on failure, print the failed step's traceback"
    )
    run.set_defaults(func=_cmd_run)

    runs = sub.add_parser("runs", help="the MLflow runs of local pipelines (genops runs -h)")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    reconcile = runs_sub.add_parser(
        "reconcile",
        help="close the runs left RUNNING by a `genops run` whose process is gone (FAILED, "
        "'process gone', the last step that had started); every `genops run` does it first",
    )
    reconcile.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./.genops/mlflow.db)",
    )
    reconcile.add_argument("--dry-run", action="store_true", help="say what would be closed")
    reconcile.set_defaults(func=_cmd_runs_reconcile)

    check = sub.add_parser(
        "check-config",
        help="validate a config file, check its sources (exist, readable, hold the columns) "
        "and print it resolved (columns inferred from the data marked)",
    )
    check.add_argument("config")
    check.set_defaults(func=_cmd_check_config)

    init = sub.add_parser(
        "init", help="write a starter tabular run config for a CSV or Parquet file"
    )
    init.add_argument("data", help="a local CSV (.csv, .csv.gz) or Parquet file")
    init.add_argument("-o", "--output", help="where to write it (default: ./<name>.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument("--target", help="the target column (default: suggested from the data)")
    init.set_defaults(func=_cmd_init)

    tracking_help = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./.genops/mlflow.db)"
    prom = sub.add_parser("promote", help="point the champion alias at a model version")
    prom.add_argument("--model", required=True, help="registered model, e.g. adult-synthesizer")
    prom.add_argument("--version", required=True)
    prom.add_argument("--tracking-uri", default=None, help=tracking_help)
    prom.set_defaults(func=_cmd_promote)

    back = sub.add_parser(
        "rollback",
        help="move the champion alias back to the newest earlier champion not rolled back",
    )
    back.add_argument("--model", required=True)
    back.add_argument("--tracking-uri", default=None, help=tracking_help)
    back.set_defaults(func=_cmd_rollback)

    srv = sub.add_parser("serve", help="serve a model as a REST endpoint on 127.0.0.1")
    srv.add_argument("--model-uri", default="models:/adult-synthesizer@champion")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8080)
    srv.add_argument("--max-rows", type=int, default=10_000)
    srv.add_argument("--tracking-uri", default=None, help=tracking_help)
    from genops.core.serving.options import add_hardening_arguments

    add_hardening_arguments(srv)  # --max-body-bytes, --follow-interval
    srv.set_defaults(func=_cmd_serve)

    gen = sub.add_parser(
        "generate",
        help="write N synthetic rows from a registered synthesizer as K Parquet shards "
        "(a local folder or s3://), each seeded and checked, with a _manifest.json",
    )
    gen.add_argument("--model", default="models:/adult-synthesizer@champion")
    gen.add_argument("--rows", type=int, required=True, help="rows in all, e.g. 10000000")
    gen.add_argument("--shards", type=int, default=8, help="Parquet files (default 8)")
    gen.add_argument("--out", required=True, help="a folder or an s3://bucket/prefix")
    gen.add_argument("--seed", type=int, default=0, help="same seed, same rows (default 0)")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    gen.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="every row has this categorical value (repeatable), e.g. sex=Female",
    )
    gen.add_argument("--overwrite", action="store_true", help="replace a release already at --out")
    gen.add_argument(
        "--kfp",
        action="store_true",
        help="run the tabular-generate pipeline (a KFP ParallelFor over the shards) with "
        "KFP's local runner instead of a process pool",
    )
    gen.add_argument("--tracking-uri", default=None, help=tracking_help)
    gen.set_defaults(func=_cmd_generate)

    sub.add_parser(
        "submit",
        help="compile for the cluster and start a run on Kubeflow Pipelines (genops submit -h)",
    )

    comp = sub.add_parser("compile", help="compile pipelines to KFP IR YAML")
    comp.add_argument("pipelines", nargs="*")
    comp.set_defaults(func=_cmd_compile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["submit"]:
        # `genops submit` owns its arguments (pipelines/submit.py): see `genops submit -h`.
        from pipelines.submit import main as submit_main

        return int(submit_main(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run closes itself: pipelines/local.py)
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
