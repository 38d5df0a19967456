"""Compile pipelines to KFP IR YAML: ``pipelines/dist/<pipeline>-<version>.yaml``.

``--target cluster`` applies the cluster settings of pipelines/targets.py (GPU, tolerations,
node selector, ConfigMap/Secret, resources, retries) and writes to ``pipelines/dist/cluster/``;
the images then name ``$GENOPS_IMAGE_REGISTRY`` (the ECR registry).
"""

import argparse
import os
import sys
from pathlib import Path

from kfp import compiler

from genops.version import pipeline_version
from pipelines.registry import PIPELINES, get_pipeline
from pipelines.targets import REGISTRY_ENV, TARGET_ENV, TARGETS, target_named

DIST = Path(__file__).resolve().parent / "dist"


def default_out_dir(target: str) -> Path:
    return DIST / "cluster" if target == "cluster" else DIST


def compile_pipeline(
    name: str,
    out_dir: Path | None = None,
    version: str | None = None,
    target: str = "local",
    registry: str | None = None,
) -> Path:
    """Trace ``name`` for ``target`` (local or cluster) and write its IR; returns the path."""
    version = version or pipeline_version()
    out_dir = out_dir or default_out_dir(target)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{version}.yaml"
    pipeline = get_pipeline(name, target_named(target, registry))
    inputs = pipeline.component_spec.inputs or {}
    compiler.Compiler().compile(
        pipeline,
        str(path),
        # a training pipeline records its version; tabular-generate has no such input
        pipeline_parameters={"pipeline_version": version} if "pipeline_version" in inputs else None,
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pipelines", nargs="*", default=sorted(PIPELINES))
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default=os.environ.get(TARGET_ENV) or "local",
        help="local (default; $GENOPS_TARGET) or cluster (GPU, tolerations, ConfigMap/Secret)",
    )
    args = parser.parse_args(argv)
    if args.target == "cluster" and not os.environ.get(REGISTRY_ENV):
        print(
            f"warning: {REGISTRY_ENV} is not set: the images name localhost:5000, which the "
            "cluster cannot pull (`make compile-cluster` reads the ECR registry from Terraform)",
            file=sys.stderr,
        )
    for name in args.pipelines or sorted(PIPELINES):
        print(compile_pipeline(name, args.out_dir, target=args.target))


if __name__ == "__main__":
    main()
