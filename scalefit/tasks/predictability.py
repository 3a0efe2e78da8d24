"""Is a task predictable at this ladder? Checkpoint noise, a backtest on the largest size, interval width.

After Bhagia et al. (2024, arXiv:2412.04403, §5): tasks whose metrics jump between neighbouring checkpoints
are the ones the ladder predicts badly. Three checks, each a reason when it fails:

- **noise**: the standard deviation of the accuracy over the last ``k`` checkpoints of each run (the paper's
  variance analysis), median over runs, relative to the range of the runs' final accuracies (the signal the
  ladder has to extrapolate); above ``max_relative_noise`` the ladder cannot see the trend through the noise;
- **backtest**: fit both steps on every size but the largest and predict the largest's final accuracy;
  it fails when the error exceeds ``max_backtest_error`` or the actual value falls outside the prediction
  interval for one run;
- **width**: the interval of the predicted mean is wider than ``max_width`` (accuracy points / 100), or
  cannot be read at all (the engine's ``interval_issue``: e.g. a bootstrap over too few runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Thresholds:
    """When a task is called not predictable at this ladder (accuracies as fractions)."""

    max_width: float = 0.10
    max_backtest_error: float = 0.05
    max_relative_noise: float = 0.5
    last_k: int = 5


def checkpoint_noise(points: pd.DataFrame, metric: str = "acc", last_k: int = 5) -> tuple[float, float]:
    """``(noise, relative)``: the median over runs of the std of ``metric`` over each run's last ``last_k``
    checkpoints (by tokens), and that divided by the range of the runs' final values (inf when the finals
    are all equal; NaN when no run has two checkpoints)."""
    ordered = points[points[metric].notna()].sort_values(["run_id", "tokens"])
    tails = ordered.groupby("run_id")[metric].apply(lambda v: v.tail(last_k).std(ddof=1) if len(v) > 1 else np.nan)
    noise = float(np.nanmedian(tails)) if tails.notna().any() else float("nan")
    finals = ordered.groupby("run_id")[metric].last()
    spread = float(finals.max() - finals.min())
    relative = noise / spread if spread > 0 else (float("inf") if np.isfinite(noise) else float("nan"))
    return noise, relative


def verdict(width: float, relative_noise: float, backtest: dict | None, thresholds: Thresholds,
            interval_issue: str | None = None) -> list[str]:
    """The reasons a prediction is not trustworthy at this ladder (empty: predictable).

    ``interval_issue`` is the engine's reason why a step's bootstrap cannot give an interval (e.g. too few
    runs for enough distinct resamples); the width is then not judged, the interval itself is the problem.
    A backtest without an interval (NaN ``obs_lo``/``obs_hi``) is judged by its error alone.
    """
    reasons = []
    if interval_issue:
        reasons.append(f"no trustworthy interval ({interval_issue.split(':')[0]})")
    elif not np.isfinite(width):
        reasons.append("no interval (the bootstrap refits did not converge)")
    elif width > thresholds.max_width:
        reasons.append(f"interval {100 * width:.1f} points wide (> {100 * thresholds.max_width:g})")
    if np.isfinite(relative_noise) and relative_noise > thresholds.max_relative_noise:
        reasons.append(f"checkpoint noise {relative_noise:.2f} of the signal (> {thresholds.max_relative_noise:g})")
    if backtest is None:
        reasons.append("no backtest (needs at least 3 model sizes)")
    elif "error" in backtest and not np.isfinite(backtest.get("predicted", np.nan)):
        reasons.append(f"backtest could not be fitted ({backtest['error']})")
    else:
        miss = abs(backtest["predicted"] - backtest["actual"])
        if miss > thresholds.max_backtest_error:
            reasons.append(f"backtest missed the largest size by {100 * miss:.1f} points "
                           f"(> {100 * thresholds.max_backtest_error:g})")
        elif (np.isfinite(backtest["obs_lo"]) and np.isfinite(backtest["obs_hi"])
              and not backtest["obs_lo"] <= backtest["actual"] <= backtest["obs_hi"]):
            reasons.append("backtest: the largest size's accuracy lies outside its prediction interval")
    return reasons
