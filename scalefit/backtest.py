"""How far a fit can be trusted: extrapolation backtests and information criteria.

A backtest fits a law on all model sizes but the largest ``k`` and predicts the held-out runs' final
losses, as OLMo-core's ladder "rollout" and Hoffmann et al. (2022, App. D) do; the relative error
(predicted − actual) / actual of each held-out point is the honest measure of extrapolation error.
``compare_laws`` fits several laws on the same points and ranks them by AIC and BIC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.errors import FitError
from scalefit.fitting import FitResult, fit
from scalefit.laws.base import Law


@dataclass(frozen=True)
class Backtest:
    """A fit on the smaller sizes and its predictions for the held-out largest ones."""

    holdout_largest: int
    fit: FitResult
    predictions: pd.DataFrame  # run_id, params, tokens, actual, predicted, lo, hi, rel_error

    @property
    def mean_abs_rel_error(self) -> float:
        return float(self.predictions["rel_error"].abs().mean())

    @property
    def max_abs_rel_error(self) -> float:
        return float(self.predictions["rel_error"].abs().max())

    @property
    def coverage(self) -> float:
        """Share of held-out losses inside the 95% prediction interval (NaN without bootstrap draws)."""
        p = self.predictions
        if p[["lo", "hi"]].isna().all(axis=None):
            return float("nan")
        return float(((p["actual"] >= p["lo"]) & (p["actual"] <= p["hi"])).mean())

    def summary(self) -> str:
        coverage = self.coverage
        band = ("no prediction interval (bootstrap=0)" if np.isnan(coverage)
                else f"95% prediction interval coverage {coverage:.0%}")
        return (f"backtest: fitted on all but the largest {self.holdout_largest} size(s), predicted "
                f"{len(self.predictions)} held-out run(s): mean |rel. error| {self.mean_abs_rel_error:.2%}, "
                f"max {self.max_abs_rel_error:.2%}, {band}")

    def to_records(self) -> list[dict]:
        """The ``backtest`` list of ``fit.json``: run_id, params, tokens, actual, predicted, rel_error."""
        columns = ["run_id", "params", "tokens", "actual", "predicted", "rel_error"]
        return self.predictions[columns].to_dict(orient="records")


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
