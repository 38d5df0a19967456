"""The ``text-lm`` run config: the corpus and its checks, the tokenizer, the language model and
its training budget, evaluation (perplexity, generations, memorisation, int8 quantisation),
the gender-association gates, and the shared sections with the text defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from genops.core.blessing import BlessingSpec
from genops.core.config import Strict, check_search_space, lay_section_defaults
from genops.core.specs import DeploySpec
from genops.core.tuning.space import TuningSpec
from genops.workloads.text.corpus import CorpusChecksSpec, TextSourceSpec
from genops.workloads.text.gender import TextBiasSpec

PIPELINE_NAME = "text-lm"


class TokenizerSpec(Strict):
    """A byte-level BPE tokenizer trained on the training split."""

    vocab_size: int = Field(8000, ge=300, le=100_000)
    min_frequency: int = Field(2, ge=1)


class LanguageModelSpec(Strict):
    """A GPT-2-style decoder trained from scratch, or a local checkpoint fine-tuned."""

    pretrained: str | None = Field(
        None,
        description="A checkpoint folder (save_pretrained), local or s3://, to fine-tune; "
        "None trains from scratch with the sizes below.",
    )
    lora: bool = Field(False, description="Fine-tune LoRA adapters (peft) instead of all weights.")
    lora_r: int = Field(8, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    context: int = Field(128, ge=16, le=4096)
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(256, ge=16)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(200, ge=0)
    batch_size: int = Field(32, gt=0)
    max_steps: int = Field(4000, gt=0)
    time_budget_s: float | None = Field(
        600.0, gt=0, description="Stop training after this many seconds (None: max_steps)."
    )
    eval_every: int = Field(200, gt=0)
    eval_batches: int = Field(16, gt=0)
    patience: int = Field(3, gt=0, description="Early stopping: evaluations without gain.")
    sample_prompts: list[str] = Field(
        default_factory=lambda: ["The", "The nurse said that", " = Valkyria Chronicles = "]
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = Field(
        True,
        description="bf16 autocast in training where the device computes bf16 natively "
        "(CUDA, or a CPU with AVX512-BF16/AMX); elsewhere fp32.",
    )

    @model_validator(mode="after")
    def _check(self) -> LanguageModelSpec:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.lora and self.pretrained is None:
            raise ValueError("lora fine-tunes a checkpoint: set model.pretrained")
        return self


class TextEvaluationSpec(Strict):
    """How the model is scored after training."""

    test_max_lines: int | None = Field(
        None, gt=0, description="Score the first N lines of the test split (None: all of it)."
    )
    samples: int = Field(40, gt=0, description="Unconditional generations for the checks.")
    max_new_tokens: int = Field(96, gt=0)
    temperature: float = Field(1.0, ge=0.0)
    top_k: int = Field(50, ge=0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    memorisation_span: int = Field(50, ge=8, description="Tokens a verbatim span must have.")
    quantize: bool = Field(True, description="Also score a dynamic int8 copy of the model.")
    max_quantized_increase: float = Field(
        0.02, ge=0.0, description="Release the int8 model when its perplexity rises at most this."
    )
    seed: int = 0


class TextRegistrySpec(Strict):
    model_name: str | None = Field(None, description="Default: '<dataset>-lm'.")
    experiment: str | None = Field(None, description="Default: 'text-lm-<dataset>'.")


#: What genops.workloads.text.steps.evaluate logs: what blessing may name.
TEXT_METRICS = frozenset(
    {
        "word_perplexity",
        "token_perplexity",
        "bits_per_byte",
        "word_perplexity_int8",
        "quantized_perplexity_increase",
        "distinct_1",
        "distinct_2",
        "repetition_rate",
        "distinct_2_holdout",
        "repetition_rate_holdout",
        "memorised_share",
        "memorised_share_holdout",
        "neg_word_perplexity",
    }
)

TEXT_BLESSING_DEFAULTS: dict[str, Any] = {
    "min_metrics": {},
    "max_metrics": {"word_perplexity": 200.0, "memorised_share": 0.05},
    # higher is better: -perplexity may not fall below the champion's by more than the tolerance
    "regression_metrics": ["neg_word_perplexity"],
    "regression_tolerance": 5.0,
}
TEXT_TUNING_DEFAULTS: dict[str, Any] = {
    "search_space": {
        "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-3, "log": True},
        "n_embd": {"type": "categorical", "choices": [128, 256]},
        "n_layer": {"type": "int", "low": 2, "high": 4},
        "dropout": {"type": "float", "low": 0.0, "high": 0.2},
        "warmup_steps": {"type": "int", "low": 50, "high": 400},
    }
}


def _text_blessing() -> BlessingSpec:
    return BlessingSpec.model_validate(TEXT_BLESSING_DEFAULTS)


def _text_tuning() -> TuningSpec:
    return TuningSpec.model_validate(TEXT_TUNING_DEFAULTS)


class TextRunConfig(Strict):
    """A whole run of the text-lm pipeline."""

    pipeline: Literal["text-lm"] = "text-lm"
    dataset: TextSourceSpec
    checks: CorpusChecksSpec = Field(default_factory=lambda: CorpusChecksSpec())
    tokenizer: TokenizerSpec = Field(default_factory=lambda: TokenizerSpec())
    model: LanguageModelSpec = Field(default_factory=lambda: LanguageModelSpec())
    tuning: TuningSpec = Field(default_factory=_text_tuning)
    evaluation: TextEvaluationSpec = Field(default_factory=lambda: TextEvaluationSpec())
    bias: TextBiasSpec = Field(default_factory=lambda: TextBiasSpec())
    registry: TextRegistrySpec = Field(default_factory=lambda: TextRegistrySpec())
    blessing: BlessingSpec = Field(default_factory=_text_blessing)
    deploy: DeploySpec = Field(default_factory=lambda: DeploySpec())

    @model_validator(mode="before")
    @classmethod
    def _text_defaults(cls, data: Any) -> Any:
        data = lay_section_defaults(
            data, {"blessing": TEXT_BLESSING_DEFAULTS, "tuning": TEXT_TUNING_DEFAULTS}
        )
        if not isinstance(data, dict):
            return data
        # the released model is the int8 one when evaluation.quantize: bless it only when its
        # perplexity rises at most evaluation.max_quantized_increase
        ev = data.get("evaluation") or {}
        if isinstance(ev, dict) and ev.get("quantize", True):
            blessing = dict(data.get("blessing") or TEXT_BLESSING_DEFAULTS)
            limits = dict(blessing.get("max_metrics") or {})
            limits.setdefault(
                "quantized_perplexity_increase", ev.get("max_quantized_increase", 0.02)
            )
            data = {**data, "blessing": {**blessing, "max_metrics": limits}}
        return data

    @model_validator(mode="after")
    def _check_combinations(self) -> TextRunConfig:
        b = self.blessing
        for name in [*b.min_metrics, *b.max_metrics, *b.regression_metrics]:
            if name not in TEXT_METRICS:
                raise ValueError(
                    f"blessing: '{name}' is not a text metric; known: {sorted(TEXT_METRICS)}"
                )
        check_search_space(self.tuning, set(LanguageModelSpec.model_fields))
        return self

    @property
    def pipeline_name(self) -> str:
        return PIPELINE_NAME

    @property
    def model_name(self) -> str:
        return self.registry.model_name or f"{self.dataset.name}-lm"

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or f"{PIPELINE_NAME}-{self.dataset.name}"
