"""Fitting engine: objective, vectorised multi-start optimiser, bootstrap, and the FitResult they make."""

from scalefit.fitting.engine import fit
from scalefit.fitting.optimiser import OptimiserSettings
from scalefit.fitting.result import FitResult

__all__ = ["FitResult", "OptimiserSettings", "fit"]
