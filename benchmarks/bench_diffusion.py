"""The tabular diffusion family beside the conditional TVAE on Adult, in one run.

Both families train on the same training split of `pipelines/configs/adult.yaml`,
conditioned as the pipeline conditions them (the sensitive attributes and the target), on
the CPU. Every `--every` epochs the model as it is then samples as many rows as the
training split holds, scored with the project's own metrics: column shapes and pair trends
against the training split (SDMetrics' definitions, as the evaluate step scores them) and
the AUC on the real holdout of a HistGradientBoosting classifier trained on the synthetic
rows (TSTR; TRTR beside it). Training time excludes the scoring.

Targets (issue 18): the diffusion family reaches column shapes >= 0.99, pair trends >= 0.98
and TSTR AUC >= 0.91 with training <= 15 minutes here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchinfo import load_average, machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

CONFIG = REPO / "pipelines" / "configs" / "adult.yaml"
TARGETS = {"shapes": 0.99, "pair_trends": 0.98, "tstr_auc": 0.91, "train_minutes": 15.0}


def _score(data: Any, spec: Any, synthetic: Any) -> dict[str, float]:
    import numpy as np

    from genops.workloads.tabular.evaluation.metrics import (
        classifier_utility,
        column_shapes,
        pair_trends,
    )

    cont, cat = spec.continuous_columns, spec.categorical_columns
    shapes = float(np.mean(list(column_shapes(data.train, synthetic, cont, cat).values())))
    trends = float(np.mean(list(pair_trends(data.train, synthetic, cont, cat).values())))
    utility, _ = classifier_utility(
        synthetic, data.holdout, spec.target, spec.positive_label, cont, cat
    )
    return {"shapes": shapes, "pair_trends": trends, "tstr_auc": utility.auc}


def run_family(
    name: str, config: Any, overrides: dict[str, Any], data: Any, every: int
) -> dict[str, Any]:
    from genops.workloads.tabular.steps import build_synthesizer

    model = build_synthesizer(config, {**overrides, "device": "cpu"})
    epochs = model.params.epochs
    curve: list[dict[str, Any]] = []
    scoring = 0.0
    started = time.perf_counter()

    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal scoring
        if (epoch + 1) % every and epoch + 1 != epochs:
            return
        t0 = time.perf_counter()
        trained = t0 - started - scoring
        synthetic = model.sample(len(data.train), seed=1)
        sample_s = time.perf_counter() - t0
        point = {
            "epoch": epoch + 1,
            "train_seconds": round(trained, 1),
            "loss": round(metrics["loss"], 4),
            "sample_seconds": round(sample_s, 1),
            **{k: round(v, 4) for k, v in _score(data, config.dataset, synthetic).items()},
        }
        curve.append(point)
        scoring += time.perf_counter() - t0
        print(f"  {name} {json.dumps(point)}", flush=True)

    model.fit(data.train, on_epoch_end=on_epoch_end, progress=True)
    final = curve[-1]
    return {
        "family": name,
        "params": model.params.to_dict(),
        "train_seconds": final["train_seconds"],
        "final": final,
        "curve": curve,
    }


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Tabular diffusion family beside the conditional TVAE (Adult)",
        "",
        f"Machine: {result['machine']}. Measured {result['date']}, one run, both families "
        f"side by side (load average {result['load_before']} before, {result['load_after']} "
        f"after). Training rows {result['train_rows']}, holdout rows {result['holdout_rows']}; "
        f"TRTR AUC (HistGradientBoosting on the real training split) {result['trtr_auc']:.4f}.",
        "",
        "Scored every few epochs on as many synthetic rows as the training split holds; "
        "training time excludes the scoring.",
        "",
        "## Targets",
        "",
        "| figure | diffusion | TVAE (conditional) | target | |",
        "|---|---:|---:|---:|---|",
    ]
    fams = {r["family"]: r for r in result["families"]}
    diff, tvae = fams["diffusion"]["final"], fams["tvae"]["final"]
    for key, label in (
        ("shapes", "column shapes"),
        ("pair_trends", "pair trends"),
        ("tstr_auc", "TSTR AUC (holdout)"),
    ):
        met = "met" if diff[key] >= TARGETS[key] else "not met"
        lines.append(f"| {label} | {diff[key]:.4f} | {tvae[key]:.4f} | >= {TARGETS[key]} | {met} |")
    minutes = diff["train_seconds"] / 60
    met = "met" if minutes <= TARGETS["train_minutes"] else "not met"
    lines.append(
        f"| training minutes | {minutes:.1f} | {tvae['train_seconds'] / 60:.1f} | "
        f"<= {TARGETS['train_minutes']:.0f} | {met} |"
    )
    lines.append(
        f"| sampling s ({result['train_rows']} rows) | {diff['sample_seconds']} | "
        f"{tvae['sample_seconds']} | | |"
    )
    for fam in result["families"]:
        lines += [
            "",
            f"## Curve: {fam['family']}",
            "",
            "| epoch | train s | loss | shapes | pair trends | TSTR AUC | sample s |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in fam["curve"]:
            lines.append(
                f"| {p['epoch']} | {p['train_seconds']} | {p['loss']} | {p['shapes']:.4f} | "
                f"{p['pair_trends']:.4f} | {p['tstr_auc']:.4f} | {p['sample_seconds']} |"
            )
        lines += ["", f"Parameters: `{json.dumps(fam['params'])}`"]
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(
        axes,
        ("shapes", "pair_trends", "tstr_auc"),
        ("column shapes", "pair trends", "TSTR AUC"),
        strict=True,
    ):
        for fam in result["families"]:
            xs = [p["train_seconds"] / 60 for p in fam["curve"]]
            ax.plot(xs, [p[key] for p in fam["curve"]], marker="o", label=fam["family"])
        ax.axhline(TARGETS[key], color="grey", linestyle="--", linewidth=1, label="target")
        ax.set_xlabel("training minutes")
        ax.set_title(label)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/diffusion.json"))
    parser.add_argument("--every", type=int, default=50, help="score every N epochs")
    parser.add_argument("--diffusion-epochs", type=int, default=None)
    parser.add_argument("--tvae-epochs", type=int, default=None)
    args = parser.parse_args()

    from genops.core.config import load_config_for
    from genops.workloads.tabular.data.prepare import prepare
    from genops.workloads.tabular.evaluation.metrics import classifier_utility

    config = load_config_for(CONFIG, "tabular-synth")
    data = prepare(config.dataset)
    spec = config.dataset
    trtr, _ = classifier_utility(
        data.train,
        data.holdout,
        spec.target,
        spec.positive_label,
        spec.continuous_columns,
        spec.categorical_columns,
    )
    result: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": load_average(),
        "train_rows": len(data.train),
        "holdout_rows": len(data.holdout),
        "trtr_auc": round(trtr.auc, 4),
        "targets": TARGETS,
        "families": [],
    }
    tvae: dict[str, Any] = {"family": "tvae"}
    if args.tvae_epochs:
        tvae["epochs"] = args.tvae_epochs
    diffusion: dict[str, Any] = {
        "family": "diffusion",
        "epochs": args.diffusion_epochs or 400,
        "batch_size": 1024,
    }
    for name, overrides in (("tvae", tvae), ("diffusion", diffusion)):
        print(f"{name}: training", flush=True)
        result["families"].append(run_family(name, config, overrides, data, args.every))
    result["load_after"] = load_average()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(_markdown(result), encoding="utf-8")
    _plot(result, out.with_suffix(".png"))
    print(_markdown(result))


if __name__ == "__main__":
    main()
