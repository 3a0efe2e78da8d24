"""Backtesting LR/BS laws on the sweep itself: the loss gap of the grid setting nearest a recommendation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalefit.hyperparams.laws import FitOn, HparamLaws, fit_hparam_laws
from scalefit.hyperparams.optima import HparamOptima
from scalefit.hyperparams.presets import preset_laws
from scalefit.hyperparams.recommend import BatchSizeLaw, recommend


def nearest_grid_loss_gap(optima: HparamOptima, laws: HparamLaws | str,
                          groups: list[str] | None = None, *, bs_law: BatchSizeLaw = "auto") -> pd.DataFrame:
    """Relative loss gap of the grid setting nearest each group's recommendation.

    For each group: recommend (lr, B) from ``laws`` at the group's (N, D), take the tried setting nearest
    to it in (log10 lr, log10 B) (diverged runs included: they are what that setting gave), and report
    ``loss_gap = loss(nearest) / best_loss - 1``. Step Law reports this figure as its headline accuracy.

    Parameters
    ----------
    optima : HparamOptima
    laws : HparamLaws or str
        Laws or a preset name.
    groups : list of str, optional
        Only these groups.
    bs_law : {"auto", "D", "N_D"}
        Batch-size law used by :func:`scalefit.hyperparams.recommend`.

    Returns
    -------
    pandas.DataFrame
        Per group: ``group``, ``params``, ``tokens``, ``best_loss``, ``recommended_lr``,
        ``recommended_batch_size``, ``nearest_lr``, ``nearest_batch_size``, ``nearest_loss``, ``loss_gap``.
    """
    if isinstance(laws, str):
        laws = preset_laws(laws)
    rows = []
    selected = optima.groups if groups is None else optima.groups[optima.groups["group"].isin(groups)]
    for group in selected[selected["method"] != "none"].itertuples():
        advice = recommend(group.params, group.tokens, laws, flops=group.flops, bs_law=bs_law)
        tried = optima.runs[(optima.runs["group"] == group.group) & np.isfinite(optima.runs["loss"])]
        distance = (np.log10(tried["lr"]) - math.log10(advice.lr)) ** 2
        if advice.batch_size_tokens is not None and tried["batch_size"].notna().all():
            distance = distance + (np.log10(tried["batch_size"]) - math.log10(advice.batch_size_tokens)) ** 2
        nearest = tried.loc[distance.idxmin()]
        rows.append({
            "group": group.group, "params": group.params, "tokens": group.tokens,
            "best_loss": group.best_loss, "recommended_lr": advice.lr,
            "recommended_batch_size": advice.batch_size_tokens, "nearest_lr": float(nearest["lr"]),
            "nearest_batch_size": float(nearest["batch_size"]), "nearest_loss": float(nearest["loss"]),
            "loss_gap": float(nearest["loss"]) / group.best_loss - 1,
        })
    return pd.DataFrame(rows)


def leave_one_group_out(optima: HparamOptima, *, fit_on: FitOn = "optima",
                        bs_law: BatchSizeLaw = "auto") -> pd.DataFrame:
    """Backtest the fitted laws: fit on all groups but one, recommend for the one left out.

    Returns the :func:`nearest_grid_loss_gap` table, one row per held-out group (point estimates only:
    no bootstrap inside the loop). ``fit_on`` and ``bs_law`` as in :func:`scalefit.hyperparams.fit_hparam_laws`
    and :func:`scalefit.hyperparams.recommend`.
    """
    usable = optima.groups[optima.groups["method"] != "none"]
    tables = []
    for held_out in usable["group"]:
        laws = fit_hparam_laws(optima.with_groups(optima.groups["group"] != held_out), fit_on=fit_on, n_bootstrap=0)
        tables.append(nearest_grid_loss_gap(optima, laws, groups=[held_out], bs_law=bs_law))
    return pd.concat(tables, ignore_index=True)
