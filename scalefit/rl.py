"""RL post-training scaling: fit the learning-efficiency law to pass@1 curves, and backtest it honestly.

Tan et al. (2025), "Scaling Behaviors of LLM Reinforcement Learning Post-Training" (arXiv:2509.25300), model
the test error ``L = 1 − pass@1`` of RL post-training as::

    log L = −k(N) · log X + E(N),      k(N) = K_max / (1 + N0 / N),

with ``X`` the RL compute ``C = Σ 6·N·(tokens processed per step)`` or data ``D`` (samples seen), ``E(N)`` a
free intercept per model size (:class:`scalefit.laws.RLEfficiency`). Reported (Qwen2.5 base, L(N, C)):
``K_max = 0.135, N0 = 13.1B``. They fit by CMA-ES on the squared error of ``L`` (not ``log L``) with equal
total weight per model size; here the shared engine (:func:`scalefit.fitting.fit`, multi-start, bounds)
minimises the same objective (``loss="mse"``) or Huber on ``log L`` (``loss="huber"``).

Two backtests (:func:`fit_rl`'s ``protocol``):

``early:F``
    Fit on the first fraction ``F`` of every curve (``X ≤ F · X_max`` of that curve), predict the rest.
``holdout-largest:K``
    Fit on every size but the ``K`` largest, predict each held-out size's curve in two named variants:
    ``slope-only`` takes ``k(N)`` from the fitted law and refits the intercept ``E(N)`` on the target's
    first points (``X ≤ anchor · X_max``), as in Tan et al.'s code — it tests the slope, not a prediction
    from smaller models alone; ``full`` also extrapolates the intercept, by the least-squares line of
    ``E`` against ``log N`` over the fitted sizes — a true out-of-sample prediction. Both are scored on the
    target's points after the anchor, so their errors compare.

Intervals come from a block bootstrap: every curve is cut into contiguous segments of ``segment_length``
points, and each replicate redraws, within every curve, as many segments as it has (so every curve and
size stays in every replicate while neighbouring, correlated evaluations move together); replicates are
refitted by the engine from the optimum, and intervals are percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import huber

from scalefit.errors import FitError, RunsTableError, ScalefitInputError
from scalefit.fitting import FitResult, OptimiserSettings, fit
from scalefit.fitting.bootstrap import percentile_intervals, refit_replicates
from scalefit.fitting.objective import Loss, Objective
from scalefit.fitting.parameters import free_parameters
from scalefit.io import json_safe
from scalefit.laws.rl_efficiency import RLEfficiency, size_label

#: ``x`` choices and the runs-table column each one reads.
X_COLUMNS = {"compute": "flops", "data": "samples"}
#: Objectives: the paper's squared error on L, or Huber on log L (the engine's names).
LOSSES = {"mse": "mse", "huber": "huber"}
VARIANTS = ("slope-only", "full")
PAPER_CONSTANTS = {
    "base, L(N,C)": {"K_max": 0.135, "N0": 13.1e9},
    "base, L(N,D)": {"K_max": 0.135, "N0": 11.5e9},
    "instruct, L(N,C)": {"K_max": 0.128, "N0": 17.3e9},
}
_LEVEL = 0.95
_DEFAULT_CLIP = 1e-3
_TITLE = ("RL post-training scaling law (Tan et al. 2025): log L = -k(N) log X + E(N), "
          "k(N) = K_max / (1 + N0/N)")


# --- input ------------------------------------------------------------------------------------------


def load_rl_runs(path: str | Path) -> pd.DataFrame:
    """Read an RL runs table (parquet, or CSV by suffix); one row per (run, evaluation).

    Columns used: ``run_id``, ``params`` (N), ``flops`` (RL compute, for ``x="compute"``) or ``samples``
    (answers sampled, for ``x="data"``), and the metric (default ``pass_at_1``); optional ``status``
    (rows other than ``ok`` are dropped) and ``heldout_problems`` (sets the default clipping).
    """
    path = Path(path)
    if not path.exists():
        raise RunsTableError(f"{path}: file not found; check the path")
    name = path.name.lower()
    if not name.endswith((".parquet", ".pq", ".csv", ".csv.gz")) or path.is_dir():
        raise RunsTableError(f"{path}: unsupported file type; use .parquet, .pq, .csv or .csv.gz")
    what = "a parquet file" if name.endswith((".parquet", ".pq")) else "a comma-separated text file"
    try:
        table = pd.read_parquet(path) if what == "a parquet file" else pd.read_csv(path)
    except Exception as err:  # any reader failure means the same thing to the user
        detail = " ".join(str(err).split())[:200]
        raise RunsTableError(f"{path}: cannot be read as {what} ({type(err).__name__}: {detail}); check that the "
                             "file is complete and really is one, or rewrite it") from err
    if len(table) == 0:
        raise RunsTableError(f"{path}: the table has no rows; it needs one row per (run, evaluation)")
    return table


@dataclass(frozen=True)
class Clipping:
    """How error rates at 0 or 1 (where ``log L`` or the law breaks down) were moved into (0, 1)."""

    epsilon: float
    n_low: int
    n_high: int

    @property
    def n_clipped(self) -> int:
        return self.n_low + self.n_high

    def describe(self) -> str:
        return (f"clipped {self.n_low} point(s) with L = 0 and {self.n_high} with L = 1 into "
                f"[{self.epsilon:g}, 1 − {self.epsilon:g}]")


def rl_points(table: pd.DataFrame, *, x: str = "compute", metric: str = "pass_at_1",
              metric_is_error: bool = False,
              clip: float | str | None = "auto") -> tuple[pd.DataFrame, Clipping, list[str]]:
    """The points a fit uses: ``run_id, params, <x column>, loss`` with ``loss = L``, and what was done.

    Parameters
    ----------
    table
        RL runs table.
    x
        ``"compute"`` (column ``flops``) or ``"data"`` (column ``samples``).
    metric
        Column of the success rate (pass@1 in [0, 1]); ``L = 1 − metric``. With ``metric_is_error`` the
        column is the error rate itself.
    clip
        Error rates of exactly 0 (``log L`` undefined) or 1 are moved to ``ε`` or ``1 − ε``: ``"auto"``
        takes ``ε = 0.5 / heldout_problems`` when the table has that column (half a problem), else 1e-3;
        a number sets ``ε``; None raises instead. Other values are left as they are.

    Returns
    -------
    (points, clipping, notes)
        ``notes`` lists the rows dropped (X = 0, such as the evaluation before RL; status other than ok)
        and the clipping.

    Raises
    ------
    RunsTableError
        Missing columns, non-numeric values, or metric values outside [0, 1].
    FitError
        An error rate of 0 or 1 with ``clip=None``; no row with X > 0.
    """
    if x not in X_COLUMNS:
        raise ScalefitInputError(f"x must be one of {sorted(X_COLUMNS)}, not {x!r}")
    x_column = X_COLUMNS[x]
    needed = {"run_id": "run identifier", "params": "model size N", x_column: f"RL {x} so far",
              metric: "the evaluation metric"}
    missing = [f"{c!r} ({what})" for c, what in needed.items() if c not in table.columns]
    if missing:
        source = table.attrs.get("source", "the RL runs table")
        raise RunsTableError(f"{source}: lacks column(s) {', '.join(missing)}; it has "
                             f"{list(table.columns)} (use --metric for another metric column)")
    notes = []
    frame = table
    if "status" in frame.columns:
        bad = frame["status"].fillna("ok") != "ok"
        if bad.any():
            runs = sorted(frame.loc[bad, "run_id"].astype(str).unique())
            statuses = sorted(frame.loc[bad, "status"].astype(str).unique())
            notes.append(f"dropped {int(bad.sum())} row(s) of {len(runs)} run(s) with status {statuses} "
                         f"(not 'ok'): {', '.join(runs[:5])}{' …' if len(runs) > 5 else ''}")
            frame = frame[~bad]
    values = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
              for c in ("params", x_column, metric)}
    for column in ("params", metric):
        bad = ~np.isfinite(values[column])
        if bad.any():
            raise RunsTableError(f"column {column!r} has {int(bad.sum())} non-numeric or non-finite value(s) "
                                 f"(first rows: {list(frame.index[bad][:5])})")
    if (values["params"] <= 0).any():
        raise RunsTableError("column 'params' must be > 0 (N, the model's parameter count)")
    outside = (values[metric] < 0) | (values[metric] > 1)
    if outside.any():
        raise RunsTableError(f"column {metric!r} must be a rate in [0, 1]; {int(outside.sum())} value(s) are "
                             f"not (first rows: {list(frame.index[outside][:5])})")
    keep = np.isfinite(values[x_column]) & (values[x_column] > 0)
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} row(s) with {x_column} = 0 or missing (log X is "
                     "undefined there; e.g. the evaluation before RL)")
    error = values[metric] if metric_is_error else 1.0 - values[metric]
    points = pd.DataFrame({"run_id": frame["run_id"].astype(str).to_numpy(), "params": values["params"],
                           x_column: values[x_column], "loss": error})[keep].reset_index(drop=True)
    if points.empty:
        raise FitError(f"no rows with {x_column} > 0 to fit")

    low, high = points["loss"] <= 0, points["loss"] >= 1
    if clip is None and (low.any() or high.any()):
        raise FitError(f"{int(low.sum())} point(s) have L = 0 (pass@1 = 1; log L is undefined) and "
                       f"{int(high.sum())} have L = 1; drop them or allow clipping (clip='auto' or an ε)")
    epsilon = _clip_epsilon(clip, frame)
    points.loc[low, "loss"], points.loc[high, "loss"] = epsilon, 1.0 - epsilon
    clipping = Clipping(epsilon, int(low.sum()), int(high.sum()))
    if clipping.n_clipped:
        notes.append(clipping.describe())
    points = points.sort_values(["params", "run_id", x_column], kind="stable").reset_index(drop=True)
    return points, clipping, notes


def _clip_epsilon(clip: float | str | None, table: pd.DataFrame) -> float:
    if clip == "auto":
        problems = pd.to_numeric(table.get("heldout_problems", pd.Series(dtype=float)), errors="coerce")
        return 0.5 / float(problems.max()) if problems.notna().any() else _DEFAULT_CLIP
    epsilon = _DEFAULT_CLIP if clip is None else float(clip)
    if not 0 < epsilon < 0.5:
        raise ScalefitInputError(f"clip must be 'auto', None or a number in (0, 0.5), not {clip!r}")
    return epsilon


def parse_protocol(protocol: str | None) -> tuple[str, float] | None:
    """``"early:0.5"`` -> ``("early", 0.5)``; ``"holdout-largest:1"`` -> ``("holdout-largest", 1)``."""
    if protocol is None:
        return None
    name, _, value = str(protocol).partition(":")
    try:
        if name == "early":
            fraction = float(value)
            if 0 < fraction < 1:
                return name, fraction
        elif name == "holdout-largest":
            count = int(value or 1)
            if count >= 1:
                return name, count
    except ValueError:
        pass
    raise ScalefitInputError(f"protocol must be 'early:F' with 0 < F < 1 or 'holdout-largest:K' with K >= 1, "
                             f"not {protocol!r}")


# --- result ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RLFit:
    """A fitted learning-efficiency law, its intervals, and (with a protocol) its held-out errors.

    Attributes
    ----------
    fit
        The engine's :class:`~scalefit.fitting.FitResult` on the fitted points (``success``/``message``
        say whether the optimum can be trusted, e.g. ``N0`` on its bound when ``k`` does not saturate).
    x, x_column, metric
        What ``X`` is (``compute`` or ``data``), its column, and the metric column (``"L"`` when the
        metric was the error rate itself).
    per_size
        One row per size (index: size label): ``N``, ``role`` (``fit`` or ``target``), ``n_points``, ``k``
        and ``E`` with ``_lo``/``_hi`` bounds, ``k_free`` (the size's own least-squares slope of ``log L``
        on ``log X``, over the points it was fitted on, a check of the saturating form), and for targets
        ``k`` from the law and ``E_slope_only``/``E_full``.
    intervals
        ``lo``/``hi`` of ``K_max``, ``N0``, every ``k[...]`` and ``E[...]`` at :attr:`level`.
    interval_method, n_bootstrap
        E.g. ``bootstrap-segment(3)``: the block bootstrap with segments of 3 points (``none`` without),
        and how many of its refits converged (the intervals use those).
    r2, r2_log
        Coefficient of determination of the fit on ``L`` and on ``log L`` (fitted points, unweighted).
    protocol
        None, or the backtest: ``name``, ``fraction`` or ``k``, and for ``holdout-largest`` the ``variants``,
        ``anchor`` fraction, ``targets`` and ``intercept_trend``.
    heldout_error
        None, or the errors on held-out points: ``rmse`` (of L), ``r2``, ``rel_error_end`` (mean over curves
        of ``|L̂ − L| / L`` at each curve's last point), ``rel_error_end_max``, ``n_points``, ``per_size``;
        for ``holdout-largest`` one such dict per variant, keyed by its name.
    points
        Every point: ``run_id, params, size, x, loss`` (= L), ``role`` (``fit``, ``heldout`` or ``anchor``),
        ``L_hat`` (the fitted law, at fitted sizes) and for targets ``L_hat_slope_only``/``L_hat_full``.
    clipping, notes
        How error rates of 0 or 1 were clipped, and every row dropped or adjusted, every caveat.
    """

    fit: FitResult
    x: str
    x_column: str
    metric: str
    per_size: pd.DataFrame
    intervals: pd.DataFrame
    interval_method: str
    n_bootstrap: int
    r2: float
    r2_log: float
    protocol: dict | None
    heldout_error: dict | None
    points: pd.DataFrame
    clipping: Clipping
    notes: tuple[str, ...] = field(default_factory=tuple)
    level: float = _LEVEL

    @property
    def params(self) -> pd.Series:
        """``K_max`` and ``N0``."""
        return self.fit.params[["K_max", "N0"]]

    def summary(self) -> str:
        """A plain-text report: the law, estimates with intervals, per-size table, fit quality, backtest."""
        p, ci = self.params, self.intervals
        n_fitted = int((self.points["role"] == "fit").sum())
        lines = [
            _TITLE,
            f"L = 1 - {self.metric}" if self.metric != "L" else "L = error rate",
            f"X = {self.x} (column {self.x_column!r}); objective: {self.fit.loss}, equal weight per size",
            f"fit: {'ok' if self.fit.success else 'SUSPECT'} - {self.fit.message}",
            f"  K_max = {p['K_max']:.4g}  [{ci.loc['K_max', 'lo']:.4g}, {ci.loc['K_max', 'hi']:.4g}]",
            f"  N0    = {p['N0']:.4g}  [{ci.loc['N0', 'lo']:.4g}, {ci.loc['N0', 'hi']:.4g}]",
            f"  ({self.level:.0%} intervals, {self.interval_method}, {self.n_bootstrap} replicates)",
            f"  R^2 = {self.r2:.4f} on L, {self.r2_log:.4f} on log L ({n_fitted} points)",
            "",
            self.per_size.to_string(float_format=lambda v: f"{v:.4g}"),
        ]
        if self.protocol is not None:
            lines += ["", f"protocol: {_describe_protocol(self.protocol)}"]
            by_variant = self.protocol["name"] == "holdout-largest"
            for variant, err in (self.heldout_error.items() if by_variant else [("", self.heldout_error)]):
                lines.append(f"  {variant + ': ' if variant else ''}held-out RMSE(L) = {err['rmse']:.4g}, "
                             f"R^2 = {err['r2']:.4f}, relative error at the end = {err['rel_error_end']:.2%} "
                             f"(max {err['rel_error_end_max']:.2%}), {err['n_points']} points")
        if self.notes:
            lines += ["", "notes:", *(f"  - {note}" for note in self.notes)]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able: ``params`` (K_max, N0, per size k, E), ``intervals``, ``r2``, ``protocol``, errors."""
        sizes = {}
        for label, row in self.per_size.iterrows():
            entry = {"N": float(row["N"]), "role": row["role"], "k": _num(row["k"]),
                     "k_free": _num(row["k_free"])}
            if row["role"] == "fit":
                entry["E"] = _num(row["E"])
            for column in ("E_slope_only", "E_full"):
                if row["role"] == "target" and column in row:
                    entry[column] = _num(row[column])
            sizes[label] = entry
        return {
            "law": "rl-efficiency (Tan et al. 2025, arXiv:2509.25300)",
            "x": self.x, "x_column": self.x_column, "metric": self.metric, "objective": self.fit.loss,
            "weights": "equal total weight per size",
            "params": {"K_max": float(self.params["K_max"]), "N0": float(self.params["N0"]), "sizes": sizes},
            "intervals": {name: [_num(lo), _num(hi)] for name, (lo, hi) in self.intervals.iterrows()},
            "interval_method": self.interval_method, "n_bootstrap": self.n_bootstrap, "level": self.level,
            "r2": _num(self.r2), "r2_log": _num(self.r2_log),
            "success": bool(self.fit.success), "message": self.fit.message,
            "protocol": self.protocol, "heldout_error": json_safe(self.heldout_error),
            "clipping": {"epsilon": self.clipping.epsilon, "n_low": self.clipping.n_low,
                         "n_high": self.clipping.n_high},
            "notes": list(self.notes), "n_points": len(self.points),
        }

    def plot_curves(self, ax=None):
        """L against X per size, log-log, with the fits (:func:`scalefit.plots.plot_rl_curves`)."""
        from scalefit.plots import plot_rl_curves

        return plot_rl_curves(self, ax=ax)

    def plot_efficiency(self, ax=None):
        """k per size and the saturation curve k(N) (:func:`scalefit.plots.plot_rl_efficiency`)."""
        from scalefit.plots import plot_rl_efficiency

        return plot_rl_efficiency(self, ax=ax)


# --- fitting ---------------------------------------------------------------------------------------


def fit_rl(table: pd.DataFrame, *, x: str = "compute", metric: str = "pass_at_1",
           metric_is_error: bool = False, loss: str = "mse", delta: float = 1e-3,
           protocol: str | None = None, variant: str = "both", anchor: float = 0.1,
           bootstrap: int = 200, segment_length: int | None = None,
           clip: float | str | None = "auto", seed: int = 0) -> RLFit:
    """Fit ``log L = −k(N) log X + E(N)``, ``k(N) = K_max / (1 + N0/N)`` to RL curves, optionally backtested.

    Parameters
    ----------
    table
        RL runs table (see :func:`load_rl_runs`): one row per (run, evaluation).
    x, metric, metric_is_error, clip
        What ``X`` and ``L`` are, and how error rates of 0 or 1 are handled: see :func:`rl_points`.
    loss
        ``"mse"``: squared error of ``L`` (Tan et al.); ``"huber"``: Huber on ``log L`` with threshold
        ``delta``. Either way every size gets the same total weight.
    protocol
        None (fit everything), ``"early:F"`` or ``"holdout-largest:K"`` (see the module docstring).
    variant
        For ``holdout-largest``: ``"slope-only"``, ``"full"`` or ``"both"``.
    anchor
        For ``slope-only``: the target's intercept is refitted on its points with ``X ≤ anchor · X_max``;
        both variants are scored on the points after them.
    bootstrap
        Block-bootstrap replicates (0: no intervals).
    segment_length
        Points per bootstrap segment; default ``ceil(n^(1/3))`` for the median curve length ``n``.
    seed
        Seeds the bootstrap.

    Returns
    -------
    RLFit

    Raises
    ------
    FitError
        One model size, a flat curve, too few points for a protocol, error rates of 0 or 1 without clipping.
    ScalefitInputError
        Unknown ``loss``, ``variant``, ``protocol`` or a bad ``anchor``.
    """
    if loss not in LOSSES:
        raise ScalefitInputError(f"loss must be one of {sorted(LOSSES)}, not {loss!r}")
    if variant not in (*VARIANTS, "both"):
        raise ScalefitInputError(f"variant must be one of {[*VARIANTS, 'both']}, not {variant!r}")
    if not 0 < anchor < 1:
        raise ScalefitInputError(f"anchor must be a fraction in (0, 1), not {anchor!r}")
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
    if not result.success:
        notes.append(f"the fit is suspect: {result.message}")
    bound = _n0_bound(law, result)
    if bound:
        notes.append(_SATURATION_NOTES[bound])
    segment = segment_length or max(1, math.ceil(fitted.groupby("run_id").size().median() ** (1 / 3)))
    # An N0 on its bound is a flat direction: bootstrap refits would wander along it and never converge.
    fix = {"N0": float(result.params["N0"])} if bound else None
    draws = _segment_bootstrap(law, fitted, weights, result, Loss(LOSSES[loss], delta), bootstrap, segment,
                               seed, fix)
    names = ["K_max", "N0", *law.derived_names, *law.reported_names[2:]]
    if len(draws):
        intervals = percentile_intervals(draws[names], _LEVEL)
    else:
        intervals = pd.DataFrame(np.nan, index=names, columns=["lo", "hi"])
    if bound and bootstrap:
        intervals.loc["N0"] = np.nan
        notes.append("the bootstrap held N0 at its bound: the intervals of K_max, k and E are conditional on "
                     "it, and N0 has none")
    if len(draws) < bootstrap:
        notes.append(f"{len(draws)} of {bootstrap} bootstrap refits converged; the intervals use those"
                     + ("" if len(draws) else " (none: no intervals)"))

    known = points["params"].isin(law.sizes)
    points["L_hat"] = np.nan
    points.loc[known, "L_hat"] = law.predict(result.params, points[known])
    r2 = _r2(fitted["loss"], points.loc[fitted.index, "L_hat"])
    r2_log = _r2(np.log(fitted["loss"]), np.log(points.loc[fitted.index, "L_hat"]))
    per_size = _per_size(law, result, intervals, points)

    heldout, protocol_info = None, None
    if parsed is not None and parsed[0] == "early":
        protocol_info = {"name": "early", "fraction": parsed[1]}
        heldout = _errors(points[points["role"] == "heldout"], "L_hat")
    elif parsed is not None:
        variants = list(VARIANTS) if variant == "both" else [variant]
        protocol_info = {"name": "holdout-largest", "k": parsed[1], "variants": variants, "anchor": anchor,
                         "targets": [size_label(n) for n in targets], "intercept_trend": _INTERCEPT_TREND}
        heldout = _holdout(law, result, points, per_size, targets, variants, loss, delta)
    return RLFit(fit=result, x=x, x_column=x_column, metric="L" if metric_is_error else metric,
                 per_size=per_size, intervals=intervals,
                 interval_method=f"bootstrap-segment({segment})" if bootstrap else "none",
                 n_bootstrap=len(draws), r2=r2, r2_log=r2_log, protocol=protocol_info, heldout_error=heldout,
                 points=points, clipping=clipping, notes=tuple(notes))


_INTERCEPT_TREND = "log L at each curve's first X = a + b log N, least squares over the fitted sizes"


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


def _segment_bootstrap(law: RLEfficiency, points: pd.DataFrame, weights: np.ndarray, result: FitResult,
                       loss: Loss, n_draws: int, segment: int, seed: int,
                       fix: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Converged refits of block-bootstrap replicates, as reported and derived parameters (one row each).

    Every curve (run) is cut into contiguous segments of ``segment`` points in X order; a replicate draws,
    within every curve, as many segments as it has, with replacement. The multiplicities become extra point
    weights, and all replicates are refitted at once from the optimum by the engine's
    :func:`~scalefit.fitting.bootstrap.refit_replicates`. Parameters in ``fix`` stay at their values.
    """
    if n_draws == 0:
        return pd.DataFrame()
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_draws, len(points)))
    for rows in points.groupby("run_id").indices.values():
        rows = rows[np.argsort(points["x"].to_numpy()[rows], kind="stable")]
        labels = np.arange(len(rows)) // segment
        n_segments = labels[-1] + 1
        drawn = rng.multinomial(n_segments, np.full(n_segments, 1.0 / n_segments), size=n_draws)
        counts[:, rows] = drawn[:, labels]
    free = free_parameters(law, fix)
    objective = Objective(law=law, inputs=law.input_array(points), log_loss=np.log(points["loss"].to_numpy()),
                          point_weights=weights, loss=loss, free=free)
    optimum = free.reduce(law.to_fitted(result.params[list(law.reported_names)]))[0]
    refits = refit_replicates(objective, optimum, counts, OptimiserSettings())
    reported = pd.DataFrame(law.to_reported(free.expand(refits.z)), columns=list(law.reported_names))
    draws = pd.concat([reported, law.derive(reported)], axis=1)
    return draws[refits.converged].reset_index(drop=True)


def _r2(observed, predicted) -> float:
    """``1 − SS_res / SS_tot`` (NaN when the observations do not vary)."""
    observed, predicted = np.asarray(observed, dtype=float), np.asarray(predicted, dtype=float)
    total = float(((observed - observed.mean()) ** 2).sum())
    return 1.0 - float(((observed - predicted) ** 2).sum()) / total if total > 0 else math.nan


def _free_slope(group: pd.DataFrame) -> float:
    """A size's own least-squares slope ``k`` of ``log L = −k log X + E`` (with its own intercept)."""
    return float(-np.polyfit(np.log(group["x"].to_numpy()), np.log(group["loss"].to_numpy()), 1)[0])


def _per_size(law: RLEfficiency, result: FitResult, intervals: pd.DataFrame,
              points: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for n, group in points.groupby("params"):
        row = {"size": size_label(n), "N": n, "role": "fit" if n in law.sizes else "target",
               "n_points": len(group)}
        if row["role"] == "fit":
            s = int(law.size_index([n])[0])
            k_name, e_name = law.derived_names[s], law.reported_names[2 + s]
            row.update({"k": result.params[k_name], "k_lo": intervals.loc[k_name, "lo"],
                        "k_hi": intervals.loc[k_name, "hi"], "E": result.params[e_name],
                        "E_lo": intervals.loc[e_name, "lo"], "E_hi": intervals.loc[e_name, "hi"]})
            row["k_free"] = _free_slope(group[group["role"] == "fit"])
        else:
            row["k"] = float(law.efficiency(result.params["K_max"], result.params["N0"], n))
            row["k_free"] = _free_slope(group)
        rows.append(row)
    return pd.DataFrame(rows).set_index("size")


def _fit_intercept(group: pd.DataFrame, k: float, loss: str, delta: float) -> float:
    """The intercept ``E`` of one size given its slope ``k``, under the fit's objective (equal weights)."""
    log_x, value = np.log(group["x"].to_numpy()), group["loss"].to_numpy()
    if loss == "mse":  # L̂ = A·X^(−k): least squares in A has a closed form
        basis = np.exp(-k * log_x)
        return float(np.log(max(value @ basis / (basis @ basis), 1e-300)))
    offsets = np.log(value) + k * log_x
    if np.ptp(offsets) == 0:
        return float(offsets[0])
    best = minimize_scalar(lambda e: huber(delta, offsets - e).sum(), bounds=(offsets.min(), offsets.max()),
                           method="bounded")
    return float(best.x)


def _holdout(law: RLEfficiency, result: FitResult, points: pd.DataFrame, per_size: pd.DataFrame,
             targets: list[float], variants: list[str], loss: str, delta: float) -> dict:
    """Predict every target's curve in every variant (filling ``points`` and ``per_size``); score them.

    Both variants take ``k(N_target)`` from the law. ``slope-only`` refits the intercept on the target's
    anchor points; ``full`` extrapolates the start of the curve, ``log L̂`` at the size's first evaluated X,
    along a least-squares line in ``log N`` through the fitted sizes. Scores use the points after the anchor.
    """
    k_max, n0 = result.params["K_max"], result.params["N0"]
    first_x = points.groupby("params")["x"].min()
    fitted_e = np.array([result.params[name] for name in law.reported_names[2:]])
    starts = fitted_e - law.efficiency(k_max, n0, law.sizes) * np.log(first_x[law.sizes].to_numpy())
    slope, intercept = np.polyfit(np.log(law.sizes), starts, 1)
    for name in variants:
        points[f"L_hat_{name.replace('-', '_')}"] = np.nan
    for n in targets:
        rows = points["params"] == n
        group = points[rows]
        label = size_label(n)
        if not ((group["role"] == "anchor").any() and (group["role"] == "heldout").any()):
            raise FitError(f"size {label}: the anchor fraction leaves no anchor point or no point to score; "
                           "choose another anchor")
        k = float(law.efficiency(k_max, n0, n))
        estimates = {"slope-only": _fit_intercept(group[group["role"] == "anchor"], k, loss, delta),
                     "full": float(intercept + slope * np.log(n) + k * np.log(first_x[n]))}
        for name in variants:
            column = name.replace("-", "_")
            per_size.loc[label, f"E_{column}"] = estimates[name]
            points.loc[rows, f"L_hat_{column}"] = np.exp(estimates[name] - k * np.log(group["x"]))
    scored = points[points["role"] == "heldout"]
    return {name: {"variant": name, **_errors(scored, f"L_hat_{name.replace('-', '_')}")}
            for name in variants}


def _errors(points: pd.DataFrame, column: str) -> dict:
    """RMSE of L, R² and relative error at each curve's last point, overall and per size."""

    def block(frame: pd.DataFrame) -> dict:
        ends = frame.loc[frame.groupby("run_id")["x"].idxmax()]
        relative = (ends[column] - ends["loss"]).abs() / ends["loss"]
        return {"rmse": float(np.sqrt(((frame["loss"] - frame[column]) ** 2).mean())),
                "r2": _r2(frame["loss"], frame[column]), "rel_error_end": float(relative.mean()),
                "rel_error_end_max": float(relative.max()), "n_points": len(frame)}

    return {**block(points), "per_size": {size_label(n): block(g) for n, g in points.groupby("params")}}


def _describe_protocol(protocol: Mapping) -> str:
    if protocol["name"] == "early":
        fraction = protocol["fraction"]
        return f"early:{fraction:g} - fit on X <= {fraction:g} X_max of every curve, score the rest"
    return (f"holdout-largest:{protocol['k']} - fit without {', '.join(protocol['targets'])} and predict "
            f"({' and '.join(protocol['variants'])}); slope-only refits E on X <= {protocol['anchor']:g} "
            f"X_max, full extrapolates E ({protocol['intercept_trend']}); scored after the anchor")


def _num(value) -> float | None:
    return json_safe(float(value))
