"""scalefit: fit scaling laws from your own training runs, with honest uncertainty.

>>> import scalefit
>>> study = scalefit.fit_runs("data/runs.parquet")      # select points, fit, backtest, allocate
>>> study.result.params, study.result.intervals       # the joint law with bootstrap intervals
>>> scalefit.fit(scalefit.PowerLaw(x="flops"), points)  # any law on any table of points

The names below are imported on first use (PEP 562), so that ``import scalefit.cli`` and ``scalefit --help``
do not pay for scipy, pandas and the fitting engine.
"""

from importlib import import_module

_EXPORTS = {
    "Chinchilla": "scalefit.laws", "Kaplan": "scalefit.laws", "PowerLaw": "scalefit.laws",
    "FitResult": "scalefit.fitting", "fit": "scalefit.fitting",
    "compute_frontier": "scalefit.points", "final_points": "scalefit.points", "load_runs": "scalefit.runs",
    "points": "scalefit.points", "select": "scalefit.points", "tuned_points": "scalefit.points",
    "fit_runs": "scalefit.study", "load_fit": "scalefit.study",
}

__all__ = [
    "Chinchilla", "FitResult", "Kaplan", "PowerLaw", "compute_frontier", "final_points", "fit", "fit_runs",
    "load_fit", "load_runs", "points", "select", "tuned_points",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scalefit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
