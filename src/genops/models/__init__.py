"""Tabular synthesizers: the TVAE and CTGAN families, their data encoding and the shared
interface."""

from genops.models.base import EpochCallback, Synthesizer
from genops.models.ctgan import CTGANParams, CTGANSynthesizer
from genops.models.device import resolve_device
from genops.models.registry import load_synthesizer, read_meta, register_synthesizer
from genops.models.transformer import DataTransformer, SpanInfo
from genops.models.tvae import TVAEParams, TVAESynthesizer

__all__ = [
    "CTGANParams",
    "CTGANSynthesizer",
    "DataTransformer",
    "EpochCallback",
    "SpanInfo",
    "Synthesizer",
    "TVAEParams",
    "TVAESynthesizer",
    "load_synthesizer",
    "read_meta",
    "register_synthesizer",
    "resolve_device",
]
