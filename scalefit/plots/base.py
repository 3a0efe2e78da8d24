"""Style, palette and the helpers every plot shares; the only place matplotlib is imported (lazily)."""

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


def save_and_close(figure, path, dpi: int = 120) -> None:
    """Save a figure to ``path`` and release it (so that many plots do not pile up in pyplot)."""
    figure.savefig(path, dpi=dpi)
    _pyplot().close(figure)


def _flag(result) -> str:
    """``"SUSPECT: "`` or ``"FAILED: "`` before a title when ``result``'s status is not ok, else ``""``: a
    flagged fit says so on every figure drawn from it."""
    status = getattr(result, "status", "ok")
    return "" if status == "ok" else f"{status.upper()}: "
