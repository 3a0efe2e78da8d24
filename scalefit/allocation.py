"""Compute-optimal allocation: N_opt(C) ∝ C^a and D_opt(C) ∝ C^b, three ways (Hoffmann et al. 2022, §3).

Approach 1 — minimum over training curves: for each model size, the lower envelope of loss against compute;
at each compute budget on a log grid, the size with the lowest loss is N_opt(C); regress log N_opt on log C.
Approach 2 — IsoFLOP profiles: runs sharing a compute budget give loss against log N; a parabola through
the sizes nearest the profile's lowest loss has its vertex at N_opt(C); regress log N_opt on log C. The
budgets are the table's declared ones (a ``flops_budget`` or ``compute_budget`` column) or clusters of
log C (:func:`isoflop_budgets`).
Approach 3 — the joint law: N_opt(C) = G·(C/6)^(β/(α+β)) in closed form, with bootstrap bands from the fit.

Compute is C = 6·N·D by default in all three (the convention of Approach 3's closed form); pass
``convention="table"`` to use the table's own ``flops`` column instead. Exponents come from ordinary least
squares in log space (statsmodels), with confidence intervals at ``level`` (95 % by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalefit.errors import FitError, ScalefitInputError
from scalefit.fitting.extrapolation import extrapolation_distance
from scalefit.flops import tokens_for, training_flops
from scalefit.points import points as choose_points
from scalefit.results import DEFAULT_LEVEL, Result, Summary, check_level, register

LEVEL = DEFAULT_LEVEL
#: Columns that declare the compute budget a run was designed for (IsoFLOP sweeps), in order of preference.
BUDGET_COLUMNS = ("flops_budget", "compute_budget")
#: Half-width [decades of C] of a budget found by clustering: runs within ±0.025 decades (±6 %) of the
#: budget's densest point share it. Chosen on Epoch's Chinchilla points, whose nine IsoFLOP profiles sit
#: within ±0.02 decades of their centre while the other runs fill the gaps between them.
DEFAULT_TOLERANCE_DECADES = 0.025
#: A cluster of compute is a budget when it is this many times as dense as its surroundings (see
#: :func:`isoflop_groups`); on Epoch's points the nine profiles are 3.0–24 times as dense, other clusters ≤ 2.3.
MIN_DENSITY_CONTRAST = 2.5
#: Approach 2's parabola uses the sizes nearest (in log N) to each profile's lowest loss: this many of them.
DEFAULT_WINDOW = 7
#: Windows whose exponents the summary reports beside the default (``None``: every size of the profile).
SENSITIVITY_WINDOWS = (3, 5, 7, 9, None)


@dataclass(frozen=True)
class PowerLawFit:
    """y = c·C^exponent fitted by OLS in log space; the interval at ``level``."""

    coefficient: float
    exponent: float
    exponent_interval: tuple[float, float]
    n_points: int
    level: float = LEVEL

    @classmethod
    def fit(cls, compute: np.ndarray, y: np.ndarray, level: float = LEVEL) -> PowerLawFit:
        if len(compute) < 3:
            raise FitError(f"a power law in compute needs at least 3 budgets with an optimum; got {len(compute)}")
        # imported here, and not statsmodels.api: that costs 2 s of every CLI start-up
        from statsmodels.regression.linear_model import OLS
        from statsmodels.tools.tools import add_constant

        model = OLS(np.log(y), add_constant(np.log(compute))).fit()
        lo, hi = model.conf_int(1 - level)[1]
        return cls(float(np.exp(model.params[0])), float(model.params[1]), (float(lo), float(hi)), len(compute),
                   level)

    def predict(self, compute) -> np.ndarray:
        return self.coefficient * np.asarray(compute, dtype=float) ** self.exponent


def _interval_text(law: PowerLawFit) -> str:
    return f"C^{law.exponent:.3f} [{law.exponent_interval[0]:.3f}, {law.exponent_interval[1]:.3f}]"


@register
@dataclass(frozen=True)
class AllocationResult(Result):
    """Compute-optimal points of one approach and the power laws fitted through them.

    ``params`` are the exponents ``a`` (N_opt ∝ C^a) and ``b`` (D_opt ∝ C^b); :meth:`conf_int` refits them
    from ``optima`` at any level. ``optima`` has one row per budget (``flops``, ``params_opt``,
    ``tokens_opt``, ``loss_opt``, and for Approach 2 the parabola ``curvature, slope, intercept`` in
    ln N and the sizes it used). Approach 2 also keeps ``profiles`` (every run it considered: ``budget``,
    ``params``, ``loss``, ``used``), ``sensitivity`` (the exponents under each window) and ``settings``.
    """

    kind = "allocation"
    schema_version = 1

    approach: str
    optima: pd.DataFrame
    params_law: PowerLawFit
    tokens_law: PowerLawFit
    convention: str
    notes: tuple[str, ...] = field(default=())
    profiles: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None
    settings: dict = field(default_factory=dict)
    status: str = "ok"
    reasons: tuple[str, ...] = field(default=())

    @property
    def level(self) -> float:
        return self.params_law.level

    @property
    def params(self) -> pd.Series:
        return pd.Series({"a": self.params_law.exponent, "b": self.tokens_law.exponent})

    @property
    def draws(self) -> pd.DataFrame:
        return pd.DataFrame()

    def conf_int(self, level: float = LEVEL) -> pd.DataFrame:
        """OLS intervals of the exponents ``a`` and ``b`` at ``level`` (a parameters × ``lo``/``hi`` frame)."""
        params_law, tokens_law = _laws(self.optima, check_level(level))
        return pd.DataFrame([params_law.exponent_interval, tokens_law.exponent_interval], index=["a", "b"],
                            columns=["lo", "hi"])

    def summary(self) -> Summary:
        n, d = self.params_law, self.tokens_law
        header = [("N_opt", _interval_text(n)), ("D_opt", _interval_text(d)),
                  ("Budgets", f"{n.n_points} (C = {self.convention}; {100 * self.level:g} % intervals)")]
        header += [(key.replace("_", " ").capitalize(), str(value)) for key, value in self.settings.items()]
        tables = []
        if self.sensitivity is not None and len(self.sensitivity):
            tables.append(("Exponents by window (sizes nearest each profile's minimum; all: every size)",
                           self.sensitivity.set_index("window")))
        return Summary(self.approach, header, tables, self.notes, self.status, self.reasons)

    def __str__(self) -> str:
        n, d = self.params_law, self.tokens_law
        head = (f"{self.approach}: N_opt ∝ {_interval_text(n)}, D_opt ∝ {_interval_text(d)} from {n.n_points} "
                f"budgets (C = {self.convention})")
        lines = [head]
        if self.settings:
            lines.append("  " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in self.settings.items()))
        if self.sensitivity is not None and len(self.sensitivity):
            lines.append("  window sensitivity (a by window): " + ", ".join(
                f"{r.window}: {r.a:.3f}" + (f" ({r.budgets} budgets)" if r.budgets != n.n_points else "")
                for r in self.sensitivity.itertuples()))
        if self.status != "ok":
            lines.append(f"  {self.status.upper()}: " + "; ".join(self.reasons))
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])

    def to_dict(self) -> dict:
        frames = {name: None if frame is None else frame.to_dict(orient="records")
                  for name, frame in (("profiles", self.profiles), ("sensitivity", self.sensitivity))}
        return {
            **self._envelope(), "approach": self.approach, "convention": self.convention, "level": self.level,
            "params": self.params.to_dict(), "status": self.status, "reasons": list(self.reasons),
            "params_exponent": self.params_law.exponent,
            "params_exponent_interval": list(self.params_law.exponent_interval),
            "params_coefficient": self.params_law.coefficient,
            "tokens_exponent": self.tokens_law.exponent,
            "tokens_exponent_interval": list(self.tokens_law.exponent_interval),
            "tokens_coefficient": self.tokens_law.coefficient,
            "optima": self.optima.to_dict(orient="records"), "notes": list(self.notes),
            "settings": dict(self.settings), **frames,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> AllocationResult:
        optima = pd.DataFrame(doc["optima"]).astype({c: float for c in ("flops", "params_opt", "tokens_opt")})
        laws = [PowerLawFit(float(doc[f"{q}_coefficient"]), float(doc[f"{q}_exponent"]),
                            tuple(float(v) for v in doc[f"{q}_exponent_interval"]), len(optima),
                            float(doc["level"])) for q in ("params", "tokens")]
        frames = {name: None if doc.get(name) is None else pd.DataFrame(doc[name])
                  for name in ("profiles", "sensitivity")}
        return cls(doc["approach"], optima, *laws, doc["convention"], tuple(doc.get("notes", ())),
                   settings=dict(doc.get("settings", {})), status=doc.get("status", "ok"),
                   reasons=tuple(doc.get("reasons", ())), **frames)


def _compute(df: pd.DataFrame, convention: str) -> np.ndarray:
    if convention == "6ND":
        return training_flops(df["params"].to_numpy(float), df["tokens"].to_numpy(float))
    if convention == "table":
        return df["flops"].to_numpy(float)
    raise ValueError(f"unknown compute convention {convention!r}; use '6ND' or 'table'")


def _convention_name(df: pd.DataFrame, convention: str) -> str:
    return "6ND" if convention == "6ND" else df.attrs.get("flops_convention", "table")


def _laws(optima: pd.DataFrame, level: float = LEVEL) -> tuple[PowerLawFit, PowerLawFit]:
    c = optima["flops"].to_numpy(float)
    return (PowerLawFit.fit(c, optima["params_opt"].to_numpy(float), level),
            PowerLawFit.fit(c, optima["tokens_opt"].to_numpy(float), level))


def approach1(df: pd.DataFrame, *, points: str = "final", n_budgets: int = 12,
              convention: str = "6ND", level: float = LEVEL) -> AllocationResult:
    """Approach 1: the lowest loss at each compute budget across model sizes.

    ``points="final"`` uses each run's last evaluation (every run fully annealed; a size's curve is the
    envelope over its token budgets); ``points="all"`` uses every evaluation, as Hoffmann et al. did with
    four schedule lengths per size (intermediate points of a cosine schedule are not annealed).
    """
    if points not in ("final", "all"):
        raise ValueError("points must be 'final' or 'all'")
    rows = choose_points(df, points, status=None, split=None)
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
    params_law, tokens_law = _laws(optima, check_level(level))
    return AllocationResult("approach 1 (training-curve envelope)", optima, params_law, tokens_law,
                            _convention_name(df, convention), tuple(notes))


def isoflop_groups(compute: np.ndarray, tolerance_decades: float = DEFAULT_TOLERANCE_DECADES,
                   min_runs: int = 1) -> np.ndarray:
    """Label runs by IsoFLOP budget: dense windows of log10 C, densest first, no chaining; -1 for none.

    Repeatedly, the unlabelled run with the most unlabelled others within ±``tolerance_decades`` of its
    log10 C centres a window, until the densest window holds fewer than ``min_runs`` runs. The window is a
    budget when it is a peak of the design, at least :data:`MIN_DENSITY_CONTRAST` times as dense (runs per
    decade) as the three window widths on either side of it; otherwise its runs are left unlabelled (runs of
    other experiments that happen to share a compute). A budget is thus never wider than twice the
    tolerance, however closely other runs fill the gaps between budgets (single-linkage chaining of small
    gaps merges a whole design into one "budget"). Labels are numbered by increasing compute.
    """
    logc = np.log10(np.asarray(compute, dtype=float))
    distance = np.abs(logc[:, None] - logc[None, :])
    neighbours = distance <= tolerance_decades * (1 + 1e-9)
    flanks = (~neighbours & (distance <= 4 * tolerance_decades)).sum(axis=1) / 3  # per window width
    labels = np.full(len(logc), -1)
    free = np.ones(len(logc), dtype=bool)
    centres = []
    while free.any():
        counts = (neighbours & free[None, :]).sum(axis=1) * free
        centre = int(np.argmax(counts))
        if counts[centre] < max(min_runs, 1):
            break
        members = neighbours[centre] & free
        if neighbours[centre].sum() >= MIN_DENSITY_CONTRAST * flanks[centre]:
            labels[members] = len(centres)
            centres.append(logc[centre])
        free &= ~members
    rank = np.argsort(np.argsort(centres))
    return np.where(labels >= 0, rank[np.maximum(labels, 0)] if centres else -1, -1)


def budget_column(df: pd.DataFrame) -> str | None:
    """The column declaring each run's IsoFLOP budget (:data:`BUDGET_COLUMNS`), or None."""
    return next((c for c in BUDGET_COLUMNS if c in df.columns and df[c].notna().any()), None)


def _budget_labels(final: pd.DataFrame, tolerance_decades: float, min_sizes: int) -> tuple[np.ndarray, str]:
    """Budget label per run (-1: none) and a sentence saying where the budgets came from."""
    column = budget_column(final)
    if column is not None:
        declared = final[column].to_numpy(float)
        if not (np.isfinite(declared) & (declared > 0)).all():
            bad = int(np.flatnonzero(~(np.isfinite(declared) & (declared > 0)))[0])
            raise ScalefitInputError(f"column {column!r}: run {final['run_id'].iloc[bad]!r} has budget "
                                     f"{declared[bad]!r}; give every run a finite budget > 0 [FLOP], or drop "
                                     "the column to let Approach 2 cluster the runs' compute")
        return pd.factorize(declared, sort=True)[0], f"declared ({column} column)"
    labels = isoflop_groups(final["_c"].to_numpy(), tolerance_decades, min_runs=min_sizes)
    return labels, f"clustered (log10 C within ±{tolerance_decades:g} decades of each budget's densest point)"


def _nearest_sizes(best: pd.DataFrame, window: int | None) -> pd.DataFrame:
    """The ``window`` sizes nearest (in log N) to the profile's lowest loss; all of them for None."""
    if window is None or window >= len(best):
        return best
    x = np.log(best["params"].to_numpy(float))
    lowest = np.flatnonzero(best["loss"].to_numpy(float) == best["loss"].min())
    distance = np.abs(x - np.median(x[lowest]))
    return best.iloc[np.sort(np.argsort(distance, kind="stable")[:window])]


def _vertex(best: pd.DataFrame, c: float, window: int | None, convention: str) -> tuple[dict | None, str]:
    """Approach 2's optimum of one IsoFLOP profile (one run per size, sorted by N), or None and why not."""
    lowest = np.flatnonzero(best["loss"].to_numpy(float) == best["loss"].min())  # ties: losses read off a plot
    if lowest[-1] == 0 or lowest[0] == len(best) - 1:
        edge = "smallest" if lowest[-1] == 0 else "largest"
        return None, (f"budget C≈{c:.3g}: the lowest loss is at the {edge} size trained, so the profile does not "
                      "bracket its minimum; excluded")
    used = _nearest_sizes(best, window)
    x, loss = np.log(used["params"].to_numpy(float)), used["loss"].to_numpy(float)
    curvature, slope, intercept = np.polyfit(x, loss, 2)
    if curvature <= 0:
        return None, f"budget C≈{c:.3g}: loss is not convex in log N; excluded"
    x_opt = -slope / (2 * curvature)
    trained = np.log(best["params"].to_numpy(float))
    if not trained.min() <= x_opt <= trained.max():
        return None, (f"budget C≈{c:.3g}: the parabola's minimum N={np.exp(x_opt):.3g} lies outside the sizes "
                      f"trained ({best['params'].min():.3g}–{best['params'].max():.3g}); excluded")
    # D at the vertex: C / 6N under 6ND; else read off the budget's own runs (log-log in N).
    tokens_opt = (tokens_for(c, np.exp(x_opt)) if convention == "6ND"
                  else float(np.exp(np.interp(x_opt, x, np.log(used["tokens"].to_numpy(float))))))
    return {"flops": c, "params_opt": float(np.exp(x_opt)), "tokens_opt": tokens_opt,
            "loss_opt": float(np.polyval([curvature, slope, intercept], x_opt)), "n_sizes": len(best),
            "n_used": len(used), "params_min": float(used["params"].min()),
            "params_max": float(used["params"].max()), "curvature": float(curvature), "slope": float(slope),
            "intercept": float(intercept)}, ""


def _profiles(final: pd.DataFrame, labels: np.ndarray, min_sizes: int) -> tuple[list, list[str]]:
    """(budget C, one run per size sorted by N) for every labelled budget with ``min_sizes`` sizes; notes."""
    profiles, notes = [], []
    for label in np.unique(labels[labels >= 0]):
        g = final[labels == label]
        c = float(np.exp(np.log(g["_c"]).mean()))
        best = g.loc[g.groupby("params")["loss"].idxmin()].sort_values("params")  # one run per size
        if len(best) < min_sizes:
            notes.append(f"budget C≈{c:.3g}: {len(best)} sizes, fewer than {min_sizes}; excluded")
            continue
        profiles.append((c, best))
    return profiles, notes


def approach2(df: pd.DataFrame, *, min_sizes: int = 4, window: int | None = DEFAULT_WINDOW,
              tolerance_decades: float = DEFAULT_TOLERANCE_DECADES, convention: str = "6ND",
              level: float = LEVEL) -> AllocationResult:
    """Approach 2: IsoFLOP profiles of final losses; a parabola in log N per budget; its vertex is N_opt(C).

    Budgets: the table's declared ones when it has a :data:`BUDGET_COLUMNS` column, else clusters of
    log10 C (:func:`isoflop_groups`, ±``tolerance_decades``); the budget reported is the geometric mean of
    its runs' compute. Per budget the best run of each size is kept, and the parabola is fitted to the
    ``window`` sizes nearest (in log N) to the lowest loss (None: every size): a parabola is only a local
    model of the profile, and far-off sizes bias its vertex (``DEFAULT_WINDOW`` was chosen on Epoch's
    Chinchilla points and the shipped table; ``docs/allocation.md``). Budgets with fewer than ``min_sizes``
    sizes, a lowest loss at the smallest or largest size, a non-convex parabola, or a vertex outside the
    sizes used are excluded and named in ``notes``; ``sensitivity`` gives the exponents under
    :data:`SENSITIVITY_WINDOWS`.
    """
    level = check_level(level)
    if window is not None and window < 3:
        raise ScalefitInputError(f"the Approach 2 window must be 3 or more sizes (a parabola has 3 "
                                 f"coefficients), or None for every size; not {window}")
    final = choose_points(df, "final", status=None, split=None)
    final = final[np.isfinite(final["loss"])]
    final = final.assign(_c=_compute(final, convention))
    labels, source = _budget_labels(final, tolerance_decades, min_sizes)
    profiles, skipped = _profiles(final, labels, min_sizes)
    rows, sensitivity = {}, []
    for w in dict.fromkeys((window, *SENSITIVITY_WINDOWS)):  # the chosen window first
        fitted = [_vertex(best, c, w, convention) for c, best in profiles]
        rows[w] = fitted
        optima = pd.DataFrame([r for r, _ in fitted if r is not None])
        if len(optima) >= 3:
            n_law, d_law = _laws(optima, level)
            sensitivity.append({"window": "all" if w is None else str(w), "a": n_law.exponent,
                                "a_lo": n_law.exponent_interval[0], "a_hi": n_law.exponent_interval[1],
                                "b": d_law.exponent, "budgets": len(optima)})
    chosen = rows[window]
    optima = pd.DataFrame([r for r, _ in chosen if r is not None])
    notes = skipped + [why for r, why in chosen if r is None]
    unassigned = int((labels < 0).sum())
    if unassigned:
        notes.append(f"{unassigned} of {len(final)} runs lie on no IsoFLOP budget; not used")
    if len(optima) < 3:
        raise FitError(f"Approach 2 needs at least 3 IsoFLOP budgets (several sizes trained at one compute, "
                       f"declared in a flops_budget column or clustered) with {min_sizes}+ sizes and an interior "
                       f"minimum; found {len(optima)} (budgets {source})" + "".join(f"; {n}" for n in notes))
    params_law, tokens_law = _laws(optima, level)
    settings = {"budgets": source, "window": ("every size" if window is None
                                              else f"{window} sizes nearest each profile's lowest loss")}
    vertices = {c: vertex for (c, _), (vertex, _) in zip(profiles, chosen, strict=True)}
    profile_rows = pd.DataFrame([{"budget": c, "params": float(n), "tokens": float(t), "loss": float(loss),
                                  "used": vertices[c] is not None
                                  and vertices[c]["params_min"] <= n <= vertices[c]["params_max"]}
                                 for c, best in profiles
                                 for n, t, loss in best[["params", "tokens", "loss"]].itertuples(index=False)])
    status, reasons = "ok", ()
    # Narrowing the window further (down to 5 sizes) should not move the exponent beyond its interval.
    sizes = [(None if row["window"] == "all" else int(row["window"]), row["a"]) for row in sensitivity]
    narrower = [a for w, a in sizes if w == window or (w is not None and w >= 5 and (window is None or w < window))]
    lo, hi = params_law.exponent_interval
    if len(narrower) > 1 and max(narrower) - min(narrower) > max(hi - lo, 1e-3):
        reason = (f"the exponent a moves by {max(narrower) - min(narrower):.3f} between this window and narrower "
                  f"ones, more than its {100 * level:g} % interval's width ({hi - lo:.3f}): the profiles are not "
                  "parabolic over the window; narrow it (--isoflop-window)")
        status, reasons = "suspect", (reason,)
    return AllocationResult("approach 2 (IsoFLOP parabolas)", optima, params_law, tokens_law,
                            _convention_name(df, convention), tuple(notes), profile_rows,
                            pd.DataFrame(sensitivity), settings, status, reasons)


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
    #: True when the fit tied alpha and beta: the exponents are then 1/2 by construction and have no interval.
    exponent_fixed: bool = False

    def summary(self) -> str:
        lo, hi = self.params_exponent_interval
        pct = f"{100 * self.level:g} %"
        n_band, d_band = (("(fixed)", "(fixed)") if self.exponent_fixed
                          else (f"[{lo:.3f}, {hi:.3f}]", f"[{1 - hi:.3f}, {1 - lo:.3f}]"))
        lines = [(f"approach 3 (joint law): N_opt ∝ C^{self.params_exponent:.3f} {n_band}, "
                 f"D_opt ∝ C^{1 - self.params_exponent:.3f} {d_band} (C = 6ND; {pct} "
                 "intervals; loss with its planning interval; decades beyond the fitted data)"),
                 (f"{'C [FLOP]':>10} {'N_opt':>10} {'':>21} {'D_opt':>10} {'':>21} {'D/N':>7} {'loss':>7} "
                 f"{'plan':>17} {'decades':>7}")]
        for r in self.table.itertuples():
            lines.append(f"{r.flops:>10.3g} {r.params:>10.3g} [{r.params_lo:>9.3g}, {r.params_hi:>9.3g}] "
                         f"{r.tokens:>10.3g} [{r.tokens_lo:>9.3g}, {r.tokens_hi:>9.3g}] {r.tokens_per_param:>7.1f} "
                         f"{r.loss:>7.4g} [{r.loss_plan_lo:>7.4g}, {r.loss_plan_hi:>7.4g}] {r.decades:>7.2f}")
        if self.exponent_fixed:
            lines.append("  note: the exponents are 1/2 by the fit's alpha = beta constraint, not measured (no "
                         "interval); fit --law chinchilla to measure them")
        return "\n".join(lines)


    def to_dict(self) -> dict:
        return {"approach": "approach 3 (joint law)", "convention": "6ND", "level": self.level,
                "params_exponent": self.params_exponent,
                "params_exponent_interval": list(self.params_exponent_interval),
                "tokens_exponent": 1 - self.params_exponent,
                "tokens_exponent_interval": [1 - self.params_exponent_interval[1],
                                             1 - self.params_exponent_interval[0]],
                "exponent_fixed": self.exponent_fixed,
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
    fixed = bool(result.params["alpha"] == result.params["beta"] and (not len(draws) or
                                                                       (draws["alpha"] == draws["beta"]).all()))
    if fixed:
        exponent_interval = (float("nan"), float("nan"))
    loss = result.predict(point[["params", "tokens"]], level=level)
    table["loss"] = loss["mean"].to_numpy()
    for source, column in (("mean", "loss"), ("obs", "loss_obs"), ("plan", "loss_plan")):
        table[f"{column}_lo"] = loss[f"{source}_lo"].to_numpy()
        table[f"{column}_hi"] = loss[f"{source}_hi"].to_numpy()
    distance = extrapolation_distance(result, point[["params", "tokens"]].assign(flops=flops))
    for column in distance.columns:
        table[column] = distance[column].to_numpy()
    return JointLawAllocation(table, exponent, exponent_interval, level, fixed)
