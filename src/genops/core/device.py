"""Device selection for the torch synthesizers. torch is imported when a function needs it,
so a step that only imports this module (for its thread setting) starts without it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["THREADS_ENV_VAR", "apply_thread_env", "is_int_like", "resolve_device"]

#: Torch intra-op threads for fitting (and the model server); unset leaves torch's default.
THREADS_ENV_VAR = "GENOPS_TORCH_THREADS"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when available, else CPU; anything else is parsed by torch.

    Raises:
        ValueError: the string is not a device, or CUDA was asked for but is not available.
    """
    import torch

    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"Unknown device {device!r}: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {str(resolved)!r} requested but CUDA is not available.")
    return resolved


def apply_thread_env() -> None:
    """``torch.set_num_threads($GENOPS_TORCH_THREADS)`` when the variable is set."""
    value = os.environ.get(THREADS_ENV_VAR)
    if not value:
        return
    try:
        threads = int(value)
    except ValueError as exc:
        raise ValueError(f"{THREADS_ENV_VAR} must be an integer, got {value!r}") from exc
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def is_int_like(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
