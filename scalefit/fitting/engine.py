"""``fit(law, data)``: validate the points, search the start grid, polish, bootstrap, report."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from scalefit.errors import FitError
from scalefit.fitting.bootstrap import (
    BOOTSTRAP_SCHEMES,
    identification_issue,
    refit_replicates,
    resample_weights,
    residual_shifts,
    residual_structure,
)
from scalefit.fitting.extrapolation import fitted_ranges
from scalefit.fitting.objective import LOSSES, Loss, Objective
from scalefit.fitting.optimiser import MultiStart, OptimiserSettings, Polished, multistart, polish
from scalefit.fitting.parameters import FreeParameters, free_parameters
from scalefit.fitting.result import FitResult
from scalefit.laws.base import Law

#: A parameter whose move to its nearest bound changes no predicted log loss by more than this has left the fit
#: (far below any run's noise, about 1e-2).
INERT_LOG_CHANGE = 1e-6


def fit(
    law: Law,
    data: pd.DataFrame,
    *,
    loss: str = "huber",
    delta: float = 1e-3,
    weights: np.ndarray | Sequence[float] | str | None = None,
    fix: Mapping[str, float] | None = None,
    tie: Sequence[str] | Sequence[Sequence[str]] | None = None,
    starts: np.ndarray | pd.DataFrame | Mapping[str, Sequence[float]] | None = None,
    bootstrap: int = 1000,
    resample: str | None = None,
    bootstrap_scheme: str = "auto",
    seed: int = 0,
    flops_convention: str | None = None,
    settings: OptimiserSettings | None = None,
) -> FitResult:
    """Fit ``law`` to the points in ``data`` by multi-start robust regression, with bootstrap intervals.

    Minimises ``F = sum_i w_i · rho(log L_i − log L̂_i)`` (Huber's ``rho`` with threshold ``delta`` by
    default, as Hoffmann et al. 2022 and Besiroglu et al. 2024) from every start of a grid, vectorised
    across starts (see :mod:`scalefit.fitting.optimiser`), then refits ``bootstrap`` resamples of the data
    from the optimum for percentile intervals.

    Parameters
    ----------
    law
        The law, e.g. ``Chinchilla()`` or ``PowerLaw(x="flops")``.
    data
        One row per point, with the law's input columns (e.g. ``params``, ``tokens``) and ``loss``; a
        ``run_id`` column enables run resampling.
    loss
        ``"huber"`` (on log loss), ``"mse_log"`` (squared log residuals) or ``"mse"`` (squared residuals
        of the loss itself).
    delta
        Huber threshold on log residuals (1e-3, Epoch's choice).
    weights
        Per-point weights (array of ``len(data)``), or ``"equal_per_size"``: every distinct ``params``
        value gets the same total weight (``w_i = n / (K · n_k)`` for ``K`` sizes with ``n_k`` points each),
        so that a size with many checkpoints does not dominate. Default: all 1.
    fix
        Parameters held at a value, by reported or fitted name, value as reported: ``{"alpha": 0.34}``.
    tie
        Parameters constrained equal: ``("alpha", "beta")`` or a list of such groups.
    starts
        Start points in the fitting space: None for the law's default grid; a mapping of name -> values
        whose Cartesian product is the grid (missing names use the law's grid values); or an array /
        DataFrame of full parameter vectors in the law's parameter order.
    bootstrap
        Number of bootstrap refits; 0 for none (then ``interval_method == "none"``). Each refit starts at
        the full-data optimum and runs to the main fit's convergence test; one that stalls restarts from
        the other basins the start grid found. Refits that still fail are counted
        (``n_failed_refits``); more than 2 % make the result suspect. With too few resampling units (one
        or two runs) or too few values of an input, the intervals are reported as not identified
        (``interval_issue``; NaN bounds) instead of as a falsely tight interval.
    resample
        ``"run"`` (resample whole runs by ``run_id``) or ``"point"``. Default: ``"run"`` when ``data`` has
        a ``run_id`` column and some run has several rows, else ``"point"``.
    bootstrap_scheme
        ``"residual"`` (the fit plus smoothed residuals: calibrated for this near-L1 objective),
        ``"bayesian"`` (continuous Exp(1) weights per run or point), ``"multinomial"`` (Efron's resampling
        with replacement, as Epoch's replication) or ``"auto"``: ``"residual"`` when every resampling unit
        is one point, the loss is on log L and the residuals pass
        :func:`~scalefit.fitting.bootstrap.residual_structure` (no misfit, even noise), else ``"bayesian"``
        (runs with curves are reweighted whole; a note says when the residuals failed a test). See
        :mod:`scalefit.fitting.bootstrap`.
    seed
        Seed for the bootstrap (the same inputs give the same result).
    flops_convention
        How FLOPs were counted, recorded on the result; taken from a single-valued ``flops_convention``
        column of ``data`` when not given.
    settings
        Optimiser settings; the defaults suit the shipped laws.

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
        Degenerate input: missing columns, non-finite or non-positive values, constant loss, a single
        value of an input (one model size for a joint law), fewer distinct points than free parameters,
        bad weights, unknown parameter names, or run resampling without ``run_id``.
    """
    if not isinstance(law, Law):
        raise FitError(f"law must be a scalefit law such as Chinchilla(), not {law!r}")
    if loss not in LOSSES:
        raise FitError(f"loss must be one of {LOSSES}, not {loss!r}")
    if not delta > 0:
        raise FitError(f"delta must be positive, not {delta!r}")
    if bootstrap < 0:
        raise FitError(f"bootstrap must be >= 0, not {bootstrap!r}")
    if bootstrap_scheme not in BOOTSTRAP_SCHEMES:
        raise FitError(f"bootstrap_scheme must be one of {BOOTSTRAP_SCHEMES}, not {bootstrap_scheme!r}")
    settings = settings or OptimiserSettings()
    free = free_parameters(law, fix, tie)
    points = _validated_points(law, data, free)
    point_weights = _point_weights(weights, data)
    by_run = _resample_by_run(resample, points)
    objective = Objective(
        law=law,
        inputs=law.input_array(points),
        log_loss=np.log(points["loss"].to_numpy(dtype=float)),
        point_weights=point_weights,
        loss=Loss(loss, float(delta)),
        free=free,
    )

    search = multistart(objective, _start_points(law, free, starts), settings)
    polished = polish(objective, search.best, settings)
    success, message = _verdict(search, polished, objective, settings)
    theta = free.expand(polished.z[None])

    residuals = objective.log_loss - law.log_predict(theta, objective.inputs)[0]
    interval_method, issue, n_units, scheme, scheme_note = "none", None, 0, "", ""
    draws = pd.DataFrame(columns=[*law.reported_names, *law.derived_names, "objective", "converged"])
    if bootstrap:
        scheme, scheme_note = _bootstrap_scheme(bootstrap_scheme, by_run, objective, residuals)
        rng = np.random.default_rng(seed)
        groups = points["run_id"].to_numpy() if by_run else None
        n_units = points["run_id"].nunique() if by_run else len(points)
        if scheme == "residual":
            counts = np.ones((bootstrap, len(points)))
            shifts = residual_shifts(residuals, len(free.names), bootstrap, rng)
        else:
            counts, shifts = resample_weights(len(points), bootstrap, rng, groups, scheme), None
        refits = refit_replicates(objective, polished.z, counts, settings, restarts=search.basins, shifts=shifts)
        draws = reported_frame(law, free.expand(refits.z))
        draws["objective"] = refits.objective
        draws["converged"] = refits.converged
        interval_method = ("bootstrap-residual" if scheme == "residual"
                           else "bootstrap-run" if by_run else "bootstrap-point")
        issue = identification_issue(counts, n_units, "run" if by_run else "point", points[list(law.inputs)],
                                     scheme)

    params = reported_frame(law, theta).iloc[0]
    return FitResult(
        law=law,
        params=params,
        interval_method=interval_method,
        success=success,
        message=message,
        objective=polished.objective,
        loss=objective.loss.describe(),
        n_points=len(points),
        n_starts=search.n_starts,
        n_pruned=search.n_pruned,
        n_converged=search.n_converged,
        n_best_basin=search.n_best_basin,
        draws=draws,
        data=points,
        residuals=pd.Series(residuals, index=points.index, name="log_residual"),
        flops_convention=_flops_convention(flops_convention, data),
        n_free=len(free.names),
        fixed={law.parameter(name).reported: float(params[law.parameter(name).reported]) for name in free.fixed},
        seed=seed,
        ranges=fitted_ranges(points),
        n_units=n_units,
        bootstrap_scheme=scheme,
        interval_issue=issue,
        tied=tuple(name for name in free.names if "=" in name),
        notes=(scheme_note,) if scheme_note else (),
    )


def reported_frame(law: Law, theta: np.ndarray) -> pd.DataFrame:
    """The law's reported and derived parameters, one row per fitting-space vector of ``theta``."""
    reported = pd.DataFrame(law.to_reported(theta), columns=list(law.reported_names))
    return pd.concat([reported, law.derive(reported)], axis=1)


def _validated_points(law: Law, data: pd.DataFrame, free: FreeParameters) -> pd.DataFrame:
    """The columns the fit uses, after checking that they can support a fit of ``law``."""
    if not isinstance(data, pd.DataFrame):
        raise FitError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    needed = [*law.inputs, "loss"]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise FitError(f"{law.name} needs columns {needed}; data lacks {missing} (has {list(data.columns)})")
    columns = needed + (["run_id"] if "run_id" in data.columns else [])
    points = data[columns].copy()
    for column in needed:
        values = pd.to_numeric(points[column], errors="coerce").to_numpy(dtype=float)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            rows = list(points.index[bad][:5])
            raise FitError(
                f"column {column!r} must be finite and positive: {bad.sum()} row(s) are not (first: {rows}); "
                "drop or fix them before fitting"
            )
        points[column] = values
    if points["loss"].nunique() == 1:
        raise FitError("the loss is the same at every point: there is nothing to fit")
    for column in law.inputs:
        if points[column].nunique() < 2:
            raise FitError(
                f"{law.name} needs at least two distinct values of {column!r}; all {len(points)} points have "
                f"{column} = {points[column].iloc[0]:g} (e.g. a joint law fitted to one model size)"
            )
    n_free = len(free.names)
    if len(points) <= n_free:
        raise FitError(f"{len(points)} points cannot determine {n_free} free parameters; need more points than that")
    distinct = len(points[list(law.inputs)].drop_duplicates())
    if distinct < n_free:
        raise FitError(
            f"only {distinct} distinct values of {list(law.inputs)} for {n_free} free parameters; add runs at "
            "other sizes, or fix/tie parameters"
        )
    return points


def _point_weights(weights: np.ndarray | Sequence[float] | str | None, data: pd.DataFrame) -> np.ndarray:
    """One weight per row of ``data`` (already validated, so every row is a fitted point)."""
    n_points = len(data)
    if weights is None:
        return np.ones(n_points)
    if isinstance(weights, str):
        if weights != "equal_per_size":
            raise FitError(f"weights must be an array or 'equal_per_size', not {weights!r}")
        if "params" not in data.columns:
            raise FitError("weights='equal_per_size' needs a 'params' column (model size)")
        sizes = data["params"]
        per_size = sizes.map(sizes.value_counts()).to_numpy(dtype=float)
        return n_points / (sizes.nunique() * per_size)
    values = np.asarray(weights, dtype=float)
    if values.shape != (n_points,):
        raise FitError(f"weights must have one value per point ({n_points}), got shape {values.shape}")
    if not (np.isfinite(values).all() and (values >= 0).all() and values.sum() > 0):
        raise FitError("weights must be finite, non-negative and not all zero")
    return values


def _start_points(
    law: Law, free: FreeParameters, starts: np.ndarray | pd.DataFrame | Mapping[str, Sequence[float]] | None
) -> np.ndarray:
    """Start vectors in the free space, duplicates (e.g. from fixed or tied grid columns) removed."""
    if starts is None:
        theta = law.start_grid()
    elif isinstance(starts, Mapping):
        unknown = [name for name in starts if name not in law.param_names]
        if unknown:
            raise FitError(f"unknown start grid name(s) {unknown}; {law.name} fits {list(law.param_names)}")
        axes = [tuple(starts.get(p.name, p.grid)) for p in law.parameters]
        theta = np.array(list(itertools.product(*axes)), dtype=float)
    else:
        frame = starts[list(law.param_names)] if isinstance(starts, pd.DataFrame) else starts
        theta = np.asarray(frame, dtype=float)
        if theta.ndim != 2 or theta.shape[1] != len(law.parameters):
            raise FitError(f"starts must be (starts, {len(law.parameters)}) in the order {list(law.param_names)}")
    return np.unique(free.reduce(theta), axis=0)


def _verdict(
    search: MultiStart, polished: Polished, objective: Objective, settings: OptimiserSettings
) -> tuple[bool, str]:
    """``success`` and ``message``: scipy's words, with our reason when we overrule or qualify them.

    A failed line search (scipy's ``ABNORMAL``) at a point that passes the stationarity check is
    accepted: it means L-BFGS-B started where no lower point exists, a common end at Huber's kinks.
    A parameter on its bound, or one that no longer acts on the fit (:func:`inert_parameters`), fails it.
    """
    free = objective.free
    scipy_result = polished.scipy_result
    scipy_message = str(scipy_result.message)
    reasons = []
    if search.n_converged == 0:
        reasons.append(f"no start converged within {settings.max_iterations} steps")
    if polished.stationarity > settings.stationarity_tolerance:
        reasons.append(
            f"not stationary after the polish (relative gradient {polished.stationarity:.2g} > "
            f"{settings.stationarity_tolerance:g})"
        )
    span = free.bounds[:, 1] - free.bounds[:, 0]
    on_bound = (polished.z - free.bounds[:, 0] <= 1e-9 * span) | (free.bounds[:, 1] - polished.z <= 1e-9 * span)
    for name, z in zip(np.array(free.names)[on_bound], polished.z[on_bound]):
        reasons.append(f"{name} ended on its bound ({z:g} in the fitting space): the data do not pin it down")
    for name, z, bound in inert_parameters(objective, polished.z, skip=on_bound):
        reasons.append(f"{name} no longer acts on the fit ({z:g} in the fitting space; moving it to its bound "
                       f"{bound:g} changes no prediction by more than {INERT_LOG_CHANGE:g} in log L): a term of the "
                       "law has vanished and the data do not pin it down")
    line_search_stall = scipy_message.startswith("ABNORMAL")
    if not scipy_result.success and not line_search_stall:
        reasons.append("the L-BFGS-B polish failed")
    if reasons:
        return False, "; ".join(reasons) + f" (scipy L-BFGS-B: {scipy_message})"
    if line_search_stall:
        return True, (
            f"{scipy_message.strip()} (L-BFGS-B's line search found no lower point; accepted as converged: "
            f"relative gradient {polished.stationarity:.1g})"
        )
    return True, scipy_message


def inert_parameters(objective: Objective, z: np.ndarray,
                     skip: np.ndarray | None = None) -> list[tuple[str, float, float]]:
    """Free parameters that no longer act on the fit at ``z``: ``(name, value, nearest bound)`` for each one
    whose move to its nearest bound changes no predicted log loss by more than :data:`INERT_LOG_CHANGE`.

    This is a fit ended on its bound in effect, not in value: an amplitude run to ``e^-30`` or an exponent run
    to 10 leaves its term at zero at every point, where the objective is flat and the optimiser stops short of
    the bound. The bootstrap cannot leave such a corner (each refit starts in it, and its data come from a law
    without the term), so its intervals are too narrow (Andrews 2000, *Econometrica* 68: the bootstrap is
    inconsistent at the boundary of the parameter space).
    """
    free = objective.free
    z = np.asarray(z, dtype=float)
    skip = np.zeros(len(z), dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    lower, upper = free.bounds[:, 0], free.bounds[:, 1]
    nearest = np.where(z - lower <= upper - z, lower, upper)
    moved = np.tile(z, (len(z), 1))
    moved[np.arange(len(z)), np.arange(len(z))] = nearest
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        predictions = objective.law.log_predict(free.expand(np.vstack([z, moved])), objective.inputs)
    change = np.abs(predictions[1:] - predictions[0]).max(axis=1)
    inert = (change <= INERT_LOG_CHANGE) & ~skip
    return [(free.names[j], float(z[j]), float(nearest[j])) for j in np.flatnonzero(inert)]


def _bootstrap_scheme(
    requested: str, by_run: bool, objective: Objective, log_residuals: np.ndarray
) -> tuple[str, str]:
    """The scheme to use and, when ``auto`` passed over residuals for a reason, a note saying why."""
    if requested == "residual":
        if by_run:
            raise FitError("bootstrap_scheme='residual' resamples points, but runs here hold several points "
                           "(not independent): use 'bayesian' (whole runs reweighted) or resample='point'")
        if not objective.loss.log_space:
            raise FitError("bootstrap_scheme='residual' needs a loss on log L ('huber' or 'mse_log')")
    if requested != "auto":
        return requested, ""
    if by_run or not objective.loss.log_space:
        return "bayesian", ""
    structure = residual_structure(log_residuals, objective.inputs)
    if structure:
        return "bayesian", (f"bootstrap: points reweighted (Bayesian weights) rather than residuals resampled: "
                            f"{structure}; reweighting stays valid there, but its intervals run wide")
    return "residual", ""


def _resample_by_run(resample: str | None, points: pd.DataFrame) -> bool:
    has_runs = "run_id" in points.columns
    if resample is None:
        return has_runs and bool(points["run_id"].duplicated().any())
    if resample == "run":
        if not has_runs:
            raise FitError("resample='run' needs a 'run_id' column; use resample='point' for independent points")
        return True
    if resample == "point":
        return False
    raise FitError(f"resample must be 'run', 'point' or None, not {resample!r}")


def _flops_convention(given: str | None, data: pd.DataFrame) -> str | None:
    if given is not None or "flops_convention" not in data.columns:
        return given
    conventions = data["flops_convention"].dropna().unique()
    return str(conventions[0]) if len(conventions) == 1 else None
