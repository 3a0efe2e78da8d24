"""Plots of learning-rate and batch-size sweeps and laws."""

from __future__ import annotations

from scalefit.plots.base import _LABELS, PALETTE, _grid_axes, _new_axes, _styled, _tidy_log_ticks


@_styled
def plot_lr_landscape(optima, group: str | int = 0, ax=None):
    """Final loss over the LR (× batch-size) grid of one group, with its optimum and plateau marked.

    With several batch sizes: each run is a square in (lr, batch size) coloured by its loss above the
    group's best (percent, clipped at 5%); without: loss against lr. Plateau runs are ringed, excluded
    (diverged) runs drawn as grey crosses, the optimum is a star with its interval.

    Parameters
    ----------
    optima : scalefit.hyperparams.HparamOptima
    group : str or int
        Group label, or position in ``optima.groups``.
    ax : matplotlib Axes, optional
    """
    import numpy as np

    groups = optima.groups
    matches = groups.iloc[[group]] if isinstance(group, int) else groups[groups["group"] == group]
    if matches.empty:
        raise ValueError(f"no group {group!r}; groups are {list(groups['group'])}")
    row = matches.iloc[0]
    label = row["group"]
    runs = optima.runs[optima.runs["group"] == label]
    usable, excluded = runs[~runs["excluded"]], runs[runs["excluded"]]
    plateau = usable[usable["on_plateau"]]
    two_axes = runs["batch_size"].nunique() > 1
    fig, ax = _new_axes(ax, figsize=(5.6, 4.0) if two_axes else (5.0, 3.6))
    if two_axes:
        excess = 100 * (usable["loss"] / row["best_loss"] - 1)
        cells = ax.scatter(usable["lr"], usable["batch_size"], c=np.clip(excess, 0, 5), cmap="viridis_r",
                           marker="s", s=70, vmin=0, vmax=5)
        fig.colorbar(cells, ax=ax, label="loss above best [%] (clipped at 5)")
        ax.scatter(plateau["lr"], plateau["batch_size"], s=150, facecolors="none", edgecolors="black",
                   linewidths=1.2, label=f"plateau (within {100 * optima.tolerance:.2g}%)")
        if len(excluded):
            ax.scatter(excluded["lr"], excluded["batch_size"], marker="x", color="0.6",
                       label=f"excluded ({len(excluded)})")
        xerr = _interval_error(row, "lr")
        yerr = _interval_error(row, "batch_size")
        ax.errorbar([row["opt_lr"]], [row["opt_batch_size"]], xerr=xerr, yerr=yerr, marker="*",
                    markersize=14, color=PALETTE[3], capsize=3, linestyle="none",
                    label=f"optimum ({row['method']})")
        ax.set_yscale("log")
        ax.set_ylabel("batch size [tokens]")
    else:
        ordered = usable.sort_values("lr")
        ax.plot(ordered["lr"], ordered["loss"], marker="o", color=PALETTE[0], label="final loss")
        ax.scatter(plateau["lr"], plateau["loss"], s=120, facecolors="none", edgecolors="black",
                   label=f"plateau (within {100 * optima.tolerance:.2g}%)")
        ax.axvline(row["opt_lr"], color=PALETTE[3], label=f"optimum ({row['method']})")
        if np.isfinite(row["opt_lr_lower"]):
            ax.axvspan(row["opt_lr_lower"], row["opt_lr_upper"], color=PALETTE[3], alpha=0.15)
        ax.set_ylabel("final loss")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    hidden = f"  ({len(excluded)} excluded runs not shown)" if len(excluded) and not two_axes else ""
    ax.set_title(label + hidden, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    _tidy_log_ticks(ax.xaxis)
    if two_axes:
        _tidy_log_ticks(ax.yaxis)
    return fig


def _interval_error(row, axis: str):
    """Asymmetric error bar [[below], [above]] for the optimum's interval, or None."""
    import math

    lower, upper, centre = row[f"opt_{axis}_lower"], row[f"opt_{axis}_upper"], row[f"opt_{axis}"]
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return None
    return [[centre - lower], [upper - centre]]


@_styled
def plot_hparam_law(law, against: str | None = None, ax=None):
    """An LR or batch-size law against one of its variables, with its fitted points and bands.

    For a law in two variables (lr*(N, D)), the other variable is held at the geometric mean of the
    fitted points and each point is moved along the law to it (y · (D_ref / D)^b): a partial-dependence
    view, so points and curve are comparable.

    Parameters
    ----------
    law : scalefit.hyperparams.HparamLaw
    against : str, optional
        ``params``, ``tokens`` or ``flops``; default the law's first variable.
    ax : matplotlib Axes, optional
    """
    import numpy as np

    against = against or law.variables[0]
    if against not in law.variables:
        raise ValueError(f"{law.name} does not depend on {against!r}; choose from {law.variables}")
    exponents = dict(zip(law.variables, law.log_coef[1:], strict=True))
    others = [v for v in law.variables if v != against]
    points = law.points
    reference = {}
    for variable in others:
        if points is not None:
            reference[variable] = float(np.exp(np.log(points[variable]).mean()))
        else:
            low, high = law.ranges[variable]
            reference[variable] = float(np.sqrt(low * high))
    if points is not None:
        span = (points[against].min(), points[against].max())
    else:
        span = law.ranges[against] or (1e8, 1e10)
    grid = np.geomspace(span[0] / 2, span[1] * 2, 100)
    values = {against: grid, **{v: np.full_like(grid, reference[v]) for v in others}}
    fig, ax = _new_axes(ax)
    frame = law.prediction(**values)
    pct = f"{100 * law.level:g}%"
    # Widest band first, so that each narrower band is drawn inside the wider one that contains it.
    for band, alpha, label in (("plan", 0.08, "planning (published scatter)"), ("obs", 0.14, "prediction"),
                               ("mean", 0.3, "confidence")):
        if f"{band}_lo" in frame and np.isfinite(frame[f"{band}_lo"]).all():
            ax.fill_between(grid, frame[f"{band}_lo"], frame[f"{band}_hi"], color=PALETTE[0], alpha=alpha,
                            label=f"{pct} {label}")
    ax.plot(grid, law.predict(**values), color=PALETTE[0], label=law.formula)
    if points is not None:
        adjusted = points[law.target].to_numpy(float)
        for variable in others:
            ratio = reference[variable] / points[variable].to_numpy(float)
            adjusted = adjusted * ratio ** exponents[variable]
        ax.scatter(points[against], adjusted, s=14, color=PALETTE[3], zorder=3,
                   label=f"{law.fitted_on} ({law.n_points} points, {law.n_groups} groups)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_LABELS[against])
    symbols = {"params": "N", "tokens": "D", "flops": "C"}
    held = ", ".join(f"{symbols[v]} = {reference[v]:.3g}" for v in others)
    ax.set_ylabel(_LABELS[law.target] + (f"\nat {held}" if held else ""))
    flag = "" if law.status == "ok" else f" — {law.status.upper()}"
    ax.set_title(f"{law.name} — {law.source}{flag}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    _tidy_log_ticks(ax.xaxis)
    _tidy_log_ticks(ax.yaxis)
    return fig


@_styled
def plot_lr_landscapes(optima, groups=None, ncols: int = 3):
    """The LR (× batch-size) landscape of several groups side by side (:func:`plot_lr_landscape` per panel).

    Parameters
    ----------
    optima : scalefit.hyperparams.HparamOptima
    groups : sequence of str or int, optional
        Group labels or positions; default every group.
    ncols : int
        Panels per row.
    """
    groups = list(range(len(optima.groups))) if groups is None else list(groups)
    fig, axes = _grid_axes(len(groups), ncols, panel=(3.6, 2.9))
    for ax, group in zip(axes, groups, strict=True):
        plot_lr_landscape(optima, group, ax=ax)
    fig.suptitle(f"LR landscapes of {len(groups)} groups ({optima.source})")
    return fig


@_styled
def plot_hparam_laws(laws, ncols: int = 3):
    """Each identified law of a :class:`~scalefit.hyperparams.HparamLaws` against each of its variables, a panel
    each (unidentified laws are not drawn)."""
    pairs = [(law, variable) for law in laws.usable.values() for variable in law.variables]
    fig, axes = _grid_axes(len(pairs), ncols, panel=(3.6, 2.9))
    for ax, (law, variable) in zip(axes, pairs, strict=True):
        plot_hparam_law(law, against=variable, ax=ax)
    fig.suptitle(f"optimal LR and batch size against N, D and C ({laws.source})")
    return fig
