"""Task scaling: predict downstream accuracy of a large run from a ladder of small ones.

The two-step method of Bhagia et al. (2024), "Establishing Task Scaling Laws via Compute-Efficient Model
Ladders" (arXiv:2412.04403): a loss law from (N, D) to a task loss, a sigmoid from the task loss to the
accuracy, chained with a bootstrap over runs; plus per-task predictability (checkpoint noise, a backtest on
the largest size, interval width).
"""

from scalefit.tasks.analysis import INTERMEDIATES, fit_task_scaling, targets_frame
from scalefit.tasks.predictability import Thresholds
from scalefit.tasks.result import TaskScalingResult
from scalefit.tasks.table import load_task_table, to_wide, validate

__all__ = ["INTERMEDIATES", "TaskScalingResult", "Thresholds", "fit_task_scaling", "load_task_table",
           "targets_frame", "to_wide", "validate"]
