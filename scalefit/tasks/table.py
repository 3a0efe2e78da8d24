"""Task metrics in a runs table: the column contract, long → wide, validation, chance levels.

The runs table carries per-task metrics at each evaluation point in one of two forms:

- **wide**: one column per task and metric, ``task/<name>/<metric>``: ``acc`` (accuracy in [0, 1]),
  ``bpb`` (bits per byte of the correct continuation, > 0), ``n_choices`` (≥ 2; chance = 1 / n_choices),
  ``chance`` (a chance accuracy in [0, 1)), ``ppl`` (a perplexity, > 0), any other metric allowed;
- **long**: columns ``task``, ``metric``, ``value`` beside the point's identifiers (``run_id``, ``params``,
  ``tokens``, ``step``, ...); :func:`to_wide` pivots it to the wide form.

Besides the task columns a task table needs ``run_id``, ``params`` (N) and ``tokens`` (D); ``loss`` (the
general validation loss) and ``step`` are optional.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.errors import RunsTableError, ScalefitInputError

PREFIX = "task/"
IDENTIFIERS = ("run_id", "params", "tokens")
LONG_COLUMNS = ("task", "metric", "value")
UNIT_METRICS = ("acc", "acc_norm", "chance")  # must lie in [0, 1]
POSITIVE_METRICS = ("bpb", "ppl")
LOOKED_FOR = "task/<name>/acc (with task/<name>/bpb, task/<name>/n_choices), or a long form with task, metric, value"


def column(task: str, metric: str) -> str:
    """The wide column of ``metric`` of ``task``: ``task/<task>/<metric>``."""
    return f"{PREFIX}{task}/{metric}"


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet or CSV file (by suffix) as it is; a clear error when it cannot be read."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
    except FileNotFoundError:
        raise RunsTableError(f"{path}: no such file") from None
    except (OSError, ValueError, ImportError) as err:
        raise RunsTableError(f"{path}: cannot be read as a table ({type(err).__name__}: {err})") from None
    raise RunsTableError(f"{path}: unknown suffix; give a .parquet, .pq, .csv or .csv.gz runs table")


def is_long(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` holds task metrics in the long form (``task``, ``metric``, ``value``)."""
    return all(c in frame.columns for c in LONG_COLUMNS)


def to_wide(frame: pd.DataFrame, source: str = "the table") -> pd.DataFrame:
    """Pivot a long task table to one row per evaluation point with ``task/<name>/<metric>`` columns.

    The point is identified by every column other than ``task``, ``metric``, ``value`` and ``stderr``;
    two rows for one (point, task, metric) are an error that names them.
    """
    keys = [c for c in frame.columns if c not in (*LONG_COLUMNS, "stderr")]
    duplicated = frame.duplicated([*keys, "task", "metric"], keep=False)
    if duplicated.any():
        row = frame.loc[duplicated].iloc[0]
        raise RunsTableError(
            f"{source}: {int(duplicated.sum())} rows repeat a (point, task, metric), e.g. data row "
            f"{frame.index[duplicated][0] + 1}: run_id={row.get('run_id')!r}, task={row['task']!r}, "
            f"metric={row['metric']!r}; keep one value per task and metric at each evaluation point "
            "(filter variants, few-shot settings or splits first)"
        )
    values = pd.to_numeric(frame["value"], errors="coerce")
    labels = PREFIX + frame["task"].astype(str) + "/" + frame["metric"].astype(str)
    work = frame[keys].assign(_column=labels.to_numpy(), _value=values.to_numpy())
    wide = work.pivot_table(index=keys, columns="_column", values="_value", aggfunc="first", dropna=False,
                            observed=True).reset_index()
    wide.columns.name = None
    return wide.dropna(axis=0, how="all", subset=[c for c in wide.columns if c.startswith(PREFIX)])


def task_names(frame: pd.DataFrame) -> list[str]:
    """Tasks with an ``acc`` column, sorted."""
    return sorted({c[len(PREFIX):].rsplit("/", 1)[0] for c in frame.columns
                   if c.startswith(PREFIX) and c.endswith("/acc")})


def validate(frame: pd.DataFrame, source: str = "the table") -> pd.DataFrame:
    """The wide task table, checked: identifiers present and positive, task metrics in range.

    Raises
    ------
    RunsTableError
        One line naming the source, the column, the first offending data row and what to do.
    """
    if is_long(frame):
        frame = to_wide(frame, source)
    if not any(c.startswith(PREFIX) for c in frame.columns):
        raise RunsTableError(f"{source}: no task columns; scalefit tasks looks for {LOOKED_FOR} "
                             "(runs made before the runners scored tasks have none: re-run them with tasks on)")
    missing = [c for c in IDENTIFIERS if c not in frame.columns]
    if missing:
        raise RunsTableError(f"{source}: missing column(s) {', '.join(missing)}; a task table needs "
                             f"{', '.join(IDENTIFIERS)} beside the task columns")
    if not task_names(frame):
        raise RunsTableError(f"{source}: task columns but no accuracy; scalefit tasks looks for {LOOKED_FOR}")
    frame = frame.reset_index(drop=True).copy()
    frame["run_id"] = frame["run_id"].astype(str)
    for name in (*IDENTIFIERS[1:], *(["loss"] if "loss" in frame.columns else []),
                 *(c for c in frame.columns if c.startswith(PREFIX))):
        frame[name] = _numeric(frame[name], source, name)
    for name in ("params", "tokens"):
        _check(frame, name, source, ~(frame[name] > 0), "is not a finite number > 0", "fix or drop the row")
    for name in frame.columns:
        if not name.startswith(PREFIX):
            continue
        values, metric = frame[name], name.rsplit("/", 1)[1]
        present = values.notna()
        if metric in UNIT_METRICS:
            _check(frame, name, source, present & ~values.between(0.0, 1.0),
                   "is outside [0, 1]", "give accuracies as fractions (0.57, not 57)")
        elif metric in POSITIVE_METRICS or metric == "loss":
            _check(frame, name, source, present & ~(values > 0), "is not a finite number > 0", "fix or drop the row")
        elif metric == "n_choices":
            _check(frame, name, source, present & ~(values >= 2), "is not a number of choices >= 2",
                   "give the number of answer options of the task")
    return frame


def _numeric(values: pd.Series, source: str, name: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = numbers.isna() & values.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RunsTableError(f"{source}: column {name!r}, data row {row + 1}: {values.iloc[row]!r} is not a "
                             "number; fix or drop the row")
    return numbers.replace([np.inf, -np.inf], np.nan) if name.startswith(PREFIX) else numbers


def _check(frame: pd.DataFrame, name: str, source: str, bad: pd.Series, what: str, fix: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RunsTableError(f"{source}: column {name!r}, data row {row + 1}: {frame[name].iloc[row]!r} {what} "
                             f"({int(bad.sum())} row(s)); {fix}")


def load_task_table(path: str | os.PathLike, columns: dict[str, str] | None = None,
                    where: dict[str, str] | None = None, max_params: float | None = None) -> pd.DataFrame:
    """Read, rename, filter and :func:`validate` a task table (wide or long; parquet or CSV).

    Parameters
    ----------
    columns
        Renames ``{file column: table column}`` (the CLI's ``--map OLD=NEW``), e.g. ``{"model": "run_id"}``.
    where
        Keep rows whose ``column`` equals the value (numerically for a numeric column), e.g.
        ``{"variant": "standard", "num_fewshot": "0"}``.
    max_params
        Keep runs of at most this many parameters (the ladder; larger runs held out).

    Rows at ``tokens == 0`` (evaluations of the initialisation) are dropped, and a note in the table's
    ``attrs["notes"]`` says how many.
    """
    source = str(path)
    frame = read_table(path)
    if columns:
        missing = [old for old in columns if old not in frame.columns]
        if missing:
            raise RunsTableError(f"{source}: --map names column(s) {', '.join(map(repr, missing))} that the file "
                                 f"lacks; it has {', '.join(map(str, frame.columns))}")
        frame = frame.rename(columns=columns)
    for name, wanted in (where or {}).items():
        frame = frame[_matches(frame, name, wanted, source)]
    if not len(frame):
        raise RunsTableError(f"{source}: no rows left after --where {where}; check the values")
    notes = []
    if "tokens" in frame.columns:
        initial = pd.to_numeric(frame["tokens"], errors="coerce") == 0
        if initial.any():
            frame = frame[~initial]
            notes.append(f"{int(initial.sum())} rows at tokens = 0 (the initialisation) left out")
    frame = validate(frame, source)
    if max_params is not None:
        held = frame["params"] > max_params
        frame = frame[~held].reset_index(drop=True)
        notes.append(f"runs above {max_params:.3g} parameters held out ({int(held.sum())} rows)")
        if not len(frame):
            raise RunsTableError(f"{source}: no run has at most {max_params:.3g} parameters (--max-params)")
    frame.attrs["notes"] = notes
    return frame


def _matches(frame: pd.DataFrame, name: str, wanted: str, source: str) -> pd.Series:
    if name not in frame.columns:
        raise RunsTableError(f"{source}: --where {name}={wanted}: no column {name!r}; the file has "
                             f"{', '.join(map(str, frame.columns))}")
    values = frame[name]
    if pd.api.types.is_numeric_dtype(values):
        try:
            return values == float(wanted)
        except ValueError:
            raise RunsTableError(f"{source}: --where {name}={wanted}: {name!r} is numeric; give a number") from None
    return values.astype(str) == wanted


def chance_levels(frame: pd.DataFrame, tasks: list[str], overrides: dict[str, float] | None = None) -> dict:
    """Chance accuracy per task and where it came from: ``{task: (chance, "given" | "n_choices" | ...)}``.

    In order: ``overrides`` (the CLI's ``--chance``), a ``chance`` metric, ``1 / n_choices``, else inferred
    as the lowest accuracy any run reached (rounded down to a hundredth): the accuracy of the least-trained
    points, which sit at chance when the table starts early enough. An inferred chance is fitted, not fixed.
    """
    overrides = overrides or {}
    levels = {}
    for task in tasks:
        if task in overrides:
            levels[task] = (float(overrides[task]), "given on the command line")
        elif column(task, "chance") in frame and frame[column(task, "chance")].notna().any():
            levels[task] = (float(frame[column(task, "chance")].median()), "chance column")
        elif column(task, "n_choices") in frame and frame[column(task, "n_choices")].notna().any():
            levels[task] = (1.0 / float(frame[column(task, "n_choices")].median()), "1 / n_choices")
        else:
            lowest = float(frame[column(task, "acc")].min())
            levels[task] = (np.floor(100 * lowest) / 100, "inferred (lowest accuracy; fitted)")
    return levels


def select_tasks(frame: pd.DataFrame, wanted: list[str] | None, source: str = "the table") -> list[str]:
    """The tasks to analyse: ``wanted`` (checked against the table) or every task with an accuracy."""
    known = task_names(frame)
    if not wanted:
        return known
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise ScalefitInputError(f"{source}: unknown task(s) {', '.join(unknown)}; the table has accuracies for "
                                 f"{', '.join(known)}")
    return list(dict.fromkeys(wanted))
