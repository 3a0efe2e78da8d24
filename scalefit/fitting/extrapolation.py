"""How far a prediction lies beyond the data, and how much error that distance has been measured to add.

Distances are in decades (powers of ten) outside the fitted range of each input: ``log10(x / max)`` above the
range, ``log10(min / x)`` below it, 0 inside. The compute range uses the table's ``flops`` when fitted on it,
else ``C = 6 N D``.

:class:`ExtrapolationError` is the planning interval's extra term: the standard deviation of log-loss errors
per decade of extrapolation, measured by an expanding-window rollout (see :mod:`scalefit.selection` and
docs/trust.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from scalefit.flops import training_flops

#: Inputs whose fitted ranges are recorded (when the points have them).
RANGE_COLUMNS = ("params", "tokens", "flops")
#: Predictions further than this many decades beyond the data get a warning.
WARN_DECADES = 1.0


def fitted_ranges(points: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """``{column: (min, max)}`` of ``params``, ``tokens`` and ``flops`` among fitted ``points``.

    ``flops`` is ``6 · params · tokens`` when the points have both but no ``flops`` column.
    """
    columns = {c: points[c].to_numpy(float) for c in RANGE_COLUMNS if c in points.columns}
    if "flops" not in columns and {"params", "tokens"} <= set(columns):
        columns["flops"] = training_flops(columns["params"], columns["tokens"])
    return {name: (float(np.min(v)), float(np.max(v))) for name, v in columns.items() if len(v)}


def extrapolation_distance(fit_or_ranges, X: pd.DataFrame | Mapping[str, object]) -> pd.DataFrame:
    """Decades beyond the fitted ranges, per input, for each row of ``X``.

    Parameters
    ----------
    fit_or_ranges
        A :class:`~scalefit.fitting.FitResult` (its ``ranges``) or a mapping ``{column: (min, max)}`` as made
        by :func:`fitted_ranges`.
    X
        Targets: any of ``params``, ``tokens``, ``flops`` (a DataFrame or a mapping of arrays or scalars).
        ``flops`` is taken as ``6 · params · tokens`` when ``X`` has both and no ``flops``.

    Returns
    -------
    pandas.DataFrame
        ``params_decades``, ``tokens_decades``, ``flops_decades`` (those that both ``X`` and the fit have)
        and ``decades``: their largest, the distance a planning interval uses. 0 means inside the data.
    """
    ranges = getattr(fit_or_ranges, "ranges", fit_or_ranges)
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame({k: np.atleast_1d(v) for k, v in X.items()})
    values = {c: frame[c].to_numpy(float) for c in RANGE_COLUMNS if c in frame.columns}
    if "flops" not in values and {"params", "tokens"} <= set(values):
        values["flops"] = training_flops(values["params"], values["tokens"])
    out = pd.DataFrame(index=frame.index)
    for column, x in values.items():
        if column in ranges:
            lo, hi = ranges[column]
            with np.errstate(divide="ignore", invalid="ignore"):
                beyond = np.maximum.reduce([np.log10(x / hi), np.log10(lo / x), np.zeros_like(x)])
            out[f"{column}_decades"] = beyond
    out["decades"] = out.max(axis=1) if out.shape[1] else 0.0
    return out


def extrapolation_warning(distance: pd.DataFrame, what: str = "prediction") -> str | None:
    """One line when any row of ``distance`` (:func:`extrapolation_distance`'s columns, or a table holding
    them) lies more than :data:`WARN_DECADES` beyond the data, else None."""
    if not len(distance) or not (distance["decades"] > WARN_DECADES).any():
        return None
    worst = distance.loc[distance["decades"].idxmax()]
    parts = [f"{c.removesuffix('_decades')} {worst[c]:.2g}" for c in distance.columns
             if c.endswith("_decades") and worst[c] > 0]
    return (f"warning: {what} extrapolates {worst['decades']:.2g} decades beyond the fitted data "
            f"({', '.join(parts)} decades); trust it only as far as the planning interval says")


@dataclass(frozen=True)
class ExtrapolationError:
    """Log-loss error added per decade of extrapolation, as measured by a rollout.

    The planning interval adds ``s · d · z`` to each bootstrap draw's log prediction (plus its run noise),
    with ``z ~ N(0, 1)``, ``d`` the target's distance in decades (:func:`extrapolation_distance`) and
    ``s = per_decade``::

        s² = max(Σ_i w_i (r_i² − σ_w(i)² − v_i) / d_i²  /  Σ_i w_i, 0),   w_i = d_i⁴ / (σ_w(i)² + v_i)²

    over the rollout's held-out points ``i`` (``r_i``: log residual of the held-out loss against the window
    fit's prediction; ``d_i``: its distance beyond that window's data, at least ``min_decades``; ``σ_w``: the
    window fit's run noise, ``sqrt(Σ r² / (n − p))`` of its log residuals, the run noise already in the
    new-run interval; ``v_i``: the variance of the window fit's own log prediction there, from its bootstrap —
    parameter uncertainty, which the full fit's bootstrap already carries at its own, smaller, size). What is
    left is the error the law's form adds when it extrapolates: 0 for a law that is right, however few sizes a
    window holds. Each term is weighted by the inverse of its variance (``r_i²`` of a normal error with variance
    ``σ² + v + s²d²`` has variance ``2 (σ² + v + s²d²)²``; divided by ``d²``): first at ``s = 0``, as written
    above, then once more at that first estimate of ``s``. A window whose own parameter error is large, and
    says little about the form, counts little. The weighted mean is taken before the floor at 0 (a moment
    estimate): flooring each point first would count every point's chance excess over its expected error as
    extrapolation error.

    Attributes
    ----------
    per_decade
        ``s``: standard deviation of the extra log error per decade.
    n_points, n_windows
        Held-out points and windows it was measured on.
    max_decades
        Furthest distance measured; beyond it the linear growth is itself an extrapolation.
    law
        The law (and constraint) whose rollout measured it.
    n_flagged_windows
        Windows left out because their fit was flagged (a parameter on its bound or gone from the fit): their
        bootstrap understates their parameter error, which would be read as the form's error.
    """

    per_decade: float
    n_points: int
    n_windows: int
    max_decades: float
    law: str
    min_decades: float = 0.05
    n_flagged_windows: int = 0

    @classmethod
    def from_rollout(cls, residuals, decades, noise, law: str, n_windows: int,
                     min_decades: float = 0.05, prediction_sd=None,
                     n_flagged_windows: int = 0) -> ExtrapolationError:
        """Estimate ``s`` from held-out log residuals, their distances, their windows' noise scale and (when
        the windows were bootstrapped) the standard deviation of each window's log prediction."""
        r, d, sigma = (np.asarray(v, dtype=float) for v in (residuals, decades, noise))
        spread = np.zeros_like(r) if prediction_sd is None else np.nan_to_num(np.asarray(prediction_sd, dtype=float))
        keep = np.isfinite(r) & np.isfinite(d) & np.isfinite(sigma)
        r, d, sigma, spread = r[keep], np.maximum(d[keep], min_decades), sigma[keep], spread[keep]
        if not len(r):
            raise ValueError("no held-out points to measure the extrapolation error on")
        expected = sigma**2 + spread**2
        per_decade_squared = 0.0
        for _ in range(2):  # weights at s = 0, then at the first estimate (one reweighting step)
            weights = d**4 / np.maximum(expected + per_decade_squared * d**2, 1e-12) ** 2
            per_decade_squared = max(float(np.average((r**2 - expected) / d**2, weights=weights)), 0.0)
        per_decade = math.sqrt(per_decade_squared)
        return cls(per_decade, len(r), int(n_windows), float(d.max()), law, min_decades, int(n_flagged_windows))

    def log_sd(self, decades) -> np.ndarray:
        """Standard deviation of the extra log error at ``decades`` beyond the data."""
        return self.per_decade * np.asarray(decades, dtype=float)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping) -> ExtrapolationError:
        return cls(**{k: doc[k] for k in ("per_decade", "n_points", "n_windows", "max_decades", "law")},
                   min_decades=doc.get("min_decades", 0.05), n_flagged_windows=doc.get("n_flagged_windows", 0))
