"""A runs table fitted end to end: which points, the fit, its backtest and the compute-optimal allocation.

This is what ``scalefit fit`` and the report run; in a notebook::

    from scalefit.study import fit_runs
    study = fit_runs("data/runs.parquet")
    study.result            # FitResult: params, intervals, predict(), summary(), plot()
    study.backtest          # extrapolation error on the largest held-out size
    print(study.summary())

Points (``points=``): ``"tuned"`` (default) keeps, per (N, D), the final loss of the best learning-rate /
batch-size setting with seeds averaged (:func:`scalefit.points.points`), because joint laws describe
well-tuned runs; ``"final"`` keeps every run's final point; ``"all"`` every evaluation (bootstrap then
resamples whole runs); ``"frontier"`` the loss–compute envelope over every evaluation
(:mod:`scalefit.points` chooses them), for Henighan's ``L(C) = E + (C0/C)^α`` (``law="power", x="flops"``).
Only ``ok`` validation rows are used; the rest are counted in ``excluded``. A table with a ``family`` column
holding several families is refused unless ``family=`` names one (models trained on different data are not
seeds of one another).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scalefit.allocation import (
    DEFAULT_WINDOW,
    AllocationResult,
    JointLawAllocation,
    approach1,
    approach2,
    joint_law_allocation,
)
from scalefit.backtest import Backtest, backtest
from scalefit.errors import FitError, ScalefitInputError
from scalefit.fitting import FitResult, fit
from scalefit.flops import training_flops
from scalefit.io import json_safe
from scalefit.laws import Chinchilla, Kaplan, PowerLaw
from scalefit.laws.base import Law
from scalefit.points import points as choose_points
from scalefit.results import DEFAULT_LEVEL, check_level
from scalefit.runs import load_runs, select_family, table_shape

if TYPE_CHECKING:  # scalefit.plan imports scipy.stats (0.4 s): only fit_runs needs it, so it imports it
    from scalefit.plan.identify import Identifiability
from scalefit.selection import (
    MIN_FIT_SIZES,
    ROLLOUT_BOOTSTRAP,
    auto_constraints,
    default_candidates,
    rollout,
    select_law,
    size_groups,
)

POINTS = ("tuned", "final", "all", "frontier")


def make_law(name: str, x: str = "params") -> Law:
    """The law called ``name`` (``chinchilla``, ``kaplan``, ``power``); ``x`` is the power law's column.

    ``auto`` (law selection by rollout) is handled by :func:`fit_runs`, not here.
    """
    if name == "chinchilla":
        return Chinchilla()
    if name == "kaplan":
        return Kaplan()
    if name == "power":
        if x not in ("params", "tokens", "flops"):
            raise ScalefitInputError(f"--x must be params, tokens or flops, not {x!r}")
        return PowerLaw(x=x)
    raise ScalefitInputError(f"unknown law {name!r}; use chinchilla, kaplan or power")


def select_points(runs: pd.DataFrame, points: str = "tuned",
                  family: str | None = None) -> tuple[pd.DataFrame, dict, dict]:
    """The points to fit; a count of what was left out and why; and the left-out run ids by reason.

    With several families in the ``family`` column, ``family`` must name the one to fit
    (:func:`scalefit.runs.select_family`); the other families' runs are counted as excluded.
    """
    if points not in POINTS:
        raise ScalefitInputError(f"points must be one of {', '.join(POINTS)}, not {points!r}")
    runs, other_families = select_family(runs, family)
    usable = choose_points(runs, "all", status="ok", split="val")
    excluded_runs: dict[str, list[str]] = {}
    if "status" in runs:
        not_ok = runs.drop_duplicates("run_id").loc[lambda r: r["status"] != "ok"]
        for status, group in not_ok.groupby("status"):
            excluded_runs[f"runs {status}"] = group["run_id"].astype(str).tolist()
    if usable.empty:
        raise FitError(f"{runs.attrs.get('source', 'the runs table')}: no rows with status 'ok' on the 'val' "
                       "split remain to fit")
    chosen = choose_points(usable, points, status=None, split=None)
    if points == "tuned":
        kept = {str(run_id) for run_ids in chosen["run_ids"] for run_id in run_ids}
        worse = sorted(set(usable["run_id"].astype(str)) - kept)
        if worse:
            excluded_runs["runs at a worse lr/batch setting of the same (N, D)"] = worse
    if other_families:
        excluded_runs[f"runs of other families than {family!r}"] = other_families
    excluded = {reason: len(ids) for reason, ids in excluded_runs.items()}
    if "split" in runs:
        n_other = int((runs["split"] != "val").sum())
        if n_other:
            excluded["rows not on the val split"] = n_other
    return chosen.reset_index(drop=True), excluded, excluded_runs


def default_budgets(points: pd.DataFrame) -> np.ndarray:
    """Compute budgets for the allocation table: the data's own 6ND range, then 10×, 100× and 1000× beyond."""
    c = training_flops(points["params"], points["tokens"])
    lo, hi = math.floor(np.log10(c.min())), math.ceil(np.log10(c.max()))
    return 10.0 ** np.arange(lo, hi + 4)


@dataclass(frozen=True)
class RunsFit:
    """A law fitted to a runs table, with what it is worth: backtest and compute-optimal allocation."""

    source: str
    points_rule: str
    points: pd.DataFrame
    excluded: dict
    excluded_runs: dict
    result: FitResult
    backtest: Backtest | None
    allocation: JointLawAllocation | None
    approaches: tuple[AllocationResult, ...]
    notes: tuple[str, ...] = field(default=())
    #: (approach, why it could not be computed) for each allocation approach that is missing.
    approaches_missing: tuple[tuple[str, str], ...] = field(default=())
    #: What the design can identify, per parameter (Fisher information and bootstrap spread; docs/planning.md).
    identifiability: Identifiability | None = None

    def summary(self) -> str:
        sizes = self.points["params"].nunique()
        lines = [(f"{self.source}: {len(self.points)} points ({self.points_rule}) from {sizes} model sizes, "
                 f"N {self.points['params'].min():.3g}–{self.points['params'].max():.3g}, "
                 f"D {self.points['tokens'].min():.3g}–{self.points['tokens'].max():.3g}")]
        for what, n in self.excluded.items():
            ids = self.excluded_runs.get(what, [])
            shown = f" ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''})" if ids else ""
            lines.append(f"  excluded: {n} {what}{shown}")
        lines += ["", str(self.result.summary())]
        if self.identifiability is not None:
            lines.append(_identifiability_line(self.identifiability))
        if self.backtest is not None:
            lines += ["", self.backtest.headline()]
        if self.allocation is not None:
            lines += ["", self.allocation.summary()]
        lines += [str(a) for a in self.approaches]
        lines += [f"{approach}: not computed: {why}" for approach, why in self.approaches_missing]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The ``fit.json`` document (schema in ``docs/fit-json.md``)."""
        doc = self.result.to_dict()
        doc.update({
            "source": self.source,
            "points": self.points_rule,
            "excluded": self.excluded,
            "excluded_runs": self.excluded_runs,
            "backtest": self.backtest.to_records() if self.backtest is not None else [],
            "backtest_summary": None if self.backtest is None else {
                "holdout_largest": self.backtest.holdout_largest,
                "mean_abs_rel_error": self.backtest.mean_abs_rel_error,
                "max_abs_rel_error": self.backtest.max_abs_rel_error,
                "prediction_interval_coverage": self.backtest.coverage,
            },
            "allocation": None if self.allocation is None else self.allocation.to_dict(),
            "approaches": [a.to_dict() for a in self.approaches],
            "approaches_missing": [{"approach": a, "reason": why} for a, why in self.approaches_missing],
            "notes": list(self.notes),
            "identifiability": None if self.identifiability is None else self.identifiability.to_dict(),
        })
        return json_safe(doc)


def _identifiability_line(check: Identifiability) -> str:
    """One line: each parameter's verdict, the weak and unidentified ones with their interval's width."""
    groups: dict[str, list[str]] = {}
    for name, verdict in check.verdicts.items():
        groups.setdefault(verdict, []).append(name)
    parts = [f"{verdict}: {', '.join(names)}" for verdict, names in groups.items()]
    return (f"identifiability ({100 * check.level:g} % intervals of the design's information, `scalefit plan "
            f"--check` for the table): " + "; ".join(parts))


def fit_runs(runs: pd.DataFrame | str, *, law: str | Law = "chinchilla", x: str = "params",
             points: str = "tuned", holdout_largest: int = 1, budgets=None, columns=None,
             flops_convention: str | None = None, level: float = DEFAULT_LEVEL, family: str | None = None,
             isoflop_window: int | None = DEFAULT_WINDOW, **fit_options) -> RunsFit:
    """Fit a law to a runs table (a path or a loaded table), backtest it and, for Chinchilla, allocate compute.

    ``fit_options`` go to :func:`scalefit.fitting.fit` (``bootstrap``, ``seed``, ``fix``, ``tie``, ``loss``,
    ...). ``holdout_largest=0`` skips the backtest; it is skipped with a note when fewer than 4 sizes exist.
    ``law="auto"`` chooses among :func:`scalefit.selection.default_candidates` by an expanding-window rollout
    (:func:`scalefit.selection.select_law`); with any law, a rollout over 4+ sizes measures the extrapolation
    error that the planning interval carries (docs/trust.md). ``level`` is the coverage of every interval.
    ``family`` picks one family of a table that holds several (required then). For a law in N and D,
    allocation Approaches 1 and 2 are computed from the points whether or not the fit succeeds
    (``isoflop_window``: Approach 2's window, :func:`scalefit.allocation.approach2`); each approach that
    cannot be computed is listed in ``approaches_missing`` with the reason.
    """
    if not isinstance(runs, pd.DataFrame):
        runs = load_runs(runs, columns=columns, flops_convention=flops_convention)
    source = str(runs.attrs.get("source", "runs table"))
    level = check_level(level)
    auto = isinstance(law, str) and law == "auto"
    law = Chinchilla() if auto else make_law(law, x) if isinstance(law, str) else law
    chosen, excluded, excluded_runs = select_points(runs, points, family)
    _check_enough_points(runs, chosen, points, law, source)
    fit_options.setdefault("flops_convention", runs.attrs.get("flops_convention"))
    if holdout_largest < 0:
        raise ScalefitInputError(f"holdout_largest must be >= 0 (0: no backtest), not {holdout_largest}")
    notes: list[str] = []
    try:
        law, selection, extrapolation = _choose_and_roll_out(law, auto, chosen, fit_options, level, notes)
        result = fit(law, chosen, **fit_options)
    except FitError as err:  # name the file the points came from: the engine only sees the points
        raise FitError(f"runs table {source!r} ({len(chosen)} {points} points): {err}") from err
    if extrapolation is None:
        notes.append("no planning interval: a rollout needs 4+ model sizes to measure extrapolation error")
    result = replace(result, level=level, extrapolation_error=extrapolation, selection=selection)
    identifiability = _identifiability(law, chosen, result, fit_options, level, notes)
    if not result.success:
        notes.append(f"the fit did not converge ({result.message}): do not use its numbers")
    tested = None
    n_sizes = chosen["params"].nunique()
    if holdout_largest and n_sizes - holdout_largest >= 3:
        try:
            tested = backtest(law, chosen, holdout_largest, **fit_options)
        except FitError as err:  # e.g. too few points left on the smaller sizes: the fit itself stands
            notes.append(f"no backtest: {err}")
    elif holdout_largest:
        notes.append(f"no backtest: holding out {holdout_largest} of {n_sizes} sizes would leave fewer than 3")
    allocation, approaches, missing = None, [], []
    if isinstance(law, Chinchilla) and result.success:
        allocation = joint_law_allocation(result, default_budgets(chosen) if budgets is None else budgets)
    elif isinstance(law, Chinchilla):
        missing.append(("approach 3 (joint law)", f"the joint-law fit did not converge ({result.message})"))
    if set(law.inputs) == {"params", "tokens"}:
        for name, approach in (("approach 1", lambda p: approach1(p, level=level)),
                               ("approach 2", lambda p: approach2(p, window=isoflop_window, level=level))):
            try:
                approaches.append(approach(chosen))
            except (FitError, ScalefitInputError) as err:
                missing.append((name, str(err)))
    return RunsFit(source, points, chosen, excluded, excluded_runs, result, tested, allocation, tuple(approaches),
                   tuple(notes), tuple(missing), identifiability)


def _identifiability(law: Law, points: pd.DataFrame, result: FitResult, fit_options: dict, level: float,
                     notes: list[str]) -> Identifiability | None:
    """Per-parameter verdicts of :func:`scalefit.plan.check_identifiability` on the fitted design (None, with
    a note, when the information matrix cannot be formed, e.g. at a non-finite optimum)."""
    from scalefit.plan.identify import check_identifiability

    try:
        return check_identifiability(law, points, result=result, level=level, fix=fit_options.get("fix"),
                                     tie=fit_options.get("tie"))
    except (ValueError, KeyError, np.linalg.LinAlgError) as err:
        notes.append(f"identifiability not checked: {err}")
        return None


def _check_enough_points(runs: pd.DataFrame, chosen: pd.DataFrame, points: str, law, source: str) -> None:
    """Refuse, saying what the table holds, when the chosen points cannot identify the law's parameters
    (the default tuned points of a learning-curve table: one point per size)."""
    n_parameters = len(law.parameters)
    if points not in ("tuned", "final") or len(chosen) > n_parameters:
        return
    shape = table_shape(choose_points(runs, "all", status="ok", split="val"))
    if shape["rows"] <= len(chosen) or (shape["sizes"] < 2 and len(chosen) > 1):
        return  # nothing more in the table, or one size at several budgets: the engine's message says it
    options = [f"--points {option} ({what})" for option, n, what in (
        ("all", shape["rows"], "every checkpoint; the bootstrap resamples whole runs"),
        ("final", shape["runs"], "every run's last point")) if option != points and n > len(chosen)]
    raise ScalefitInputError(
        f"runs table {source!r} holds {shape['text']}; the {points} points are {len(chosen)}, too few for the "
        f"{law.name} law's {n_parameters} parameters. Fit " + " or ".join(options) + ".")


def _choose_and_roll_out(law: Law, auto: bool, points: pd.DataFrame, fit_options: dict, level: float,
                         notes: list[str]):
    """The law to fit (chosen by rollout when ``auto``; ``fit_options`` get its fix/tie), the selection
    record, and the extrapolation error measured by the rollout of that law (None without 4+ sizes)."""
    enough = "params" in points and int(size_groups(points["params"]).max()) + 1 > MIN_FIT_SIZES
    can_choose, floor = auto_constraints(fit_options.get("fix"), fit_options.get("tie"))
    if auto and not can_choose:
        notes.append("law auto: --fix/--tie constrain the joint law, so it was fitted as given (no selection)")
    elif auto and not enough:
        notes.append(f"law auto: fewer than {MIN_FIT_SIZES + 1} model sizes, nothing to choose by: fitted the "
                     "joint law as given")
    elif auto:
        candidates = default_candidates(floor)
        options = {k: v for k, v in fit_options.items() if k not in ("fix", "tie")}
        selection = select_law(points, candidates, level=level, **options)
        picked = next(c for c in candidates if c.name == selection.chosen)
        fit_options.update(fix=picked.fix, tie=picked.tie)
        return picked.law, selection.to_dict(candidates), selection.rollouts[picked.name].extrapolation_error()
    if not enough:
        return law, None, None
    options = {k: v for k, v in fit_options.items() if k != "bootstrap"}
    rolled = rollout(points, lambda train: fit(law, train, bootstrap=ROLLOUT_BOOTSTRAP, **options), law.name,
                     level=level)
    return law, None, rolled.extrapolation_error()


def load_fit(path) -> FitResult:
    """:meth:`FitResult.load` with messages that say how to make a ``fit.json`` (the CLI's ``--fit``)."""
    path = Path(path)
    if not path.exists():
        raise ScalefitInputError(f"{path}: no such file; write one with `scalefit fit RUNS --json {path}`")
    try:
        return FitResult.load(path)
    except ScalefitInputError as err:
        raise ScalefitInputError(f"{err} — not a fit.json written by `scalefit fit`; refit and write it again "
                                 "with --json or --out") from None
