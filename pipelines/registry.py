"""The pipelines this repo ships, by name."""

from collections.abc import Callable
from typing import Any

from pipelines.image_diffusion import image_diffusion
from pipelines.tabular_synth import tabular_synth

PIPELINES: dict[str, Callable[..., Any]] = {
    "tabular-synth": tabular_synth,
    "image-diffusion": image_diffusion,
}

DEFAULT_CONFIGS: dict[str, str] = {
    "tabular-synth": "pipelines/configs/adult.yaml",
    "image-diffusion": "pipelines/configs/digits.yaml",
}


def get_pipeline(name: str) -> Callable[..., Any]:
    try:
        return PIPELINES[name]
    except KeyError:
        raise SystemExit(f"unknown pipeline '{name}'; known: {sorted(PIPELINES)}") from None
