"""One fitted (or published) LR or batch-size law as a result: estimates, draws, bands, status, save/load."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.errors import ScalefitInputError
from scalefit.hyperparams.records import frame_from_records, records
from scalefit.laws.hparam import HPARAM_LAWS, VARIABLE_SYMBOLS, HparamPowerLaw
from scalefit.results import (
    DEFAULT_LEVEL,
    Result,
    Summary,
    check_level,
    level_label,
    percentile_interval,
    prediction_frame,
    register,
)


def log_prediction_frame(log_mean, level: float, *, log_draws: np.ndarray | None = None,
                         log_sd=None, obs_std: float | None = None, plan_std: float | None = None,
                         index=None) -> pd.DataFrame:
    """A prediction frame from log-space pieces: ``mean`` = exp(log_mean); ``mean_lo/hi`` from the
    percentiles of ``log_draws`` (draws, points) or, without draws, normal with ``log_sd``; ``obs_lo/hi``
    and ``plan_lo/hi`` add ``z · obs_std`` and ``z · plan_std`` to the mean band's half-widths in quadrature,
    so that they always contain it. Bands without their ingredients are left out (or NaN for the mean)."""
    log_mean = np.atleast_1d(np.asarray(log_mean, dtype=float))
    z = stats.norm.ppf(0.5 + check_level(level) / 2)
    if log_draws is not None and len(log_draws):
        lower, upper = percentile_interval(np.asarray(log_draws, dtype=float), level)
        below, above = np.maximum(log_mean - lower, 0), np.maximum(upper - log_mean, 0)
    elif log_sd is not None:
        below = above = z * np.asarray(log_sd, dtype=float)
    else:
        below = above = np.full(len(log_mean), np.nan)
    bounds = {"mean_lo": np.exp(log_mean - below), "mean_hi": np.exp(log_mean + above)}
    for prefix, scatter in (("obs", obs_std), ("plan", plan_std)):
        if scatter is not None and np.isfinite(scatter):
            low, high = np.hypot(below, z * scatter), np.hypot(above, z * scatter)
            bounds |= {f"{prefix}_lo": np.exp(log_mean - low), f"{prefix}_hi": np.exp(log_mean + high)}
    return prediction_frame(np.exp(log_mean), index=index, **bounds)


@register
@dataclass(frozen=True, eq=False)
class HparamLaw(Result):
    """A power law for the optimal LR or batch size, ``ln y* = ln c + Σ e_v ln v`` (see
    :class:`scalefit.laws.hparam.HparamPowerLaw`), fitted by the engine or published.

    Attributes
    ----------
    name : str
        ``lr_vs_N_D``, ``bs_vs_D``, ``bs_vs_N_D``, ``lr_vs_C`` or ``bs_vs_C``.
    params : pandas.Series
        ``c`` and the exponents.
    draws : pandas.DataFrame
        Converged bootstrap refits (``c`` and exponents), one per row; empty for presets and ``bootstrap=0``.
    log_cov : numpy.ndarray or None
        Covariance of (ln c, exponents): published (presets), or the least-squares one of a fit (clustered by
        group for plateau fits); intervals are normal in log space from it when there are no draws.
    residual_std : float or None
        Scatter of ln y* of the fitted points around the law (``sqrt(RSS / (n − p))``): the ``obs`` band.
    plan_std : float or None
        Scatter of independently located optima around a published law (presets): the ``plan`` band.
    ranges : dict
        Variable → (min, max) of the points the law was fitted on (None when unknown).
    fitted_on : str
        ``optima``, ``plateau`` or ``published``.
    n_groups, n_points : int
        Groups and points that entered the fit.
    source : str
        Preset name or runs file.
    level : float
        Level of :attr:`intervals` and of the default bands.
    interval_method : str
        How the intervals are made.
    points : pandas.DataFrame or None
        The fitted points (group, variables, target), for plots.
    status, reasons : str, tuple of str
        ``ok``; ``suspect`` (few optima, optimiser not converged); ``failed`` (unidentified: the bootstrap
        cannot pin an exponent down; such a law is not offered as a law).
    notes : tuple of str
    """

    kind = "hparam_law"
    schema_version = 1

    name: str
    params: pd.Series
    draws: pd.DataFrame
    log_cov: np.ndarray | None
    residual_std: float | None
    ranges: dict[str, tuple[float, float] | None]
    fitted_on: str
    n_groups: int
    n_points: int
    source: str
    level: float = DEFAULT_LEVEL
    interval_method: str = ""
    points: pd.DataFrame | None = None
    plan_std: float | None = None
    status: str = "ok"
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Files of schema 0 stored intervals at one level only (no draws): used for that level.
    stored_intervals: dict[str, tuple[float, float]] | None = None

    # -- the law ------------------------------------------------------------------------------------
    @property
    def law(self) -> HparamPowerLaw:
        return HPARAM_LAWS[self.name]

    @property
    def formula(self) -> str:
        return self.law.formula

    @property
    def variables(self) -> tuple[str, ...]:
        return self.law.inputs

    @property
    def target(self) -> str:
        """``lr`` or ``batch_size``."""
        return self.law.target

    @property
    def log_coef(self) -> np.ndarray:
        """(ln c, exponents...), the coefficients of the log-linear form."""
        return self.law.to_fitted(self.params)[0]

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        """Parameter → (lower, upper) at :attr:`level` (empty when there is no uncertainty)."""
        bounds = self.conf_int(self.level)
        return {name: (float(lo), float(hi)) for name, (lo, hi) in bounds.iterrows() if np.isfinite(lo)}

    @property
    def has_uncertainty(self) -> bool:
        return len(self.draws) > 0 or self.log_cov is not None or bool(self.stored_intervals)

    def conf_int(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Intervals of ``c`` and the exponents at ``level``: percentiles of the bootstrap draws, or normal
        in (ln c, exponents) from a published covariance."""
        level = check_level(level)
        if len(self.draws):
            return super().conf_int(level)
        names = list(self.params.index)
        frame = pd.DataFrame(np.nan, index=names, columns=["lo", "hi"])
        if self.log_cov is not None:
            half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(np.diag(self.log_cov))
            low, high = self.log_coef - half, self.log_coef + half
            low[0], high[0] = math.exp(low[0]), math.exp(high[0])
            frame[["lo", "hi"]] = np.column_stack([low, high])
        elif self.stored_intervals and math.isclose(level, self.level):
            for name, bounds in self.stored_intervals.items():
                frame.loc[name] = bounds
        return frame

    # -- prediction ----------------------------------------------------------------------------------
    def _design(self, values: Mapping[str, object]) -> np.ndarray:
        missing = [v for v in self.variables if values.get(v) is None]
        if missing:
            raise ScalefitInputError(f"{self.name} needs {missing} to predict")
        columns = np.broadcast_arrays(*(np.atleast_1d(np.asarray(values[v], dtype=float)) for v in self.variables))
        return self.law.design(np.column_stack(columns))

    def log_draws(self, design: np.ndarray) -> np.ndarray | None:
        """Log predictions (draws, points) of the bootstrap draws at the rows of ``design``; None without."""
        if not len(self.draws):
            return None
        return self.law.to_fitted(self.draws) @ design.T

    def prediction(self, params=None, tokens=None, flops=None, *, level: float | None = None) -> pd.DataFrame:
        """One prediction frame: ``mean``; ``mean_lo/hi`` (the law's mean: bootstrap percentiles, or normal
        from a published covariance); ``obs_lo/hi`` (a new group's optimum: adds the fitted points'
        scatter in quadrature, so it always contains the mean band); ``plan_lo/hi`` for presets (adds the
        published scatter of optima around the law)."""
        level = check_level(self.level if level is None else level)
        design = self._design({"params": params, "tokens": tokens, "flops": flops})
        log_sd = None
        if self.log_cov is not None:
            log_sd = np.sqrt(np.einsum("ij,jk,ik->i", design, self.log_cov, design))
        return log_prediction_frame(design @ self.log_coef, level, log_draws=self.log_draws(design), log_sd=log_sd,
                                    obs_std=self.residual_std, plan_std=self.plan_std)

    def predict(self, params=None, tokens=None, flops=None, *, interval: str | None = None,
                level: float | None = None) -> np.ndarray | pd.DataFrame:
        """The optimal LR or batch size; with ``interval`` (``"confidence"``: the mean; ``"prediction"``: a
        new group's optimum), a frame with ``estimate``, ``lower``, ``upper`` (see :meth:`prediction`)."""
        if interval is None:
            return np.exp(self._design({"params": params, "tokens": tokens, "flops": flops}) @ self.log_coef)
        if interval not in ("confidence", "prediction"):
            raise ScalefitInputError(f"interval must be 'confidence' or 'prediction', got {interval!r}")
        if not (len(self.draws) or self.log_cov is not None):
            raise ScalefitInputError(f"{self.source} gives no uncertainty for {self.name}")
        if interval == "prediction" and self.residual_std is None:
            raise ScalefitInputError(f"{self.source} gives no scatter for {self.name}: no prediction "
                                     "interval; use interval='confidence'")
        frame = self.prediction(params, tokens, flops, level=level)
        prefix = "mean" if interval == "confidence" else "obs"
        return pd.DataFrame({"estimate": frame["mean"], "lower": frame[f"{prefix}_lo"],
                             "upper": frame[f"{prefix}_hi"]})

    def extrapolation_decades(self, params=None, tokens=None, flops=None) -> dict[str, float] | None:
        """Decades (log10) by which each variable lies outside the fitted range (0 inside); None if unknown.

        Measured by the fitting layer's :func:`scalefit.fitting.extrapolation_distance`."""
        from scalefit.fitting import extrapolation_distance

        if any(self.ranges.get(v) is None for v in self.variables):
            return None
        values = {"params": params, "tokens": tokens, "flops": flops}
        distance = extrapolation_distance(dict(self.ranges), {v: float(values[v]) for v in self.variables})
        return {v: float(distance[f"{v}_decades"].iloc[0]) for v in self.variables}

    # -- reporting and persistence -------------------------------------------------------------------
    def table(self, level: float | None = None) -> pd.DataFrame:
        """Estimates and intervals, one row per parameter."""
        bounds = self.conf_int(self.level if level is None else level)
        return pd.DataFrame({"estimate": self.params, "lo": bounds["lo"], "hi": bounds["hi"]})

    def summary(self) -> Summary:
        header = [("Law", self.formula), ("Source", self.source),
                  ("Fitted on", f"{self.fitted_on} ({self.n_groups} groups, {self.n_points} points)"),
                  ("Intervals", f"{level_label(self.level)}, {self.interval_method}")]
        if self.residual_std is not None:
            header.append((f"Scatter of ln {self.target}", f"{self.residual_std:.3f}"))
        if self.plan_std is not None:
            header.append(("Planning scatter", f"{self.plan_std:.3f} (ln, published optima around the law)"))
        header += [(f"{VARIABLE_SYMBOLS[v]} range", f"{b[0]:.3g} .. {b[1]:.3g}") for v, b in self.ranges.items() if b]
        return Summary(f"{self.name}", header, (("Parameters", self.table()),), self.notes, self.status, self.reasons)

    def to_dict(self) -> dict:
        return {
            **self._envelope(), "name": self.name, "formula": self.formula, "variables": list(self.variables),
            "params": self.params.to_dict(), "level": self.level,
            "intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
            "interval_method": self.interval_method,
            "draws": {column: self.draws[column].tolist() for column in self.draws.columns},
            "log_cov": None if self.log_cov is None else self.log_cov.tolist(),
            "residual_std": self.residual_std, "plan_std": self.plan_std,
            "ranges": {v: (list(b) if b is not None else None) for v, b in self.ranges.items()},
            "fitted_on": self.fitted_on, "n_groups": self.n_groups, "n_points": self.n_points,
            "source": self.source, "status": self.status, "reasons": list(self.reasons), "notes": list(self.notes),
            "points": None if self.points is None else records(self.points),
        }

    @classmethod
    def from_dict(cls, doc: dict) -> HparamLaw:
        name = doc.get("name") or _name_from_formula(doc)
        legacy = "schema_version" not in doc
        cov = doc.get("log_cov")
        return cls(
            name=name, params=pd.Series(doc["params"], dtype=float), draws=pd.DataFrame(doc.get("draws") or {}),
            log_cov=None if cov is None else np.asarray(cov, dtype=float), residual_std=doc.get("residual_std"),
            ranges={v: (tuple(b) if b is not None else None) for v, b in doc["ranges"].items()},
            fitted_on=doc["fitted_on"], n_groups=int(doc["n_groups"]), n_points=int(doc["n_points"]),
            source=doc["source"], level=float(doc["level"]), interval_method=doc.get("interval_method", ""),
            points=None if not doc.get("points") else frame_from_records(doc["points"], text=("group",)),
            plan_std=doc.get("plan_std"), status=doc.get("status", "ok"), reasons=tuple(doc.get("reasons", ())),
            notes=tuple(doc.get("notes", ())),
            stored_intervals=({k: tuple(v) for k, v in doc["intervals"].items()} if legacy and doc.get("intervals")
                              else None),
        )

    def plot(self, against: str | None = None, ax=None):
        """Optima against one variable with the law and its bands (see :func:`scalefit.plots.plot_hparam_law`)."""
        from scalefit.plots import plot_hparam_law

        return plot_hparam_law(self, against=against, ax=ax)


def _name_from_formula(doc: dict) -> str:
    """Schema-0 files keyed laws by name outside the law's record; match on formula and variables."""
    for name, law in HPARAM_LAWS.items():
        if law.formula == doc.get("formula") and list(law.inputs) == list(doc.get("variables", ())):
            return name
    raise ScalefitInputError(f"unknown law formula {doc.get('formula')!r}")
