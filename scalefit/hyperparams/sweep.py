"""Reading an LR × batch-size sweep: one row per run, its final (optionally smoothed) loss.

:func:`load_sweep` takes a runs table (parquet/CSV, through :func:`scalefit.runs.load_runs`) or Step Law's
released grid CSV (:func:`read_steplaw_csv`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.flops import training_flops

STEPLAW_SEQ_LEN = 2048

STEPLAW_COLUMNS = ("N", "D", "lr", "bs", "loss", "smooth loss", "exp_name", "ti")


def read_steplaw_csv(path: str | Path, *, smoothed: bool = True) -> pd.DataFrame:
    """Read Step Law's released grid (``dense_lr_bs_loss.csv``) as final points of a runs table.

    Column mapping (units from the file's provenance: github.com/step-law/steplaw, ``data/``):

    ============  =================================================================================
    ours          theirs
    ============  =================================================================================
    run_id        ``exp_name``
    params        ``N``, non-embedding parameters
    tokens        ``D``, training tokens
    loss          ``smooth loss`` (the authors' smoothed final training loss) or ``loss`` (raw final)
    lr            ``lr``, peak learning rate (every run decays to 1e-5)
    batch_size    ``bs`` × 2048: the file counts batch size in sequences of 2048 tokens
    seq_len       2048
    step          ``ti``, training iterations
    flops         6·N·D (``flops_convention`` = ``6ND``)
    ============  =================================================================================

    Parameters
    ----------
    path : str or Path
        The CSV file.
    smoothed : bool
        Use the smoothed final loss (Step Law's choice) rather than the raw final loss.

    Returns
    -------
    pandas.DataFrame
        One row per run.
    """
    raw = pd.read_csv(path)
    missing = [column for column in STEPLAW_COLUMNS if column not in raw.columns]
    if missing:
        raise ScalefitInputError(f"{path}: not a Step Law grid file, missing columns {missing}")
    params = raw["N"].astype(float)
    tokens = raw["D"].astype(float)
    return pd.DataFrame({
        "run_id": raw["exp_name"].astype(str),
        "params": params,
        "tokens": tokens,
        "loss": raw["smooth loss" if smoothed else "loss"].astype(float),
        "lr": raw["lr"].astype(float),
        "batch_size": raw["bs"].astype(float) * STEPLAW_SEQ_LEN,
        "seq_len": STEPLAW_SEQ_LEN,
        "step": raw["ti"].astype(int),
        "flops": training_flops(params, tokens),
        "flops_convention": "6ND",
    })


def final_losses(runs: pd.DataFrame, *, smooth_last: int = 1) -> pd.DataFrame:
    """One row per run: its last evaluation point, with the loss optionally averaged over the last points.

    Parameters
    ----------
    runs : pandas.DataFrame
        A runs table (one row per run and evaluation point, as :func:`scalefit.runs.load_runs` gives).
        Validation rows are used when a ``split`` column marks any; the last point is chosen by
        :func:`scalefit.points.points` (``"groups"``: by ``step``, else ``tokens``). Every status is kept:
        :func:`locate_optima` excludes and reports the runs that are not ``ok``.
    smooth_last : int
        Average the loss over this many final evaluation points (1: the final loss as logged; a
        non-finite loss among them makes the average non-finite).

    Returns
    -------
    pandas.DataFrame
        The last row of each run, ``loss`` replaced by the smoothed final loss.
    """
    from scalefit.points import points

    return points(runs, "groups", smooth_last=smooth_last)


def load_sweep(path: str | Path, *, smooth_last: int = 1, **load_options) -> pd.DataFrame:
    """Read an LR × batch-size sweep as one row per run.

    A CSV with Step Law's columns goes through :func:`read_steplaw_csv` (smoothed loss); anything else
    through :func:`scalefit.runs.load_runs` (which takes ``load_options`` such as ``columns=`` or
    ``flops_convention=``) and :func:`final_losses`.
    """
    path = Path(path)
    if not path.exists():
        raise ScalefitInputError(f"{path}: no such file")
    if is_steplaw_csv(path):
        return read_steplaw_csv(path)
    from scalefit.runs import load_runs

    return final_losses(load_runs(path, **load_options), smooth_last=smooth_last)


def is_steplaw_csv(path: str | Path) -> bool:
    """Whether ``path`` is a CSV with Step Law's grid columns (``N``, ``D``, ``lr``, ``bs``, ``smooth loss``...)."""
    path = Path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    header = pd.read_csv(path, nrows=0).columns
    return all(column in header for column in STEPLAW_COLUMNS)
