"""Calibration is tested, not assumed: nominal 90 % and 95 % intervals cover known synthetic truths.

A small variant of ``benchmarks/coverage.py`` (which runs hundreds of data sets and prints widths): a few
dozen seeded data sets per design of ``tests/coverage_designs.py``, 200 bootstrap refits each. With n data
sets the coverage estimate has a standard error of sqrt(p(1 − p)/n), so the test asks for coverage no lower
than nominal − 3 points − 2 standard errors (the benchmark shows the ±3 points with hundreds of data sets),
and for widths that stay finite: intervals that cover by being infinite fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from coverage_designs import coverage_run, coverage_table, designs

DATASETS = {"Epoch-like": 40, "ladder-like": 24, "few sizes": 16}


@pytest.mark.parametrize("design", designs(), ids=lambda d: d.name.split(" (")[0])
def test_nominal_intervals_cover_the_truth(design):
    n = next(v for k, v in DATASETS.items() if design.name.startswith(k))
    table = coverage_table(coverage_run(design, n, bootstrap=200, seed=0))
    for (level, quantity), row in table.iterrows():
        floor = level - 0.03 - 2 * math.sqrt(level * (1 - level) / row["n"])
        assert row["coverage"] >= floor, f"{design.name}: {quantity} at {level:.0%} covered {row['coverage']:.2f}"
        assert np.isfinite(row["median_width"]) and row["median_width"] > 0, (design.name, quantity)
