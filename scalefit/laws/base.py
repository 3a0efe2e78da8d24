"""The declarative base of every law: named parameters, bounds, a start grid and a vectorised prediction.

A law predicts the *log* loss, ``log L̂``, for many parameter vectors at once. The fitting engine
(:mod:`scalefit.fitting`) only ever talks to a law through this module's :class:`Law` interface, so a new
law is one small subclass and no engine change.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Parameter:
    """One parameter of a law, in the space where it is fitted and in the space where it is reported.

    Parameters
    ----------
    name
        Name in the fitting space, e.g. ``"a"`` for ``a = log A``.
    reported
        Name users see, e.g. ``"A"``. Equal to ``name`` for parameters fitted as they are.
    log_scale
        When true the reported value is ``exp(fitted)``: amplitudes are fitted as logs so that they stay
        positive and the log-sum-exp form stays well conditioned.
    bounds
        ``(lower, upper)`` in the fitting space. Wide on purpose: they keep the optimiser out of overflow,
        not out of the answer. A fit that ends on a bound is reported as suspect.
    grid
        Default start values in the fitting space; the law's start grid is their Cartesian product.
    """

    name: str
    reported: str
    log_scale: bool
    bounds: tuple[float, float]
    grid: tuple[float, ...]

    def to_fitted(self, value: float) -> float:
        """Convert a reported value (e.g. ``E = 1.69``) to the fitting space (``e = log 1.69``)."""
        if self.log_scale:
            if value <= 0:
                raise ValueError(f"{self.reported} must be positive, got {value!r}")
            return float(np.log(value))
        return float(value)


def log_sum_exp(*terms: np.ndarray, weights_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stable ``log(sum_k exp(t_k))`` of two or more broadcastable arrays, and the softmax weights.

    Returns the log-sum-exp and a (terms, ...) array of weights, written into ``weights_out`` when given
    (a law can pass the first rows of its Jacobian).

    The weights ``exp(t_k − lse)`` are the derivatives of the log-sum-exp with respect to each term, so laws
    written in this form get their Jacobian almost for free. Differences below ``0.35 · log(tiny)`` of the
    dtype (−30 in float32, −248 in float64) are clipped before ``exp``: such a weight is invisible next to
    1, and the clip keeps subnormal numbers, which are slow on x86, out of the weights and of their squares
    in the engine's Gauss-Newton matrices. Works in place where it can: this is the engine's hot loop.
    """
    top = np.maximum(terms[0], terms[1])
    floor = 0.35 * float(np.log(np.finfo(top.dtype).tiny))
    for term in terms[2:]:
        np.maximum(top, term, out=top)
    weights = np.empty((len(terms), *top.shape), dtype=top.dtype) if weights_out is None else weights_out
    for term, shifted in zip(terms, weights):
        np.subtract(term, top, out=shifted)
        np.maximum(shifted, floor, out=shifted)
        np.exp(shifted, out=shifted)
    total = weights[0] + weights[1]
    for weight in weights[2:]:
        total += weight
    inverse = np.reciprocal(total)
    value = np.log(total, out=total)
    value += top
    weights *= inverse
    return value, weights


class Law(ABC):
    """A scaling law ``L̂ = f(inputs; parameters)``, evaluated in log space for many parameter vectors.

    Subclasses set :attr:`parameters` (fixed order), :attr:`inputs` (column names of the runs table) and
    implement :meth:`log_predict`. They may override :meth:`log_predict_jacobian` with an analytic
    Jacobian; the default is a vectorised central finite difference. Arrays follow one convention:
    ``theta`` is (starts, parameters) in the fitting space, ``inputs`` is (points, len(self.inputs)) of raw
    positive values, predictions are (starts, points) and Jacobians (parameters, starts, points) — parameter
    first, so that each derivative is one contiguous (starts, points) block, which keeps the engine's
    products cache-friendly. Laws keep the dtype of ``theta`` so that the engine can explore in float32.
    """

    name: str
    parameters: tuple[Parameter, ...]
    inputs: tuple[str, ...]
    #: Quantities computed from the reported parameters after the fit (e.g. Henighan's ``x0``).
    derived_names: tuple[str, ...] = ()

    @abstractmethod
    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Predicted ``log L̂`` of shape (starts, points) for parameter vectors ``theta`` (starts, params)."""

    def log_predict_jacobian(self, theta: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log L̂`` (starts, points) and its Jacobian (params, starts, points) by central differences.

        Steps are ``eps**(1/3) * max(1, |theta|)`` for the dtype's machine epsilon; all ``2 * params``
        shifted copies of every start go through :meth:`log_predict` in one call.
        """
        n_starts, n_params = theta.shape
        step = np.finfo(theta.dtype).eps ** (1 / 3) * np.maximum(1.0, np.abs(theta))
        shifts = np.eye(n_params, dtype=theta.dtype)[:, None, :] * step[None, :, :]  # (params, starts, params)
        shifted = np.concatenate([theta[None] + shifts, theta[None] - shifts]).reshape(-1, n_params)
        values = self.log_predict(shifted, inputs).reshape(2, n_params, n_starts, -1)
        jacobian = (values[0] - values[1]) / (2 * step.T[:, :, None])
        return self.log_predict(theta, inputs), jacobian

    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names in the fitting space, in the law's fixed order."""
        return tuple(p.name for p in self.parameters)

    @property
    def reported_names(self) -> tuple[str, ...]:
        """Parameter names as reported, in the same order as :attr:`param_names`."""
        return tuple(p.reported for p in self.parameters)

    @property
    def bounds(self) -> np.ndarray:
        """(params, 2) array of lower and upper bounds in the fitting space."""
        return np.array([p.bounds for p in self.parameters], dtype=float)

    def parameter(self, name: str) -> Parameter:
        """Look a parameter up by its fitted or reported name."""
        for p in self.parameters:
            if name in (p.name, p.reported):
                return p
        known = ", ".join(f"{p.reported} ({p.name})" if p.name != p.reported else p.name for p in self.parameters)
        raise KeyError(f"{self.name} has no parameter {name!r}; it has {known}")

    def start_grid(self) -> np.ndarray:
        """The default starts: the Cartesian product of every parameter's grid, (starts, params)."""
        return np.array(list(itertools.product(*(p.grid for p in self.parameters))), dtype=float)

    def to_reported(self, theta: np.ndarray) -> np.ndarray:
        """Map fitted parameter vectors (starts, params) to reported values (``exp`` where log-scaled)."""
        theta = np.asarray(theta, dtype=float)
        log_scaled = np.array([p.log_scale for p in self.parameters])
        return np.where(log_scaled, np.exp(np.where(log_scaled, theta, 0.0)), theta)

    def to_fitted(self, params: Mapping[str, float] | pd.Series | pd.DataFrame) -> np.ndarray:
        """Map reported values (a mapping, Series, or DataFrame of draws) to fitting-space vectors.

        Returns (rows, params); a mapping or Series gives one row.
        """
        frame = params if isinstance(params, pd.DataFrame) else pd.DataFrame([dict(params)])
        columns = []
        for p in self.parameters:
            values = np.asarray(frame[p.reported], dtype=float)
            columns.append(np.log(values) if p.log_scale else values)
        return np.stack(columns, axis=-1)

    def derive(self, reported: pd.DataFrame) -> pd.DataFrame:
        """Quantities derived from reported parameters (one row per parameter vector); none by default."""
        return pd.DataFrame(index=reported.index)

    def predict(self, params: Mapping[str, float] | pd.Series, data: pd.DataFrame) -> np.ndarray:
        """Predicted loss ``L̂`` at the rows of ``data`` for reported parameter values ``params``."""
        return np.exp(self.log_predict(self.to_fitted(params), self.input_array(data)))[0]

    def input_array(self, data: pd.DataFrame) -> np.ndarray:
        """The law's input columns of ``data`` as a float (points, inputs) array."""
        missing = [c for c in self.inputs if c not in data.columns]
        if missing:
            raise KeyError(f"{self.name} needs column(s) {missing}; the data has {list(data.columns)}")
        return data[list(self.inputs)].to_numpy(dtype=float)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
