"""Tabular synthesizers: the TVAE, CTGAN and diffusion families, their shared base class and
interface, and their data encoding."""

from genops.core.device import resolve_device
from genops.workloads.tabular.models.base import BaseSynthesizer, EpochCallback, Synthesizer
from genops.workloads.tabular.models.ctgan import CTGANParams, CTGANSynthesizer
from genops.workloads.tabular.models.diffusion import DiffusionParams, DiffusionSynthesizer
from genops.workloads.tabular.models.registry import (
    load_synthesizer,
    read_meta,
    register_synthesizer,
)
from genops.workloads.tabular.models.tabular_encoding import SpanInfo, TabularEncoder
from genops.workloads.tabular.models.tvae import TVAEParams, TVAESynthesizer

__all__ = [
    "BaseSynthesizer",
    "CTGANParams",
    "CTGANSynthesizer",
    "DiffusionParams",
    "DiffusionSynthesizer",
    "EpochCallback",
    "SpanInfo",
    "Synthesizer",
    "TVAEParams",
    "TVAESynthesizer",
    "TabularEncoder",
    "load_synthesizer",
    "read_meta",
    "register_synthesizer",
    "resolve_device",
]
