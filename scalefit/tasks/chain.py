"""The two-step chain of Bhagia et al. (2024): (N, D) → task loss → accuracy, with a joint bootstrap over runs.

Step 1 fits a loss law from :mod:`scalefit.laws` (Chinchilla's joint law in N and D, or a power law in
compute) to the intermediate (a task's bits per byte, the general loss, or a log-perplexity); step 2 fits
:class:`~scalefit.laws.sigmoid.Sigmoid` from the intermediate to the accuracy, on every checkpoint. Both are
fitted by :func:`scalefit.fitting.fit` with ``resample="run"``, the same weight scheme (Bayesian weights per
run; the residual bootstrap would not pair the steps) and the same seed on the same set of runs, so
bootstrap draw ``i`` of both steps refits the *same* resample of runs: chaining draw ``i`` of step 1 into
draw ``i`` of step 2 is one bootstrap over runs carried through both steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.errors import FitError
from scalefit.fitting import FitResult, fit
from scalefit.laws import Chinchilla, PowerLaw
from scalefit.laws.base import Law
from scalefit.laws.sigmoid import Sigmoid

#: Both steps reweight the same runs with the same draws, so that draw i of step 1 feeds draw i of step 2.
PAIRED_SCHEME = "bayesian"

STEP1_LAWS = ("chinchilla", "power-flops")


def step1_law(name: str) -> Law:
    """The step-1 law by name: ``chinchilla`` (L(N, D)) or ``power-flops`` (L(C), C = 6ND)."""
    if name == "chinchilla":
        return Chinchilla()
    if name == "power-flops":
        return PowerLaw(x="flops")
    raise FitError(f"step-1 law must be one of {', '.join(STEP1_LAWS)}, not {name!r}")


def sigmoid_for(x: np.ndarray, *, column: str = "task_loss", log_x: bool = False, increasing: bool = False) -> Sigmoid:
    """A :class:`Sigmoid` whose start grid spans the (log-)range of ``x``."""
    values = np.log(x) if log_x else np.asarray(x, dtype=float)
    lo, hi = float(np.min(values)), float(np.max(values))
    return Sigmoid(column, log_x=log_x, increasing=increasing, x_range=(lo, max(hi, lo + 1e-6)))


def sigmoid_accuracy(law: Sigmoid, params: pd.DataFrame, x: np.ndarray) -> np.ndarray:
    """Accuracy (rows of ``params`` × columns of ``x``) for reported sigmoid parameters, row-wise ``x``.

    ``x`` is (rows, m) or (m,) raw abscissa values (the law takes logs when ``log_x``).
    """
    x = np.log(x) if law.log_x else np.asarray(x, dtype=float)
    x = np.broadcast_to(x, (len(params), x.shape[-1]))
    floor, ceiling, k, x0 = (params[c].to_numpy(dtype=float)[:, None] for c in ("floor", "ceiling", "k", "x0"))
    gap = (x - x0) if law.increasing else (x0 - x)
    with np.errstate(over="ignore"):
        return floor + (ceiling - floor) / (1.0 + np.exp(-k * gap))


def law_values(law: Law, params: pd.DataFrame, targets: pd.DataFrame) -> np.ndarray:
    """A loss law at ``targets`` for every row of reported ``params``: (rows, targets)."""
    return np.exp(law.log_predict(law.to_fitted(params), law.input_array(targets)))


@dataclass(frozen=True)
class Chain:
    """Both fitted steps of one task, and the chained accuracy at the targets.

    Attributes
    ----------
    step1, step2
        The engine's fits (step 1: intermediate from N, D; step 2: accuracy from the intermediate).
    mean
        Chained point prediction at each target (targets,).
    draws, obs_draws
        Chained accuracy per bootstrap draw where both refits converged (draws, targets); ``obs_draws``
        adds one residual of the chained fit per draw (a new run's scatter).
    """

    step1: FitResult
    step2: FitResult
    mean: np.ndarray
    draws: np.ndarray
    obs_draws: np.ndarray

    def predict(self, targets: pd.DataFrame) -> np.ndarray:
        """Chained point prediction of the accuracy at ``targets`` (params, tokens, flops)."""
        loss = law_values(self.step1.law, self.step1.params.to_frame().T, targets)
        return sigmoid_accuracy(self.step2.law, self.step2.params.to_frame().T, loss)[0]


def fit_step1(points: pd.DataFrame, law_name: str, *, bootstrap: int, seed: int,
              min_fraction: float = 0.1) -> FitResult:
    """Step 1 on ``points`` (run_id, params, tokens, flops, intermediate): checkpoints with at least
    ``min_fraction`` of their run's final tokens (early checkpoints sit off the power law)."""
    final = points.groupby("run_id")["tokens"].transform("max")
    used = points[(points["tokens"] >= min_fraction * final) & points["intermediate"].notna()]
    data = used[["run_id", "params", "tokens", "flops"]].assign(loss=used["intermediate"].to_numpy())
    return fit(step1_law(law_name), data, bootstrap=bootstrap, resample="run",
               bootstrap_scheme=PAIRED_SCHEME, seed=seed)


def fit_sigmoid(points: pd.DataFrame, x: str, chance: float | None, *, bootstrap: int, seed: int,
                log_x: bool = False, increasing: bool = False) -> FitResult:
    """A sigmoid from column ``x`` to ``acc`` on every point with both (accuracy 0 is left out: the
    engine fits log accuracy); the floor fixed at ``chance``, or fitted when ``chance`` is None."""
    used = points[points[x].notna() & (points["acc"] > 0)]
    law = sigmoid_for(used[x].to_numpy(), column=x, log_x=log_x, increasing=increasing)
    data = used[["run_id", x]].assign(loss=used["acc"].to_numpy())
    fix = None if chance is None else {"floor": chance}
    return fit(law, data, loss="mse", fix=fix, bootstrap=bootstrap, resample="run",
               bootstrap_scheme=PAIRED_SCHEME, seed=seed)


def chain(step1: FitResult, step2: FitResult, targets: pd.DataFrame, points: pd.DataFrame,
          seed: int) -> Chain:
    """Chain step 1 into step 2 at ``targets``, draw by draw (see the module docstring)."""
    if len(step1.draws) != len(step2.draws):
        raise FitError("the two steps were bootstrapped a different number of times; they cannot be chained")
    if set(step1.data["run_id"]) != set(step2.data["run_id"]):
        raise FitError("the two steps were fitted on different runs, so their bootstrap draws do not pair; "
                       "give every run both the intermediate and the accuracy")
    both = (step1.draws["converged"].to_numpy(bool) & step2.draws["converged"].to_numpy(bool)
            if len(step1.draws) else np.zeros(0, bool))
    loss = law_values(step1.law, step1.draws.loc[both], targets) if both.any() else np.empty((0, len(targets)))
    draws = sigmoid_accuracy(step2.law, step2.draws.loc[both], loss) if both.any() else loss
    finished = Chain(step1, step2, np.empty(0), draws, draws)
    mean = finished.predict(targets)
    residuals = _chained_residuals(finished, points)
    rng = np.random.default_rng(seed)
    scatter = rng.choice(residuals, size=(len(draws), 1)) if len(residuals) else np.zeros((len(draws), 1))
    return Chain(step1, step2, mean, draws, np.clip(draws + scatter, 0.0, 1.0))


def _chained_residuals(partial: Chain, points: pd.DataFrame) -> np.ndarray:
    """Observed minus chained accuracy at the points step 1 was fitted on."""
    used = points.loc[points.index.intersection(partial.step1.data.index)]
    used = used[used["acc"].notna()]
    if not len(used):
        return np.empty(0)
    return used["acc"].to_numpy() - partial.predict(used)


def one_step(fitted: FitResult, targets: pd.DataFrame, points: pd.DataFrame, seed: int) -> tuple:
    """``(mean, draws, obs_draws)`` of a single-step sigmoid (accuracy from compute) at ``targets``."""
    law = fitted.law
    converged = fitted.draws["converged"].to_numpy(bool) if len(fitted.draws) else np.zeros(0, bool)
    x = targets[law.x].to_numpy(dtype=float)
    mean = sigmoid_accuracy(law, fitted.params.to_frame().T, x)[0]
    draws = sigmoid_accuracy(law, fitted.draws.loc[converged], x) if converged.any() else np.empty((0, len(x)))
    used = points[points["acc"] > 0]
    residuals = used["acc"].to_numpy() - sigmoid_accuracy(law, fitted.params.to_frame().T,
                                                          used[law.x].to_numpy(dtype=float))[0]
    scatter = np.random.default_rng(seed).choice(residuals, size=(len(draws), 1))
    return mean, draws, np.clip(draws + scatter, 0.0, 1.0)
