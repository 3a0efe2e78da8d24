"""Optimal learning-rate and batch-size laws, fitted from a user's own LR × batch-size sweep.

Three steps, each usable alone, one small module each:

1. :func:`locate_optima` (:mod:`.optima`, :mod:`.quadratic`) — per (N, D) group or FLOP budget: exclude
   diverged runs (and say which), find the best grid cell, the **plateau** (within 0.25 % of the best loss,
   as Step Law) and an **interpolated optimum** (a convex quadratic in log lr, log batch size).
2. :func:`fit_hparam_laws` (:mod:`.laws`) — the power laws of :mod:`scalefit.laws.hparam`
   (``lr_vs_N_D``, ``bs_vs_D``, ``bs_vs_N_D`` after Step Law, Li et al. 2025, arXiv:2503.04715;
   ``lr_vs_C``, ``bs_vs_C`` after DeepSeek LLM, Bi et al. 2024, arXiv:2401.02954), fitted by the fitting
   engine on the located optima (or every plateau run) with a bootstrap over groups.
3. :func:`recommend` (:mod:`.recommend`) — the peak LR and batch size for a planned (N, D), with
   confidence, prediction and (for presets, :mod:`.presets`) planning intervals, the setup the numbers
   assume, and the distance in decades outside the fitted range.

:func:`leave_one_group_out` and :func:`nearest_grid_loss_gap` (:mod:`.backtest`) score a law on the sweep
itself. Every result (:class:`HparamOptima`, :class:`HparamLaw`, :class:`HparamLaws`, :class:`Recommendation`)
follows :mod:`scalefit.results`: ``params``, ``conf_int(level)``, ``status``, ``summary()``, ``save``/``load``.

Units: ``params`` N are non-embedding parameters, ``tokens`` D training tokens, ``flops`` C training
FLOPs (``6ND`` when the table has none), ``batch_size`` tokens per optimiser step, ``lr`` the peak
learning rate.
"""

from scalefit.hyperparams.backtest import leave_one_group_out, nearest_grid_loss_gap
from scalefit.hyperparams.law_result import HparamLaw
from scalefit.hyperparams.laws import DEFAULT_N_BOOTSTRAP, HparamLaws, fit_hparam_laws
from scalefit.hyperparams.optima import (
    DEFAULT_DIVERGENCE_FACTOR,
    DEFAULT_PLATEAU_TOLERANCE,
    HparamOptima,
    locate_optima,
)
from scalefit.hyperparams.presets import PRESET_SETUPS, PRESETS, preset_laws
from scalefit.hyperparams.recommend import Recommendation, recommend, side_by_side
from scalefit.hyperparams.sweep import (
    STEPLAW_SEQ_LEN,
    final_losses,
    is_steplaw_csv,
    load_sweep,
    read_steplaw_csv,
)
from scalefit.laws.hparam import HPARAM_LAWS
from scalefit.results import DEFAULT_LEVEL

LAW_SPECS = HPARAM_LAWS  # the name the laws had before they moved to scalefit.laws.hparam


def fit_hparams(
    runs,
    *,
    group_by="params_tokens",
    tolerance: float = DEFAULT_PLATEAU_TOLERANCE,
    divergence_factor: float | None = DEFAULT_DIVERGENCE_FACTOR,
    fit_on="optima",
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    source: str = "runs",
) -> HparamLaws:
    """:func:`locate_optima` then :func:`fit_hparam_laws` (see them for the parameters)."""
    optima = locate_optima(runs, group_by=group_by, tolerance=tolerance, divergence_factor=divergence_factor,
                           level=level, source=source)
    return fit_hparam_laws(optima, fit_on=fit_on, n_bootstrap=n_bootstrap, level=level, seed=seed)


__all__ = [
    "DEFAULT_DIVERGENCE_FACTOR",
    "DEFAULT_LEVEL",
    "DEFAULT_N_BOOTSTRAP",
    "DEFAULT_PLATEAU_TOLERANCE",
    "HPARAM_LAWS",
    "LAW_SPECS",
    "PRESETS",
    "PRESET_SETUPS",
    "STEPLAW_SEQ_LEN",
    "HparamLaw",
    "HparamLaws",
    "HparamOptima",
    "Recommendation",
    "final_losses",
    "fit_hparam_laws",
    "fit_hparams",
    "is_steplaw_csv",
    "leave_one_group_out",
    "load_sweep",
    "locate_optima",
    "nearest_grid_loss_gap",
    "preset_laws",
    "read_steplaw_csv",
    "recommend",
    "side_by_side",
]
