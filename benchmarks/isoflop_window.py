"""Approach 2's window and budget tolerance on shared data: the evidence behind their defaults.

Run by hand: ``.venv/bin/python benchmarks/isoflop_window.py``. Prints, for Epoch's Chinchilla points
(../shared/data/chinchilla_epoch, 240 runs) and the wide IsoFLOP fixture (tests/fixtures/gaps, truth known),
the budgets Approach 2 finds and its exponent a (N_opt ∝ C^a) for each window and clustering tolerance, and
what it says on the shipped table (data/runs.parquet). Hoffmann et al. 2022 report a = 0.49 [0.462, 0.534] by
Approach 2; the fixture's truth is a = β/(α+β) = 0.5126.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.allocation import SENSITIVITY_WINDOWS, approach2
from scalefit.errors import ScalefitInputError
from scalefit.runs import load_runs, select, tuned_points

REPO = Path(__file__).parents[1]
EPOCH = REPO.parent / "shared" / "data" / "chinchilla_epoch" / "svg_extracted_data.csv"


def epoch_runs() -> pd.DataFrame:
    raw = pd.read_csv(EPOCH)
    raw = raw[raw["loss"] < raw["loss"].nlargest(5).min()]
    return pd.DataFrame({"run_id": [f"run{i}" for i in range(len(raw))], "params": raw["Model Size"],
                         "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]), "loss": raw["loss"]})


def row(name: str, runs: pd.DataFrame, **options) -> str:
    try:
        result = approach2(runs, **options)
    except ScalefitInputError as err:
        return f"{name:<44} refused: {str(err)[:110]}…"
    lo, hi = result.params_law.exponent_interval
    return (f"{name:<44} {len(result.optima):>2} budgets  a = {result.params_law.exponent:.3f} [{lo:.3f}, {hi:.3f}]"
            f"  {result.status}")


def main() -> None:
    tables = {"wide fixture (truth a = 0.5126)": load_runs(REPO / "tests/fixtures/gaps/wide_isoflop.csv")}
    if EPOCH.exists():
        tables = {"Epoch's Chinchilla (Hoffmann: a = 0.49)": epoch_runs(), **tables}
    shipped = load_runs(REPO / "data/runs.parquet")
    tables["shipped table (tuned points)"] = tuned_points(select(shipped))
    for name, runs in tables.items():
        print(name)
        for window in SENSITIVITY_WINDOWS:
            print("  " + row(f"window {window or 'all'}", runs, window=window))
        if "flops_budget" not in runs:
            for tolerance in (0.015, 0.02, 0.025, 0.03, 0.05):
                print("  " + row(f"tolerance ±{tolerance} decades (window 7)", runs, tolerance_decades=tolerance))
    print("budgets found on Epoch's points:",
          np.round(np.log10(approach2(epoch_runs()).optima["flops"]), 2).tolist() if EPOCH.exists() else "n/a")


if __name__ == "__main__":
    main()
