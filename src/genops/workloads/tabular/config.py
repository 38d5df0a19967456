"""The ``tabular-synth`` run config: the dataset spec (files or ``s3://`` URIs, columns,
sensitive attributes, cleaning rules), the synthesizer and its evaluation, and the shared
sections (tuning, bias, registry, blessing, deploy) with the tabular defaults.

Validation happens here, before any step runs: a bad spec fails with the field's path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from genops.core.blessing import BlessingSpec
from genops.core.config import Strict as _Strict
from genops.core.config import check_search_space, lay_section_defaults
from genops.core.specs import DeploySpec
from genops.core.tuning.space import TuningSpec
from genops.workloads.tabular.bias.config import BiasConfig

PIPELINE_NAME = "tabular-synth"

#: What a first model is blessed on. Relative to the data's own baselines by default:
#: utility as the ratio of TSTR to TRTR AUC (a data set whose real-trained classifier reaches
#: AUC 0.62 is judged on how much of that the synthetic rows keep, not on an absolute 0.75);
#: exact copies and distance to closest record against the real holdout's own figures (on a
#: table of few discrete values real held-out rows repeat training rows too). Absolute floors
#: stay available under min_metrics / max_metrics; the column-shape and quality floors are
#: absolute (they do not depend on the data's signal).
TABULAR_BLESSING_DEFAULTS: dict[str, Any] = {
    "min_metrics": {
        "fidelity_column_shapes": 0.80,
        "fidelity_quality": 0.75,
    },
    "max_metrics": {},
    "relative": {
        # TSTR AUC >= 0.9 x TRTR AUC: the synthetic rows keep nine tenths of the real rows'
        # utility for the target
        "tstr_trtr_ratio": {
            "metric": "utility_tstr_auc",
            "baseline": "utility_trtr_auc",
            "comparison": ">=",
            "factor": 0.9,
        },
        # synthetic rows that copy a training row: at most the share of real holdout rows that
        # do (x 1.1, + 2 points for the sampling noise of both shares)
        "exact_copies_vs_holdout": {
            "metric": "privacy_exact_copy_share",
            "baseline": "privacy_holdout_exact_copy_share",
            "comparison": "<=",
            "factor": 1.1,
            "slack": 0.02,
        },
        # median distance to the closest training row: at least 0.8 x a real holdout row's
        "dcr_vs_holdout": {
            "metric": "privacy_dcr_synthetic_median",
            "baseline": "privacy_dcr_holdout_median",
            "comparison": ">=",
            "factor": 0.8,
        },
    },
    "regression_metrics": ["fidelity_quality", "utility_tstr_auc"],
}

#: What the evaluate step logs (genops.workloads.tabular.evaluation.evaluate): what blessing
#: may name.
TABULAR_METRICS: frozenset[str] = frozenset(
    {
        "fidelity_column_shapes",
        "fidelity_pair_trends",
        "fidelity_quality",
        "utility_tstr_auc",
        "utility_tstr_f1",
        "utility_trtr_auc",
        "utility_trtr_f1",
        "utility_auc_ratio",
        "privacy_dcr_synthetic_median",
        "privacy_dcr_holdout_median",
        "privacy_dcr_ratio",
        "privacy_exact_copy_share",
        "privacy_holdout_exact_copy_share",
    }
)


def _lay_blessing_defaults(data: Any) -> Any:
    """The tabular blessing defaults under a partial ``blessing:`` section. ``relative`` is
    merged per check: a check a config names is laid over the default of the same name (so
    ``relative: {tstr_trtr_ratio: {factor: 0.8}}`` changes only the factor), the other
    defaults stay, and ``null`` turns one off."""
    data = lay_section_defaults(data, {"blessing": TABULAR_BLESSING_DEFAULTS})
    if not isinstance(data, dict) or not isinstance(data.get("blessing"), dict):
        return data
    given = data["blessing"].get("relative")
    if not isinstance(given, dict) or given is TABULAR_BLESSING_DEFAULTS["relative"]:
        return data
    defaults: dict[str, Any] = TABULAR_BLESSING_DEFAULTS["relative"]
    merged: dict[str, Any] = dict(defaults)
    for name, entry in given.items():
        if isinstance(entry, dict) and name in defaults:
            merged[name] = {**defaults[name], **entry}
        else:
            merged[name] = entry
    return {**data, "blessing": {**data["blessing"], "relative": merged}}


def _tabular_blessing() -> BlessingSpec:
    return BlessingSpec.model_validate(TABULAR_BLESSING_DEFAULTS)


class ColumnSpec(_Strict):
    """One column of the data set and the rules its values must follow."""

    type: Literal["continuous", "categorical"]
    min: float | None = Field(None, description="Smallest allowed value (continuous only).")
    max: float | None = Field(None, description="Largest allowed value (continuous only).")
    allowed: list[str] | None = Field(
        None, description="Allowed categories (categorical only); None accepts any value."
    )
    max_null_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest share of missing values tolerated in a file."
    )

    @model_validator(mode="after")
    def _check_kind(self) -> ColumnSpec:
        if self.type == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError("min/max are only valid for continuous columns")
        if self.type == "continuous" and self.allowed is not None:
            raise ValueError("allowed is only valid for categorical columns")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class SplitSpec(_Strict):
    """Train / validation / holdout split, stratified on the target."""

    validation: float = Field(0.1, gt=0.0, lt=0.5)
    holdout: float = Field(0.2, gt=0.0, lt=0.5)
    seed: int = 42


class SpecResolution(_Strict):
    """How the spec's columns were resolved against the data, written by the run (the CLI
    and the pipeline's start step): what was inferred, and what was left out and why. A user
    does not write it; a spec that carries it is not inferred again."""

    inferred: dict[str, str] = Field(
        default_factory=dict, description="Column -> what was inferred from the data."
    )
    excluded: dict[str, str] = Field(
        default_factory=dict, description="Column in the data -> why it is not used."
    )


class DatasetSpec(_Strict):
    """What the data is and how to clean it: everything a user writes to bring a data set."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Used in model names.")
    sources: list[str] = Field(
        min_length=1, description="CSV/Parquet files: local paths (relative to the spec) or s3://"
    )
    format: Literal["auto", "csv", "parquet"] = "auto"
    target: str
    positive_label: str
    sensitive_attributes: list[str] = Field(default_factory=list)
    columns_mode: Literal["infer", "listed"] = Field(
        "infer",
        description="infer: columns not listed are inferred from the data (identifiers and "
        "free text left out, with the reason); listed: only the listed columns are used.",
    )
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    exclude_columns: list[str] = Field(
        default_factory=list, description="Columns of the data never to use (infer mode)."
    )
    missing_markers: list[str] = Field(
        default_factory=lambda: ["?", ""],
        description="Cell values read as missing (default: '?' and an empty cell).",
    )
    missing_strategy: Literal["drop_rows", "category"] = "drop_rows"
    value_map: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per column, values to rewrite before validation (e.g. '>50K.' -> '>50K').",
    )
    sample_rows: int | None = Field(
        None, gt=0, description="Use a seeded random sample of this many rows (fast runs)."
    )
    split: SplitSpec = Field(default_factory=lambda: SplitSpec())
    resolution: SpecResolution | None = Field(
        None, description="Filled in by the run (what was inferred or left out); do not write."
    )

    @property
    def complete(self) -> bool:
        """Whether ``columns`` is the final column set (listed mode, or resolved)."""
        return self.columns_mode == "listed" or self.resolution is not None

    @model_validator(mode="after")
    def _check_columns(self) -> DatasetSpec:
        if self.columns_mode == "listed" and not self.columns:
            raise ValueError("columns_mode 'listed' needs the columns listed under columns")
        roles = [("target", self.target)] + [
            ("sensitive attribute", c) for c in self.sensitive_attributes
        ]
        for role, col in roles:
            if col not in self.columns:
                if self.complete:
                    raise ValueError(f"{role} '{col}' is not declared under columns")
                continue  # inferred from the data when the run resolves the spec
            if self.columns[col].type != "categorical":
                raise ValueError(f"{role} '{col}' must be a categorical column")
        for col in self.exclude_columns:
            if col in self.columns:
                raise ValueError(f"column '{col}' is both declared and under exclude_columns")
            if col == self.target or col in self.sensitive_attributes:
                raise ValueError(f"column '{col}' is under exclude_columns but the spec uses it")
        target = self.columns.get(self.target)
        allowed = target.allowed if target is not None else None
        if allowed is not None and self.positive_label not in allowed:
            raise ValueError(
                f"positive_label '{self.positive_label}' is not in the allowed values of "
                f"'{self.target}': {allowed}"
            )
        if self.complete:
            for col in self.value_map:
                if col not in self.columns:
                    raise ValueError(f"value_map names column '{col}', which is not declared")
        return self

    @property
    def required_columns(self) -> list[str]:
        """Every column the spec names: each source must hold all of them."""
        named = [*self.columns, self.target, *self.sensitive_attributes, *self.value_map]
        return list(dict.fromkeys(named))

    @property
    def categorical_columns(self) -> list[str]:
        return [c for c, s in self.columns.items() if s.type == "categorical"]

    @property
    def continuous_columns(self) -> list[str]:
        return [c for c, s in self.columns.items() if s.type == "continuous"]


class ModelSpec(_Strict):
    """Synthesizer family and its hyper-parameters (family-specific keys are ignored by the
    other families)."""

    family: Literal["tvae", "ctgan", "diffusion"] = "tvae"
    epochs: int = Field(100, gt=0)
    batch_size: int = Field(500, gt=1)
    embedding_dim: int = Field(128, gt=0)
    # TVAE
    compress_dims: list[int] = Field(default_factory=lambda: [128, 128])
    decompress_dims: list[int] = Field(default_factory=lambda: [128, 128])
    learning_rate: float = Field(1e-3, gt=0)
    l2scale: float = Field(1e-5, ge=0)
    loss_factor: float = Field(2.0, gt=0)
    # CTGAN
    generator_dims: list[int] = Field(default_factory=lambda: [256, 256])
    discriminator_dims: list[int] = Field(default_factory=lambda: [256, 256])
    generator_lr: float = Field(2e-4, gt=0)
    discriminator_lr: float = Field(2e-4, gt=0)
    discriminator_steps: int = Field(1, gt=0)
    pac: int = Field(10, gt=0)
    # Diffusion (TabDDPM-style; epochs, batch_size and learning_rate are shared)
    hidden_dims: list[int] = Field(default_factory=lambda: [512, 512, 512])
    dropout: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    num_timesteps: int = Field(1000, gt=0)
    sample_steps: int = Field(50, gt=0)
    eta: float = Field(1.0, ge=0, le=1)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    conditional: bool = Field(
        True, description="Condition the synthesizer on the sensitive attributes and the target."
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _check_pac(self) -> ModelSpec:
        if self.family == "ctgan" and self.batch_size % self.pac:
            raise ValueError(
                f"ctgan: batch_size ({self.batch_size}) must be a multiple of pac ({self.pac})"
            )
        if self.family == "diffusion" and self.sample_steps > self.num_timesteps:
            raise ValueError(
                f"diffusion: sample_steps ({self.sample_steps}) must be <= num_timesteps "
                f"({self.num_timesteps})"
            )
        return self


class EvaluationSpec(_Strict):
    """How the synthetic data is scored."""

    synthetic_rows: int | None = Field(
        None, gt=0, description="Rows to generate for evaluation; default = training rows."
    )
    privacy_sample: int = Field(2000, gt=0, description="Rows used for distance to closest record.")
    seed: int = 0


class RegistrySpec(_Strict):
    """Where the model goes in the MLflow Model Registry."""

    model_name: str | None = Field(None, description="Default: '<dataset>-synthesizer'.")
    experiment: str | None = Field(None, description="Default: 'tabular-synth-<dataset>'.")


class RunConfig(_Strict):
    """A whole run of the tabular-synth pipeline."""

    pipeline: Literal["tabular-synth"] = "tabular-synth"
    dataset: DatasetSpec
    model: ModelSpec = Field(default_factory=lambda: ModelSpec())
    tuning: TuningSpec = Field(default_factory=lambda: TuningSpec())
    evaluation: EvaluationSpec = Field(default_factory=lambda: EvaluationSpec())
    bias: BiasConfig = Field(default_factory=BiasConfig)
    registry: RegistrySpec = Field(default_factory=lambda: RegistrySpec())
    blessing: BlessingSpec = Field(default_factory=_tabular_blessing)
    deploy: DeploySpec = Field(default_factory=lambda: DeploySpec())

    @model_validator(mode="before")
    @classmethod
    def _tabular_defaults(cls, data: Any) -> Any:
        return _lay_blessing_defaults(data)

    @model_validator(mode="after")
    def _check_combinations(self) -> RunConfig:
        if self.bias.policy == "mitigate" and not self.model.conditional:
            raise ValueError(
                "bias.policy 'mitigate' samples to a target distribution: set model.conditional"
            )
        check_search_space(self.tuning, set(ModelSpec.model_fields))
        for name in sorted(self.blessing.metric_names() - TABULAR_METRICS):
            raise ValueError(
                f"blessing: '{name}' is not a tabular metric; known: {sorted(TABULAR_METRICS)}"
            )
        return self

    @property
    def pipeline_name(self) -> str:
        return PIPELINE_NAME

    @property
    def model_name(self) -> str:
        return self.registry.model_name or f"{self.dataset.name}-synthesizer"

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or f"tabular-synth-{self.dataset.name}"
