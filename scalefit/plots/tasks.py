"""Plots of task scaling: step 1 (loss law), step 2 (sigmoid) and the chained curve."""

from __future__ import annotations

from scalefit.flops import training_flops
from scalefit.plots.base import (
    _LABELS,
    CONFIDENCE_ALPHA,
    PALETTE,
    _cmap,
    _colourbar,
    _log_norm,
    _new_axes,
    _pyplot,
    _styled,
)


# -- task scaling (scalefit.tasks) -------------------------------------------------------------------------
def _task_points(result, task):
    points = result.points[result.points["task"] == task]
    return points, _log_norm(points["params"]), _cmap()


@_styled
def plot_task_step1(result, task: str, ax=None):
    """Step 1 of a task: the intermediate against tokens, one colour per model size, with the fitted law.

    Parameters
    ----------
    result : scalefit.tasks.TaskScalingResult
    task : str
    ax : matplotlib Axes, optional
    """
    import numpy as np
    import pandas as pd

    fig, ax = _new_axes(ax)
    points, norm, cmap = _task_points(result, task)
    share = result.settings.get("min_fraction", 0.0)
    for size, run in points.groupby("params"):
        colour = cmap(norm(size))
        fitted = run["tokens"] >= share * run.groupby("run_id")["tokens"].transform("max")
        ax.scatter(run.loc[fitted, "tokens"], run.loc[fitted, "intermediate"], color=colour, s=10, zorder=3)
        ax.scatter(run.loc[~fitted, "tokens"], run.loc[~fitted, "intermediate"], facecolors="none",
                   edgecolors=colour, s=10, linewidths=0.6, zorder=3)
        used = run.loc[fitted, "tokens"]
        if len(used):
            grid = pd.DataFrame({"params": size, "tokens": np.geomspace(used.min(), used.max(), 60)})
            ax.plot(grid["tokens"], result.intermediate_at(task, grid)[0], color=colour, lw=1.2)
    _colourbar(fig, ax, norm, _LABELS["params"])
    ax.set_xscale("log")
    ax.set_xlabel("D (tokens)")
    ax.set_ylabel(f"intermediate: {result.intermediate}")
    ax.set_title(f"{task}: step 1 ({result.step1_law}; hollow: before {100 * share:g} % of a run, not fitted)")
    return fig


@_styled
def plot_task_step2(result, task: str, ax=None):
    """Step 2 of a task: accuracy against the intermediate on every checkpoint, the fitted sigmoid with the
    band of its mean (bootstrap draws), and the chance floor."""
    import numpy as np

    fig, ax = _new_axes(ax)
    points, norm, cmap = _task_points(result, task)
    ax.scatter(points["intermediate"], points["acc"], c=cmap(norm(points["params"])), s=10, zorder=3)
    finite = points["intermediate"].dropna()
    reach = min(finite.min(), float(np.nanmin(result.intermediate_at(task, result.targets))))
    span = finite.max() - reach
    grid = np.linspace(reach - 0.05 * span, finite.max() + 0.05 * span, 200)
    ax.plot(grid, result.accuracy_at(task, grid)[0], color=PALETTE[0], lw=1.5, label="sigmoid")
    draws = result.accuracy_at(task, grid, draws=True)
    if len(draws):
        lo, hi = np.nanquantile(draws, [(1 - result.level) / 2, (1 + result.level) / 2], axis=0)
        ax.fill_between(grid, lo, hi, color=PALETTE[0], alpha=CONFIDENCE_ALPHA, lw=0,
                        label=f"{100 * result.level:.0f}% band of the mean")
    ax.axhline(result.tasks.loc[task, "chance"], color="0.4", ls="--", lw=0.9, label="chance")
    _colourbar(fig, ax, norm, _LABELS["params"])
    ax.invert_xaxis()
    ax.set_xlabel(f"intermediate: {result.intermediate} (falls to the right)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{task}: step 2 (accuracy from the intermediate)")
    ax.legend(loc="upper left")
    return fig


@_styled
def plot_task_chain(result, task: str, ax=None):
    """The chained prediction against compute: final accuracy of each run, the chained curve from the
    smallest run to the largest target (N and D interpolated log-linearly), and the targets' intervals."""
    import numpy as np
    import pandas as pd

    fig, ax = _new_axes(ax)
    points, norm, cmap = _task_points(result, task)
    finals = points.sort_values("tokens").groupby("run_id").tail(1)
    ax.scatter(finals["flops"], finals["acc"], c=cmap(norm(finals["params"])), s=24, zorder=3,
               edgecolors="white", linewidths=0.4, label="final accuracy of each run")
    start = finals.loc[finals["flops"].idxmin()]
    target = result.targets.loc[result.targets["flops"].idxmax()]
    share = np.linspace(0.0, 1.0, 80)
    path = pd.DataFrame({"params": np.exp(np.log(start["params"]) * (1 - share) + np.log(target["params"]) * share),
                         "tokens": np.exp(np.log(start["tokens"]) * (1 - share) + np.log(target["tokens"]) * share)})
    flops = training_flops(path["params"], path["tokens"])
    ax.plot(flops, result.accuracy_at(task, result.intermediate_at(task, path))[0], color=PALETTE[0], lw=1.5,
            label="chained curve")
    frame = result.prediction().xs((task, "two-step"), level=("task", "method"))
    for row, target_flops in zip(frame.itertuples(), result.targets["flops"], strict=True):
        colour = PALETTE[3] if not row.predictable else PALETTE[2]
        ax.plot([target_flops] * 2, [row.obs_lo, row.obs_hi], color=colour, lw=0.9)
        ax.plot([target_flops] * 2, [row.mean_lo, row.mean_hi], color=colour, lw=3.0)
        ax.plot(target_flops, row.mean, marker="*", markersize=11, color=colour, markeredgecolor="black",
                markeredgewidth=0.6)
    ax.axhline(result.tasks.loc[task, "chance"], color="0.4", ls="--", lw=0.9, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("C = 6ND (training FLOPs)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{task}: chained prediction (green: predictable, red: not; {100 * result.level:.0f}%)")
    ax.legend(loc="upper left")
    return fig


def plot_task_steps(result, task: str):
    """Step 1, step 2 and the chained curve of one task side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15.0, 3.8), constrained_layout=True)
    plot_task_step1(result, task, ax=axes[0])
    plot_task_step2(result, task, ax=axes[1])
    plot_task_chain(result, task, ax=axes[2])
    return fig
