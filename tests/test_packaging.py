"""What `pip install scalefit` installs: the library without torch or pytest, runners as scalefit_runners with
every config, a LICENSE; the README's commands are the ones CI runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _installed_name(folder: Path) -> str:
    parts = folder.relative_to(REPO).parts
    return ".".join(("scalefit_runners", *parts[1:]) if parts[0] == "runners" else parts)


def test_every_package_folder_is_listed():
    folders = sorted(p.parent for root in ("scalefit", "runners") for p in (REPO / root).rglob("__init__.py")
                     if "__pycache__" not in p.parts)
    assert sorted(map(_installed_name, folders)) == sorted(SETUPTOOLS["packages"])
    assert SETUPTOOLS["package-dir"] == {"scalefit_runners": "runners"}


def test_the_base_install_has_no_torch_and_no_test_tools():
    base = " ".join(PYPROJECT["project"]["dependencies"])
    assert not any(name in base for name in ("torch", "pytest", "ruff", "ipykernel", "nbclient"))
    extras = PYPROJECT["project"]["optional-dependencies"]
    torch = next(spec for spec in extras["runners"] if spec.startswith("torch"))
    assert ">=" in torch and "==" not in torch  # a lower bound: never replace the user's own (GPU) torch
    assert {"runners", "ray", "test", "notebook"} <= set(extras)


def test_constraints_pin_the_torch_the_data_was_made_with_and_ci_uses_them():
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text().splitlines()
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    install = "pip install -q -c constraints.txt -e '.[test,runners]'"
    assert install in ci and install.replace(" -q", "") in readme
    assert "pip install -e . " in readme and "scalefit fit data/runs.parquet --out out/fit" in readme


@pytest.mark.slow
def test_the_wheel_ships_runners_as_scalefit_runners_with_every_config(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the tracked files")
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", "LICENSE", "scalefit", "runners"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("scalefit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(str(p.relative_to(REPO / "runners")) for p in (REPO / "runners").rglob("*.toml"))
    assert configs and all(f"scalefit_runners/{c}" in names for c in configs)
    assert "scalefit_runners/rl/configs/rl_addition.toml" in names
    assert not any(n.startswith("runners/") for n in names)  # no top-level `runners` to collide with
    assert any(n.endswith((".dist-info/licenses/LICENSE", ".dist-info/LICENSE")) for n in names)
