"""The analysis notebooks run headless from top to bottom without error, and are stored without outputs.

Notebook 1 needs nothing (Epoch's data beside the repository turn its checks on); notebooks 2 and 3 read the
shipped ``data/runs.parquet`` and ``data/rl_runs.parquet``, or the tables named by ``SCALEFIT_RUNS`` and
``SCALEFIT_RL_RUNS``, and are skipped when those do not exist.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ANALYSIS = REPO / "analysis"
NOTEBOOKS = sorted(ANALYSIS.glob("*.ipynb"))
DATA = {
    "02_cpu_sweep.ipynb": Path(os.environ.get("SCALEFIT_RUNS", REPO / "data" / "runs.parquet")),
    "03_rl_post_training.ipynb": Path(os.environ.get("SCALEFIT_RL_RUNS", REPO / "data" / "rl_runs.parquet")),
    "04_task_scaling.ipynb": REPO.parent / "shared" / "data" / "pythia_evals" / "pythia_evals.csv.gz",
}
SECONDS_PER_NOTEBOOK = 60


def test_the_five_analyses_are_there():
    assert [p.name for p in NOTEBOOKS] == ["01_chinchilla_epoch.ipynb", "02_cpu_sweep.ipynb",
                                           "03_rl_post_training.ipynb", "04_task_scaling.ipynb",
                                           "05_planning.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_stored_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: strip its outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_error(path):
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat nbclient ipykernel (the test extra)")
    nbclient = pytest.importorskip("nbclient", reason="pip install nbclient ipykernel (the test extra)")
    pytest.importorskip("ipykernel", reason="pip install ipykernel (the test extra)")
    data = DATA.get(path.name)
    if data is not None and not data.exists():
        pytest.skip(f"{data} does not exist yet (made by the shipped sweep; or set "
                    f"{'SCALEFIT_RUNS' if 'cpu' in path.name else 'SCALEFIT_RL_RUNS'})")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=SECONDS_PER_NOTEBOOK, kernel_name="python3",
                                     resources={"metadata": {"path": str(ANALYSIS)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    elapsed = time.perf_counter() - start
    assert elapsed < SECONDS_PER_NOTEBOOK, f"{path.name} took {elapsed:.0f} s"
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells
                 for output in cell.get("outputs", []))
    assert images >= 3, f"{path.name} drew {images} figures"
