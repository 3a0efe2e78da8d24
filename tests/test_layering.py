"""The architecture holds: lower layers never import higher ones; only scalefit/plots/ touches matplotlib; no torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scalefit"

# data → laws → fitting → analyses → outputs (design.md). A module may import its own layer or lower ones.
LAYERS = {
    "errors": 0, "io": 0, "log": 0, "plausibility": 0, "points": 0, "readers": 0, "results": 0, "runs": 0,
    "runs_validation": 0, "flops": 0,
    "laws": 1,
    "fitting": 2,
    "allocation": 3, "backtest": 3, "hyperparams": 3, "rl": 3, "study": 3, "selection": 3, "plan": 3, "tasks": 3,
    "trust": 3,
    "plots": 4, "report": 4, "cli": 4, "__init__": 4,
}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1] if "." in module else "__init__"]


def _imports(path: Path) -> set[tuple[str, bool]]:
    """(module, at module level?) for every import of a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.name, id(node) in top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add((node.module, id(node) in top))
    return names


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_own_or_lower_layers(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    own = "scalefit." + parts[1] if len(parts) > 1 else "scalefit"
    for name, module_level in _imports(path):
        assert not name.startswith(("torch", "runners")), f"{path.name} imports {name}"
        if name.startswith("matplotlib"):
            assert path.parent.name == "plots", f"{path.name} imports matplotlib; only scalefit/plots/ may"
        # A result's plot() may import the plotting module lazily (design.md); nothing else goes up.
        if name.startswith("scalefit.") and not (name == "scalefit.plots" and not module_level):
            assert _layer(name) <= _layer(own), f"{own} (layer {_layer(own)}) imports higher {name}"


def test_importing_scalefit_loads_neither_torch_nor_matplotlib():
    code = "import sys, scalefit, scalefit.cli; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
