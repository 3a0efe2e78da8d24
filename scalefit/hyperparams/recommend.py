"""Recommending the peak LR and batch size for a planned run, with intervals, the setup assumed, and how far
the target lies beyond the data the laws were fitted on."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.fitting.extrapolation import WARN_DECADES
from scalefit.flops import training_flops
from scalefit.hyperparams.law_result import HparamLaw, log_prediction_frame
from scalefit.hyperparams.laws import HparamLaws
from scalefit.hyperparams.presets import preset_laws
from scalefit.laws.hparam import VARIABLE_SYMBOLS
from scalefit.results import DEFAULT_LEVEL, Result, Summary, check_level, level_label, register, status_from

BatchSizeLaw = Literal["auto", "D", "N_D"]
BATCH_SIZE_LAWS = {"D": ("bs_vs_D", "bs_vs_C"), "N_D": ("bs_vs_N_D",)}


@dataclass(frozen=True)
class LogEstimate:
    """One predicted quantity in log space with what its bands are made of (see
    :func:`scalefit.hyperparams.law_result.log_prediction_frame`)."""

    log_mean: float
    log_draws: tuple[float, ...] = ()
    log_sd: float | None = None
    obs_std: float | None = None
    plan_std: float | None = None

    @classmethod
    def from_law(cls, law: HparamLaw, values: dict) -> LogEstimate:
        design = law._design(values)
        draws = law.log_draws(design)
        log_sd = None
        if law.log_cov is not None:
            log_sd = float(np.sqrt(design[0] @ law.log_cov @ design[0]))
        return cls(float((design @ law.log_coef)[0]), () if draws is None else tuple(map(float, draws[:, 0])),
                   log_sd, law.residual_std, law.plan_std)

    def frame(self, level: float, name: str) -> pd.DataFrame:
        draws = np.asarray(self.log_draws, dtype=float)[:, None] if self.log_draws else None
        return log_prediction_frame([self.log_mean], level, log_draws=draws,
                                    log_sd=None if self.log_sd is None else [self.log_sd],
                                    obs_std=self.obs_std, plan_std=self.plan_std, index=[name])

    @property
    def has_uncertainty(self) -> bool:
        return bool(self.log_draws) or self.log_sd is not None


@register
@dataclass(frozen=True, eq=False)
class Recommendation(Result):
    """Peak LR and batch size for one planned run, with intervals, provenance and extrapolation distance.

    :meth:`prediction` gives, per quantity, ``mean``, the confidence band of the law's mean
    (``mean_lo/hi``), the band of a new group's optimum (``obs_lo/hi``: adds the fitted groups' scatter),
    and for presets a planning band (``plan_lo/hi``: adds the published scatter of optima around the law).
    ``extrapolation_decades`` is the largest distance, in decades, of N, D or C outside the range the laws
    were fitted on (0 inside; None when the source gives no range).
    """

    kind = "hparam_recommendation"
    schema_version = 1

    n_params: float
    tokens: float
    flops: float
    lr_estimate: LogEstimate
    batch_size_estimate: LogEstimate | None
    seq_len: int | None
    level: float
    source: str
    lr_law: str
    bs_law: str | None
    extrapolation_decades: float | None
    extrapolation_by_variable: dict[str, float]
    warnings: tuple[str, ...]
    setup: dict[str, str] = field(default_factory=dict)
    law_status: tuple[str, ...] = ()

    # -- the protocol ---------------------------------------------------------------------------------
    def prediction(self, level: float | None = None) -> pd.DataFrame:
        """One row per quantity (``lr``; ``batch_size`` in tokens when there is a batch-size law)."""
        level = check_level(self.level if level is None else level)
        frames = [self.lr_estimate.frame(level, "lr")]
        if self.batch_size_estimate is not None:
            frames.append(self.batch_size_estimate.frame(level, "batch_size"))
        return pd.concat(frames)

    @property
    def params(self) -> pd.Series:
        return self.prediction()["mean"]

    @property
    def draws(self) -> pd.DataFrame:
        return pd.DataFrame()

    def conf_int(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Confidence intervals of the recommended values (the laws' means) at ``level``."""
        frame = self.prediction(level)
        return frame[["mean_lo", "mean_hi"]].set_axis(["lo", "hi"], axis=1)

    @property
    def status(self) -> str:
        return status_from((), self.law_status)[0]

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.law_status

    @property
    def notes(self) -> tuple[str, ...]:
        return self.warnings

    # -- named values (at :attr:`level`) ------------------------------------------------------------
    def _interval(self, quantity: str, band: str) -> tuple[float, float] | None:
        frame = self.prediction()
        if quantity not in frame.index or f"{band}_lo" not in frame or not np.isfinite(frame.at[quantity, f"{band}_lo"]):
            return None
        return float(frame.at[quantity, f"{band}_lo"]), float(frame.at[quantity, f"{band}_hi"])

    @property
    def lr(self) -> float:
        return math.exp(self.lr_estimate.log_mean)

    @property
    def lr_interval(self):
        return self._interval("lr", "mean")

    @property
    def lr_prediction_interval(self):
        return self._interval("lr", "obs")

    @property
    def lr_planning_interval(self):
        return self._interval("lr", "plan")

    @property
    def batch_size_tokens(self) -> float | None:
        return None if self.batch_size_estimate is None else math.exp(self.batch_size_estimate.log_mean)

    @property
    def batch_size_interval(self):
        return self._interval("batch_size", "mean")

    @property
    def batch_size_prediction_interval(self):
        return self._interval("batch_size", "obs")

    @property
    def batch_size_planning_interval(self):
        return self._interval("batch_size", "plan")

    @property
    def batch_size_sequences(self) -> float | None:
        """Batch size in sequences of ``seq_len`` tokens."""
        if self.batch_size_tokens is None or self.seq_len is None:
            return None
        return self.batch_size_tokens / self.seq_len

    @property
    def batch_size_sequences_interval(self) -> tuple[float, float] | None:
        interval = self.batch_size_interval
        if interval is None or self.seq_len is None:
            return None
        return (interval[0] / self.seq_len, interval[1] / self.seq_len)

    # -- reporting ------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """Estimates and every band at :attr:`level`, one row per quantity, readable labels."""
        frame = self.prediction()
        labels = {"lr": "peak LR", "batch_size": "batch size [tokens]"}
        return frame.rename(index=labels)

    def header(self) -> list[tuple[str, str]]:
        rows = [("Planned run", (f"N = {self.n_params:.4g} non-embedding params, D = {self.tokens:.4g} tokens "
                                f"(C = {self.flops:.3g} FLOPs)")),
                ("Source", self.source), ("LR law", self.lr_law)]
        if self.bs_law:
            rows.append(("Batch-size law", self.bs_law))
        if self.batch_size_sequences is not None:
            rows.append(("Batch size", (f"{self.batch_size_tokens:.4g} tokens = {self.batch_size_sequences:.0f} "
                                       f"sequences of {self.seq_len}")))
        rows.append(("Extrapolation", _decades_text(self.extrapolation_decades, self.extrapolation_by_variable)))
        rows += [(f"Assumes {key}", value) for key, value in self.setup.items()]
        return rows

    def summary(self) -> Summary:
        pct = level_label(self.level)
        caption = (f"{pct} bands: mean = the law's mean; obs = a new group's optimum (fitted scatter); "
                   "plan = with the published scatter of optima")
        return Summary("Recommended peak LR and batch size", self.header(), ((caption, self.table()),),
                       self.warnings, self.status, self.reasons, float_format="{:.4g}")

    def to_dict(self) -> dict:
        """The stored estimates (reloadable), plus the named values and intervals at :attr:`level` for readers."""
        named = {name: getattr(self, name) for name in (
            "lr", "lr_interval", "lr_prediction_interval", "lr_planning_interval", "batch_size_tokens",
            "batch_size_interval", "batch_size_prediction_interval", "batch_size_planning_interval",
            "batch_size_sequences", "batch_size_sequences_interval")}
        return {
            **self._envelope(), "params": self.n_params, "tokens": self.tokens, "flops": self.flops, **named,
            "seq_len": self.seq_len, "level": self.level, "source": self.source, "lr_law": self.lr_law,
            "bs_law": self.bs_law, "extrapolation_decades": self.extrapolation_decades,
            "extrapolation_by_variable": dict(self.extrapolation_by_variable), "warnings": list(self.warnings),
            "setup": dict(self.setup), "status": self.status, "reasons": list(self.reasons),
            "estimates": {"lr": self.lr_estimate.__dict__,
                          "batch_size": None if self.batch_size_estimate is None else self.batch_size_estimate.__dict__},
        }

    @classmethod
    def from_dict(cls, doc: dict) -> Recommendation:
        estimates = doc["estimates"]

        def estimate(record):
            return None if record is None else LogEstimate(**{**record, "log_draws": tuple(record["log_draws"])})

        return cls(float(doc["params"]), float(doc["tokens"]), float(doc["flops"]), estimate(estimates["lr"]),
                   estimate(estimates["batch_size"]), doc["seq_len"], float(doc["level"]), doc["source"],
                   doc["lr_law"], doc["bs_law"], doc["extrapolation_decades"],
                   dict(doc["extrapolation_by_variable"]), tuple(doc["warnings"]), dict(doc.get("setup") or {}),
                   tuple(doc.get("reasons", ())))


def _decades_text(decades: float | None, by_variable: dict[str, float]) -> str:
    if decades is None:
        return "unknown (the source publishes no fitted range)"
    detail = ", ".join(f"{VARIABLE_SYMBOLS[v]} {d:.2f}" for v, d in by_variable.items())
    return f"{decades:.2f} decades beyond the fitted range ({detail})"


def extrapolation(laws: list[HparamLaw], values: dict) -> tuple[float | None, dict[str, float]]:
    """Largest distance in decades (log10) of the target outside the laws' fitted ranges, and per variable
    (``max(log10(lo / x), log10(x / hi), 0)``, from :meth:`HparamLaw.extrapolation_decades`)."""
    by_variable: dict[str, float] = {}
    for law in laws:
        distances = law.extrapolation_decades(**values)
        if distances is None:
            return None, by_variable
        for variable, distance in distances.items():
            by_variable[variable] = max(distance, by_variable.get(variable, 0.0))
    return max(by_variable.values(), default=0.0), by_variable


def recommend(
    params: float,
    tokens: float,
    laws: HparamLaws | str,
    *,
    flops: float | None = None,
    seq_len: int | None = None,
    level: float = DEFAULT_LEVEL,
    bs_law: BatchSizeLaw = "auto",
) -> Recommendation:
    """Recommend the peak LR and batch size for a run of N non-embedding params on D tokens.

    Uses ``lr_vs_N_D`` and ``bs_vs_D`` (Step Law's forms) when the laws have them identified, else the
    compute forms at C (``flops``, default 6·N·D); ``bs_law="N_D"`` takes the batch size from ``bs_vs_N_D``.
    Unidentified laws are never used.

    Parameters
    ----------
    params, tokens : float
        N (non-embedding parameters) and D (training tokens) of the planned run.
    laws : HparamLaws or str
        Fitted laws, or a preset name (see :func:`scalefit.hyperparams.preset_laws`).
    flops : float, optional
        Training FLOPs C for the compute forms (default 6·N·D).
    seq_len : int, optional
        Sequence length to express the batch size in sequences (default: the laws' own).
    level : float
        Interval level (default 0.95).
    bs_law : {"auto", "D", "N_D"}
        Batch-size law: B*(D) (falling back to B*(C)), B*(N, D), or ``"auto"``: B*(N, D) when its N
        exponent's interval excludes 0, else B*(D).

    Returns
    -------
    Recommendation
    """
    level = check_level(level)
    if isinstance(laws, str):
        laws = preset_laws(laws, level=level)
    if not (params > 0 and tokens > 0):
        raise ScalefitInputError(f"params and tokens must be positive, got N={params}, D={tokens}")
    flops = training_flops(params, tokens) if flops is None else flops
    values = {"params": params, "tokens": tokens, "flops": flops}
    warnings: list[str] = []
    lr_law = _first_law(laws, ("lr_vs_N_D", "lr_vs_C"))
    if lr_law is None:
        unidentified = "; ".join(f"{n}: {'; '.join(law.reasons)}" for n, law in laws.laws.items() if n.startswith("lr"))
        raise ScalefitInputError(f"{laws.source} has no identified learning-rate law" +
                                 (f" ({unidentified})" if unidentified else ""))
    if bs_law == "auto":
        bs_law = _auto_batch_size_law(laws)
    if bs_law not in BATCH_SIZE_LAWS:
        raise ScalefitInputError(f"bs_law must be auto or one of {sorted(BATCH_SIZE_LAWS)}, got {bs_law!r}")
    batch_law = _first_law(laws, BATCH_SIZE_LAWS[bs_law])
    if batch_law is None and bs_law == "N_D":
        raise ScalefitInputError(f"{laws.source} has no bs_vs_N_D law (laws: {sorted(laws.usable)})")
    if batch_law is None:
        reasons = [n for n in laws.notes if n.startswith("bs_vs_D ") or "batch-size law" in n]
        warnings.append("no batch-size law, so no batch size: " + ("; ".join(reasons) if reasons else
                        "the source has none"))
    used = [law for law in (lr_law, batch_law) if law is not None]
    if any(law.fitted_on == "published" and not law.has_uncertainty and law.plan_std is None for law in used):
        warnings.append(f"{laws.source} publishes no uncertainty and no scatter of optima: no intervals")
    decades, by_variable = extrapolation(used, values)
    if decades is not None and decades > WARN_DECADES:
        outside = ", ".join(f"{VARIABLE_SYMBOLS[v]} by {d:.2f}" for v, d in by_variable.items() if d > 0)
        warnings.append(f"extrapolating {decades:.2f} decades outside the fitted range ({outside}): intervals "
                        "assume the power law holds out there")
    if decades is None:
        warnings.append(f"{laws.source} publishes no fitted range: extrapolation distance unknown")
    status = tuple(f"{law.name} is {law.status}: {'; '.join(law.reasons)}" for law in used if law.status != "ok")
    return Recommendation(
        n_params=float(params), tokens=float(tokens), flops=float(flops),
        lr_estimate=LogEstimate.from_law(lr_law, values),
        batch_size_estimate=None if batch_law is None else LogEstimate.from_law(batch_law, values),
        seq_len=seq_len or laws.seq_len, level=level, source=laws.source, lr_law=f"{lr_law.name}: {_law_text(lr_law)}",
        bs_law=f"{batch_law.name}: {_law_text(batch_law)}" if batch_law else None, extrapolation_decades=decades,
        extrapolation_by_variable=by_variable, warnings=tuple(warnings), setup=dict(laws.setup), law_status=status,
    )


def side_by_side(recommendations: list[Recommendation], *, notes_of_first: bool = True) -> Summary:
    """Several recommendations for the same run (e.g. a refit and a preset) as one table, a column each.

    ``notes_of_first=False`` leaves out the first one's warnings (when its own summary was just shown)."""
    first = recommendations[0]
    pct = level_label(first.level)
    columns = {}
    for advice in recommendations:
        frame = advice.prediction()
        column = {}
        for quantity, label in (("lr", "peak LR"), ("batch_size", "batch size [tokens]")):
            column[label] = f"{frame.at[quantity, 'mean']:.4g}" if quantity in frame.index else "—"
            for band, name in (("mean", "confidence"), ("obs", "prediction"), ("plan", "planning")):
                key = f"  {pct} {name}" + ("" if quantity == "lr" else " ")  # distinct rows per quantity
                bounds = frame.loc[quantity] if quantity in frame.index else None
                if bounds is not None and f"{band}_lo" in bounds and np.isfinite(bounds[f"{band}_lo"]):
                    column[key] = f"[{bounds[f'{band}_lo']:.3g}, {bounds[f'{band}_hi']:.3g}]"
                else:
                    column[key] = "—"
        decades = advice.extrapolation_decades
        column["decades beyond fitted range"] = "unknown" if decades is None else f"{decades:.2f}"
        columns[advice.source] = column
    table = pd.DataFrame(columns)
    shown = recommendations if notes_of_first else recommendations[1:]
    notes = [f"{advice.source}: {warning}" for advice in shown for warning in advice.warnings]
    setups = [(f"{advice.source.split(' (')[0]} assumes {key}", value) for advice in recommendations
              for key, value in advice.setup.items()]
    header = [("Planned run", f"N = {first.n_params:.4g}, D = {first.tokens:.4g} tokens"), *setups]
    reasons = tuple(r for advice in recommendations for r in advice.reasons)
    return Summary("Recommended peak LR and batch size, side by side", header,
                   (("Estimates and intervals", table),), notes, status_from((), reasons)[0], reasons)


def _auto_batch_size_law(laws: HparamLaws) -> str:
    """``"N_D"`` when B*(N, D) was fitted and its N exponent's interval excludes 0, else ``"D"`` (Step Law's form).

    The data decide whether the extra N term is real: on Step Law's own dense runs it is (h ≈ −0.35, 90%
    interval [−0.54, −0.24]), and using it halves the leave-one-group-out loss gap.
    """
    law = _first_law(laws, ("bs_vs_N_D",))
    interval = None if law is None else law.intervals.get("h")
    if interval is not None and all(np.isfinite(interval)) and (interval[0] > 0 or interval[1] < 0):
        return "N_D"
    return "D"


def _first_law(laws: HparamLaws, names: tuple[str, ...]) -> HparamLaw | None:
    usable = laws.usable
    return next((usable[name] for name in names if name in usable), None)


def _law_text(law: HparamLaw) -> str:
    return law.formula + " with " + ", ".join(f"{name}={value:.4g}" for name, value in law.params.items())
