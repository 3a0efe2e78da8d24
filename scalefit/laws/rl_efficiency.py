"""The learning-efficiency law of RL post-training (Tan et al. 2025), one free intercept per model size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scalefit.laws.base import Law, Parameter

_K_MAX_GRID = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def size_label(n: float) -> str:
    """Short label of a parameter count: 9440 -> ``"9.44k"``, 1.31e10 -> ``"13.1B"``."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


class RLEfficiency(Law):
    r"""Test error of RL post-training against compute or data, per model size (Tan et al. 2025).

    From Tan et al. (2025), "Scaling Behaviors of LLM Reinforcement Learning Post-Training"
    (arXiv:2509.25300), for the test error ``L = 1 − pass@1`` of a model with ``N`` parameters after RL
    compute or data ``X``::

        log L̂ = −k(N) · log X + E(N),      k(N) = K_max / (1 + N0 / N),

    ``K_max`` is the learning-efficiency ceiling, ``N0`` the size at which ``k`` reaches ``K_max / 2``, and
    ``E(N)`` a free intercept for each model size. They report, for Qwen2.5 base models against compute,
    ``K_max = 0.135, N0 = 13.1B``.

    Because the intercepts are free per size, the law is built for the sizes of the data it will fit:
    ``RLEfficiency(sizes)`` has the parameters ``K_max``, ``N0`` and one ``E[<size>]`` per size, and
    predicts only at those sizes. Derived quantities: ``k[<size>]`` for every size.

    Parameters
    ----------
    sizes
        The distinct model sizes ``N`` (parameters), any order; stored sorted.
    x
        The column of ``X``: e.g. ``"flops"`` (compute) or ``"samples"`` (data).

    Notes
    -----
    Fitted parameters, in order: ``k_max`` (reported ``K_max``, bounds [0, 10]), ``n0`` (``N0 = e^n0``,
    bounds ±12 e-folds beyond the sizes), then ``E[<size>]`` (bounds [−100, 100]). The default start
    grid crosses ``K_max`` ∈ {0.02, …, 1} with 8 values of ``N0`` from 1/100 of the smallest to 100× the
    largest size, intercepts at 0; :func:`scalefit.rl.fit_rl` starts the intercepts from the data instead.
    The Jacobian is analytic.
    """

    name = "rl-efficiency"

    def __init__(self, sizes: Sequence[float], x: str = "flops") -> None:
        sizes = np.unique(np.asarray(sizes, dtype=float))
        if len(sizes) == 0 or not (np.isfinite(sizes).all() and (sizes > 0).all()):
            raise ValueError(f"sizes must be finite positive parameter counts, got {list(sizes)}")
        self.sizes = sizes
        self.x = x
        self.inputs = ("params", x)
        self.labels = tuple(size_label(n) for n in sizes)
        if len(set(self.labels)) < len(self.labels):
            self.labels = tuple(f"{n:.6g}" for n in sizes)
        log_lo, log_hi = float(np.log(sizes[0])), float(np.log(sizes[-1]))
        n0_grid = tuple(np.linspace(log_lo - np.log(100.0), log_hi + np.log(100.0), 8))
        self.parameters = (
            Parameter("k_max", "K_max", False, (0.0, 10.0), _K_MAX_GRID),
            Parameter("n0", "N0", True, (log_lo - 12.0, log_hi + 12.0), n0_grid),
            *(Parameter(f"E[{s}]", f"E[{s}]", False, (-100.0, 100.0), (0.0,)) for s in self.labels),
        )
        self.derived_names = tuple(f"k[{label}]" for label in self.labels)

    def size_index(self, params: np.ndarray) -> np.ndarray:
        """Index into :attr:`sizes` of every value of ``params``; raises for a size it was not built for."""
        params = np.asarray(params, dtype=float)
        index = np.clip(np.searchsorted(self.sizes, params), 0, len(self.sizes) - 1)
        unknown = ~np.isclose(self.sizes[index], params, rtol=1e-9, atol=0.0)
        if unknown.any():
            other = sorted(set(params[unknown]))
            raise ValueError(f"{self.name} was built for sizes {list(self.sizes)}, not {other}")
        return index

    def efficiency(self, k_max, n0, params) -> np.ndarray:
        """``k(N) = K_max / (1 + N0 / N)`` for reported ``K_max``, ``N0`` (broadcast)."""
        return np.asarray(k_max) / (1.0 + np.asarray(n0) / np.asarray(params, dtype=float))

    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self.log_predict_jacobian(theta, inputs)[0]

    def log_predict_jacobian(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = self.size_index(inputs[:, 0])
        log_n = np.log(inputs[:, 0]).astype(theta.dtype)
        log_x = np.log(inputs[:, 1]).astype(theta.dtype)
        k_max, n0 = theta[:, 0:1], theta[:, 1:2]
        share = 1.0 / (1.0 + np.exp(n0 - log_n))  # N / (N + N0), (starts, points)
        slope = k_max * share
        value = theta[:, 2:][:, index] - slope * log_x
        jacobian = np.zeros((len(self.parameters), *value.shape), dtype=theta.dtype)
        jacobian[0] = -share * log_x
        jacobian[1] = slope * (1.0 - share) * log_x  # d/dn0 of −k·log X, with dk/dn0 = −k·(1 − share)
        jacobian[2 + index, :, np.arange(len(index))] = 1.0
        return value, jacobian

    def derive(self, reported: pd.DataFrame) -> pd.DataFrame:
        """The efficiency ``k(N)`` at each size, ``k[<size>]``."""
        k = self.efficiency(reported["K_max"].to_numpy()[:, None], reported["N0"].to_numpy()[:, None],
                            self.sizes[None, :])
        return pd.DataFrame(k, columns=list(self.derived_names), index=reported.index)

    def __repr__(self) -> str:
        return f"RLEfficiency(sizes={[float(n) for n in self.sizes]}, x={self.x!r})"
