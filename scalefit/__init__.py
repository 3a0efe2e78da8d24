"""scalefit: fit scaling laws from your own training runs, with honest uncertainty."""

from scalefit.runs import load_runs

__all__ = ["load_runs"]
__version__ = "0.1.0"
