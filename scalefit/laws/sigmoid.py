"""A sigmoid with a floor and a ceiling: task accuracy as a function of a task loss (or of compute)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from scalefit.laws.base import Law, Parameter

_K_GRID = (-1.0, 0.5, 2.0)  # log k: k ∈ {0.37, 1.6, 7.4} per unit of x
_REACH_GRID = (0.3, 0.7, 1.0)
_FLOOR_GRID = (0.0, 0.25, 0.5)


class Sigmoid(Law):
    r"""Accuracy between a floor and a ceiling, ``acc(x) = floor + (ceiling − floor) · σ(k · (x0 − x))``.

    Step 2 of the two-step task-scaling method of Bhagia et al. (2024), "Establishing Task Scaling Laws via
    Compute-Efficient Model Ladders" (arXiv:2412.04403), eq. (2), which they write
    ``Acc(L) = a / (1 + e^{−k (L − L0)}) + b`` with the task loss ``L`` (bits per byte of the correct answer):
    here ``b = floor``, ``a = ceiling − floor``, and the sign of ``k`` is absorbed so that ``k > 0`` and the
    accuracy *falls* as the loss ``x`` grows (``σ`` is the logistic function). With ``increasing=True`` it
    rises with ``x`` instead (``σ(k · (x − x0))``), which is the single-step alternative of the paper:
    accuracy directly from log compute (``log_x=True`` takes ``x = log`` of the column).

    The ceiling is parametrised so that ``floor ≤ ceiling ≤ 1`` always holds::

        ceiling = floor + reach · (1 − floor),   0 ≤ floor ≤ 1,   0 ≤ reach ≤ 1,

    and ``k = exp(log_k)`` stays positive. The floor is the chance level of the task when fixed
    (``fit(..., fix={"floor": 1 / n_choices})``, the paper's choice) or fitted. The engine fits
    ``log acĉ`` like every law; use ``loss="mse"`` to fit squared errors of the accuracy itself.

    Parameters
    ----------
    x
        The column of the abscissa, e.g. ``"task_loss"`` or ``"flops"``.
    log_x
        Take ``log`` of the column (for compute; the column must then be positive).
    increasing
        Accuracy rises with ``x`` (compute) instead of falling (a loss).
    x_range
        ``(lo, hi)`` of the (log-)abscissa in the data: sets the start grid of ``x0`` (five points from
        ``lo − (hi − lo)`` to ``hi + (hi − lo)``) and its bounds (``lo − 20 (hi − lo)``, ``hi + 20 (hi − lo)``).

    Notes
    -----
    Fitted parameters, in order: ``floor``, ``reach``, ``log_k`` (reported ``k``), ``x0``; derived:
    ``ceiling``. Default starts: floor ∈ {0, 0.25, 0.5}, reach ∈ {0.3, 0.7, 1}, log k ∈ {−1, 0.5, 2},
    five ``x0`` (135 starts). The Jacobian is analytic.
    """

    name = "sigmoid"
    derived_names = ("ceiling",)

    def __init__(self, x: str = "task_loss", *, log_x: bool = False, increasing: bool = False,
                 x_range: tuple[float, float] = (0.0, 5.0)) -> None:
        lo, hi = (float(v) for v in x_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"x_range must be two finite numbers lo < hi, got {x_range!r}")
        span = hi - lo
        self.x, self.log_x, self.increasing, self.x_range = x, log_x, increasing, (lo, hi)
        self.inputs = (x,)
        self.parameters = (
            Parameter("floor", "floor", False, (0.0, 1.0), _FLOOR_GRID),
            Parameter("reach", "reach", False, (0.0, 1.0), _REACH_GRID),
            Parameter("log_k", "k", True, (-12.0, 12.0), tuple(v - np.log(span) for v in _K_GRID)),
            Parameter("x0", "x0", False, (lo - 20 * span, hi + 20 * span), tuple(np.linspace(lo - span, hi + span, 5))),
        )

    def abscissa(self, inputs: np.ndarray) -> np.ndarray:
        """The (log-)abscissa ``x`` of (points, 1) raw inputs."""
        values = np.asarray(inputs, dtype=float)[:, 0]
        return np.log(values) if self.log_x else values

    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self.log_predict_jacobian(theta, inputs)[0]

    def log_predict_jacobian(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.abscissa(inputs).astype(theta.dtype)
        floor, reach, log_k, x0 = (theta[:, j : j + 1] for j in range(4))
        k = np.exp(log_k)
        gap = (x - x0) if self.increasing else (x0 - x)  # σ's argument is k · gap
        s = expit(k * gap)
        height = (1.0 - floor) * reach  # ceiling − floor
        accuracy = np.maximum(floor + height * s, np.finfo(theta.dtype).tiny)
        slope = height * s * (1.0 - s) / accuracy  # d log acc / d (k · gap)
        jacobian = np.empty((4, *accuracy.shape), dtype=theta.dtype)
        jacobian[0] = (1.0 - reach * s) / accuracy
        jacobian[1] = (1.0 - floor) * s / accuracy
        jacobian[2] = slope * k * gap
        jacobian[3] = slope * k * (-1.0 if self.increasing else 1.0)
        return np.log(accuracy), jacobian

    def derive(self, reported: pd.DataFrame) -> pd.DataFrame:
        """The ceiling ``floor + reach · (1 − floor)``."""
        ceiling = reported["floor"] + reported["reach"] * (1.0 - reported["floor"])
        return pd.DataFrame({"ceiling": ceiling}, index=reported.index)

    def __repr__(self) -> str:
        return f"Sigmoid(x={self.x!r}, log_x={self.log_x}, increasing={self.increasing}, x_range={self.x_range})"
