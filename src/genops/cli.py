"""``genops`` command line: run, compile and check pipelines.

The library never imports kfp; the commands that need it import the ``pipelines`` package
when they run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_check_config(args: argparse.Namespace) -> int:
    from genops.core.config import ConfigError, dump_config, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(dump_config(config))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from genops.core.config import ConfigError, load_config_for

    try:
        load_config_for(args.config, args.pipeline)  # fail fast, before any task starts
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pipelines.local import run_local

    try:
        summary = run_local(
            args.pipeline, args.config, tracking_uri=args.tracking_uri, runner=args.runner
        )
    except RuntimeError as exc:
        print(f"error: pipeline '{args.pipeline}' failed: {exc}", file=sys.stderr)
        print(
            "See the task log above; the MLflow run's tags genops.failed_step and "
            "genops.failure say where and why.",
            file=sys.stderr,
        )
        return 1
    print(summary.render())
    # 0: a model version was registered; 3: a gate stopped the run or the smoke test rolled
    # the champion back; 1: a step failed.
    return {"succeeded": 0, "blocked": 3, "rejected": 3, "rolled_back": 3}.get(summary.outcome, 1)


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
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from genops.core.aliases import RegistryError, rollback

    try:
        move = rollback(args.model, _tracking_uri(args.tracking_uri))
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rolled back: {move.describe()}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from genops.core.serving.server import serve

    serve(
        args.model_uri,
        host=args.host,
        port=args.port,
        tracking_uri=_tracking_uri(args.tracking_uri),
        max_rows=args.max_rows,
    )
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
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and print it resolved")
    check.add_argument("config")
    check.set_defaults(func=_cmd_check_config)

    tracking_help = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./.genops/mlflow.db)"
    prom = sub.add_parser("promote", help="point the champion alias at a model version")
    prom.add_argument("--model", required=True, help="registered model, e.g. adult-synthesizer")
    prom.add_argument("--version", required=True)
    prom.add_argument("--tracking-uri", default=None, help=tracking_help)
    prom.set_defaults(func=_cmd_promote)

    back = sub.add_parser("rollback", help="move the champion alias back to the previous one")
    back.add_argument("--model", required=True)
    back.add_argument("--tracking-uri", default=None, help=tracking_help)
    back.set_defaults(func=_cmd_rollback)

    srv = sub.add_parser("serve", help="serve a model as a REST endpoint on 127.0.0.1")
    srv.add_argument("--model-uri", default="models:/adult-synthesizer@champion")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8080)
    srv.add_argument("--max-rows", type=int, default=10_000)
    srv.add_argument("--tracking-uri", default=None, help=tracking_help)
    srv.set_defaults(func=_cmd_serve)

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
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
