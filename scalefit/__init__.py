"""scalefit: fit scaling laws from your own training runs, with honest uncertainty.

>>> import scalefit
>>> study = scalefit.fit_runs("data/runs.parquet")      # select points, fit, backtest, allocate
>>> study.result.params, study.result.intervals       # the joint law with bootstrap intervals
>>> scalefit.fit(scalefit.PowerLaw(x="flops"), points)  # any law on any table of points
"""

from scalefit.fitting import FitResult, fit
from scalefit.laws import Chinchilla, Kaplan, PowerLaw
from scalefit.runs import compute_frontier, final_points, load_runs, select, tuned_points
from scalefit.study import fit_runs, load_fit

__all__ = [
    "Chinchilla", "FitResult", "Kaplan", "PowerLaw", "compute_frontier", "final_points", "fit", "fit_runs",
    "load_fit", "load_runs", "select", "tuned_points",
]
__version__ = "0.1.0"
