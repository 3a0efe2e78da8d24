"""Can this design identify this law? Fisher information of the design, and the bootstrap's spread.

For a law ``log L̂ = f(x; θ)`` fitted by (robust) least squares on log loss with noise ``σ``, the Fisher
information of a design ``{x_i}`` is ``F = Jᵀ J / σ²`` with ``J_ij = ∂f(x_i)/∂θ_j`` (Seber & Wild 1989,
*Nonlinear Regression*, §2.1 and §5.13), and ``F⁻¹`` approximates the covariance of the estimate. A direction
of ``θ`` in the null space of ``J`` is one the design cannot see at all (one model size: ``A`` and ``α`` move
together along it); a small but non-zero eigenvalue is a direction it sees only weakly.

Verdicts per parameter:

- ``not identified``: the parameter loads on a direction of (numerically) zero information, or the design
  lacks what it structurally needs (fewer than 3 distinct values of an input whose exponent and floor must be
  separated), or the bootstrap has too few distinct refits to make an interval;
- ``weakly identified``: the parameter's interval at ``level`` (linearised Wald interval from ``F``, and the
  bootstrap percentile interval when a fit is given) is too wide: an exponent's or the floor's wider than
  ``max_relative_width`` of its value, an amplitude's spanning more than a factor ``max_ratio``;
- ``identified`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.errors import FitError
from scalefit.fitting import FitResult
from scalefit.fitting.parameters import free_parameters
from scalefit.laws.base import Law
from scalefit.results import DEFAULT_LEVEL, Result, Summary, check_level, register, status_from

VERDICTS = ("identified", "weakly identified", "not identified")
#: Eigenvalues of the correlation-scaled information below this share of the largest count as zero.
RANK_TOLERANCE = 1e-9
#: A parameter whose weight on a zero-information direction exceeds this is not identified.
NULL_LOADING = 0.1
#: Fewer distinct bootstrap refits than this make no interval.
MIN_DISTINCT_DRAWS = 20
#: Noise of log loss assumed when neither a fit nor ``sigma`` gives one (1 %: a typical seed-to-seed spread).
DEFAULT_SIGMA = 0.01


@register
@dataclass(frozen=True)
class Identifiability(Result):
    """What a design can tell about each parameter of a law: verdicts, reasons, linearised intervals.

    Attributes
    ----------
    law
        The law checked.
    params
        Parameter values the information was evaluated at (reported names): the fit, or a prior guess.
    table
        One row per free parameter: ``verdict``, ``wald_lo``/``wald_hi`` (linearised interval at
        :attr:`level`), ``boot_lo``/``boot_hi`` (bootstrap, when a fit with draws was given),
        ``null_loading`` and ``reason``.
    rank, n_free
        Numerical rank of the information matrix, and the number of free parameters.
    condition
        Condition number of the correlation-scaled information (inf when singular).
    sigma
        Noise of log loss used.
    design
        Counts that explain the verdicts: points, distinct values per input, distinct bootstrap draws.
    """

    kind = "identifiability"
    schema_version = 1

    law_name: str
    params: pd.Series
    table: pd.DataFrame
    rank: int
    n_free: int
    condition: float
    sigma: float
    design: dict
    level: float = DEFAULT_LEVEL
    status: str = "ok"
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    draws: pd.DataFrame = field(default_factory=pd.DataFrame)

    def conf_int(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Linearised (Wald) intervals at ``level`` from the information matrix, in reported units."""
        z = stats.norm.ppf(0.5 + check_level(level) / 2)
        centre = self.table["centre"].to_numpy(float)
        lo, hi = centre - z * self.table["se"].to_numpy(float), centre + z * self.table["se"].to_numpy(float)
        log_scale = self.table["log_scale"].to_numpy(bool)
        lo = np.where(log_scale, np.exp(lo), lo)
        hi = np.where(log_scale, np.exp(np.minimum(hi, 700.0)), hi)
        return pd.DataFrame({"lo": lo, "hi": hi}, index=self.table.index)

    @property
    def verdicts(self) -> pd.Series:
        """Parameter → verdict."""
        return self.table["verdict"]

    def summary(self) -> Summary:
        counts = ", ".join(f"{k} {v}" for k, v in self.design.items())
        header = [("Law", self.law_name), ("Design", counts),
                  ("Information", f"rank {self.rank} of {self.n_free}, condition {self.condition:.3g}"),
                  ("Noise", f"σ(log L) = {self.sigma:.3g}"), ("Level", f"{100 * self.level:g} %")]
        shown = self.table.assign(value=self.params.reindex(self.table.index))
        columns = ["value", "verdict", "wald_lo", "wald_hi", "boot_lo", "boot_hi", "reason"]
        return Summary(f"scalefit plan --check: can the design identify {self.law_name}?", header,
                       [("parameters", shown[columns])], self.notes, self.status, self.reasons)

    def to_dict(self) -> dict:
        return {**self._envelope(), "law": self.law_name, "params": self.params.to_dict(),
                "table": self.table.reset_index(names="parameter").to_dict(orient="records"),
                "rank": self.rank, "n_free": self.n_free, "condition": self.condition, "sigma": self.sigma,
                "design": self.design, "level": self.level, "status": self.status,
                "reasons": list(self.reasons), "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, doc: dict) -> Identifiability:
        table = pd.DataFrame(doc["table"]).set_index("parameter")
        table.index.name = None
        table["log_scale"] = table["log_scale"].astype(bool)
        for column in ("wald_lo", "wald_hi", "boot_lo", "boot_hi", "null_loading", "centre", "se"):
            table[column] = table[column].astype(float)
        return cls(doc["law"], pd.Series(doc["params"], dtype=float), table, int(doc["rank"]),
                   int(doc["n_free"]), float(doc["condition"] if doc["condition"] is not None else np.inf),
                   float(doc["sigma"]), dict(doc["design"]), float(doc["level"]), doc["status"],
                   tuple(doc["reasons"]), tuple(doc["notes"]))


def information_matrix(law: Law, theta: np.ndarray, inputs: np.ndarray, sigma: float,
                       fix: Mapping[str, float] | None = None,
                       tie: Sequence[str] | Sequence[Sequence[str]] | None = None,
                       weights: np.ndarray | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Fisher information ``Jᵀ W J / σ²`` of the design ``inputs`` (points, law inputs) at ``theta``
    (the law's fitting space), in the free parameters after ``fix``/``tie``; and the free names."""
    free = free_parameters(law, fix, tie)
    _, jacobian = law.log_predict_jacobian(np.asarray(theta, dtype=float)[None, :], np.asarray(inputs, float))
    jacobian = free.reduce_jacobian(jacobian)[:, 0, :].T  # (points, free)
    w = np.ones(len(jacobian)) if weights is None else np.asarray(weights, dtype=float)
    return (jacobian.T * w) @ jacobian / sigma**2, free.names


def _structural_reasons(law: Law, data: pd.DataFrame) -> dict[str, str]:
    """Parameters a design cannot identify whatever the noise: an exponent needs ≥ 3 distinct values of its
    input when a floor and an amplitude share the curve (2 values fix only two numbers)."""
    exponents = {"params": ("alpha", "A"), "tokens": ("beta", "B")}
    if law.name == "power":
        exponents = {law.inputs[0]: ("alpha", "x0")}
    reasons = {}
    for column, names in exponents.items():
        if column not in data or column not in law.inputs:
            continue
        distinct = data[column].nunique()
        if distinct < 3:
            what = "one value" if distinct == 1 else "two values"
            for name in names:
                reasons[name] = (f"{column} takes {what}: {names[0]} cannot be separated from the amplitude and "
                                 f"E; add sizes" if column == "params" else
                                 f"{column} takes {what}: {names[0]} cannot be separated from the amplitude and "
                                 f"E; add token budgets")
    return reasons


def check_identifiability(
    law: Law,
    data: pd.DataFrame,
    params: Mapping[str, float] | pd.Series | None = None,
    *,
    result: FitResult | None = None,
    sigma: float | None = None,
    level: float = DEFAULT_LEVEL,
    max_relative_width: float = 0.5,
    max_ratio: float = 10.0,
    fix: Mapping[str, float] | None = None,
    tie: Sequence[str] | Sequence[Sequence[str]] | None = None,
) -> Identifiability:
    """Verdict per parameter on whether the points in ``data`` can identify ``law``.

    Parameters
    ----------
    law
        The law, e.g. ``Chinchilla()``.
    data
        The design: the law's input columns (``loss`` is not needed: a design can be checked before it is run).
    params
        Reported parameter values to evaluate the information at (a prior guess). Default: ``result.params``.
    result
        A fit of ``law`` to ``data``: gives ``params``, ``sigma`` (its run noise, ``FitResult.noise_scale``)
        and the bootstrap draws, whose spread and number of distinct values enter the verdict.
    sigma
        Noise of log loss; default the fit's run noise ``sqrt(Σ r² / (n − p))``, else :data:`DEFAULT_SIGMA`.
    level
        Level of the intervals compared with ``max_relative_width``.
    max_relative_width
        An exponent or the floor ``E`` whose interval is wider than this multiple of its value is weakly
        identified (0.5: about ±25 %, e.g. α ∈ [0.34, 0.56] for α = 0.45 is still identified).
    max_ratio
        An amplitude (``A``, ``B``, ``x0``: log-scaled parameters other than ``E``) whose interval spans more
        than this factor (``hi/lo``) is weakly identified. Amplitudes trade off against their exponents, so
        they are judged by orders of magnitude.
    fix, tie
        As in :func:`scalefit.fitting.fit`.
    """
    level = check_level(level)
    if params is None:
        if result is None:
            raise FitError("give the parameter values to check at (a prior guess) or a fit result")
        params = result.params
    params = pd.Series(dict(params), dtype=float)
    if sigma is None:
        sigma = result.noise_scale if result is not None else DEFAULT_SIGMA
        sigma = max(sigma, 1e-4)  # a noise-free fit still has float noise; keep F finite
    inputs = law.input_array(data)
    theta = law.to_fitted(params)[0]
    info, names = information_matrix(law, theta, inputs, sigma, fix, tie)
    z = stats.norm.ppf(0.5 + level / 2)

    scale = np.sqrt(np.clip(np.diag(info), 1e-300, None))
    scaled = info / np.outer(scale, scale)
    eigenvalues, eigenvectors = np.linalg.eigh(scaled)
    null = eigenvalues < RANK_TOLERANCE * eigenvalues.max()
    rank = int((~null).sum())
    condition = float(eigenvalues.max() / eigenvalues.min()) if not null.any() else float("inf")
    loading = np.abs(eigenvectors[:, null]).max(axis=1) if null.any() else np.zeros(len(names))
    covariance = np.linalg.pinv(scaled, rcond=RANK_TOLERANCE) / np.outer(scale, scale)
    half_width = z * np.sqrt(np.clip(np.diag(covariance), 0.0, None))

    structural = _structural_reasons(law, data)
    draws = pd.DataFrame() if result is None else result.draws
    if len(draws) and "converged" in draws:
        draws = draws[draws["converged"].astype(bool)]
    rows = {}
    distinct_draws = None
    if len(draws):
        distinct_draws = len(np.unique(np.round(draws[list(law.reported_names)].to_numpy(float), 10), axis=0))
    for k, name in enumerate(names):
        parameter = law.parameter(name.split("=")[0])
        reported = parameter.reported
        centre = theta[law.param_names.index(parameter.name)]
        lo, hi = centre - half_width[k], centre + half_width[k]
        if parameter.log_scale:
            lo, hi = np.exp(lo), np.exp(min(hi, 700.0))
        value = params[reported]
        boot_lo = boot_hi = np.nan
        if len(draws) and reported in draws:
            boot_lo, boot_hi = np.quantile(draws[reported].astype(float), [0.5 - level / 2, 0.5 + level / 2])
        bounds = [(lo, hi)] + ([(boot_lo, boot_hi)] if np.isfinite(boot_lo) else [])
        with np.errstate(over="ignore", divide="ignore"):  # a huge interval is inf wide, as it should read
            if parameter.log_scale and reported != "E":  # an amplitude: how many-fold its interval spans
                spread = max(b / a if a > 0 else np.inf for a, b in bounds)
                too_wide, width_text = spread > max_ratio, f"spans a factor {spread:.3g}"
            else:
                spread = max((b - a) / abs(value) if value else np.inf for a, b in bounds)
                too_wide, width_text = spread > max_relative_width, f"{spread:.3g}× its value wide"
        reason, verdict = "", "identified"
        if reported in structural:
            verdict, reason = "not identified", structural[reported]
        elif loading[k] > NULL_LOADING:
            verdict, reason = "not identified", "the design gives no information on it (a zero-information direction)"
        elif distinct_draws is not None and distinct_draws < MIN_DISTINCT_DRAWS:
            verdict, reason = "not identified", (f"only {distinct_draws} distinct bootstrap refits: too few "
                                                 "resampling units for an interval")
        elif too_wide:
            verdict, reason = "weakly identified", f"{100 * level:g} % interval {width_text}"
        rows[reported] = {"verdict": verdict, "wald_lo": lo, "wald_hi": hi, "boot_lo": boot_lo,
                          "boot_hi": boot_hi, "null_loading": float(loading[k]), "reason": reason,
                          "centre": float(centre), "se": float(half_width[k] / z),
                          "log_scale": bool(parameter.log_scale)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    design = {"points": len(data)}
    design.update({f"distinct {c}": int(data[c].nunique()) for c in law.inputs})
    if distinct_draws is not None:
        design["distinct refits"] = distinct_draws
    not_identified = [n for n, v in table["verdict"].items() if v == "not identified"]
    weak = [n for n, v in table["verdict"].items() if v == "weakly identified"]
    status, reasons = status_from(
        [f"not identified: {', '.join(not_identified)}"] if not_identified else [],
        [f"weakly identified: {', '.join(weak)}"] if weak else [],
    )
    return Identifiability(law.name, params, table, rank, len(names), condition, float(sigma), design, level,
                           status, reasons)
