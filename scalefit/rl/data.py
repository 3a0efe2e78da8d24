"""The RL runs table: reading it, the points a fit uses (``L = 1 − pass@1`` against X), clipping, protocols."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.errors import FitError, RunsTableError, ScalefitInputError

#: ``x`` choices and the runs-table column each one reads.
X_COLUMNS = {"compute": "flops", "data": "samples"}
_DEFAULT_CLIP = 1e-3


def load_rl_runs(path: str | Path) -> pd.DataFrame:
    """Read an RL runs table (parquet, or CSV by suffix); one row per (run, evaluation).

    Columns used: ``run_id``, ``params`` (N), ``flops`` (RL compute, for ``x="compute"``) or ``samples``
    (answers sampled, for ``x="data"``), and the metric (default ``pass_at_1``); optional ``status``
    (rows other than ``ok`` are dropped) and ``heldout_problems`` (sets the default clipping).
    """
    path = Path(path)
    if not path.exists():
        raise RunsTableError(f"{path}: file not found; check the path")
    name = path.name.lower()
    if not name.endswith((".parquet", ".pq", ".csv", ".csv.gz")) or path.is_dir():
        raise RunsTableError(f"{path}: unsupported file type; use .parquet, .pq, .csv or .csv.gz")
    what = "a parquet file" if name.endswith((".parquet", ".pq")) else "a comma-separated text file"
    try:
        table = pd.read_parquet(path) if what == "a parquet file" else pd.read_csv(path)
    except Exception as err:  # any reader failure means the same thing to the user
        detail = " ".join(str(err).split())[:200]
        raise RunsTableError(f"{path}: cannot be read as {what} ({type(err).__name__}: {detail}); check that the "
                             "file is complete and really is one, or rewrite it") from err
    if len(table) == 0:
        raise RunsTableError(f"{path}: the table has no rows; it needs one row per (run, evaluation)")
    return table


@dataclass(frozen=True)
class Clipping:
    """How error rates at 0 or 1 (where ``log L`` or the law breaks down) were moved into (0, 1)."""

    epsilon: float
    n_low: int
    n_high: int

    @property
    def n_clipped(self) -> int:
        return self.n_low + self.n_high

    def describe(self) -> str:
        return (f"clipped {self.n_low} point(s) with L = 0 and {self.n_high} with L = 1 into "
                f"[{self.epsilon:g}, 1 − {self.epsilon:g}]")


def rl_points(table: pd.DataFrame, *, x: str = "compute", metric: str = "pass_at_1",
              metric_is_error: bool = False,
              clip: float | str | None = "auto") -> tuple[pd.DataFrame, Clipping, list[str]]:
    """The points a fit uses: ``run_id, params, <x column>, loss`` with ``loss = L``, and what was done.

    Parameters
    ----------
    table
        RL runs table.
    x
        ``"compute"`` (column ``flops``) or ``"data"`` (column ``samples``).
    metric
        Column of the success rate (pass@1 in [0, 1]); ``L = 1 − metric``. With ``metric_is_error`` the
        column is the error rate itself.
    clip
        Error rates of exactly 0 (``log L`` undefined) or 1 are moved to ``ε`` or ``1 − ε``: ``"auto"``
        takes ``ε = 0.5 / heldout_problems`` when the table has that column (half a problem), else 1e-3;
        a number sets ``ε``; None raises instead. Other values are left as they are.

    Returns
    -------
    (points, clipping, notes)
        ``notes`` lists the rows dropped (X = 0, such as the evaluation before RL; status other than ok)
        and the clipping.

    Raises
    ------
    RunsTableError
        Missing columns, non-numeric values, or metric values outside [0, 1].
    FitError
        An error rate of 0 or 1 with ``clip=None``; no row with X > 0.
    """
    if x not in X_COLUMNS:
        raise ScalefitInputError(f"x must be one of {sorted(X_COLUMNS)}, not {x!r}")
    x_column = X_COLUMNS[x]
    needed = {"run_id": "run identifier", "params": "model size N", x_column: f"RL {x} so far",
              metric: "the evaluation metric"}
    missing = [f"{c!r} ({what})" for c, what in needed.items() if c not in table.columns]
    if missing:
        source = table.attrs.get("source", "the RL runs table")
        raise RunsTableError(f"{source}: lacks column(s) {', '.join(missing)}; it has "
                             f"{list(table.columns)} (use --metric for another metric column)")
    notes = []
    frame = table
    if "status" in frame.columns:
        bad = frame["status"].fillna("ok") != "ok"
        if bad.any():
            runs = sorted(frame.loc[bad, "run_id"].astype(str).unique())
            statuses = sorted(frame.loc[bad, "status"].astype(str).unique())
            notes.append(f"dropped {int(bad.sum())} row(s) of {len(runs)} run(s) with status {statuses} "
                         f"(not 'ok'): {', '.join(runs[:5])}{' …' if len(runs) > 5 else ''}")
            frame = frame[~bad]
    values = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
              for c in ("params", x_column, metric)}
    for column in ("params", metric):
        bad = ~np.isfinite(values[column])
        if bad.any():
            raise RunsTableError(f"column {column!r} has {int(bad.sum())} non-numeric or non-finite value(s) "
                                 f"(first rows: {list(frame.index[bad][:5])})")
    if (values["params"] <= 0).any():
        raise RunsTableError("column 'params' must be > 0 (N, the model's parameter count)")
    outside = (values[metric] < 0) | (values[metric] > 1)
    if outside.any():
        raise RunsTableError(f"column {metric!r} must be a rate in [0, 1]; {int(outside.sum())} value(s) are "
                             f"not (first rows: {list(frame.index[outside][:5])})")
    keep = np.isfinite(values[x_column]) & (values[x_column] > 0)
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} row(s) with {x_column} = 0 or missing (log X is "
                     "undefined there; e.g. the evaluation before RL)")
    error = values[metric] if metric_is_error else 1.0 - values[metric]
    points = pd.DataFrame({"run_id": frame["run_id"].astype(str).to_numpy(), "params": values["params"],
                           x_column: values[x_column], "loss": error})[keep].reset_index(drop=True)
    if points.empty:
        raise FitError(f"no rows with {x_column} > 0 to fit")

    low, high = points["loss"] <= 0, points["loss"] >= 1
    if clip is None and (low.any() or high.any()):
        raise FitError(f"{int(low.sum())} point(s) have L = 0 (pass@1 = 1; log L is undefined) and "
                       f"{int(high.sum())} have L = 1; drop them or allow clipping (clip='auto' or an ε)")
    epsilon = _clip_epsilon(clip, frame)
    points.loc[low, "loss"], points.loc[high, "loss"] = epsilon, 1.0 - epsilon
    clipping = Clipping(epsilon, int(low.sum()), int(high.sum()))
    if clipping.n_clipped:
        notes.append(clipping.describe())
    points = points.sort_values(["params", "run_id", x_column], kind="stable").reset_index(drop=True)
    return points, clipping, notes


def _clip_epsilon(clip: float | str | None, table: pd.DataFrame) -> float:
    if clip == "auto":
        problems = pd.to_numeric(table.get("heldout_problems", pd.Series(dtype=float)), errors="coerce")
        return 0.5 / float(problems.max()) if problems.notna().any() else _DEFAULT_CLIP
    epsilon = _DEFAULT_CLIP if clip is None else float(clip)
    if not 0 < epsilon < 0.5:
        raise ScalefitInputError(f"clip must be 'auto', None or a number in (0, 0.5), not {clip!r}")
    return epsilon


def parse_protocol(protocol: str | None) -> tuple[str, float] | None:
    """``"early:0.5"`` -> ``("early", 0.5)``; ``"holdout-largest:1"`` -> ``("holdout-largest", 1)``."""
    if protocol is None:
        return None
    name, _, value = str(protocol).partition(":")
    try:
        if name == "early":
            fraction = float(value)
            if 0 < fraction < 1:
                return name, fraction
        elif name == "holdout-largest":
            count = int(value or 1)
            if count >= 1:
                return name, count
    except ValueError:
        pass
    raise ScalefitInputError(f"protocol must be 'early:F' with 0 < F < 1 or 'holdout-largest:K' with K >= 1, "
                             f"not {protocol!r}")

