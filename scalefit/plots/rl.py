"""Plots of RL post-training curves and the efficiency law."""

from __future__ import annotations

from scalefit.plots.base import PALETTE, _flag, _new_axes, _styled


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
    ax.set_title(f"{_flag(result)}RL scaling: K_max = {k_max:.3g}, N0 = {n0:.3g} ({protocol})", fontsize=8)
    ax.legend(fontsize=6, loc="best", ncol=2)
    return fig


@_styled
def plot_rl_efficiency(result, ax=None):
    """Learning efficiency ``k`` per model size and the saturation curve ``k(N) = K_max / (1 + N0/N)``.

    Filled markers with bars: the law's ``k`` at fitted sizes and its bootstrap interval at ``result.level``;
    hollow squares: each size's own least-squares slope (``k_free``), a check of the saturating form; hollow
    circles: the law's ``k`` at held-out sizes. Dotted lines mark ``K_max`` and ``N0`` (when ``N0`` is in view).

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
                label=f"law at fitted sizes ({100 * result.level:g} % interval)")
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
    ax.set_title(f"{_flag(result)}K_max = {k_max:.3g}, N0 = {n0:.3g}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    return fig
