"""Calibration is tested, not assumed: nominal 90 % and 95 % intervals cover known synthetic truths.

A small variant of ``benchmarks/coverage.py`` (which runs hundreds of data sets and prints widths): a few
dozen seeded data sets per design of ``tests/coverage_designs.py``, 200 bootstrap refits each, with the fit's
default bootstrap (smoothed residuals, for these one-point-per-run designs). With n data sets a coverage estimate has a standard error of
sqrt(p(1 − p)/n), so each quantity's coverage must lie within nominal ± (3 points + 2 standard errors) on both
sides: too low is overconfidence, too high is an interval wider than the data warrant. The coverage pooled
over a design's quantities (E, α, β and the loss at each target) has a smaller standard error and is held to
the same rule. Widths must stay finite: intervals that cover by being infinite fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from coverage_designs import coverage_run, coverage_table, designs

DATASETS = {"Epoch-like": 60, "ladder-like": 60, "few sizes": 40}


def _band(level: float, n: int) -> float:
    return 0.03 + 2 * math.sqrt(level * (1 - level) / n)


@pytest.mark.parametrize("design", designs(), ids=lambda d: d.name.split(" (")[0])
def test_nominal_intervals_cover_the_truth(design):
    n = next(v for k, v in DATASETS.items() if design.name.startswith(k))
    runs = coverage_run(design, n, bootstrap=200, seed=0)
    table = coverage_table(runs)
    for (level, quantity), row in table.iterrows():
        off = row["coverage"] - level
        assert abs(off) <= _band(level, row["n"]), f"{design.name}: {quantity} at {level:.0%} covered {row['coverage']:.2f}"
        assert np.isfinite(row["median_width"]) and row["median_width"] > 0, (design.name, quantity)
    for level, group in runs.groupby("level"):
        pooled = group["covered"].mean()
        assert abs(pooled - level) <= _band(level, len(group)), f"{design.name}: pooled {pooled:.3f} at {level:.0%}"
