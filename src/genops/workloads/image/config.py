"""Typed configuration of the ``image-diffusion`` pipeline, read from YAML.

A file with ``pipeline: image-diffusion`` at the top describes an image run: the data set
(scikit-learn's bundled digits, a folder of PNGs in class sub-folders, or an ``.npz``, local or
``s3://``), the diffusion model, evaluation, representation checks, tuning, registry, blessing
and deployment. The last four sections have the same schema as the tabular pipeline's, and the
same steps act on them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from genops.core.blessing import BlessingSpec
from genops.core.config import Strict as _Strict
from genops.core.config import check_search_space, lay_section_defaults
from genops.core.specs import DeploySpec
from genops.core.tuning.space import TuningSpec

PIPELINE_NAME = "image-diffusion"

DIGITS_SOURCE = "sklearn:digits"


class ImageSplitSpec(_Strict):
    """Train / validation / holdout split, stratified on the class."""

    validation: float = Field(0.1, gt=0.0, lt=0.5)
    holdout: float = Field(0.25, gt=0.0, lt=0.5)
    seed: int = 42


class ImageDatasetSpec(_Strict):
    """What the images are: everything a user writes to bring an image data set."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Used in model names.")
    source: str = Field(
        DIGITS_SOURCE,
        description="'sklearn:digits', a folder of PNGs in class sub-folders, or an .npz "
        "with 'images' and 'labels' arrays; local (relative to the spec) or s3://",
    )
    format: Literal["auto", "sklearn", "folder", "npz"] = "auto"
    image_size: int = Field(8, gt=1, description="Height and width in pixels (square).")
    channels: Literal[1, 3] = 1
    label_names: list[str] | None = Field(
        None,
        description="Class names in label order. Folder: the sub-folder names (default: all "
        "sub-folders, sorted); npz with integer labels: the name of label i.",
    )
    value_range: tuple[float, float] = Field(
        (0.0, 255.0), description="Range of the raw pixel values; mapped to [-1, 1]."
    )
    min_images_per_class: int = Field(
        10,
        gt=0,
        description="A class with fewer images (after sample_per_class) is an error; the "
        "data check holds the training split to its share of this number.",
    )
    sample_per_class: int | None = Field(
        None, gt=0, description="Keep a seeded sample of at most this many images per class."
    )
    split: ImageSplitSpec = Field(default_factory=lambda: ImageSplitSpec())

    @model_validator(mode="after")
    def _check(self) -> ImageDatasetSpec:
        low, high = self.value_range
        if not low < high:
            raise ValueError(f"value_range: low ({low}) must be below high ({high})")
        if self.label_names is not None and len(set(self.label_names)) != len(self.label_names):
            raise ValueError("label_names: names must be unique")
        if self.label_names is not None and len(self.label_names) < 2:
            raise ValueError("label_names: at least two classes are needed")
        if self.sample_per_class is not None and self.sample_per_class < self.min_images_per_class:
            raise ValueError(
                f"sample_per_class ({self.sample_per_class}) is below min_images_per_class "
                f"({self.min_images_per_class}): every class would fail"
            )
        return self

    @property
    def train_share(self) -> float:
        return 1.0 - self.split.validation - self.split.holdout

    @property
    def resolved_format(self) -> Literal["sklearn", "folder", "npz"]:
        if self.format != "auto":
            return self.format
        if self.source.startswith("sklearn:"):
            return "sklearn"
        if self.source.lower().endswith(".npz"):
            return "npz"
        return "folder"


class DiffusionSpec(_Strict):
    """The class-conditional DDPM and its sampler."""

    family: Literal["ddpm"] = "ddpm"
    epochs: int = Field(300, gt=0)
    batch_size: int = Field(128, gt=1)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    base_channels: int = Field(32, gt=0)
    channel_mults: list[int] = Field(default_factory=lambda: [1, 2])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    timesteps: int = Field(1000, gt=1, description="Diffusion steps T of the forward process.")
    schedule: Literal["cosine", "linear"] = "cosine"
    cond_drop_prob: float = Field(
        0.1, ge=0.0, lt=1.0, description="Label dropout for classifier-free guidance."
    )
    guidance_scale: float = Field(
        2.0, ge=0.0, description="Default guidance w: eps = (1+w) eps(x,y) - w eps(x)."
    )
    sample_steps: int = Field(50, gt=0, description="Default DDIM steps at sampling.")
    eta: float = Field(0.0, ge=0.0, le=1.0, description="DDIM eta (0: deterministic).")
    ema_decay: float = Field(0.995, ge=0.0, lt=1.0, description="0 turns EMA weights off.")
    grad_clip: float = Field(1.0, gt=0)
    sample_every: int = Field(50, gt=0, description="Epochs between sample grids logged to MLflow.")
    amp: bool = Field(True, description="bfloat16 autocast, only when CUDA is used.")
    compile: bool = Field(False, description="torch.compile the U-Net, only when CUDA is used.")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> DiffusionSpec:
        if not self.channel_mults or any(m <= 0 for m in self.channel_mults):
            raise ValueError("channel_mults: a non-empty list of positive integers")
        if self.sample_steps > self.timesteps:
            raise ValueError(
                f"sample_steps ({self.sample_steps}) must not exceed timesteps ({self.timesteps})"
            )
        return self


class ImageEvaluationSpec(_Strict):
    """How generated images are scored (see genops.workloads.image.metrics)."""

    samples_per_class: int = Field(
        200, gt=0, description="Conditional samples per class for CAS and Fréchet distance."
    )
    unconditional_samples: int = Field(
        1000, gt=0, description="Guidance-free samples whose class mix the domain classifier reads."
    )
    steps: int | None = Field(None, gt=0, description="DDIM steps; default: model.sample_steps.")
    guidance_scale: float | None = Field(None, ge=0.0, description="Default: the model's.")
    seed: int = 0


class RepresentationSpec(_Strict):
    """Representation checks: classes are the groups."""

    policy: Literal["block", "warn"] = Field(
        "warn", description="What a failed data check does: block stops before training."
    )
    min_class_share_ratio: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Data: a class below this fraction of the uniform share fails. "
        "Generated: a class below this fraction of its real share has collapsed (a class "
        "never generated always fails). None: reported, not gated.",
    )
    max_imbalance_ratio: float | None = Field(
        None, ge=1.0, description="Data: largest/smallest class count; None reports only."
    )
    max_tvd: float | None = Field(
        None, ge=0.0, le=1.0, description="Generated vs real class distribution; None reports."
    )
    max_fairness_discrepancy: float | None = Field(
        None, ge=0.0, description="L2 distance of the class distributions; None reports."
    )
    min_conditional_accuracy: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Per class: share of conditional samples the domain classifier reads "
        "as the requested class; None reports only.",
    )


class ImageRegistrySpec(_Strict):
    model_name: str | None = Field(None, description="Default: '<dataset>-diffusion'.")
    experiment: str | None = Field(None, description="Default: 'image-diffusion-<dataset>'.")


#: What genops.workloads.image.steps.evaluate logs (besides cas_class_*): what blessing may name.
IMAGE_METRICS = frozenset(
    {
        "cas",
        "cas_real_baseline",
        "cas_ratio",
        "domain_accuracy_holdout",
        "domain_accuracy_conditional",
        "frechet_distance",
        "frechet_distance_unconditional",
        "frechet_distance_baseline",
        "representation_tvd",
        "fairness_discrepancy",
        "min_relative_share",
        "sample_images_per_second",
    }
)

#: Image defaults of the shared sections; a config's own keys are laid over them (a partial
#: ``blessing:`` or ``tuning:`` keeps the image defaults, not the tabular ones).
IMAGE_BLESSING_DEFAULTS: dict[str, Any] = {
    "min_metrics": {"cas": 0.90, "domain_accuracy_conditional": 0.90},
    "max_metrics": {},
    "regression_metrics": ["cas"],
    "require_data_bias_pass": True,
}
IMAGE_TUNING_DEFAULTS: dict[str, Any] = {
    "search_space": {
        "learning_rate": {"type": "float", "low": 5e-4, "high": 4e-3, "log": True},
        "base_channels": {"type": "categorical", "choices": [32, 48]},
    }
}


def _image_blessing() -> BlessingSpec:
    return BlessingSpec.model_validate(IMAGE_BLESSING_DEFAULTS)


def _image_tuning() -> TuningSpec:
    return TuningSpec.model_validate(IMAGE_TUNING_DEFAULTS)


class ImageRunConfig(_Strict):
    """A whole run of the image-diffusion pipeline."""

    pipeline: Literal["image-diffusion"] = "image-diffusion"
    dataset: ImageDatasetSpec
    model: DiffusionSpec = Field(default_factory=lambda: DiffusionSpec())
    tuning: TuningSpec = Field(default_factory=_image_tuning)
    evaluation: ImageEvaluationSpec = Field(default_factory=lambda: ImageEvaluationSpec())
    bias: RepresentationSpec = Field(default_factory=lambda: RepresentationSpec())
    registry: ImageRegistrySpec = Field(default_factory=lambda: ImageRegistrySpec())
    blessing: BlessingSpec = Field(default_factory=_image_blessing)
    # the same schema as the tabular pipeline's deploy section
    deploy: DeploySpec = Field(default_factory=lambda: DeploySpec())

    @model_validator(mode="before")
    @classmethod
    def _image_defaults(cls, data: Any) -> Any:
        return lay_section_defaults(
            data, {"blessing": IMAGE_BLESSING_DEFAULTS, "tuning": IMAGE_TUNING_DEFAULTS}
        )

    @model_validator(mode="after")
    def _check_combinations(self) -> ImageRunConfig:
        b = self.blessing
        for name in [*b.min_metrics, *b.max_metrics, *b.regression_metrics]:
            if name not in IMAGE_METRICS and not name.startswith("cas_class_"):
                raise ValueError(
                    f"blessing: '{name}' is not an image metric; known: {sorted(IMAGE_METRICS)}"
                )
        steps = self.evaluation.steps
        if steps is not None and steps > self.model.timesteps:
            raise ValueError(
                f"evaluation.steps ({steps}) must not exceed model.timesteps "
                f"({self.model.timesteps})"
            )
        check_search_space(self.tuning, set(DiffusionSpec.model_fields))
        return self

    @property
    def pipeline_name(self) -> str:
        return PIPELINE_NAME

    @property
    def model_name(self) -> str:
        return self.registry.model_name or f"{self.dataset.name}-diffusion"

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or f"{PIPELINE_NAME}-{self.dataset.name}"
