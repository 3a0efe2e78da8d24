"""The Kaplan joint law in parameters and tokens (Kaplan et al. 2020)."""

from __future__ import annotations

import numpy as np

from scalefit.laws.base import Law, Parameter, log_sum_exp


class Kaplan(Law):
    r"""Joint law ``L(N, D) = [(Nc / N)^(αN/αD) + Dc / D]^αD``.

    From Kaplan et al. (2020), "Scaling Laws for Neural Language Models", eq. (1.5); it has no irreducible
    loss term. Fitted in log-sum-exp form::

        log L̂ = αD · LSE((αN/αD)(nc − log N), dc − log D),   Nc = e^nc, Dc = e^dc.

    Inputs are ``params`` (N) and ``tokens`` (D). Fitted parameters, in order: ``nc, dc, alpha_N,
    alpha_D``; reported: ``Nc, Dc, alpha_N, alpha_D`` (Kaplan et al. report Nc ≈ 6.4e13, Dc ≈ 1.8e13,
    αN ≈ 0.076, αD ≈ 0.103). Default starts: nc, dc ∈ {15, 20, …, 40}, αN, αD ∈ {0.05, 0.1, 0.2, 0.4, 0.8}
    (900 starts). The Jacobian is analytic.
    """

    name = "kaplan"
    inputs = ("params", "tokens")
    _SCALE_GRID = (15.0, 20.0, 25.0, 30.0, 35.0, 40.0)
    _EXPONENT_GRID = (0.05, 0.1, 0.2, 0.4, 0.8)
    parameters = (
        Parameter("nc", "Nc", True, (-10.0, 100.0), _SCALE_GRID),
        Parameter("dc", "Dc", True, (-10.0, 100.0), _SCALE_GRID),
        Parameter("alpha_N", "alpha_N", False, (1e-4, 10.0), _EXPONENT_GRID),
        Parameter("alpha_D", "alpha_D", False, (1e-4, 10.0), _EXPONENT_GRID),
    )

    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self.log_predict_jacobian(theta, inputs)[0]

    def log_predict_jacobian(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_n, log_d = np.log(inputs).astype(theta.dtype).T
        nc, dc, alpha_n, alpha_d = (theta[:, k : k + 1] for k in range(4))
        size_term = (alpha_n / alpha_d) * (nc - log_n)
        inner, (w_n, w_d) = log_sum_exp(size_term, dc - log_d)
        jacobian = np.stack([alpha_n * w_n, alpha_d * w_d, w_n * (nc - log_n), inner - w_n * size_term])
        return alpha_d * inner, jacobian
