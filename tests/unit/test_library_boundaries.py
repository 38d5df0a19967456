"""The library never imports kfp: components and pipelines do."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import genops


def test_no_genops_module_imports_kfp() -> None:
    modules = [m.name for m in pkgutil.walk_packages(genops.__path__, "genops.")]
    assert "genops.steps.tabular" in modules and "genops.models.tvae" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('kfp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version_is_package_version_plus_commit() -> None:
    from genops.version import image, pipeline_version

    version = pipeline_version()
    assert version.startswith(f"{genops.__version__}-")
    assert image("component").endswith(f"/genops/component:{version}")
