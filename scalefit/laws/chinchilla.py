"""The Chinchilla joint law in parameters and tokens (Hoffmann et al. 2022)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from scalefit.flops import FLOPS_PER_PARAM_TOKEN
from scalefit.laws.base import Law, Parameter, log_sum_exp

_AMPLITUDE_GRID = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
_EXPONENT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)
_FLOOR_GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)


class Chinchilla(Law):
    r"""Joint law in model size and data, ``L(N, D) = E + A / N^α + B / D^β``.

    From Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", eq. (2), fitted as in
    their Approach 3 and in Besiroglu et al. (2024, Epoch AI, "Chinchilla Scaling: A replication attempt")
    in log-sum-exp form::

        log L̂ = LSE(a − α log N, b − β log D, e),   A = e^a, B = e^b, E = e^e.

    Inputs are the runs-table columns ``params`` (N) and ``tokens`` (D). Fitted parameters, in order:
    ``a, b, e, alpha, beta``; reported: ``A, B, E, alpha, beta``. The default start grid is Epoch's:
    a, b ∈ {0, 5, …, 25}, e ∈ {−1, −0.5, …, 1}, α, β ∈ {0, 0.5, …, 2} (4500 starts).
    The Jacobian is analytic: the derivative of the log-sum-exp with respect to each term is that term's
    softmax weight.
    """

    name = "chinchilla"
    inputs = ("params", "tokens")
    parameters = (
        Parameter("a", "A", True, (-30.0, 80.0), _AMPLITUDE_GRID),
        Parameter("b", "B", True, (-30.0, 80.0), _AMPLITUDE_GRID),
        Parameter("e", "E", True, (-20.0, 10.0), _FLOOR_GRID),
        Parameter("alpha", "alpha", False, (0.0, 10.0), _EXPONENT_GRID),
        Parameter("beta", "beta", False, (0.0, 10.0), _EXPONENT_GRID),
    )

    def _terms(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        log_n, log_d = np.log(inputs).astype(theta.dtype).T
        a, b, e, alpha, beta = (theta[:, k : k + 1] for k in range(5))
        return [a - alpha * log_n, b - beta * log_d, e], log_n, log_d

    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        terms, _, _ = self._terms(theta, inputs)
        return log_sum_exp(*terms)[0]

    def log_predict_jacobian(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms, log_n, log_d = self._terms(theta, inputs)
        jacobian = np.empty((5, len(theta), len(inputs)), dtype=theta.dtype)
        value, _ = log_sum_exp(*terms, weights_out=jacobian[:3])  # d/da, d/db, d/de
        np.multiply(jacobian[0], -log_n, out=jacobian[3])  # d/dalpha
        np.multiply(jacobian[1], -log_d, out=jacobian[4])  # d/dbeta
        return value, jacobian

    @staticmethod
    def optimal_allocation(params: Mapping[str, float] | pd.Series | pd.DataFrame, flops) -> pd.DataFrame:
        r"""Compute-optimal model size and data for a budget ``C = 6 N D`` (closed form, vectorised).

        Minimising ``L(N, D)`` subject to ``6 N D = C`` gives (Hoffmann et al. 2022, eq. (4))::

            N_opt(C) = G · (C/6)^(β/(α+β)),   D_opt(C) = G⁻¹ · (C/6)^(α/(α+β)),
            G = (α A / (β B))^(1/(α+β)).

        Parameters
        ----------
        params
            Reported values ``A, B, alpha, beta`` (``E`` is not needed): a mapping or Series of scalars, or a
            DataFrame of draws (e.g. ``FitResult.draws``) to get one allocation per draw.
        flops
            Compute budget(s) ``C`` in FLOP, counted as ``6 N D``; scalar or 1-d array, broadcast against
            the rows of ``params`` (so either one budget, one parameter row, or equally many of each).

        Returns
        -------
        pandas.DataFrame
            Columns ``flops``, ``params`` (N_opt), ``tokens`` (D_opt) and ``tokens_per_param``.
        """
        frame = params if isinstance(params, pd.DataFrame) else pd.DataFrame([dict(params)])
        big_a, big_b, alpha, beta = (frame[k].to_numpy(dtype=float) for k in ("A", "B", "alpha", "beta"))
        budget, big_a, big_b, alpha, beta = np.broadcast_arrays(
            np.asarray(flops, dtype=float).ravel(), big_a, big_b, alpha, beta
        )
        total = alpha + beta
        scale = (alpha * big_a / (beta * big_b)) ** (1.0 / total)
        n_opt = scale * (budget / FLOPS_PER_PARAM_TOKEN) ** (beta / total)
        d_opt = (budget / FLOPS_PER_PARAM_TOKEN) ** (alpha / total) / scale
        return pd.DataFrame({"flops": budget, "params": n_opt, "tokens": d_opt, "tokens_per_param": d_opt / n_opt})
