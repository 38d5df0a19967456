"""What a tabular synthesizer's model card says about it (genops.core.modelcard lays it out):
its uses, its training table, its figures with the real-data baselines they are read
against, and an example request."""

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


_FAMILY_NAMES = {"tvae": "TVAE", "ctgan": "CTGAN", "diffusion": "TabDDPM-style diffusion"}


def card_facts(config: Any, run: RunRecord) -> ModelCardFacts:
    spec = config.dataset
    family = _FAMILY_NAMES.get(config.model.family, config.model.family)
    conditioned = " conditioned on the sensitive attributes and the target" * bool(
        config.model.conditional
    )
    prepare = run.step_metrics.get("prepare", {})
    rows = ", ".join(
        f"{int(prepare[f'rows_{split}']):,} {split}"
        for split in ("train", "validation", "holdout")
        if f"rows_{split}" in prepare
    )
    training = [
        f"{len(spec.columns)} columns; target `{spec.target}` (positive label "
        f"`{spec.positive_label}`)",
    ]
    if rows:
        training.insert(0, f"Rows after cleaning: {rows}")
    if spec.sample_rows:
        training.append(f"A seeded sample of {spec.sample_rows:,} rows of the sources")
    figures = [
        _figure(run, "utility_tstr_auc", "AUC of a classifier for the target trained on "
                "synthetic rows, tested on real holdout rows", "utility_trtr_auc"),
        _figure(run, "fidelity_column_shapes", "similarity of each column's distribution "
                "(1.0: identical)", "identical columns", 1.0),
        _figure(run, "fidelity_pair_trends", "similarity of the column pairs' correlations "
                "(1.0: identical)", "identical pairs", 1.0),
        _figure(run, "fidelity_quality", "mean of the two fidelity scores",
                "identical table", 1.0),
        _figure(run, "privacy_exact_copy_share", "share of synthetic rows that copy a "
                "training row", "privacy_holdout_exact_copy_share"),
        _figure(run, "privacy_dcr_synthetic_median", "median distance of a synthetic row to "
                "its closest training row", "privacy_dcr_holdout_median"),
    ]  # fmt: skip
    example: dict[str, Any] = {"num_rows": 3, "seed": 1}
    for attribute in spec.sensitive_attributes:
        column = spec.columns.get(attribute)
        if column is not None and column.allowed:
            example["conditions"] = {attribute: column.allowed[0]}
            break
    limitations = [
        "Rare categories and the tails of continuous columns are learned from few rows: "
        "generated rows represent them less faithfully than the bulk of the table.",
        "The privacy figures compare distances to the closest training row with real "
        "holdout rows' distances; they are no formal guarantee (no differential privacy).",
    ]
    if spec.sample_rows:
        limitations.append(f"Trained on a sample of {spec.sample_rows:,} rows.")
    return ModelCardFacts(
        model=f"A {family} synthesizer of the `{spec.name}` table{conditioned}: it generates "
        "rows with the training table's columns and category values.",
        intended_use=[
            f"Synthetic rows of `{spec.name}` for development, testing and analysis where "
            "the real rows may not be shared.",
            "Rows for chosen groups (`conditions`) to study or rebalance groups, within the "
            "gates' verdicts below.",
        ],
        out_of_scope=[
            "Decisions about a person: a synthetic row describes nobody.",
            "Publishing the rows as anonymised data without a privacy review.",
            "Columns, categories or value ranges the training table does not hold.",
        ],
        training_data=training,
        sensitive_attributes=list(spec.sensitive_attributes),
        figures=[f for f in figures if f is not None],
        limitations=limitations,
        example_request=example,
    )
