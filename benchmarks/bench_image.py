"""Image-diffusion benchmark on scikit-learn's digits (issue: image generation pipeline).

1. Quality with the default config (pipelines/configs/digits.yaml) on this machine: train the
   class-conditional DDPM, then the pipeline's own scoring
   (genops.workloads.image.steps.score_generator):
   CAS beside the real-trained classifier's accuracy, per-class CAS, the class mix of
   guidance-free samples (smallest generated/real share ratio), Fréchet distances beside the
   holdout-vs-train baseline, and the wall time of each part. Targets: CAS >= 0.90 and no class
   below half its real share.
2. Throughput, measured side by side in this process: training images/s (median epoch) and
   sampling images/s (median of repeats, 1,000 images at the config's DDIM steps, guided) with
   1 and 2 torch threads on the CPU, and on CUDA when present (with the GPU/CPU ratio).

Writes JSON and Markdown next to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _throughput(
    config: Any, train: Any, device: str, threads: int, epochs: int, repeats: int
) -> dict[str, float]:
    import torch

    from genops.workloads.image.steps import build_generator

    torch.set_num_threads(threads)
    spec = config.model.model_copy(update={"epochs": epochs, "device": device})
    generator = build_generator(config.model_copy(update={"model": spec}), train.class_names)
    stamps: list[float] = []
    start = time.perf_counter()
    generator.fit(
        train.images,
        train.labels,
        on_epoch_end=lambda e, v: stamps.append(time.perf_counter()),
        progress=False,
    )
    epoch_seconds = np.diff([start, *stamps]).tolist()
    labels = [c for c in range(train.num_classes) for _ in range(100)]
    sample_seconds = []
    for r in range(repeats):
        t = time.perf_counter()
        generator.sample(labels, seed=r)
        if device == "cuda":
            torch.cuda.synchronize()
        sample_seconds.append(time.perf_counter() - t)
    median_epoch = statistics.median(epoch_seconds[1:] or epoch_seconds)  # first epoch warms up
    median_sample = statistics.median(sample_seconds)
    return {
        "device": device,
        "threads": threads,
        "median_epoch_s": median_epoch,
        "train_images_per_s": len(train) / median_epoch,
        "median_sample_s": median_sample,
        "sample_images_per_s": len(labels) / median_sample,
        "sample_steps": spec.sample_steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/image.json")
    parser.add_argument("--config", type=Path, default=REPO / "pipelines/configs/digits.yaml")
    parser.add_argument("--epochs", type=int, default=None, help="override model.epochs")
    parser.add_argument("--throughput-epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    os.environ.pop("GENOPS_TORCH_THREADS", None)  # the thread counts below are set explicitly

    import torch

    from genops.core.config import load_config
    from genops.workloads.image.config import ImageRunConfig
    from genops.workloads.image.data import prepare_images
    from genops.workloads.image.steps import build_generator, score_generator

    config = load_config(args.config)
    assert isinstance(config, ImageRunConfig)
    if args.epochs:
        config = config.model_copy(
            update={"model": config.model.model_copy(update={"epochs": args.epochs})}
        )
    data = prepare_images(config.dataset)
    train, holdout = data.splits["train"], data.splits["holdout"]
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_start": os.getloadavg(),
        },
        "config": str(args.config.relative_to(REPO)),
        "train_images": len(train),
        "holdout_images": len(holdout),
    }

    if not args.skip_quality:
        torch.set_num_threads(1)
        generator = build_generator(config, train.class_names)
        t = time.perf_counter()
        generator.fit(train.images, train.labels)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        scores = score_generator(generator, train, holdout, config)
        eval_s = time.perf_counter() - t
        m = scores.metrics
        real_share = np.bincount(train.labels, minlength=train.num_classes) / len(train)
        gen_share = np.bincount(scores.unconditional_labels, minlength=train.num_classes) / len(
            scores.unconditional_labels
        )
        results["quality"] = {
            "device": generator.device,
            "epochs": config.model.epochs,
            "train_seconds": train_s,
            "evaluate_seconds": eval_s,
            "metrics": m,
            "per_class_cas": scores.per_class_cas,
            "per_class_real_accuracy": scores.per_class_real,
            "class_share_ratio": {
                name: float(gen_share[i] / real_share[i])
                for i, name in enumerate(train.class_names)
            },
            "targets": {
                "cas_at_least_0.90": m["cas"] >= 0.90,
                "no_class_below_half_its_real_share": m["min_relative_share"] >= 0.5,
            },
        }

    runs = []
    for threads in (1, 2):
        runs.append(
            _throughput(config, train, "cpu", threads, args.throughput_epochs, args.repeats)
        )
    if torch.cuda.is_available():
        runs.append(_throughput(config, train, "cuda", 1, args.throughput_epochs, args.repeats))
        cpu = runs[0]
        runs[-1]["train_speedup_vs_cpu_1_thread"] = (
            runs[-1]["train_images_per_s"] / cpu["train_images_per_s"]
        )
        runs[-1]["sample_speedup_vs_cpu_1_thread"] = (
            runs[-1]["sample_images_per_s"] / cpu["sample_images_per_s"]
        )
    results["throughput"] = runs
    results["machine"]["load_average_end"] = os.getloadavg()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(render(results))
    print(render(results))


def render(r: dict[str, Any]) -> str:
    lines = [
        "# Image diffusion benchmark (digits)",
        "",
        f"Machine: {r['machine']['platform']}, {r['machine']['cpus']} CPUs, torch "
        f"{r['machine']['torch']}, CUDA: {r['machine']['cuda'] or 'none'}; load average "
        f"{r['machine']['load_average_start'][0]:.2f} at start, "
        f"{r['machine']['load_average_end'][0]:.2f} at end.",
        f"Config `{r['config']}`: {r['train_images']} training and {r['holdout_images']} "
        "holdout images.",
        "",
    ]
    q = r.get("quality")
    if q:
        m = q["metrics"]
        lines += [
            f"## Quality (default config, {q['epochs']} epochs on {q['device']}, 1 torch thread)",
            "",
            "| metric | generated | real baseline |",
            "|---|---|---|",
            f"| CAS (SVC trained on generated, tested on real holdout) | {m['cas']:.4f} | "
            f"{m['cas_real_baseline']:.4f} (trained on real) |",
            f"| Fréchet distance, conditional vs holdout | {m['frechet_distance']:.3f} | "
            f"{m['frechet_distance_baseline']:.3f} (holdout vs train) |",
            f"| Fréchet distance, guidance-free vs holdout | "
            f"{m['frechet_distance_unconditional']:.3f} | "
            f"{m['frechet_distance_baseline']:.3f} |",
            f"| domain classifier agrees with the requested class | "
            f"{m['domain_accuracy_conditional']:.4f} | {m['domain_accuracy_holdout']:.4f} "
            "(its holdout accuracy) |",
            f"| class mix TVD (guidance-free) | {m['representation_tvd']:.4f} | 0 |",
            f"| smallest generated/real class share | {m['min_relative_share']:.3f} | 1 |",
            "",
            f"Targets: CAS >= 0.90: **{q['targets']['cas_at_least_0.90']}**; no class below "
            f"half its real share: **{q['targets']['no_class_below_half_its_real_share']}**.",
            f"Time: training {q['train_seconds']:.0f} s, evaluation (sampling "
            f"{len(q['per_class_cas'])} classes x conditional + guidance-free samples, "
            f"classifiers) {q['evaluate_seconds']:.0f} s.",
            "",
            "| class | CAS recall | real-trained recall | generated/real share |",
            "|---|---|---|---|",
        ]
        for name, value in q["per_class_cas"].items():
            real = q["per_class_real_accuracy"].get(name, float("nan"))
            ratio = q["class_share_ratio"][name]
            lines.append(f"| {name} | {value:.3f} | {real:.3f} | {ratio:.2f} |")
        lines.append("")
    lines += [
        "## Throughput (side by side in one process; medians)",
        "",
        "| device | torch threads | s/epoch | train images/s | sample images/s "
        "(1,000 images, guided DDIM) |",
        "|---|---|---|---|---|",
    ]
    for t in r["throughput"]:
        lines.append(
            f"| {t['device']} | {t['threads']} | {t['median_epoch_s']:.3f} | "
            f"{t['train_images_per_s']:.0f} | {t['sample_images_per_s']:.0f} "
            f"({t['sample_steps']} steps) |"
        )
    cpu1, cpu2 = r["throughput"][0], r["throughput"][1]
    train_ratio = cpu2["train_images_per_s"] / cpu1["train_images_per_s"]
    sample_ratio = cpu2["sample_images_per_s"] / cpu1["sample_images_per_s"]
    lines += [
        "",
        f"2 threads vs 1 on the CPU: training x{train_ratio:.2f}, sampling x{sample_ratio:.2f}.",
    ]
    gpu = [t for t in r["throughput"] if t["device"] == "cuda"]
    if gpu:
        lines.append(
            f"GPU vs CPU (1 thread): training x{gpu[0]['train_speedup_vs_cpu_1_thread']:.1f}, "
            f"sampling x{gpu[0]['sample_speedup_vs_cpu_1_thread']:.1f}."
        )
    else:
        lines.append("No GPU on this machine: the CUDA rows are missing.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
