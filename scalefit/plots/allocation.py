"""Plots of compute-optimal allocation: N_opt(C), exponents, frontier, IsoFLOP profiles."""

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
    _plain_loss_axis,
    _pyplot,
    _styled,
)
from scalefit.plots.fits import _extrapolated_line, _require_data

_OPTIMUM_COLUMNS = {"params": "params_opt", "tokens": "tokens_opt"}


_OPTIMUM_LABELS = {"params": "compute-optimal N (non-embedding params)",
                   "tokens": "compute-optimal D (tokens)"}


def _short(approach: str) -> str:
    return approach.split(" (")[0]


def _dense(flops, values, grid):
    """Log–log interpolation of a power-law-like column onto ``grid`` (straight lines on the plot)."""
    import numpy as np

    return np.exp(np.interp(np.log(grid), np.log(flops), np.log(values)))


@_styled
def plot_allocation(allocation=None, approaches=(), ax=None, *, quantity: str = "params", data_range=None):
    """Compute-optimal N_opt(C) (or D_opt(C)) three ways, side by side on log–log axes.

    Approach 3 (the joint law's closed form) is a line with its bootstrap band, solid over ``data_range``
    and dashed beyond; Approaches 1 and 2 are their per-budget optima (markers) and the power laws fitted
    through them (solid over their budgets, dashed beyond). The legend gives each exponent with its 95%
    interval.

    Parameters
    ----------
    allocation : scalefit.allocation.JointLawAllocation, optional
    approaches : sequence of scalefit.allocation.AllocationResult
    ax : matplotlib Axes, optional
    quantity : {"params", "tokens"}
        N_opt or D_opt.
    data_range : (float, float), optional
        The compute (6ND) spanned by the runs; without it Approach 3 is drawn solid throughout.
    """
    import numpy as np

    if quantity not in _OPTIMUM_COLUMNS:
        raise ValueError(f"quantity must be 'params' or 'tokens', not {quantity!r}")
    fig, ax = _new_axes(ax)
    spans = [a.optima["flops"] for a in approaches]
    if allocation is not None:
        spans.append(allocation.table["flops"])
    if not spans:
        raise ValueError("nothing to plot: give a joint-law allocation, approaches, or both")
    grid = np.geomspace(min(s.min() for s in spans), max(s.max() for s in spans), 200)
    if allocation is not None:
        t = allocation.table
        exponent = allocation.params_exponent if quantity == "params" else 1 - allocation.params_exponent
        lo, hi = allocation.params_exponent_interval
        if quantity == "tokens":
            lo, hi = 1 - hi, 1 - lo
        low, high = data_range if data_range is not None else (grid[0], grid[-1])
        _extrapolated_line(ax, grid, _dense(t["flops"], t[quantity], grid), (grid >= low) & (grid <= high),
                           PALETTE[0], label=f"approach 3 (joint law): C^{exponent:.3f} [{lo:.3f}, {hi:.3f}]")
        if t[f"{quantity}_lo"].notna().all():
            ax.fill_between(grid, _dense(t["flops"], t[f"{quantity}_lo"], grid),
                            _dense(t["flops"], t[f"{quantity}_hi"], grid), color=PALETTE[0],
                            alpha=CONFIDENCE_ALPHA, lw=0,
                            label=f"{100 * allocation.level:.0f}% bootstrap band")
    for colour, marker, result in zip(PALETTE[1:], "os^", approaches):
        optima = result.optima
        law = result.params_law if quantity == "params" else result.tokens_law
        lo, hi = law.exponent_interval
        inside = (grid >= optima["flops"].min()) & (grid <= optima["flops"].max())
        _extrapolated_line(ax, grid, law.predict(grid), inside, colour,
                           label=f"{_short(result.approach)}: C^{law.exponent:.3f} [{lo:.3f}, {hi:.3f}]")
        ax.scatter(optima["flops"], optima[_OPTIMUM_COLUMNS[quantity]], color=colour, marker=marker, s=20,
                   zorder=3, edgecolors="white", linewidths=0.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("C = 6ND (training FLOPs)")
    ax.set_ylabel(_OPTIMUM_LABELS[quantity])
    ax.set_title(f"{_OPTIMUM_LABELS[quantity]} (dashed: beyond the data)")
    ax.legend(loc="upper left")
    return fig


@_styled
def plot_exponents(allocation=None, approaches=(), ax=None):
    """The exponents a (N_opt ∝ C^a) and b (D_opt ∝ C^b) of each approach with their 95% intervals.

    Hoffmann et al. (2022) found a ≈ b ≈ 0.5 (dotted line); agreement between approaches is evidence that
    the allocation does not hinge on one method's assumptions.

    Parameters
    ----------
    allocation : scalefit.allocation.JointLawAllocation, optional
    approaches : sequence of scalefit.allocation.AllocationResult
    ax : matplotlib Axes, optional
    """
    rows = []
    for result in approaches:
        rows.append((_short(result.approach), result.params_law.exponent, result.params_law.exponent_interval,
                     result.tokens_law.exponent, result.tokens_law.exponent_interval))
    if allocation is not None:
        a, (lo, hi) = allocation.params_exponent, allocation.params_exponent_interval
        rows.append(("approach 3", a, (lo, hi), 1 - a, (1 - hi, 1 - lo)))
    if not rows:
        raise ValueError("nothing to plot: give a joint-law allocation, approaches, or both")
    fig, ax = _new_axes(ax, figsize=(4.0, 0.6 + 0.5 * len(rows)))
    for k, (_, a, a_int, b, b_int) in enumerate(rows):
        for offset, value, (lo, hi), marker, colour, label in (
                (-0.12, a, a_int, "o", PALETTE[0], "a: N_opt ∝ C^a"),
                (0.12, b, b_int, "s", PALETTE[3], "b: D_opt ∝ C^b")):
            ax.errorbar([value], [k + offset], xerr=[[value - lo], [hi - value]], marker=marker, color=colour,
                        capsize=3, ls="none", markersize=5, label=label if k == 0 else None)
    ax.axvline(0.5, color="0.5", ls=":", lw=0.8)
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("exponent of C (95% interval)")
    ax.set_title("allocation exponents, approach by approach")
    ax.legend(loc="best")
    return fig


@_styled
def plot_frontier(allocation=None, approaches=(), *, data_range=None):
    """Three panels: N_opt(C), D_opt(C) (:func:`plot_allocation`) and the exponents (:func:`plot_exponents`).

    Parameters
    ----------
    allocation : scalefit.allocation.JointLawAllocation, optional
    approaches : sequence of scalefit.allocation.AllocationResult
    data_range : (float, float), optional
        The compute spanned by the runs (Approach 3 is dashed beyond it).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.8), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1.2, 1.2, 0.9]})
    plot_allocation(allocation, approaches, axes[0], quantity="params", data_range=data_range)
    plot_allocation(allocation, approaches, axes[1], quantity="tokens", data_range=data_range)
    plot_exponents(allocation, approaches, axes[2])
    return fig


@_styled
def plot_isoflops(approach, ax=None):
    """IsoFLOP profiles (Approach 2): final loss against N at each compute budget, the parabola Approach 2
    fitted to it, and its minimum N_opt(C) (star). Nothing is fitted here: the parabolas are the ones
    stored in ``approach.optima``.

    Runs in each parabola's window are filled, the rest of a profile hollow; budgets Approach 2 excluded
    (their lowest loss at an edge, not convex, minimum outside the sizes trained) are hollow, without a
    parabola.

    Parameters
    ----------
    approach : scalefit.allocation.AllocationResult
        The result of :func:`~scalefit.allocation.approach2` (it keeps its ``profiles`` and parabolas).
    ax : matplotlib Axes, optional
    """
    import numpy as np

    if approach.profiles is None:
        raise ValueError(f"{approach.approach} has no IsoFLOP profiles to draw; give approach2's result")
    fig, ax = _new_axes(ax, figsize=(5.6, 3.8))
    profiles, optima = approach.profiles, approach.optima
    norm = _log_norm(profiles["budget"].to_numpy(float))
    cmap = _cmap()
    for budget, members in profiles.groupby("budget"):
        colour = cmap(norm(budget))
        used = members["used"].to_numpy(bool)
        ax.scatter(members["params"][~used], members["loss"][~used], s=18, facecolors="none",
                   edgecolors=colour, linewidths=1.0)
        ax.scatter(members["params"][used], members["loss"][used], s=18, color=colour, edgecolors="white",
                   linewidths=0.4, zorder=3)
        match = optima[np.isclose(optima["flops"], budget)]
        if match.empty:
            continue
        row = match.iloc[0]
        grid = np.linspace(np.log(row["params_min"]), np.log(row["params_max"]), 100)
        ax.plot(np.exp(grid), np.polyval([row["curvature"], row["slope"], row["intercept"]], grid), color=colour)
        ax.plot(row["params_opt"], row["loss_opt"], marker="*", markersize=12, color=colour,
                markeredgecolor="black", markeredgewidth=0.6, ls="none", zorder=4)
    _colourbar(fig, ax, norm, f"C = {approach.convention} (training FLOPs)")
    ax.set_xscale("log")
    ax.set_xlabel(_LABELS["params"])
    ax.set_ylabel("final loss [nats/token]")
    ax.set_title(f"IsoFLOP profiles: {len(optima)} budgets with a parabola and its minimum (star); "
                 "hollow: not in a parabola's window")
    return fig


@_styled
def plot_predictions(result, targets, ax=None):
    """Extrapolation: the data and the predicted loss of planned runs against compute, with intervals.

    Each target is a star with a thick bar (interval of the mean) and a thin one (interval of a new run).
    For a law with a closed-form allocation (Chinchilla) the compute-optimal loss L(N_opt(C), D_opt(C)) is
    drawn with the band of its mean, solid over the data's compute and dashed beyond.

    Parameters
    ----------
    result : scalefit.fitting.FitResult
        A fit of a joint law in ``params`` and ``tokens``.
    targets : pandas.DataFrame
        ``params``, ``tokens``, ``loss`` and the intervals ``mean_lo``, ``mean_hi``, ``run_lo``, ``run_hi``
        (as ``scalefit predict`` prints them).
    ax : matplotlib Axes, optional
    """
    import numpy as np
    import pandas as pd

    if set(result.law.inputs) != {"params", "tokens"}:
        raise ValueError(f"plot_predictions needs a law in params and tokens, not {result.law!r}")
    _require_data(result)
    fig, ax = _new_axes(ax, figsize=(5.6, 3.8))
    data = result.data
    compute = training_flops(data["params"], data["tokens"])
    target_compute = training_flops(targets["params"], targets["tokens"])
    norm = _log_norm(pd.concat([data["params"], targets["params"]]))
    cmap = _cmap()
    ax.scatter(compute, data["loss"], c=cmap(norm(data["params"])), s=14, edgecolors="white", linewidths=0.4,
               zorder=3, label=f"fitted ({len(data)})")
    if hasattr(result.law, "optimal_allocation"):
        grid = np.geomspace(compute.min(), 2 * max(compute.max(), target_compute.max()), 200)
        optimal = result.law.optimal_allocation(result.params, grid)
        has_draws = len(result.draws) and result.draws["converged"].any()
        band = result.predict(optimal[["params", "tokens"]], interval="confidence" if has_draws else None,
                              level=result.level)
        inside = grid <= compute.max()
        _extrapolated_line(ax, grid, band["mean"].to_numpy(), inside, PALETTE[0],
                           label="compute-optimal loss")
        if has_draws:
            ax.fill_between(grid, band["lo"], band["hi"], color=PALETTE[0], alpha=CONFIDENCE_ALPHA, lw=0)
    for c, row in zip(target_compute, targets.itertuples(index=False), strict=True):
        colour = cmap(norm(row.params))
        for lo, hi, width in ((row.run_lo, row.run_hi, 0.9), (row.mean_lo, row.mean_hi, 3.0)):
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([c, c], [lo, hi], color=colour, lw=width, solid_capstyle="butt")
        ax.plot(c, row.loss, marker="*", markersize=11, color=colour, markeredgecolor="black",
                markeredgewidth=0.6)
        ax.annotate(f"N={row.params:.3g}\nD={row.tokens:.3g}", (c, row.loss), textcoords="offset points",
                    xytext=(6, 4), fontsize=6)
    if "E" in result.params.index:
        ax.axhline(result.params["E"], color="0.4", ls="--", lw=0.9, label=f"E = {result.params['E']:.3g}")
    _colourbar(fig, ax, norm, _LABELS["params"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_loss_axis(ax)
    ax.set_xlabel("C = 6ND (training FLOPs)")
    ax.set_ylabel("loss [nats/token]")
    pct = f"{100 * result.level:.0f}%"
    ax.set_title(f"predicted loss of {len(targets)} planned runs (stars; thick: {pct} interval of the mean, "
                 "thin: of a run)")
    ax.legend(loc="upper right")
    return fig
