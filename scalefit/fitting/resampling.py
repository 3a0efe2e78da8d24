"""Resampling schemes for dependent points, and refitting a law on each resample with the engine.

Points of one training run (or one RL curve) are not independent, so the bootstrap must resample something
coarser than points. Two schemes, both as point weights (draws, points), the form the engine's refits take as
extra point weights:

the cluster bootstrap
    Whole groups (runs, sweep groups) get one weight each (Davison & Hinkley 1997, §2.4):
    :func:`~scalefit.fitting.bootstrap.resample_weights` with ``groups`` — Bayesian or multinomial weights.
    This is the engine's run resampling (``fit(..., resample="run")``), used by the loss laws and by the
    LR/batch-size laws of :mod:`scalefit.hyperparams` (a group's plateau points travel together).
:func:`segment_counts`
    The block bootstrap within groups (Künsch 1989; Davison & Hinkley 1997, §8.2): every group is cut into
    contiguous segments of ``segment_length`` points in a given order (e.g. X along an RL curve), and each
    replicate redraws, within every group, as many segments as it has. Every group stays in every replicate
    (so a law with one parameter per group stays identified) while neighbouring, correlated points move
    together.

:func:`refit_resamples` refits a law on every replicate at once, from a given optimum, with the engine's
vectorised refit (:func:`~scalefit.fitting.bootstrap.refit_replicates`: damped Gauss-Newton to the main
fit's convergence test), and returns the draws in the layout of :attr:`FitResult.draws
<scalefit.fitting.FitResult.draws>`: reported and derived parameters, ``objective`` and ``converged``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from scalefit.errors import FitError
from scalefit.fitting.bootstrap import refit_replicates
from scalefit.fitting.engine import reported_frame
from scalefit.fitting.objective import LOSSES, Loss, Objective
from scalefit.fitting.optimiser import OptimiserSettings
from scalefit.fitting.parameters import free_parameters
from scalefit.laws.base import Law

__all__ = ["default_segment_length", "refit_resamples", "segment_counts"]


def segment_counts(groups: Sequence | np.ndarray, order: Sequence[float] | np.ndarray, segment_length: int,
                   n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities (draws, points) of a block bootstrap within groups.

    Parameters
    ----------
    groups
        One label per point (e.g. the run id of an RL curve).
    order
        Position of each point within its group (e.g. X); segments are contiguous in this order.
    segment_length
        Points per segment (a group's last segment may be shorter).
    n_draws
        Number of replicates.
    rng
        Source of randomness (seeded by the caller).

    Returns
    -------
    numpy.ndarray
        Within every group of ``S`` segments, each replicate draws ``S`` segments with replacement; every
        point of a segment drawn ``k`` times gets multiplicity ``k``.
    """
    labels, order = np.asarray(groups), np.asarray(order, dtype=float)
    if labels.shape != order.shape or labels.ndim != 1:
        raise FitError(f"groups and order must be one value per point; got shapes {labels.shape} and {order.shape}")
    if int(segment_length) != segment_length or segment_length < 1:
        raise FitError(f"segment_length must be a whole number of points >= 1, not {segment_length!r}")
    counts = np.zeros((n_draws, len(labels)))
    codes, _ = pd.factorize(labels, sort=True)
    for code in range(codes.max() + 1 if len(codes) else 0):
        rows = np.flatnonzero(codes == code)
        rows = rows[np.argsort(order[rows], kind="stable")]
        segment = np.arange(len(rows)) // int(segment_length)
        n_segments = segment[-1] + 1
        drawn = rng.multinomial(n_segments, np.full(n_segments, 1.0 / n_segments), size=n_draws)
        counts[:, rows] = drawn[:, segment]
    return counts


def default_segment_length(groups: Sequence | np.ndarray) -> int:
    """``ceil(n^(1/3))`` for the median group size ``n``: the block length whose order minimises the block
    bootstrap's error for a variance (Hall, Horowitz & Jing 1995)."""
    sizes = pd.Series(np.asarray(groups)).value_counts()
    return max(1, math.ceil(float(sizes.median()) ** (1.0 / 3.0)))


def refit_resamples(law: Law, data: pd.DataFrame, counts: np.ndarray, start: Mapping[str, float] | pd.Series, *,
                    loss: str = "huber", delta: float = 1e-3, weights: np.ndarray | None = None,
                    fix: Mapping[str, float] | None = None,
                    settings: OptimiserSettings | None = None) -> pd.DataFrame:
    """Refit ``law`` on every replicate (rows of ``counts``) from ``start``; the draws, one row per replicate.

    The objective is the engine's (:func:`scalefit.fitting.fit` with the same ``loss``, ``delta``,
    ``weights`` and ``fix``) with each replicate's multiplicities as extra point weights. Every refit starts at
    ``start`` (the full-data optimum) and runs the engine's damped Gauss-Newton iteration to its convergence
    test.

    Parameters
    ----------
    law
        The fitted law.
    data
        The fitted points: the law's input columns and ``loss``, in the order of the columns of ``counts``.
    counts
        (draws, points) multiplicities, e.g. from :func:`segment_counts` or
        :func:`~scalefit.fitting.bootstrap.resample_weights`.
    start
        The full-data optimum, by reported name (e.g. ``FitResult.params``).
    loss, delta, weights, fix
        As for :func:`scalefit.fitting.fit` (``weights``: an array of one weight per point, or None).
    settings
        Optimiser settings (the engine's defaults when None).

    Returns
    -------
    pandas.DataFrame
        The law's reported and derived parameters, ``objective`` and ``converged`` (bool) per replicate, as
        :attr:`FitResult.draws <scalefit.fitting.FitResult.draws>`; intervals should use converged rows.
        Parameters in ``fix`` keep their values.
    """
    if loss not in LOSSES:
        raise FitError(f"loss must be one of {LOSSES}, not {loss!r}")
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[1] != len(data):
        raise FitError(f"counts must be (draws, {len(data)} points), not {counts.shape}")
    missing = [c for c in (*law.inputs, "loss") if c not in data.columns]
    if missing:
        raise FitError(f"{law.name} refits need columns {[*law.inputs, 'loss']}; data lacks {missing}")
    point_weights = np.ones(len(data)) if weights is None else np.asarray(weights, dtype=float)
    if point_weights.shape != (len(data),):
        raise FitError(f"weights must have one value per point ({len(data)}), got shape {point_weights.shape}")
    free = free_parameters(law, fix)
    objective = Objective(law=law, inputs=law.input_array(data), log_loss=np.log(data["loss"].to_numpy(dtype=float)),
                          point_weights=point_weights, loss=Loss(loss, float(delta)), free=free)
    reported = pd.Series(start, dtype=float)[list(law.reported_names)]
    optimum = free.reduce(law.to_fitted(reported))[0]
    refits = refit_replicates(objective, optimum, counts, settings or OptimiserSettings())
    draws = reported_frame(law, free.expand(refits.z))
    draws["objective"] = refits.objective
    draws["converged"] = refits.converged.astype(bool)
    return draws
