"""The fit objective: a robust or squared loss on residuals, summed over weighted points.

``F(theta) = sum_i w_i · rho(r_i)``, where, for ``loss="huber"`` (the default, after Hoffmann et al. 2022
and Besiroglu et al. 2024), ``r_i = log L_i − log L̂_i`` and ``rho`` is Huber's function with threshold δ
(``scipy.special.huber``): ``r²/2`` for ``|r| ≤ δ``, else ``δ(|r| − δ/2)``. ``loss="mse_log"`` uses
``rho(r) = r²`` on the same log residuals, ``loss="mse"`` uses ``rho(r) = r²`` on ``r_i = L_i − L̂_i``.
Everything is vectorised over many parameter vectors (starts) at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalefit.fitting.parameters import FreeParameters
from scalefit.laws.base import Law

LOSSES = ("huber", "mse_log", "mse")


@dataclass(frozen=True)
class Loss:
    """A per-point loss ``rho(r)``, its derivative ``psi = rho'`` and its Gauss-Newton curvature weight.

    The curvature weight is ``psi(r) / r``: for squares the constant 2, for Huber ``min(1, δ/|r|)``, the
    iteratively-reweighted-least-squares weight, which majorises the loss so that damped Gauss-Newton steps
    descend even where most residuals sit in Huber's linear part.
    """

    name: str
    delta: float

    @property
    def log_space(self) -> bool:
        """Whether residuals are taken on log loss (``huber``, ``mse_log``) or on loss (``mse``)."""
        return self.name != "mse"

    def value(self, residuals: np.ndarray) -> np.ndarray:
        """``rho(r)``; Huber's as ``m(|r| − m/2)`` with ``m = min(|r|, δ)``, equal to scipy.special.huber."""
        if self.name == "huber":
            size = np.abs(residuals)
            clipped = np.minimum(size, self.delta)
            size -= 0.5 * clipped
            size *= clipped
            return size
        return residuals * residuals

    def psi(self, residuals: np.ndarray) -> np.ndarray:
        if self.name == "huber":
            return np.clip(residuals, -self.delta, self.delta)
        return 2.0 * residuals

    def curvature(self, residuals: np.ndarray, outlier_weight: float = 1.0) -> np.ndarray:
        """Gauss-Newton curvature weight per residual.

        For squares the constant 2. For Huber, 1 inside ``|r| ≤ δ`` and ``outlier_weight · δ/|r|`` outside:
        with ``outlier_weight = 1`` this is the iteratively-reweighted-least-squares weight ``psi(r)/r``,
        which majorises the loss, so damped steps descend robustly from far away; smaller values move it
        towards Huber's true curvature (0 outside δ), which converges in far fewer steps near an optimum.
        """
        if self.name != "huber":
            return np.full_like(residuals, 2.0)
        size = np.abs(residuals)
        inside = None if outlier_weight == 1.0 else size <= self.delta
        np.maximum(size, self.delta, out=size)
        weight = np.divide(outlier_weight * self.delta, size, out=size)
        if inside is not None:
            weight[inside] = 1.0
        return weight

    def describe(self) -> str:
        """Short label, e.g. ``huber(delta=0.001) on log L``."""
        target = "log L" if self.log_space else "L"
        return f"huber(delta={self.delta:g}) on {target}" if self.name == "huber" else f"squared error on {target}"


@dataclass(frozen=True)
class Objective:
    """The objective of one fit, evaluated for many free-parameter vectors at once.

    Attributes
    ----------
    law
        The law being fitted.
    inputs
        (points, law inputs) raw input values.
    log_loss
        (points,) observed ``log L``.
    point_weights
        (points,) non-negative weights ``w_i``.
    loss
        The per-point loss.
    free
        The map from free parameters to the law's parameters (fixed and tied ones).
    """

    law: Law
    inputs: np.ndarray
    log_loss: np.ndarray
    point_weights: np.ndarray
    loss: Loss
    free: FreeParameters

    def residuals(self, z: np.ndarray) -> np.ndarray:
        """Residuals (starts, points) for free vectors ``z`` (starts, free), in ``z``'s dtype."""
        log_pred = self.law.log_predict(self.free.expand(z), self.inputs)
        return self._residuals(log_pred, z.dtype)

    def residuals_jacobian(self, z: np.ndarray, shifts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Residuals (starts, points) and the Jacobian of the *prediction* (free, starts, points).

        The prediction is ``log L̂`` for log-space losses and ``L̂`` for ``mse``, so that
        ``d residual / dz = −jacobian``. ``shifts`` (starts, points), optional, are added to the observed
        ``log L`` of each start's row (residual-bootstrap replicates).
        """
        log_pred, jacobian = self.law.log_predict_jacobian(self.free.expand(z), self.inputs)
        jacobian = self.free.reduce_jacobian(jacobian)
        if not self.loss.log_space:
            jacobian = jacobian * np.exp(log_pred)
        return self._residuals(log_pred, z.dtype, shifts), jacobian

    def _residuals(self, log_pred: np.ndarray, dtype: np.dtype, shifts: np.ndarray | None = None) -> np.ndarray:
        observed = self.log_loss.astype(dtype)
        if shifts is not None:
            observed = observed + shifts.astype(dtype)
        if self.loss.log_space:
            return np.subtract(observed, log_pred, out=log_pred)
        return np.exp(observed) - np.exp(log_pred)

    def value(self, residuals: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``F`` per start (starts,), with optional extra per-start weights (starts, points)."""
        weights = self._weights(residuals.dtype, weights)
        values = self.loss.value(residuals)
        return values @ weights if weights.ndim == 1 else np.einsum("sn,sn->s", values, weights)

    def value_and_gradient(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """``F`` and its exact gradient at one free vector (1-d), in float64, for scipy's optimisers."""
        residuals, jacobian = self.residuals_jacobian(np.asarray(z, dtype=float)[None])
        weights = self.point_weights
        value = float(self.loss.value(residuals[0]) @ weights)
        return value, -jacobian[:, 0] @ (self.loss.psi(residuals[0]) * weights)

    def _weights(self, dtype: np.dtype, extra: np.ndarray | None) -> np.ndarray:
        base = self.point_weights.astype(dtype)
        return base if extra is None else base * extra.astype(dtype)
