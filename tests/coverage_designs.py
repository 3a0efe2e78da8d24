"""Calibration of the joint law's intervals on synthetic truths: how often do nominal intervals cover the truth?

Three designs (issue 16): an Epoch-like well-identified grid, a weakly identified design shaped like the
shipped CPU ladder (its sizes, budgets and fitted law as the truth), and a few-sizes design (4 sizes) that
predicts 4× and 16× beyond its largest model. Each data set is the law at the truth times log-normal noise;
it is fitted with bootstrap intervals, and we count how often the intervals of E, α, β and of the predicted
(mean) loss at the targets contain the true values. Used by ``tests/test_coverage.py`` (a few dozen data
sets) and ``benchmarks/coverage.py`` (hundreds).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.fitting import fit
from scalefit.laws import Chinchilla

EPOCH_TRUTH = {"E": 1.817, "A": 477.8, "B": 2143.9, "alpha": 0.3473, "beta": 0.3672}  # Epoch's grid optimum
LADDER_TRUTH = {"E": 1.286, "A": 27.66, "B": 2488.0, "alpha": 0.4455, "beta": 0.5671}  # shipped table's fit
LADDER_SIZES = (9440, 21072, 37312, 77520, 151536, 296576)
#: A 3⁵ start grid around every design's basin: the calibration is about the bootstrap, not the search.
SMALL_GRID = {"a": (2, 6, 10), "b": (4, 8, 12), "e": (-0.5, 0, 0.5), "alpha": (0.2, 0.4, 0.8),
              "beta": (0.2, 0.4, 0.8)}
PARAMETERS = ("E", "alpha", "beta")


@dataclass(frozen=True)
class Design:
    """Where runs are, the truth, the noise (sd of log L) and the targets to predict."""

    name: str
    points: pd.DataFrame
    truth: dict
    sigma: float
    targets: pd.DataFrame


def _grid(sizes, tokens) -> pd.DataFrame:
    return pd.DataFrame(list(itertools.product(sizes, tokens)), columns=["params", "tokens"])


def designs() -> list[Design]:
    epoch = _grid(np.geomspace(7e7, 1.6e10, 8), np.geomspace(5e9, 5e11, 6))
    ladder = pd.DataFrame([(n, b) for n in LADDER_SIZES
                           for b in ((1e6, 2e6, 4e6, 8e6, 16e6) if n < 5e4 else (5e5, 1e6, 2e6, 4e6, 8e6))],
                          columns=["params", "tokens"])
    few = _grid(np.geomspace(1e8, 8e8, 4), np.geomspace(2e9, 2e10, 5))
    return [
        Design("Epoch-like (8 sizes x 6 budgets)", epoch, EPOCH_TRUTH, 0.01,
               pd.DataFrame({"params": [6.4e10], "tokens": [2e12]})),
        Design("ladder-like (weakly identified)", ladder, LADDER_TRUTH, 0.02,
               pd.DataFrame({"params": [3e6], "tokens": [1.6e8]})),
        Design("few sizes (4), predict 4x and 16x", few, EPOCH_TRUTH, 0.01,
               pd.DataFrame({"params": [3.2e9, 1.28e10], "tokens": [6.4e10, 2.56e11]})),
    ]


def coverage_run(design: Design, n_datasets: int, levels=(0.9, 0.95), bootstrap: int = 200,
                 seed: int = 0, bootstrap_scheme: str = "auto") -> pd.DataFrame:
    """One row per (data set, level, quantity): ``covered`` and ``width`` (relative for the loss)."""
    law = Chinchilla()
    true_loss = law.predict(design.truth, design.targets)
    rows = []
    for k in range(n_datasets):
        rng = np.random.default_rng([seed, k])
        points = design.points.assign(
            loss=law.predict(design.truth, design.points) * np.exp(rng.normal(0, design.sigma, len(design.points))))
        result = fit(law, points, starts=SMALL_GRID, bootstrap=bootstrap, seed=k, bootstrap_scheme=bootstrap_scheme)
        for level in levels:
            intervals = result.conf_int(level)
            for name in PARAMETERS:
                lo, hi = intervals.loc[name]
                rows.append({"dataset": k, "level": level, "quantity": name, "covered": lo <= design.truth[name] <= hi,
                             "width": hi - lo})
            band = result.predict(design.targets, level=level)
            for j, truth in enumerate(true_loss):
                lo, hi = band["mean_lo"].iloc[j], band["mean_hi"].iloc[j]
                rows.append({"dataset": k, "level": level, "quantity": f"L(target {j + 1})",
                             "covered": lo <= truth <= hi, "width": (hi - lo) / truth})
    return pd.DataFrame(rows)


def coverage_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Coverage and median width per (level, quantity)."""
    return runs.groupby(["level", "quantity"]).agg(coverage=("covered", "mean"), median_width=("width", "median"),
                                                   n=("covered", "size"))
