"""Fixed and tied parameters: the map between a law's parameters and the free ones the optimiser moves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scalefit.errors import FitError
from scalefit.laws.base import Law


@dataclass(frozen=True)
class FreeParameters:
    """Linear map ``theta = z @ matrix.T + offset`` from free parameters ``z`` to the law's ``theta``.

    A fixed parameter has a zero row in ``matrix`` and its value in ``offset``; tied parameters share one
    column. Everything is in the law's fitting space.

    Attributes
    ----------
    names
        One label per free coordinate: the law's fitted name, or ``"alpha=beta"`` for a tied group.
    matrix
        (law params, free params) 0/1 matrix.
    offset
        (law params,) fitting-space values of fixed parameters, zero elsewhere.
    representatives
        For each free coordinate, the index of one law parameter it drives.
    fixed
        Fitted name -> fitting-space value of each fixed parameter.
    """

    names: tuple[str, ...]
    matrix: np.ndarray
    offset: np.ndarray
    representatives: tuple[int, ...]
    fixed: dict[str, float]
    bounds: np.ndarray

    @property
    def is_identity(self) -> bool:
        """True when nothing is fixed or tied."""
        return self.matrix.shape[0] == self.matrix.shape[1] and not self.fixed

    def expand(self, free: np.ndarray) -> np.ndarray:
        """Free vectors (starts, free) to full parameter vectors (starts, law params), keeping the dtype."""
        if self.is_identity:
            return free
        return free @ self.matrix.T.astype(free.dtype) + self.offset.astype(free.dtype)

    def reduce(self, theta: np.ndarray) -> np.ndarray:
        """Full parameter vectors (starts, law params) to free ones (starts, free)."""
        return theta[:, list(self.representatives)]

    def reduce_jacobian(self, jacobian: np.ndarray) -> np.ndarray:
        """Chain rule: a Jacobian (law params, starts, points) to one in the free parameters (free, ...)."""
        if self.is_identity:
            return jacobian
        return np.tensordot(self.matrix.T.astype(jacobian.dtype), jacobian, axes=1)


def free_parameters(
    law: Law,
    fix: Mapping[str, float] | None = None,
    tie: Sequence[str] | Sequence[Sequence[str]] | None = None,
) -> FreeParameters:
    """Build the free-parameter map of ``law`` for ``fix`` and ``tie``.

    Parameters
    ----------
    law
        The law being fitted.
    fix
        Reported or fitted name -> value *as reported* (``{"E": 1.69}`` fixes ``e = log 1.69``;
        ``{"alpha": 0.34}`` fixes alpha).
    tie
        One group of names to constrain equal, e.g. ``("alpha", "beta")``, or a list of such groups. Tied
        parameters must share a scale (both log-scaled or neither). Fixing one member fixes the group.

    Raises
    ------
    FitError
        For unknown names, a group that mixes scales, or when nothing is left to fit.
    """
    index = {p.name: k for k, p in enumerate(law.parameters)}

    def resolve(name: str) -> str:
        try:
            return law.parameter(name).name
        except KeyError as error:
            raise FitError(str(error.args[0])) from None

    groups: list[list[str]] = [[p.name] for p in law.parameters]
    if tie:
        tie_groups = [tie] if isinstance(tie[0], str) else tie
        for group in tie_groups:
            names = [resolve(n) for n in group]
            if len({law.parameter(n).log_scale for n in names}) > 1:
                raise FitError(f"cannot tie {list(group)}: they are not on the same scale (log vs linear)")
            merged = [g for g in groups if set(g) & set(names)]
            groups = [g for g in groups if g not in merged] + [sorted({n for g in merged for n in g}, key=index.get)]
        groups.sort(key=lambda g: index[g[0]])

    fixed_values: dict[str, float] = {}
    for name, value in (fix or {}).items():
        parameter = law.parameter(resolve(name))
        try:
            fitted = parameter.to_fitted(value)
        except ValueError as error:
            raise FitError(f"cannot fix {name}: {error}") from None
        lower, upper = parameter.bounds
        if not lower <= fitted <= upper:
            raise FitError(f"cannot fix {name} = {value}: outside the law's bounds {parameter.bounds} (fitting space)")
        group = next(g for g in groups if parameter.name in g)
        for member in group:
            fixed_values[member] = fitted

    free_groups = [g for g in groups if g[0] not in fixed_values]
    if not free_groups:
        raise FitError("every parameter is fixed: there is nothing to fit")
    matrix = np.zeros((len(law.parameters), len(free_groups)))
    bounds = np.empty((len(free_groups), 2))
    for column, group in enumerate(free_groups):
        rows = [index[n] for n in group]
        matrix[rows, column] = 1.0
        bounds[column] = law.bounds[rows, 0].max(), law.bounds[rows, 1].min()
    offset = np.zeros(len(law.parameters))
    for name, value in fixed_values.items():
        offset[index[name]] = value
    return FreeParameters(
        names=tuple("=".join(g) for g in free_groups),
        matrix=matrix,
        offset=offset,
        representatives=tuple(index[g[0]] for g in free_groups),
        fixed=fixed_values,
        bounds=bounds,
    )
