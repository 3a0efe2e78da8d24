"""The interpolated optimum of one group: a convex quadratic in (log10 lr, log10 batch size), least squares.

``loss ≈ β0 + Σ_i β_i x_i + Σ_{i<=j} β_ij x_i x_j`` around the best grid cell, its stationary point, and the
delta-method covariance of that point from the coefficients' OLS covariance
(:func:`scalefit.hyperparams.least_squares.ols`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.hyperparams.least_squares import ols

HPARAM_AXES = ("lr", "batch_size")
# Relative loss windows (above the best loss) tried, smallest first, to pick the settings for the quadratic.
QUADRATIC_WINDOWS = (0.01, 0.02, 0.04, 0.08, 0.16)


@dataclass(frozen=True, eq=False)
class QuadraticOptimum:
    """A convex quadratic's minimum in log10 hyperparameters, with its covariance."""

    axes: tuple[str, ...]
    log10_optimum: np.ndarray
    log10_cov: np.ndarray
    loss: float
    fixed: dict[str, float]
    n_points: int

    def as_row(self) -> dict:
        """Columns ``opt_<axis>`` and ``opt_<axis>_log10_sd`` (NaN for an axis held fixed), ``opt_loss``..."""
        row = {"opt_loss": self.loss, "method": "quadratic", "n_fit_points": self.n_points, "warning": ""}
        for axis in HPARAM_AXES:
            if axis in self.axes:
                k = self.axes.index(axis)
                row |= {f"opt_{axis}": 10 ** self.log10_optimum[k],
                        f"opt_{axis}_log10_sd": math.sqrt(self.log10_cov[k, k])}
            else:
                row |= {f"opt_{axis}": self.fixed[axis], f"opt_{axis}_log10_sd": np.nan}
        return row


def quadratic_optimum(usable: pd.DataFrame, best: pd.Series) -> QuadraticOptimum | str:
    """Fit the convex quadratic around the best cell; return the reason instead when it cannot be done.

    An axis enters when it has at least three distinct values; others are held at the best cell. The
    settings are those within 1%, 2%, 4%, 8% or 16% of the best loss: the smallest window with enough
    points (5 for one axis, 8 for two, three distinct values per axis) whose quadratic is convex with its
    minimum inside the settings it was fitted on.
    """
    axes = tuple(axis for axis in HPARAM_AXES if usable[axis].nunique() >= 3)
    if not axes:
        return "fewer than three distinct LRs (or batch sizes) to interpolate"
    fixed = {axis: float(best[axis]) for axis in HPARAM_AXES if axis not in axes}
    cells = usable.dropna(subset=list(axes))
    for axis, value in fixed.items():
        if usable[axis].nunique() > 1:
            cells = cells[np.isclose(cells[axis], value)]
    n_coef = 1 + len(axes) + len(axes) * (len(axes) + 1) // 2
    min_points = n_coef + 2
    best_loss = float(best["loss"])
    reason = f"fewer than {min_points} settings within {QUADRATIC_WINDOWS[-1]:.0%} of the best loss"
    for window in QUADRATIC_WINDOWS:
        near = cells[cells["loss"] <= (1 + window) * best_loss]
        if len(near) < min_points or any(near[axis].nunique() < 3 for axis in axes):
            continue
        fitted = _fit_quadratic(near, axes, best)
        if isinstance(fitted, str):
            reason = fitted
            continue
        return QuadraticOptimum(axes, fitted[0], fitted[1], fitted[2], fixed, len(near))
    return reason


def quadratic_design(x: np.ndarray) -> np.ndarray:
    """Columns 1, x_i, x_i x_j (i <= j) of a quadratic in the columns of ``x``."""
    k = x.shape[1]
    squares = [x[:, i] * x[:, j] for i in range(k) for j in range(i, k)]
    return np.column_stack([np.ones(len(x)), x, *squares])


def _quadratic_minimum(coef: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stationary point and Hessian of the quadratic with coefficients ``coef`` in ``k`` variables."""
    gradient = coef[1:1 + k]
    hessian = np.zeros((k, k))
    position = 1 + k
    for i in range(k):
        for j in range(i, k):
            hessian[i, j] += coef[position]
            hessian[j, i] += coef[position]
            position += 1
    return np.linalg.solve(hessian, -gradient), hessian


def _fit_quadratic(near: pd.DataFrame, axes: tuple[str, ...],
                   best: pd.Series) -> tuple[np.ndarray, np.ndarray, float] | str:
    """Least-squares quadratic in log10 coordinates centred on the best cell.

    Returns (optimum in log10, its delta-method covariance, loss at the optimum), or the reason the
    quadratic is unusable (flat, not convex, minimum outside the fitted settings).
    """
    centre = np.array([math.log10(best[axis]) for axis in axes])
    x = np.log10(near[list(axes)].to_numpy(float)) - centre
    coef, coef_cov = ols(quadratic_design(x), near["loss"].to_numpy(float))
    k = len(axes)
    try:
        stationary, hessian = _quadratic_minimum(coef, k)
    except np.linalg.LinAlgError:
        return "the loss landscape is flat near the minimum (singular curvature)"
    if np.linalg.eigvalsh(hessian).min() <= 0:
        return "the loss landscape is not convex near the minimum (curvature not positive-definite)"
    if np.any(stationary < x.min(axis=0)) or np.any(stationary > x.max(axis=0)):
        return "the interpolated optimum lies outside the settings it was fitted on"
    jacobian = np.empty((k, len(coef)))
    for p in range(len(coef)):
        step = 1e-6 * max(1.0, abs(coef[p]))
        shifted = coef.copy()
        shifted[p] += step
        jacobian[:, p] = (_quadratic_minimum(shifted, k)[0] - stationary) / step
    cov = jacobian @ coef_cov @ jacobian.T
    loss = float((quadratic_design(stationary[None, :]) @ coef)[0])
    return stationary + centre, cov, loss
