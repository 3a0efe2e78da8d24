"""Log evaluation points from your own training loop into a runs table.

``RunLogger`` is called once per evaluation from any loop (plain PyTorch, nanoGPT, litgpt, a Hugging Face
``TrainerCallback``) and keeps a valid runs table on disk: every flush rewrites the parquet file atomically
(:func:`scalefit.runs.write_runs`), so ``scalefit fit`` can read it at any moment, even while the run
trains. It needs only pandas and pyarrow (no torch): values such as 0-d tensors are turned into numbers
with ``float()``.

Example (docs/bring-your-own-runs.md has a whole PyTorch loop)::

    from scalefit.log import RunLogger

    logger = RunLogger("runs/parts/gpt-20m-lr3e-3.parquet", run_id="gpt-20m-lr3e-3",
                       params=n_non_embedding, lr=3e-3, batch_size=tokens_per_step)
    for step in range(start_step, total_steps + 1):
        ...  # train
        if step % eval_every == 0:
            logger.log(step=step, tokens=step * tokens_per_step, loss=val_loss)
    logger.close()  # status "ok", or "diverged" when a logged loss was NaN/inf

Resuming: a logger opened on an existing file keeps its rows; the first row it logs for a run drops that
run's rows at the same or later steps (they came after the checkpoint the run resumed from), so a
restarted run never logs a step twice. One process per file: runs trained at the same time each write
their own file, and ``scalefit fit runs/`` reads the folder's ``parts/*.parquet`` together.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Self

import pandas as pd

from scalefit.errors import RunsTableError
from scalefit.runs import NUMERIC_COLUMNS, STATUSES, write_runs

__all__ = ["RunLogger"]

_REQUIRED = ("params", "tokens", "loss")
_INTEGER_COLUMNS = ("step", "seed", "warmup", "n_layers", "d_model", "seq_len", "vocab_size")


class RunLogger:
    """Append one run's evaluation points to a runs table (parquet), rewritten atomically on each flush.

    Parameters
    ----------
    path
        The parquet file to write (created with its folder if absent; an existing one is kept and added to).
    run_id
        This run's id (the ``run_id`` column).
    flush_every
        Write the file every this many :meth:`log` calls (default 1: after every evaluation; the file
        is small, a few hundred rows per run). :meth:`close` and :meth:`flush` always write.
    **columns
        Values shared by every row of the run, e.g. ``params=`` (N, non-embedding), ``lr=``,
        ``batch_size=`` (tokens per step), ``family=``, ``seed=``; any runs-table column (see
        :mod:`scalefit.runs`) or a column of your own.

    Each row gets ``wall_time`` (seconds since the logger started, continued from the run's last logged
    ``wall_time`` when resuming) unless :meth:`log` is given one.
    """

    def __init__(self, path: str | os.PathLike, run_id: str, *, flush_every: int = 1, **columns) -> None:
        if not str(run_id).strip():
            raise RunsTableError("RunLogger needs a run_id: the name of this run (e.g. 'gpt-20m-lr3e-3').")
        if flush_every < 1:
            raise RunsTableError(f"flush_every must be 1 or more, not {flush_every}.")
        self.path = Path(path)
        self.run_id = str(run_id)
        self.flush_every = int(flush_every)
        self.columns = {name: _scalar(name, value) for name, value in columns.items()}
        self._table = self._read_existing()
        mine = self._table[self._table["run_id"].astype(str) == self.run_id] if len(self._table) else self._table
        resumed = pd.to_numeric(mine.get("wall_time", pd.Series(dtype=float)), errors="coerce").max()
        self._time_offset = 0.0 if pd.isna(resumed) else float(resumed)
        self._started = time.monotonic()
        self._rows: list[dict] = []
        self._resumed_from_step: float | None = None
        self._unflushed = 0
        self._diverged = False
        self._closed = False

    def log(self, **values) -> None:
        """Record one evaluation point: at least ``tokens`` and ``loss`` (and ``params`` unless given
        to the constructor); ``step`` is strongly advised (it orders the rows and makes resuming safe)."""
        if self._closed:
            raise RunsTableError(f"RunLogger for {self.run_id!r} is closed; open a new one to log more rows.")
        row = {"run_id": self.run_id, **self.columns, **{k: _scalar(k, v) for k, v in values.items()}}
        missing = [c for c in _REQUIRED if row.get(c) is None]
        if missing:
            raise RunsTableError(
                f"RunLogger.log for run {self.run_id!r} lacks {', '.join(missing)}; pass them to log(...) or, "
                f"for values shared by the run such as params, to RunLogger(..., params=N).")
        row.setdefault("wall_time", self._time_offset + time.monotonic() - self._started)
        if not math.isfinite(row["loss"]):
            self._diverged = True
        if self._resumed_from_step is None and "step" in row:
            self._resumed_from_step = row["step"]
        self._rows.append(row)
        self._unflushed += 1
        if self._unflushed >= self.flush_every:
            self.flush()

    def flush(self) -> Path:
        """Write the table now (atomically: readers see the old file or the new one, never a mix)."""
        self._unflushed = 0
        return write_runs(self.table(), self.path)

    def close(self, status: str | None = None) -> Path:
        """Mark the run finished and write the table; ``status`` is ``ok``, ``diverged`` or ``killed``
        (default: ``diverged`` when a logged loss was NaN or infinite, else ``ok``)."""
        status = status or ("diverged" if self._diverged else "ok")
        if status not in STATUSES:
            raise RunsTableError(f"RunLogger.close(status={status!r}): a status is one of {', '.join(STATUSES)}.")
        for row in self._rows:
            row["status"] = status
        self._closed = True
        return self.flush()

    def table(self) -> pd.DataFrame:
        """The whole table as it will be written: earlier rows (other runs, this run before the step it
        resumed from) and the rows logged here."""
        old = self._table
        if len(old) and self._resumed_from_step is not None and "step" in old:
            superseded = (old["run_id"].astype(str) == self.run_id) & (
                pd.to_numeric(old["step"], errors="coerce") >= self._resumed_from_step)
            old = old[~superseded.to_numpy()]
        new = pd.DataFrame(self._rows)
        if "status" in new or "status" in old:
            new["status"] = new.get("status", pd.Series("ok", index=new.index)).fillna("ok")
        frames = [f for f in (old, new) if len(f)]
        table = pd.concat(frames, ignore_index=True) if frames else new
        for column in _INTEGER_COLUMNS:
            if column in table and table[column].notna().all():
                table[column] = table[column].astype("int64")
        return table

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if not self._closed:
            self.close("killed" if kind is not None else None)

    def _read_existing(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame()
        try:
            table = pd.read_parquet(self.path)
        except (OSError, ValueError) as err:
            raise RunsTableError(
                f"RunLogger cannot add to {str(self.path)!r}: it is not a readable parquet runs table "
                f"({type(err).__name__}); move it away or log to another file.") from err
        if len(table) and "run_id" not in table:
            raise RunsTableError(f"RunLogger cannot add to {str(self.path)!r}: it has no run_id column, so it is "
                                 "not a runs table; log to another file.")
        return table


def _scalar(name: str, value):
    """A cell value: numbers (0-d tensors, numpy scalars) as float or int, text as str."""
    if value is None or (isinstance(value, (str, bool)) and name not in NUMERIC_COLUMNS):
        return value
    if name in NUMERIC_COLUMNS or hasattr(value, "__float__"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RunsTableError(f"RunLogger: {name}={value!r} is not a number; {name} must be numeric.") from None
        if name in _INTEGER_COLUMNS and number.is_integer():
            return int(number)
        return number
    return str(value)
