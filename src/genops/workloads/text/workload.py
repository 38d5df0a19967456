"""The ``text-lm`` workload: a transformer language model with corpus checks, perplexity,
memorisation and gender-association gates, and int8 serving.

Registered by the ``genops.workloads`` entry point in ``pyproject.toml``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genops.core.workload import ServingAdapter, SmokeResult, TrialObjective, Workload
from genops.workloads.text.config import PIPELINE_NAME, TextRunConfig


class TextWorkload(Workload):
    name = PIPELINE_NAME
    config_class = TextRunConfig
    headline_metrics = (
        "synthetic_bias_passed",
        "word_perplexity",
        "word_perplexity_int8",
        "bits_per_byte",
        "distinct_2",
        "distinct_2_holdout",
        "memorised_share",
        "memorised_share_holdout",
    )

    def local_sources(self, config: Any) -> list[Any]:
        """The corpus, and a local checkpoint to fine-tune (relative: to the working
        directory, as the train step reads it)."""
        from pathlib import Path

        from genops.core.workload import LocalSource, is_local_path

        found = super().local_sources(config)
        if is_local_path(config.model.pretrained):
            found.append(LocalSource(("model", "pretrained"), str(Path(config.model.pretrained))))
        return found

    def model_card_facts(self, config: Any, run: Any) -> Any:
        from genops.workloads.text.card import card_facts

        return card_facts(config, run)

    def tuning_objective(
        self, config: Any, train_path: str, validation_path: str, budget: dict[str, Any]
    ) -> tuple[TrialObjective, Callable[[dict[str, Any]], Any]]:
        from genops.workloads.text.steps import tuning_objective

        return tuning_objective(config, train_path, validation_path, budget)

    def smoke_test(self, config: Any, endpoint: str) -> SmokeResult:
        from genops.workloads.text.serving import smoke_test, smoke_test_openai

        if config.deploy.target == "kserve":
            return smoke_test_openai(endpoint, config.model_name)
        return smoke_test(endpoint)

    def kserve_model(self, config: Any, storage_uri: str) -> dict[str, Any]:
        """KServe's Hugging Face runtime on the model folder (config, safetensors and the
        tokenizer in Hugging Face's layout), vLLM on GPU nodes, scaled on concurrency."""
        gpu = config.deploy.kserve.gpu
        return {
            "storage_uri": f"{storage_uri.rstrip('/')}/artifacts/lm/model",
            "model_format": "huggingface",
            "runtime": "genops-huggingfaceserver-gpu" if gpu else "genops-huggingfaceserver",
            "protocol_version": None,
            "args": [
                f"--model_name={config.model_name}",
                "--backend=vllm" if gpu else "--backend=huggingface",
                "--task=text_generation",
                f"--max_model_len={config.model.context}",
                *(["--dtype=bfloat16"] if gpu else ["--dtype=float32"]),
            ],
            "scale_metric": "concurrency",
            "scale_target": 4,
        }

    def serving_adapter(self, python_model: Any, pyfunc: Any) -> ServingAdapter:
        from genops.workloads.text.serving import TextAdapter

        return TextAdapter(python_model)


WORKLOAD = TextWorkload()
