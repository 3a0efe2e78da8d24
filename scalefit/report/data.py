"""The data section: runs, model sizes, token range, runs excluded and why, every training curve."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.points import points
from scalefit.report.document import Figure, Section, Table, _g, _png, _records


@dataclass(frozen=True)
class RunsOverview:
    """What the data section shows: the whole table, its validation rows and each run's final point."""

    runs: pd.DataFrame
    val: pd.DataFrame
    final: pd.DataFrame
    source: str


def overview(runs: pd.DataFrame) -> RunsOverview:
    """The validation rows of every status and their final points (:func:`scalefit.points.points`), or a
    :class:`ScalefitInputError` when no row is held out or no run has a finite loss."""
    val = points(runs, "all", status=None, split="val")
    source = runs.attrs.get("source", "runs table")
    if len(val) == 0:  # every row on another split: nothing held out to describe or fit
        splits = sorted(map(str, runs["split"].unique()))
        raise ScalefitInputError(
            f"{source}: no rows on the 'val' split (splits found: {splits}); the report fits held-out loss: "
            "give held-out evaluations split=val, or drop the split column")
    if not np.isfinite(val["loss"].to_numpy(float)).any():  # only runs that blew up (NaN losses kept)
        raise ScalefitInputError(f"{source}: no row has a finite loss (every run diverged or has no loss); "
                                 "the report needs finished runs")
    return RunsOverview(runs, val, points(val, "final", status=None, split=None), source)


def data_section(data: RunsOverview) -> tuple[Section, dict]:
    """The section and its ``results.json`` part."""
    from scalefit.plots import plot_runs

    runs, val, final = data.runs, data.val, data.final
    ok = (final["status"] == "ok") if "status" in final else pd.Series(True, index=final.index)
    bad = final[~ok]
    aggregates = {"runs": ("run_id", "size"), "ok_runs": ("ok", "sum"), "D_min": ("tokens", "min"),
                  "D_max": ("tokens", "max"), "best_final_loss": ("loss", "min")}
    if "lr" in final:
        aggregates["learning_rates"] = ("lr", "nunique")
    per_size = (final.assign(ok=ok).groupby("params").agg(**aggregates).reset_index()
                .rename(columns={"params": "N"}))
    convention = runs.attrs.get("flops_convention", "n/a")
    n_other_rows = len(runs) - len(val)
    paragraphs = [
        (f"{final['run_id'].nunique()} runs ({len(runs)} rows, one per run and evaluation) at "
         f"{final['params'].nunique()} model sizes, N = {_g(final['params'].min())} to "
         f"{_g(final['params'].max())} non-embedding parameters; final token counts D = "
         f"{_g(final['tokens'].min())} to {_g(final['tokens'].max())}. FLOPs convention: {convention}."),
        ((f"{int(ok.sum())} runs finished with status ok; the {len(bad)} that did not are excluded from "
          "every fit (the LR laws count them as diverged settings)." if len(bad) else
          f"All {int(ok.sum())} runs finished with status ok.")
         + (f" {n_other_rows} rows on splits other than 'val' are not used." if n_other_rows else "")),
    ]
    tables = [Table("data-sizes", "Runs per model size (final points)", per_size)]
    if len(bad):
        columns = [c for c in ("run_id", "params", "tokens", "lr", "batch_size", "status") if c in bad]
        tables.append(Table("data-excluded", "Runs excluded, and why (their status)",
                            bad[columns].rename(columns={"params": "N", "tokens": "D"})))
    figure = Figure("runs", "Validation loss of every run against tokens, coloured by model size.",
                    _png(plot_runs(runs)))
    summary = {
        "n_runs": int(final["run_id"].nunique()), "n_rows": len(runs),
        "n_sizes": int(final["params"].nunique()),
        "params_range": [float(final["params"].min()), float(final["params"].max())],
        "tokens_range": [float(final["tokens"].min()), float(final["tokens"].max())],
        "flops_convention": convention, "n_ok": int(ok.sum()),
        "excluded_runs": _records(bad[[c for c in ("run_id", "status") if c in bad]]),
        "per_size": _records(per_size),
    }
    return Section("data", tuple(paragraphs), (), tuple(tables), (figure,)), summary
