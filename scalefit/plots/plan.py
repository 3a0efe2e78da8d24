"""Plots of a design from scalefit plan."""

from __future__ import annotations

from scalefit.plots.base import PALETTE, _new_axes, _styled


@_styled
def plot_design(plan, existing=None, ax=None):
    """A plan of :func:`scalefit.plan.design_runs` in the (N, D) plane: runs already made (grey), the proposed
    runs (sized by their FLOPs), the naive grid of equal compute (crosses) and the target (star). Nothing is
    fitted here."""
    import numpy as np

    fig, ax = _new_axes(ax, figsize=(5.4, 3.9))
    if existing is not None and len(existing):
        ax.scatter(existing["params"], existing["tokens"], s=18, color="0.6", label="existing runs", zorder=2)
    runs = plan.runs
    if len(runs):
        size = 30 + 120 * np.sqrt(runs["flops"] / runs["flops"].max())
        ax.scatter(runs["params"], runs["tokens"], s=size, color=PALETTE[0], alpha=0.8, label="proposed", zorder=3)
    if len(plan.naive_runs):
        ax.scatter(plan.naive_runs["params"], plan.naive_runs["tokens"], marker="x", color=PALETTE[1],
                   label="naive grid (same compute)", zorder=3)
    ax.scatter([plan.target[0]], [plan.target[1]], marker="*", s=180, color=PALETTE[3], label="target", zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    low, high = ax.get_xlim()
    grid = np.geomspace(low, high, 2)
    for ratio in (5, 20, 80, 320):
        ax.plot(grid, ratio * grid, color="0.85", lw=0.8, zorder=1)
        ax.annotate(f"D/N={ratio}", (grid[0], ratio * grid[0]), fontsize=7, color="0.5")
    ax.set_xlim(low, high)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("tokens D")
    pct = f"{100 * plan.level:g} %"
    ax.set_title(f"{pct} planning width: {100 * plan.width(plan.after):.3g} % with the plan, "
                 f"{100 * plan.width(plan.naive):.3g} % naive", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return fig


@_styled
def plot_design_variance(plan, ax=None):
    """The planning variance of log L at the target by part (parameters, a new run, extrapolation), now, with
    the plan and with the naive grid: which part more runs can still shrink."""
    fig, ax = _new_axes(ax, figsize=(4.8, 3.4))
    columns = {"now": plan.before, "with plan": plan.after, "naive grid": plan.naive}
    bottom = [0.0] * len(columns)
    for k, part in enumerate(("parameters", "new run", "extrapolation")):
        heights = [parts[part] for parts in columns.values()]
        ax.bar(list(columns), heights, bottom=bottom, color=PALETTE[k], label=part)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_yscale("log")
    ax.set_ylabel("variance of log L at the target")
    ax.legend(fontsize=7)
    return fig
