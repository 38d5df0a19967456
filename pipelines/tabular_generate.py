"""The tabular-generate pipeline: N synthetic rows from a registered synthesizer as K Parquet
shards, a KFP ``ParallelFor`` over the shards:

plan (model, arguments, destination) -> ParallelFor(write shard i, checked) -> check every
shard at the destination + ``_manifest.json`` + an MLflow run.

On the cluster the shard tasks spread over the nodes (the destination is then an ``s3://``
prefix: pods share no disk); locally KFP's runner runs two at a time. ``genops generate``
writes the same shards with a process pool, and ``genops generate --kfp`` runs this pipeline
locally. The shard logic is :mod:`genops.workloads.tabular.generation`.
"""

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kfp import dsl

from components.tabular import check_generation, generate_shard, plan_generation
from pipelines.targets import LOCAL, Target

PIPELINE_NAME = "tabular-generate"


def tabular_generate(target: Target = LOCAL) -> Any:
    """The pipeline built for ``target`` (local or cluster)."""
    configure_task = target.configure

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=(
            "Synthetic rows at scale: N rows from a registered synthesizer as K seeded, "
            "checked Parquet shards (a ParallelFor) with a manifest."
        ),
    )
    def pipeline(
        model_uri: str,
        rows: int,
        destination: str,
        tracking_uri: str,
        shards: int = 8,
        seed: int = 0,
        conditions: str = "{}",
        overwrite: bool = False,
    ) -> str:
        plan = configure_task(
            plan_generation(
                model_uri=model_uri,
                rows=rows,
                shards=shards,
                destination=destination,
                seed=seed,
                conditions=conditions,
                overwrite=overwrite,
                tracking_uri=tracking_uri,
            )
        )
        plan.set_caching_options(False)  # it looks at the destination
        with dsl.ParallelFor(plan.outputs["Output"], name="shards") as shard:
            part = configure_task(
                generate_shard(
                    synthesizer=plan.outputs["synthesizer"],
                    shard=shard,
                    destination=destination,
                    conditions=conditions,
                )
            )
            part.set_caching_options(False)
        check = configure_task(
            check_generation(
                synthesizer=plan.outputs["synthesizer"],
                plans=plan.outputs["Output"],
                results=dsl.Collected(part.output),
                destination=destination,
                seed=seed,
                tracking_uri=tracking_uri,
            )
        )
        check.set_caching_options(False)
        return check.outputs["Output"]

    return pipeline


def _plain(text: str) -> str:
    """Without the terminal colour codes kfp.local puts in its messages."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """File descriptors 1 and 2 (this process and the task processes it starts) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_generate_local(
    model: str,
    rows: int,
    shards: int,
    destination: str,
    tracking_uri: str,
    seed: int = 0,
    conditions: Mapping[str, str] | None = None,
    overwrite: bool = False,
    pipeline_root: str | None = None,
) -> Any:
    """Run the pipeline with KFP's local subprocess runner; returns the manifest written at
    the destination (a :class:`~genops.workloads.tabular.generation.Manifest`)."""
    import tempfile

    from kfp import local

    from genops.paths import genops_home
    from genops.workloads.tabular.generation import (
        MANIFEST,
        Destination,
        GenerationError,
        Manifest,
        plan_shards,
        prepare_destination,
    )

    # The arguments and the destination, checked here before any task starts (the plan step
    # checks them again where it runs, e.g. on the cluster).
    plan_shards(rows, shards, seed)
    if not overwrite:
        prepare_destination(destination, overwrite=False)
    root = Path(pipeline_root or genops_home() / "kfp-local")
    root.mkdir(parents=True, exist_ok=True)
    log = genops_home() / "logs" / f"{PIPELINE_NAME}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{PIPELINE_NAME}: {shards} shards through KFP's local runner (full log: {log})")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    from pipelines.local import print_restored

    try:
        with _output_to(log), print_restored():  # the runner's chatter goes to the log
            tabular_generate(LOCAL)(
                model_uri=model,
                rows=rows,
                shards=shards,
                destination=destination,
                tracking_uri=tracking_uri,
                seed=seed,
                conditions=json.dumps(dict(conditions or {})),
                overwrite=overwrite,
            )
    except RuntimeError as exc:  # kfp.local: "Pipeline ... failed"; the cause is in the log
        errors = [
            line.strip()
            for line in log.read_text(errors="replace").splitlines()
            if line.strip().startswith(
                ("genops.workloads.tabular.generation.GenerationError", "ValueError")
            )
        ]
        cause = errors[-1].split(": ", 1)[-1] if errors else _plain(str(exc))
        raise GenerationError(f"{cause} (full log: {log})") from exc
    dest = Destination(destination)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / MANIFEST
        if dest.is_s3:
            dest._client().download_file(dest.bucket, dest._key(MANIFEST), str(copy))
        else:
            copy = dest.path / MANIFEST
        return Manifest(**json.loads(copy.read_text()))
