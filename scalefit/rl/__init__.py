"""RL post-training scaling: fit the learning-efficiency law to pass@1 curves, and backtest it honestly.

Tan et al. (2025), "Scaling Behaviors of LLM Reinforcement Learning Post-Training" (arXiv:2509.25300), model
the test error ``L = 1 − pass@1`` of RL post-training as::

    log L = −k(N) · log X + E(N),      k(N) = K_max / (1 + N0 / N),

with ``X`` the RL compute ``C = Σ 6·N·(tokens processed per step)`` or data ``D`` (samples seen), ``E(N)`` a
free intercept per model size (:class:`scalefit.laws.RLEfficiency`). Reported (Qwen2.5 base, L(N, C)):
``K_max = 0.135, N0 = 13.1B``. They fit by CMA-ES on the squared error of ``L`` (not ``log L``) with equal
total weight per model size; here the shared engine (:func:`scalefit.fitting.fit`, multi-start, bounds)
minimises the same objective (``loss="mse"``) or Huber on ``log L`` (``loss="huber"``).

Two backtests (:func:`fit_rl`'s ``protocol``):

``early:F``
    Fit on the first fraction ``F`` of every curve (``X ≤ F · X_max`` of that curve), predict the rest.
``holdout-largest:K``
    Fit on every size but the ``K`` largest, predict each held-out size's curve in two named variants:
    ``slope-only`` takes ``k(N)`` from the fitted law and refits the intercept ``E(N)`` on the target's
    first points (``X ≤ anchor · X_max``), as in Tan et al.'s code — it tests the slope, not a prediction
    from smaller models alone; ``full`` also extrapolates the intercept, by the least-squares line of
    ``E`` against ``log N`` over the fitted sizes — a true out-of-sample prediction. Both are scored on the
    target's points after the anchor, so their errors compare.

Intervals come from a block bootstrap: every curve is cut into contiguous segments of ``segment_length``
points, and each replicate redraws, within every curve, as many segments as it has (so every curve and
size stays in every replicate while neighbouring, correlated evaluations move together); replicates are
refitted by the engine from the optimum (:mod:`scalefit.fitting.resampling`), and intervals are
percentiles of the stored draws, at any level (:meth:`RLFit.conf_int`).

The result, :class:`RLFit`, follows the shared result protocol (:mod:`scalefit.results`) and saves to
``rl.json`` (docs/rl-json.md). Modules: :mod:`~scalefit.rl.data` (the runs table, points, clipping,
protocols), :mod:`~scalefit.rl.estimate` (:func:`fit_rl`), :mod:`~scalefit.rl.backtest` (held-out
predictions and their errors), :mod:`~scalefit.rl.result` (:class:`RLFit`).
"""

from scalefit.rl.backtest import VARIANTS
from scalefit.rl.data import X_COLUMNS, Clipping, load_rl_runs, parse_protocol, rl_points
from scalefit.rl.estimate import LOSSES, PAPER_CONSTANTS, fit_rl
from scalefit.rl.result import RLFit

__all__ = ["LOSSES", "PAPER_CONSTANTS", "VARIANTS", "X_COLUMNS", "Clipping", "RLFit", "fit_rl", "load_rl_runs",
           "parse_protocol", "rl_points"]
