"""Generation at scale (issue 18): N synthetic Adult rows as K Parquet shards with
``genops generate``'s process pool; target 10 million rows within 10 minutes here.

The model has the default config's architecture (pipelines/configs/adult.yaml: TVAE,
embedding 128, decoder 128x128, conditional on sex and race), fitted for ``--epochs`` on the
prepared Adult rows: generation speed depends on the architecture, not on how long it
trained. ``--model models:/adult-synthesizer@champion`` measures a registered model instead.

Runs, one after the other in this process: the large release with every core, then a
smaller one with 1 worker and with all workers side by side (the speed-up of the pool).
Writes JSON and Markdown next to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchinfo import load_average, machine

REPO = Path(__file__).resolve().parents[1]
TARGET_ROWS = 10_000_000
TARGET_SECONDS = 600.0


def fit_default_model(into: Path, epochs: int) -> str:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from genops.core.config import load_config
    from genops.workloads.tabular.data import prepare
    from genops.workloads.tabular.steps import build_synthesizer

    config = load_config(REPO / "pipelines/configs/adult.yaml")
    config = config.model_copy(
        update={"model": config.model.model_copy(update={"epochs": epochs, "device": "cpu"})}
    )
    data = prepare(config.dataset)
    synthesizer = build_synthesizer(config)
    synthesizer.fit(data.train)
    path = into / "synthesizer"
    synthesizer.save(path)
    return str(path)


def release_once(model: str, rows: int, shards: int, workers: int, out: Path) -> dict[str, Any]:
    from genops.workloads.tabular.release import generate_release

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    manifest = generate_release(
        model, rows, shards, str(out), seed=0, workers=workers, progress=True
    )
    seconds = time.perf_counter() - started
    size = sum(int(f["bytes"]) for f in manifest.files)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "rows": rows,
        "shards": shards,
        "workers": workers,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "megabytes": round(size / 1e6, 1),
        # the largest resident set of any worker process so far (Linux: kB)
        "peak_worker_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def markdown(r: dict[str, Any]) -> str:
    big = r["large"]
    met = "met" if big["rows"] >= TARGET_ROWS and big["seconds"] <= TARGET_SECONDS else "not met"
    lines = [
        "# Generation at scale: `genops generate`",
        "",
        f"Machine: {r['machine']}. Model: {r['model']}. Load average before "
        f"{r['load_before']}, after {r['load_after']}.",
        "",
        "| release | rows | shards | workers | seconds | rows/s | MB on disk | "
        "peak worker RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("large", "one_worker", "all_workers"):
        x = r[name]
        lines.append(
            f"| {name.replace('_', ' ')} | {x['rows']:,} | {x['shards']} | {x['workers']} | "
            f"{x['seconds']} | {x['rows_per_second']:,} | {x['megabytes']} | "
            f"{x['peak_worker_rss_mb']} |"
        )
    lines += [
        "",
        f"Target: {TARGET_ROWS:,} rows within {TARGET_SECONDS:.0f} s: **{met}** "
        f"({big['rows']:,} rows in {big['seconds']} s).",
        f"Pool speed-up, {r['all_workers']['workers']} workers over 1, side by side: "
        f"**{r['speedup']}x**.",
        "",
        "Each shard is sampled in chunks of 250,000 rows (one Parquet row group each, zstd),",
        "checked (row count, schema) before it gets its final name, and read back from the",
        "destination before `_manifest.json` is written.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/generation.json")
    parser.add_argument("--model", default=None, help="default: fit the default architecture")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--compare-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    import torch

    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as scratch:
        work = Path(scratch)
        model = args.model or fit_default_model(work, args.epochs)
        label = args.model or f"TVAE, adult.yaml architecture, {args.epochs} epoch(s)"
        load_before = load_average()
        large = release_once(model, args.rows, args.shards, workers, work / "large")
        one = release_once(model, args.compare_rows, 4, 1, work / "one")
        every = release_once(model, args.compare_rows, 4, workers, work / "all")
    results = {
        "machine": machine(f"torch {torch.__version__}"),
        "model": label,
        "load_before": load_before,
        "load_after": load_average(),
        "target": {"rows": TARGET_ROWS, "seconds": TARGET_SECONDS},
        "large": large,
        "one_worker": one,
        "all_workers": every,
        "speedup": round(one["seconds"] / every["seconds"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
