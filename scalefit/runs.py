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

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit import readers
from scalefit.errors import RunsTableError
from scalefit.io import atomic_write
from scalefit.plausibility import check_runs

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
#: File suffixes ``load_runs`` reads, and the reader each one uses.
SUPPORTED_SUFFIXES = readers.SUPPORTED_SUFFIXES

_ATTN_SHAPE_COLUMNS = ("n_layers", "d_model", "seq_len")
_MAX_SHOWN = 5  # offending rows quoted per problem
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


def write_runs(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a runs table to parquet atomically (temp file in the same folder, then rename).

    Readers never see a half-written file, and concurrent writers never interfere
    (:func:`scalefit.io.atomic_write`: a unique temporary name; mode ``0666 & ~umask``).
    """
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


# --- public API ------------------------------------------------------------------------------------


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
        without the context term; Hoffmann et al. 2022).
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
        return 6.0 * n * d
    if convention == "6ND+attn":
        if n_layers is None or d_model is None or seq_len is None:
            raise RunsTableError("the 6ND+attn FLOPs convention needs n_layers, d_model and seq_len.")
        shape = (np.asarray(n_layers, dtype=float) * np.asarray(d_model, dtype=float)
                 * np.asarray(seq_len, dtype=float))
        return 6.0 * n * d + 12.0 * shape * d
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


#: Columns holding a model's activated parameters beside its total (MoE releases), and the total's names.
ACTIVATED_PARAMETER_COLUMNS = ("Na", "N_active", "active_params", "activated_params", "params_active")
TOTAL_PARAMETER_COLUMNS = ("N", "params_total", "total_params")


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


# --- reading -----------------------------------------------------------------------------------------


def _last_positions(df: pd.DataFrame) -> np.ndarray:
    """Positions of each run's (and split's) last row by ``step``, else ``tokens``; ties: the later row."""
    order = "step" if "step" in df else "tokens"
    group = pd.factorize(df["run_id"], use_na_sentinel=False)[0].astype(np.int64)
    if "split" in df:
        split = pd.factorize(df["split"], use_na_sentinel=False)[0]
        group = group * (int(split.max(initial=0)) + 1) + split
    return readers.last_of_groups(group, pd.to_numeric(df[order], errors="coerce").to_numpy(dtype=float))


def _parquet_rows(path: Path) -> int:
    """Rows of a parquet file, from its metadata."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


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


# --- validation --------------------------------------------------------------------------------------


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


# --- helpers -----------------------------------------------------------------------------------------


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


def _need(df: pd.DataFrame, columns: tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in df]
    if missing:
        raise RunsTableError(f"{where} needs the column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(map(repr, missing))}; load the table with load_runs.")


def _with_attrs(out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    out = out.copy()
    out.attrs = dict(df.attrs)
    return out
