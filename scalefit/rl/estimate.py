"""``fit_rl``: the learning-efficiency law fitted by the engine to RL curves, with segment-bootstrap draws."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalefit.errors import FitError, ScalefitInputError
from scalefit.fitting import FitResult, fit
from scalefit.fitting.resampling import default_segment_length, refit_resamples, segment_counts
from scalefit.laws.rl_efficiency import RLEfficiency, size_label
from scalefit.results import DEFAULT_LEVEL, check_level, status_from
from scalefit.rl.backtest import INTERCEPT_TREND, VARIANTS, heldout_errors, predict_targets, r2
from scalefit.rl.data import X_COLUMNS, parse_protocol, rl_points
from scalefit.rl.result import RLFit, sizes_frame

#: Objectives: the paper's squared error on L, or Huber on log L (the engine's names).
LOSSES = {"mse": "mse", "huber": "huber"}
PAPER_CONSTANTS = {
    "base, L(N,C)": {"K_max": 0.135, "N0": 13.1e9},
    "base, L(N,D)": {"K_max": 0.135, "N0": 11.5e9},
    "instruct, L(N,C)": {"K_max": 0.128, "N0": 17.3e9},
}
#: Below this share of converged bootstrap refits the intervals may miss a tail: the result is suspect.
MIN_CONVERGED_SHARE = 0.5


def fit_rl(table: pd.DataFrame, *, x: str = "compute", metric: str = "pass_at_1",
           metric_is_error: bool = False, loss: str = "mse", delta: float = 1e-3,
           protocol: str | None = None, variant: str = "both", anchor: float = 0.1,
           bootstrap: int = 200, segment_length: int | None = None,
           clip: float | str | None = "auto", seed: int = 0, level: float = DEFAULT_LEVEL,
           source: str | None = None) -> RLFit:
    """Fit ``log L = −k(N) log X + E(N)``, ``k(N) = K_max / (1 + N0/N)`` to RL curves, optionally backtested.

    Parameters
    ----------
    table
        RL runs table (see :func:`~scalefit.rl.load_rl_runs`): one row per (run, evaluation).
    x, metric, metric_is_error, clip
        What ``X`` and ``L`` are, and how error rates of 0 or 1 are handled: see :func:`~scalefit.rl.rl_points`.
    loss
        ``"mse"``: squared error of ``L`` (Tan et al.); ``"huber"``: Huber on ``log L`` with threshold
        ``delta``. Either way every size gets the same total weight.
    protocol
        None (fit everything), ``"early:F"`` or ``"holdout-largest:K"`` (see :mod:`scalefit.rl`).
    variant
        For ``holdout-largest``: ``"slope-only"``, ``"full"`` or ``"both"``.
    anchor
        For ``slope-only``: the target's intercept is refitted on its points with ``X ≤ anchor · X_max``;
        both variants are scored on the points after them.
    bootstrap
        Segment-bootstrap replicates (0: no intervals); see
        :func:`scalefit.fitting.resampling.segment_counts`.
    segment_length
        Points per bootstrap segment; default ``ceil(n^(1/3))`` for the median curve length ``n``.
    seed
        Seeds the bootstrap.
    level
        Default coverage of the result's intervals (0.95); ``conf_int(level)`` gives any other.
    source
        Where the table came from, recorded on the result.

    Returns
    -------
    RLFit

    Raises
    ------
    FitError
        One model size, a flat curve, too few points for a protocol, error rates of 0 or 1 without clipping.
    ScalefitInputError
        Unknown ``loss``, ``variant``, ``protocol``, a bad ``anchor``, ``bootstrap`` or ``level``.
    """
    if loss not in LOSSES:
        raise ScalefitInputError(f"loss must be one of {sorted(LOSSES)}, not {loss!r}")
    if variant not in (*VARIANTS, "both"):
        raise ScalefitInputError(f"variant must be one of {[*VARIANTS, 'both']}, not {variant!r}")
    if not 0 < anchor < 1:
        raise ScalefitInputError(f"anchor must be a fraction in (0, 1), not {anchor!r}")
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ScalefitInputError(f"bootstrap must be a whole number >= 0 (0: no intervals), not {bootstrap!r}")
    level = check_level(level)
    parsed = parse_protocol(protocol)
    points, clipping, notes = rl_points(table, x=x, metric=metric, metric_is_error=metric_is_error, clip=clip)
    x_column = X_COLUMNS[x]
    points["size"] = points["params"].map(size_label)
    points["x"] = points[x_column]
    _check_curves(points)
    targets = _assign_roles(points, parsed, anchor)

    fitted = points[points["role"] == "fit"]
    law = RLEfficiency(fitted["params"].unique(), x_column)
    weights = _equal_per_size(fitted["params"])
    result = fit(law, fitted, loss=LOSSES[loss], delta=delta, weights=weights,
                 starts=_starts(law, fitted, weights), bootstrap=0, seed=seed)
    bound = _n0_bound(law, result)
    failed, suspect = [], []
    if not np.isfinite(result.params.to_numpy(dtype=float)).all() or result.n_converged == 0:
        failed.append(f"no usable optimum: {result.message}")
    elif not result.success:
        suspect.append(f"the optimiser did not accept the optimum: {result.message}")
    if bound:
        suspect.append(_SATURATION_NOTES[bound])
    segment = segment_length or default_segment_length(fitted["run_id"])
    draws, resampled = pd.DataFrame(), bool(bootstrap) and not failed
    if resampled:
        # An N0 on its bound is a flat direction: bootstrap refits would wander along it and never converge.
        fix = {"N0": float(result.params["N0"])} if bound else None
        counts = segment_counts(fitted["run_id"], fitted["x"], segment, bootstrap, np.random.default_rng(seed))
        refits = refit_resamples(law, fitted, counts, result.params, loss=LOSSES[loss], delta=delta,
                                 weights=weights, fix=fix)
        names = [*law.reported_names, *law.derived_names]
        draws = refits.loc[refits["converged"], names].drop(columns=["N0"] if bound else []).reset_index(drop=True)
        if bound:
            notes.append("the bootstrap held N0 at its bound: the intervals of K_max, k and E are conditional on "
                         "it, and N0 has none")
        if len(draws) < bootstrap:
            notes.append(f"{len(draws)} of {bootstrap} bootstrap refits converged; the intervals use those"
                         + ("" if len(draws) else " (none: no intervals)"))
        if len(draws) < MIN_CONVERGED_SHARE * bootstrap:
            suspect.append(f"only {len(draws)} of {bootstrap} bootstrap refits converged: the intervals may "
                           "miss a tail")
    status, reasons = status_from(failed, suspect)
    notes += [reason for reason in reasons if reason not in notes]

    known = points["params"].isin(law.sizes)
    points["L_hat"] = np.nan
    points.loc[known, "L_hat"] = law.predict(result.params, points[known])
    r2_fit = r2(fitted["loss"], points.loc[fitted.index, "L_hat"])
    r2_log = r2(np.log(fitted["loss"]), np.log(points.loc[fitted.index, "L_hat"]))
    sizes = _sizes(law, result, points)

    heldout, protocol_info = None, None
    if parsed is not None and parsed[0] == "early":
        protocol_info = {"name": "early", "fraction": parsed[1]}
        heldout = heldout_errors(points[points["role"] == "heldout"], "L_hat")
    elif parsed is not None:
        variants = list(VARIANTS) if variant == "both" else [variant]
        protocol_info = {"name": "holdout-largest", "k": parsed[1], "variants": variants, "anchor": anchor,
                         "targets": [size_label(n) for n in targets], "intercept_trend": INTERCEPT_TREND}
        heldout = predict_targets(law, result, points, sizes, targets, variants, loss, delta)
    return RLFit(fit=result, x=x, x_column=x_column, metric="L" if metric_is_error else metric, sizes=sizes,
                 draws=draws, interval_method=f"bootstrap-segment({segment})" if resampled else "none",
                 n_requested=int(bootstrap), r2=r2_fit, r2_log=r2_log, protocol=protocol_info,
                 heldout_error=heldout, points=points, clipping=clipping, status=status, reasons=reasons,
                 notes=tuple(notes), level=level, segment_length=segment if resampled else None,
                 n0_held=bound if resampled else None, seed=seed, source=source)


def _sizes(law: RLEfficiency, result: FitResult, points: pd.DataFrame) -> pd.DataFrame:
    """The per-size table (:attr:`RLFit.sizes`): the law's k and E at fitted sizes, k from the law at targets,
    and every size's own slope."""
    entries = {}
    for n, group in points.groupby("params"):
        entry = {"N": n, "role": "fit" if n in law.sizes else "target", "n_points": len(group)}
        if entry["role"] == "fit":
            s = int(law.size_index([n])[0])
            entry.update({"k": result.params[law.derived_names[s]], "E": result.params[law.reported_names[2 + s]],
                          "k_free": _free_slope(group[group["role"] == "fit"])})
        else:
            entry.update({"k": float(law.efficiency(result.params["K_max"], result.params["N0"], n)),
                          "k_free": _free_slope(group)})
        entries[size_label(n)] = entry
    return sizes_frame(entries)



def _check_curves(points: pd.DataFrame) -> None:
    sizes = points["params"].unique()
    if len(sizes) < 2:
        raise FitError(f"all curves have one model size (N = {sizes[0]:g}): K_max and N0 describe how the RL "
                       "slope changes with N, so they need at least 2 sizes (3 or more to test saturation)")
    for n, group in points.groupby("params"):
        if group["x"].nunique() < 2:
            raise FitError(f"size N = {n:g} has a single value of X; a slope needs at least 2")
        if group["loss"].nunique() == 1:
            raise FitError(f"the curve(s) of size N = {n:g} are flat (L = {group['loss'].iloc[0]:g} at every "
                           "point): the law needs L to change with X; check the metric column or drop that "
                           "size")


_SATURATION_NOTES = {
    "lower": "N0 is on its lower bound: k does not grow with N over the sizes fitted, so K_max is their "
             "common slope and N0 is not identified (no saturation is visible)",
    "upper": "N0 is on its upper bound: k grows in proportion to N over the sizes fitted, without "
             "saturating, so only K_max / N0 is identified",
}


def _n0_bound(law: RLEfficiency, result: FitResult) -> str | None:
    """``"lower"`` or ``"upper"`` when the fitted ``N0`` sits on that bound, else None."""
    low, high = law.parameter("n0").bounds
    log_n0 = math.log(result.params["N0"])
    if log_n0 - low < 1e-6 * (high - low):
        return "lower"
    if high - log_n0 < 1e-6 * (high - low):
        return "upper"
    return None


def _assign_roles(points: pd.DataFrame, parsed: tuple[str, float] | None, anchor: float) -> list[float]:
    """Set ``points["role"]`` (fit, heldout, anchor) for the protocol; return the target sizes."""
    points["role"] = "fit"
    if parsed is None:
        return []
    name, value = parsed
    if name == "early":
        points["role"] = np.where(_fraction_mask(points, value), "fit", "heldout")
        counts = points.groupby("run_id")["role"].value_counts().unstack(fill_value=0)
        short = counts.index[(counts.get("fit", 0) < 2) | (counts.get("heldout", 0) < 1)]
        if len(short):
            raise FitError(f"protocol early:{value:g} leaves {len(short)} curve(s) with fewer than 2 fitted "
                           f"points or no held-out point (e.g. {list(short[:3])}); choose another fraction")
        return []
    sizes = np.sort(points["params"].unique())
    if len(sizes) - value < 2:
        raise FitError(f"holdout-largest:{value} leaves {len(sizes) - value} size(s) to fit; K_max and N0 "
                       f"need at least 2 (the data have {len(sizes)} sizes)")
    targets = list(sizes[-int(value):])
    is_target = points["params"].isin(targets)
    points.loc[is_target, "role"] = np.where(_fraction_mask(points[is_target], anchor), "anchor", "heldout")
    return targets


def _fraction_mask(points: pd.DataFrame, fraction: float) -> np.ndarray:
    """Points within the first ``fraction`` of their curve: ``X ≤ fraction · X_max`` of the run."""
    return (points["x"] <= fraction * points.groupby("run_id")["x"].transform("max")).to_numpy()


def _equal_per_size(params: pd.Series) -> np.ndarray:
    """``w_i = n / (K · n_k)``: each of the K sizes carries the same total weight whatever its point count."""
    counts = params.map(params.value_counts()).to_numpy(dtype=float)
    return len(params) / (params.nunique() * counts)


def _starts(law: RLEfficiency, points: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """The law's (K_max, N0) grid, each start with the intercepts that fit best given its slopes."""
    grid = law.start_grid()[:, :2]
    index = law.size_index(points["params"].to_numpy())
    log_x, log_l = np.log(points["x"].to_numpy()), np.log(points["loss"].to_numpy())
    k = law.efficiency(grid[:, :1], np.exp(grid[:, 1:2]), law.sizes[index][None, :])  # (starts, points)
    offsets = log_l[None, :] + k * log_x[None, :]
    intercepts = np.zeros((len(grid), len(law.sizes)))
    for s in range(len(law.sizes)):
        mask = index == s
        intercepts[:, s] = offsets[:, mask] @ weights[mask] / weights[mask].sum()
    return np.concatenate([grid, intercepts], axis=1)



def _free_slope(group: pd.DataFrame) -> float:
    """A size's own least-squares slope ``k`` of ``log L = −k log X + E`` (with its own intercept)."""
    return float(-np.polyfit(np.log(group["x"].to_numpy()), np.log(group["loss"].to_numpy()), 1)[0])


