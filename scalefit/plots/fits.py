"""Plots of a fitted law: data with bands, backtest, residuals, bootstrap draws, runs, predictions."""

from __future__ import annotations

from scalefit.flops import tokens_for, training_flops
from scalefit.plots.base import (
    _LABELS,
    _PARAM_LABELS,
    CONFIDENCE_ALPHA,
    PALETTE,
    _cmap,
    _colourbar,
    _flag,
    _log_norm,
    _new_axes,
    _plain_loss_axis,
    _pyplot,
    _styled,
)


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
        return pd.DataFrame({"params": value, "tokens": tokens_for(grid, value)})
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
        points["flops"] = training_flops(points["params"], points["tokens"])
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
    ax.set_title(f"{_flag(result)}{result.law!r}: {result.n_points} points, intervals {result.interval_method}")
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
    ax.set_title(f"{_flag(backtest.fit)}backtest: fitted without the largest {backtest.holdout_largest} size(s); held-out "
                 f"|rel. error| mean {backtest.mean_abs_rel_error:.2%}, max {backtest.max_abs_rel_error:.2%}")
    return fig


@_styled
def plot_backtest_parity(backtest, ax=None):
    """Predicted against actual loss of the backtest's held-out runs, with each prediction's new-run interval
    (vertical bars) and the line predicted = actual: how far off the extrapolation was, run by run."""
    import numpy as np

    fig, ax = _new_axes(ax, figsize=(4.2, 3.8))
    p = backtest.predictions
    has_band = not p[["lo", "hi"]].isna().all(axis=None)
    if has_band:
        ax.errorbar(p["actual"], p["predicted"], yerr=[p["predicted"] - p["lo"], p["hi"] - p["predicted"]],
                    fmt="none", ecolor=PALETTE[0], alpha=0.5, lw=0.8)
    ax.scatter(p["actual"], p["predicted"], color=PALETTE[0], zorder=3, label="held-out runs")
    low = float(np.nanmin([p["actual"].min(), p["predicted"].min(), p["lo"].min() if has_band else np.inf]))
    high = float(np.nanmax([p["actual"].max(), p["predicted"].max(), p["hi"].max() if has_band else -np.inf]))
    ax.plot([low, high], [low, high], color="0.4", ls="--", lw=0.8, label="predicted = actual")
    ax.set_xlabel("actual loss")
    ax.set_ylabel("predicted loss")
    ax.set_title(f"{_flag(backtest.fit)}backtest: mean |rel. error| {backtest.mean_abs_rel_error:.2%}, "
                 f"max {backtest.max_abs_rel_error:.2%}")
    ax.legend(fontsize=7)
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
    title = f"{_flag(result)}{result.law!r}: residuals of {result.n_points} points (dotted: ±2 RMS = ±{spread:.3g})"
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
    fig.suptitle(f"{_flag(result)}{result.law!r}: {len(draws)} {result.interval_method} draws; "
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
