"""All plotting lives here; this is the only module that imports matplotlib, and it does so lazily.

Every function takes a result (and optionally an ``ax``) and returns the matplotlib Figure; nothing is fitted
here. One style throughout, readable at paper size: 7–8 pt text, the Okabe–Ito colour-blind-safe palette for
categories and viridis for a continuous variable, log–log axes for scaling laws. Conventions shared by all
figures: a solid line is a law where it has data, a dashed line is the same law extrapolated beyond it; a
shaded band is the 95% interval of the *mean* (confidence), dotted lines bound the 95% interval of a *new
run* (prediction); filled markers are fitted points, hollow diamonds are held-out points; a grey dashed
horizontal line is the irreducible loss ``E``.

Fits and allocation: :func:`plot_fit`, :func:`plot_backtest`, :func:`plot_residuals`,
:func:`plot_bootstrap`, :func:`plot_runs`, :func:`plot_allocation`, :func:`plot_exponents`,
:func:`plot_frontier`, :func:`plot_isoflops`, :func:`plot_predictions`. LR and batch size:
:func:`plot_lr_landscape`, :func:`plot_lr_landscapes`, :func:`plot_hparam_law`, :func:`plot_hparam_laws`.
RL: :func:`plot_rl_curves`, :func:`plot_rl_efficiency`.
"""

from __future__ import annotations

import functools

# Okabe-Ito: a colour-blind-safe palette.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: Continuous variables (model size, token budget, compute): perceptually uniform and colour-blind-safe.
SEQUENTIAL = "viridis"
#: rcParams every figure is drawn under (the user's own rcParams are left untouched).
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.2,
    "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False,
}
CONFIDENCE_ALPHA = 0.35  # opacity of the band of the mean

_LABELS = {
    "params": "N (non-embedding parameters)",
    "tokens": "D (training tokens)",
    "flops": "C (training FLOPs)",
    "lr": "optimal peak LR",
    "batch_size": "optimal batch size [tokens]",
    "fitted": "fitted loss L̂",
}
_PARAM_LABELS = {"alpha": "α", "beta": "β", "alpha_N": "α_N", "alpha_D": "α_D"}


def _styled(plot):
    """Run a plotting function under :data:`STYLE` and the palette as the colour cycle."""

    @functools.wraps(plot)
    def styled(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({**STYLE, "axes.prop_cycle": matplotlib.cycler(color=PALETTE)}):
            figure = plot(*args, **kwargs)
            interactive = matplotlib.is_interactive()
        # A backend loaded inside the context (Jupyter's inline one turns interactive mode on, so that figures
        # show) must keep what it set: leaving the context restores every rcParam.
        matplotlib.interactive(interactive)
        return figure

    return styled


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _new_axes(ax=None, figsize=(5.0, 3.6)):
    """Return (fig, ax): the given axes' figure, or a new figure at paper size."""
    if ax is not None:
        return ax.figure, ax
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return fig, ax


def _grid_axes(n_panels: int, ncols: int = 3, panel=(3.4, 2.8)):
    """A figure with ``n_panels`` axes on a grid of ``ncols`` columns (unused cells hidden); (fig, axes)."""
    plt = _pyplot()
    ncols = max(1, min(ncols, n_panels))
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             constrained_layout=True, squeeze=False)
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes[:n_panels])


def _log_norm(values):
    """A log colour scale spanning ``values`` (widened a little when they are all equal)."""
    import numpy as np
    from matplotlib.colors import LogNorm

    low, high = float(np.min(values)), float(np.max(values))
    return LogNorm(low / 1.5, high * 1.5) if low == high else LogNorm(low, high)


def _cmap():
    """The sequential map without its palest yellow, which vanishes on white."""
    import matplotlib
    import numpy as np
    from matplotlib.colors import ListedColormap

    return ListedColormap(matplotlib.colormaps[SEQUENTIAL](np.linspace(0.0, 0.88, 256)))


def _colourbar(fig, ax, norm, label: str) -> None:
    import matplotlib.cm

    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=_cmap()), ax=ax, label=label)


def _tidy_log_ticks(axis) -> None:
    """On a log axis spanning under 3 decades, label 1, 2 and 5 of each decade and leave minor ticks bare,
    rather than matplotlib's crowded minor labels."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = sorted(axis.get_view_interval())
    if low > 0 and math.log10(high / low) < 3:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())


def _plain_loss_axis(ax) -> None:
    """Loss on a log axis, labelled 1.5, 2, 3 rather than 2×10⁰."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    major = ScalarFormatter()
    major.set_scientific(False)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(major)
    ax.yaxis.set_minor_formatter(NullFormatter())


# --- LR and batch-size laws (scalefit.hyperparams) ---------------------------------------------------


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


def save_and_close(figure, path, dpi: int = 120) -> None:
    """Save a figure to ``path`` and release it (so that many plots do not pile up in pyplot)."""
    figure.savefig(path, dpi=dpi)
    _pyplot().close(figure)


# --- fitted laws (scalefit.fitting.FitResult) --------------------------------------------------------


def _value_groups(values, n_groups: int):
    """Group labels for a positive variable: values within 0.05 decades of a neighbour share a group (runs
    of different batch sizes end a few tokens apart); log-spaced quantile bins when that leaves too many."""
    import numpy as np
    import pandas as pd

    logs = np.log10(values.to_numpy(float))
    order = np.argsort(logs, kind="stable")
    labels = np.empty(len(logs), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(np.diff(logs[order]) > 0.05)])
    if labels.max() + 1 > n_groups:
        labels = pd.qcut(logs, n_groups, labels=False, duplicates="drop")
    return pd.Series(labels, index=values.index)


def _require_data(result) -> None:
    if result.data.empty:
        raise ValueError("this fit carries no data points (it was read from a fit.json); plot the fit that "
                         "fit_runs or fit returned instead")


def _law_frame(against: str, grid, other: str | None, value: float | None):
    """Inputs for a curve along ``against``, the other input held at ``value`` (C = 6ND sets D from N)."""
    import pandas as pd

    if against == "flops" and other == "params":
        return pd.DataFrame({"params": value, "tokens": grid / (6.0 * value)})
    frame = pd.DataFrame({against: grid})
    if other is not None:
        frame[other] = value
    return frame


def _extrapolated_line(ax, x, y, inside, colour, label: str | None = None) -> None:
    """Draw ``y(x)`` dashed everywhere and solid where ``inside``: solid is data, dashed is extrapolation."""
    import numpy as np

    ax.plot(x, y, color=colour, ls="--", lw=1.0, label=None if inside.any() else label)
    if inside.any():
        ax.plot(x, np.where(inside, y, np.nan), color=colour, lw=1.5, label=label)


def _draw_fit(ax, result, against, interval, heldout, extend, n_groups):
    """Points, curves, bands and asymptote of :func:`plot_fit` on ``ax``; returns (colour norm, the colour
    variable), both None for a law in one variable."""
    import numpy as np
    import pandas as pd

    law = result.law
    joint = set(law.inputs) == {"params", "tokens"}
    against = against or law.inputs[-1]
    allowed = (*law.inputs, "flops") if joint else law.inputs
    if against not in allowed:
        raise ValueError(f"against must be one of {allowed} for the {law.name} law, not {against!r}")
    if interval not in ("both", "confidence", "prediction", None):
        raise ValueError(f"interval must be 'both', 'confidence', 'prediction' or None, not {interval!r}")
    _require_data(result)
    other = None
    if joint:
        other = "tokens" if against == "params" else "params"
    points = result.data.assign(held=False)
    if heldout is not None:
        held = heldout.rename(columns={"actual": "loss"})[[*law.inputs, "loss"]].assign(held=True)
        points = pd.concat([points, held], ignore_index=True)
    if joint:
        points["flops"] = 6.0 * points["params"] * points["tokens"]
    converged = len(result.draws) and result.draws["converged"].any()
    kinds = ()
    if converged and interval is not None:
        kinds = ("prediction", "confidence") if interval == "both" else (interval,)
    end = points[against].max() * extend
    norm = _log_norm(points[other]) if other else None
    groups = _value_groups(points[other], n_groups) if other else pd.Series(0, index=points.index)
    cmap = _cmap()
    for _, members in points.groupby(groups):
        # Each curve runs from just below its own points to beyond all of them: extrapolation ahead is shown.
        grid = np.geomspace(members[against].min() / 1.25, end, 120)
        value = float(np.exp(np.log(members[other]).mean())) if other else None
        colour = cmap(norm(value)) if other else PALETTE[0]
        frame = _law_frame(against, grid, other, value)
        for kind in kinds:
            band = result.predict(frame, interval=kind, level=result.level)
            if kind == "confidence":
                ax.fill_between(grid, band["lo"], band["hi"], color=colour, lw=0, alpha=CONFIDENCE_ALPHA)
            else:  # edges only: filled, the bands of neighbouring curves would hide each other
                for edge in (band["lo"], band["hi"]):
                    ax.plot(grid, edge, color=colour, ls=":", lw=0.8)
        fitted_x = members.loc[~members["held"], against]
        inside = (grid >= fitted_x.min()) & (grid <= fitted_x.max()) if len(fitted_x) else grid < 0
        _extrapolated_line(ax, grid, result.predict(frame, interval=None)["mean"].to_numpy(), inside, colour)
    fitted, held = points[~points["held"]], points[points["held"]]
    colours = cmap(norm(fitted[other])) if other else PALETTE[0]
    ax.scatter(fitted[against], fitted["loss"], c=colours, s=16, edgecolors="white", linewidths=0.4, zorder=3)
    if len(held):
        ax.scatter(held[against], held["loss"], marker="D", s=34, facecolors="none", linewidths=1.3, zorder=4,
                   edgecolors=cmap(norm(held[other])) if other else PALETTE[3])
    if "E" in result.params.index:
        ax.axhline(result.params["E"], color="0.4", ls="--", lw=0.9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("C = 6ND (training FLOPs)" if against == "flops" else _LABELS.get(against, against))
    _plain_loss_axis(ax)
    ax.set_ylabel("loss [nats/token]")
    ax.legend(handles=_fit_legend(result, kinds, len(fitted), len(held)), loc="upper center", ncol=3,
              bbox_to_anchor=(0.5, -0.16))
    return norm, other


def _fit_legend(result, kinds, n_fitted: int, n_held: int) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    pct = f"{100 * result.level:.0f}%"
    handles = [Line2D([], [], color="0.2", lw=1.5, label="law (within the data)"),
               Line2D([], [], color="0.2", lw=1.0, ls="--", label="law extrapolated")]
    if "confidence" in kinds:
        handles.append(Patch(color="0.2", alpha=CONFIDENCE_ALPHA, lw=0, label=f"{pct} interval of the mean"))
    if "prediction" in kinds:
        handles.append(Line2D([], [], color="0.2", ls=":", lw=0.8, label=f"{pct} interval of a new run"))
    handles.append(Line2D([], [], marker="o", color="0.3", ls="none", markersize=4,
                          label=f"fitted ({n_fitted})"))
    if n_held:
        handles.append(Line2D([], [], marker="D", markerfacecolor="none", color="0.3", ls="none",
                              markersize=5, label=f"held out ({n_held})"))
    if "E" in result.params.index:
        handles.append(Line2D([], [], color="0.4", ls="--", lw=0.9, label=f"E = {result.params['E']:.3g}"))
    return handles


@_styled
def plot_fit(result, ax=None, *, against: str | None = None, interval: str | None = "both", heldout=None,
             extend: float = 1.5, n_groups: int = 6):
    """Observed losses and the fitted law on log–log axes, with its bootstrap bands.

    A joint law L(N, D) is drawn against one variable (``against``: ``tokens``, ``params`` or ``flops`` =
    6ND) with the data coloured by the other, and one curve per value of the other (model sizes, or token
    budgets; binned into at most ``n_groups`` log-spaced groups, each curve at its group's geometric mean).
    Curves are solid over the data of their group and dashed beyond it; E is the grey dashed asymptote.

    Parameters
    ----------
    result : scalefit.fitting.FitResult
    ax : matplotlib Axes, optional
    against : str, optional
        The x variable; default the law's last input (D for a joint law).
    interval : {"both", "confidence", "prediction", None}
        The mean's interval (shaded), a new run's (dotted edges), both (default) or none. Skipped when the
        fit has no bootstrap draws.
    heldout : pandas.DataFrame, optional
        Points not fitted (the law's inputs and ``loss`` or ``actual``), drawn as hollow diamonds; the
        curves extend to them, dashed.
    extend : float
        Draw each curve from just below its points to this factor beyond the largest x (dashed outside
        its points).
    n_groups : int
        Most curves drawn for a joint law.
    """
    fig, ax = _new_axes(ax, figsize=(5.6, 3.8))
    norm, other = _draw_fit(ax, result, against, interval, heldout, extend, n_groups)
    if norm is not None:
        _colourbar(fig, ax, norm, _LABELS[other])
    ax.set_title(f"{result.law!r}: {result.n_points} points, intervals {result.interval_method}")
    return fig


@_styled
def plot_backtest(backtest, ax=None, *, against: str | None = None, interval: str | None = "both"):
    """A backtest: the law fitted without the largest sizes, extrapolated (dashed) to the held-out runs.

    Parameters
    ----------
    backtest : scalefit.backtest.Backtest
    ax : matplotlib Axes, optional
    against, interval
        As :func:`plot_fit`.
    """
    fig, ax = _new_axes(ax, figsize=(5.6, 3.8))
    norm, other = _draw_fit(ax, backtest.fit, against, interval, backtest.predictions, 1.5, 6)
    if norm is not None:
        _colourbar(fig, ax, norm, _LABELS[other])
    ax.set_title(f"backtest: fitted without the largest {backtest.holdout_largest} size(s); held-out "
                 f"|rel. error| mean {backtest.mean_abs_rel_error:.2%}, max {backtest.max_abs_rel_error:.2%}")
    return fig


@_styled
def plot_residuals(result, ax=None, *, against: str | None = None):
    """Log residuals ``log L − log L̂`` against each input of the law and against the fitted loss.

    Dotted lines mark ±2 root-mean-square residuals. With ``ax`` (or ``against``) one panel is drawn,
    against ``against`` (default the fitted loss).

    Parameters
    ----------
    result : scalefit.fitting.FitResult
    ax : matplotlib Axes, optional
    against : str, optional
        One of the law's inputs or ``"fitted"``.
    """
    import numpy as np

    _require_data(result)
    names = [*result.law.inputs, "fitted"] if ax is None and against is None else [against or "fitted"]
    if ax is None:
        plt = _pyplot()
        fig, axes = plt.subplots(1, len(names), figsize=(2.7 * len(names), 2.7), sharey=True,
                                 constrained_layout=True, squeeze=False)
        axes = list(axes[0])
    else:
        fig, axes = ax.figure, [ax]
    residuals = result.residuals.to_numpy(float)
    spread = 2 * float(np.sqrt(np.mean(residuals**2)))
    for panel, name in zip(axes, names, strict=True):
        if name == "fitted":
            x = np.exp(np.log(result.data["loss"].to_numpy(float)) - residuals)
        elif name in result.law.inputs:
            x = result.data[name].to_numpy(float)
        else:
            raise ValueError(f"against must be one of {(*result.law.inputs, 'fitted')}, not {name!r}")
        panel.scatter(x, residuals, s=12, color=PALETTE[0], edgecolors="white", linewidths=0.3, zorder=3)
        panel.axhline(0.0, color="black", lw=0.8)
        for level in (-spread, spread):
            panel.axhline(level, color=PALETTE[3], lw=0.8, ls=":")
        if name != "fitted":  # the fitted loss spans a small range: linear reads better
            panel.set_xscale("log")
        panel.set_xlabel(_LABELS.get(name, name))
    axes[0].set_ylabel("log L − log L̂")
    title = f"{result.law!r}: residuals of {result.n_points} points (dotted: ±2 RMS = ±{spread:.3g})"
    (fig.suptitle if len(axes) > 1 else axes[0].set_title)(title)
    return fig


def _default_corner(result) -> list[str]:
    if {"alpha", "beta", "E"} <= set(result.params.index):
        return ["alpha", "beta", "E"]
    return [name for name in result.law.reported_names if name not in result.fixed]


@_styled
def plot_bootstrap(result, params=None):
    """Bootstrap draws, corner-style: each parameter's histogram on the diagonal, pairs below it.

    The estimate is a red line (histograms) or star (pairs); dashed lines mark the interval. Pairs show how
    the data trade one parameter against another (α against E, say), which single intervals hide.

    Parameters
    ----------
    result : scalefit.fitting.FitResult
    params : sequence of str, optional
        Entries of ``result.params``; default α, β and E for a Chinchilla fit, else every free parameter.
    """
    draws = result.draws[result.draws["converged"]] if len(result.draws) else result.draws
    if not len(draws):
        raise ValueError("this fit has no converged bootstrap draws to plot; refit with bootstrap > 0")
    names = list(params or _default_corner(result))
    plt = _pyplot()
    size = max(2.0, 1.9 * len(names))
    fig, axes = plt.subplots(len(names), len(names), figsize=(size, size), constrained_layout=True,
                             squeeze=False)
    for i, y_name in enumerate(names):
        for j, x_name in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(draws[x_name], bins=30, color=PALETTE[0], alpha=0.7)
                ax.axvline(result.params[x_name], color=PALETTE[3], lw=1.2)
                for bound in result.intervals.loc[x_name, ["lo", "hi"]]:
                    ax.axvline(bound, color=PALETTE[3], lw=0.8, ls="--")
                ax.set_yticks([])
            else:
                ax.scatter(draws[x_name], draws[y_name], s=3, color=PALETTE[0], alpha=0.3, lw=0)
                ax.plot(result.params[x_name], result.params[y_name], marker="*", color=PALETTE[3],
                        markersize=9)
                if j == 0:
                    ax.set_ylabel(_PARAM_LABELS.get(y_name, y_name))
            if i == len(names) - 1:
                ax.set_xlabel(_PARAM_LABELS.get(x_name, x_name))
    fig.suptitle(f"{result.law!r}: {len(draws)} {result.interval_method} draws; "
                 f"{100 * result.level:.0f}% intervals dashed")
    return fig


@_styled
def plot_runs(runs, ax=None):
    """Every run's validation loss against tokens (log–log), coloured by model size; runs whose status is
    not ``ok`` in grey, dashed.

    Parameters
    ----------
    runs : pandas.DataFrame
        A runs table (:func:`scalefit.runs.load_runs`).
    ax : matplotlib Axes, optional
    """
    import numpy as np

    if "split" in runs:
        runs = runs[runs["split"] == "val"]
    fig, ax = _new_axes(ax, figsize=(5.6, 3.8))
    norm = _log_norm(runs["params"])
    cmap = _cmap()
    order = "step" if "step" in runs else "tokens"
    n_bad = 0
    for _, run in runs.sort_values(order, kind="stable").groupby("run_id", sort=False):
        ok = "status" not in run or (run["status"] == "ok").all()
        n_bad += not ok
        finite = run[np.isfinite(run["loss"]) & (run["loss"] > 0)]
        ax.plot(finite["tokens"], finite["loss"], lw=0.8, alpha=0.7 if ok else 0.9,
                color=cmap(norm(run["params"].iloc[0])) if ok else "0.6", ls="-" if ok else "--")
    _colourbar(fig, ax, norm, _LABELS["params"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_LABELS["tokens"])
    _plain_loss_axis(ax)
    ax.set_ylabel("validation loss [nats/token]")
    excluded = f"; {n_bad} not ok (grey, dashed)" if n_bad else ""
    ax.set_title(f"{runs['run_id'].nunique()} runs, {runs['params'].nunique()} model sizes{excluded}")
    return fig


@_styled
def plot_rl_curves(result, ax=None):
    """RL test error ``L`` against ``X`` per model size (log-log), with the fitted law.

    Filled markers are fitted points, hollow ones held out by the protocol, crosses the anchor points on
    which ``slope-only`` refits a target's intercept. Solid lines are the law at fitted sizes; for held-out
    sizes, dashed is ``slope-only`` and dotted ``full``.

    Parameters
    ----------
    result : scalefit.rl.RLFit
    ax : matplotlib Axes, optional
    """
    import numpy as np

    fig, ax = _new_axes(ax, figsize=(5.6, 4.0))
    points = result.points
    styles = {"L_hat": "-", "L_hat_slope_only": "--", "L_hat_full": ":"}
    names = {"L_hat": "law", "L_hat_slope_only": "slope-only", "L_hat_full": "full"}
    shown_styles = set()
    for position, (n, group) in enumerate(points.groupby("params")):
        colour = PALETTE[position % len(PALETTE)]
        label = group["size"].iloc[0]
        markers = {"fit": {"marker": "o", "color": colour}, "anchor": {"marker": "x", "color": colour},
                   "heldout": {"marker": "o", "facecolors": "none", "edgecolors": colour}}
        size_label = label
        for role, style in markers.items():
            subset = group[group["role"] == role]
            if len(subset):
                ax.scatter(subset["x"], subset["loss"], s=12, linewidths=0.8, label=size_label, zorder=3,
                           **style)
                size_label = None
        grid = np.geomspace(group["x"].min(), group["x"].max(), 60)
        first_run = group[group["run_id"] == group["run_id"].iloc[0]].sort_values("x")
        for column, style in styles.items():
            if column in group and group[column].notna().any():
                # The law is a straight line in log-log: interpolate the prediction of one run over the grid.
                line = np.exp(np.interp(np.log(grid), np.log(first_run["x"]), np.log(first_run[column])))
                ax.plot(grid, line, style, color=colour, linewidth=1.2,
                        label=names[column] if column != "L_hat" and column not in shown_styles else None)
                shown_styles.add(column)
    ax.set_xscale("log")
    ax.set_yscale("log")
    x_name = {"compute": "RL compute C [FLOP]", "data": "RL data D [samples]"}.get(result.x, result.x_column)
    ax.set_xlabel(x_name)
    ax.set_ylabel("test error L = 1 − pass@1" if result.metric != "L" else "error rate L")
    protocol = result.protocol["name"] if result.protocol else "all points fitted"
    k_max, n0 = result.params["K_max"], result.params["N0"]
    ax.set_title(f"RL scaling: K_max = {k_max:.3g}, N0 = {n0:.3g} ({protocol})", fontsize=8)
    ax.legend(fontsize=6, loc="best", ncol=2)
    return fig


@_styled
def plot_rl_efficiency(result, ax=None):
    """Learning efficiency ``k`` per model size and the saturation curve ``k(N) = K_max / (1 + N0/N)``.

    Filled markers with bars: the law's ``k`` at fitted sizes and its bootstrap interval; hollow squares:
    each size's own least-squares slope (``k_free``), a check of the saturating form; hollow circles: the
    law's ``k`` at held-out sizes. Dotted lines mark ``K_max`` and ``N0`` (when ``N0`` is in view).

    Parameters
    ----------
    result : scalefit.rl.RLFit
    ax : matplotlib Axes, optional
    """
    import numpy as np

    fig, ax = _new_axes(ax)
    table = result.per_size
    k_max, n0 = float(result.params["K_max"]), float(result.params["N0"])
    top = max(table["N"].max() * 3, min(n0 * 10, table["N"].max() * 100))  # show the saturation if near
    grid = np.geomspace(table["N"].min() / 3, top, 200)
    ax.plot(grid, k_max / (1 + n0 / grid), color=PALETTE[0], label="k(N) = K_max / (1 + N0/N)")
    fitted = table[table["role"] == "fit"]
    errors = np.vstack([fitted["k"] - fitted["k_lo"], fitted["k_hi"] - fitted["k"]])
    ax.errorbar(fitted["N"], fitted["k"], yerr=np.where(np.isfinite(errors), errors, 0), fmt="o",
                color=PALETTE[0], markersize=4, capsize=2,
                label=f"law at fitted sizes ({100 * result.level:.0f}% interval)")
    ax.scatter(table["N"], table["k_free"], marker="s", facecolors="none", edgecolors=PALETTE[3], s=22,
               label="each size's own slope (OLS on log L)", zorder=3)
    targets = table[table["role"] == "target"]
    if len(targets):
        ax.scatter(targets["N"], targets["k"], facecolors="none", edgecolors=PALETTE[0], s=30,
                   label="law at held-out sizes", zorder=3)
    ax.axhline(k_max, color="0.5", linestyle=":", linewidth=0.8)
    if grid[0] <= n0 <= grid[-1]:  # an N0 far outside the sizes (e.g. on its bound) would squash the axis
        ax.axvline(n0, color="0.5", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("model size N [parameters]")
    ax.set_ylabel("learning efficiency k")
    ax.set_title(f"K_max = {k_max:.3g}, N0 = {n0:.3g}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    return fig


# --- compute-optimal allocation (scalefit.allocation) --------------------------------------------------

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
    compute = 6.0 * data["params"] * data["tokens"]
    target_compute = 6.0 * targets["params"] * targets["tokens"]
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
    flops = 6.0 * path["params"] * path["tokens"]
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
