"""All plotting lives here; this is the only module that imports matplotlib, and it does so lazily.

Every function takes a result (and optionally an ``ax``) and returns the matplotlib Figure.
"""

from __future__ import annotations

# Okabe-Ito: a colour-blind-safe palette.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


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


# --- LR and batch-size laws (scalefit.hyperparams) ---------------------------------------------------

_HPARAM_LABELS = {
    "params": "N (non-embedding parameters)",
    "tokens": "D (training tokens)",
    "flops": "C (training FLOPs)",
    "lr": "optimal peak LR",
    "batch_size": "optimal batch size [tokens]",
}


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
    return fig


def _interval_error(row, axis: str):
    """Asymmetric error bar [[below], [above]] for the optimum's interval, or None."""
    import math

    lower, upper, centre = row[f"opt_{axis}_lower"], row[f"opt_{axis}_upper"], row[f"opt_{axis}"]
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return None
    return [[centre - lower], [upper - centre]]


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
    if law.log_cov is not None:
        confidence = law.predict(**values, interval="confidence")
        ax.fill_between(grid, confidence["lower"], confidence["upper"], color=PALETTE[0], alpha=0.3,
                        label=f"{100 * law.level:.0f}% confidence")
        if law.residual_std is not None:
            prediction = law.predict(**values, interval="prediction")
            ax.fill_between(grid, prediction["lower"], prediction["upper"], color=PALETTE[0], alpha=0.12,
                            label=f"{100 * law.level:.0f}% prediction")
    ax.plot(grid, law.predict(**values), color=PALETTE[0], label=law.formula)
    if points is not None:
        adjusted = points[law.target].to_numpy(float)
        for variable in others:
            adjusted = adjusted * (reference[variable] / points[variable].to_numpy(float)) ** exponents[variable]
        ax.scatter(points[against], adjusted, s=14, color=PALETTE[3], zorder=3,
                   label=f"{law.fitted_on} ({law.n_points} points, {law.n_groups} groups)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_HPARAM_LABELS[against])
    symbols = {"params": "N", "tokens": "D", "flops": "C"}
    held = ", ".join(f"{symbols[v]} = {reference[v]:.3g}" for v in others)
    ax.set_ylabel(_HPARAM_LABELS[law.target] + (f"\nat {held}" if held else ""))
    ax.set_title(f"{law.name} — {law.source}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    return fig


def save_and_close(figure, path, dpi: int = 120) -> None:
    """Save a figure to ``path`` and release it (so that many plots do not pile up in pyplot)."""
    figure.savefig(path, dpi=dpi)
    _pyplot().close(figure)


# --- fitted laws (scalefit.fitting.FitResult) --------------------------------------------------------


def _size_groups(sizes, n_groups: int):
    """Group labels for model sizes: each distinct size when there are few, else log-spaced quantile bins."""
    import numpy as np
    import pandas as pd

    if sizes.nunique() <= n_groups:
        return sizes.rank(method="dense").astype(int) - 1
    return pd.qcut(np.log(sizes), n_groups, labels=False, duplicates="drop")


def plot_fit(result, ax=None, *, interval: str | None = "confidence", n_groups: int = 6):
    """Observed losses and the fitted law, with its bootstrap band.

    A law in one input is drawn against it. A joint law is drawn against its last input (e.g. tokens)
    with one curve per model size (sizes binned into ``n_groups`` log-spaced quantile groups when there are
    more; each curve is at its group's geometric-mean size).

    Parameters
    ----------
    result : scalefit.fitting.FitResult
    ax : matplotlib Axes, optional
    interval : {"confidence", "prediction", None}
        Band around each curve (needs bootstrap draws; skipped when there are none).
    n_groups : int
        Most curves drawn for a joint law.
    """
    import numpy as np
    import pandas as pd

    fig, ax = _new_axes(ax)
    data, inputs = result.data, result.law.inputs
    x_name = inputs[-1]
    has_band = interval is not None and len(result.draws) and result.draws["converged"].any()
    if len(inputs) == 1:
        groups = pd.Series(0, index=data.index)
    else:
        groups = _size_groups(data[inputs[0]], n_groups)
    for colour, (group, points) in zip(PALETTE * 4, data.groupby(groups)):
        grid = np.geomspace(points[x_name].min() / 1.5, points[x_name].max() * 1.5, 80)
        new = pd.DataFrame({x_name: grid})
        label = "data"
        for other in inputs[:-1]:
            size = float(np.exp(np.log(points[other]).mean()))
            new[other] = size
            label = f"{other} ≈ {size:.3g}"
        ax.scatter(points[x_name], points["loss"], s=10, color=colour, alpha=0.7, label=label)
        band = result.predict(new, interval=interval) if has_band else result.predict(new, interval=None)
        ax.plot(grid, band["mean"], color=colour, lw=1.2)
        if has_band:
            ax.fill_between(grid, band["lo"], band["hi"], color=colour, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_HPARAM_LABELS.get(x_name, x_name))
    ax.set_ylabel("loss")
    band_note = f", {100 * result.level:.0f}% {interval} band" if has_band else ""
    ax.set_title(f"{result.law!r}: objective {result.objective:.4g}{band_note}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_residuals(result, ax=None):
    """Log residuals ``log L − log L̂`` against the fitted loss, coloured by the law's first input."""
    import numpy as np

    fig, ax = _new_axes(ax)
    fitted = np.exp(np.log(result.data["loss"]) - result.residuals)
    first = result.law.inputs[0]
    shown = ax.scatter(fitted, result.residuals, c=np.log10(result.data[first]), s=10, cmap="viridis")
    fig.colorbar(shown, ax=ax, label=f"log10 {first}")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("fitted loss L̂")
    ax.set_ylabel("log L − log L̂")
    ax.set_title(f"{result.law!r}: residuals of {result.n_points} points", fontsize=8)
    return fig


def plot_bootstrap(result, params=None):
    """Histogram of the bootstrap draws of each parameter, with the estimate and its interval.

    Parameters
    ----------
    result : scalefit.fitting.FitResult
    params : sequence of str, optional
        Which entries of ``result.params``; default all of them.
    """
    draws = result.draws[result.draws["converged"]] if len(result.draws) else result.draws
    if not len(draws):
        raise ValueError("this fit has no converged bootstrap draws to plot; refit with bootstrap > 0")
    names = list(params or result.params.index)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names), 2.4), constrained_layout=True,
                             squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.hist(draws[name], bins=30, color=PALETTE[0], alpha=0.7)
        ax.axvline(result.params[name], color=PALETTE[3], lw=1.2)
        for bound in result.intervals.loc[name]:
            ax.axvline(bound, color=PALETTE[3], lw=0.8, ls="--")
        ax.set_xlabel(name)
        ax.set_yticks([])
    fig.suptitle(f"{result.law!r}: {len(draws)} {result.interval_method} draws, {100 * result.level:.0f}% "
                 "intervals dashed", fontsize=8)
    return fig


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
                ax.scatter(subset["x"], subset["loss"], s=12, linewidths=0.8, label=size_label, zorder=3, **style)
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
    ax.set_title(f"RL scaling: K_max = {result.params['K_max']:.3g}, N0 = {result.params['N0']:.3g} ({protocol})",
                 fontsize=8)
    ax.legend(fontsize=6, loc="best", ncol=2)
    return fig


def plot_rl_efficiency(result, ax=None):
    """Learning efficiency ``k`` per model size and the saturation curve ``k(N) = K_max / (1 + N0/N)``.

    Filled markers with bars: the law's ``k`` at fitted sizes and its bootstrap interval; hollow squares:
    each size's own least-squares slope (``k_free``), a check of the saturating form; hollow circles: the
    law's ``k`` at held-out sizes. Dotted lines mark ``K_max`` and ``N0``.

    Parameters
    ----------
    result : scalefit.rl.RLFit
    ax : matplotlib Axes, optional
    """
    import numpy as np

    fig, ax = _new_axes(ax)
    table = result.per_size
    k_max, n0 = float(result.params["K_max"]), float(result.params["N0"])
    grid = np.geomspace(table["N"].min() / 3, max(table["N"].max() * 3, min(n0 * 10, table["N"].max() * 100)), 200)
    ax.plot(grid, k_max / (1 + n0 / grid), color=PALETTE[0], label="k(N) = K_max / (1 + N0/N)")
    fitted = table[table["role"] == "fit"]
    errors = np.vstack([fitted["k"] - fitted["k_lo"], fitted["k_hi"] - fitted["k"]])
    ax.errorbar(fitted["N"], fitted["k"], yerr=np.where(np.isfinite(errors), errors, 0), fmt="o", color=PALETTE[0],
                markersize=4, capsize=2, label=f"law at fitted sizes ({100 * result.level:.0f}% interval)")
    ax.scatter(table["N"], table["k_free"], marker="s", facecolors="none", edgecolors=PALETTE[3], s=22,
               label="each size's own slope", zorder=3)
    targets = table[table["role"] == "target"]
    if len(targets):
        ax.scatter(targets["N"], targets["k"], facecolors="none", edgecolors=PALETTE[0], s=30,
                   label="law at held-out sizes", zorder=3)
    ax.axhline(k_max, color="0.5", linestyle=":", linewidth=0.8)
    ax.axvline(n0, color="0.5", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("model size N [parameters]")
    ax.set_ylabel("learning efficiency k")
    ax.set_title(f"K_max = {k_max:.3g}, N0 = {n0:.3g}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    return fig


# --- compute-optimal allocation (scalefit.allocation) --------------------------------------------------


def plot_allocation(allocation=None, approaches=(), ax=None):
    """Compute-optimal model size N_opt(C): the joint law's closed form with its band (Approach 3), and the
    optima and power laws of Approaches 1 and 2, side by side on log-log axes.

    Parameters
    ----------
    allocation : scalefit.allocation.JointLawAllocation, optional
    approaches : sequence of scalefit.allocation.AllocationResult
    ax : matplotlib Axes, optional
    """
    import numpy as np

    fig, ax = _new_axes(ax)
    if allocation is not None:
        t = allocation.table
        lo, hi = allocation.params_exponent_interval
        ax.plot(t["flops"], t["params"], color=PALETTE[0], lw=1.5,
                label=f"approach 3 (joint law): C^{allocation.params_exponent:.2f} [{lo:.2f}, {hi:.2f}]")
        if t["params_lo"].notna().all():
            ax.fill_between(t["flops"], t["params_lo"], t["params_hi"], color=PALETTE[0], alpha=0.2, lw=0,
                            label=f"{100 * allocation.level:.0f}% bootstrap band")
    for colour, marker, result in zip(PALETTE[1:], "os^", approaches):
        o = result.optima
        law = result.params_law
        grid = np.geomspace(o["flops"].min(), o["flops"].max(), 50)
        lo, hi = law.exponent_interval
        ax.scatter(o["flops"], o["params_opt"], color=colour, marker=marker, s=18, zorder=3)
        ax.plot(grid, law.predict(grid), color=colour, lw=1, ls="--",
                label=f"{result.approach.split(' (')[0]}: C^{law.exponent:.2f} [{lo:.2f}, {hi:.2f}]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C [FLOP, 6ND]")
    ax.set_ylabel("compute-optimal N (non-embedding params)")
    ax.set_title("compute-optimal model size", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    return fig
