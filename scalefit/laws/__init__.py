"""Scaling laws as small declarative objects: parameter names, bounds, start grid, log-space prediction.

Adding a law is one subclass of :class:`Law` in its own file; the fitting engine needs no change.
"""

from scalefit.laws.base import Law, Parameter
from scalefit.laws.chinchilla import Chinchilla
from scalefit.laws.hparam import HPARAM_LAWS, HparamPowerLaw
from scalefit.laws.kaplan import Kaplan
from scalefit.laws.power import PowerLaw
from scalefit.laws.rl_efficiency import RLEfficiency

__all__ = ["HPARAM_LAWS", "Chinchilla", "HparamPowerLaw", "Kaplan", "Law", "Parameter", "PowerLaw", "RLEfficiency"]
