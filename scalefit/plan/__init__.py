"""What to train next: can a table identify its law (:func:`check_identifiability`), which runs narrow the
planning interval at a target most (:func:`design_runs`), and the sweep that trains them (:func:`sweep_toml`)."""

from scalefit.plan.design import DesignPlan, design_runs, naive_grid, prior_draws
from scalefit.plan.identify import Identifiability, check_identifiability
from scalefit.plan.sweep_config import cost_table, runner_shape, sweep_toml

__all__ = ["DesignPlan", "Identifiability", "check_identifiability", "cost_table", "design_runs", "naive_grid",
           "prior_draws", "runner_shape", "sweep_toml"]
