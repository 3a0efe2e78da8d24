"""Which runs to train next: a searched design that narrows the planning interval at a target run.

The criterion is the planning variance of ``log L`` at the target ``(N*, D*)`` (see docs/planning.md)::

    V(X) = E_θ[ gᵀ (F_θ(X) + P)⁻¹ g ]  +  σ²  +  (κ · d(X))²
           parameter uncertainty         a new   extrapolation error
                                          run

where ``F_θ(X) = Σ_x J_xᵀ J_x / σ_eff²`` is the information of the design ``X`` (existing runs and the
proposed ones) for the fit's Huber M-estimator at parameters ``θ`` — its sandwich covariance
``σ_eff² (JᵀJ)⁻¹``, ``σ_eff² = E ψ² / (E ψ')²`` (:mod:`scalefit.plan.refits`) —, ``g = ∂ log L̂(N*, D*)/∂θ``,
``P`` a weak prior precision (so that an empty or rank-deficient design still has a finite criterion), the
expectation is over draws of ``θ`` (the current fit's bootstrap draws, or a prior around a published law when
there are no runs), ``σ`` the noise of log loss and ``d(X)`` the decades the target lies beyond the design as
the fit's planning interval counts them (the largest of the N, D and C = 6ND distances,
:func:`scalefit.fitting.extrapolation_distance`); ``κ`` is the extrapolation error per decade. This is
Bayesian c-optimal design (Chaloner & Verdinelli 1995, *Statistical Science* 10(3), §2.2) with an
extrapolation term.

Selection (:mod:`scalefit.plan.search`): candidates are (size, tokens-per-parameter) pairs on a log grid. One
**greedy** pass is made for each γ in :data:`COST_EXPONENTS`: each step adds the affordable candidate with the
largest reduction of ``V`` per ``cost^γ`` (``cost = 6ND`` FLOPs; γ = 0 buys the largest reduction, γ = 1 the
largest reduction per FLOP), until the budget is spent, no candidate reduces ``V`` by more than ``min_gain`` of
itself, or ``max_runs`` is reached. Each pass's design is then improved by Fedorov **exchanges** (swap one
proposed run for another affordable candidate while ``V`` falls). The :data:`SHORTLIST` best distinct designs
by the linearised ``V`` (of those whose linearised parameter part is within :data:`SHORTLIST_FACTOR` of the
best) are the shortlist: with ``refits > 0`` their parameter part (and the naive grid's) is
measured by simulated refits with the engine itself (:func:`scalefit.plan.refits.simulated_refit_variance`,
the same simulated data sets for every design), which the linearisation only approximates for ten runs and
five parameters, and the design with the smallest measured ``V`` is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.errors import ScalefitInputError
from scalefit.fitting import FitResult
from scalefit.flops import FLOPS_PER_PARAM_TOKEN, params_for, training_flops
from scalefit.laws import Chinchilla
from scalefit.laws.base import Law
from scalefit.plan.refits import DEFAULT_DELTA, huber_noise_factor, simulated_refit_variance
from scalefit.plan.search import SearchSpace, exchange, greedy_pass, sequential_gains
from scalefit.results import DEFAULT_LEVEL, Result, Summary, check_level, register

#: Chinchilla's law as refitted by Besiroglu et al. (2024, Epoch AI), the prior centre when there are no runs.
EPOCH_CHINCHILLA = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
#: Prior spread in the fitting space: log-amplitudes (a, b), log-floor (e), exponents (alpha, beta).
PRIOR_SD = {"a": 2.0, "b": 2.0, "e": 0.5, "alpha": 0.15, "beta": 0.15}
#: Weak prior precision added to every design's information (1/sd² in the fitting space).
WEAK_PRIOR_SD = {"a": 10.0, "b": 10.0, "e": 2.0, "alpha": 1.0, "beta": 1.0}
#: Extrapolation error of log L per decade beyond the data when no backtest gives one: about 1.5 %, the
#: free joint law's error predicting runs 3.5×–17× beyond a 4-size ladder (shared/notes/prediction-facts.md).
DEFAULT_KAPPA = 0.015
DEFAULT_SIGMA = 0.01
TOKENS_PER_PARAM = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
#: Cost exponents γ of the greedy passes (0: largest reduction; 1: largest reduction per FLOP).
COST_EXPONENTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: At most this many distinct searched designs (best linearised ``V`` first) get their parameter part measured
#: by simulated refits ...
SHORTLIST = 5
#: ... and only those whose linearised parameter part is within this factor of the best design's: the
#: linearisation misjudges ten-run designs by up to about 4× (tests/test_plan.py), not by more.
SHORTLIST_FACTOR = 4.0


def _gradient_and_jacobian(law: Law, theta: np.ndarray, inputs: np.ndarray):
    _, jacobian = law.log_predict_jacobian(theta, inputs)  # (params, draws, points)
    return np.moveaxis(jacobian, 0, -1)  # (draws, points, params)


@dataclass(frozen=True)
class DesignCriterion:
    """``V(X)`` of the module docstring, evaluated fast for many candidate additions."""

    law: Law
    theta: np.ndarray  # (draws, params), fitting space
    target: tuple[float, float]
    sigma: float
    kappa: float
    prior_precision: np.ndarray  # (params,)
    delta: float = DEFAULT_DELTA  # the fit's Huber threshold on log residuals

    def __post_init__(self) -> None:
        target = np.array([self.target], dtype=float)
        object.__setattr__(self, "_g", _gradient_and_jacobian(self.law, self.theta, target)[:, 0, :])
        object.__setattr__(self, "_noise", self.sigma**2 * huber_noise_factor(self.sigma, self.delta))

    def information(self, design: np.ndarray) -> np.ndarray:
        """(draws, params, params) information of the points ``design`` (points, 2)."""
        if len(design) == 0:
            return np.zeros((len(self.theta), self.theta.shape[1], self.theta.shape[1]))
        jac = _gradient_and_jacobian(self.law, self.theta, np.asarray(design, dtype=float))
        return np.einsum("spi,spj->sij", jac, jac) / self._noise

    @property
    def gradient(self) -> np.ndarray:
        """``g``: (draws, params) gradient of ``log L̂`` at the target."""
        return self._g

    @property
    def noise_variance(self) -> float:
        """``σ_eff²``: the per-run variance the Huber estimator's sandwich covariance scales ``(JᵀJ)⁻¹`` by."""
        return float(self._noise)

    def distance(self, design: np.ndarray) -> float:
        """Decades the target lies outside the design in N, D or C = 6ND, the largest of the three (0 inside),
        as :func:`scalefit.fitting.extrapolation_distance` counts them for the fit's planning interval."""
        if len(design) == 0:
            return float(np.log10(self.target[0] * self.target[1]))  # nothing known: all of it is extrapolation
        design = np.asarray(design, dtype=float)
        values = np.column_stack([design, training_flops(design[:, 0], design[:, 1])])
        target = np.array([*self.target, training_flops(*self.target)])
        reach = np.maximum(np.log10(target / values.max(axis=0)), np.log10(values.min(axis=0) / target))
        return float(max(0.0, reach.max()))

    def parts(self, information: np.ndarray, distance: float) -> dict[str, float]:
        """The three variance parts of ``V`` for a design with this information and distance."""
        precision = information + np.diag(self.prior_precision)[None]
        solved = np.linalg.solve(precision, self._g[..., None])[..., 0]
        parameter = float(np.mean(np.einsum("si,si->s", self._g, solved)))
        return {"parameters": parameter, "new run": self.sigma**2, "extrapolation": (self.kappa * distance) ** 2}

    def variance(self, design: np.ndarray) -> float:
        return sum(self.parts(self.information(design), self.distance(design)).values())


@register
@dataclass(frozen=True)
class DesignPlan(Result):
    """Proposed runs, what they cost, and the planning interval they are expected to give at the target.

    ``runs`` has one row per proposed run (``params``, ``tokens``, ``tokens_per_param``, ``flops``,
    ``gain``: its share of the reduction of the linearised ``V`` when added). ``before``/``after``/``naive``
    hold the variance parts of ``V`` for the existing runs, with the proposal, and for a naive grid of the same
    number of runs and compute (log-spaced sizes at a fixed tokens-per-parameter ratio); ``*_width`` are the
    corresponding planning-interval widths as a fraction of the predicted loss. ``method`` says how their
    parameter part was obtained (simulated refits, or the linearised sandwich covariance).
    """

    kind = "plan"
    schema_version = 2

    target: tuple[float, float]
    budget: float
    runs: pd.DataFrame
    before: dict
    after: dict
    naive: dict
    naive_runs: pd.DataFrame
    prior: str
    sigma: float
    kappa: float
    level: float = DEFAULT_LEVEL
    status: str = "ok"
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    method: str = "linearised (Huber sandwich)"
    params: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    draws: pd.DataFrame = field(default_factory=pd.DataFrame)

    def width(self, parts: Mapping[str, float]) -> float:
        """Planning-interval width at :attr:`level`, as a fraction of the predicted loss."""
        z = stats.norm.ppf(0.5 + self.level / 2)
        spread = np.sqrt(sum(parts.values()))
        return float(np.exp(z * spread) - np.exp(-z * spread))

    @property
    def extrapolation_dominated(self) -> bool:
        """True when more runs at this scale cannot narrow the interval much: the extrapolation part is over
        half of the expected planning variance after the proposal."""
        return self.after["extrapolation"] > 0.5 * sum(self.after.values())

    def summary(self) -> Summary:
        pct = f"{100 * self.level:g} %"
        header = [
            ("Target", (f"N = {self.target[0]:.3g}, D = {self.target[1]:.3g} (C = 6ND = "
                       f"{training_flops(*self.target):.3g} FLOP)")),
            ("Budget", f"{self.budget:.3g} FLOP; proposed runs use {self.runs['flops'].sum():.3g}"),
            ("Criterion", (f"{pct} planning interval of L at the target (σ = {self.sigma:.3g} per run, "
                          f"κ = {self.kappa:.3g} per decade beyond the data; prior: {self.prior})")),
            ("Selection", ("greedy passes (each step adds the run that narrows the interval most per cost^γ, "
                          "γ ∈ {0, ¼, ½, ¾, 1}), each improved by Fedorov exchanges")),
            ("Parameter part", self.method),
            ("Width now", f"{_percent(self.width(self.before))} of the predicted loss"),
            ("With plan", _percent(self.width(self.after))),
            ("Naive grid", (f"{_percent(self.width(self.naive))} ({len(self.naive_runs)} runs, same compute, "
                           "log-spaced sizes at 20 tokens/param)")),
        ]
        parts = pd.DataFrame({"now": self.before, "with plan": self.after, "naive grid": self.naive}).T
        parts["share of extrapolation"] = parts["extrapolation"] / parts.sum(axis=1)
        return Summary("scalefit plan: runs to train next", header,
                       [("proposed runs", self.runs), ("variance of log L at the target, by part", parts)],
                       self.notes, self.status, self.reasons)

    def plot(self, existing: pd.DataFrame | None = None, ax=None):
        """The plan in the (N, D) plane (:func:`scalefit.plots.plot_design`)."""
        from scalefit.plots import plot_design

        return plot_design(self, existing, ax=ax)

    def plot_variance(self, ax=None):
        """The planning variance by part (:func:`scalefit.plots.plot_design_variance`)."""
        from scalefit.plots import plot_design_variance

        return plot_design_variance(self, ax=ax)

    def to_dict(self) -> dict:
        return {**self._envelope(), "target": list(self.target), "budget": self.budget,
                "runs": self.runs.to_dict(orient="records"), "before": self.before, "after": self.after,
                "naive": self.naive, "naive_runs": self.naive_runs.to_dict(orient="records"),
                "widths": {"before": self.width(self.before), "after": self.width(self.after),
                           "naive": self.width(self.naive)},
                "extrapolation_dominated": self.extrapolation_dominated, "prior": self.prior,
                "sigma": self.sigma, "kappa": self.kappa, "level": self.level, "status": self.status,
                "reasons": list(self.reasons), "notes": list(self.notes), "method": self.method}

    @classmethod
    def from_dict(cls, doc: dict) -> DesignPlan:
        columns = ["params", "tokens", "tokens_per_param", "flops", "gain"]
        runs = pd.DataFrame(doc["runs"], columns=columns).astype(float)
        naive = pd.DataFrame(doc["naive_runs"], columns=["params", "tokens", "tokens_per_param", "flops"]).astype(float)
        return cls(tuple(doc["target"]), float(doc["budget"]), runs, dict(doc["before"]), dict(doc["after"]),
                   dict(doc["naive"]), naive, doc["prior"], float(doc["sigma"]), float(doc["kappa"]),
                   float(doc["level"]), doc["status"], tuple(doc["reasons"]), tuple(doc["notes"]),
                   doc.get("method", "linearised (least squares)"))


def _percent(width: float) -> str:
    return "unbounded (over 1000 %)" if width > 10 else f"{100 * width:.3g} %"


def prior_draws(centre: Mapping[str, float] | None = None, n: int = 64, seed: int = 0,
                law: Law | None = None) -> pd.DataFrame:
    """Draws of the joint law's parameters around ``centre`` (default Epoch's Chinchilla refit) with the spread
    :data:`PRIOR_SD` in the fitting space: a prior for designing a ladder before any run exists."""
    law = law or Chinchilla()
    centre = EPOCH_CHINCHILLA if centre is None else centre
    theta = law.to_fitted(centre)[0]
    rng = np.random.default_rng(seed)
    sd = np.array([PRIOR_SD[name] for name in law.param_names])
    draws = theta + rng.normal(size=(n, len(theta))) * sd
    draws[:, law.param_names.index("alpha")] = np.clip(draws[:, law.param_names.index("alpha")], 0.05, None)
    draws[:, law.param_names.index("beta")] = np.clip(draws[:, law.param_names.index("beta")], 0.05, None)
    return pd.DataFrame(law.to_reported(draws), columns=law.reported_names)


def naive_grid(n_runs: int, compute: float, smallest: float, tokens_per_param: float = 20.0) -> pd.DataFrame:
    """``n_runs`` log-spaced sizes from ``smallest`` at a fixed tokens-per-parameter ratio, the largest chosen so
    that the grid's total ``6ND`` equals ``compute`` (the usual ladder a design is compared with)."""
    if n_runs < 1:
        return pd.DataFrame(columns=["params", "tokens", "tokens_per_param", "flops"], dtype=float)

    def total(largest: float) -> float:
        sizes = np.geomspace(smallest, largest, n_runs)
        return float(np.sum(FLOPS_PER_PARAM_TOKEN * tokens_per_param * sizes**2))  # 6ND with D = r N

    lo, hi = smallest, smallest * 1e6
    for _ in range(200):  # bisection in log space: total() increases with the largest size
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if total(mid) < compute else (lo, mid)
    sizes = np.geomspace(smallest, np.sqrt(lo * hi), n_runs) if n_runs > 1 else np.array([np.sqrt(lo * hi)])
    if n_runs == 1:
        sizes = np.array([params_for(compute, tokens_per_param)])
    tokens = tokens_per_param * sizes
    return pd.DataFrame({"params": sizes, "tokens": tokens, "tokens_per_param": tokens_per_param,
                         "flops": training_flops(sizes, tokens)})


def _measured(criterion: DesignCriterion, design: np.ndarray, refits: int, seed: int) -> dict[str, float]:
    """``V``'s parts for ``design`` with the parameter part measured by simulated refits (the linearised one
    when the design cannot be refitted at all, e.g. fewer distinct points than parameters)."""
    parts = criterion.parts(criterion.information(design), criterion.distance(design))
    if len(np.unique(design, axis=0)) <= criterion.theta.shape[1]:
        return parts
    variance = simulated_refit_variance(criterion.law, design, criterion.theta, criterion.target, criterion.sigma,
                                        refits, seed, criterion.delta)
    return {**parts, "parameters": variance}


def design_runs(
    target_params: float,
    target_tokens: float,
    budget: float,
    *,
    result: FitResult | None = None,
    existing: pd.DataFrame | None = None,
    prior: Mapping[str, float] | None = None,
    parameter_draws: pd.DataFrame | None = None,
    sigma: float | None = None,
    kappa: float = DEFAULT_KAPPA,
    sizes: Sequence[float] | None = None,
    tokens_per_param: Sequence[float] = TOKENS_PER_PARAM,
    max_runs: int = 12,
    min_gain: float = 0.01,
    n_draws: int = 64,
    refits: int = 16,
    delta: float = DEFAULT_DELTA,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> DesignPlan:
    """Propose runs that narrow the planning interval at ``(target_params, target_tokens)`` within ``budget``.

    Parameters
    ----------
    target_params, target_tokens
        The run to predict: N (non-embedding parameters) and D (tokens).
    budget
        FLOPs (``6ND``) available for the new runs.
    result
        A joint-law fit of the existing runs: its bootstrap draws are the draws of ``θ``, its run noise
        (:attr:`~scalefit.fitting.FitResult.noise_scale`) ``σ``, its points the existing design. Without it,
        ``prior`` (default Epoch's Chinchilla refit) with the spread :data:`PRIOR_SD`.
    existing
        Existing design (``params``, ``tokens``) when no fit is given (e.g. runs already planned).
    parameter_draws
        Draws of the law's parameters (reported names, one row per draw) to design for, in place of the fit's
        bootstrap draws or the prior's; one row designs for a known law (a locally optimal design).
    sigma, kappa
        Noise of log loss per run; extrapolation error of log L per decade beyond the data
        (default :data:`DEFAULT_KAPPA`; pass the backtest's figure when you have one).
    sizes
        Candidate model sizes; default 4 per decade from the smallest existing size (or N*/1000) up to the
        largest size a run at the smallest ratio can afford, and not beyond N*.
    tokens_per_param
        Candidate D/N ratios.
    max_runs, min_gain
        Stop after this many runs, or when the best candidate reduces ``V`` by less than ``min_gain`` of it.
    refits
        Simulated refits per shortlisted design (and for the naive grid and the existing runs) that measure
        the parameter part of ``V``; 0 keeps the linearised sandwich covariance (fast, but it misjudges
        designs that leave a direction of the parameters flat).
    delta
        The Huber threshold the fit will use (``scalefit.fitting.fit``'s ``delta``).
    """
    level = check_level(level)
    for name, value in (("target params", target_params), ("target tokens", target_tokens), ("budget", budget)):
        if not (np.isfinite(value) and value > 0):
            raise ScalefitInputError(f"{name} must be a positive number, not {value!r}")
    law = Chinchilla()
    if result is not None:
        if result.law.name != "chinchilla":
            raise ScalefitInputError(f"plan designs runs for the joint law L(N, D); this fit is {result.law.name!r}")
        draws = result.draws[result.draws["converged"].astype(bool)] if len(result.draws) else result.draws
        if len(draws) < 10:
            draws = prior_draws(result.params.to_dict(), n_draws, seed, law)
        draws = draws.sample(min(n_draws, len(draws)), random_state=seed)
        prior_text = f"the fit's {len(draws)} bootstrap draws"
        if sigma is None:
            sigma = result.noise_scale
        existing = result.data[["params", "tokens"]] if existing is None else existing
    else:
        draws = prior_draws(prior, n_draws, seed, law)
        prior_text = "a published law (Epoch's Chinchilla refit) with wide spread" if prior is None else \
            "the given law with wide spread"
    if parameter_draws is not None:
        draws = parameter_draws[list(law.reported_names)]
        prior_text = f"{len(draws)} given parameter draws"
    sigma = max(DEFAULT_SIGMA if sigma is None else float(sigma), 1e-3)
    existing = np.empty((0, 2)) if existing is None else existing[["params", "tokens"]].to_numpy(dtype=float)
    theta = law.to_fitted(draws)
    precision = np.array([1.0 / WEAK_PRIOR_SD[name] ** 2 for name in law.param_names])
    criterion = DesignCriterion(law, theta, (float(target_params), float(target_tokens)), sigma, kappa, precision,
                                delta)

    if sizes is None:
        smallest = existing[:, 0].min() if len(existing) else target_params / 1e3
        largest = min(target_params, params_for(budget, min(tokens_per_param)))
        if largest <= smallest:
            raise ScalefitInputError(f"a budget of {budget:.3g} FLOP cannot afford a run larger than the smallest "
                                     f"existing size ({smallest:.3g} parameters); raise --budget")
        sizes = np.geomspace(smallest, largest, max(2, int(np.ceil(4 * np.log10(largest / smallest))) + 1))
    grid = np.array([(n, n * r) for n in sizes for r in tokens_per_param], dtype=float)
    cost = training_flops(grid[:, 0], grid[:, 1])
    grid_info = _gradient_and_jacobian(law, theta, grid)  # (draws, candidates, params)
    candidate_info = np.einsum("sci,scj->csij", grid_info, grid_info) / criterion.noise_variance

    space = SearchSpace(criterion, existing, criterion.information(existing), grid, cost, candidate_info, budget)
    before = criterion.parts(space.existing_information, criterion.distance(existing))
    # one greedy pass per cost exponent γ (score = reduction of V / cost^γ), each then improved by exchanges
    passes = [greedy_pass(space, max_runs, min_gain, gamma) for gamma in COST_EXPONENTS]
    searched = passes + [exchange(space, found) for found in passes]
    distinct = sorted({tuple(sorted(found.chosen)): found for found in searched}.values(),
                      key=lambda found: found.variance)
    method = "linearised (Huber sandwich covariance at the draws)"
    if refits > 0:  # the shortlist, measured with the estimator the fit uses (common random numbers)
        linearised = [criterion.parts(found.information, 0.0)["parameters"] for found in distinct]
        shortlist = [found for found, value in zip(distinct, linearised)
                     if value <= SHORTLIST_FACTOR * min(linearised)][:SHORTLIST]
        measured = [_measured(criterion, found.design, refits, seed) for found in shortlist]
        best = int(np.argmin([sum(parts.values()) for parts in measured]))
        chosen_design, after = shortlist[best], measured[best]
        method = (f"simulated refits ({refits} data sets per design, refitted by the engine, the same data sets "
                  f"for every design) of the {len(shortlist)} best of {len(distinct)} distinct searched designs; "
                  "the search uses the linearised Huber sandwich covariance")
    else:
        chosen_design = distinct[0]
        after = criterion.parts(chosen_design.information, criterion.distance(chosen_design.design))
    chosen, spent = list(chosen_design.chosen), chosen_design.spent
    gains = sequential_gains(space, chosen_design.chosen)
    runs = pd.DataFrame({"params": grid[chosen, 0], "tokens": grid[chosen, 1],
                         "tokens_per_param": grid[chosen, 1] / grid[chosen, 0], "flops": cost[chosen],
                         "gain": gains / max(float(gains.sum()), 1e-300)})
    naive = naive_grid(len(chosen), spent, float(sizes[0]))
    naive_design = np.vstack([existing, naive[["params", "tokens"]].to_numpy()])
    if refits > 0 and len(chosen):
        naive_parts = _measured(criterion, naive_design, refits, seed)
        if len(existing):
            before = _measured(criterion, existing, refits, seed)
    else:
        naive_parts = criterion.parts(criterion.information(naive_design), criterion.distance(naive_design))

    notes, reasons, status = [], (), "ok"
    if not chosen:
        status, reasons = "suspect", ("no affordable run narrows the interval: raise the budget or the target",)
    plan = DesignPlan((float(target_params), float(target_tokens)), float(budget), runs, before, after,
                      naive_parts, naive, prior_text, sigma, kappa, level, status, reasons, method=method)
    if plan.extrapolation_dominated:
        notes.append("the interval is dominated by extrapolation distance: more small runs will not help; runs "
                     "closer to the target (or a backtest showing a smaller error per decade) will")
    notes.append(f"stopping rule: the expected {100 * level:g} % planning interval after these runs is "
                 f"{100 * plan.width(after):.3g} % of the predicted loss; the extrapolation part is "
                 f"{100 * after['extrapolation'] / sum(after.values()):.0f} % of its variance")
    return DesignPlan(plan.target, plan.budget, runs, before, after, naive_parts, naive, prior_text, sigma, kappa,
                      level, status, reasons, tuple(notes), method)
