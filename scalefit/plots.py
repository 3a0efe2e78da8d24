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
