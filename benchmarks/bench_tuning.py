"""Tuning and training-throughput benchmark on Adult (issue: tuning and model selection).

1. TPE + median pruning vs random search without pruning, the same trial budget, the same
   search space and data, run one after the other in this process: best objective reached
   and wall time.
2. Training throughput (rows/s per epoch) of both families on CPU, median over epochs.

Writes JSON and Markdown next to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/tuning.json")
    parser.add_argument("--rows", type=int, default=8000, help="Adult rows used (sampled)")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--trial-epochs", type=int, default=15)
    parser.add_argument("--throughput-epochs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

    from genops.core.config import load_config
    from genops.core.tuning import ParamSpec, TuningSpec
    from genops.core.tuning.study import create_study, run_worker, summarize
    from genops.workloads.tabular.data import prepare
    from genops.workloads.tabular.steps import build_synthesizer
    from genops.workloads.tabular.tuning import ObjectiveData, TabularObjective

    config = load_config(REPO / "pipelines/configs/adult.yaml")
    spec = config.dataset.model_copy(update={"sample_rows": args.rows})
    data = prepare(spec)
    objective = ObjectiveData(
        train=data.train,
        validation=data.validation,
        continuous=spec.continuous_columns,
        categorical=spec.categorical_columns,
        target=spec.target,
        positive_label=spec.positive_label,
    )
    space = {
        "learning_rate": ParamSpec(type="float", low=1e-5, high=5e-3, log=True),
        "batch_size": ParamSpec(type="categorical", choices=[250, 500]),
        "embedding_dim": ParamSpec(type="categorical", choices=[32, 64, 128]),
    }

    def build(params: dict[str, Any]) -> Any:
        return build_synthesizer(config, {"epochs": args.trial_epochs, **params})

    studies: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="genops-tune-bench-"))
    for name, sampler, pruner in (("tpe+median", "tpe", "median"), ("random", "random", "none")):
        tuning = TuningSpec(
            enabled=True,
            n_trials=args.trials,
            n_workers=1,
            sampler=sampler,
            pruner=pruner,
            pruner_startup_trials=2,
            objective={"report_every": 3},
            search_space=space,
            seed=0,
        )
        storage = f"journal://{workdir / f'{name}.journal'}"
        create_study(tuning, storage, name)
        started = time.perf_counter()
        counts = run_worker(tuning, storage, name, 0, TabularObjective(objective, tuning), build)
        wall = time.perf_counter() - started
        summary = summarize(tuning, storage, name)
        studies.append(
            {
                "search": name,
                "trials": args.trials,
                "wall_seconds": round(wall, 1),
                "best_objective": round(summary.best_value or float("nan"), 4),
                "best_params": summary.best_params,
                "states": counts,
            }
        )
        print(studies[-1])

    throughput: list[dict[str, Any]] = []
    for family in ("tvae", "ctgan"):
        model = build_synthesizer(
            config, {"family": family, "epochs": args.throughput_epochs, "batch_size": 500}
        )
        stamps: list[float] = [time.perf_counter()]

        def stamp(epoch: int, losses: dict[str, float], stamps: list[float] = stamps) -> None:
            stamps.append(time.perf_counter())

        model.fit(data.train, on_epoch_end=stamp, progress=False)
        per_epoch = [b - a for a, b in itertools.pairwise(stamps)][1:]  # skip epoch 0
        median = statistics.median(per_epoch) if per_epoch else float("nan")
        throughput.append(
            {
                "family": family,
                "rows": len(data.train),
                "epochs": args.throughput_epochs,
                "median_epoch_seconds": round(median, 3),
                "rows_per_second": round(len(data.train) / median, 1),
            }
        )
        print(throughput[-1])

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average": os.getloadavg(),
        "rows": {"train": len(data.train), "validation": len(data.validation)},
        "trial_epochs": args.trial_epochs,
        "studies": studies,
        "throughput": throughput,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    lines = [
        "# Tuning and throughput benchmark",
        "",
        f"{results['machine']}, {results['date']}, load average at the end "
        f"{[round(x, 2) for x in results['load_average']]}; Adult sample: "
        f"{len(data.train)} train / {len(data.validation)} validation rows; "
        f"{args.trial_epochs} epochs per trial; one run each.",
        "",
        "| search | trials | wall s | best objective | complete | pruned | failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in studies:
        st = s["states"]
        lines.append(
            f"| {s['search']} | {s['trials']} | {s['wall_seconds']} | {s['best_objective']} | "
            f"{st['complete']} | {st['pruned']} | {st['failed']} |"
        )
    lines += ["", "| family | median s/epoch | rows/s |", "|---|---:|---:|"]
    lines += [
        f"| {t['family']} | {t['median_epoch_seconds']} | {t['rows_per_second']} |"
        for t in throughput
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
