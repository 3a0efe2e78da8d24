"""How far a fit can be trusted: extrapolation backtests and information criteria.

A backtest fits a law on all model sizes but the largest ``k`` and predicts the held-out runs' final
losses, as OLMo-core's ladder "rollout" and Hoffmann et al. (2022, App. D) do; the relative error
(predicted − actual) / actual of each held-out point is the honest measure of extrapolation error.
``compare_laws`` fits several laws on the same points and ranks them by AIC and BIC.

:class:`Backtest` follows the shared result protocol (:mod:`scalefit.results`): it saves, reloads and
recomputes its intervals at any level from the stored draws of the fit on the smaller sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.errors import FitError, ScalefitInputError
from scalefit.fitting import FitResult, fit
from scalefit.io import json_safe
from scalefit.laws.base import Law
from scalefit.results import Result, Summary, check_level, level_label, register


@register
@dataclass(frozen=True, eq=False)
class Backtest(Result):
    """A fit on the smaller sizes and its predictions for the held-out largest ones.

    Follows the result protocol (:mod:`scalefit.results`): ``params`` and ``conf_int(level)`` are those of
    the law fitted on the smaller sizes (from its stored bootstrap draws), :meth:`prediction` is the
    protocol frame for the held-out runs at any level, ``status``/``reasons`` are the fit's, and the
    backtest saves and loads (kind ``"backtest"``).

    Attributes
    ----------
    holdout_largest
        How many of the largest model sizes were held out.
    fit
        The law fitted without them (after :meth:`load`, without its data points).
    predictions
        One row per held-out run: ``run_id, params, tokens, actual, predicted, lo, hi, rel_error``, where
        ``lo``/``hi`` bound one new run at the fit's level (NaN without bootstrap draws) and ``rel_error`` is
        (predicted − actual) / actual.
    notes
        Free-text remarks.
    """

    kind = "backtest"
    schema_version = 1

    holdout_largest: int
    fit: FitResult
    predictions: pd.DataFrame
    notes: tuple[str, ...] = ()

    # -- the protocol, from the fit on the smaller sizes ---------------------------------------------------
    @property
    def params(self) -> pd.Series:
        return self.fit.params

    @property
    def draws(self) -> pd.DataFrame:
        return self.fit.draws

    def _interval_draws(self) -> pd.DataFrame:
        return self.fit.usable_draws

    @property
    def level(self) -> float:
        return self.fit.level

    @property
    def status(self) -> str:
        return self.fit.status

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"the fit on the smaller sizes: {reason}" for reason in self.fit.reasons)

    # -- what the backtest measured ------------------------------------------------------------------------
    @property
    def mean_abs_rel_error(self) -> float:
        return float(self.predictions["rel_error"].abs().mean())

    @property
    def max_abs_rel_error(self) -> float:
        return float(self.predictions["rel_error"].abs().max())

    @property
    def coverage(self) -> float:
        """Share of held-out losses inside the fit-level prediction interval (NaN without bootstrap draws)."""
        return self.coverage_at(None)

    def coverage_at(self, level: float | None = None) -> float:
        """Share of held-out losses inside the new-run interval at ``level`` (default: the fit's level, the
        stored ``lo``/``hi``); NaN without bootstrap draws."""
        if level is None:
            lo, hi = self.predictions["lo"].to_numpy(float), self.predictions["hi"].to_numpy(float)
        else:
            frame = self.prediction(level)
            lo, hi = frame["obs_lo"].to_numpy(float), frame["obs_hi"].to_numpy(float)
        if np.isnan(lo).all() and np.isnan(hi).all():
            return float("nan")
        actual = self.predictions["actual"].to_numpy(float)
        return float(((actual >= lo) & (actual <= hi)).mean())

    def prediction(self, level: float | None = None) -> pd.DataFrame:
        """The held-out runs (index ``run_id``): ``params, tokens, actual``, the protocol columns ``mean,
        mean_lo, mean_hi, obs_lo, obs_hi`` at ``level`` (default: the fit's; from the fit's stored draws, so
        also after :meth:`load`) and ``rel_error``."""
        level = check_level(self.level if level is None else level)
        p = self.predictions
        frame = self.fit.predict(p[["params", "tokens"]].reset_index(drop=True), interval="all", level=level)
        frame = frame.drop(columns=["plan_lo", "plan_hi"])
        frame.index = pd.Index(p["run_id"].astype(str).to_numpy(), name="run_id")
        frame.insert(0, "actual", p["actual"].to_numpy(float))
        frame.insert(0, "tokens", p["tokens"].to_numpy(float))
        frame.insert(0, "params", p["params"].to_numpy(float))
        frame["rel_error"] = p["rel_error"].to_numpy(float)
        return frame

    # -- reporting -----------------------------------------------------------------------------------------
    def headline(self) -> str:
        """The backtest in one line: sizes held out, runs predicted, errors and interval coverage."""
        coverage = self.coverage
        band = ("no prediction interval (bootstrap=0)" if np.isnan(coverage)
                else f"{100 * self.level:g}% prediction interval coverage {coverage:.0%}")
        return (f"backtest: fitted on all but the largest {self.holdout_largest} size(s), predicted "
                f"{len(self.predictions)} held-out run(s): mean |rel. error| {self.mean_abs_rel_error:.2%}, "
                f"max {self.max_abs_rel_error:.2%}, {band}")

    def summary(self, level: float | None = None) -> Summary:
        """The headline, the law fitted on the smaller sizes with intervals, and the held-out runs."""
        level = check_level(self.level if level is None else level)
        fitted = self.fit.ranges.get("params")
        header = [("Law", repr(self.fit.law)), ("Held out", (f"the largest {self.holdout_largest} size(s), "
                                                              f"{len(self.predictions)} run(s)")),
                  ("Fitted on", f"{self.fit.n_points} points" + (f", N ≤ {fitted[1]:.3g}" if fitted else "")),
                  ("Mean |rel. error|", f"{self.mean_abs_rel_error:.2%}"),
                  ("Max |rel. error|", f"{self.max_abs_rel_error:.2%}"),
                  ("Coverage", self._coverage_line(level)), ("Level", level_label(level))]
        estimates = self.conf_int(level)
        estimates.insert(0, "estimate", self.params)
        return Summary("scalefit backtest", header,
                       [(f"Law fitted on the smaller sizes ({level_label(level)} intervals)", estimates),
                        (f"Held-out runs ({level_label(level)} intervals)", self.prediction(level))],
                       notes=[self.headline(), *self.notes], status=self.status, reasons=self.reasons,
                       float_format="{:.6g}")

    def _coverage_line(self, level: float) -> str:
        coverage = self.coverage_at(level)
        if np.isnan(coverage):
            return "no prediction interval (bootstrap=0)"
        return f"{coverage:.0%} of held-out runs inside the {level_label(level)} new-run interval"

    def to_records(self) -> list[dict]:
        """The ``backtest`` list of ``fit.json``: run_id, params, tokens, actual, predicted, rel_error."""
        columns = ["run_id", "params", "tokens", "actual", "predicted", "rel_error"]
        return self.predictions[columns].to_dict(orient="records")

    # -- persistence ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return json_safe({**self._envelope(), "holdout_largest": self.holdout_largest,
                          "status": self.status, "reasons": list(self.reasons), "notes": list(self.notes),
                          "mean_abs_rel_error": self.mean_abs_rel_error, "max_abs_rel_error": self.max_abs_rel_error,
                          "coverage": self.coverage, "fit": self.fit.to_dict(),
                          "predictions": self.predictions.to_dict(orient="list")})

    @classmethod
    def from_dict(cls, doc: dict) -> Backtest:
        predictions = pd.DataFrame(doc["predictions"])
        missing = [c for c in PREDICTION_RECORD_COLUMNS if c not in predictions.columns]
        if missing:
            raise ScalefitInputError(f"the backtest's predictions lack the columns {missing}")
        predictions = predictions[list(PREDICTION_RECORD_COLUMNS)].astype(
            {c: float for c in PREDICTION_RECORD_COLUMNS if c != "run_id"}).astype({"run_id": str})
        holdout = int(doc["holdout_largest"])
        if holdout < 1:
            raise ScalefitInputError(f"holdout_largest must be at least 1, not {holdout}")
        return cls(holdout, FitResult.from_dict(doc["fit"]), predictions, tuple(doc.get("notes") or ()))


#: The columns of :attr:`Backtest.predictions`, in order.
PREDICTION_RECORD_COLUMNS = ("run_id", "params", "tokens", "actual", "predicted", "lo", "hi", "rel_error")


def backtest(law: Law, data: pd.DataFrame, holdout_largest: int = 1, **fit_options) -> Backtest:
    """Fit ``law`` without the ``holdout_largest`` largest model sizes and predict their points.

    ``data`` holds the points to fit (typically one final point per run); ``fit_options`` go to
    :func:`scalefit.fitting.fit`.
    """
    sizes = np.sort(data["params"].unique())
    if holdout_largest < 1:
        raise FitError(f"holdout_largest must be at least 1, got {holdout_largest}")
    if len(sizes) - holdout_largest < 2:
        raise FitError(f"holding out {holdout_largest} of {len(sizes)} model sizes leaves fewer than 2 to fit on; "
                       "hold out fewer sizes or add runs at more sizes")
    held = data["params"] >= sizes[-holdout_largest]
    result = fit(law, data[~held], **fit_options)
    target = data[held]
    if len(result.draws) and result.draws["converged"].any():
        band = result.predict(target, interval="prediction")
    else:  # bootstrap=0 (or no refit converged): the point prediction only, no interval
        band = result.predict(target, interval=None).assign(lo=np.nan, hi=np.nan)
    actual = target["loss"].to_numpy(float)
    predicted = band["mean"].to_numpy(float)
    predictions = pd.DataFrame({
        "run_id": target["run_id"].astype(str).to_numpy() if "run_id" in target else np.arange(len(target)),
        "params": target["params"].to_numpy(float), "tokens": target["tokens"].to_numpy(float),
        "actual": actual, "predicted": predicted, "lo": band["lo"].to_numpy(float), "hi": band["hi"].to_numpy(float),
        "rel_error": (predicted - actual) / actual,
    })
    return Backtest(holdout_largest, result, predictions)


def compare_laws(laws: list[Law], data: pd.DataFrame, **fit_options) -> pd.DataFrame:
    """Fit each law on the same points; a table of objective, free parameters, AIC and BIC (lowest first)."""
    rows = []
    for law in laws:
        result = fit(law, data, **{"bootstrap": 0, **fit_options})
        rows.append({"law": law.name, "success": result.success, "n_points": result.n_points,
                     "n_params": len(result.params), "objective": result.objective,
                     "aic": result.aic(), "bic": result.bic()})
    return pd.DataFrame(rows).sort_values("aic").reset_index(drop=True)
