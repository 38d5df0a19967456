"""bf16 autocast against fp32 for the text workload's default model, at equal steps.

Trains wikitext.yaml's model twice from the same seed for ``--steps`` steps (no time budget),
once with bf16 autocast in the forward pass and once in fp32, side by side in one process, and
records seconds, steps per second and the validation loss every ``--every`` steps. bf16 is
used only where the device computes it natively (``lm.bf16_native``): on a CPU without
AVX512-BF16 or AMX both runs are fp32 and the script says so.

Writes ``text-precision.json`` and ``.md`` next to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from bench_text import REPO, _lines, default_config, train_default
from benchinfo import load_average, machine


def _run(bf16: bool, steps: int, every: int) -> dict[str, Any]:
    _, _, result, _ = train_default(
        default_config(),
        _lines("train"),
        _lines("valid"),
        time_budget_s=None,
        max_steps=steps,
        eval_every=every,
        bf16=bf16,
        device="cpu",
    )
    return {
        "precision": result.precision,
        "seconds": result.seconds,
        "steps_per_second": result.steps / result.seconds,
        "validation_loss": {int(p["step"]): p["validation_loss"] for p in result.history},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/text-precision.json")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": machine(f"torch {torch.__version__}"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": load_average(),
        "bf16": _run(True, args.steps, args.every),
        "fp32": _run(False, args.steps, args.every),
    }
    results["load_after"] = load_average()
    bf16, fp32 = results["bf16"], results["fp32"]
    results["speedup"] = bf16["steps_per_second"] / fp32["steps_per_second"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# bf16 autocast against fp32 (text workload, default model, equal steps)",
        "",
        f"{results['machine']}; measured {results['date']}, load average "
        f"{results['load_before']} before, {results['load_after']} after. Side by side in one "
        f"process, same seed, {args.steps} steps each, no time budget.",
        "",
        f"| | {bf16['precision']} run | {fp32['precision']} run |",
        "|---|---:|---:|",
        f"| seconds | {bf16['seconds']:.1f} | {fp32['seconds']:.1f} |",
        f"| steps per second | {bf16['steps_per_second']:.2f} | {fp32['steps_per_second']:.2f} |",
        *(
            f"| validation loss at step {step} | {loss:.4f} | {fp32['validation_loss'][step]:.4f} |"
            for step, loss in bf16["validation_loss"].items()
        ),
        "",
        f"Speed-up: {results['speedup']:.2f}x.",
    ]
    if bf16["precision"] != "bf16":
        lines.append("This CPU has no native bf16: both runs trained in fp32.")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
