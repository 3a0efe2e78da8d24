"""A runs table fitted end to end: which points, the fit, its backtest and the compute-optimal allocation.

This is what ``scalefit fit`` and the report run; in a notebook::

    from scalefit.study import fit_runs
    study = fit_runs("data/runs.parquet")
    study.result            # FitResult: params, intervals, predict(), summary(), plot()
    study.backtest          # extrapolation error on the largest held-out size
    print(study.summary())

Points (``points=``): ``"tuned"`` (default) keeps, per (N, D), the final loss of the best learning-rate /
batch-size setting with seeds averaged (:func:`scalefit.runs.tuned_points`), because joint laws describe
well-tuned runs; ``"final"`` keeps every run's final point; ``"all"`` every evaluation (bootstrap then
resamples whole runs). Only ``ok`` validation rows are used; the rest are counted in ``excluded``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.allocation import (
    AllocationResult,
    JointLawAllocation,
    approach1,
    approach2,
    joint_law_allocation,
)
from scalefit.backtest import Backtest, backtest
from scalefit.errors import FitError, ScalefitInputError
from scalefit.fitting import FitResult, fit
from scalefit.io import json_safe
from scalefit.laws import Chinchilla, Kaplan, PowerLaw
from scalefit.laws.base import Law
from scalefit.runs import final_points, load_runs, select, tuned_points

POINTS = ("tuned", "final", "all")
FIT_SCHEMA_VERSION = 1


def make_law(name: str, x: str = "params") -> Law:
    """The law called ``name`` (``chinchilla``, ``kaplan``, ``power``); ``x`` is the power law's column."""
    if name == "chinchilla":
        return Chinchilla()
    if name == "kaplan":
        return Kaplan()
    if name == "power":
        if x not in ("params", "tokens", "flops"):
            raise ScalefitInputError(f"--x must be params, tokens or flops, not {x!r}")
        return PowerLaw(x=x)
    raise ScalefitInputError(f"unknown law {name!r}; use chinchilla, kaplan or power")


def select_points(runs: pd.DataFrame, points: str = "tuned") -> tuple[pd.DataFrame, dict, dict]:
    """The points to fit; a count of what was left out and why; and the left-out run ids by reason."""
    if points not in POINTS:
        raise ScalefitInputError(f"points must be one of {', '.join(POINTS)}, not {points!r}")
    usable = select(runs, status="ok", split="val")
    excluded_runs: dict[str, list[str]] = {}
    if "status" in runs:
        not_ok = runs.drop_duplicates("run_id").loc[lambda r: r["status"] != "ok"]
        for status, group in not_ok.groupby("status"):
            excluded_runs[f"runs {status}"] = group["run_id"].astype(str).tolist()
    if usable.empty:
        raise FitError(f"{runs.attrs.get('source', 'the runs table')}: no rows with status 'ok' on the 'val' "
                       "split remain to fit")
    if points == "tuned":
        chosen = tuned_points(usable)
        kept = {str(run_id) for run_ids in chosen["run_ids"] for run_id in run_ids}
        worse = sorted(set(usable["run_id"].astype(str)) - kept)
        if worse:
            excluded_runs["runs at a worse lr/batch setting of the same (N, D)"] = worse
    elif points == "final":
        chosen = final_points(usable)
    else:
        chosen = usable
    excluded = {reason: len(ids) for reason, ids in excluded_runs.items()}
    if "split" in runs:
        n_other = int((runs["split"] != "val").sum())
        if n_other:
            excluded["rows not on the val split"] = n_other
    return chosen.reset_index(drop=True), excluded, excluded_runs


def default_budgets(points: pd.DataFrame) -> np.ndarray:
    """Compute budgets for the allocation table: the data's own 6ND range, then 10×, 100× and 1000× beyond."""
    c = 6.0 * points["params"] * points["tokens"]
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

    def summary(self) -> str:
        sizes = self.points["params"].nunique()
        lines = [(f"{self.source}: {len(self.points)} points ({self.points_rule}) from {sizes} model sizes, "
                 f"N {self.points['params'].min():.3g}–{self.points['params'].max():.3g}, "
                 f"D {self.points['tokens'].min():.3g}–{self.points['tokens'].max():.3g}")]
        for what, n in self.excluded.items():
            ids = self.excluded_runs.get(what, [])
            shown = f" ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''})" if ids else ""
            lines.append(f"  excluded: {n} {what}{shown}")
        lines += ["", self.result.summary()]
        if self.backtest is not None:
            lines += ["", self.backtest.summary()]
        if self.allocation is not None:
            lines += ["", self.allocation.summary()]
        lines += [a.summary() for a in self.approaches]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The ``fit.json`` document (schema in ``docs/fit-json.md``)."""
        doc = self.result.to_dict()
        doc.update({
            "schema_version": FIT_SCHEMA_VERSION,
            "loss": self.result.loss,
            "n_free": self.result.n_free,
            "fixed": self.result.fixed,
            "seed": self.result.seed,
            "law_spec": {"name": self.result.law.name, "inputs": list(self.result.law.inputs)},
            "source": self.source,
            "points": self.points_rule,
            "excluded": self.excluded,
            "excluded_runs": self.excluded_runs,
            "level": self.result.level,
            "residual_scale": float(np.sqrt(np.mean(self.result.residuals.to_numpy() ** 2))),
            "aic": self.result.aic(),
            "bic": self.result.bic(),
            "backtest": self.backtest.to_records() if self.backtest is not None else [],
            "backtest_summary": None if self.backtest is None else {
                "holdout_largest": self.backtest.holdout_largest,
                "mean_abs_rel_error": self.backtest.mean_abs_rel_error,
                "max_abs_rel_error": self.backtest.max_abs_rel_error,
                "prediction_interval_coverage": self.backtest.coverage,
            },
            "allocation": None if self.allocation is None else self.allocation.to_dict(),
            "approaches": [a.to_dict() for a in self.approaches],
            "notes": list(self.notes),
            "draws": self.result.draws.to_dict(orient="list"),
            "residuals": self.result.residuals.tolist(),
        })
        return json_safe(doc)


def fit_runs(runs: pd.DataFrame | str, *, law: str | Law = "chinchilla", x: str = "params",
             points: str = "tuned", holdout_largest: int = 1, budgets=None, columns=None,
             flops_convention: str | None = None, **fit_options) -> RunsFit:
    """Fit a law to a runs table (a path or a loaded table), backtest it and, for Chinchilla, allocate compute.

    ``fit_options`` go to :func:`scalefit.fitting.fit` (``bootstrap``, ``seed``, ``fix``, ``tie``, ``loss``,
    ...). ``holdout_largest=0`` skips the backtest; it is skipped with a note when fewer than 4 sizes exist.
    """
    if not isinstance(runs, pd.DataFrame):
        runs = load_runs(runs, columns=columns, flops_convention=flops_convention)
    source = str(runs.attrs.get("source", "runs table"))
    law = make_law(law, x) if isinstance(law, str) else law
    chosen, excluded, excluded_runs = select_points(runs, points)
    fit_options.setdefault("flops_convention", runs.attrs.get("flops_convention"))
    if holdout_largest < 0:
        raise ScalefitInputError(f"holdout_largest must be >= 0 (0: no backtest), not {holdout_largest}")
    try:
        result = fit(law, chosen, **fit_options)
    except FitError as err:  # name the file the points came from: the engine only sees the points
        raise FitError(f"runs table {source!r} ({len(chosen)} {points} points): {err}") from err
    notes = []
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
    allocation, approaches = None, []
    if isinstance(law, Chinchilla) and result.success:
        allocation = joint_law_allocation(result, default_budgets(chosen) if budgets is None else budgets)
        for approach in (approach1, approach2):
            try:
                approaches.append(approach(chosen))
            except FitError as err:
                notes.append(f"{approach.__name__}: {err}")
    return RunsFit(source, points, chosen, excluded, excluded_runs, result, tested, allocation, tuple(approaches),
                   tuple(notes))


def load_fit(path) -> FitResult:
    """A :class:`FitResult` rebuilt from a ``fit.json`` (estimates, intervals, draws, residuals; no data)."""
    import json

    try:
        doc = json.loads(Path(path).read_text())
        spec = doc["law_spec"]
        law = make_law(spec["name"], x=spec["inputs"][0])
        draws = pd.DataFrame(doc["draws"]).astype({"converged": bool}) if doc.get("draws") else pd.DataFrame()
        intervals = pd.DataFrame.from_dict(doc["intervals"], orient="index", columns=["lo", "hi"], dtype=float)
        return FitResult(
            law=law, params=pd.Series(doc["params"], dtype=float), intervals=intervals,
            interval_method=doc["interval_method"], success=doc["success"], message=doc["message"],
            objective=doc["objective"], loss=doc["loss"], n_points=doc["n_points"], n_starts=doc["n_starts"],
            n_pruned=doc["n_pruned"], n_converged=doc["n_converged"], n_best_basin=doc["n_best_basin"],
            draws=draws, data=pd.DataFrame(columns=[*law.inputs, "loss"]),
            residuals=pd.Series(doc["residuals"], dtype=float), flops_convention=doc["flops_convention"],
            n_free=doc["n_free"], fixed=doc["fixed"], level=doc["level"], seed=doc["seed"],
        )
    except FileNotFoundError:
        raise ScalefitInputError(f"{path}: no such file; write one with `scalefit fit RUNS --json {path}`")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ScalefitInputError(f"{path}: not a fit.json written by `scalefit fit` ({type(err).__name__}: {err}); "
                                 "refit and write it again with --json or --out") from err
