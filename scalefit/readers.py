"""Other tools' exports as runs tables: W&B run and history CSVs, MLflow's long-form metrics, mapping files.

:func:`scalefit.runs.load_runs` reads every format through this module (``format=`` ``"auto"``,
``"runs"``, ``"wandb"``, ``"mlflow"``); the functions here work on frames already read, so the file
errors stay in one place (``runs.py``).

W&B (https://docs.wandb.ai): the *runs* export of the Runs table (one row per run, ``Name``, ``State``,
config and summary columns) and a *history* export (one row per logged step, ``_step``, ``_runtime``,
with empty metric cells on steps where a metric was not logged). Both are runs tables once their columns
are mapped; W&B's own bookkeeping columns take their runs-table names unless the mapping says otherwise
(:data:`WANDB_DEFAULT_COLUMNS`).

MLflow (https://mlflow.org/docs/latest/): the long form of ``MlflowClient.get_metric_history`` (one row
per ``run_id, key, value, step, timestamp``) is pivoted to one row per ``(run_id, step)`` with one column
per key; the per-run facts (parameters, status, run name) come from a ``search_runs`` export
(``run_id, status, params.<name>, tags.mlflow.runName, ...``) joined as the *run info* table.

Mapping file (``--columns cols.toml``)::

    format = "wandb"              # optional: auto, runs, wandb or mlflow
    flops_convention = "6ND"      # optional
    run_info = "runs.csv"         # optional: per-run table joined on the run id (path relative to this file)

    [columns]                     # file column = runs-table column
    Name = "run_id"
    "val/loss" = "loss"

    [status]                      # file value = runs-table status (ok, diverged, killed)
    finished = "ok"
    crashed = "diverged"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.errors import RunsTableError

#: File suffixes read, and the reader each one uses.
SUPPORTED_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".csv.gz": "csv"}
FORMATS = ("auto", "runs", "wandb", "mlflow")
MLFLOW_METRIC_COLUMNS = ("run_id", "key", "value", "step")
#: Columns only W&B writes; one of them marks a file as a W&B export.
WANDB_MARKERS = ("_step", "_runtime", "_timestamp", "State", "Sweep")
#: W&B's bookkeeping columns and their runs-table names, used unless the mapping names them.
WANDB_DEFAULT_COLUMNS = {"_step": "step", "_runtime": "wall_time", "State": "status"}
#: Per-run id columns a run-info table may share with the history, in the order they are tried.
RUN_KEYS = ("run_id", "ID", "Name", "name")
#: Other tools' names for runs-table columns, quoted in the hint when a required column is missing.
KNOWN_ALIASES = {
    "run_id": ("Name", "ID", "name", "run", "run_name", "tags.mlflow.runName"),
    "params": ("model_params", "n_params", "num_params", "parameters", "params.model_params", "N"),
    "tokens": ("train_tokens", "tokens_seen", "num_tokens", "consumed_tokens", "trainer/tokens", "D"),
    "loss": ("val/loss", "val_loss", "eval/loss", "eval_loss", "validation/loss", "valid/loss"),
    "step": ("_step", "global_step", "trainer/global_step", "iter"),
    "status": ("State", "state"),
}
_MLFLOW_RUN_COLUMNS = {"status": "status", "tags.mlflow.runName": "run_name"}


# --- reading files ----------------------------------------------------------------------------------------


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_input(path: Path, source: str, mapping: dict[str, str], fmt: str,
                run_info: str | os.PathLike | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The file (or sweep folder) as a frame in runs-table shape, and the renames still to apply."""
    df = read_file(path, source, mapping)
    fmt = detect_format(df.columns) if fmt == "auto" else fmt
    if fmt == "mlflow":
        df = mlflow_to_wide(df, source)
    if run_info is not None:
        info = read_file(Path(run_info), str(run_info), {})
        if "run_id" in info.columns and any(str(c).startswith("params.") for c in info.columns):
            info = mlflow_run_info(info)
        df = join_run_info(df, info, source, str(run_info))
    if fmt == "wandb":
        mapping = {**mapping, **wandb_defaults(df.columns, mapping)}
    return df, mapping


def read_file(path: Path, source: str, mapping: dict[str, str]) -> pd.DataFrame:
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to {os.getcwd()!r})"
        raise RunsTableError(f"runs table {source!r} not found{where}; check the path.")
    if path.is_dir():
        return _read_parts(path, source)
    suffix = suffix_of(path)
    kind = SUPPORTED_SUFFIXES.get(suffix)
    if kind is None:
        raise RunsTableError(
            f"runs table {source!r}: cannot tell its format from the suffix {suffix or '(none)'!r}; "
            f"scalefit reads {', '.join(SUPPORTED_SUFFIXES)} files and sweep folders. Convert it (e.g. with "
            f"pandas) or rename it if it is one of these."
        )
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        # Keep run ids as written ("007" stays "007"): read the run_id column, or its source, as text.
        id_source = next((old for old, new in mapping.items() if new == "run_id"), "run_id")
        return pd.read_csv(path, dtype={id_source: str})
    except pd.errors.EmptyDataError:
        raise RunsTableError(
            f"runs table {source!r} is empty; it needs a header line and one row per (run, evaluation "
            f"point)."
        ) from None
    except Exception as err:  # any reader failure means the same thing to the user
        what = "a parquet file" if kind == "parquet" else "a comma-separated text file"
        raise RunsTableError(
            f"runs table {source!r} cannot be read as {what} ({type(err).__name__}: {_first_line(err)}); "
            f"check that the file is complete and really is {what}, or rewrite it."
        ) from err


def _read_parts(folder: Path, source: str) -> pd.DataFrame:
    """A sweep folder: every ``parts/*.parquet`` (or ``*.parquet`` in the folder itself), in name order."""
    parts_dir = folder / "parts" if (folder / "parts").is_dir() else folder
    parts = sorted(parts_dir.glob("*.parquet"))
    if not parts:
        raise RunsTableError(
            f"runs table {source!r} is a folder without parquet parts (looked in {str(parts_dir)!r}); pass a "
            f".parquet or .csv file, or a sweep folder whose parts/ holds finished runs."
        )
    frames = []
    for part in parts:
        try:
            frames.append(pd.read_parquet(part))
        except Exception as err:  # a damaged part: name it, the rest of the sweep is fine
            raise RunsTableError(
                f"runs table {source!r}: part {part.name!r} cannot be read ({type(err).__name__}: "
                f"{_first_line(err)}); move it out of {str(parts_dir)!r} (the sweep reruns that run) and "
                f"load again."
            ) from err
    return pd.concat(frames, ignore_index=True)


#: Runs-table columns whose values must be finite and > 0 (``load_runs``' checks; ``step`` must be >= 0).
_POSITIVE_COLUMNS = ("params", "tokens", "batch_size", "lr", "flops", "n_layers", "d_model", "seq_len")


def final_rows_of_parquet(path: Path, source: str, mapping: dict[str, str], status_map: dict[str, str],
                          statuses: tuple[str, ...], numeric: tuple[str, ...],
                          notes: list[str]) -> pd.DataFrame | None:
    """``keep="final"`` on a parquet file: check every row column by column, choose each run's last row from
    the key columns, then read only those rows.

    Returns None (the caller reads and validates the whole file, and names any problem) when the file
    cannot be read this way: unreadable, not in runs-table shape, or any row that ``load_runs``' checks
    would refuse (a value out of range, text in a numeric column, an unknown status, a repeated step).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except (OSError, pa.ArrowException):
        return None
    names = file.schema_arrow.names
    if detect_format(names) != "runs":
        return None
    source_of = {new: old for old, new in mapping.items()}

    def file_column(column: str) -> str | None:
        name = source_of.get(column, None if column in mapping else column)
        return name if name in names else None

    order = file_column("step") or file_column("tokens")
    keys = {c: file_column(c) for c in ("run_id", "loss", "split", "status")}
    if order is None or keys["run_id"] is None or keys["loss"] is None:
        return None
    text = [keys[c] for c in ("run_id", "split", "status") if keys[c]]
    file = pq.ParquetFile(path, read_dictionary=text)  # ids and labels as codes: 10M rows in a few MB
    schema = file.schema_arrow
    if any(not (pa.types.is_integer(schema.field(name).type) or pa.types.is_floating(schema.field(name).type))
           for name in filter(None, map(file_column, numeric))):
        return None  # text (or booleans) in a numeric column: the full read names the cells
    try:
        table = file.read(columns=list(dict.fromkeys([order, *filter(None, keys.values())])))
        loss = table.column(keys["loss"]).to_numpy().astype(float)
        position = table.column(order).to_numpy().astype(float)
        group = _codes(table.column(keys["run_id"]))[0]
        if (group < 0).any():
            return None  # rows without a run_id
        if keys["split"]:
            split = _codes(table.column(keys["split"]))[0]
            group = group * (int(split.max(initial=0)) + 2) + split + 1
        status_ok = np.ones(len(loss), dtype=bool)
        if keys["status"]:
            codes, values = _codes(table.column(keys["status"]))
            recoded = [status_map.get(v, v) for v in values]
            if not set(recoded) <= set(statuses) or (codes < 0).any():
                return None  # unknown or missing statuses
            status_ok = np.isin(codes, [i for i, v in enumerate(recoded) if v == "ok"])
    except (pa.ArrowException, TypeError, ValueError):
        return None
    dropped = np.isnan(loss) & status_ok
    usable = np.flatnonzero(~dropped)
    with np.errstate(invalid="ignore"):
        bad_loss = (status_ok & np.isinf(loss)) | (np.isfinite(loss) & (loss <= 0))
    if bad_loss.any() or not len(usable) or not _in_range(file, file_column, usable):
        return None  # the full read says what is wrong (no rows, no loss, bad values)
    by_group = np.lexsort((position[usable], group[usable]))
    same_group = group[usable][by_group][1:] == group[usable][by_group][:-1]
    if (same_group & (position[usable][by_group][1:] == position[usable][by_group][:-1])).any():
        return None  # a run logs one step twice
    if dropped.any():
        notes.append(no_loss_note(source, int(dropped.sum()), len(loss), len(np.unique(group[dropped]))))
    rows = np.sort(usable[by_group[np.r_[~same_group, True]]])
    taken = pa.array(rows)
    columns = {name: (table.column(name) if name in table.column_names else file.read(columns=[name]).column(0))
               .take(taken) for name in names}
    df = pa.table(columns).to_pandas()
    for name in df.columns:
        if isinstance(df[name].dtype, pd.CategoricalDtype):
            df[name] = df[name].astype(df[name].cat.categories.dtype)
    df.index = rows
    return df


def _in_range(file, file_column, rows: np.ndarray) -> bool:
    """Whether the ``rows`` of every positive column are finite and > 0 and ``step`` finite and >= 0,
    read one column at a time."""
    checks = [(c, 0.0, False) for c in _POSITIVE_COLUMNS] + [("step", 0.0, True)]
    for column, bound, inclusive in checks:
        name = file_column(column)
        if name is None:
            continue
        values = file.read(columns=[name]).column(0).to_numpy().astype(float)[rows]
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(values) & ((values >= bound) if inclusive else (values > bound))
        if not ok.all():
            return False
    return True


def _codes(column) -> tuple[np.ndarray, list]:
    """Integer codes (-1 for missing) and the distinct values of a text column read by pyarrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(array.type):
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
                or pa.types.is_integer(array.type)):
            raise TypeError(f"key column of type {array.type}")
        array = pc.dictionary_encode(array)
    codes = pc.fill_null(array.indices, -1).to_numpy().astype(np.int64)
    return codes, array.dictionary.to_pylist()


def last_of_groups(group: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of the row with the largest ``order`` in each group (stable: of equal ones, the later)."""
    if len(group) == 0:
        return np.array([], dtype=np.intp)
    by_group = np.lexsort((order, group))
    sorted_group = group[by_group]
    return by_group[np.r_[sorted_group[1:] != sorted_group[:-1], True]]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else "no details"


# --- other tools' exports ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    """How to read one tool's export: renames, status recoding, format, FLOPs convention, run info."""

    columns: dict[str, str] = field(default_factory=dict)
    status_map: dict[str, str] = field(default_factory=dict)
    format: str = "auto"
    flops_convention: str | None = None
    run_info: Path | None = None


def parse_value_map(text: str | Iterable[str], what: str = "--status-map") -> dict[str, str]:
    """``"finished=ok,crashed=diverged"`` (or a list of such items) → ``{"finished": "ok", ...}``."""
    items = text.split(",") if isinstance(text, str) else [i for t in text for i in str(t).split(",")]
    mapping: dict[str, str] = {}
    for item in (i for i in items if i.strip()):
        old, sep, new = item.rpartition("=")
        if not sep or not old.strip() or not new.strip():
            raise RunsTableError(f"{what} item {item!r} is not of the form FILE_VALUE=STATUS; write e.g. "
                                 f"{what} finished=ok,crashed=diverged")
        mapping[old.strip()] = new.strip()
    return mapping


def read_mapping_file(path: str | os.PathLike) -> InputSpec:
    """Read a ``cols.toml`` mapping file (layout in the module docstring)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RunsTableError(f"mapping file {str(path)!r} not found; check the path given to --columns.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise RunsTableError(f"mapping file {str(path)!r} is not valid TOML ({err}); see docs/bring-your-own-runs.md "
                             "for its layout.") from None
    known = {"columns", "status", "format", "flops_convention", "run_info"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise RunsTableError(f"mapping file {str(path)!r}: unknown key {unknown[0]!r}; the keys are "
                             f"{', '.join(sorted(known))}.")
    for table in ("columns", "status"):
        entries = doc.get(table, {})
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            raise RunsTableError(f"mapping file {str(path)!r}: [{table}] must hold lines like "
                                 f"'\"file name\" = \"runs-table name\"' (strings on both sides).")
    fmt = doc.get("format", "auto")
    if fmt not in FORMATS:
        raise RunsTableError(f"mapping file {str(path)!r}: format {fmt!r} is not one of {', '.join(FORMATS)}.")
    run_info = doc.get("run_info")
    return InputSpec(
        columns=dict(doc.get("columns", {})), status_map=dict(doc.get("status", {})), format=fmt,
        flops_convention=doc.get("flops_convention"),
        run_info=None if run_info is None else path.parent / run_info,
    )


def detect_format(columns: Iterable[str]) -> str:
    """``"mlflow"`` for MLflow's long form, ``"wandb"`` for a W&B export, else ``"runs"``."""
    columns = set(map(str, columns))
    if set(MLFLOW_METRIC_COLUMNS) <= columns and "loss" not in columns:
        return "mlflow"
    if columns & set(WANDB_MARKERS):
        return "wandb"
    return "runs"


def mlflow_to_wide(long: pd.DataFrame, source: str) -> pd.DataFrame:
    """MLflow's metric history (``run_id, key, value, step[, timestamp]``) → one row per ``(run_id, step)``.

    A key logged twice at one step keeps its latest value (by ``timestamp`` when present, else the later
    row). ``timestamp`` (ms since the epoch) becomes ``wall_time``, seconds since the run's first metric.
    """
    missing = [c for c in MLFLOW_METRIC_COLUMNS if c not in long.columns]
    if missing:
        raise RunsTableError(f"MLflow metrics {source!r} lacks {', '.join(map(repr, missing))}; an MLflow metric "
                             f"export has the columns {', '.join(MLFLOW_METRIC_COLUMNS)}[, timestamp].")
    long = long.assign(run_id=long["run_id"].astype(str), key=long["key"].astype(str))
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    order = ["timestamp"] if "timestamp" in long.columns else []
    long = long.reset_index(drop=True).rename_axis("_pos").reset_index().sort_values([*order, "_pos"], kind="stable")
    latest = long.drop_duplicates(["run_id", "step", "key"], keep="last")
    wide = latest.pivot(index=["run_id", "step"], columns="key", values="value")
    wide.columns.name = None
    if "timestamp" in latest.columns:
        times = latest.groupby(["run_id", "step"])["timestamp"].max()
        started = long.groupby("run_id")["timestamp"].min()
        wide["wall_time"] = (times - started.reindex(times.index.get_level_values("run_id")).to_numpy()) / 1e3
    return wide.reset_index()


def mlflow_run_info(runs: pd.DataFrame) -> pd.DataFrame:
    """A ``search_runs`` export → ``run_id``, ``status``, ``run_name`` and each ``params.<name>`` as ``<name>``."""
    renames = {c: c.removeprefix("params.") for c in runs.columns if str(c).startswith("params.")}
    renames.update({c: new for c, new in _MLFLOW_RUN_COLUMNS.items() if c in runs.columns})
    return runs[["run_id", *renames]].rename(columns=renames)


def join_run_info(history: pd.DataFrame, info: pd.DataFrame, source: str, info_source: str) -> pd.DataFrame:
    """Add the per-run columns of ``info`` to every row of ``history``, matched on a shared run id column."""
    key = next((k for k in RUN_KEYS if k in history.columns and k in info.columns), None)
    if key is None:
        raise RunsTableError(
            f"run info {info_source!r} shares no run id column with {source!r}; both need one of "
            f"{', '.join(RUN_KEYS)} holding the same ids.")
    info = info.assign(**{key: info[key].astype(str)})
    repeated = info[key][info[key].duplicated()]
    if len(repeated):
        raise RunsTableError(f"run info {info_source!r}: run {repeated.iloc[0]!r} appears twice in column {key!r}; "
                             "it needs one row per run.")
    extra = [c for c in info.columns if c != key and c not in history.columns]
    joined = history.assign(**{key: history[key].astype(str)}).merge(info[[key, *extra]], on=key, how="left")
    unmatched = joined[key][joined[extra[0]].isna() & ~history[key].astype(str).isin(info[key])] if extra else []
    if len(unmatched):
        raise RunsTableError(f"{source!r}: run {unmatched.iloc[0]!r} has no row in the run info {info_source!r}; "
                             "export the run info of every run in the history.")
    return joined


def wandb_defaults(columns: Iterable[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """W&B's bookkeeping columns to rename, those the mapping leaves alone and whose target is free."""
    columns = set(map(str, columns))
    taken = set(mapping.values()) | (columns - set(mapping))
    return {old: new for old, new in WANDB_DEFAULT_COLUMNS.items()
            if old in columns and old not in mapping and new not in taken}


def recode_status(df: pd.DataFrame, status_map: Mapping[str, str], allowed: Iterable[str], source: str) -> None:
    """Replace the file's status values by runs-table statuses, in place (values not in the map stay)."""
    allowed = tuple(allowed)
    bad = [f"{old}={new}" for old, new in status_map.items() if new not in allowed]
    if bad:
        raise RunsTableError(f"status map {bad[0]!r}: a status becomes one of {', '.join(allowed)}; e.g. "
                             "--status-map finished=ok,crashed=diverged,killed=killed")
    if not status_map:
        return
    if "status" not in df.columns:
        raise RunsTableError(f"runs table {source!r} has no status column to recode with the status map "
                             f"{dict(status_map)}; map the file's status column to 'status' first "
                             "(e.g. --map State=status).")
    status = df["status"].astype(object)
    df["status"] = status.map(lambda v: status_map.get(v, v) if isinstance(v, str) else v)


def status_hint(values: Iterable[str], allowed: Iterable[str]) -> str:
    """The ``--status-map`` to suggest for status values outside ``allowed``."""
    guesses = {"finished": "ok", "complete": "ok", "completed": "ok", "success": "ok", "crashed": "diverged",
               "failed": "diverged", "killed": "killed", "canceled": "killed", "cancelled": "killed"}
    allowed = tuple(allowed)
    pairs = [f"{value}={guesses.get(value.lower(), value.lower() if value.lower() in allowed else 'STATUS')}"
             for value in dict.fromkeys(map(str, values)) if value not in allowed]
    return ",".join(pairs[:6])


def drop_rows_without_loss(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, str | None]:
    """Drop rows whose loss is empty (NaN) unless their status marks a run that blew up; say how many went.

    A history export has a row per logged step and a loss only on evaluation steps; those other rows are
    no evaluation points. Rows of runs with status ``diverged`` or ``killed`` keep their NaN losses.
    """
    empty = df["loss"].isna().to_numpy()
    if "status" in df.columns:
        empty = empty & ((df["status"] == "ok").to_numpy() | df["status"].isna().to_numpy())
    if not empty.any():
        return df, None
    return df.loc[~empty], no_loss_note(source, int(empty.sum()), len(df), df.loc[empty, "run_id"].nunique())


def no_loss_note(source: str, n_dropped: int, n_rows: int, n_runs: int) -> str:
    """The one-line note saying how many rows without a loss were dropped."""
    return (f"{source}: dropped {n_dropped:,} of {n_rows:,} rows without a loss (in {n_runs:,} runs: steps logged "
            "without an evaluation); give a run that blew up status 'diverged' to keep its NaN losses")
