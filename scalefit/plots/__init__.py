"""All plotting lives here; this is the only module that imports matplotlib, and it does so lazily.

Every function takes a result (and optionally an ``ax``) and returns the matplotlib Figure; nothing is fitted
here. One style throughout, readable at paper size: 7–8 pt text, the Okabe–Ito colour-blind-safe palette for
categories and viridis for a continuous variable, log–log axes for scaling laws. Conventions shared by all
figures: a solid line is a law where it has data, a dashed line is the same law extrapolated beyond it; a
shaded band is the 95% interval of the *mean* (confidence), dotted lines bound the 95% interval of a *new
run* (prediction); filled markers are fitted points, hollow diamonds are held-out points; a grey dashed
horizontal line is the irreducible loss ``E``.

Fits and allocation: :func:`plot_fit`, :func:`plot_backtest`, :func:`plot_residuals`,
:func:`plot_bootstrap`, :func:`plot_runs`, :func:`plot_allocation`, :func:`plot_exponents`,
:func:`plot_frontier`, :func:`plot_isoflops`, :func:`plot_predictions`. LR and batch size:
:func:`plot_lr_landscape`, :func:`plot_lr_landscapes`, :func:`plot_hparam_law`, :func:`plot_hparam_laws`.
RL: :func:`plot_rl_curves`, :func:`plot_rl_efficiency`.
"""

from scalefit.plots.allocation import (
    plot_allocation,
    plot_exponents,
    plot_frontier,
    plot_isoflops,
    plot_predictions,
)
from scalefit.plots.base import CONFIDENCE_ALPHA, PALETTE, SEQUENTIAL, STYLE, save_and_close
from scalefit.plots.fits import (
    plot_backtest,
    plot_backtest_parity,
    plot_bootstrap,
    plot_fit,
    plot_residuals,
    plot_runs,
)
from scalefit.plots.hparams import plot_hparam_law, plot_hparam_laws, plot_lr_landscape, plot_lr_landscapes
from scalefit.plots.plan import plot_design, plot_design_variance
from scalefit.plots.rl import plot_rl_curves, plot_rl_efficiency
from scalefit.plots.tasks import plot_task_chain, plot_task_step1, plot_task_step2, plot_task_steps

__all__ = ["CONFIDENCE_ALPHA", "PALETTE", "SEQUENTIAL", "STYLE", "plot_allocation", "plot_backtest", "plot_backtest_parity", "plot_bootstrap", "plot_design", "plot_design_variance", "plot_exponents", "plot_fit", "plot_frontier", "plot_hparam_law", "plot_hparam_laws", "plot_isoflops", "plot_lr_landscape", "plot_lr_landscapes", "plot_predictions", "plot_residuals", "plot_rl_curves", "plot_rl_efficiency", "plot_runs", "plot_task_chain", "plot_task_step1", "plot_task_step2", "plot_task_steps", "save_and_close"]
