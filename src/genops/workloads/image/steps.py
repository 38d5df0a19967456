"""The image-diffusion pipeline's own steps as plain functions over file paths: prepare,
the data representation check, train and evaluate (with the generated-representation gate),
and the tuning objective the core's tune worker runs.

Start, tuning, register, bless, promote, deploy and rollback are the core's steps
(:mod:`genops.core.steps`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genops.core.device import apply_thread_env
from genops.core.io import write_text_atomic
from genops.core.steps import (
    ReportOutputs,
    log_model_params,
    read_config,
    record_trained_model,
    record_verdict,
    tag_data_gate,
    tag_synthetic_gate,
)
from genops.workloads.image.config import ImageRunConfig

if TYPE_CHECKING:
    from genops.workloads.image.data import ImageSet
    from genops.workloads.image.diffusion import DiffusionModel


def read_image_config(path: str | Path) -> ImageRunConfig:
    config = read_config(path)
    if not isinstance(config, ImageRunConfig):
        raise ValueError(
            f"{path}: not an image-diffusion config (pipeline: {config.pipeline_name})"
        )
    return config


def _log_figure(fig: Any, name: str) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(fig, name)
    plt.close(fig)


# ---------------------------------------------------------------- prepare


@dataclass
class ImagePrepareOutputs:
    train: str
    validation: str
    holdout: str
    profile_html: str


def _profile_html(config: ImageRunConfig, summary: dict[str, Any], grid_uri: str) -> str:
    import html

    counts = "".join(
        f"<tr><td>{html.escape(name)}</td><td class=num>{n}</td></tr>"
        for name, n in summary["counts"].items()
    )
    rows = ", ".join(f"{k} {v}" for k, v in summary["rows"].items())
    spec = config.dataset
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Data profile: {html.escape(spec.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td.num{text-align:right}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>"
        f"</head><body><h1>Data profile: {html.escape(spec.name)}</h1>"
        f"<p>Source <code>{html.escape(spec.source)}</code>; images "
        f"{spec.channels}x{spec.image_size}x{spec.image_size}; splits: {rows}; "
        f"content hash <code>{summary['dataset_hash'][:16]}</code></p>"
        f"<h2>Images per class</h2><table><tr><th>class</th><th>images</th></tr>{counts}</table>"
        f"<h2>Real images</h2><img src='{grid_uri}' alt='real images per class'>"
        "</body></html>"
    )


def prepare(
    config_path: str | Path, tracking_uri: str, run_id: str, out: ImagePrepareOutputs
) -> dict[str, Any]:
    """Read, validate, scale and split the images; a validation error is logged, then raised."""
    import mlflow

    from genops.core.tracking import step_run
    from genops.workloads.image.data import ImageDataError, prepare_images
    from genops.workloads.image.plots import figure_data_uri, sample_grid

    config = read_image_config(config_path)
    spec = config.dataset
    with step_run(tracking_uri, run_id, "prepare"):
        try:
            data = prepare_images(spec)
        except ImageDataError as exc:
            mlflow.log_text(str(exc), "data_validation/errors.txt")
            write_text_atomic(out.profile_html, f"<pre>{exc}</pre>")
            raise
        for name in ("train", "validation", "holdout"):
            data.splits[name].save(getattr(out, name))
        summary = data.summary()
        train = data.splits["train"]
        grid = sample_grid(train.images, train.labels, data.class_names, 10, "Real training images")
        mlflow.log_figure(grid, "data_profile/real_images.png")
        page = _profile_html(config, summary, figure_data_uri(grid))
        write_text_atomic(out.profile_html, page)
        mlflow.log_text(page, "data_profile/profile.html")
        mlflow.log_dict(summary, "data_profile/profile.json")
        rows = {f"rows_{k}": v for k, v in summary["rows"].items()}
        mlflow.log_metrics({k: float(v) for k, v in rows.items()})
        mlflow.log_params(
            {
                "dataset_hash": data.dataset_hash,
                "source": spec.source,
                "classes": len(data.class_names),
            }
        )
        from mlflow.data import numpy_dataset

        source = spec.source
        if spec.resolved_format == "sklearn":  # the file scikit-learn ships the digits in
            from importlib.resources import files

            source = str(files("sklearn.datasets") / "data" / "digits.csv.gz")
        dataset = numpy_dataset.from_numpy(
            train.images, targets=train.labels, source=source, name=f"{spec.name}-train"
        )
        mlflow.log_input(
            dataset, context="training", tags={"genops.dataset_hash": data.dataset_hash}
        )
        mlflow.MlflowClient().set_tag(run_id, "genops.dataset_hash", data.dataset_hash)
    return {"dataset_hash": data.dataset_hash, **rows}


# ---------------------------------------------------------------- data representation check


def data_representation_check(
    config_path: str | Path,
    train_path: str | Path,
    tracking_uri: str,
    run_id: str,
    out: ReportOutputs,
) -> str:
    """Images per class and class balance; returns the decision (continue or stop)."""
    from genops.core.tracking import step_run
    from genops.core.verdict import decide
    from genops.workloads.image.data import ImageSet
    from genops.workloads.image.representation import (
        data_representation,
        report_html,
        report_markdown,
        shares_figure,
        shares_table,
    )

    config = read_image_config(config_path)
    train = ImageSet.load(train_path)
    with step_run(tracking_uri, run_id, "data-bias-check"):
        # prepare held every class to min_images_per_class; the training split holds its share
        min_train = max(1, int(config.dataset.min_images_per_class * config.dataset.train_share))
        verdict = data_representation(train.labels, train.class_names, config.bias, min_train)
        decision = decide(verdict)
        rows = shares_table(train.labels, None, train.class_names)
        title = f"Data representation check: {config.dataset.name}"
        html_text = report_html(verdict, rows, title)
        md_text = report_markdown(verdict, rows, title)
        figures = {"class_shares": shares_figure(rows, "Class shares")}
        record_verdict(verdict, out, html_text, md_text, "data_bias", figures)
        tag_data_gate(run_id, verdict, decision)
    return decision


# ---------------------------------------------------------------- train


def build_generator(
    config: ImageRunConfig, class_names: list[str], params_override: dict[str, Any] | None = None
) -> DiffusionModel:
    from genops.workloads.image.diffusion import DiffusionModel

    spec = config.model.model_validate({**config.model.model_dump(), **(params_override or {})})
    return DiffusionModel(spec, config.dataset.channels, config.dataset.image_size, class_names)


def _grid_labels(num_classes: int, per_class: int) -> list[int]:
    return [c for c in range(num_classes) for _ in range(per_class)]


def train(
    config_path: str | Path,
    train_path: str | Path,
    tracking_uri: str,
    run_id: str,
    model_dir: str | Path,
    params_path: str | Path | None = None,
) -> dict[str, Any]:
    """Fit the diffusion model (tuned params when tuning ran), log loss, sample grids and the
    pyfunc model."""
    import mlflow

    from genops.core.tracking import step_run
    from genops.workloads.image.data import ImageSet
    from genops.workloads.image.plots import loss_figure, sample_grid
    from genops.workloads.image.pyfunc import images_frame, log_generator

    config = read_image_config(config_path)
    apply_thread_env()  # GENOPS_TORCH_THREADS, when set (see README: threads)
    data = ImageSet.load(train_path)
    tuned: dict[str, Any] = json.loads(Path(params_path).read_text()) if params_path else {}
    generator = build_generator(config, data.class_names, tuned)
    effective = generator.spec
    model_dir = Path(model_dir)
    grid_labels = _grid_labels(data.num_classes, 8)
    with step_run(tracking_uri, run_id, "train") as run:
        log_model_params(effective, tuned)
        mlflow.log_params(
            {
                "device": generator.device,
                "train_images": len(data),
                "classes": json.dumps(data.class_names),
            }
        )

        def on_epoch_end(epoch: int, values: dict[str, float]) -> None:
            mlflow.log_metrics({f"train_{k}": float(v) for k, v in values.items()}, step=epoch)
            done = epoch + 1
            if done % effective.sample_every == 0 or done == effective.epochs:
                images = generator.sample(grid_labels, seed=0)
                grid = sample_grid(images, grid_labels, data.class_names, 8, f"Epoch {done}")
                _log_figure(grid, f"samples/epoch_{done:04d}.png")

        started = time.perf_counter()
        generator.fit(data.images, data.labels, on_epoch_end=on_epoch_end)
        seconds = time.perf_counter() - started
        _log_figure(loss_figure(generator.loss_history), "plots/loss_curve.png")
        generator_dir = model_dir / "generator"
        generator.save(generator_dir)
        example = generator.sample([0, 1], steps=min(5, effective.timesteps), seed=0)
        info = log_generator(generator_dir, images_frame(example, [0, 1], data.class_names))
        summary = {
            "train_seconds": seconds,
            "train_images_per_second": len(data) * effective.epochs / max(seconds, 1e-9),
            "final_loss": float(generator.loss_history[-1]["loss"]),
        }
        family, device = effective.family, generator.device
        return record_trained_model(model_dir, info, run, summary, family=family, device=device)


# ---------------------------------------------------------------- evaluate


@dataclass
class ImageEvaluateOutputs:
    report_html: str
    evaluation_json: str
    bias: ReportOutputs


@dataclass
class ImageScores:
    """Everything evaluate computes, for the report and the gate."""

    metrics: dict[str, float]
    per_class_cas: dict[str, float]
    per_class_real: dict[str, float]
    conditional_accuracy: dict[int, float]
    unconditional_labels: np.ndarray
    conditional: np.ndarray
    conditional_labels: np.ndarray
    unconditional: np.ndarray


def score_generator(
    generator: Any,
    train: ImageSet,
    holdout: ImageSet,
    config: ImageRunConfig,
) -> ImageScores:
    """Sample, then CAS beside the real-trained accuracy, Fréchet distances in the domain
    classifier's feature space beside the holdout-vs-train baseline, and the class mix of
    guidance-free samples as the domain classifier reads it."""
    from genops.workloads.image.metrics import (
        DomainClassifier,
        class_distribution,
        classification_accuracy_score,
        fairness_discrepancy,
        frechet_distance,
        total_variation,
    )

    ev = config.evaluation
    k = train.num_classes
    names = train.class_names
    cond_labels = np.array(_grid_labels(k, ev.samples_per_class), dtype=np.int64)
    started = time.perf_counter()
    conditional = generator.sample(
        cond_labels, steps=ev.steps, guidance_scale=ev.guidance_scale, seed=ev.seed
    )
    sample_seconds = time.perf_counter() - started
    unconditional = generator.sample_unconditional(
        ev.unconditional_samples, steps=ev.steps, seed=ev.seed + 1
    )
    domain = DomainClassifier(seed=ev.seed).fit(train.images, train.labels)
    uncond_labels = domain.predict(unconditional)
    cond_pred = domain.predict(conditional)
    conditional_accuracy = {c: float(np.mean(cond_pred[cond_labels == c] == c)) for c in range(k)}
    cas = classification_accuracy_score(
        conditional, cond_labels, holdout.images, holdout.labels, k, seed=ev.seed
    )
    real = classification_accuracy_score(
        train.images, train.labels, holdout.images, holdout.labels, k, seed=ev.seed
    )
    f_holdout = domain.features(holdout.images)
    real_p = class_distribution(train.labels, k)
    gen_p = class_distribution(uncond_labels, k)
    ratios = [gen_p[c] / real_p[c] for c in range(k) if real_p[c] > 0]
    metrics = {
        "cas": cas.accuracy,
        "cas_real_baseline": real.accuracy,
        "cas_ratio": cas.accuracy / max(real.accuracy, 1e-9),
        "domain_accuracy_holdout": domain.accuracy(holdout.images, holdout.labels),
        "domain_accuracy_conditional": float(np.mean(cond_pred == cond_labels)),
        "frechet_distance": frechet_distance(domain.features(conditional), f_holdout),
        "frechet_distance_unconditional": frechet_distance(
            domain.features(unconditional), f_holdout
        ),
        "frechet_distance_baseline": frechet_distance(f_holdout, domain.features(train.images)),
        "representation_tvd": total_variation(gen_p, real_p),
        "fairness_discrepancy": fairness_discrepancy(gen_p, real_p),
        "min_relative_share": float(min(ratios)) if ratios else 0.0,
        "sample_images_per_second": len(cond_labels) / max(sample_seconds, 1e-9),
    }
    return ImageScores(
        metrics={key: float(v) for key, v in metrics.items()},
        per_class_cas={names[c]: v for c, v in cas.per_class.items()},
        per_class_real={names[c]: v for c, v in real.per_class.items()},
        conditional_accuracy=conditional_accuracy,
        unconditional_labels=uncond_labels,
        conditional=conditional,
        conditional_labels=cond_labels,
        unconditional=unconditional,
    )


_METRIC_UNSAFE = re.compile(r"[^\w.\-/ :]")  # what MLflow refuses in a metric name


def _guidance(config: ImageRunConfig) -> str:
    value = config.evaluation.guidance_scale
    return str(config.model.guidance_scale if value is None else value)


def _evaluation_html(
    config: ImageRunConfig, scores: ImageScores, names: list[str], grids: dict[str, str]
) -> str:
    import html

    m = scores.metrics
    pairs = [
        ("CAS (trained on generated, tested on real holdout)", m["cas"], "cas_real_baseline"),
        ("Fréchet distance, conditional samples vs holdout", m["frechet_distance"],
         "frechet_distance_baseline"),
        ("Fréchet distance, guidance-free samples vs holdout",
         m["frechet_distance_unconditional"], "frechet_distance_baseline"),
    ]  # fmt: skip
    head = "".join(
        f"<tr><td>{html.escape(label)}</td><td class=num>{value:.4f}</td>"
        f"<td class=num>{m[base]:.4f}</td></tr>"
        for label, value, base in pairs
    )
    others = "".join(
        f"<tr><td>{html.escape(key)}</td><td class=num>{value:.4f}</td></tr>"
        for key, value in sorted(m.items())
    )
    per_class = "".join(
        f"<tr><td>{html.escape(n)}</td><td class=num>{scores.per_class_cas.get(n, 0.0):.3f}</td>"
        f"<td class=num>{scores.per_class_real.get(n, float('nan')):.3f}</td>"
        f"<td class=num>{scores.conditional_accuracy.get(i, float('nan')):.3f}</td></tr>"
        for i, n in enumerate(names)
    )
    images = "".join(
        f"<h3>{html.escape(title)}</h3><img src='{uri}' alt='{html.escape(title)}'>"
        for title, uri in grids.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Evaluation: {html.escape(config.dataset.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td.num{text-align:right}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>"
        f"</head><body><h1>Generated images: {html.escape(config.dataset.name)}</h1>"
        "<h2>Quality beside the real baseline</h2><table><tr><th>metric</th><th>generated"
        f"</th><th>real baseline</th></tr>{head}</table>"
        "<h2>Per class</h2><table><tr><th>class</th><th>CAS recall</th><th>real-trained "
        f"recall</th><th>domain classifier agrees</th></tr>{per_class}</table>"
        f"<h2>All metrics</h2><table>{others}</table><h2>Samples</h2>{images}</body></html>"
    )


def evaluate(
    config_path: str | Path,
    model_dir: str | Path,
    train_path: str | Path,
    holdout_path: str | Path,
    tracking_uri: str,
    run_id: str,
    out: ImageEvaluateOutputs,
) -> tuple[dict[str, float], bool]:
    """Score the generator and run the generated-representation gate; returns the metrics
    and whether the gate passed."""
    import mlflow

    from genops.core.tracking import log_parent, step_run
    from genops.workloads.image.data import ImageSet
    from genops.workloads.image.diffusion import DiffusionModel
    from genops.workloads.image.plots import figure_data_uri, sample_grid
    from genops.workloads.image.representation import (
        generated_representation,
        report_html,
        report_markdown,
        shares_figure,
        shares_table,
    )

    config = read_image_config(config_path)
    apply_thread_env()  # GENOPS_TORCH_THREADS, when set (see README: threads)
    train_set = ImageSet.load(train_path)
    holdout = ImageSet.load(holdout_path)
    generator = DiffusionModel.load(Path(model_dir) / "generator", device=config.model.device)
    names = train_set.class_names
    with step_run(tracking_uri, run_id, "evaluate"):
        scores = score_generator(generator, train_set, holdout, config)
        metrics = scores.metrics
        per_class = {
            "cas_class_" + _METRIC_UNSAFE.sub("_", n): v for n, v in scores.per_class_cas.items()
        }
        conditional_grid = sample_grid(
            scores.conditional, scores.conditional_labels, names, 10, "Conditional samples"
        )
        mlflow.log_figure(conditional_grid, "evaluation/conditional_samples.png")
        uncond_grid = sample_grid(
            scores.unconditional,
            scores.unconditional_labels,
            names,
            10,
            "Guidance-free samples, by the domain classifier's label",
        )
        mlflow.log_figure(uncond_grid, "evaluation/unconditional_samples.png")
        grids = {
            "Conditional samples (a row per requested class)": figure_data_uri(conditional_grid),
            "Guidance-free samples, grouped by the domain classifier's label": figure_data_uri(
                uncond_grid
            ),
        }
        report = _evaluation_html(config, scores, names, grids)
        evaluation = {
            "metrics": metrics,
            "per_class_cas": scores.per_class_cas,
            "per_class_real_accuracy": scores.per_class_real,
            "conditional_accuracy": {names[c]: v for c, v in scores.conditional_accuracy.items()},
        }
        write_text_atomic(out.report_html, report)
        write_text_atomic(out.evaluation_json, json.dumps(evaluation, indent=2))
        mlflow.log_metrics({**metrics, **per_class})
        mlflow.log_text(report, "evaluation/report.html")
        mlflow.log_dict(evaluation, "evaluation/evaluation.json")

        verdict = generated_representation(
            train_set.labels,
            scores.unconditional_labels,
            names,
            config.bias,
            conditional_accuracy=scores.conditional_accuracy,
        )
        rows = shares_table(train_set.labels, scores.unconditional_labels, names)
        title = f"Generated representation check: {config.dataset.name}"
        html_text = report_html(verdict, rows, title)
        md_text = report_markdown(verdict, rows, title)
        figures = {"class_shares": shares_figure(rows, "Class shares")}
        record_verdict(verdict, out.bias, html_text, md_text, "synthetic_bias", figures)
        headline = {**metrics, "synthetic_bias_passed": float(verdict.passed)}
        log_parent(tracking_uri, run_id, headline, {"guidance_scale": _guidance(config)})
        tag_synthetic_gate(run_id, verdict)
    return metrics, verdict.passed


# ---------------------------------------------------------------- tuning objective


class ImageObjective:
    """Trials of the diffusion model, scored on the validation split.

    Every ``report_every`` epochs (to the pruner): the share of a few conditional samples per
    class that the domain classifier reads as the class asked for. At the end: that share
    (weight ``fidelity_weight``) and CAS against the validation images (``utility_weight``).
    """

    intermediate_metric = "label_agreement"

    def __init__(self, config: ImageRunConfig, train: ImageSet, validation: ImageSet) -> None:
        from genops.workloads.image.metrics import DomainClassifier

        self.config = config
        self.train = train
        self.validation = validation
        self.domain = DomainClassifier(seed=config.evaluation.seed).fit(train.images, train.labels)
        objective = config.tuning.objective
        self.weights = (objective.fidelity_weight, objective.utility_weight)
        self.steps = min(config.model.sample_steps, 25)

    def fit(self, model: Any, on_epoch_end: Any) -> None:
        model.fit(self.train.images, self.train.labels, on_epoch_end=on_epoch_end, progress=False)

    def _agreement(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.domain.predict(images) == labels))

    def intermediate(self, model: Any, seed: int) -> float:
        labels = np.array(_grid_labels(self.train.num_classes, 10))
        return self._agreement(model.sample(labels, steps=self.steps, seed=seed), labels)

    def final(self, model: Any, seed: int) -> dict[str, float]:
        from genops.workloads.image.metrics import classification_accuracy_score

        labels = np.array(_grid_labels(self.train.num_classes, 50))
        images = model.sample(labels, steps=self.steps, seed=seed)
        agreement = self._agreement(images, labels)
        cas = classification_accuracy_score(
            images,
            labels,
            self.validation.images,
            self.validation.labels,
            self.train.num_classes,
            seed=seed,
        ).accuracy
        fw, uw = self.weights
        return {
            "label_agreement": agreement,
            "cas_validation": cas,
            "objective": (fw * agreement + uw * cas) / (fw + uw),
        }


def tuning_objective(
    config: ImageRunConfig,
    train_path: str | Path,
    validation_path: str | Path,
    budget: dict[str, Any],
) -> tuple[ImageObjective, Any]:
    """The objective and the model factory the shared tune worker runs."""
    from genops.workloads.image.data import ImageSet

    apply_thread_env()  # GENOPS_TORCH_THREADS, when set (see README: threads)
    train_set = ImageSet.load(train_path)
    objective = ImageObjective(config, train_set, ImageSet.load(validation_path))

    def build(params: dict[str, Any]) -> Any:
        return build_generator(config, train_set.class_names, {**budget, **params})

    return objective, build
