"""Compile pipelines to KFP IR YAML: ``pipelines/dist/<pipeline>-<version>.yaml``."""

import argparse
from pathlib import Path

from kfp import compiler

from genops.version import pipeline_version
from pipelines.registry import PIPELINES, get_pipeline

DIST = Path(__file__).resolve().parent / "dist"


def compile_pipeline(name: str, out_dir: Path = DIST, version: str | None = None) -> Path:
    version = version or pipeline_version()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{version}.yaml"
    compiler.Compiler().compile(
        get_pipeline(name),
        str(path),
        pipeline_parameters={"pipeline_version": version},
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pipelines", nargs="*", default=sorted(PIPELINES))
    parser.add_argument("--out-dir", type=Path, default=DIST)
    args = parser.parse_args(argv)
    for name in args.pipelines:
        print(compile_pipeline(name, args.out_dir))


if __name__ == "__main__":
    main()
