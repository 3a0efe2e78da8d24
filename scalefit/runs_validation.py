"""The runs table's schema and its checks: column names, statuses, FLOPs conventions, and the messages that
name the file, the column, the first offending rows (numbered from 1, header not counted) and what to do.

:func:`scalefit.runs.load_runs` calls these; nothing here reads a file.
"""

from __future__ import annotations

import difflib
import math

import numpy as np
import pandas as pd

from scalefit import readers
from scalefit.errors import RunsTableError

REQUIRED_COLUMNS = ("run_id", "params", "tokens", "loss")
NUMERIC_COLUMNS = (
    "params", "tokens", "loss", "flops", "params_embedding", "lr", "batch_size", "warmup",
    "step", "seed", "n_layers", "d_model", "seq_len", "vocab_size", "wall_time",
)
STATUSES = ("ok", "diverged", "killed")
#: FLOPs conventions ``load_runs`` can derive; see ``derive_flops`` for the formulas.
FLOPS_CONVENTIONS = ("6ND", "6ND+attn")
DEFAULT_FLOPS_CONVENTION = "6ND"
#: Label recorded when a file gives ``flops`` without a ``flops_convention`` column.
UNSPECIFIED_CONVENTION = "unspecified"

#: Columns holding a model's activated parameters beside its total (MoE releases), and the total's names.
ACTIVATED_PARAMETER_COLUMNS = ("Na", "N_active", "active_params", "activated_params", "params_active")
TOTAL_PARAMETER_COLUMNS = ("N", "params_total", "total_params")

_ATTN_SHAPE_COLUMNS = ("n_layers", "d_model", "seq_len")
_MAX_SHOWN = 5  # offending rows quoted per problem  # offending rows quoted per problem
_NOT_POSITIVE = ("is not a finite number > 0", "are not finite numbers > 0")
_NOT_NONNEGATIVE = ("is not a finite number >= 0", "are not finite numbers >= 0")

# What each positive column means, quoted in its error hint.
_POSITIVE_HINTS = {
    "params": "params is N, the non-embedding parameter count; fix or drop these rows",
    "tokens": "tokens is D, the training tokens seen so far; an evaluation at step 0 (D = 0) has no place "
              "on a power law, so drop such rows, and fix any others",
    "batch_size": "batch_size is in tokens per optimiser step; fix these rows, or drop the column if "
                  "the batch size is unknown",
    "lr": "lr is the peak learning rate; fix these rows, or drop the column if it is unknown",
}


def _rename(df: pd.DataFrame, mapping: dict[str, str], source: str) -> pd.DataFrame:
    if not mapping:
        return df
    unknown = [old for old in mapping if old not in df.columns]
    if unknown:
        old = unknown[0]
        near = difflib.get_close_matches(old, [str(c) for c in df.columns], n=1)
        guess = f" Did you mean {near[0]!r}?" if near else ""
        raise RunsTableError(
            f"runs table {source!r}: the column mapping names {old!r}, which is not a column of the file."
            f"{guess} The file's columns are {_list(df.columns)}; fix the OLD side of {old}={mapping[old]}."
        )
    renamed = set(mapping)
    for old, new in mapping.items():
        if new in df.columns and new not in renamed and new != old:
            raise RunsTableError(
                f"runs table {source!r}: the column mapping renames {old!r} to {new!r}, but the file already "
                f"has a column {new!r}; drop one of them, or map {new!r} to another name too."
            )
    return df.rename(columns=mapping)


def _check_required(df: pd.DataFrame, mapping: dict[str, str], source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if not missing:
        return
    available = [str(c) for c in df.columns]
    hints = []
    for column in missing:
        folded = {c.strip().lower().replace(" ", "_"): c for c in available}
        alias = next((a for a in readers.KNOWN_ALIASES.get(column, ()) if a in available), None)
        if column == "params":  # an MoE table's activated count, before its total "N"
            alias = next((a for a in ACTIVATED_PARAMETER_COLUMNS if a in available), alias)
        near = alias or folded.get(column) or next(iter(difflib.get_close_matches(column, available, n=1)), None)
        if near is not None:
            hints.append(f"{near!r} looks like {column!r}: map it with columns={{{near!r}: {column!r}}} "
                         f"(CLI: --map '{near}={column}')")
    hint = "; ".join(hints) if hints else (
        "if the file names them differently, map them with columns={'file name': 'runs-table name'} "
        "(CLI: --map 'OLD=NEW')")
    mapped = f" after the mapping {mapping}" if mapping else ""
    raise RunsTableError(
        f"runs table {source!r} lacks the required column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(map(repr, missing))}{mapped}. Its columns are {_list(available)}. {hint[0].upper()}"
        f"{hint[1:]}."
    )


def _coerce_numeric(df: pd.DataFrame) -> list[str]:
    """Turn NUMERIC_COLUMNS into numbers in place; text that is not a number is a problem."""
    problems = []
    for column in NUMERIC_COLUMNS:
        if column not in df:
            continue
        raw = df[column]
        if pd.api.types.is_bool_dtype(raw.dtype):
            bad = np.ones(len(df), dtype=bool)
        elif pd.api.types.is_numeric_dtype(raw.dtype):
            continue
        else:
            numbers = pd.to_numeric(raw.astype(object).where(raw.notna(), np.nan), errors="coerce")
            bad = (numbers.isna() & raw.notna()).to_numpy()
        if bad.any():
            problems.append(_row_problem(
                df, column, bad, ("is not a number", "are not numbers"),
                f"{column} must be numeric{_unit(column)}; fix these cells (no units or thousands "
                f"separators) or drop the rows"))
        else:
            df[column] = numbers.astype(float)
    return problems


def _check_values(df: pd.DataFrame, keep_flops: np.ndarray, convention: str) -> list[str]:
    problems = []
    ids = df["run_id"]
    missing_id = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if missing_id.any():
        problems.append(_row_problem(df, "run_id", missing_id, ("has no run_id", "have no run_id"),
                                     "Every row needs the id of the run it belongs to"))

    for column, hint in _POSITIVE_HINTS.items():
        if column in df:
            bad = ~_positive(df[column])
            if bad.any():
                problems.append(_row_problem(df, column, bad, _NOT_POSITIVE, hint))

    if "flops" in df:
        bad = keep_flops & ~_positive(df["flops"])
        if bad.any():
            problems.append(_row_problem(
                df, "flops", bad, _NOT_POSITIVE,
                "flops is the training compute so far [FLOP]; fix these rows, or drop the flops column "
                "(or pass flops_convention='6ND') to derive it from params and tokens"))

    if convention == "6ND+attn":
        derive = ~keep_flops
        absent = [c for c in _ATTN_SHAPE_COLUMNS if c not in df]
        if absent and derive.any():
            problems.append(
                f"the 6ND+attn FLOPs convention needs the column{'s' if len(absent) > 1 else ''} "
                f"{', '.join(map(repr, absent))}, which the file lacks. Add the model shape "
                f"(n_layers, d_model, seq_len) or use flops_convention='6ND'.")
        for column in (c for c in _ATTN_SHAPE_COLUMNS if c in df):
            bad = derive & ~_positive(df[column])
            if bad.any():
                problems.append(_row_problem(
                    df, column, bad, _NOT_POSITIVE,
                    f"The 6ND+attn FLOPs convention needs {column} on every row; fill it in or use "
                    f"flops_convention='6ND'"))

    if "step" in df:
        step = df["step"].to_numpy(dtype=float)
        bad = ~(np.isfinite(step) & (step >= 0))
        if bad.any():
            problems.append(_row_problem(df, "step", bad, _NOT_NONNEGATIVE,
                                         "step is the optimiser step of the row; fill it in or drop "
                                         "the step column"))

    status_ok = None
    if "status" in df:
        status = df["status"]
        known = status.isin(STATUSES).to_numpy()
        if not known.all():
            suggestion = readers.status_hint(status[~known].dropna().unique(), STATUSES)
            problems.append(_row_problem(
                df, "status", ~known, ("holds an unknown status", "hold unknown statuses"),
                f"status must be one of {', '.join(STATUSES)} (lower case); recode the file's values with "
                f"status_map (CLI: --status-map {suggestion or 'VALUE=ok'})"))
        status_ok = (status == "ok").to_numpy()
    loss = df["loss"].to_numpy(dtype=float)
    finite = np.isfinite(loss)
    must_be_finite = status_ok if status_ok is not None else np.ones(len(df), dtype=bool)
    bad = (must_be_finite & ~finite) | (finite & (loss <= 0))
    if bad.any():
        if status_ok is not None:
            hint = ("loss must be finite and > 0 on rows with status 'ok'; give the rows of a run that "
                    "blew up status 'diverged' (their NaN/inf losses are kept), or drop these rows")
        else:
            hint = ("loss must be finite and > 0; if these are runs that blew up, add a status column "
                    "with 'diverged' for them (their NaN/inf losses are then kept), else drop these rows")
        problems.append(_row_problem(df, "loss", bad, ("holds an invalid loss", "hold invalid losses"), hint))

    problems.extend(_duplicates(df))
    return problems


def _duplicates(df: pd.DataFrame) -> list[str]:
    # train and val losses at one step are two rows, so the split (when present) is part of the key.
    key = ["run_id", "step" if "step" in df else "tokens"] + (["split"] if "split" in df else [])
    dup = df.duplicated(key, keep=False).to_numpy()
    if not dup.any():
        return []
    rows = pd.DataFrame({k: df[k].to_numpy()[dup] for k in key})
    rows["_row"] = _file_rows(df, np.flatnonzero(dup))
    groups = rows.groupby(key, sort=False, dropna=False)["_row"].agg(list)
    shown = []
    for values, numbers in list(groups.items())[:3]:
        values = values if isinstance(values, tuple) else (values,)
        what = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(key, values, strict=True))
        extra = f" and {len(numbers) - _MAX_SHOWN} more" if len(numbers) > _MAX_SHOWN else ""
        shown.append(f"{what} at rows {', '.join(map(str, numbers[:_MAX_SHOWN]))}{extra}")
    more = f" (and {len(groups) - 3} more)" if len(groups) > 3 else ""
    key_text = "(" + ", ".join(key) + ")"
    repeats = f"{len(groups)} {key_text} combinations repeat" if len(groups) > 1 else f"{key_text} repeats"
    return [(
        f"column {key[1]!r}: {repeats}: {'; '.join(shown)}{more}. Each run may have one row per "
        f"{key[1]}{' and split' if 'split' in key else ''}; drop the repeated rows (a resumed run often "
        f"logs its last evaluation twice) or give restarts their own run_id."
    )]


def _resolve_flops(df: pd.DataFrame, requested: str | None, source: str) -> tuple[np.ndarray, str]:
    """Which rows keep the file's ``flops``, and the convention of the resulting column."""
    if requested is not None and requested not in FLOPS_CONVENTIONS:
        raise RunsTableError(
            f"runs table {source!r}: unknown FLOPs convention {requested!r}; choose one of "
            f"{', '.join(FLOPS_CONVENTIONS)}."
        )
    if "flops" not in df:
        return np.zeros(len(df), dtype=bool), requested or DEFAULT_FLOPS_CONVENTION
    if "flops_convention" in df:
        recorded = df["flops_convention"].astype(object).where(df["flops_convention"].notna(),
                                                               UNSPECIFIED_CONVENTION).astype(str)
    else:
        recorded = pd.Series(UNSPECIFIED_CONVENTION, index=df.index)
    if requested is not None:
        return (recorded == requested).to_numpy(), requested
    kinds = pd.unique(recorded)
    if len(kinds) > 1:
        firsts = [f"{k!r} (first at row {_file_rows(df, [int(np.argmax((recorded == k).to_numpy()))])[0]})" for k in kinds[:4]]
        raise RunsTableError(
            f"runs table {source!r}, column 'flops_convention': the rows mix conventions, "
            f"{', '.join(firsts)}, so their FLOPs are not comparable. Pass flops_convention='6ND' (or "
            f"'6ND+attn') to re-derive flops on the rows that differ."
        )
    df["flops_convention"] = recorded
    return np.ones(len(df), dtype=bool), str(kinds[0])


def _positive(values: pd.Series) -> np.ndarray:
    x = values.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(x) & (x > 0)


def _as_run_id(ids: pd.Series) -> pd.Series:
    """run_id as str, missing ids kept missing; integral floats (an int column with gaps) lose '.0'."""
    if pd.api.types.is_float_dtype(ids.dtype):
        ids = ids.map(lambda v: str(int(v)) if math.isfinite(v) and v == int(v) else str(v),
                      na_action="ignore")
    return ids.astype(str)


def _row_problem(df: pd.DataFrame, column: str, bad: np.ndarray, what: tuple[str, str], hint: str) -> str:
    rows = np.flatnonzero(bad)
    values = df[column].to_numpy()[rows[:_MAX_SHOWN]]
    numbers = _file_rows(df, rows[:_MAX_SHOWN])
    shown = ", ".join(f"row {r} ({_fmt(v)})" for r, v in zip(numbers, values, strict=True))
    more = f" and {len(rows) - _MAX_SHOWN} more" if len(rows) > _MAX_SHOWN else ""
    if len(rows) > 1:
        count = f"{len(rows)} of {len(df)} rows {what[1]}"
    else:
        count = f"1 row {what[0]}"
    return f"column {column!r}: {count}: {shown}{more}. {hint}."


def _file_rows(df: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """Data-row numbers in the file (from 1) of frame positions: the index holds the file's row order."""
    if not pd.api.types.is_integer_dtype(df.index.dtype):
        return np.asarray(positions) + 1
    return df.index.to_numpy()[positions] + 1


def _raise(problems: list[str], source: str) -> None:
    if not problems:
        return
    note = "Rows are numbered from 1, header not counted." if any("row " in p for p in problems) else ""
    if len(problems) == 1:
        joint = ", " if problems[0].startswith("column ") else ": "
        raise RunsTableError(f"runs table {source!r}{joint}{problems[0]} {note}".rstrip())
    body = "\n".join(f"  - {p}" for p in problems)
    raise RunsTableError(f"runs table {source!r} has {len(problems)} problems:\n{body}\n{note}".rstrip())


def _fmt(value) -> str:
    if value is None or value is pd.NA:
        return "empty"
    if isinstance(value, (float, np.floating)):
        return "NaN" if np.isnan(value) else f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _unit(column: str) -> str:
    units = {"params": " [parameters]", "tokens": " [tokens]", "loss": " [nats/token]", "flops": " [FLOP]",
             "batch_size": " [tokens per step]", "seq_len": " [tokens]", "wall_time": " [s]"}
    return units.get(column, "")


def _list(columns) -> str:
    names = [repr(str(c)) for c in columns]
    return ", ".join(names[:20]) + (f" (and {len(names) - 20} more)" if len(names) > 20 else "")
