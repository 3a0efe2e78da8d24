"""Which points an analysis uses, decided in one place: :func:`points`.

An analysis never reduces the raw runs table itself; it asks for its points by name:

==========  ================================================================================================
which       the points
==========  ================================================================================================
all         every evaluation point of the selected rows (Hoffmann et al.'s Approach 1 on cosine schedules)
final       each run's last point (by ``step``, else ``tokens``): one fully trained point per run
tuned       per (N, D) the best learning-rate/batch-size setting's final loss, seeds averaged: the
            well-tuned runs a joint law such as Chinchilla's describes
frontier    the compute frontier: rows with lower loss than every row at fewer or equal FLOPs (Kaplan's
            ``L(C)``)
groups      one row per run for LR × batch-size sweeps (the swept groups of :mod:`scalefit.hyperparams`):
            its last point, every status kept (diverged runs are data for the optimum), the loss averaged
            over the last ``smooth_last`` points
==========  ================================================================================================

The rows are first selected by ``status`` and ``split`` (:func:`select`); every function keeps the table's
``attrs`` (``source``, ``flops_convention``). :func:`select`, :func:`final_points`, :func:`tuned_points`
and :func:`compute_frontier` are the building blocks, also reachable from :mod:`scalefit.runs`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from scalefit import readers
from scalefit.errors import RunsTableError, ScalefitInputError
from scalefit.runs_validation import STATUSES

#: The names :func:`points` takes for ``which``.
WHICH = ("final", "tuned", "frontier", "all", "groups")
#: ``status`` default of :func:`points`: ``ok`` rows, except for ``groups`` (every status).
DEFAULT_STATUS = "default"


def points(
    df: pd.DataFrame,
    which: str = "final",
    *,
    status: str | Iterable[str] | None = DEFAULT_STATUS,
    split: str | Iterable[str] | None = "val",
    smooth_last: int = 1,
) -> pd.DataFrame:
    """The points of a runs table an analysis uses: the one front door (see the module docstring).

    Parameters
    ----------
    df
        A runs table (:func:`scalefit.runs.load_runs`).
    which
        ``"final"`` (default), ``"tuned"``, ``"frontier"``, ``"all"`` or ``"groups"``.
    status, split
        The rows to use (:func:`select`); ``None`` or an absent column: no filter. ``status`` defaults to
        ``"ok"``, and to every status for ``"groups"``. For ``"groups"`` the ``split`` filter applies only
        when some row is on that split (a sweep that logged one loss per step is used as it is).
    smooth_last
        ``"groups"`` only: average the loss over this many final points (1: the final loss as logged; a
        non-finite loss among them makes the average non-finite).

    Returns
    -------
    pandas.DataFrame
        The chosen rows with the table's ``attrs``; ``"tuned"`` has the columns :func:`tuned_points` adds.
    """
    if which not in WHICH:
        raise ScalefitInputError(f"points: which must be one of {', '.join(WHICH)}, not {which!r}")
    if status == DEFAULT_STATUS:
        status = None if which == "groups" else "ok"
    if which == "groups":
        return _swept_runs(df, status, split, smooth_last)
    rows = select(df, status=status, split=split)
    if which == "final":
        return final_points(rows)
    if which == "tuned":
        return tuned_points(rows)
    if which == "frontier":
        return compute_frontier(rows)
    return rows


def _swept_runs(df: pd.DataFrame, status, split, smooth_last: int) -> pd.DataFrame:
    """One row per run: its last point, the loss averaged over its last ``smooth_last`` points."""
    if smooth_last < 1:
        raise ScalefitInputError(f"smooth_last must be at least 1, got {smooth_last}")
    wanted = [split] if isinstance(split, str) else split
    if wanted is not None and not ("split" in df.columns and df["split"].isin(list(wanted)).any()):
        split = None
    runs = select(df, status=status, split=split)
    last = final_points(runs).reset_index(drop=True)
    if smooth_last > 1:
        order = "step" if "step" in runs.columns else "tokens"
        ordered = runs.sort_values(order, kind="stable")
        smoothed = ordered.groupby("run_id", sort=False)["loss"].apply(
            lambda loss: loss.iloc[-smooth_last:].mean(skipna=False)
        )
        last["loss"] = last["run_id"].map(smoothed).to_numpy(float)
    return last


def select(
    df: pd.DataFrame,
    status: str | Iterable[str] | None = "ok",
    split: str | Iterable[str] | None = "val",
) -> pd.DataFrame:
    """Rows whose ``status`` and ``split`` are the given value(s); ``None`` or an absent column: no filter."""
    keep = np.ones(len(df), dtype=bool)
    for column, wanted in (("status", status), ("split", split)):
        if wanted is None or column not in df:
            continue
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        if column == "status":
            unknown = [w for w in wanted if w not in STATUSES]
            if unknown:
                raise RunsTableError(
                    f"select(status=...) got {', '.join(map(repr, unknown))}; statuses are "
                    f"{', '.join(STATUSES)}."
                )
        keep &= df[column].isin(wanted).to_numpy()
    return _with_attrs(df.iloc[np.flatnonzero(keep)], df)


def final_points(df: pd.DataFrame) -> pd.DataFrame:
    """The last row of each run, by ``step`` (else by ``tokens``), in file order.

    With a ``split`` column the last row is taken per run and split; ``select`` one split first to get
    exactly one row per run. Ties keep the later row of the table.
    """
    _need(df, ("run_id", "tokens"), "final_points")
    return _with_attrs(df.iloc[np.sort(_last_positions(df))], df)


HYPERPARAMETER_COLUMNS = ("lr", "batch_size", "schedule", "warmup")


def tuned_points(df: pd.DataFrame) -> pd.DataFrame:
    """One point per (params, token budget): the final loss of the best hyperparameter setting, seeds averaged.

    A joint law such as Chinchilla's describes well-tuned runs, so a table holding learning-rate or
    batch-size sweeps is reduced to, for each (N, D), the setting (``lr``, ``batch_size``, ``schedule``,
    ``warmup``, where present) whose final loss averaged over its runs (seeds) is lowest. D is the
    ``token_budget`` column when present (runs of different batch sizes end a few tokens apart), else
    ``tokens``. Taking the minimum over settings biases each point down by a little of the seed noise.

    The result has one row per (N, D) with ``run_id`` (the first run of the setting), ``params``,
    ``tokens`` (mean over the setting's runs), ``loss`` (mean), the setting's columns, ``n_runs`` (runs
    averaged), ``n_settings`` (settings compared) and ``run_ids`` (the runs averaged, a tuple). ``select``
    the ``ok`` rows first.
    """
    final = final_points(df)
    budget = "token_budget" if "token_budget" in final else "tokens"
    settings = [c for c in HYPERPARAMETER_COLUMNS if c in final]
    keys = ["params", budget] + [c for c in settings if c != budget]
    per_setting = (final.groupby(keys, sort=True, dropna=False)
                   .agg(run_id=("run_id", "first"), run_ids=("run_id", tuple), tokens_mean=("tokens", "mean"),
                        loss=("loss", "mean"), n_runs=("run_id", "size"))
                   .reset_index())
    per_setting["n_settings"] = per_setting.groupby(["params", budget])["loss"].transform("size")
    best = per_setting.loc[per_setting.groupby(["params", budget])["loss"].idxmin()]
    best = best.drop(columns=["tokens"], errors="ignore").rename(columns={"tokens_mean": "tokens"})
    columns = ["run_id", "params", "tokens", *([budget] if budget != "tokens" else []), "loss", *settings,
               "n_runs", "n_settings", "run_ids"]
    best = best[columns].reset_index(drop=True)
    carried = [c for c in ("flops", *CARRIED_RUN_COLUMNS) if c in final]  # per run: of the setting's first run
    if carried:
        best = best.join(final.drop_duplicates("run_id").set_index("run_id")[carried], on="run_id")
    return _with_attrs(best, df)


#: Per-run columns :func:`tuned_points` keeps (of the first run of the chosen setting) besides ``flops``.
CARRIED_RUN_COLUMNS = ("family", "flops_budget", "compute_budget")


def compute_frontier(df: pd.DataFrame) -> pd.DataFrame:
    """The compute frontier: rows with lower loss than every row at fewer or equal FLOPs, by FLOPs.

    Taken over all rows of all runs given (``select`` first to keep, e.g., only ``ok`` validation rows);
    rows with non-finite loss or FLOPs are ignored, and of rows with equal FLOPs and loss the first in
    the table is kept.
    """
    _need(df, ("flops", "loss"), "compute_frontier")
    flops = df["flops"].to_numpy(dtype=float)
    loss = df["loss"].to_numpy(dtype=float)
    pos = np.flatnonzero(np.isfinite(flops) & np.isfinite(loss))
    pos = pos[np.lexsort((pos, loss[pos], flops[pos]))]
    ordered = loss[pos]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], ordered[:-1])))
    return _with_attrs(df.iloc[pos[ordered < best_before]], df)


def _last_positions(df: pd.DataFrame) -> np.ndarray:
    """Positions of each run's (and split's) last row by ``step``, else ``tokens``; ties: the later row."""
    order = "step" if "step" in df else "tokens"
    group = pd.factorize(df["run_id"], use_na_sentinel=False)[0].astype(np.int64)
    if "split" in df:
        split = pd.factorize(df["split"], use_na_sentinel=False)[0]
        group = group * (int(split.max(initial=0)) + 1) + split
    return readers.last_of_groups(group, pd.to_numeric(df[order], errors="coerce").to_numpy(dtype=float))


def _need(df: pd.DataFrame, columns: tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in df]
    if missing:
        raise RunsTableError(f"{where} needs the column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(map(repr, missing))}; load the table with load_runs.")


def _with_attrs(out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    out = out.copy()
    out.attrs = dict(df.attrs)
    return out
