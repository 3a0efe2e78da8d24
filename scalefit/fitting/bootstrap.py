"""Bootstrap refits: resample points or whole runs, refit every replicate at once, take percentiles.

A replicate is a vector of integer multiplicities (how many times each point was drawn), so a resampled
fit is the original objective with those multiplicities as extra point weights; all replicates are
refitted together by :func:`~scalefit.fitting.optimiser.damped_gauss_newton`, each starting at the
full-data optimum (Efron & Tibshirani 1993, ch. 6 and 13, for the percentile interval).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalefit.fitting.objective import Objective
from scalefit.fitting.optimiser import LocalFits, OptimiserSettings, damped_gauss_newton


def resample_counts(
    n_points: int, n_draws: int, rng: np.random.Generator, groups: np.ndarray | None = None
) -> np.ndarray:
    """Multiplicities (draws, points) of bootstrap replicates.

    Parameters
    ----------
    n_points
        Number of points.
    n_draws
        Number of replicates.
    rng
        Source of randomness (seeded by the caller).
    groups
        Optional group label per point (the run id). When given, whole groups are drawn with replacement
        (a cluster bootstrap: points of one run are not independent), and every point of a group drawn
        ``k`` times gets multiplicity ``k``.
    """
    if groups is None:
        return rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_draws).astype(float)
    codes, labels = pd.factorize(groups, sort=True)
    group_counts = rng.multinomial(len(labels), np.full(len(labels), 1.0 / len(labels)), size=n_draws)
    return group_counts[:, codes].astype(float)


def refit_replicates(
    objective: Objective, optimum: np.ndarray, counts: np.ndarray, settings: OptimiserSettings
) -> LocalFits:
    """Refit every replicate (rows of ``counts``) from ``optimum``, vectorised across replicates.

    Each refit is local: it starts at the full-data optimum and follows the resampled objective
    downhill. Where the full data have competing basins this can understate uncertainty; the draws'
    ``converged`` flags say which refits finished.
    """
    starts = np.tile(np.asarray(optimum, dtype=float), (len(counts), 1))
    return damped_gauss_newton(
        objective, starts, weights=counts, max_iterations=settings.bootstrap_iterations, ftol=settings.ftol,
        outlier_weight=settings.converge_outlier_weight,
    )


def percentile_intervals(draws: pd.DataFrame, level: float) -> pd.DataFrame:
    """Percentile intervals ``[q((1−level)/2), q((1+level)/2)]`` per column, as a (columns × lo/hi) frame."""
    tail = (1.0 - level) / 2.0
    bounds = draws.quantile([tail, 1.0 - tail]).T
    bounds.columns = ["lo", "hi"]
    return bounds
