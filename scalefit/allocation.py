"""Compute-optimal allocation: N_opt(C) ∝ C^a and D_opt(C) ∝ C^b, three ways (Hoffmann et al. 2022, §3).

Approach 1 — minimum over training curves: for each model size, the lower envelope of loss against compute;
at each compute budget on a log grid, the size with the lowest loss is N_opt(C); regress log N_opt on log C.
Approach 2 — IsoFLOP profiles: runs sharing a compute budget (within a tolerance) give loss against log N;
a parabola's vertex is N_opt(C); regress log N_opt on log C.
Approach 3 — the joint law: N_opt(C) = G·(C/6)^(β/(α+β)) in closed form, with bootstrap bands from the fit.

Compute is C = 6·N·D by default in all three (the convention of Approach 3's closed form); pass
``convention="table"`` to use the table's own ``flops`` column instead. Exponents come from ordinary least
squares in log space (statsmodels), with their 95% confidence intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalefit.errors import FitError
from scalefit.fitting.extrapolation import extrapolation_distance
from scalefit.runs import final_points

LEVEL = 0.95


@dataclass(frozen=True)
class PowerLawFit:
    """y = c·C^exponent fitted by OLS in log space; intervals at ``LEVEL``."""

    coefficient: float
    exponent: float
    exponent_interval: tuple[float, float]
    n_points: int

    @classmethod
    def fit(cls, compute: np.ndarray, y: np.ndarray) -> PowerLawFit:
        if len(compute) < 3:
            raise FitError(f"a power law in compute needs at least 3 budgets with an optimum; got {len(compute)}")
        # imported here, and not statsmodels.api: that costs 2 s of every CLI start-up
        from statsmodels.regression.linear_model import OLS
        from statsmodels.tools.tools import add_constant

        model = OLS(np.log(y), add_constant(np.log(compute))).fit()
        lo, hi = model.conf_int(1 - LEVEL)[1]
        return cls(float(np.exp(model.params[0])), float(model.params[1]), (float(lo), float(hi)), len(compute))

    def predict(self, compute) -> np.ndarray:
        return self.coefficient * np.asarray(compute, dtype=float) ** self.exponent


@dataclass(frozen=True)
class AllocationResult:
    """Compute-optimal points of one approach and the power laws fitted through them."""

    approach: str
    optima: pd.DataFrame  # one row per budget: flops, params_opt, tokens_opt, loss_opt (+ approach extras)
    params_law: PowerLawFit
    tokens_law: PowerLawFit
    convention: str
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        n, d = self.params_law, self.tokens_law
        head = (f"{self.approach}: N_opt ∝ C^{n.exponent:.3f} [{n.exponent_interval[0]:.3f}, "
                f"{n.exponent_interval[1]:.3f}], D_opt ∝ C^{d.exponent:.3f} [{d.exponent_interval[0]:.3f}, "
                f"{d.exponent_interval[1]:.3f}] from {n.n_points} budgets (C = {self.convention})")
        return "\n".join([head] + [f"  note: {note}" for note in self.notes])

    def to_dict(self) -> dict:
        return {
            "approach": self.approach, "convention": self.convention,
            "params_exponent": self.params_law.exponent, "params_exponent_interval": self.params_law.exponent_interval,
            "tokens_exponent": self.tokens_law.exponent, "tokens_exponent_interval": self.tokens_law.exponent_interval,
            "optima": self.optima.to_dict(orient="records"), "notes": list(self.notes),
        }


def _compute(df: pd.DataFrame, convention: str) -> np.ndarray:
    if convention == "6ND":
        return 6.0 * df["params"].to_numpy(float) * df["tokens"].to_numpy(float)
    if convention == "table":
        return df["flops"].to_numpy(float)
    raise ValueError(f"unknown compute convention {convention!r}; use '6ND' or 'table'")


def _convention_name(df: pd.DataFrame, convention: str) -> str:
    return "6ND" if convention == "6ND" else df.attrs.get("flops_convention", "table")


def _laws(optima: pd.DataFrame) -> tuple[PowerLawFit, PowerLawFit]:
    c = optima["flops"].to_numpy(float)
    return PowerLawFit.fit(c, optima["params_opt"].to_numpy(float)), PowerLawFit.fit(c, optima["tokens_opt"].to_numpy(float))


def approach1(df: pd.DataFrame, *, points: str = "final", n_budgets: int = 12,
              convention: str = "6ND") -> AllocationResult:
    """Approach 1: the lowest loss at each compute budget across model sizes.

    ``points="final"`` uses each run's last evaluation (every run fully annealed; a size's curve is the
    envelope over its token budgets); ``points="all"`` uses every evaluation, as Hoffmann et al. did with
    four schedule lengths per size (intermediate points of a cosine schedule are not annealed).
    """
    rows = final_points(df) if points == "final" else df
    if points not in ("final", "all"):
        raise ValueError("points must be 'final' or 'all'")
    rows = rows.assign(_c=_compute(rows, convention))
    rows = rows[np.isfinite(rows["loss"]) & (rows["_c"] > 0)]
    curves = {}
    for n, g in rows.groupby("params"):
        g = g.sort_values("_c")
        envelope = g[g["loss"] <= g["loss"].cummin()]
        if len(envelope) >= 2:
            curves[n] = envelope
    if len(curves) < 3:
        raise FitError(f"Approach 1 needs at least 3 model sizes with 2+ budgets each; found {len(curves)}")
    lo = max(min(g["_c"].min() for g in curves.values()), 0)
    hi = max(g["_c"].max() for g in curves.values())
    grid = np.geomspace(lo, hi, n_budgets)
    records = []
    for c in grid:
        candidates = []
        for n, g in curves.items():
            cs = g["_c"].to_numpy()
            if cs[0] <= c <= cs[-1]:
                at = {k: float(np.exp(np.interp(np.log(c), np.log(cs), np.log(g[k].to_numpy()))))
                      for k in ("loss", "tokens")}
                candidates.append({"flops": c, "params_opt": float(n), "tokens_opt": at["tokens"],
                                   "loss_opt": at["loss"]})
        if len(candidates) >= 2:
            records.append(min(candidates, key=lambda r: r["loss_opt"]) | {"sizes_compared": len(candidates)})
    optima = pd.DataFrame(records)
    if len(optima) < 3:  # 2 points or none: no exponent to fit (3 sizes x 2 budgets barely overlap in compute)
        raise FitError(f"Approach 1 needs at least 3 compute budgets reached by 2+ model sizes; found {len(optima)}")
    notes = []
    edge = optima["params_opt"].isin([min(curves), max(curves)]).sum() if len(optima) else 0
    if edge:
        notes.append(f"{edge} of {len(optima)} budgets have their optimum at the smallest or largest size: "
                     "the true optimum may lie outside the sizes trained")
    params_law, tokens_law = _laws(optima)
    return AllocationResult("approach 1 (training-curve envelope)", optima, params_law, tokens_law,
                            _convention_name(df, convention), tuple(notes))


def isoflop_groups(compute: np.ndarray, tolerance_decades: float = 0.1) -> np.ndarray:
    """Label budgets: sorted log10 C split wherever a gap exceeds ``tolerance_decades``."""
    order = np.argsort(compute)
    logc = np.log10(compute[order])
    labels_sorted = np.concatenate([[0], np.cumsum(np.diff(logc) > tolerance_decades)])
    labels = np.empty(len(compute), dtype=int)
    labels[order] = labels_sorted
    return labels


def approach2(df: pd.DataFrame, *, min_sizes: int = 4, tolerance_decades: float = 0.1,
              convention: str = "6ND") -> AllocationResult:
    """Approach 2: IsoFLOP profiles of final losses; a parabola in log N per budget; its vertex is N_opt(C).

    Runs whose compute lies within ``tolerance_decades`` of a neighbour share a budget (the budget reported is
    their geometric mean). Budgets with fewer than ``min_sizes`` sizes, a non-convex parabola, or a vertex
    outside the sizes trained are excluded and named in ``notes``.
    """
    final = final_points(df)
    final = final[np.isfinite(final["loss"])]
    final = final.assign(_c=_compute(final, convention))
    final["_group"] = isoflop_groups(final["_c"].to_numpy(), tolerance_decades)
    records, notes = [], []
    for _, g in final.groupby("_group"):
        c = float(np.exp(np.log(g["_c"]).mean()))
        best = g.loc[g.groupby("params")["loss"].idxmin()].sort_values("params")  # one run per size
        if len(best) < min_sizes:
            continue
        x, loss = np.log(best["params"].to_numpy(float)), best["loss"].to_numpy(float)
        curvature, slope, intercept = np.polyfit(x, loss, 2)
        if curvature <= 0:
            notes.append(f"budget C≈{c:.3g}: loss is not convex in log N; excluded")
            continue
        x_opt = -slope / (2 * curvature)
        if not x.min() <= x_opt <= x.max():
            notes.append(f"budget C≈{c:.3g}: the parabola's minimum N={np.exp(x_opt):.3g} lies outside the sizes "
                         f"trained ({np.exp(x.min()):.3g}–{np.exp(x.max()):.3g}); excluded")
            continue
        # D at the vertex: C / 6N under 6ND; else read off the budget's own runs (log-log in N).
        tokens_opt = (c / (6 * np.exp(x_opt)) if convention == "6ND"
                      else float(np.exp(np.interp(x_opt, x, np.log(best["tokens"].to_numpy(float))))))
        records.append({"flops": c, "params_opt": float(np.exp(x_opt)), "tokens_opt": tokens_opt,
                        "loss_opt": float(np.polyval([curvature, slope, intercept], x_opt)),
                        "n_sizes": len(best)})
    optima = pd.DataFrame(records)
    if len(optima) < 3:
        raise FitError(f"Approach 2 needs at least 3 IsoFLOP budgets with {min_sizes}+ sizes and an interior "
                       f"minimum; found {len(optima)}" + ("" if not notes else ": " + "; ".join(notes)))
    params_law, tokens_law = _laws(optima)
    return AllocationResult("approach 2 (IsoFLOP parabolas)", optima, params_law, tokens_law,
                            _convention_name(df, convention), tuple(notes))


@dataclass(frozen=True)
class JointLawAllocation:
    """Approach 3: N_opt(C), D_opt(C) from a fitted joint law, with percentile bands over bootstrap draws.

    ``table`` has one row per budget: ``flops``, ``params`` (N_opt), ``tokens`` (D_opt), ``tokens_per_param``,
    each with ``_lo``/``_hi`` (percentiles over the draws); ``loss`` at the optimum with ``loss_lo/hi`` (mean),
    ``loss_obs_lo/hi`` (one new run) and ``loss_plan_lo/hi`` (planning: also the extrapolation error the
    rollout measured, NaN without one); and ``params_decades``, ``tokens_decades``, ``flops_decades``,
    ``decades``: how far the optimum lies beyond the fitted data.
    """

    table: pd.DataFrame
    params_exponent: float
    params_exponent_interval: tuple[float, float]
    level: float

    def summary(self) -> str:
        lo, hi = self.params_exponent_interval
        pct = f"{100 * self.level:g} %"
        lines = [(f"approach 3 (joint law): N_opt ∝ C^{self.params_exponent:.3f} [{lo:.3f}, {hi:.3f}], "
                 f"D_opt ∝ C^{1 - self.params_exponent:.3f} [{1 - hi:.3f}, {1 - lo:.3f}] (C = 6ND; {pct} "
                 "intervals; loss with its planning interval; decades beyond the fitted data)"),
                 (f"{'C [FLOP]':>10} {'N_opt':>10} {'':>21} {'D_opt':>10} {'':>21} {'D/N':>7} {'loss':>7} "
                 f"{'plan':>17} {'decades':>7}")]
        for r in self.table.itertuples():
            lines.append(f"{r.flops:>10.3g} {r.params:>10.3g} [{r.params_lo:>9.3g}, {r.params_hi:>9.3g}] "
                         f"{r.tokens:>10.3g} [{r.tokens_lo:>9.3g}, {r.tokens_hi:>9.3g}] {r.tokens_per_param:>7.1f} "
                         f"{r.loss:>7.4g} [{r.loss_plan_lo:>7.4g}, {r.loss_plan_hi:>7.4g}] {r.decades:>7.2f}")
        if self.exponent_fixed:
            lines.append("  note: the exponents are fixed at 1/2 by the fit's alpha = beta constraint, not measured")
        return "\n".join(lines)

    @property
    def exponent_fixed(self) -> bool:
        """True when the fit tied alpha and beta: the allocation exponents are then 1/2 by construction."""
        lo, hi = self.params_exponent_interval
        return self.params_exponent == 0.5 and lo == hi == 0.5

    def to_dict(self) -> dict:
        return {"approach": "approach 3 (joint law)", "convention": "6ND", "level": self.level,
                "params_exponent": self.params_exponent,
                "params_exponent_interval": list(self.params_exponent_interval),
                "tokens_exponent": 1 - self.params_exponent,
                "tokens_exponent_interval": [1 - self.params_exponent_interval[1],
                                             1 - self.params_exponent_interval[0]],
                "budgets": self.table.to_dict(orient="records")}


def joint_law_allocation(result, flops, level: float | None = None) -> JointLawAllocation:
    """Approach 3 for a fitted law with a closed-form ``optimal_allocation`` (e.g. Chinchilla), at budgets ``flops``.

    The point values come from the estimate; the bands are percentiles of the same closed form evaluated on
    each converged bootstrap draw, at ``level`` (default: the fit's). The loss at each optimum comes with the
    fit's three intervals (:meth:`~scalefit.fitting.FitResult.predict`), and every row says how many decades
    beyond the fitted N, D and C ranges it lies (:func:`~scalefit.fitting.extrapolation_distance`).
    """
    law = result.law
    if not hasattr(law, "optimal_allocation"):
        raise FitError(f"the {law.name} law has no closed-form compute-optimal allocation; fit the chinchilla law")
    level = result.level if level is None else level
    flops = np.atleast_1d(np.asarray(flops, dtype=float))
    point = law.optimal_allocation(result.params, flops)
    draws = result.usable_draws
    tail = (1 - level) / 2
    table = point.copy()
    exponent = float(result.params["beta"] / (result.params["alpha"] + result.params["beta"]))
    exponent_interval = (float("nan"), float("nan"))
    for column in ("params", "tokens", "tokens_per_param"):
        table[f"{column}_lo"] = np.nan
        table[f"{column}_hi"] = np.nan
    if len(draws):
        per_draw = np.stack([law.optimal_allocation(draws, c)[["params", "tokens", "tokens_per_param"]].to_numpy()
                             for c in flops])  # (budgets, draws, 3)
        lo, hi = np.quantile(per_draw, [tail, 1 - tail], axis=1)
        for k, column in enumerate(("params", "tokens", "tokens_per_param")):
            table[f"{column}_lo"], table[f"{column}_hi"] = lo[:, k], hi[:, k]
        ratio = draws["beta"] / (draws["alpha"] + draws["beta"])
        exponent_interval = tuple(float(q) for q in np.quantile(ratio, [tail, 1 - tail]))
    loss = result.predict(point[["params", "tokens"]], level=level)
    table["loss"] = loss["mean"].to_numpy()
    for source, column in (("mean", "loss"), ("obs", "loss_obs"), ("plan", "loss_plan")):
        table[f"{column}_lo"] = loss[f"{source}_lo"].to_numpy()
        table[f"{column}_hi"] = loss[f"{source}_hi"].to_numpy()
    distance = extrapolation_distance(result, point[["params", "tokens"]].assign(flops=flops))
    for column in distance.columns:
        table[column] = distance[column].to_numpy()
    return JointLawAllocation(table, exponent, exponent_interval, level)
