"""What a diffusion model's model card says about it (genops.core.modelcard lays it out): its
uses, its training images, its figures with the real-image baselines they are read against,
and an example request."""

from __future__ import annotations

from typing import Any

from genops.core.workload import CardFigure, ModelCardFacts, RunRecord


def _figure(
    run: RunRecord, name: str, meaning: str, baseline: str = "", fixed: float | None = None
) -> CardFigure | None:
    if name not in run.metrics:
        return None
    base = run.metrics.get(baseline) if baseline in run.metrics else fixed
    return CardFigure(name, run.metrics[name], meaning, baseline, base)


def _a_class(config: Any, run: RunRecord) -> str:
    """A class the model was trained on, for the example request."""
    if config.dataset.label_names:
        return str(config.dataset.label_names[0])
    per_class = sorted(k.removeprefix("cas_class_") for k in run.metrics if k.startswith("cas_"))
    per_class = [name for name in per_class if name not in ("ratio", "real_baseline", "")]
    return per_class[0] if per_class else "0"


def card_facts(config: Any, run: RunRecord) -> ModelCardFacts:
    spec, model = config.dataset, config.model
    prepare = run.step_metrics.get("prepare", {})
    rows = ", ".join(
        f"{int(prepare[f'rows_{split}']):,} {split}"
        for split in ("train", "validation", "holdout")
        if f"rows_{split}" in prepare
    )
    classes = run.step_params.get("prepare", {}).get("classes")
    training = [f"{spec.image_size}×{spec.image_size} pixels, {spec.channels} channel(s)"]
    if rows:
        training.insert(0, f"Images: {rows}")
    if classes:
        training.append(f"{classes} classes (the class label conditions generation)")
    figures = [
        _figure(run, "cas", "accuracy on real holdout images of a classifier trained on "
                "generated ones (classification accuracy score)", "cas_real_baseline"),
        _figure(run, "domain_accuracy_conditional", "share of generated images a classifier "
                "trained on real images reads as the class asked for",
                "domain_accuracy_holdout"),
        _figure(run, "frechet_distance", "Fréchet distance of generated to real holdout "
                "features (lower is closer)", "frechet_distance_baseline"),
        _figure(run, "representation_tvd", "distance of the guidance-free class mix from the "
                "real class mix (0: the same)", "the real mix", 0.0),
        _figure(run, "min_relative_share", "smallest class share of guidance-free samples "
                "over its real share (1.0: every class as often as in the data)",
                "every class at its real share", 1.0),
    ]  # fmt: skip
    guidance = config.evaluation.guidance_scale
    return ModelCardFacts(
        model=f"A class-conditional diffusion model (DDPM U-Net, {model.timesteps} steps, "
        f"DDIM sampling, classifier-free guidance) of the `{spec.name}` images: it generates "
        "images of the classes asked for.",
        intended_use=[
            f"Synthetic images of the `{spec.name}` classes for augmentation, testing and "
            "demonstrations.",
            "Balanced sets of every class (`counts`), within the representation verdicts below.",
        ],
        out_of_scope=[
            "Classes the model was not trained on, or images larger than "
            f"{spec.image_size}×{spec.image_size}.",
            "Evidence of anything in the real world: a generated image depicts nothing real.",
            "Identifying or describing people.",
        ],
        training_data=training,
        sensitive_attributes=[
            "class label: the representation gates compare each class's share of generated "
            "images with its share of the real images"
        ],
        figures=[f for f in figures if f is not None],
        limitations=[
            "Classes with few training images are generated less faithfully; guidance trades "
            "diversity for faithfulness to the class.",
        ],
        example_request={
            "counts": {_a_class(config, run): 2},
            "steps": config.evaluation.steps or model.sample_steps,
            "guidance": guidance if guidance is not None else model.guidance_scale,
            "seed": 1,
        },
    )
