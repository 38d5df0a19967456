"""The library never imports kfp: components and pipelines do."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import genops


def test_no_genops_module_imports_kfp() -> None:
    modules = [m.name for m in pkgutil.walk_packages(genops.__path__, "genops.")]
    assert "genops.core.steps" in modules and "genops.workloads.tabular.models.tvae" in modules
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


def _cycles(package: str) -> list[list[str]]:
    """Strongly connected groups of modules of ``package`` (import cycles), ignoring imports
    made only for type checking."""
    import grimp

    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    for package in ("genops", "components", "pipelines"):
        assert _cycles(package) == [], f"import cycles in {package}"
