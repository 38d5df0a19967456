"""The pipelines this repo ships, by name: each a factory taking the compile target."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import Any

from pipelines.targets import LOCAL, Target

#: pipeline name -> "module:factory"; a factory takes a Target and returns the @dsl.pipeline.
PIPELINES: dict[str, str] = {
    "tabular-synth": "pipelines.tabular_synth:tabular_synth",
    "image-diffusion": "pipelines.image_diffusion:image_diffusion",
    "text-lm": "pipelines.text_lm:text_lm",
    # Not a training pipeline: N rows of a registered synthesizer as Parquet shards (it takes
    # a model URI, not a run config; `genops generate`).
    "tabular-generate": "pipelines.tabular_generate:tabular_generate",
}

DEFAULT_CONFIGS: dict[str, str] = {
    "tabular-synth": "pipelines/configs/adult.yaml",
    "image-diffusion": "pipelines/configs/digits.yaml",
    "text-lm": "pipelines/configs/wikitext.yaml",
}


@cache
def get_pipeline(name: str, target: Target = LOCAL) -> Callable[..., Any]:
    """The pipeline ``name`` built for ``target`` (traced once per target and process)."""
    try:
        module_name, _, factory = PIPELINES[name].partition(":")
    except KeyError:
        raise SystemExit(f"unknown pipeline '{name}'; known: {sorted(PIPELINES)}") from None
    built: Callable[..., Any] = getattr(importlib.import_module(module_name), factory)(target)
    return built
