"""Backtests of the RL law: predicting held-out points or held-out sizes, and scoring the predictions.

``early:F`` scores the law on the later part of every curve; ``holdout-largest:K`` predicts each held-out
size's curve in two variants (see :mod:`scalefit.rl`): ``slope-only`` refits the intercept on the target's
first points, ``full`` extrapolates it along a line in ``log N`` through the fitted sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import huber

from scalefit.errors import FitError
from scalefit.fitting import FitResult
from scalefit.laws.rl_efficiency import RLEfficiency, size_label

VARIANTS = ("slope-only", "full")
INTERCEPT_TREND = "log L at each curve's first X = a + b log N, least squares over the fitted sizes"


def r2(observed, predicted) -> float:
    """``1 − SS_res / SS_tot`` (NaN when the observations do not vary)."""
    observed, predicted = np.asarray(observed, dtype=float), np.asarray(predicted, dtype=float)
    total = float(((observed - observed.mean()) ** 2).sum())
    return 1.0 - float(((observed - predicted) ** 2).sum()) / total if total > 0 else math.nan


def fit_intercept(group: pd.DataFrame, k: float, loss: str, delta: float) -> float:
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


def predict_targets(law: RLEfficiency, result: FitResult, points: pd.DataFrame, sizes: pd.DataFrame,
                    targets: list[float], variants: list[str], loss: str, delta: float) -> dict:
    """Predict every target's curve in every variant (filling ``points`` and ``sizes``); score them.

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
        estimates = {"slope-only": fit_intercept(group[group["role"] == "anchor"], k, loss, delta),
                     "full": float(intercept + slope * np.log(n) + k * np.log(first_x[n]))}
        for name in variants:
            column = name.replace("-", "_")
            sizes.loc[label, f"E_{column}"] = estimates[name]
            points.loc[rows, f"L_hat_{column}"] = np.exp(estimates[name] - k * np.log(group["x"]))
    scored = points[points["role"] == "heldout"]
    return {name: {"variant": name, **heldout_errors(scored, f"L_hat_{name.replace('-', '_')}")}
            for name in variants}


def heldout_errors(points: pd.DataFrame, column: str) -> dict:
    """RMSE of L, R² and relative error at each curve's last point, overall and per size."""

    def block(frame: pd.DataFrame) -> dict:
        ends = frame.loc[frame.groupby("run_id")["x"].idxmax()]
        relative = (ends[column] - ends["loss"]).abs() / ends["loss"]
        return {"rmse": float(np.sqrt(((frame["loss"] - frame[column]) ** 2).mean())),
                "r2": r2(frame["loss"], frame[column]), "rel_error_end": float(relative.mean()),
                "rel_error_end_max": float(relative.max()), "n_points": len(frame)}

    return {**block(points), "per_size": {size_label(n): block(g) for n, g in points.groupby("params")}}


def describe_protocol(protocol: Mapping) -> str:
    """One line saying what a backtest protocol fitted, predicted and scored."""
    if protocol["name"] == "early":
        fraction = protocol["fraction"]
        return f"early:{fraction:g} - fit on X <= {fraction:g} X_max of every curve, score the rest"
    return (f"holdout-largest:{protocol['k']} - fit without {', '.join(protocol['targets'])} and predict "
            f"({' and '.join(protocol['variants'])}); slope-only refits E on X <= {protocol['anchor']:g} "
            f"X_max, full extrapolates E ({protocol['intercept_trend']}); scored after the anchor")

