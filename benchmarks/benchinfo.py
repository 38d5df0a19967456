"""What every benchmark records about the machine it ran on (imported by the scripts beside
it: `python benchmarks/bench_x.py` puts this folder on the import path)."""

from __future__ import annotations

import os
import platform


def machine(*extra: str) -> str:
    """``x86_64, 2 CPUs, Python 3.11.7`` plus any extra parts (library versions)."""
    parts = [platform.machine(), f"{os.cpu_count()} CPUs", f"Python {platform.python_version()}"]
    return ", ".join([*parts, *extra])


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded: how quiet the machine was."""
    return [round(x, 2) for x in os.getloadavg()]
