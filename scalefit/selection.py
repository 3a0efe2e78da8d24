"""Choose a law by how it extrapolates: an expanding-window rollout over model sizes.

For every window ``k`` (fit on the ``k`` smallest model sizes, predict every larger size), each candidate is
fitted with the same objective (Huber on log residuals) and its predictions of the held-out runs are scored;
the candidate with the lowest *distance-weighted* mean absolute relative error wins. The scheme follows
OLMo-core's ``ScalingLawRollout`` (fit on a growing prefix of the ladder, predict the rest) and Hoffmann et al.
(2022, App. D). AIC and BIC are shown beside the rollout but do not choose: on real over-training data the
in-sample criteria picked the worst extrapolator (docs/trust.md).

The rollout also measures how extrapolation error grows with distance beyond the data: the planning
interval's :class:`~scalefit.fitting.ExtrapolationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from scalefit.errors import FitError
from scalefit.fitting import ExtrapolationError, FitResult, extrapolation_distance, fit
from scalefit.laws import Chinchilla, Kaplan
from scalefit.laws.base import Law

#: Model sizes closer than this (decades) are one size in a rollout (sizes read off a figure scatter a little).
SIZE_TOLERANCE_DECADES = 0.01
#: Windows leave at least this many sizes to fit.
MIN_FIT_SIZES = 3
#: At most this many windows, spread evenly over the possible cuts (the smallest and largest always kept).
MAX_WINDOWS = 6
#: Bootstrap refits per window fit (for the rollout's interval coverage).
ROLLOUT_BOOTSTRAP = 200


@dataclass(frozen=True)
class Candidate:
    """A law with constraints, fitted with ``fix``/``tie`` by :func:`scalefit.fitting.fit`."""

    name: str
    law: Law
    fix: Mapping[str, float] | None = None
    tie: Sequence[str] | None = None

    def fit(self, points: pd.DataFrame, fit_fn: Callable = fit, **options) -> FitResult:
        return fit_fn(self.law, points, fix=self.fix, tie=self.tie, **options)


def default_candidates(fixed_floor: float | None = None) -> list[Candidate]:
    """The free joint law, α = β tied, E fixed at ``fixed_floor`` (when given), and Kaplan's law."""
    candidates = [Candidate("joint (free)", Chinchilla()), Candidate("joint α=β", Chinchilla(), tie=("alpha", "beta"))]
    if fixed_floor is not None:
        candidates.append(Candidate(f"joint E={fixed_floor:g}", Chinchilla(), fix={"E": float(fixed_floor)}))
    candidates.append(Candidate("kaplan", Kaplan()))
    return candidates


def size_groups(params: pd.Series, tolerance: float = SIZE_TOLERANCE_DECADES) -> pd.Series:
    """A size index per row: sorted log10 N split wherever a gap exceeds ``tolerance`` decades."""
    values = np.log10(params.to_numpy(float))
    order = np.argsort(values, kind="stable")
    labels = np.empty(len(values), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(np.diff(values[order]) > tolerance)])
    return pd.Series(labels, index=params.index)


def window_cuts(n_sizes: int, min_fit_sizes: int = MIN_FIT_SIZES, max_windows: int = MAX_WINDOWS) -> list[int]:
    """The numbers ``k`` of smallest sizes fitted by each window: every ``k`` leaving ≥ 1 size to predict, thinned
    evenly to ``max_windows``."""
    cuts = list(range(min_fit_sizes, n_sizes))
    if len(cuts) > max_windows:
        cuts = sorted({cuts[round(i)] for i in np.linspace(0, len(cuts) - 1, max_windows)})
    return cuts


@dataclass(frozen=True)
class Rollout:
    """Held-out predictions of one candidate over every window.

    ``predictions``: one row per held-out point and window: ``window`` (k), ``params``, ``tokens``, ``actual``,
    ``predicted``, ``obs_lo``, ``obs_hi``, ``rel_error``, ``log_residual``, ``decades`` (beyond the window's
    data), ``noise`` (the window fit's run noise, ``sqrt(Σ r² / (n − p))`` of its log residuals) and
    ``prediction_sd`` (the window's bootstrap sd of its log prediction). ``windows``: ``k``,
    ``largest_fit_params``, ``n_targets``, ``decades`` (mean over targets), ``error`` (mean |rel. error|), ``failed`` (why the window
    could not be fitted, else empty) and ``flag`` (the fit's message when it is not trusted, e.g. a parameter
    on its bound; its predictions still count: that is how the law extrapolates from that window).
    """

    name: str
    predictions: pd.DataFrame
    windows: pd.DataFrame

    @property
    def score(self) -> float:
        """Mean |rel. error| per window, averaged with weights = the window's mean distance in decades."""
        ok = self.windows[np.isfinite(self.windows["error"])]
        if len(ok) < len(self.windows) or not len(ok):
            return float("inf")  # a candidate whose fit fails on some window cannot be trusted to extrapolate
        weights = np.maximum(ok["decades"].to_numpy(float), 1e-3)
        return float(np.average(ok["error"].to_numpy(float), weights=weights))

    @property
    def coverage(self) -> float:
        p = self.predictions.dropna(subset=["obs_lo", "obs_hi"])
        return float(((p["actual"] >= p["obs_lo"]) & (p["actual"] <= p["obs_hi"])).mean()) if len(p) else float("nan")

    def extrapolation_error(self) -> ExtrapolationError | None:
        """The error per decade, measured on the windows whose fit is trusted.

        A flagged window (a parameter on its bound, or one that left the fit) has a bootstrap that cannot
        leave its corner, so its prediction spread understates its parameter error and the excess would be
        read as the form's error. Its held-out points are left out (and counted); when every window is
        flagged they all count, which errs wide.
        """
        p = self.predictions
        if not len(p):
            return None
        flagged = set(self.windows.loc[self.windows["flag"].astype(bool), "k"])
        trusted = p[~p["window"].isin(flagged)]
        used = trusted if len(trusted) else p
        return ExtrapolationError.from_rollout(used["log_residual"], used["decades"], used["noise"], law=self.name,
                                               prediction_sd=used["prediction_sd"],
                                               n_windows=int(used["window"].nunique()),
                                               n_flagged_windows=len(flagged) if len(trusted) else 0)


def rollout(points: pd.DataFrame, fit_one: Callable[[pd.DataFrame], FitResult], name: str = "law", *,
            level: float = 0.95, cuts: Sequence[int] | None = None) -> Rollout:
    """Fit ``fit_one`` on the ``k`` smallest sizes of ``points`` for each window ``k`` and predict the rest.

    ``fit_one`` is injected (any function from points to a :class:`FitResult`), so the same rollout scores
    any law, constraint or fitting option.
    """
    groups = size_groups(points["params"])
    n_sizes = int(groups.max()) + 1
    cuts = window_cuts(n_sizes) if cuts is None else list(cuts)
    rows, windows = [], []
    z = NormalDist().inv_cdf(0.5 + level / 2)  # to read each window's prediction sd off its interval
    for k in cuts:
        train, target = points[groups < k], points[groups >= k]
        window = {"k": k, "largest_fit_params": float(train["params"].max()), "n_targets": len(target),
                  "decades": np.nan, "error": np.nan, "failed": "", "flag": ""}
        try:
            result = fit_one(train)
        except FitError as err:
            windows.append(window | {"failed": str(err)})
            continue
        window["flag"] = "" if result.success else result.message
        band = result.predict(target, level=level)
        decades = extrapolation_distance(result, target)["decades"].to_numpy(float)
        actual = target["loss"].to_numpy(float)
        predicted = band["mean"].to_numpy(float)
        rows.append(pd.DataFrame({
            "window": k, "params": target["params"].to_numpy(float), "tokens": target["tokens"].to_numpy(float),
            "actual": actual, "predicted": predicted, "obs_lo": band["obs_lo"].to_numpy(float),
            "obs_hi": band["obs_hi"].to_numpy(float), "rel_error": (predicted - actual) / actual,
            "log_residual": np.log(actual / predicted), "decades": decades,
            "noise": result.noise_scale,
            "prediction_sd": np.log(band["mean_hi"] / band["mean_lo"]).to_numpy(float) / (2 * z),
        }))
        windows.append(window | {"decades": float(decades.mean()), "error": float(np.mean(np.abs(rows[-1]["rel_error"])))})
    predictions = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["window", "params", "tokens", "actual", "predicted", "obs_lo", "obs_hi", "rel_error",
                 "log_residual", "decades", "noise", "prediction_sd"])
    return Rollout(name, predictions, pd.DataFrame(windows))


@dataclass(frozen=True)
class Selection:
    """The candidates' rollouts and full-data fits, the choice and why."""

    chosen: str
    rollouts: dict[str, Rollout]
    fits: dict[str, FitResult | None]
    reason: str
    disagreement: str | None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self, candidates: Sequence[Candidate]) -> dict:
        """The ``selection`` record of ``fit.json`` (docs/fit-json.md)."""
        first = next(iter(self.rollouts.values()))
        windows = [{"k": int(w.k), "largest_fit_params": float(w.largest_fit_params), "n_targets": int(w.n_targets),
                    "decades": float(np.nanmax([r.windows.loc[i, "decades"] for r in self.rollouts.values()]))}
                   for i, w in enumerate(first.windows.itertuples())]
        rows = []
        for c in candidates:
            r, full = self.rollouts[c.name], self.fits.get(c.name)
            error = r.extrapolation_error()
            rows.append({
                "name": c.name, "law": repr(c.law), "fix": dict(c.fix or {}), "tie": list(c.tie or []),
                "score": r.score, "window_errors": r.windows["error"].tolist(),
                "window_failures": r.windows["failed"].tolist(), "window_flags": r.windows["flag"].tolist(),
                "coverage": r.coverage,
                "aic": None if full is None else full.aic(), "bic": None if full is None else full.bic(),
                "params": None if full is None else {k: float(v) for k, v in full.params.items()},
                "per_decade": None if error is None else error.per_decade,
            })
        return {"chosen": self.chosen, "reason": self.reason, "disagreement": self.disagreement,
                "weighting": "mean |rel. error| per window, weighted by the window's mean decades beyond its data",
                "windows": windows, "candidates": rows, "notes": list(self.notes)}


def select_law(points: pd.DataFrame, candidates: Sequence[Candidate], *, fit_fn: Callable = fit,
               rollout_bootstrap: int = ROLLOUT_BOOTSTRAP, level: float = 0.95, **fit_options) -> Selection:
    """Score every candidate by :func:`rollout` and choose the lowest distance-weighted error.

    ``fit_options`` (``loss``, ``delta``, ``seed``, ``weights`` …) are the same for every candidate; each
    window fit uses ``rollout_bootstrap`` refits. Raises :class:`~scalefit.errors.FitError` when fewer than
    ``MIN_FIT_SIZES + 1`` sizes exist (no window) or no candidate extrapolates on every window.
    """
    n_sizes = int(size_groups(points["params"]).max()) + 1
    if n_sizes <= MIN_FIT_SIZES:
        raise FitError(f"{n_sizes} model sizes: a rollout needs at least {MIN_FIT_SIZES + 1} (fit on "
                       f"{MIN_FIT_SIZES}, predict the rest)")
    options = {k: v for k, v in fit_options.items() if k != "bootstrap"}
    rollouts, fits = {}, {}
    for c in candidates:
        rollouts[c.name] = rollout(points, lambda train, c=c: c.fit(train, fit_fn, bootstrap=rollout_bootstrap,
                                                                     **options), c.name, level=level)
        try:
            fits[c.name] = c.fit(points, fit_fn, bootstrap=0, **options)
        except FitError:
            fits[c.name] = None
    scores = {name: r.score for name, r in rollouts.items()}
    chosen = min(scores, key=scores.get)
    if not np.isfinite(scores[chosen]):
        by_reason: dict[str, list[str]] = {}  # one cause shared by every candidate is said once
        for n, r in rollouts.items():
            by_reason.setdefault(r.windows["failed"].iloc[0], []).append(n)
        raise FitError("no candidate law could be fitted on every rollout window: "
                       + "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items()))
    return Selection(chosen, rollouts, fits, _reason(chosen, scores, fits, candidates), _disagreement(rollouts))


def _reason(chosen: str, scores: dict, fits: dict, candidates: Sequence[Candidate]) -> str:
    reference = candidates[0].name
    ranked = sorted(scores, key=scores.get)
    text = f"chose {chosen}: lowest distance-weighted rollout error ({scores[chosen]:.2%}"
    if chosen != reference:
        text += (f" vs {scores[reference]:.2%} for {reference}" if np.isfinite(scores[reference])
                 else f"; {reference} could not be fitted on every window")
    elif len(ranked) > 1:
        text += f"; next {ranked[1]} {scores[ranked[1]]:.2%}"
    text += ")"
    by_aic = [n for n in fits if fits[n] is not None]
    if by_aic:
        best_aic = min(by_aic, key=lambda n: fits[n].aic())
        if best_aic != chosen:
            text += f"; AIC would pick {best_aic}, which AIC cannot judge on extrapolation"
    return text


def _disagreement(rollouts: dict[str, Rollout]) -> str | None:
    """Which candidate each window prefers, when they do not all prefer the same."""
    errors = pd.DataFrame({n: r.windows["error"].to_numpy(float) for n, r in rollouts.items()})
    errors = errors.dropna(how="all")
    if errors.empty:
        return None
    winners = errors.idxmin(axis=1, skipna=True)
    if winners.nunique() <= 1:
        return None
    first = next(iter(rollouts.values())).windows
    parts = [f"N ≤ {first.loc[i, 'largest_fit_params']:.3g}: {w}" for i, w in winners.items()]
    return "windows disagree on the best law (" + "; ".join(parts) + "): the choice rests on the weighting"


def auto_constraints(fix: Mapping[str, float] | None, tie) -> tuple[bool, float | None]:
    """Whether ``--law auto`` can choose given the user's ``fix``/``tie``, and the E they fixed, if any.

    A fixed E adds the ``E fixed`` candidate. Any other fix or a tie is a constraint the user chose on the
    joint law: then there is nothing to choose, and the joint law is fitted as given.
    """
    other = {k: v for k, v in (fix or {}).items() if k not in ("E", "e")}
    if other or tie:
        return False, None
    if not fix:
        return True, None
    value = next(iter(fix.values()))
    return True, float(np.exp(value)) if "e" in fix else float(value)
