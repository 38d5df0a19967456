"""Load any saved synthesizer by the class name recorded in its ``meta.json``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, cast

from genops.workloads.tabular.models.base import Synthesizer

__all__ = ["load_synthesizer", "read_meta", "register_synthesizer"]

# class name -> "module:attribute"; imported lazily so new families cost nothing until used.
_REGISTRY: dict[str, str] = {
    "TVAESynthesizer": "genops.workloads.tabular.models.tvae:TVAESynthesizer",
    "CTGANSynthesizer": "genops.workloads.tabular.models.ctgan:CTGANSynthesizer",
    "DiffusionSynthesizer": "genops.workloads.tabular.models.diffusion:DiffusionSynthesizer",
}


def register_synthesizer(class_name: str, target: str) -> None:
    """Make ``load_synthesizer`` know a family: ``target`` is ``"package.module:Class"``."""
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:Class', got {target!r}")
    _REGISTRY[class_name] = target


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a saved synthesizer directory."""
    meta_file = Path(path) / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"No meta.json in {path}; is it a saved synthesizer directory?")
    meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
    return meta


def load_synthesizer(path: str | Path, device: str = "auto") -> Synthesizer:
    """Load a synthesizer saved with ``save(path)``, whatever its family."""
    class_name = read_meta(path).get("class_name")
    if class_name not in _REGISTRY:
        raise ValueError(
            f"Unknown synthesizer class {class_name!r} in {path}; known: {sorted(_REGISTRY)}"
        )
    module_name, attr = _REGISTRY[class_name].split(":", 1)
    cls = getattr(importlib.import_module(module_name), attr)
    return cast(Synthesizer, cls.load(path, device=device))
