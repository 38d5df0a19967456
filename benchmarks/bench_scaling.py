"""Scaling of the tabular workload: Adult resampled to 10k, 100k and 1M rows; the time and peak
memory of each of the pipeline's data-sized steps, and how they grow with the row count.

The cleaned Adult rows (pipelines/configs/adult.yaml's sources, cleaned once) are drawn with
replacement (seeded) to each size and written as one Parquet file in a scratch folder, with a
config on top of adult.yaml that reads it (tuning off, device cpu). Then, per size, the steps
in order, each in a fresh interpreter (``--step``) that reads its inputs from the scratch
folder and writes its outputs there, as the pipeline's tasks do; they mirror the library calls
of ``genops.workloads.tabular.steps`` without MLflow:

1. ``prepare``: ``prepare(spec)`` (load, validate, clean, split), the validation and profile
   reports, the three split Parquet files;
2. ``data_bias``: the data bias gate on the training split (verdict, decision, reports,
   figures);
3. ``train_epoch``: ``build_synthesizer(config, {"epochs": 1})`` fitted on the training split,
   saved;
4. ``evaluate``: as many synthetic rows as training rows from that model (sampled to the
   mitigation target when the gate said ``mitigate``, as the pipeline does), the evaluation
   (fidelity, utility, privacy) and its HTML report;
5. ``synthetic_bias``: the synthetic-data bias gate (downstream fairness, the verdict, the
   real-vs-synthetic comparison, reports, figures).

Per step and size: the seconds of the step's work (imports done before the clock starts; the
child's start-up is reported apart), the child's peak RSS during that work and that peak above
its RSS after the imports. The peak is ``VmHWM``, reset after the imports (``clear_refs``);
the child's ``ru_maxrss`` cannot be reset and starts at the parent's RSS (exec keeps the
forked copy's high-water mark), so it is only kept in the JSON. Per step: the growth
exponents, the least-squares slope of log(time) and of log(memory above baseline) on log(n).
n log n from 10k to 1M looks like n^1.09; an exponent above 1.15 is worse than n log n: a
DEFECT. Target: every step's peak RSS <= 4 GiB at 1M rows. Writes JSON and Markdown next
to ``--out``.

On a machine shared with other work, ``--threads 1``: OpenMP (scikit-learn's gradient
boosting) and torch threads that wait for busy cores slowed small steps by up to 20x on a
loaded 2-core machine, which hides how they grow.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib
import io
import json
import math
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchinfo import load_average, machine

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO / "pipelines/configs/adult.yaml"
STEPS = ("prepare", "data_bias", "train_epoch", "evaluate", "synthetic_bias")
DEFAULT_SIZES = "10000,100000,1000000"
TARGET_EXPONENT = 1.15  # n log n from 10k to 1M: an apparent exponent of about 1.09
TARGET_PEAK_MIB = 4096.0
TARGET_AT_ROWS = 1_000_000
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MEMORY_NOISE_MIB = 64.0  # a memory exponent over smaller growth than this is noise
SEED = 0

# What each step imports before its clock starts (lazy imports of the library included).
COMMON_IMPORTS = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "genops.core.config",
    "genops.workloads.tabular.data",
)
STEP_IMPORTS = {
    "prepare": ("great_expectations", "genops.workloads.tabular.data.prepare"),
    "data_bias": (
        "matplotlib.pyplot",
        "genops.core.report",
        "genops.core.verdict",
        "genops.workloads.tabular.bias.metrics",
    ),
    "train_epoch": ("torch", "genops.workloads.tabular.steps", "genops.workloads.tabular.models"),
    "evaluate": (
        "torch",
        "matplotlib.pyplot",
        "sklearn.ensemble",
        "sklearn.neighbors",
        "genops.workloads.tabular.models",
        "genops.workloads.tabular.evaluation",
        "genops.workloads.tabular.bias.mitigation",
    ),
    "synthetic_bias": (
        "matplotlib.pyplot",
        "genops.core.report",
        "genops.core.verdict",
        "genops.workloads.tabular.steps",
        "genops.workloads.tabular.bias.metrics",
    ),
}


# ------------------------------------------------------------------------------ the data
def clean_adult() -> Any:
    """Adult's rows as the prepare step cleans them (every source, value map, dropped gaps)."""
    import pandas as pd

    from genops.core.config import load_config_for
    from genops.workloads.tabular.data.prepare import clean, load_source

    spec = load_config_for(BASE_CONFIG, "tabular-synth").dataset
    frames = [load_source(spec, uri)[list(spec.columns)] for uri in spec.sources]
    return clean(spec, pd.concat(frames, ignore_index=True))


def write_size(adult: Any, n: int, folder: Path) -> Path:
    """``n`` rows drawn with replacement, as one Parquet file, and a config that reads it."""
    import numpy as np
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    rows = np.random.default_rng(SEED).integers(0, len(adult), size=n)
    source = folder / f"adult_{n}.parquet"
    adult.iloc[rows].reset_index(drop=True).to_parquet(source, index=False)
    config = folder / "config.yaml"
    overlay = {
        "base": str(BASE_CONFIG),
        "dataset": {"sources": [str(source)]},
        "model": {"device": "cpu"},
        "tuning": {"enabled": False},
    }
    config.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return config


# ------------------------------------------------------------------------------ the steps
# Each reads its inputs from ``work`` and writes its outputs there; returns step details.
def _config(config_path: Path) -> Any:
    from genops.core.config import load_config_for

    return load_config_for(config_path, "tabular-synth")


def _write_figures(figures: dict[str, Any], folder: Path) -> None:
    """What record_verdict does with the figures, without MLflow: a PNG each, then close."""
    import matplotlib.pyplot as plt

    from genops.core.report import figure_png

    folder.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        (folder / f"{name}.png").write_bytes(figure_png(fig))
        plt.close(fig)


def _write_verdict(verdict: Any, html_text: str, md_text: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "verdict.json").write_text(verdict.to_json())
    (folder / "report.html").write_text(html_text)
    (folder / "report.md").write_text(md_text)


def step_prepare(config_path: Path, work: Path) -> dict[str, Any]:
    from genops.workloads.tabular.data import write_parquet
    from genops.workloads.tabular.data.prepare import prepare, profile_html

    spec = _config(config_path).dataset
    data = prepare(spec)
    (work / "validation.html").write_text(data.report.to_html())
    (work / "profile.html").write_text(profile_html(spec.name, data.profile))
    write_parquet(data.train, work / "train.parquet")
    write_parquet(data.validation, work / "validation.parquet")
    write_parquet(data.holdout, work / "holdout.parquet")
    return {
        "rows_train": len(data.train),
        "rows_validation": len(data.validation),
        "rows_holdout": len(data.holdout),
    }


def step_data_bias(config_path: Path, work: Path) -> dict[str, Any]:
    from genops.workloads.tabular.bias import (
        bias_figures,
        data_bias_verdict,
        decide,
        group_stats_by_dataset,
        render_html,
        render_markdown,
    )
    from genops.workloads.tabular.data import read_parquet

    config = _config(config_path)
    spec = config.dataset
    frame = read_parquet(work / "train.parquet", spec)
    verdict = data_bias_verdict(
        frame, spec.sensitive_attributes, spec.target, spec.positive_label, config.bias
    )
    decision = decide(verdict)
    shares = group_stats_by_dataset(
        {"real": frame}, spec.sensitive_attributes, spec.target, spec.positive_label
    )
    html_text = render_html(verdict, shares, title=f"Data bias check: {spec.name}")
    md_text = render_markdown(verdict, title=f"Data bias check: {spec.name}")
    figures = {f"group_shares_{a}": fig for a, fig in bias_figures(shares).items()}
    _write_verdict(verdict, html_text, md_text, work / "data_bias")
    _write_figures(figures, work / "data_bias")
    (work / "decision.txt").write_text(str(decision))
    return {"decision": str(decision), "passed": bool(verdict.passed)}


def step_train_epoch(config_path: Path, work: Path) -> dict[str, Any]:
    from genops.workloads.tabular.data import read_parquet
    from genops.workloads.tabular.steps import build_synthesizer

    config = _config(config_path)
    frame = read_parquet(work / "train.parquet", config.dataset)
    synthesizer = build_synthesizer(config, {"epochs": 1})
    started = time.perf_counter()
    synthesizer.fit(frame, progress=False)
    fit_seconds = time.perf_counter() - started
    synthesizer.save(work / "model" / "synthesizer")
    return {"fit_seconds": round(fit_seconds, 3), "rows": len(frame)}


def step_evaluate(config_path: Path, work: Path) -> dict[str, Any]:
    import numpy as np

    from genops.workloads.tabular.bias import mitigation_condition_frame
    from genops.workloads.tabular.data import read_parquet, write_parquet
    from genops.workloads.tabular.evaluation import evaluate, render_html
    from genops.workloads.tabular.models import load_synthesizer

    config = _config(config_path)
    spec = config.dataset
    train = read_parquet(work / "train.parquet", spec)
    holdout = read_parquet(work / "holdout.parquet", spec)
    synthesizer = load_synthesizer(work / "model" / "synthesizer", device="cpu")
    n = config.evaluation.synthetic_rows or len(train)
    mitigated = (work / "decision.txt").read_text().strip() == "mitigate"
    clock = time.perf_counter()
    if mitigated:
        conditions = mitigation_condition_frame(
            train,
            spec.sensitive_attributes,
            spec.target,
            config.bias,
            n,
            spec.positive_label,
            seed=config.evaluation.seed,
        )
        synthetic = synthesizer.sample_conditions(conditions, seed=config.evaluation.seed)
    else:
        synthetic = synthesizer.sample(n, seed=config.evaluation.seed)
    write_parquet(synthetic, work / "synthetic.parquet")
    sample_seconds, clock = time.perf_counter() - clock, time.perf_counter()
    result = evaluate(
        spec,
        train,
        holdout,
        synthetic,
        privacy_sample=config.evaluation.privacy_sample,
        seed=config.evaluation.seed,
    )
    score_seconds, clock = time.perf_counter() - clock, time.perf_counter()
    (work / "evaluation.html").write_text(render_html(spec, result, train, synthetic))
    (work / "evaluation.json").write_text(json.dumps(result.to_dict(), indent=2))
    np.savez(work / "predictions.npz", **result.predictions)
    return {
        "mitigated": mitigated,
        "synthetic_rows": len(synthetic),
        "sample_seconds": round(sample_seconds, 3),
        "score_seconds": round(score_seconds, 3),
        "report_seconds": round(time.perf_counter() - clock, 3),
    }


def step_synthetic_bias(config_path: Path, work: Path) -> dict[str, Any]:
    import numpy as np

    from genops.workloads.tabular.bias import (
        Stats,
        bias_figures,
        data_bias_report,
        downstream_fairness,
        group_stats_by_dataset,
        render_markdown,
        synthetic_bias_verdict,
    )
    from genops.workloads.tabular.bias import render_html as render_bias_html
    from genops.workloads.tabular.data import read_parquet
    from genops.workloads.tabular.steps import _comparison_html

    config = _config(config_path)
    spec = config.dataset
    attrs = spec.sensitive_attributes
    train = read_parquet(work / "train.parquet", spec)
    holdout = read_parquet(work / "holdout.parquet", spec)
    synthetic = read_parquet(work / "synthetic.parquet", spec)
    predictions = np.load(work / "predictions.npz")
    mitigated = (work / "decision.txt").read_text().strip() == "mitigate"
    fairness = downstream_fairness(
        holdout[spec.target].astype(str).eq(spec.positive_label).to_numpy(int),
        predictions["synthetic_trained"],
        predictions["real_trained"],
        holdout[attrs],
        positive_label=1,
        thresholds=config.bias.synthetic,
        stats=Stats.from_config(config.bias),
    )
    verdict = synthetic_bias_verdict(
        train,
        synthetic,
        attrs,
        spec.target,
        spec.positive_label,
        config.bias,
        continuous_columns=spec.continuous_columns,
        categorical_columns=spec.categorical_columns,
        fairness=fairness,
    )
    real_side = data_bias_report(train, attrs, spec.target, spec.positive_label, config.bias)
    synthetic_side = {
        (r.metric, r.attribute, tuple(r.groups)): r
        for r in data_bias_report(synthetic, attrs, spec.target, spec.positive_label, config.bias)
    }
    comparison: list[dict[str, Any]] = []
    for r in real_side:
        s = synthetic_side.get((r.metric, r.attribute, tuple(r.groups)))
        comparison.append(
            {
                "metric": r.metric,
                "attribute": r.attribute,
                "groups": r.groups,
                "real": r.value,
                "real_interval": r.interval_text(),
                "synthetic": float("nan") if s is None else s.value,
                "synthetic_interval": "" if s is None else s.interval_text(),
            }
        )
    shares = group_stats_by_dataset(
        {"real": train, "synthetic": synthetic}, attrs, spec.target, spec.positive_label
    )
    title = f"Synthetic-data bias check: {spec.name}" + (" (mitigated)" if mitigated else "")
    html_text = render_bias_html(verdict, shares, title=title)
    html_text = html_text.replace("</body>", _comparison_html(comparison) + "</body>")
    md_text = render_markdown(verdict, title=title)
    figures = {f"group_shares_{a}": fig for a, fig in bias_figures(shares).items()}
    _write_verdict(verdict, html_text, md_text, work / "synthetic_bias")
    _write_figures(figures, work / "synthetic_bias")
    return {"passed": bool(verdict.passed), "metrics": len(verdict.results)}


STEP_FUNCTIONS: dict[str, Callable[[Path, Path], dict[str, Any]]] = {
    "prepare": step_prepare,
    "data_bias": step_data_bias,
    "train_epoch": step_train_epoch,
    "evaluate": step_evaluate,
    "synthetic_bias": step_synthetic_bias,
}


def _status_mib(field: str) -> float | None:
    """A size from /proc/self/status (``VmRSS``, ``VmHWM``) in MiB, or None without /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_mib() -> float:
    """This process's peak resident set so far: ``VmHWM``, the high-water mark of its memory
    (all threads), which ``_reset_peak`` can reset; else ``ru_maxrss`` (KiB on Linux), which
    cannot be reset and also holds the high-water mark of the forked parent copy that
    exec replaced (the parent's RSS at the fork)."""
    hwm = _status_mib("VmHWM")
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_mib() -> float:
    """This process's resident set now (VmRSS), or its peak where /proc is missing."""
    rss = _status_mib("VmRSS")
    return _peak_mib() if rss is None else rss


def _reset_peak() -> bool:
    """Start the peak RSS afresh from the current RSS (Linux >= 4.0: writing 5 to
    ``clear_refs`` resets ``VmHWM``), so that the peak is the step's, not that of the imports
    (which can pass what the step needs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _peak_mib() <= _current_mib() + 1.0


def _limit_threads(threads: int | None) -> None:
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)


def child(
    step: str,
    config_path: Path,
    work: Path,
    result_path: Path,
    profile: bool,
    threads: int | None,
) -> None:
    """One step in this (fresh) process: imports first, then the clock; the result as JSON."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from genops.core.process import seconds_since_start

    for name in (*COMMON_IMPORTS, *STEP_IMPORTS[step]):
        importlib.import_module(name)
    if "matplotlib.pyplot" in STEP_IMPORTS[step]:
        import matplotlib

        matplotlib.use("Agg")
    if "torch" in STEP_IMPORTS[step]:
        _limit_threads(threads)
    startup = seconds_since_start()
    import_peak = _peak_mib()
    baseline = _current_mib()
    reset = _reset_peak()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    detail = STEP_FUNCTIONS[step](config_path, work)
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    peak = _peak_mib()
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "startup_seconds": startup,
        # the step's peak RSS (the imported libraries' resident pages included)
        "peak_mib": round(peak, 1),
        "baseline_mib": round(baseline, 1),
        "above_baseline_mib": round(max(peak - baseline, 0.0), 1),
        "import_peak_mib": round(import_peak, 1),
        # ru_maxrss at the end: it also counts the forked copy of the parent before exec
        # (Linux keeps the old mm's high-water mark), so it reads at least the parent's RSS
        "process_peak_mib": round(process_peak, 1),
        # False: the peak could not be reset, so it may be the imports' peak
        "peak_is_the_steps": reset,
        "detail": detail,
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        prof_path = result_path.with_suffix(".prof.txt")
        prof_path.write_text(out.getvalue())
        result["profile"] = str(prof_path)
    result_path.write_text(json.dumps(result))


# ------------------------------------------------------------------------------ the parent
def run_step(
    step: str, config: Path, work: Path, n: int, profile_dir: Path | None, threads: int | None
) -> dict[str, Any]:
    result_path = work / f"{step}.result.json"
    result_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--step",
        step,
        "--config",
        str(config),
        "--work",
        str(work),
        "--result",
        str(result_path),
    ]
    if profile_dir is not None:
        command.append("--profile")
    if threads is not None:
        command += ["--threads", str(threads)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "GX_ANALYTICS_ENABLED": "false",
        **({name: str(threads) for name in THREAD_VARIABLES} if threads is not None else {}),
    }
    wall = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode != 0 or not result_path.exists():
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise RuntimeError(f"step {step} at {n:,} rows failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(result_path.read_text())
    result["process_seconds"] = round(time.perf_counter() - wall, 3)
    if profile_dir is not None and "profile" in result:
        profile_dir.mkdir(parents=True, exist_ok=True)
        target = profile_dir / f"{step}-{n}.prof.txt"
        target.write_text(Path(result["profile"]).read_text())
        result["profile"] = str(target)
    return result


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over the repeats (the last run's details)."""
    out = dict(runs[-1])
    numbers = ("seconds", "startup_seconds", "peak_mib", "baseline_mib", "above_baseline_mib")
    for key in (*numbers, "import_peak_mib"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 3)
    out["repeats"] = len(runs)
    return out


def slope(sizes: list[int], values: list[float]) -> float | None:
    """The least-squares slope of log(value) on log(n)."""
    points = [(math.log(n), math.log(v)) for n, v in zip(sizes, values, strict=True) if v > 0]
    if len(points) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return round(sum((x - mx) * (y - my) for x, y in points) / sxx, 3)


def summarize(sizes: list[int], by_size: dict[str, dict[str, Any]]) -> dict[str, Any]:
    times = [by_size[str(n)]["seconds"] for n in sizes]
    above = [max(by_size[str(n)]["above_baseline_mib"], 1.0) for n in sizes]  # >= 1 MiB
    largest = by_size[str(sizes[-1])]
    time_exp = slope(sizes, times)
    mem_exp = slope(sizes, above)
    memory_counts = largest["above_baseline_mib"] >= MEMORY_NOISE_MIB
    out: dict[str, Any] = {
        "time_exponent": time_exp,
        "memory_exponent": mem_exp,
        "time_exponent_last_pair": slope(sizes[-2:], times[-2:]) if len(sizes) > 2 else time_exp,
        "time_defect": time_exp is not None and time_exp > TARGET_EXPONENT,
        "memory_defect": memory_counts and mem_exp is not None and mem_exp > TARGET_EXPONENT,
    }
    if sizes[-1] >= TARGET_AT_ROWS:
        at = by_size.get(str(TARGET_AT_ROWS), largest)
        out["peak_mib_at_target_rows"] = at["peak_mib"]
        out["peak_target"] = "met" if at["peak_mib"] <= TARGET_PEAK_MIB else "not met"
    else:
        # not measured: a + b n through the last two sizes' memory above the baseline (the
        # fixed part kept fixed), plus the baseline; through zero with one size
        n_last, above_last = sizes[-1], largest["above_baseline_mib"]
        if len(sizes) > 1:
            n_prev, above_prev = sizes[-2], by_size[str(sizes[-2])]["above_baseline_mib"]
            per_row = max(above_last - above_prev, 0.0) / (n_last - n_prev)
        else:
            per_row = above_last / n_last
        projected = largest["baseline_mib"] + above_last + per_row * (TARGET_AT_ROWS - n_last)
        out["peak_mib_projected_at_target_rows"] = round(projected, 1)
        out["peak_target"] = "not measured"
    return out


def fmt_exp(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def markdown(r: dict[str, Any]) -> str:
    sizes: list[int] = r["sizes"]
    lines = [
        "# Scaling of the tabular workload: Adult resampled",
        "",
        f"Machine: {r['machine']}. Date: {r['date']}. Load average before {r['load_before']}, "
        f"after {r['load_after']}. {r['repeats']} run(s) per step and size"
        + (", median." if r["repeats"] > 1 else ".")
        + f" {r['adult_rows']:,} cleaned Adult rows drawn with replacement (seed {SEED}).",
        "",
        "Seconds of each step's work (imports excluded) and its process's peak RSS during "
        "that work (MiB; in brackets, above its RSS after the imports).",
        "",
        "| step | " + " | ".join(f"{n:,} rows" for n in sizes) + " | time exp. | "
        "memory exp. | targets |",
        "|---|" + "---:|" * len(sizes) + "---:|---:|---|",
    ]
    defects: list[str] = []
    for step in STEPS:
        s = r["steps"][step]
        cells = [
            f"{s['by_size'][str(n)]['seconds']:.2f} s, {s['by_size'][str(n)]['peak_mib']:.0f} "
            f"({s['by_size'][str(n)]['above_baseline_mib']:.0f}) MiB"
            for n in sizes
        ]
        targets = []
        if s["time_defect"]:
            targets.append(f"**DEFECT**: time grows as n^{s['time_exponent']:.2f}")
            defects.append(f"{step} (time n^{s['time_exponent']:.2f})")
        if s["memory_defect"]:
            targets.append(f"**DEFECT**: memory grows as n^{s['memory_exponent']:.2f}")
            defects.append(f"{step} (memory n^{s['memory_exponent']:.2f})")
        if not s["time_defect"] and not s["memory_defect"]:
            targets.append("growth: met")
        if s["peak_target"] == "not measured":
            targets.append(
                f"<= {TARGET_PEAK_MIB:.0f} MiB at {TARGET_AT_ROWS:,}: not measured "
                f"(linear projection {s['peak_mib_projected_at_target_rows']:.0f} MiB)"
            )
        else:
            targets.append(
                f"<= {TARGET_PEAK_MIB:.0f} MiB at {TARGET_AT_ROWS:,}: {s['peak_target']} "
                f"({s['peak_mib_at_target_rows']:.0f} MiB)"
            )
        lines.append(
            f"| {step} | "
            + " | ".join(cells)
            + f" | {fmt_exp(s['time_exponent'])} | {fmt_exp(s['memory_exponent'])} | "
            + "; ".join(targets)
            + " |"
        )
    lines += [
        "",
        f"Exponents: least-squares slope of log(seconds), and of log(MiB above the baseline, "
        f"at least 1), on log(rows) over {', '.join(f'{n:,}' for n in sizes)}. n log n over "
        f"10k to 1M reads as about n^1.09; above {TARGET_EXPONENT} is worse than n log n, a "
        f"defect (memory only when the largest size grows it by >= {MEMORY_NOISE_MIB:.0f} MiB). "
        "Fixed costs pull exponents below 1 at small sizes. Without a run at "
        f"{TARGET_AT_ROWS:,} rows the peak is projected: the memory above the baseline taken "
        "as linear in the rows through the two largest sizes, plus the baseline.",
        "",
        "Defects: " + (", ".join(defects) if defects else "none") + ".",
        "",
        "## Details",
        "",
        "| step | rows | seconds | start-up s | peak MiB | baseline MiB | imports' peak MiB "
        "| details |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for step in STEPS:
        for n in sizes:
            x = r["steps"][step]["by_size"][str(n)]
            detail = ", ".join(f"{k} {v}" for k, v in x["detail"].items())
            lines.append(
                f"| {step} | {n:,} | {x['seconds']:.2f} | {x['startup_seconds']} | "
                f"{x['peak_mib']:.0f} | {x['baseline_mib']:.0f} | {x['import_peak_mib']:.0f} "
                f"| {detail} |"
            )
    if not all(
        x.get("peak_is_the_steps", True) for s in r["steps"].values() for x in s["by_size"].values()
    ):
        lines += [
            "",
            "The peak RSS could not be reset after the imports here: some peaks are "
            "the imports' (see that column).",
        ]
    lines += [
        "",
        "Start-up: the child's interpreter and imports, before the clock. "
        "Steps mirror `genops.workloads.tabular.steps` without MLflow; train is one epoch of "
        "adult.yaml's TVAE on CPU; the resampled rows repeat, so the holdout shares rows with "
        "the training split (the privacy numbers are meaningless here, their cost is not).",
    ]
    return "\n".join(lines) + "\n"


def terminal_table(r: dict[str, Any]) -> str:
    sizes: list[int] = r["sizes"]
    head = f"{'step':<16}" + "".join(f"{f'{n:,} rows':>24}" for n in sizes)
    head += f"{'t exp':>8}{'m exp':>8}  verdict"
    rows = [head, "-" * len(head)]
    for step in STEPS:
        s = r["steps"][step]
        cells = "".join(
            "{:>24}".format(f"{x['seconds']:.2f} s {x['peak_mib']:.0f} MiB")
            for x in (s["by_size"][str(n)] for n in sizes)
        )
        verdict = "DEFECT" if s["time_defect"] or s["memory_defect"] else "ok"
        rows.append(
            f"{step:<16}{cells}{fmt_exp(s['time_exponent']):>8}"
            f"{fmt_exp(s['memory_exponent']):>8}  {verdict}, peak target {s['peak_target']}"
            + (
                f" (linear projection {s['peak_mib_projected_at_target_rows']:.0f} MiB)"
                if "peak_mib_projected_at_target_rows" in s
                else ""
            )
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/scaling.json")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="rows, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="runs per step; median")
    parser.add_argument(
        "--profile-dir", type=Path, default=None, help="cProfile every step; top 25 here"
    )
    parser.add_argument("--keep", type=Path, default=None, help="work here, and keep it")
    # the child's side (one step in a fresh process)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per step (OpenMP, BLAS, torch); default: the libraries' own choice",
    )
    args = parser.parse_args()
    if args.step:
        child(args.step, args.config, args.work, args.result, args.profile, args.threads)
        return

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if not sizes or args.repeats < 1:
        parser.error("--sizes needs at least one size and --repeats at least 1")
    import torch

    load_before = load_average()
    started = time.perf_counter()
    adult = clean_adult()
    raw: dict[str, dict[str, dict[str, Any]]] = {step: {} for step in STEPS}
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    try:
        for n in sizes:
            work = scratch / f"n{n}"
            config = write_size(adult, n, work)
            for step in STEPS:
                runs = [
                    run_step(step, config, work, n, args.profile_dir, args.threads)
                    for _ in range(args.repeats)
                ]
                result = median_result(runs)
                raw[step][str(n)] = result
                print(
                    f"{n:>10,} rows  {step:<15} {result['seconds']:9.2f} s  "
                    f"peak {result['peak_mib']:8.0f} MiB  "
                    f"(+{result['above_baseline_mib']:.0f} over {result['baseline_mib']:.0f})  "
                    f"start-up {result['startup_seconds']} s",
                    flush=True,
                )
    finally:
        if args.keep is None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    results: dict[str, Any] = {
        "machine": machine(
            f"torch {torch.__version__} (threads {args.threads or torch.get_num_threads()} "
            f"per step{'' if args.threads else ', the libraries default'})"
        ),
        "threads": args.threads,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": str(BASE_CONFIG.relative_to(REPO)),
        "adult_rows": len(adult),
        "sizes": sizes,
        "repeats": args.repeats,
        "targets": {
            "max_exponent": TARGET_EXPONENT,
            "peak_mib": TARGET_PEAK_MIB,
            "at_rows": TARGET_AT_ROWS,
        },
        "steps": {step: {"by_size": raw[step], **summarize(sizes, raw[step])} for step in STEPS},
        "load_before": load_before,
        "load_after": load_average(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print()
    print(terminal_table(results))
    print(f"\nwritten: {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
