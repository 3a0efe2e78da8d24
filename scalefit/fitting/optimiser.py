"""Vectorised multi-start optimisation: damped Gauss-Newton over all starts at once, then an L-BFGS-B polish.

The procedure (numbers are :class:`OptimiserSettings` defaults):

1. **Explore by successive halving.** All starts take ``explore_iterations`` (3) damped Gauss-Newton
   (Levenberg-Marquardt) steps together in float32; the best quarter (``prune_factor`` 4) by objective
   continue for another 3, and so on until ``keep_fraction`` (2%, at least ``min_keep`` = 32) remain. The
   rest are counted in ``n_pruned``. Most starts fall into a handful of basins within a few steps, so
   the few best starts after a few steps are as good as all of them run to the end; on Epoch's
   Chinchilla grid every survivor ends in the global optimum's basin (``benchmarks/fit_speed.py``).
   Grids of at most ``min_keep`` starts are not pruned.
2. **Converge.** The survivors continue in float64 until converged (an accepted step lowers the objective
   by less than ``ftol`` relative, or no step can lower it), leaving the arrays as they converge.
3. **Polish.** scipy's L-BFGS-B with the exact gradient refines the best converged start, on the
   objective divided by its value so that L-BFGS-B's ``ftol`` test (relative to ``max(|f|, 1)``) is not
   loosened by a small objective — the stopping problem Besiroglu et al. (2024) found in Hoffmann et al.'s
   fit. Its ``success``/``message`` are scipy's. Float64 Gauss-Newton steps then continue until none
   lowers the objective (they handle Huber's kinks, where L-BFGS-B's line search stalls, better), and the
   gradient there is the convergence check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from scalefit.fitting.objective import Loss, Objective

_LAMBDA_START = 1e-3
_LAMBDA_MIN = 1e-9
_LAMBDA_MAX = 1e8
_DIAGONAL_FLOOR = 1e-20
#: (start, point) pairs per block: ~128 KB per float32 array, so a block's arrays stay in cache.
_BLOCK_ELEMENTS = 32768


@dataclass(frozen=True)
class OptimiserSettings:
    """Knobs of the multi-start optimiser and of bootstrap refits; the defaults suit every shipped law.

    Attributes
    ----------
    explore_iterations
        Float32 Gauss-Newton steps per round of successive halving.
    prune_factor
        Each round keeps the best ``1/prune_factor`` of the starts.
    keep_fraction, min_keep
        Halving stops at this share (and at least this number) of the starts.
    max_iterations
        Step limit for a start that continues, and for the Gauss-Newton part of the polish; a start that
        reaches it counts as not converged.
    ftol
        Relative decrease of the objective below which an accepted step means convergence.
    converge_outlier_weight
        Huber curvature weight of outliers while converging and in bootstrap refits (see
        :meth:`~scalefit.fitting.objective.Loss.curvature`); exploration uses 1 (plain IRLS).
    basin_rtol
        A start is in the best basin when its objective is within this relative tolerance of the best.
    bootstrap_iterations
        Step limit for each bootstrap refit. Refits start at the optimum and stop on the same convergence
        test as the main fit; the limit is a safety net, set high enough that it does not cut off a slow
        tail of refits (a 100-step cap dropped 19 % of refits on the shipped ladder, all in the low-E tail).
    bootstrap_restarts
        A refit that has not converged at the step limit restarts from this many of the main fit's distinct
        converged survivors (other basins of the start grid); the best converged restart is kept.
    polish_ftol, polish_gtol, polish_maxiter, polish_maxls
        L-BFGS-B options for the final polish (on the objective scaled to 1 at its start). The line
        search gets more tries than scipy's default 20: Huber's kinks make it fail near an optimum.
    stationarity_tolerance
        Largest accepted ``|dF/dz_i| · max(1, |z_i|) / F`` after the polish: the relative change of the
        objective, to first order, per unit relative change of one parameter. Huber's kinks keep it from
        reaching 0 at a converged optimum (up to 2e-3 on the shipped laws' synthetic fits); a fit stopped
        short of an optimum shows 2e-2 and, usually, far more.
    """

    explore_iterations: int = 3
    prune_factor: int = 4
    keep_fraction: float = 0.02
    min_keep: int = 32
    max_iterations: int = 500
    ftol: float = 1e-10
    converge_outlier_weight: float = 0.1
    basin_rtol: float = 1e-6
    bootstrap_iterations: int = 2000
    bootstrap_restarts: int = 4
    polish_ftol: float = 1e-12
    polish_gtol: float = 1e-8
    polish_maxiter: int = 2000
    polish_maxls: int = 50
    stationarity_tolerance: float = 1e-2


@dataclass(frozen=True)
class LocalFits:
    """Outcome of local optimisation from many starts (one row per start, in the input order)."""

    z: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray


def _gauss_newton_step(
    loss: Loss,
    residuals: np.ndarray,
    jacobian: np.ndarray,
    weights: np.ndarray,
    damping: np.ndarray,
    outlier_weight: float,
) -> np.ndarray:
    """Levenberg-Marquardt steps (starts, free) solving ``(JᵀCJ + λ·diag(JᵀCJ)) Δ = Jᵀψ`` per start.

    ``jacobian`` is (free, starts, points); ``ψ`` and ``C`` are the loss's derivative and curvature weights
    times the point weights (``outlier_weight``: see :meth:`Loss.curvature`). The right-hand side is minus
    the objective's gradient, so ``Δ`` is a descent direction for any ``λ > 0``.
    """
    psi = loss.psi(residuals)
    psi *= weights
    curvature = loss.curvature(residuals, outlier_weight)
    curvature *= weights
    gradient = np.einsum("psn,sn->sp", jacobian, psi)
    hessian = np.matmul((jacobian * curvature).transpose(1, 0, 2), jacobian.transpose(1, 2, 0))
    diagonal = np.diagonal(hessian, axis1=1, axis2=2)
    scale = np.maximum(diagonal, 1e-12 * diagonal.max(axis=1, keepdims=True) + _DIAGONAL_FLOOR)
    system = hessian + np.eye(hessian.shape[-1], dtype=hessian.dtype) * (damping[:, None] * scale)[:, None, :]
    try:
        return np.linalg.solve(system, gradient[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(system) @ gradient[..., None])[..., 0]


def damped_gauss_newton(
    objective: Objective,
    starts: np.ndarray,
    *,
    max_iterations: int,
    weights: np.ndarray | None = None,
    shifts: np.ndarray | None = None,
    dtype: type = np.float64,
    ftol: float = 1e-10,
    outlier_weight: float = 1.0,
    stop_when_converged: bool = True,
) -> LocalFits:
    """Run Levenberg-Marquardt from every start, vectorised across starts.

    Starts are processed in blocks of about ``_BLOCK_ELEMENTS`` (start, point) pairs: every block runs all
    its iterations as whole-array operations whose working set stays in the CPU cache. (One array for all
    starts is memory-bound: each step would stream the full (free, starts, points) Jacobian from RAM.)

    Parameters
    ----------
    objective
        The objective to minimise.
    starts
        (starts, free) initial free-parameter vectors; clipped into the bounds.
    max_iterations
        Steps per start.
    weights
        Optional (starts, points) weights multiplying the objective's point weights, one row per start
        (bootstrap replicates).
    shifts
        Optional (starts, points) shifts of the observed ``log L``, one row per start (residual-bootstrap
        replicates: each start fits its own data).
    dtype
        Working precision (``np.float32`` for exploration).
    ftol
        An accepted step that lowers ``F`` by less than ``ftol · F`` marks the start converged; so does
        failing to lower ``F`` even at the largest damping.
    outlier_weight
        Curvature weight of Huber outliers relative to IRLS (see :meth:`Loss.curvature`): 1 for robust
        exploration from far away, smaller for fast convergence near an optimum.
    stop_when_converged
        Stop iterating a start once converged. When false every start takes ``max_iterations`` steps.

    Returns
    -------
    LocalFits
        Final points (float64), objectives (``inf`` where non-finite), converged flags and step counts.
    """
    starts = np.asarray(starts, dtype=np.float64)
    n_starts = len(starts)
    result = LocalFits(
        z=starts.copy(),
        objective=np.full(n_starts, np.inf),
        converged=np.zeros(n_starts, dtype=bool),
        iterations=np.zeros(n_starts, dtype=int),
    )
    block = max(1, _BLOCK_ELEMENTS // len(objective.log_loss))
    for first in range(0, n_starts, block):
        rows = slice(first, first + block)
        _run_block(
            objective, result, rows, None if weights is None else weights[rows],
            None if shifts is None else shifts[rows],
            max_iterations=max_iterations, dtype=dtype, ftol=ftol, outlier_weight=outlier_weight,
            stop_when_converged=stop_when_converged,
        )
    return result


def _run_block(
    objective: Objective,
    result: LocalFits,
    rows: slice,
    extra_weights: np.ndarray | None,
    extra_shifts: np.ndarray | None,
    *,
    max_iterations: int,
    dtype: type,
    ftol: float,
    outlier_weight: float,
    stop_when_converged: bool,
) -> None:
    """Iterate the starts ``result.z[rows]`` in place (see :func:`damped_gauss_newton`)."""
    lower, upper = (bound.astype(dtype) for bound in objective.free.bounds.T)
    z = np.clip(result.z[rows].astype(dtype), lower, upper)
    active = np.arange(rows.start, rows.start + len(z))
    extra = None if extra_weights is None else np.asarray(extra_weights, dtype=dtype)
    shift = None if extra_shifts is None else np.asarray(extra_shifts, dtype=dtype)
    base = objective.point_weights.astype(dtype)
    with np.errstate(all="ignore"):
        residuals, jacobian = objective.residuals_jacobian(z, shift)
        value = objective.value(residuals, extra)
        damping = np.full(len(z), _LAMBDA_START, dtype=dtype)
        finished = ~np.isfinite(value)  # a start where the law overflows is abandoned at once
        for iteration in range(1, max_iterations + 1):
            if finished.any():
                result.z[active[finished]] = z[finished]
                result.objective[active[finished]] = value[finished]
                keep = ~finished
                active, z, residuals, value, damping = (a[keep] for a in (active, z, residuals, value, damping))
                jacobian = jacobian[:, keep]
                extra = None if extra is None else extra[keep]
                shift = None if shift is None else shift[keep]
                if not len(active):
                    break
            step = _gauss_newton_step(
                objective.loss, residuals, jacobian, base if extra is None else base * extra, damping, outlier_weight
            )
            trial = np.clip(z + step, lower, upper)
            trial_residuals, trial_jacobian = objective.residuals_jacobian(trial, shift)
            trial_value = objective.value(trial_residuals, extra)
            accept = trial_value < value
            converged = np.where(accept, value - trial_value <= ftol * value, damping >= _LAMBDA_MAX)
            reject = ~accept
            trial[reject] = z[reject]
            trial_residuals[reject] = residuals[reject]
            trial_jacobian[:, reject] = jacobian[:, reject]
            trial_value[reject] = value[reject]
            z, residuals, jacobian, value = trial, trial_residuals, trial_jacobian, trial_value
            damping = np.where(accept, np.maximum(damping / 3, _LAMBDA_MIN), np.minimum(damping * 4, _LAMBDA_MAX))
            result.iterations[active] = iteration
            result.converged[active[converged]] = True
            finished = converged if stop_when_converged else np.zeros(len(active), dtype=bool)
        result.z[active] = z
        result.objective[active] = value
    finite = np.isfinite(result.objective[rows])
    result.objective[rows] = np.where(finite, result.objective[rows], np.inf)


@dataclass(frozen=True)
class MultiStart:
    """Summary of a multi-start search.

    Attributes
    ----------
    best
        Free parameters of the best converged start (of the best start when none converged), float64.
    best_objective
        Its objective.
    n_starts, n_pruned, n_converged, n_best_basin
        Starts tried; set aside after exploration; converged; converged within ``basin_rtol`` of the best.
    basins
        Distinct converged end points (free parameters), best objective first: one per basin found. Bootstrap
        refits that stall restart from them.
    """

    best: np.ndarray
    best_objective: float
    n_starts: int
    n_pruned: int
    n_converged: int
    n_best_basin: int
    basins: np.ndarray


def _distinct_basins(fits: LocalFits, rtol: float) -> np.ndarray:
    """Converged end points, best first, keeping one per distinct objective (relative ``rtol``)."""
    order = [k for k in np.argsort(fits.objective, kind="stable") if fits.converged[k]]
    kept: list[int] = []
    for k in order:
        if all(abs(fits.objective[k] - fits.objective[j]) > rtol * abs(fits.objective[j]) for j in kept):
            kept.append(k)
    return fits.z[kept] if kept else fits.z[:0]


def multistart(objective: Objective, starts: np.ndarray, settings: OptimiserSettings) -> MultiStart:
    """Explore from every start, prune by successive halving, converge the survivors, pick the best.

    See the module docstring for the procedure.
    """
    n_starts = len(starts)
    n_keep = max(settings.min_keep, math.ceil(settings.keep_fraction * n_starts))
    survivors = np.asarray(starts, dtype=np.float64)
    while len(survivors) > n_keep:
        explored = damped_gauss_newton(
            objective, survivors, max_iterations=settings.explore_iterations, dtype=np.float32,
            stop_when_converged=False,
        )
        n_next = max(n_keep, math.ceil(len(survivors) / settings.prune_factor))
        survivors = explored.z[np.argsort(explored.objective, kind="stable")[:n_next]]
    fits = damped_gauss_newton(
        objective, survivors, max_iterations=settings.max_iterations, ftol=settings.ftol,
        outlier_weight=settings.converge_outlier_weight,
    )
    candidates = np.flatnonzero(fits.converged)
    if not len(candidates):
        candidates = np.arange(len(survivors))
    best = candidates[np.argmin(fits.objective[candidates])]
    best_objective = float(fits.objective[best])
    in_basin = fits.converged & (fits.objective <= best_objective * (1 + settings.basin_rtol))
    return MultiStart(
        best=fits.z[best],
        best_objective=best_objective,
        n_starts=n_starts,
        n_pruned=n_starts - len(survivors),
        n_converged=int(fits.converged.sum()),
        n_best_basin=int(in_basin.sum()),
        basins=_distinct_basins(fits, settings.basin_rtol),
    )


@dataclass(frozen=True)
class Polished:
    """The polished optimum and how scipy's L-BFGS-B got there."""

    z: np.ndarray
    objective: float
    scipy_result: OptimizeResult
    stationarity: float


def polish(objective: Objective, start: np.ndarray, settings: OptimiserSettings) -> Polished:
    """L-BFGS-B on ``F / F(start)``, then Gauss-Newton to a standstill, then a stationarity check.

    ``stationarity`` is the largest entry of the gradient of ``F / F(final)`` projected onto the bounds,
    times ``max(1, |z|)`` per parameter: a unit-free measure compared with
    :attr:`OptimiserSettings.stationarity_tolerance`. ``F(final)`` is floored at ``1e-12`` per unit of
    point weight, so that an exact fit (``F ≈ 0``, e.g. noise-free data) is not judged on rounding noise.
    """
    floor = 1e-12 * float(objective.point_weights.sum())
    start_value, _ = objective.value_and_gradient(start)
    scale = start_value if np.isfinite(start_value) and start_value > 0 else 1.0

    def scaled(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = objective.value_and_gradient(z)
        return value / scale, gradient / scale

    bounds = objective.free.bounds
    outcome = minimize(
        scaled, start, jac=True, method="L-BFGS-B", bounds=[tuple(b) for b in bounds],
        options={
            "ftol": settings.polish_ftol,
            "gtol": settings.polish_gtol,
            "maxiter": settings.polish_maxiter,
            "maxls": settings.polish_maxls,
        },
    )
    refined = damped_gauss_newton(
        objective, outcome.x[None], max_iterations=settings.max_iterations, ftol=0.0,
        outlier_weight=settings.converge_outlier_weight,
    )
    z = refined.z[0]
    value, gradient = objective.value_and_gradient(z)
    at_lower, at_upper = z <= bounds[:, 0], z >= bounds[:, 1]
    projected = np.where((at_lower & (gradient > 0)) | (at_upper & (gradient < 0)), 0.0, gradient)
    return Polished(
        z=z,
        objective=value,
        scipy_result=outcome,
        stationarity=float(np.max(np.abs(projected) * np.maximum(1.0, np.abs(z))) / max(value, floor)),
    )
