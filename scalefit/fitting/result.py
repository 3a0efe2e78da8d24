"""The result of a fit: named estimates, their uncertainty, whether they can be trusted, and predictions.

:class:`FitResult` follows the shared result protocol (:mod:`scalefit.results`): intervals are computed from
the stored bootstrap draws when asked (``conf_int(level)``), predictions come as one frame (``mean``,
``mean_lo/hi``, ``obs_lo/hi``, ``plan_lo/hi``), ``status`` is ok / suspect / failed with its ``reasons``,
and the result saves to and loads from ``fit.json`` (docs/fit-json.md), checked on load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.fitting.bootstrap import new_run_noise
from scalefit.fitting.extrapolation import ExtrapolationError, extrapolation_distance
from scalefit.io import json_safe
from scalefit.laws import Chinchilla, Kaplan, PowerLaw
from scalefit.laws.base import Law
from scalefit.results import (
    DEFAULT_LEVEL,
    STATUSES,
    ReasonedStatus,
    Result,
    Summary,
    check_level,
    level_label,
    prediction_frame,
    register,
)

#: More failed bootstrap refits than this share make the result suspect.
MAX_FAILED_REFIT_SHARE = 0.02
#: Laws a saved fit can name (``law_spec.name``), rebuilt from ``law_spec.inputs``.
SAVABLE_LAWS = {"chinchilla": lambda inputs: Chinchilla(), "kaplan": lambda inputs: Kaplan(),
                "power": lambda inputs: PowerLaw(x=inputs[0])}


def law_from_spec(spec: Mapping) -> Law:
    """The law a saved ``law_spec`` (``name``, ``inputs``) names, or a clear error."""
    name = spec.get("name")
    if name not in SAVABLE_LAWS:
        raise ScalefitInputError(f"law {name!r} is not one scalefit can rebuild ({', '.join(SAVABLE_LAWS)})")
    inputs = list(spec.get("inputs") or ["params"])
    if name == "power" and inputs[0] not in ("params", "tokens", "flops"):
        raise ScalefitInputError(f"a power law in {inputs[0]!r}: use params, tokens or flops")
    return SAVABLE_LAWS[name](inputs)


@register
@dataclass(frozen=True, eq=False)
class FitResult(ReasonedStatus, Result):
    """A fitted law: estimates, bootstrap draws, diagnostics, and predictions.

    Attributes
    ----------
    law
        The fitted law.
    params
        Estimates in the law's reported names (e.g. ``E, A, B, alpha, beta``), followed by derived
        quantities (e.g. ``x0`` for :class:`~scalefit.laws.PowerLaw`). Fixed parameters appear at their
        fixed value.
    interval_method
        ``"bootstrap-residual"`` (smoothed residuals added to the fit), ``"bootstrap-run"`` (whole runs
        reweighted), ``"bootstrap-point"`` (points reweighted) or ``"none"``.
    success, message
        Whether the optimum can be trusted, and why: scipy L-BFGS-B's message for the final polish, prefixed
        by our own reason when we overrule it (no start converged, not stationary, a parameter on a bound).
    objective, loss
        The objective at the optimum and its description (e.g. ``huber(delta=0.001) on log L``).
    n_points
        Points fitted.
    n_starts, n_pruned, n_converged, n_best_basin
        Starts tried; set aside by successive halving; converged; converged to within ``basin_rtol`` of
        the best. Many starts in the best basin is evidence that the optimum is global.
    draws
        One row per bootstrap refit: reported and derived parameters, ``objective`` and ``converged``.
        Intervals use converged rows only; failed refits are counted in :attr:`n_failed_refits`.
    data
        The points fitted (law inputs, ``loss``, and ``run_id`` when present); empty after :meth:`load`.
    residuals
        ``log L − log L̂`` per fitted point (log residuals whatever the loss).
    flops_convention
        How FLOPs were counted (``"6ND"``, ``"6ND+attn"``) when known, else None.
    n_free, fixed
        Number of free parameters (after fixing and tying); reported name -> value of fixed parameters.
    level
        Default coverage of :attr:`intervals` and of predictions (0.95).
    seed
        Seed of the bootstrap; also seeds the residual and extrapolation draws of predictions.
    ranges
        ``{column: (min, max)}`` of ``params``, ``tokens``, ``flops`` among the fitted points.
    n_units
        Resampling units of the bootstrap (runs or points).
    bootstrap_scheme
        ``"residual"``, ``"bayesian"`` or ``"multinomial"`` (see :mod:`scalefit.fitting.bootstrap`); ``""``
        without one.
    interval_issue
        Why the bootstrap cannot identify intervals (too few units, too few distinct refits, too few values
        of an input), or None. Intervals are then NaN and the result is suspect.
    extrapolation_error
        What a rollout measured about extrapolating this law (for the planning interval), or None.
    selection
        The law-selection record when the law was chosen by rollout (:mod:`scalefit.selection`), else None.
    notes
        Free-text remarks.
    tied
        Groups of parameters fitted as one, e.g. ``("alpha=beta",)``.
    """

    kind = "fit"
    schema_version = 2

    law: Law
    params: pd.Series
    interval_method: str
    success: bool
    message: str
    objective: float
    loss: str
    n_points: int
    n_starts: int
    n_pruned: int
    n_converged: int
    n_best_basin: int
    draws: pd.DataFrame
    data: pd.DataFrame
    residuals: pd.Series
    flops_convention: str | None
    n_free: int
    fixed: dict[str, float] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL
    seed: int = 0
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_units: int = 0
    bootstrap_scheme: str = "multinomial"
    interval_issue: str | None = None
    extrapolation_error: ExtrapolationError | None = None
    selection: dict | None = None
    notes: tuple[str, ...] = ()
    tied: tuple[str, ...] = ()

    # ------------------------------------------------------------------ status and intervals
    @property
    def noise_scale(self) -> float:
        """The run noise of log loss, ``sqrt(Σ r² / (n − p))`` over the log residuals of ``n`` points and ``p``
        free parameters (the residuals' mean square runs ``(n − p) / n`` of the noise variance)."""
        residuals = self.residuals.to_numpy(float)
        return float(np.sqrt(np.sum(residuals**2) / max(len(residuals) - self.n_free, 1)))

    @property
    def n_failed_refits(self) -> int:
        """Bootstrap refits that did not converge (after restarts)."""
        return int((~self.draws["converged"].astype(bool)).sum()) if len(self.draws) else 0

    def _reason_lists(self) -> tuple[list[str], list[str]]:
        failed = [] if self.success else [f"the fit did not converge: {self.message}"]
        suspect = []
        if self.interval_issue:
            suspect.append(f"intervals NOT IDENTIFIED: {self.interval_issue}")
        if len(self.draws) and self.n_failed_refits > MAX_FAILED_REFIT_SHARE * len(self.draws):
            suspect.append(f"{self.n_failed_refits} of {len(self.draws)} bootstrap refits did not converge "
                           f"(> {MAX_FAILED_REFIT_SHARE:.0%}): the intervals may miss a tail")
        return failed, suspect

    @property
    def usable_draws(self) -> pd.DataFrame:
        """The draws intervals come from: converged refits; none when the intervals are not identified."""
        if self.interval_issue or not len(self.draws):
            return self.draws.iloc[:0]
        return self.draws[self.draws["converged"].astype(bool)]

    def _interval_draws(self) -> pd.DataFrame:
        return self.usable_draws

    @property
    def intervals(self) -> pd.DataFrame:
        """``lo``/``hi`` per entry of :attr:`params` at :attr:`level` (``conf_int(self.level)``)."""
        return self.conf_int(self.level)

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        X: pd.DataFrame | Mapping[str, object],
        interval: str | None = "all",
        level: float | None = None,
    ) -> pd.DataFrame:
        """Predicted loss at new inputs with intervals of the mean, of one new run and for planning.

        Parameters
        ----------
        X
            The law's input columns (e.g. ``params`` and ``tokens``), as a DataFrame or a mapping of
            arrays or scalars.
        interval
            ``"all"`` (default): the protocol frame ``mean, mean_lo, mean_hi, obs_lo, obs_hi, plan_lo,
            plan_hi``. ``"confidence"`` or ``"prediction"``: ``mean, lo, hi`` with the mean or the new-run
            bounds. ``None``: ``mean`` only.
        level
            Coverage of the intervals (default :attr:`level`).

        Notes
        -----
        With ``ℓ_b`` the log prediction of converged bootstrap draw ``b``: the *mean* interval is the
        percentile interval of ``exp(ℓ_b)``; the *new-run* interval adds one draw of a run's noise per
        draw: one of this fit's log residuals less the ``p`` smallest (a fit with ``p`` free parameters passes
        near ``p`` points), smoothed, its scale drawn too (the scale is estimated from ``n − p`` residuals:
        :func:`~scalefit.fitting.bootstrap.new_run_noise`; ``ε_b``, shared by every row of ``X``: a new run
        sits off the law by about the same amount along its whole curve); the *planning* interval also adds
        ``s · d(x) · z_b`` with ``z_b ~ N(0, 1)``, where ``d(x)`` is the row's distance beyond the data in
        decades and ``s`` the error per decade a rollout measured (:attr:`extrapolation_error`). Bounds are NaN when the fit has
        no draws, its intervals are not identified, or (planning) no rollout measured ``s``.
        """
        level = check_level(self.level if level is None else level)
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame({k: np.atleast_1d(v) for k, v in X.items()})
        mean = self.law.predict(self.params, frame)
        if interval is None:
            return prediction_frame(mean, index=frame.index)
        if interval not in ("all", "confidence", "prediction"):
            raise ValueError(f"interval must be 'all', 'confidence', 'prediction' or None, not {interval!r}")
        draws = self.usable_draws
        nan = np.full(len(frame), np.nan)
        if not len(draws):
            if interval != "all":
                return pd.DataFrame({"mean": mean, "lo": nan, "hi": nan}, index=frame.index)
            return prediction_frame(mean, index=frame.index, **dict.fromkeys(
                ("mean_lo", "mean_hi", "obs_lo", "obs_hi", "plan_lo", "plan_hi"), nan))
        log_draws = self.law.log_predict(self.law.to_fitted(draws), self.law.input_array(frame))
        rng = np.random.default_rng(self.seed)
        noise = new_run_noise(self.residuals.to_numpy(float), self.n_free, len(log_draws), rng)
        tail = (1.0 - level) / 2.0

        def bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return tuple(np.quantile(np.exp(values), [tail, 1.0 - tail], axis=0))

        if interval == "confidence":
            return pd.DataFrame(dict(zip(("mean", "lo", "hi"), (mean, *bounds(log_draws)))), index=frame.index)
        if interval == "prediction":
            return pd.DataFrame(dict(zip(("mean", "lo", "hi"), (mean, *bounds(log_draws + noise)))),
                                index=frame.index)
        mean_lo, mean_hi = bounds(log_draws)
        obs_lo, obs_hi = bounds(log_draws + noise)
        plan_lo = plan_hi = nan
        if self.extrapolation_error is not None:
            sd = self.extrapolation_error.log_sd(extrapolation_distance(self, frame)["decades"].to_numpy())
            plan_lo, plan_hi = bounds(log_draws + noise + rng.standard_normal((len(log_draws), 1)) * sd[None, :])
        return prediction_frame(mean, index=frame.index, mean_lo=mean_lo, mean_hi=mean_hi, obs_lo=obs_lo,
                                obs_hi=obs_hi, plan_lo=plan_lo, plan_hi=plan_hi)

    # ------------------------------------------------------------------ model comparison
    def _log_likelihood(self) -> float:
        residuals = self.residuals.to_numpy()
        variance = float(np.mean(residuals**2))
        return -0.5 * len(residuals) * (math.log(2 * math.pi * variance) + 1.0)

    def aic(self) -> float:
        """Akaike's criterion ``2k − 2 log ℓ`` for Gaussian log residuals with their MLE variance.

        ``k`` is the number of free parameters plus one (the variance). Whatever the fit's loss, the
        likelihood is Gaussian on ``log L − log L̂`` and ignores point weights: compare fits of the same
        points with it (and do not choose an extrapolating law by it: docs/trust.md).
        """
        return 2.0 * (self.n_free + 1) - 2.0 * self._log_likelihood()

    def bic(self) -> float:
        """Schwarz's criterion ``k log n − 2 log ℓ``, with the likelihood of :meth:`aic`."""
        return (self.n_free + 1) * math.log(self.n_points) - 2.0 * self._log_likelihood()

    # ------------------------------------------------------------------ reporting
    def _table(self, level: float) -> pd.DataFrame:
        intervals = self.conf_int(level)
        table = pd.DataFrame({"estimate": self.params, "lo": intervals["lo"], "hi": intervals["hi"]})
        table["note"] = ""
        table.loc[[n for n in table.index if n in self.fixed], "note"] = "fixed"
        table.loc[[n for n in table.index if n in self.law.derived_names], "note"] = "derived"
        return table

    def _intervals_line(self, level: float) -> str:
        if self.interval_method == "none":
            return "none (bootstrap=0)"
        converged = len(self.draws) - self.n_failed_refits
        named = self.bootstrap_scheme and self.bootstrap_scheme not in self.interval_method
        scheme = f" ({self.bootstrap_scheme})" if named else ""
        line = (f"{self.interval_method}{scheme} over {self.n_units} units, {converged} of {len(self.draws)} "
                f"refits converged ({self.n_failed_refits} failed); {level_label(level)}")
        return line + (" — NOT IDENTIFIED" if self.interval_issue else "")

    def summary(self, level: float | None = None) -> Summary:
        """Fit diagnostics, estimates with intervals at ``level``, the law selection when there was one."""
        level = check_level(self.level if level is None else level)
        header = [
            ("Law", repr(self.law)), ("Loss", self.loss), ("Points", str(self.n_points)),
            ("Objective", f"{self.objective:.10g}"),
            ("Starts", f"{self.n_starts} ({self.n_pruned} pruned, {self.n_converged} converged)"),
            ("Best basin", f"{self.n_best_basin} starts"), ("Success", str(self.success)),
            ("Message", self.message), ("Intervals", self._intervals_line(level)),
            ("FLOPs", self.flops_convention or "n/a"),
        ]
        if self.tied or self.fixed:
            constraints = [*self.tied, *(f"{k} fixed at {v:g}" for k, v in self.fixed.items())]
            header.insert(1, ("Constraints", ", ".join(constraints)))
        if self.extrapolation_error is not None:
            e = self.extrapolation_error
            header.append(("Planning", (f"+{e.per_decade:.3g} log-loss s.d. per decade beyond the data (rollout "
                                        f"of {e.law}: {e.n_points} held-out points, {e.n_windows} windows, up "
                                        f"to {e.max_decades:.2g} decades"
                                        + (f"; {e.n_flagged_windows} flagged windows left out"
                                           if e.n_flagged_windows else "") + ")")))
        tables = [(f"Estimates with {level_label(level)} intervals", self._table(level))]
        notes = list(self.notes)
        if self.selection:
            tables.append(("Law selection by rollout (expanding windows)", selection_table(self.selection)))
            notes += [self.selection["reason"], *([self.selection["disagreement"]]
                                                   if self.selection.get("disagreement") else [])]
        return Summary(f"scalefit fit: {self.law.name}", header, tables, notes, self.status, self.reasons,
                       float_format="{:.6g}")

    def __repr__(self) -> str:
        estimates = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"FitResult({self.law!r}, {estimates}, status={self.status!r})"

    def plot(self, **kwargs):
        """Plot the data and the fitted law; see :func:`scalefit.plots.plot_fit` for options."""
        from scalefit.plots import plot_fit

        return plot_fit(self, **kwargs)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """The fit's part of ``fit.json`` (docs/fit-json.md): strict-JSON-able, non-finite numbers as None."""
        return json_safe({
            **self._envelope(),
            "law": repr(self.law),
            "law_spec": {"name": self.law.name, "inputs": list(self.law.inputs)},
            "params": self.params.to_dict(),
            "intervals": {k: [lo, hi] for k, (lo, hi) in self.intervals[["lo", "hi"]].iterrows()},
            "interval_method": self.interval_method, "interval_issue": self.interval_issue, "level": self.level,
            "objective": self.objective, "loss": self.loss, "success": bool(self.success), "message": self.message,
            "status": self.status, "reasons": list(self.reasons), "fit_notes": list(self.notes),
            "n_points": self.n_points, "n_starts": self.n_starts, "n_pruned": self.n_pruned,
            "n_converged": self.n_converged, "n_best_basin": self.n_best_basin, "n_free": self.n_free,
            "fixed": self.fixed, "tied": list(self.tied), "seed": self.seed, "flops_convention": self.flops_convention,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "bootstrap": {"n_units": self.n_units, "n_refits": len(self.draws), "scheme": self.bootstrap_scheme,
                          "n_failed": self.n_failed_refits},
            "residual_scale": float(np.sqrt(np.mean(self.residuals.to_numpy() ** 2))),
            "aic": self.aic(), "bic": self.bic(),
            "extrapolation_error": None if self.extrapolation_error is None else self.extrapolation_error.to_dict(),
            "selection": self.selection,
            "draws": self.draws.to_dict(orient="list"),
            "residuals": self.residuals.tolist(),
        })

    @classmethod
    def _from_document(cls, doc: dict, source) -> FitResult:
        if "kind" not in doc and doc.get("schema_version") == 1 and "law_spec" in doc:
            doc = {**doc, "kind": cls.kind}  # fit.json written before the shared protocol (schema 1)
        return super()._from_document(doc, source)

    @classmethod
    def from_dict(cls, doc: Mapping, *, law: Law | None = None) -> FitResult:
        """Rebuild a fit from :meth:`to_dict` (or a schema-1 ``fit.json``), checking what it holds.

        ``law``: the fitted law, for a law that ``law_spec`` alone cannot rebuild (the RL law needs its
        sizes, which ``rl.json`` stores beside the fit); by default it is rebuilt from ``law_spec``.
        """
        law = law if law is not None else law_from_spec(doc["law_spec"])
        if not isinstance(doc["params"], Mapping):
            raise ScalefitInputError(f"params must map parameter names to values, not {type(doc['params']).__name__}")
        params = pd.Series({k: (math.nan if v is None else float(v)) for k, v in doc["params"].items()})
        _check_params(law, params)
        if doc.get("status", "ok") not in STATUSES:
            raise ScalefitInputError(f"status {doc['status']!r} is not one of {', '.join(STATUSES)}")
        draws = pd.DataFrame(doc.get("draws") or {})
        if len(draws):
            missing = [n for n in (*law.reported_names, "converged") if n not in draws.columns]
            if missing:
                raise ScalefitInputError(f"the bootstrap draws lack {missing}")
            draws = draws.astype({"converged": bool}).astype({n: float for n in law.reported_names})
        level = check_level(doc.get("level", DEFAULT_LEVEL))
        bootstrap = doc.get("bootstrap") or {}
        error = doc.get("extrapolation_error")
        return cls(
            law=law, params=params, interval_method=doc["interval_method"], success=bool(doc["success"]),
            message=doc["message"], objective=float(doc["objective"]), loss=doc["loss"],
            n_points=int(doc["n_points"]), n_starts=int(doc["n_starts"]), n_pruned=int(doc["n_pruned"]),
            n_converged=int(doc["n_converged"]), n_best_basin=int(doc["n_best_basin"]), draws=draws,
            data=pd.DataFrame(columns=[*law.inputs, "loss"]),
            residuals=pd.Series(doc["residuals"], dtype=float), flops_convention=doc.get("flops_convention"),
            n_free=int(doc["n_free"]), fixed=dict(doc.get("fixed") or {}), level=level,
            seed=int(doc.get("seed", 0)), ranges={k: tuple(v) for k, v in (doc.get("ranges") or {}).items()},
            n_units=int(bootstrap.get("n_units", 0)), bootstrap_scheme=bootstrap.get("scheme", bootstrap.get("weights", "multinomial")),
            interval_issue=doc.get("interval_issue"),
            extrapolation_error=None if error is None else ExtrapolationError.from_dict(error),
            selection=doc.get("selection"), notes=tuple(doc.get("fit_notes") or ()),
            tied=tuple(doc.get("tied") or ()),
        )


def _check_params(law: Law, params: pd.Series) -> None:
    """Every parameter of ``law`` present, finite and inside the law's bounds, or a clear error."""
    missing = [n for n in law.reported_names if n not in params.index]
    if missing:
        raise ScalefitInputError(f"params lack {missing} of the {law.name} law")
    reported = params[list(law.reported_names)]
    if not np.isfinite(reported.to_numpy(float)).all():
        raise ScalefitInputError(f"params are not all finite ({reported.to_dict()}); refit")
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = law.to_fitted(reported)[0]
    for p, value in zip(law.parameters, fitted):
        lower, upper = p.bounds
        if not (np.isfinite(value) and lower <= value <= upper):
            raise ScalefitInputError(f"{p.reported} = {reported[p.reported]:g} is outside the {law.name} law's "
                                     f"bounds; the file was not written by this fit")


def selection_table(selection: Mapping) -> pd.DataFrame:
    """The candidates of a law selection side by side: score, error per window, coverage, AIC/BIC, params."""
    rows = {}
    for c in selection["candidates"]:
        row = {"score": c["score"]}
        for w, err in zip(selection["windows"], c["window_errors"]):
            row[f"≤{w['largest_fit_params']:.2g} (+{w['decades']:.2g} dec)"] = err
        row.update({"coverage": c["coverage"], "AIC": c["aic"], "BIC": c["bic"]})
        row["params"] = ", ".join(f"{k}={v:.4g}" for k, v in (c.get("params") or {}).items()
                                  if isinstance(v, float | int) and v is not None)
        rows[c["name"] + (" ←" if c["name"] == selection["chosen"] else "")] = row
    return pd.DataFrame.from_dict(rows, orient="index")
