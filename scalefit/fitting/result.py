"""The result of a fit: named estimates, their uncertainty, and whether they can be trusted."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalefit.laws.base import Law


@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted law: estimates, bootstrap intervals and draws, diagnostics, and predictions.

    Attributes
    ----------
    law
        The fitted law.
    params
        Estimates in the law's reported names (e.g. ``E, A, B, alpha, beta``), followed by derived
        quantities (e.g. ``x0`` for :class:`~scalefit.laws.PowerLaw`). Fixed parameters appear at their
        fixed value.
    intervals
        ``lo``/``hi`` per entry of ``params`` at :attr:`level`, made by :attr:`interval_method`; NaN when
        ``interval_method == "none"``.
    interval_method
        ``"bootstrap-run"`` (whole runs resampled), ``"bootstrap-point"`` or ``"none"``.
    level
        Coverage of :attr:`intervals` (0.95).
    success, message
        Whether the optimum can be trusted, and why: scipy L-BFGS-B's message for the final polish, prefixed
        by our own reason when we overrule it (no start converged, not stationary, a parameter on a bound).
    objective
        The objective at the optimum (e.g. the sum of Huber losses of log residuals).
    loss
        Description of the objective (e.g. ``huber(delta=0.001) on log L``).
    n_points
        Points fitted.
    n_starts, n_pruned, n_converged, n_best_basin
        Starts tried; set aside by successive halving; converged; converged to within ``basin_rtol`` of
        the best objective. Many starts in the best basin is evidence that the optimum is global.
    draws
        One row per bootstrap refit: reported and derived parameters, ``objective`` and ``converged``.
        Intervals use converged rows only.
    data
        The points fitted (law inputs, ``loss``, and ``run_id`` when present).
    residuals
        ``log L − log L̂`` per point of :attr:`data` (log residuals whatever the loss).
    flops_convention
        How FLOPs were counted (``"6ND"``, ``"6ND+attn"``) when known, else None.
    n_free
        Number of free parameters (after fixing and tying).
    fixed
        Reported name -> value of fixed parameters.
    seed
        Seed of the bootstrap; also seeds the residual draws of prediction intervals.
    """

    law: Law
    params: pd.Series
    intervals: pd.DataFrame
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
    level: float = 0.95
    seed: int = 0

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        X: pd.DataFrame | Mapping[str, object],
        interval: str | None = "confidence",
        level: float = 0.95,
    ) -> pd.DataFrame:
        """Predicted loss at new inputs, with a confidence or a prediction band.

        Parameters
        ----------
        X
            The law's input columns (e.g. ``params`` and ``tokens``), as a DataFrame or a mapping of
            arrays or scalars.
        interval
            ``"confidence"``: band of the *mean* loss, the ``level`` percentile interval of the predictions
            of the bootstrap draws. ``"prediction"``: band of a *new observation*: each draw's log
            prediction plus one log residual of this fit drawn at random for that draw (seeded by
            :attr:`seed`; the same for every point of ``X``), so the band adds the observed scatter around
            the law to the uncertainty of the law (in-sample residuals, so slightly optimistic). ``None``: the point prediction only.
        level
            Coverage of the band.

        Returns
        -------
        pandas.DataFrame
            ``mean`` (the prediction at the estimate) and, with an interval, ``lo`` and ``hi``; indexed
            like ``X``.

        Raises
        ------
        ValueError
            For an unknown ``interval``, or an interval when the fit has no bootstrap draws.
        """
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame({k: np.atleast_1d(v) for k, v in X.items()})
        inputs = self.law.input_array(frame)
        mean = self.law.predict(self.params, frame)
        if interval is None:
            return pd.DataFrame({"mean": mean}, index=frame.index)
        if interval not in ("confidence", "prediction"):
            raise ValueError(f"interval must be 'confidence', 'prediction' or None, not {interval!r}")
        draws = self.draws[self.draws["converged"]] if len(self.draws) else self.draws
        if not len(draws):
            raise ValueError("this fit has no converged bootstrap draws; refit with bootstrap > 0 for intervals")
        log_draws = self.law.log_predict(self.law.to_fitted(draws), inputs)
        if interval == "prediction":
            # One residual per draw, shared by all points: a new run sits off the law by about the same
            # amount along its whole curve, and the band stays smooth in x.
            rng = np.random.default_rng(self.seed)
            log_draws = log_draws + rng.choice(self.residuals.to_numpy(), size=(len(log_draws), 1))
        tail = (1.0 - level) / 2.0
        lo, hi = np.quantile(np.exp(log_draws), [tail, 1.0 - tail], axis=0)
        return pd.DataFrame({"mean": mean, "lo": lo, "hi": hi}, index=frame.index)

    # ------------------------------------------------------------------ model comparison
    def _log_likelihood(self) -> float:
        residuals = self.residuals.to_numpy()
        variance = float(np.mean(residuals**2))
        return -0.5 * len(residuals) * (math.log(2 * math.pi * variance) + 1.0)

    def aic(self) -> float:
        """Akaike's criterion ``2k − 2 log ℓ`` for Gaussian log residuals with their MLE variance.

        ``k`` is the number of free parameters plus one (the variance). Whatever the fit's loss, the
        likelihood is Gaussian on ``log L − log L̂`` and ignores point weights: compare fits of the same
        points with it.
        """
        return 2.0 * (self.n_free + 1) - 2.0 * self._log_likelihood()

    def bic(self) -> float:
        """Schwarz's criterion ``k log n − 2 log ℓ``, with the likelihood of :meth:`aic`."""
        return (self.n_free + 1) * math.log(self.n_points) - 2.0 * self._log_likelihood()

    # ------------------------------------------------------------------ reporting
    def _table(self) -> pd.DataFrame:
        table = pd.DataFrame({"estimate": self.params, "lo": self.intervals["lo"], "hi": self.intervals["hi"]})
        table["note"] = ""
        table.loc[[n for n in table.index if n in self.fixed], "note"] = "fixed"
        table.loc[[n for n in table.index if n in self.law.derived_names], "note"] = "derived"
        return table

    def _header(self) -> list[tuple[str, str]]:
        converged = int(self.draws["converged"].sum()) if len(self.draws) else 0
        if self.interval_method == "none":
            intervals = "none (bootstrap=0)"
        else:
            intervals = f"{self.interval_method}, {converged} of {len(self.draws)} refits converged"
        return [
            ("Law", repr(self.law)),
            ("Loss", self.loss),
            ("Points", str(self.n_points)),
            ("Objective", f"{self.objective:.10g}"),
            ("Starts", f"{self.n_starts} ({self.n_pruned} pruned, {self.n_converged} converged)"),
            ("Best basin", f"{self.n_best_basin} starts"),
            ("Success", str(self.success)),
            ("Message", self.message),
            ("Intervals", f"{intervals}; level {self.level:g}"),
            ("FLOPs", self.flops_convention or "n/a"),
        ]

    def summary(self) -> str:
        """A text report in the manner of statsmodels' ``summary()``: fit diagnostics, then estimates."""
        lo_label, hi_label = f"{50 * (1 - self.level):g}%", f"{100 - 50 * (1 - self.level):g}%"
        rows = [
            f"{name:<12}{value:>14.6g}{lo:>14.6g}{hi:>14.6g}  {note}".rstrip()
            for name, (value, lo, hi, note) in self._table().iterrows()
        ]
        width = max(72, *(len(r) for r in rows))
        header = [f"{key + ':':<12}{value}" for key, value in self._header()]
        estimates = f"{'':<12}{'estimate':>14}{lo_label:>14}{hi_label:>14}"
        return "\n".join(
            [f"scalefit fit: {self.law.name}".center(width), "=" * width, *header, "-" * width, estimates,
             *rows, "=" * width]
        )

    def _repr_html_(self) -> str:
        escape = html.escape
        header = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
                         for k, v in self._header())
        rows = "".join(
            f"<tr><th>{escape(str(name))}</th><td>{value:.6g}</td><td>{lo:.6g}</td><td>{hi:.6g}</td>"
            f"<td>{escape(note)}</td></tr>"
            for name, (value, lo, hi, note) in self._table().iterrows()
        )
        return (
            f"<div><strong>scalefit fit: {escape(self.law.name)}</strong><table>{header}</table>"
            f"<table><tr><th></th><th>estimate</th><th>lo</th><th>hi</th><th></th></tr>{rows}</table></div>"
        )

    def __repr__(self) -> str:
        estimates = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"FitResult({self.law!r}, {estimates}, success={self.success})"

    def to_dict(self) -> dict:
        """A JSON-able summary (no draws or data); non-finite numbers become None."""

        def number(value: float) -> float | None:
            return float(value) if np.isfinite(value) else None

        return {
            "law": repr(self.law),
            "params": {k: number(v) for k, v in self.params.items()},
            "intervals": {k: [number(lo), number(hi)] for k, (lo, hi) in self.intervals[["lo", "hi"]].iterrows()},
            "interval_method": self.interval_method,
            "objective": number(self.objective),
            "success": bool(self.success),
            "message": self.message,
            "n_points": self.n_points,
            "n_starts": self.n_starts,
            "n_pruned": self.n_pruned,
            "n_converged": self.n_converged,
            "n_best_basin": self.n_best_basin,
            "flops_convention": self.flops_convention,
        }

    def plot(self, **kwargs):
        """Plot the data and the fitted law; see :func:`scalefit.plots.plot_fit` for options."""
        from scalefit.plots import plot_fit

        return plot_fit(self, **kwargs)
