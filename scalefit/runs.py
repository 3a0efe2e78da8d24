"""The runs table: one tidy row per (run, evaluation point).

Schema (units in brackets):

=================  =========  ===========================================================
column             required   meaning
=================  =========  ===========================================================
run_id             yes        identifier of one training run (str)
params             yes        N, non-embedding parameters unless ``params_convention`` says
tokens             yes        D, training tokens seen so far at this row [tokens]
loss               yes        validation loss at this row [nats/token]
flops              no         training compute so far [FLOP]; derived when absent
flops_convention   no         how ``flops`` was counted: ``6ND`` or ``6ND+attn``
params_embedding   no         embedding parameters (not counted in ``params``)
params_convention  no         what ``params`` counts when it is not non-embedding (str)
family             no         model family name
lr                 no         peak learning rate
batch_size         no         batch size [tokens per optimiser step]
schedule, warmup   no         LR schedule name, warmup steps
step               no         optimiser step of this row
split              no         ``val`` or ``train``
seed               no         random seed of the run
status             no         ``ok``, ``diverged`` or ``killed``
n_layers, d_model  no         model shape (enables the ``6ND+attn`` convention)
seq_len            no         context length [tokens]
vocab_size         no         vocabulary size
wall_time          no         seconds since the run started
=================  =========  ===========================================================

Units, once: counts are plain numbers (``params`` and ``params_embedding`` in parameters, ``tokens``,
``batch_size`` and ``seq_len`` in tokens, ``step`` and ``warmup`` in optimiser steps), ``loss`` is
cross-entropy in nats per token (natural log, not bits), ``flops`` is floating-point operations (not
FLOP/s), ``lr`` is the optimiser's peak learning rate (dimensionless), ``wall_time`` is in seconds.
``params``, ``tokens``, ``flops``, ``batch_size`` and ``lr`` must be finite and > 0; ``step`` finite and
>= 0; ``loss`` finite and > 0 on rows whose ``status`` is ``ok`` (rows of diverged or killed runs may
carry NaN/inf loss, and are kept: they are data for learning-rate laws).

Files: ``load_runs`` reads parquet (``.parquet``, ``.pq``) and CSV (``.csv``, ``.csv.gz``), chosen by
suffix, a sweep folder (its ``parts/*.parquet``), and W&B and MLflow exports (``scalefit.readers``);
``write_runs`` writes parquet. Rows are validated, FLOPs derived where absent (see
``FLOPS_CONVENTIONS`` and ``derive_flops``), and the table's ``attrs`` record ``source`` (the path) and
``flops_convention``, so every result made from it can report both. ``select``, ``final_points`` and
``compute_frontier`` take and return such tables, keeping their ``attrs``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit import readers
from scalefit.errors import RunsTableError
from scalefit.flops import training_flops
from scalefit.io import atomic_write
from scalefit.plausibility import check_runs
from scalefit.points import (  # which points an analysis uses: one front door (scalefit.points)
    CARRIED_RUN_COLUMNS,
    HYPERPARAMETER_COLUMNS,
    _last_positions,
    _with_attrs,
    compute_frontier,
    final_points,
    select,
    tuned_points,
)
from scalefit.runs_validation import (
    _ATTN_SHAPE_COLUMNS,
    ACTIVATED_PARAMETER_COLUMNS,
    DEFAULT_FLOPS_CONVENTION,
    FLOPS_CONVENTIONS,
    NUMERIC_COLUMNS,
    REQUIRED_COLUMNS,
    STATUSES,
    TOTAL_PARAMETER_COLUMNS,
    UNSPECIFIED_CONVENTION,
    _as_run_id,
    _check_required,
    _check_values,
    _coerce_numeric,
    _raise,
    _rename,
    _resolve_flops,
)

__all__ = [
    "ACTIVATED_PARAMETER_COLUMNS", "CARRIED_RUN_COLUMNS", "DEFAULT_FLOPS_CONVENTION", "FLOPS_CONVENTIONS",
    "HYPERPARAMETER_COLUMNS", "NUMERIC_COLUMNS", "REQUIRED_COLUMNS", "STATUSES", "SUPPORTED_SUFFIXES",
    "TOTAL_PARAMETER_COLUMNS", "UNSPECIFIED_CONVENTION", "compute_frontier", "derive_flops", "family_summary",
    "final_points", "load_runs", "parameter_count_notes", "parse_column_map", "read_table", "select",
    "select_family", "table_shape", "tuned_points", "write_runs",
]

#: File suffixes ``load_runs`` reads, and the reader each one uses.
SUPPORTED_SUFFIXES = readers.SUPPORTED_SUFFIXES


def write_runs(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a runs table to parquet atomically (temp file in the same folder, then rename).

    Readers never see a half-written file, and concurrent writers never interfere
    (:func:`scalefit.io.atomic_write`: a unique temporary name; mode ``0666 & ~umask``).
    """
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


def parse_column_map(items: Iterable[str]) -> dict[str, str]:
    """Turn ``["OLD=NEW", ...]`` (the CLI's ``--map``) into the ``columns`` mapping of ``load_runs``.

    The split is at the last ``=``, so a file's column name may itself contain ``=``; spaces around
    either name are dropped.

    Raises
    ------
    RunsTableError
        For an item without ``=`` or with an empty side, the same OLD mapped twice, or two OLDs mapped
        to one NEW.
    """
    mapping: dict[str, str] = {}
    for item in items:
        old, sep, new = str(item).rpartition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise RunsTableError(
                f"column mapping {item!r} is not of the form OLD=NEW; write e.g. --map 'Model Size=params' "
                f"(OLD is the file's column name, NEW the runs-table column)."
            )
        if old in mapping and mapping[old] != new:
            raise RunsTableError(
                f"column mapping maps {old!r} twice (to {mapping[old]!r} and to {new!r}); keep one."
            )
        clash = [o for o, n in mapping.items() if n == new and o != old]
        if clash:
            raise RunsTableError(
                f"column mapping maps both {clash[0]!r} and {old!r} to {new!r}; a column can come from one "
                f"source only."
            )
        mapping[old] = new
    return mapping


def derive_flops(
    params,
    tokens,
    convention: str = DEFAULT_FLOPS_CONVENTION,
    *,
    n_layers=None,
    d_model=None,
    seq_len=None,
) -> np.ndarray:
    """Training FLOPs from N and D (vectorised, float64) under a named convention.

    ``6ND``
        ``6 * N * D``: 2 FLOPs per parameter per token forward, 4 backward (Kaplan et al. 2020, eq. 2.2
        without the context term; Hoffmann et al. 2022); :func:`scalefit.flops.training_flops`.
    ``6ND+attn``
        ``6 * N * D + 12 * n_layers * d_model * seq_len * D``: adds the attention matmuls that ``N`` does
        not see, the scores ``Q K^T`` and the weighted values ``A V``, each ``2 * seq_len * d_model``
        FLOPs per token per layer forward, times 3 for forward plus backward (the count of Hoffmann et
        al. 2022, App. F, with ``d_attn = d_model``). Kaplan et al. 2020 (Table 1, eq. 2.2) count only
        one of the two, ``2 * n_layer * n_ctx * d_attn`` forward, i.e. half this term.
    """
    n = np.asarray(params, dtype=float)
    d = np.asarray(tokens, dtype=float)
    if convention == "6ND":
        return training_flops(n, d)
    if convention == "6ND+attn":
        if n_layers is None or d_model is None or seq_len is None:
            raise RunsTableError("the 6ND+attn FLOPs convention needs n_layers, d_model and seq_len.")
        shape = (np.asarray(n_layers, dtype=float) * np.asarray(d_model, dtype=float)
                 * np.asarray(seq_len, dtype=float))
        return training_flops(n, d) + 12.0 * shape * d
    raise RunsTableError(
        f"unknown FLOPs convention {convention!r}; choose one of {', '.join(FLOPS_CONVENTIONS)}."
    )


def load_runs(
    path: str | os.PathLike,
    *,
    columns: Mapping[str, str] | None = None,
    flops_convention: str | None = None,
    status_map: Mapping[str, str] | None = None,
    format: str = "auto",
    run_info: str | os.PathLike | None = None,
    keep: str = "all",
) -> pd.DataFrame:
    """Read a runs table (parquet, CSV, a sweep folder, a W&B or MLflow export), validate it, derive FLOPs.

    Parameters
    ----------
    path
        A ``.parquet``/``.pq`` or ``.csv``/``.csv.gz`` file, or a sweep folder (the ``*.parquet`` parts in
        its ``parts/`` subfolder, or in the folder itself).
    columns
        Renames applied before validation, ``{file column: runs-table column}``, e.g.
        ``{"Model Size": "params"}``. This is the only way aliases are accepted (besides W&B's bookkeeping
        columns, see ``format``); every key must be a column of the file. ``parse_column_map`` builds it
        from ``OLD=NEW`` strings.
    flops_convention
        ``None`` (default): keep ``flops`` as the file gives them, with the convention its
        ``flops_convention`` column names (``"unspecified"`` when it has none); derive them with ``6ND``
        when the file has no ``flops`` column. ``"6ND"`` or ``"6ND+attn"``: derive ``flops`` with that
        convention on every row whose recorded convention differs (all rows when none is recorded);
        ``6ND+attn`` needs ``n_layers``, ``d_model`` and ``seq_len``.
    status_map
        Recoding of the (renamed) ``status`` column's values, e.g. ``{"finished": "ok", "crashed":
        "diverged"}``; values not named stay as they are.
    format
        ``"auto"`` (default: told from the columns), ``"runs"``, ``"wandb"`` (W&B runs or history export:
        ``_step``, ``_runtime`` and ``State`` become ``step``, ``wall_time`` and ``status`` unless
        ``columns`` maps them) or ``"mlflow"`` (long-form metric history, pivoted to one row per run and
        step); see :mod:`scalefit.readers`.
    run_info
        A per-run table (W&B runs export, MLflow ``search_runs`` export) whose columns are added to every
        row of the run they describe, matched on a shared run id column (``run_id``, ``ID`` or ``Name``).
    keep
        ``"all"`` (default) or ``"final"``: only the last row of each run (and split) by ``step``, else
        ``tokens``, as :func:`final_points` chooses it. ``"final"`` chooses these rows from the few key
        columns before reading the others (for parquet), so a per-step history of millions of rows loads
        in seconds; only the kept rows are validated.

    Rows without a loss (empty cells: a history export's steps without an evaluation) are dropped, unless
    their status is ``diverged`` or ``killed``, and a one-line note in ``attrs["notes"]`` says how many.

    Returns
    -------
    pandas.DataFrame
        The kept rows in file order (index 0..n-1), numeric columns as numbers, ``run_id`` as str, with
        ``flops`` and ``flops_convention`` columns and ``attrs`` ``{"source": str(path),
        "flops_convention": ...}``, and ``"notes"`` (a list of one-line notes) when there are any.

    Raises
    ------
    RunsTableError
        When the file is missing or unreadable, or a column is missing, non-numeric, or holds values the
        schema forbids; the message names the file, the column, the first offending data rows (numbered
        from 1, header not counted) and what to do.
    """
    source = str(path)
    path = Path(path)
    mapping = dict(columns or {})
    status_map = dict(status_map or {})
    if format not in readers.FORMATS:
        raise RunsTableError(f"unknown input format {format!r}; choose one of {', '.join(readers.FORMATS)}.")
    if keep not in ("all", "final"):
        raise RunsTableError(f"keep must be 'all' or 'final', not {keep!r}.")
    notes: list[str] = []
    fast = (keep == "final" and format in ("auto", "runs") and run_info is None and path.is_file()
            and SUPPORTED_SUFFIXES.get(readers.suffix_of(path)) == "parquet")
    df = readers.final_rows_of_parquet(path, source, mapping, status_map, STATUSES, NUMERIC_COLUMNS,
                                       notes) if fast else None
    fast = df is not None  # else the file needs the whole read (which names any problem)
    evaluations = _parquet_rows(path) if fast else None  # rows before keeping the final ones
    if df is None:
        df, mapping = readers.read_input(path, source, mapping, format, run_info)
    df = _rename(df, mapping, source)
    if len(df) == 0:
        raise RunsTableError(
            f"runs table {source!r} has a header but no rows; it needs one row per (run, evaluation point)."
        )
    _check_required(df, mapping, source)
    readers.recode_status(df, status_map, STATUSES, source)
    if not fast:
        df, note = readers.drop_rows_without_loss(df, source)
        notes += [note] if note else []
        if len(df) == 0:
            raise RunsTableError(f"runs table {source!r}: no row has a loss (the column is empty); give the "
                                 "evaluation loss of each row, or --map the column that holds it to loss.")

    problems = _coerce_numeric(df)
    _raise(problems, source)

    df["run_id"] = _as_run_id(df["run_id"])
    keep_flops, convention = _resolve_flops(df, flops_convention, source)
    problems = _check_values(df, keep_flops, convention)
    _raise(problems, source)

    derive = ~keep_flops
    if derive.any():
        shape = {c: df.loc[derive, c] for c in _ATTN_SHAPE_COLUMNS} if convention == "6ND+attn" else {}
        flops = df["flops"].to_numpy(dtype=float, copy=True) if "flops" in df else np.full(len(df), np.nan)
        flops[derive] = derive_flops(df.loc[derive, "params"], df.loc[derive, "tokens"], convention, **shape)
        df["flops"] = flops
        df["flops_convention"] = convention
    else:
        df["flops"] = df["flops"].astype(float)
    if keep == "final" and not fast:  # every row was checked above; keep each run's last
        evaluations = len(df)
        df = df.iloc[np.sort(_last_positions(df))]
    check_runs(df, source)  # units: refuses impossible values, warns on likely slips (scalefit.plausibility)
    notes += parameter_count_notes(df, mapping)
    df = df.reset_index(drop=True)
    df.attrs = {"source": source, "flops_convention": convention, **({"notes": notes} if notes else {}),
                **({"rows_before_final": evaluations} if evaluations is not None else {})}
    return df


def parameter_count_notes(df: pd.DataFrame, mapping: Mapping[str, str] | None = None) -> list[str]:
    """One-line notes when ``params`` may be the wrong count: the table has a second parameter count (an
    MoE release with total ``N`` and activated ``Na``), or its sizes are nearly one size.

    The laws of scalefit need the parameters each token activates: for a mixture of experts the activated
    (non-embedding) count, not the total.
    """
    notes = []
    origin = next((old for old, new in (mapping or {}).items() if new == "params"), "params")
    for column in (*ACTIVATED_PARAMETER_COLUMNS, *TOTAL_PARAMETER_COLUMNS):
        if column == origin or column not in df or not pd.api.types.is_numeric_dtype(df[column]):
            continue
        if np.allclose(df[column], df["params"]):
            continue
        if column in ACTIVATED_PARAMETER_COLUMNS:
            notes.append(f"params is {origin!r}, but the table also has {column!r}, an activated-parameter count "
                         "(a mixture of experts): the laws need the parameters each token activates, so map it "
                         f"with --map {column}=params (columns={{{column!r}: 'params'}})")
        else:
            notes.append(f"params is {origin!r}; the table also has {column!r}, a total parameter count: for a "
                         "mixture of experts the laws need the activated count, as used")
    sizes = np.sort(df["params"].unique())
    if 1 < len(sizes) <= 8 and sizes[-1] / sizes[0] < 1.05:
        notes.append(f"the {len(sizes)} model sizes in params lie within {100 * (sizes[-1] / sizes[0] - 1):.2g} % "
                     "of each other: a law in N cannot be fitted across them. If the table holds mixtures of "
                     "experts with a total and an activated count, map the activated one to params")
    return notes


def read_table(
    path: str | os.PathLike,
    *,
    columns: Mapping[str, str] | None = None,
    status_map: Mapping[str, str] | None = None,
    format: str = "auto",
    run_info: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """A table read, renamed and recoded as :func:`load_runs` does it, without the runs-table checks.

    For tables of another shape that share the input layer (the RL runs table: ``pass_at_1`` instead of
    ``loss``). ``attrs["source"]`` is the path.
    """
    source = str(path)
    if format not in readers.FORMATS:
        raise RunsTableError(f"unknown input format {format!r}; choose one of {', '.join(readers.FORMATS)}.")
    df, mapping = readers.read_input(Path(path), source, dict(columns or {}), format, run_info)
    df = _rename(df, mapping, source)
    readers.recode_status(df, dict(status_map or {}), STATUSES, source)
    df.attrs = {"source": source}
    return df


def select_family(df: pd.DataFrame, family: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The rows of one ``family``, and the run ids of the others.

    A table without a ``family`` column, or with one family, is returned whole when ``family`` is None.
    Several families and no ``family``: a :class:`RunsTableError` listing each family's runs, sizes and
    token range, because models trained on different data or recipes are not seeds of one another and one
    law across them mixes what must not be mixed; fit them one at a time.
    """
    source = df.attrs.get("source", "the runs table")
    if "family" not in df:
        if family is not None:
            raise RunsTableError(f"runs table {source!r} has no 'family' column, so family={family!r} selects "
                                 "nothing; drop the family option")
        return df, []
    names = df["family"].astype(str)
    known = sorted(names.unique())
    if family is None:
        if len(known) == 1:
            return df, []
        raise RunsTableError(f"runs table {source!r}, column 'family': the runs belong to {len(known)} families, "
                             f"which one law must not mix: {family_summary(df)}. Fit one at a time with "
                             f"--family NAME (family='NAME' in fit_runs), e.g. --family {known[0]!r}.")
    if family not in known:
        raise RunsTableError(f"runs table {source!r} has no family {family!r}; its families are "
                             f"{family_summary(df)}.")
    others = df.loc[(names != family).to_numpy(), "run_id"].astype(str).unique().tolist()
    return _with_attrs(df[(names == family).to_numpy()], df), others


def family_summary(df: pd.DataFrame) -> str:
    """One phrase per family: ``'a' (12 runs, 4 sizes, N 1e6–1e8, D 1e8–1e10)``, joined by semicolons."""
    phrases = []
    for name, rows in df.groupby(df["family"].astype(str), sort=True):
        phrases.append(f"{name!r} ({rows['run_id'].nunique()} runs, {rows['params'].nunique()} sizes, "
                       f"N {rows['params'].min():.3g}–{rows['params'].max():.3g}, "
                       f"D {rows['tokens'].min():.3g}–{rows['tokens'].max():.3g})")
    return "; ".join(phrases)


def table_shape(df: pd.DataFrame) -> dict:
    """What a runs table holds: ``rows``, ``runs``, ``sizes``, ``checkpoints`` (median rows per run) and a
    ``text`` saying so, naming a learning-curve table (checkpoints of one run per size) as such.

    For a table loaded with ``keep="final"`` the rows are those of the file (``attrs["rows_before_final"]``)
    and ``checkpoints`` their mean per run."""
    runs, sizes = df["run_id"].nunique(), df["params"].nunique()
    rows = int(df.attrs.get("rows_before_final", len(df)))
    if "rows_before_final" in df.attrs:
        checkpoints, typical = round(rows / max(runs, 1)), "a mean"
    else:
        checkpoints, typical = (int(df.groupby("run_id").size().median()) if len(df) else 0), "a median"
    text = (f"{rows} rows: {runs} run{'s' * (runs != 1)} of {sizes} model size{'s' * (sizes != 1)}, {typical} of "
            f"{checkpoints} evaluations per run")
    if checkpoints > 1 and runs == sizes:
        text += " (learning curves: the checkpoints of one run per size)"
    return {"rows": rows, "runs": runs, "sizes": sizes, "checkpoints": checkpoints, "text": text}


def _parquet_rows(path: Path) -> int:
    """Rows of a parquet file, from its metadata."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)
