"""Fitting the LR and batch-size laws on located optima with the fitting engine, and the collection result.

Each law is a :class:`scalefit.laws.hparam.HparamPowerLaw` fitted by :func:`scalefit.fitting.fit` with
squared log residuals (``loss="mse_log"``: ordinary least squares in log space, as Step Law) and a
bootstrap that resamples whole groups (the engine's run resampling with ``run_id`` = group: a group's
plateau points travel together). A law is refused when it has no more located optima than parameters,
marked suspect with fewer than parameters + 2, and reported as unidentified (status ``failed``, not offered
as a law) when its bootstrap cannot pin an exponent down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from scalefit.errors import FitError, ScalefitInputError
from scalefit.fitting import fit
from scalefit.hyperparams.law_result import HparamLaw
from scalefit.hyperparams.least_squares import cluster_cov, ols_cov
from scalefit.hyperparams.optima import HparamOptima
from scalefit.laws.hparam import HPARAM_LAWS, HparamPowerLaw
from scalefit.results import (
    DEFAULT_LEVEL,
    ReasonedStatus,
    Result,
    Summary,
    check_level,
    level_label,
    percentile_interval,
    register,
    status_from,
)

DEFAULT_N_BOOTSTRAP = 1000
#: An exponent whose bootstrap interval is wider than this is not identified: Step Law's LR exponents are
#: −0.71 and 0.31, so an interval spanning two whole units says nothing about the law.
MAX_EXPONENT_SPAN = 2.0
#: Below this share of converged bootstrap refits the intervals are not trusted.
MIN_CONVERGED_SHARE = 0.5

FitOn = Literal["optima", "plateau"]


@register
@dataclass(frozen=True, eq=False)
class HparamLaws(ReasonedStatus, Result):
    """The LR and batch-size laws of one source (a fitted sweep or a published preset).

    ``laws`` maps law names to :class:`HparamLaw` (unidentified ones included, with status ``failed``);
    ``optima`` holds the per-group table they were fitted on (None for presets); ``seq_len`` the sequence
    length used to convert batch sizes to sequences; ``setup`` what the numbers assume (optimizer,
    schedule, parametrisation, tokenizer, sequence length) where known.
    """

    kind = "hparam_laws"
    schema_version = 1

    laws: dict[str, HparamLaw]
    source: str
    optima: HparamOptima | None = None
    seq_len: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    level: float = DEFAULT_LEVEL
    setup: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> HparamLaw:
        return self.laws[name]

    def __contains__(self, name: str) -> bool:
        return name in self.laws

    @property
    def usable(self) -> dict[str, HparamLaw]:
        """The laws that are identified (status ok or suspect): the ones recommendations use."""
        return {name: law for name, law in self.laws.items() if law.status != "failed"}

    # -- the protocol ---------------------------------------------------------------------------------
    @property
    def params(self) -> pd.Series:
        """Every usable law's parameters, as ``"<law>.<parameter>"``."""
        return pd.Series({f"{name}.{p}": v for name, law in self.usable.items() for p, v in law.params.items()},
                         dtype=float)

    @property
    def draws(self) -> pd.DataFrame:
        return pd.DataFrame()

    def conf_int(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Each usable law's :meth:`HparamLaw.conf_int`, stacked (``"<law>.<parameter>"`` × lo/hi)."""
        level = check_level(level)
        frames = [law.conf_int(level).rename(index=lambda p, n=name: f"{n}.{p}") for name, law in self.usable.items()]
        return pd.concat(frames) if frames else pd.DataFrame(columns=["lo", "hi"])

    def _reason_lists(self) -> tuple[list[str], list[str]]:
        flagged = [f"{name} {'unidentified' if law.status == 'failed' else law.status}"
                   for name, law in self.laws.items() if law.status != "ok"]
        return (flagged or ["no identified law"], []) if not self.usable else ([], flagged)

    def recommend(self, params: float, tokens: float, **options):
        """Shortcut for :func:`scalefit.hyperparams.recommend` with these laws."""
        from scalefit.hyperparams.recommend import recommend

        return recommend(params, tokens, self, **options)

    # -- reporting ------------------------------------------------------------------------------------
    def laws_table(self, level: float | None = None) -> pd.DataFrame:
        """One row per parameter of every usable law: formula, estimate, interval, groups, status."""
        rows = []
        for name, law in self.usable.items():
            for parameter, (estimate, lo, hi) in law.table(level).iterrows():
                rows.append({"law": name, "parameter": parameter, "estimate": estimate, "lo": lo, "hi": hi,
                             "groups": law.n_groups, "status": law.status})
        return pd.DataFrame(rows)

    def summary(self) -> Summary:
        header = [("Source", self.source), ("Intervals", level_label(self.level))]
        methods = {law.interval_method for law in self.usable.values()}
        if len(methods) == 1:
            header.append(("Method", methods.pop()))
        header += [(name, law.formula) for name, law in self.usable.items()]
        header += [(key.capitalize(), value) for key, value in self.setup.items()]
        notes = [f"{name}: unidentified ({'; '.join(law.reasons)}); not shown as a law" if law.status == "failed"
                 else f"{name}: suspect ({'; '.join(law.reasons)})"
                 for name, law in self.laws.items() if law.status != "ok"]
        notes += list(self.notes)
        return Summary("LR and batch-size laws", header, (("Laws", self.laws_table()),), notes, self.status,
                       self.reasons)

    def to_dict(self) -> dict:
        """``source``, ``laws`` (each a :class:`HparamLaw` record), ``groups`` and ``excluded_runs`` (as in
        schema 0), ``optima`` (settings and runs), ``notes``, ``setup``, ``status``."""
        optima = self.optima.to_dict() if self.optima is not None else None
        return {
            **self._envelope(), "source": self.source, "level": self.level, "seq_len": self.seq_len,
            "laws": {name: law.to_dict() for name, law in self.laws.items()},
            "groups": optima.pop("groups") if optima else [],
            "excluded_runs": (self.optima.excluded["exclusion_reason"].value_counts().to_dict()
                              if self.optima is not None else {}),
            "optima": optima, "notes": list(self.notes), "setup": dict(self.setup),
            "status": self.status, "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, doc: dict) -> HparamLaws:
        optima = None
        if doc.get("optima"):
            optima = HparamOptima.from_dict({**doc["optima"], "groups": doc["groups"]})
        laws = {name: HparamLaw.from_dict({"name": name, **law}) for name, law in doc["laws"].items()}
        level = doc.get("level") or next((law.level for law in laws.values()), DEFAULT_LEVEL)
        return cls(laws, doc["source"], optima, doc.get("seq_len"), tuple(doc.get("notes", ())), float(level),
                   dict(doc.get("setup") or {}))

    @classmethod
    def load(cls, path) -> HparamLaws:
        """Read a file written by :meth:`save`, or a schema-0 ``hparams --json`` file (no ``kind``)."""
        from scalefit.results import read_document

        doc = read_document(path)
        if "kind" not in doc and "laws" in doc:  # schema 0: scalefit ≤ 2026-11 wrote no envelope
            doc = {**doc, "kind": cls.kind, "schema_version": 0}
        return cls._from_document(doc, path)

    def plot(self, name: str, against: str | None = None, ax=None):
        """Plot one law against one of its variables."""
        return self.laws[name].plot(against=against, ax=ax)


def fit_hparam_laws(
    optima: HparamOptima,
    *,
    fit_on: FitOn = "optima",
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> HparamLaws:
    """Fit the LR and batch-size power laws on per-group optima or plateau points, with the engine.

    Each law of :data:`scalefit.laws.hparam.HPARAM_LAWS` is fitted by least squares in log space
    (``fit(law, points, loss="mse_log")``); its intervals are percentiles of ``n_bootstrap`` refits on
    groups resampled with replacement (``resample="run"`` with the group as run: a group's plateau points
    travel together). A law is skipped (and a note says why) when its variables do not vary across groups
    or it has no more located optima than parameters; it is suspect with fewer than parameters + 2, and
    unidentified (``failed``) when an exponent's interval spans more than :data:`MAX_EXPONENT_SPAN`.

    Parameters
    ----------
    optima : HparamOptima
        From :func:`scalefit.hyperparams.locate_optima`.
    fit_on : {"optima", "plateau"}
        One point per group at its optimum (interpolated, or the best cell), or every plateau run (Step
        Law's choice: more points, and the plateau's width enters as scatter).
    n_bootstrap : int
        Bootstrap resamples over groups (0: point estimates only, no intervals).
    level : float
        Interval level (default 0.95).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    HparamLaws
    """
    if fit_on not in ("optima", "plateau"):
        raise ScalefitInputError(f"fit_on must be 'optima' or 'plateau', got {fit_on!r}")
    level = check_level(level)
    points = _law_points(optima, fit_on)
    laws, notes = {}, []
    swept = optima.swept
    no_batch_sweep = bool((swept["n_batch_sizes"] < 3).all())
    if no_batch_sweep:
        notes.append("no swept group tried 3 or more batch sizes: no batch-size law")
    for law in HPARAM_LAWS.values():
        if law.target == "batch_size" and no_batch_sweep:
            continue
        usable = points.dropna(subset=[*law.inputs, law.target])
        reason = _unfittable_reason(law, usable)
        if not reason:
            try:
                laws[law.name] = _fit_law(law, usable, fit_on, n_bootstrap, level, seed, optima.source)
            except FitError as err:
                reason = str(err)
        if reason:
            notes.append(f"{law.name} not fitted: {reason}")
    for axis, name in (("lr", "LR"), ("batch_size", "batch-size")):
        unlocated = int((~swept[f"{axis}_located"]).sum())
        if unlocated and not (axis == "batch_size" and no_batch_sweep):
            notes.append(f"{unlocated} of {len(swept)} swept groups are left out of the {name} laws: fewer than "
                         "3 values tried, or the best on the grid's edge (see the optima's warnings)")
    if not laws:
        raise ScalefitInputError(f"{optima.source}: no LR or batch-size law can be fitted: " + "; ".join(notes))
    return HparamLaws(laws, optima.source, optima, optima.seq_len, tuple(notes), level, _sweep_setup(optima))


#: Runs-table columns that describe the training setup, and how a recommendation names them.
SETUP_COLUMNS = {"optimizer": "optimizer", "schedule": "schedule", "warmup": "warmup", "seq_len": "sequence length",
                 "tokenizer": "tokenizer", "vocab_size": "vocabulary size", "parametrisation": "parametrisation"}


def _sweep_setup(optima: HparamOptima) -> dict[str, str]:
    """The setup the sweep's runs share (columns of the runs table with one value among the swept runs)."""
    runs = optima.runs[optima.runs["group"].isin(optima.swept["group"])]
    setup = {}
    for column, name in SETUP_COLUMNS.items():
        if column in runs.columns and runs[column].nunique(dropna=True) == 1:
            value = runs[column].dropna().iloc[0]
            setup[name] = f"{value:g}" if isinstance(value, int | float) else str(value)
    return setup


def _law_points(optima: HparamOptima, fit_on: FitOn) -> pd.DataFrame:
    """Points for the laws: an axis's value is NaN (so unused by its laws) where its optimum is not located."""
    groups = optima.groups[optima.groups["method"] != "none"]
    keys = ["group", "params", "tokens", "flops", "lr_located", "batch_size_located"]
    if fit_on == "optima":
        points = groups[keys].assign(lr=groups["opt_lr"], batch_size=groups["opt_batch_size"])
    else:
        points = optima.plateau[["group", "lr", "batch_size"]].merge(groups[keys], on="group", how="inner")
    return points.assign(lr=points["lr"].where(points["lr_located"].astype(bool)),
                         batch_size=points["batch_size"].where(points["batch_size_located"].astype(bool)))


def _unfittable_reason(law: HparamPowerLaw, points: pd.DataFrame) -> str:
    n_groups = points["group"].nunique()
    n_params = len(law.parameters)
    if n_groups < n_params + 1:
        return (f"{n_groups} groups with a located {law.target} optimum and known {', '.join(law.inputs)}; "
                f"need at least {n_params + 1} for {n_params} parameters")
    if law.target == "batch_size" and points[law.target].nunique() < 2:
        return "the batch size does not vary in the sweep"
    group_values = points.groupby("group")[list(law.inputs)].first()
    flat = [v for v in law.inputs if group_values[v].nunique() < 2]
    if flat:
        return f"{', '.join(flat)} takes a single value across groups"
    if np.linalg.matrix_rank(law.design(group_values.to_numpy(float))) < n_params:
        return f"{', '.join(law.inputs)} are collinear across groups"
    return ""


def _fit_law(law: HparamPowerLaw, points: pd.DataFrame, fit_on: FitOn, n_bootstrap: int, level: float,
             seed: int, source: str) -> HparamLaw:
    data = points.assign(loss=points[law.target], run_id=points["group"])
    result = fit(law, data, loss="mse_log", bootstrap=n_bootstrap, resample="run", seed=seed)
    n_groups, n_params = int(points["group"].nunique()), len(law.parameters)
    design = law.design(points[list(law.inputs)].to_numpy(float))
    residuals = result.residuals.to_numpy()
    dof = len(residuals) - n_params
    residual_std = math.sqrt(float(residuals @ residuals) / dof) if dof > 0 else None
    # Intervals come from the draws the engine trusts (none when it finds the bootstrap cannot identify them:
    # too few groups to resample); every converged refit still tells whether an exponent is pinned down at all.
    converged = result.draws[result.draws["converged"].astype(bool)] if len(result.draws) else result.draws
    engine_reasons = [r for r in result.reasons if not _floor_issue(r)]
    usable = converged if result.interval_issue is None or _floor_issue(result.interval_issue) else converged.iloc[:0]
    draws = usable[list(law.reported_names)].astype(float).reset_index(drop=True)
    if fit_on == "plateau":  # a group's plateau points are not independent
        log_cov = cluster_cov(design, residuals, points["group"].to_numpy())
        method = "normal, least-squares covariance with standard errors clustered by group (bootstrap=0)"
    else:
        log_cov = ols_cov(design, residuals)
        method = "normal, least-squares covariance (bootstrap=0)"
    if n_bootstrap:
        log_cov = None
        method = (f"percentile bootstrap over groups ({len(draws)} of {n_bootstrap} refits used, "
                  f"{n_groups} groups, seed {seed})")
    fitted = HparamLaw(
        name=law.name, params=result.params[list(law.reported_names)].astype(float), draws=draws,
        log_cov=log_cov, residual_std=residual_std,
        ranges={v: (float(points[v].min()), float(points[v].max())) for v in law.inputs},
        fitted_on=fit_on, n_groups=n_groups, n_points=len(points), source=source, level=level,
        interval_method=method, points=points[["group", *law.inputs, law.target]].reset_index(drop=True),
    )
    failed, suspect = _judge(fitted, converged[list(law.reported_names)], n_bootstrap)
    engine_failed, engine_suspect = (engine_reasons, []) if result.status == "failed" else ([], engine_reasons)
    status, reasons = status_from(failed + engine_failed, suspect + engine_suspect)
    return replace(fitted, status=status, reasons=reasons)


def _floor_issue(reason: str) -> bool:
    """Whether the engine's identification issue is the one of laws with a floor: with fewer than 3 values of an
    input, a joint law cannot separate that input's term from E. A log-linear law has no floor, and two values
    of an input identify its exponent, so that issue does not apply to it (the message is the engine's,
    :func:`scalefit.fitting.bootstrap.identification_issue`)."""
    return "a joint law's" in reason


def _judge(law: HparamLaw, refits: pd.DataFrame, n_bootstrap: int) -> tuple[list[str], list[str]]:
    """Reasons a fitted law is unidentified (failed) or suspect, from its located optima and its converged
    bootstrap refits (the engine's own verdict on convergence and identification is added by the caller)."""
    failed, suspect = [], []
    n_params = len(law.params)
    if law.n_groups < n_params + 2:
        suspect.append(f"{law.n_groups} located optima for {n_params} parameters (want at least {n_params + 2})")
    if n_bootstrap and len(refits) < MIN_CONVERGED_SHARE * n_bootstrap:
        failed.append(f"only {len(refits)} of {n_bootstrap} bootstrap refits converged")
    bounds = percentile_interval(refits, law.level) if len(refits) else law.conf_int(law.level)
    if len(refits) or law.has_uncertainty:
        for name in law.params.index[1:]:
            lo, hi = bounds.loc[name]
            if not hi - lo <= MAX_EXPONENT_SPAN:
                failed.append(f"the {level_label(law.level)} interval of {name} is [{lo:.3g}, {hi:.3g}] "
                              f"(c: [{bounds.loc['c', 'lo']:.3g}, {bounds.loc['c', 'hi']:.3g}])")
    return failed, suspect
