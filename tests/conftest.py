"""Shared fixtures: synthetic points drawn from a law with known parameters and log-normal noise."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from scalefit.laws.base import Law


def draw_points(law: Law, truth: dict[str, float], design: pd.DataFrame, sigma: float, seed: int) -> pd.DataFrame:
    """``design`` plus a ``loss`` column: the law at ``truth`` times ``exp(N(0, sigma²))`` noise."""
    rng = np.random.default_rng(seed)
    points = design.copy()
    points["loss"] = law.predict(truth, points) * np.exp(rng.normal(0.0, sigma, len(points)))
    return points


@pytest.fixture
def size_token_grid() -> pd.DataFrame:
    """8 model sizes (1e7 to 3e9 parameters) × 8 token counts (3e8 to 1e11): 64 points."""
    pairs = itertools.product(np.logspace(7, 9.5, 8), np.logspace(8.5, 11, 8))
    return pd.DataFrame(list(pairs), columns=["params", "tokens"])
