"""Power laws for optimal hyperparameters: ``y* = c · Π_k x_k^(e_k)``, linear in log space."""

from __future__ import annotations

import numpy as np

from scalefit.laws.base import Law, Parameter

#: Runs-table column → the symbol the laws are written in.
VARIABLE_SYMBOLS = {"params": "N", "tokens": "D", "flops": "C"}
_TARGET_SYMBOLS = {"lr": "lr*", "batch_size": "B*"}


class HparamPowerLaw(Law):
    r"""Optimal learning rate or batch size as a pure power law of N, D or C: ``y* = c · Π_k x_k^(e_k)``.

    The forms of Step Law (Li et al. 2025, "Predictable Scale: Part I", arXiv:2503.04715, eqs. 1–2)::

        lr*(N, D) = c · N^a · D^b,      B*(D) = c · D^g     (B in tokens)

    and of DeepSeek LLM (Bi et al. 2024, arXiv:2401.02954, eq. 1)::

        lr*(C) = c · C^a,               B*(C) = c · C^g,

    plus ``B*(N, D) = c · N^h · D^g`` to test Step Law's claim that B* does not depend on N. In log space
    the law is linear, ``log y* = ln_c + Σ_k e_k log x_k``, so the engine's squared log residuals
    (``loss="mse_log"``) give ordinary least squares in log space, Step Law's fit. The engine reads the
    target from its ``loss`` column: pass the optima (learning rates or batch sizes) there.

    Parameters
    ----------
    name
        Law name, e.g. ``"lr_vs_N_D"``.
    target
        ``"lr"`` or ``"batch_size"`` (tokens): what the law predicts.
    inputs
        Runs-table columns, in order: ``params``, ``tokens`` and/or ``flops``.
    exponents
        One exponent name per input, e.g. ``("a", "b")``.

    Notes
    -----
    Fitted parameters, in order: ``ln_c`` (reported ``c``, log-scaled) then the exponents. Bounds are wide
    (ln c ∈ [−500, 500], exponents ∈ [−10, 10]): an LR exponent outside ±10 is not a law. The start grid is
    ln c ∈ {−5, 0, 5} × exponents ∈ {−0.5, 0, 0.5}; the problem is linear, so every start reaches the
    one optimum. The Jacobian is analytic: ``(1, log x_1, …)``.
    """

    def __init__(self, name: str, target: str, inputs: tuple[str, ...], exponents: tuple[str, ...]) -> None:
        if target not in _TARGET_SYMBOLS:
            raise ValueError(f"target must be one of {sorted(_TARGET_SYMBOLS)}, not {target!r}")
        if len(inputs) != len(exponents) or not inputs:
            raise ValueError("give one exponent name per input, and at least one input")
        unknown = [column for column in inputs if column not in VARIABLE_SYMBOLS]
        if unknown:
            raise ValueError(f"inputs must be among {sorted(VARIABLE_SYMBOLS)}, not {unknown}")
        self.name = name
        self.target = target
        self.inputs = tuple(inputs)
        self.exponents = tuple(exponents)
        self.parameters = (
            Parameter("ln_c", "c", True, (-500.0, 500.0), (-5.0, 0.0, 5.0)),
            *(Parameter(e, e, False, (-10.0, 10.0), (-0.5, 0.0, 0.5)) for e in exponents),
        )

    @property
    def formula(self) -> str:
        """The law in words, e.g. ``lr* = c * N^a * D^b``."""
        factors = " * ".join(
            f"{VARIABLE_SYMBOLS[v]}^{e}" for v, e in zip(self.inputs, self.exponents, strict=True)
        )
        unit = "  [B in tokens]" if self.target == "batch_size" else ""
        return f"{_TARGET_SYMBOLS[self.target]} = c * {factors}{unit}"

    def design(self, inputs: np.ndarray, dtype=float) -> np.ndarray:
        """(points, 1 + inputs) design matrix ``(1, log x_1, …)`` of the log-linear form."""
        logs = np.log(np.asarray(inputs, dtype=float)).astype(dtype)
        return np.column_stack([np.ones(len(logs), dtype=dtype), logs])

    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return theta @ self.design(inputs, theta.dtype).T

    def log_predict_jacobian(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        design = self.design(inputs, theta.dtype)
        jacobian = np.broadcast_to(design.T[:, None, :], (design.shape[1], len(theta), len(design))).copy()
        return theta @ design.T, jacobian

    def __repr__(self) -> str:
        return (f"HparamPowerLaw({self.name!r}, target={self.target!r}, inputs={self.inputs!r}, "
                f"exponents={self.exponents!r})")


#: The shipped LR and batch-size laws, by name.
HPARAM_LAWS = {
    law.name: law
    for law in (
        HparamPowerLaw("lr_vs_N_D", "lr", ("params", "tokens"), ("a", "b")),
        HparamPowerLaw("bs_vs_D", "batch_size", ("tokens",), ("g",)),
        HparamPowerLaw("bs_vs_N_D", "batch_size", ("params", "tokens"), ("h", "g")),
        HparamPowerLaw("lr_vs_C", "lr", ("flops",), ("a",)),
        HparamPowerLaw("bs_vs_C", "batch_size", ("flops",), ("g",)),
    )
}
