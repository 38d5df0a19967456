"""Benchmark of the tabular-synth pipeline on Adult: time, fidelity, utility, bias.

Runs the whole pipeline through KFP's local runner, as `make run` does, once under the
`warn` bias policy and once under `mitigate` (the Adult default), each against its own fresh
MLflow store,
and writes one JSON file plus a Markdown table. Targets (issue 2): `make run` under 10 minutes
on a 2-core machine, column shapes >= 0.85, TSTR AUC >= 0.85 (real-data AUC beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "pipelines" / "configs" / "adult.yaml"


def _dpl_rows(tracking_uri: str, run_id: str) -> list[dict[str, Any]]:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    children = mlflow.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.`genops.step` = 'evaluate'",
        output_format="list",
    )
    if not children:
        return []
    path = client.download_artifacts(
        children[0].info.run_id, "synthetic_bias/real_vs_synthetic.json", tempfile.mkdtemp()
    )
    rows = json.loads(Path(path).read_text())["rows"]
    return [r for r in rows if r["metric"] in ("DPL", "CI", "DPL_worst_pair")]


def run_case(name: str, config: Path, workdir: Path) -> dict[str, Any]:
    from pipelines.local import run_local

    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    started = time.perf_counter()
    summary = run_local("tabular-synth", str(config), tracking_uri=uri, pipeline_root=str(home))
    wall = time.perf_counter() - started
    return {
        "case": name,
        "config": str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config),
        "wall_seconds": round(wall, 1),
        "outcome": summary.outcome,
        "registered": summary.registered,
        "metrics": {k: round(v, 4) for k, v in sorted(summary.metrics.items())},
        "bias_real_vs_synthetic": _dpl_rows(uri, summary.run_id),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = ["# tabular-synth benchmark", "", f"Machine: {results['machine']}", ""]
    lines += [
        "| case | wall s | outcome | shapes | pair trends | TSTR AUC | TRTR AUC | DCR ratio |"
    ]
    lines += ["|---|---:|---|---:|---:|---:|---:|---:|"]
    for case in results["cases"]:
        m = case["metrics"]
        lines.append(
            f"| {case['case']} | {case['wall_seconds']} | {case['outcome']} | "
            f"{m.get('fidelity_column_shapes', float('nan')):.4f} | "
            f"{m.get('fidelity_pair_trends', float('nan')):.4f} | "
            f"{m.get('utility_tstr_auc', float('nan')):.4f} | "
            f"{m.get('utility_trtr_auc', float('nan')):.4f} | "
            f"{m.get('privacy_dcr_ratio', float('nan')):.3f} |"
        )
    lines += ["", "## Pre-training bias metrics, real training data vs synthetic", ""]
    lines += [
        "| case | metric | attribute | groups | real | synthetic |",
        "|---|---|---|---|---:|---:|",
    ]
    for case in results["cases"]:
        for r in case["bias_real_vs_synthetic"]:
            lines.append(
                f"| {case['case']} | {r['metric']} | {r['attribute']} | "
                f"{', '.join(map(str, r['groups']))} | {r['real']:.4f} | {r['synthetic']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/tabular.json")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--skip-mitigated", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    workdir = Path(tempfile.mkdtemp(prefix="genops-bench-"))
    policies = {
        "warn": {"policy": "warn"},
        "mitigate": {"policy": "mitigate", "mitigation": {"target": "equal_positive_rate"}},
    }
    if args.skip_mitigated:
        policies.pop("mitigate")
    cases = []
    for name, bias in policies.items():
        config = workdir / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"base": str(args.config.resolve()), "bias": bias}))
        cases.append(run_case(name, config, workdir))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
