"""Fitting engine: objective, vectorised multi-start optimiser, bootstrap, and the FitResult they make."""

from scalefit.fitting.engine import fit
from scalefit.fitting.extrapolation import ExtrapolationError, extrapolation_distance
from scalefit.fitting.optimiser import OptimiserSettings
from scalefit.fitting.result import FitResult

__all__ = ["ExtrapolationError", "FitResult", "OptimiserSettings", "extrapolation_distance", "fit"]
