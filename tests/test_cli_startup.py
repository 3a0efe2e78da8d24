"""What a command imports before it works: ``scalefit --help`` loads no numerical library, and no command
pays for statsmodels or matplotlib unless it uses them (issue #11; the times are in benchmarks/cli_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "scipy", "scipy.stats", "statsmodels", "matplotlib", "torch")


def loaded_after(code: str) -> set[str]:
    """The HEAVY modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_imports_no_numerical_library():
    assert loaded_after("import scalefit.cli; scalefit.cli.build_parser().format_help()") == set()


def test_importing_the_package_is_lazy():
    assert loaded_after("import scalefit; scalefit.__version__") == set()


@pytest.mark.parametrize("module", ["scalefit.study", "scalefit.fitting", "scalefit.allocation"])
def test_predict_path_does_not_import_statsmodels_matplotlib_or_scipy_stats(module):
    assert loaded_after(f"import {module}") & {"statsmodels", "matplotlib", "scipy.stats", "torch"} == set()
