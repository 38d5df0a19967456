"""Golden IR: the compiled pipelines, normalised, must equal tests/pipelines/golden/.

Any change to the IR (a component's code or signature, the DAG, a cluster setting, the kfp
version) shows up here as a diff. When the change is intended, regenerate and review the diff:

    GENOPS_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/pipelines/test_cluster_golden.py

Normalised: the pipeline version (package version + commit) becomes ``<VERSION>`` and the
image registry ``<REGISTRY>``, so a new commit or another registry is not a change.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from genops.version import pipeline_version
from pipelines.compile import compile_pipeline

GOLDEN = Path(__file__).resolve().parent / "golden"
REGISTRY = "registry.invalid"
UPDATE_ENV = "GENOPS_UPDATE_GOLDEN"


def normalise(text: str, version: str) -> str:
    return text.replace(version, "<VERSION>").replace(REGISTRY, "<REGISTRY>")


@pytest.mark.parametrize("target", ["local", "cluster"])
@pytest.mark.parametrize("pipeline", ["tabular-synth", "image-diffusion", "text-lm"])
def test_ir_matches_golden(pipeline: str, target: str, tmp_path: Path) -> None:
    version = pipeline_version()
    path = compile_pipeline(pipeline, tmp_path, target=target, registry=REGISTRY)
    actual = normalise(path.read_text(), version)
    golden = GOLDEN / f"{pipeline}.{target}.yaml"
    if os.environ.get(UPDATE_ENV) == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        pytest.skip(f"wrote {golden}")
    assert golden.is_file(), f"no golden file: run with {UPDATE_ENV}=1 to create {golden}"
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(golden),
                tofile="compiled",
                n=2,
            )
        )
        pytest.fail(
            f"the {target} IR changed. If intended, run {UPDATE_ENV}=1 .venv/bin/python -m "
            f"pytest {Path(__file__).name} and commit the golden file.\n{diff[:6000]}"
        )


def test_normalisation_removes_every_version_string(tmp_path: Path) -> None:
    version = pipeline_version()
    path = compile_pipeline("tabular-synth", tmp_path, target="cluster", registry=REGISTRY)
    text = normalise(path.read_text(), version)
    assert version not in text and REGISTRY not in text
    assert "<REGISTRY>/genops/train-cuda:<VERSION>" in text
