"""Typed run configuration: the dataset spec and the pipeline settings, read from YAML.

One YAML file describes a run of the ``tabular-synth`` pipeline: which data (files or ``s3://``
URIs, columns, sensitive attributes, cleaning rules), which model, and the evaluation and
registration settings. A file may name a ``base:`` file (relative to itself) whose values it
overrides key by key, so a fast test config is a few lines on top of the real one.

Validation happens here, before any step runs: a bad spec fails with the field's path.

A file whose top-level ``pipeline`` key is ``image-diffusion`` is an image run
(:class:`genops.image.config.ImageRunConfig`); :func:`load_any_config` reads either kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from genops.bias.config import BiasConfig
from genops.evaluation.blessing import BlessingSpec
from genops.image.config import ImageRunConfig
from genops.specs import DeploySpec
from genops.tuning.space import TuningSpec


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not match the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    columns: dict[str, ColumnSpec]
    missing_markers: list[str] = Field(default_factory=lambda: ["?"])
    missing_strategy: Literal["drop_rows", "category"] = "drop_rows"
    value_map: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per column, values to rewrite before validation (e.g. '>50K.' -> '>50K').",
    )
    sample_rows: int | None = Field(
        None, gt=0, description="Use a seeded random sample of this many rows (fast runs)."
    )
    split: SplitSpec = Field(default_factory=lambda: SplitSpec())

    @model_validator(mode="after")
    def _check_columns(self) -> DatasetSpec:
        for role, col in [("target", self.target)] + [
            ("sensitive attribute", c) for c in self.sensitive_attributes
        ]:
            if col not in self.columns:
                raise ValueError(f"{role} '{col}' is not declared under columns")
            if self.columns[col].type != "categorical":
                raise ValueError(f"{role} '{col}' must be a categorical column")
        allowed = self.columns[self.target].allowed
        if allowed is not None and self.positive_label not in allowed:
            raise ValueError(
                f"positive_label '{self.positive_label}' is not in the allowed values of "
                f"'{self.target}': {allowed}"
            )
        for col in self.value_map:
            if col not in self.columns:
                raise ValueError(f"value_map names column '{col}', which is not declared")
        return self

    @property
    def categorical_columns(self) -> list[str]:
        return [c for c, s in self.columns.items() if s.type == "categorical"]

    @property
    def continuous_columns(self) -> list[str]:
        return [c for c, s in self.columns.items() if s.type == "continuous"]


class ModelSpec(_Strict):
    """Synthesizer family and its hyper-parameters (family-specific keys are ignored by the
    other family)."""

    family: Literal["tvae", "ctgan"] = "tvae"
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
    blessing: BlessingSpec = Field(default_factory=lambda: BlessingSpec())
    deploy: DeploySpec = Field(default_factory=lambda: DeploySpec())

    @model_validator(mode="after")
    def _check_combinations(self) -> RunConfig:
        if self.bias.policy == "mitigate" and not self.model.conditional:
            raise ValueError(
                "bias.policy 'mitigate' samples to a target distribution: set model.conditional"
            )
        known = set(ModelSpec.model_fields)
        for key in self.tuning.search_space:
            name = key.split(".", 1)[-1]
            if name not in known:
                raise ValueError(f"tuning.search_space: '{key}' is not a model parameter")
        for params in self.tuning.enqueue:
            for key in params:
                if key not in self.tuning.search_space:
                    # Optuna only hands back enqueued values of suggested parameters
                    raise ValueError(f"tuning.enqueue: '{key}' is not in tuning.search_space")
        return self

    @property
    def pipeline_name(self) -> str:
        return "tabular-synth"

    @property
    def model_name(self) -> str:
        return self.registry.model_name or f"{self.dataset.name}-synthesizer"

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or f"tabular-synth-{self.dataset.name}"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml_dict(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _resolve_sources(raw: dict[str, Any], spec_dir: Path) -> None:
    dataset = raw.get("dataset")
    if not isinstance(dataset, dict):
        return  # validation names the problem
    source = dataset.get("source")  # image data sets name one source
    if (
        isinstance(source, str)
        and "://" not in source
        and not source.startswith("sklearn:")
        and not Path(source).is_absolute()
    ):
        raw["dataset"]["source"] = str((spec_dir / source).resolve())
    sources = raw.get("dataset", {}).get("sources")
    if isinstance(sources, list):
        raw["dataset"]["sources"] = [
            s
            if "://" in str(s) or Path(str(s)).is_absolute()
            else str((spec_dir / str(s)).resolve())
            for s in sources
        ]


def load_raw_config(path: str | Path) -> dict[str, Any]:
    """Read a config file, apply its ``base:`` chain and make source paths absolute."""
    path = Path(path).resolve()
    raw = _read_yaml_dict(path)
    _resolve_sources(raw, path.parent)
    base = raw.pop("base", None)
    if base is not None:
        base_raw = load_raw_config(path.parent / str(base))
        raw = _deep_merge(base_raw, raw)
    return raw


def _config_error(origin: str, exc: ValidationError) -> ConfigError:
    lines = [
        f"  {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors()
    ]
    return ConfigError(f"{origin}: invalid configuration\n" + "\n".join(lines))


def parse_config(raw: dict[str, Any], origin: str = "<config>") -> RunConfig:
    """Validate a raw mapping; errors name the field's dotted path."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(origin, exc) from exc


def load_config(path: str | Path) -> RunConfig:
    """Read, merge and validate a run configuration file."""
    return parse_config(load_raw_config(path), origin=str(path))


AnyRunConfig = RunConfig | ImageRunConfig


def parse_any_config(raw: dict[str, Any], origin: str = "<config>") -> AnyRunConfig:
    """A tabular or an image run config, chosen by the top-level ``pipeline`` key."""
    pipeline = raw.get("pipeline", "tabular-synth")
    if pipeline == "tabular-synth":
        return parse_config(raw, origin)
    if pipeline != "image-diffusion":
        raise ConfigError(
            f"{origin}: invalid configuration\n  pipeline: unknown pipeline {pipeline!r}; "
            "expected 'tabular-synth' or 'image-diffusion'"
        )
    try:
        return ImageRunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(origin, exc) from exc


def load_any_config(path: str | Path) -> AnyRunConfig:
    """Read, merge and validate a tabular or image run configuration file."""
    return parse_any_config(load_raw_config(path), origin=str(path))


def load_config_for(path: str | Path, pipeline: str) -> AnyRunConfig:
    """:func:`load_any_config`, refusing a config written for another pipeline."""
    config = load_any_config(path)
    if config.pipeline_name != pipeline:
        raise ConfigError(
            f"{path} is a '{config.pipeline_name}' config (its 'pipeline' key), "
            f"not one for '{pipeline}'"
        )
    return config


def dump_config(config: BaseModel) -> str:
    """The resolved configuration as YAML (what a run actually used)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
