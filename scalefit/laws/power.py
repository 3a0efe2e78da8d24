"""A saturating power law in one variable: ``L(x) = E + A · x^(−α)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalefit.laws.base import Law, Parameter, log_sum_exp


class PowerLaw(Law):
    r"""Power law with an irreducible floor in one column, ``L(x) = E + A · x^(−α)``.

    The form of Kaplan et al. (2020, "Scaling Laws for Neural Language Models") with the additive constant of
    Henighan et al. (2020, "Scaling Laws for Autoregressive Generative Modeling"), fitted in log-sum-exp form::

        log L̂ = LSE(a − α log x, e),   A = e^a, E = e^e.

    Henighan et al. write the same law as ``L = E + (x0 / x)^α``; the fit also reports ``x0 = A^(1/α)``
    (a derived quantity, with bootstrap intervals like the others).

    Parameters
    ----------
    x
        The runs-table column the loss is a function of: ``"params"``, ``"tokens"`` or ``"flops"``.

    Notes
    -----
    Fitted parameters, in order: ``a, e, alpha``; reported: ``A, E, alpha``. Default starts:
    a ∈ {0, 5, …, 25}, e ∈ {−1, −0.5, …, 1}, α ∈ {0, 0.25, 0.5, 1, 2} (150 starts). The Jacobian is analytic.
    """

    name = "power"
    parameters = (
        Parameter("a", "A", True, (-30.0, 80.0), (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)),
        Parameter("e", "E", True, (-20.0, 10.0), (-1.0, -0.5, 0.0, 0.5, 1.0)),
        Parameter("alpha", "alpha", False, (0.0, 10.0), (0.0, 0.25, 0.5, 1.0, 2.0)),
    )
    derived_names = ("x0",)

    def __init__(self, x: str = "params") -> None:
        self.x = x
        self.inputs = (x,)

    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self.log_predict_jacobian(theta, inputs)[0]

    def log_predict_jacobian(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_x = np.log(inputs[:, 0]).astype(theta.dtype)
        a, e, alpha = (theta[:, k : k + 1] for k in range(3))
        jacobian = np.empty((3, len(theta), len(inputs)), dtype=theta.dtype)
        value, _ = log_sum_exp(a - alpha * log_x, e, weights_out=jacobian[:2])  # d/da, d/de
        np.multiply(jacobian[0], -log_x, out=jacobian[2])  # d/dalpha
        return value, jacobian

    def derive(self, reported: pd.DataFrame) -> pd.DataFrame:
        """Henighan's scale ``x0 = A^(1/α)`` (infinite when α = 0)."""
        with np.errstate(divide="ignore", over="ignore"):
            x0 = np.exp(np.log(reported["A"]) / reported["alpha"])
        return pd.DataFrame({"x0": x0}, index=reported.index)

    def __repr__(self) -> str:
        return f"PowerLaw(x={self.x!r})"
