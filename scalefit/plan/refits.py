"""The variance of the estimator the fit actually uses: Huber's M-estimator, linearised or by simulated refits.

``scalefit.fitting.fit`` minimises Huber's loss (threshold δ, 1e-3 by default) on log residuals. With run noise
``σ`` of 1–2 %, most residuals lie beyond δ and the estimator is close to least absolute deviations, whose
covariance is not the least-squares ``σ² (JᵀJ)⁻¹``. For an M-estimator with score ``ψ`` the asymptotic
(sandwich, Godambe) covariance is ``H⁻¹ K H⁻¹`` with ``H = E[ψ'(ε)] JᵀJ`` and ``K = E[ψ(ε)²] JᵀJ`` (Huber &
Ronchetti 2009, *Robust Statistics*, 2nd ed., ch. 7), that is ``σ_eff² (JᵀJ)⁻¹`` with

    σ_eff² = E[ψ(ε)²] / E[ψ'(ε)]²

which for Gaussian noise ``ε ~ N(0, σ²)`` and ``k = δ/σ`` is (:func:`huber_noise_factor` gives ``σ_eff²/σ²``)

    E[ψ'] = 2Φ(k) − 1,   E[ψ²] = σ² (2Φ(k) − 1 − 2kφ(k)) + 2δ² (1 − Φ(k)).

It tends to 1 (least squares) for ``k → ∞`` and to π/2 (least absolute deviations) for ``k → 0``.

The linearisation ignores what ten runs and five parameters do to a non-linear fit (curvature, parameter
bounds, flat valleys the start grid resolves one way or another), so the planner checks its shortlist by
:func:`simulated_refit_variance`: data simulated at the design from parameter draws, refitted by the engine
itself, and the mean squared error of ``log L̂`` at the target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.errors import FitError
from scalefit.fitting import fit
from scalefit.laws.base import Law

#: The engine's default Huber threshold on log residuals (``scalefit.fitting.fit``'s ``delta``).
DEFAULT_DELTA = 1e-3


def huber_noise_factor(sigma: float, delta: float = DEFAULT_DELTA) -> float:
    """``σ_eff² / σ²`` of Huber's M-estimator with threshold ``delta`` under Gaussian noise of sd ``sigma``.

    See the module docstring for the formula; 1 for least squares (``delta ≫ sigma``), π/2 for least absolute
    deviations (``delta ≪ sigma``).
    """
    k = delta / sigma
    if k < 1e-3:  # the LAD limit (within 0.1 %), without the cancellation of O(k) terms below
        return float(np.pi / 2)
    inside = 2.0 * stats.norm.cdf(k) - 1.0
    score_square = inside - 2.0 * k * stats.norm.pdf(k) + 2.0 * k * k * stats.norm.sf(k)
    return float(score_square / inside**2)


def simulated_refit_variance(law: Law, design: np.ndarray, theta: np.ndarray, target: tuple[float, float],
                             sigma: float, refits: int, seed: int = 0, delta: float = DEFAULT_DELTA,
                             starts: np.ndarray | None = None) -> float:
    """Mean squared error of ``log L̂`` at ``target`` over ``refits`` simulated data sets at ``design``.

    Data set ``i`` is drawn at parameters ``theta[i mod len(theta)]`` (fitting space) with log-normal noise
    ``sigma`` (its own seed ``seed + i``, so that two designs see the same draws: common random numbers), and
    refitted by :func:`scalefit.fitting.fit` as a user would fit it: its default start grid, Huber threshold
    ``delta``, no bootstrap. (Fewer starts would be cheaper but are another estimator: where the design leaves
    a direction flat, a local fit stops wherever its start lies, and four starts drawn from a wide prior
    overstate the spread of the full grid's choice several-fold.) A refit that raises (a degenerate design) or predicts a non-finite loss makes the variance
    infinite: the design cannot be relied on.

    Parameters
    ----------
    design
        Points (points, 2): ``params``, ``tokens``.
    theta
        Parameter draws (draws, params) in the law's fitting space.
    starts
        Start points (rows, params) in the fitting space for every refit; None: the law's default grid.
    """
    design = np.asarray(design, dtype=float)
    points = pd.DataFrame({"params": design[:, 0], "tokens": design[:, 1]})
    points["run_id"] = [f"run{i}" for i in range(len(points))]
    where = pd.DataFrame({"params": [target[0]], "tokens": [target[1]]})
    inputs, at_target = law.input_array(points), law.input_array(where)
    squared = []
    for i in range(refits):
        rng = np.random.default_rng(seed + i)
        truth = theta[i % len(theta)][None, :]
        loss = np.exp(law.log_predict(truth, inputs)[0] + rng.normal(0.0, sigma, len(points)))
        try:
            result = fit(law, points.assign(loss=loss), bootstrap=0, delta=delta, seed=seed + i,
                         starts=starts)
        except FitError:
            return float("inf")
        estimate = np.log(law.predict(result.params, where)[0])
        error = estimate - law.log_predict(truth, at_target)[0, 0]
        if not np.isfinite(error):
            return float("inf")
        squared.append(error**2)
    return float(np.mean(squared))
