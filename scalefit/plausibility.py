"""Unit sanity of a runs table: numbers that are valid floats but cannot mean what the schema says.

A table can pass every schema check and still be wrong in its units: parameters in millions, tokens in
billions, perplexity in the loss column, a metric where higher is better. A fit on such a table succeeds and
answers confidently and wrongly. :func:`check_runs` looks for the usual slips and

- raises :class:`~scalefit.errors.RunsTableError` where no unit can make the numbers meant (a loss of 1e300,
  a learning rate of 1e300, more parameters than any model has);
- emits one :class:`PlausibilityWarning` per suspicion, with the likely cause and what to do. The CLI prints
  each once and exits 1 (the numbers are flagged); a library user sees them as ordinary Python warnings.

The schema itself (columns present, numbers finite and positive) is :func:`scalefit.runs.load_runs`' job.

What cannot be caught: units that keep every number plausible. Perplexity is recognised when it exceeds
ln(vocab_size) + 3 nats (or 20 without a ``vocab_size`` column), so a strong model's perplexity of 6 passes for
a cross-entropy; parameters in thousands are caught through a ``flops`` column or the model shape
(``n_layers``, ``d_model``), not from the counts alone.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from scalefit.errors import RunsTableError
from scalefit.flops import training_flops

__all__ = ["LIMITS", "PlausibilityWarning", "check_runs"]


class PlausibilityWarning(UserWarning):
    """A runs table whose numbers are valid but probably not in the units the schema asks for."""


#: Values above these cannot be meant in any unit the column could be in (largest real runs, 2026: ~2e12
#: parameters, ~1e14 tokens, ~1e27 FLOPs; a cross-entropy or even a perplexity stays far below 1e6).
LIMITS = {"params": 1e16, "tokens": 1e17, "flops": 1e32, "loss": 1e6, "lr": 1e3, "batch_size": 1e12}

MIN_PARAMS = 1e3  # below this, a "parameter count" is almost surely in millions or billions
LOSS_MARGIN = 3.0  # nats above ln(vocab) (an untrained model's loss) still tolerated: early spikes
LOSS_WITHOUT_VOCAB = 20.0  # ln(256k-token vocabulary) = 12.5; a cross-entropy above 20 nats is not one
FLOPS_RATIO = 30.0  # table FLOPs this far from 6·N·D (either way): a column in another unit
SHAPE_RATIO = 100.0  # params this far from 12·n_layers·d_model² (either way): params in another unit
SCALE_STEP = 1.5  # two runs differ in scale when one has 1.5x the parameters or tokens of the other...
RISE = 0.01  # ...and "ends higher" when its loss is more than 1 % above the other's (noise, tuning)
MIN_PAIRS = 3  # pairs of runs needed before loss "rises with scale"
MAX_CELLS = 2000  # (N, D) cells compared pairwise (a random subset of a larger table)


def check_runs(df: pd.DataFrame, source: str = "runs table") -> list[str]:
    """Check a validated runs table's units; raise on impossible values, warn on suspicious ones.

    Parameters
    ----------
    df
        A table as :func:`scalefit.runs.load_runs` returns it (numeric columns as floats, ``flops`` present).
    source
        The file name, for the messages.

    Returns
    -------
    list of str
        The warnings emitted (each also issued as a :class:`PlausibilityWarning`), empty when all is well.

    Raises
    ------
    RunsTableError
        When a column holds a value beyond :data:`LIMITS`, naming the column, the first data row and the fix.
    """
    _refuse_impossible(df, source)
    ok = df[df["status"] == "ok"] if "status" in df else df
    ok = ok[np.isfinite(ok["loss"].to_numpy(dtype=float))]
    found = [message for check in (_params_scale, _tokens_scale, _flops_scale, _shape_scale, _perplexity,
                                   _loss_rising_with_scale, _loss_rising_with_tokens)
             if (message := check(ok)) is not None]
    for message in found:
        warnings.warn(PlausibilityWarning(f"{source}: {message}"), stacklevel=2)
    return found


def _refuse_impossible(df: pd.DataFrame, source: str) -> None:
    for column, limit in LIMITS.items():
        if column not in df:
            continue
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
        beyond = np.flatnonzero(np.abs(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)) > limit)
        if len(beyond):
            position = int(beyond[0])
            label = df.index[position]  # the file's data row - 1 (load_runs keeps the file's row labels)
            row = int(label) + 1 if isinstance(label, int | np.integer) else position + 1
            more = f" (and {len(beyond) - 1} more rows)" if len(beyond) > 1 else ""
            raise RunsTableError(
                f"{source}: column {column!r} holds {values[position]:.4g} on data row {row}{more}, above "
                f"{limit:.0e}, which no run can have; fix or drop these rows (is the column in another unit?)")


def _final_rows(ok: pd.DataFrame) -> pd.DataFrame:
    order = ["run_id", "step"] if "step" in ok else ["run_id", "tokens"]
    return ok.sort_values(order, kind="stable").groupby("run_id", sort=False).tail(1)


def _params_scale(ok: pd.DataFrame) -> str | None:
    largest = float(ok["params"].max()) if len(ok) else math.nan
    if largest < MIN_PARAMS:
        return (f"params look like millions or billions (largest {largest:.4g}); params count parameters one "
                "by one: multiply the column by 1e6 or 1e9 (or map a column of raw counts with --map)")
    return None


def _tokens_scale(ok: pd.DataFrame) -> str | None:
    final = _final_rows(ok)
    if len(final) == 0:
        return None
    below = final["tokens"].to_numpy(float) < final["params"].to_numpy(float)
    if below.mean() > 0.5:
        return (f"tokens are below params at the last point of {int(below.sum())} of {len(final)} runs "
                f"(median {float(final['tokens'].median()):.3g} tokens); tokens look like millions or billions: "
                "multiply the column by 1e6 or 1e9, or check that params and tokens are not swapped")
    return None


def _flops_scale(ok: pd.DataFrame) -> str | None:
    if "flops" not in ok or len(ok) == 0:
        return None
    ratio = float(np.median(ok["flops"].to_numpy(float) / training_flops(ok["params"], ok["tokens"]).to_numpy(float)))
    if ratio > FLOPS_RATIO or ratio < 1.0 / FLOPS_RATIO:
        return (f"flops are {ratio:.3g} x 6*params*tokens (median); one of the three columns is in another unit "
                "(thousands, millions, billions?); fix it, or drop the flops column to derive it")
    return None


def _shape_scale(ok: pd.DataFrame) -> str | None:
    if not {"n_layers", "d_model"} <= set(ok.columns) or len(ok) == 0:
        return None
    shape = 12.0 * pd.to_numeric(ok["n_layers"], errors="coerce") * pd.to_numeric(ok["d_model"], errors="coerce") ** 2
    ratio = float(np.nanmedian((shape / ok["params"]).to_numpy(float)))
    if ratio > SHAPE_RATIO or ratio < 1.0 / SHAPE_RATIO:
        return (f"params are {1 / ratio:.3g} x 12*n_layers*d_model^2 (median), the count the model shape "
                "implies; params look like thousands or millions: multiply the column to count parameters")
    return None


def _perplexity(ok: pd.DataFrame) -> str | None:
    if len(ok) == 0:
        return None
    vocab = pd.to_numeric(ok["vocab_size"], errors="coerce").max() if "vocab_size" in ok else math.nan
    if math.isfinite(vocab) and vocab > 1:
        limit, why = math.log(vocab) + LOSS_MARGIN, f"ln(vocab_size {vocab:.0f}) + {LOSS_MARGIN:g} nats"
    else:
        limit, why = LOSS_WITHOUT_VOCAB, f"{LOSS_WITHOUT_VOCAB:g} nats (no vocab_size column)"
    loss = ok["loss"].to_numpy(float)
    high = loss > limit
    if not high.any():
        return None
    if np.median(loss) > limit:
        return (f"loss looks like perplexity (median {np.median(loss):.4g}, above {why}): give the "
                "cross-entropy in nats, log(perplexity)")
    return (f"{int(high.sum())} rows have a loss above {why} (largest {loss.max():.4g}), more than an untrained "
            "model's; are they perplexities, or rows of a run that blew up (give those status 'diverged')?")


def _loss_rising_with_scale(ok: pd.DataFrame) -> str | None:
    """Under any scaling law a run with more parameters and at least as many tokens (or the reverse) ends
    lower; count the pairs of (N, D) cells (best final loss of each) where it ends clearly higher."""
    cells = _final_rows(ok).groupby(["params", "tokens"])["loss"].min().reset_index()
    if len(cells) > MAX_CELLS:
        cells = cells.sample(MAX_CELLS, random_state=0)
    n, d, loss = (cells[c].to_numpy(float) for c in ("params", "tokens", "loss"))
    larger = ((n[None, :] >= n[:, None]) & (d[None, :] >= d[:, None])
              & ((n[None, :] >= SCALE_STEP * n[:, None]) | (d[None, :] >= SCALE_STEP * d[:, None])))
    pairs = int(larger.sum())
    worse = int((larger & (loss[None, :] > (1 + RISE) * loss[:, None])).sum())
    if pairs >= MIN_PAIRS and worse > pairs / 2:
        return (f"loss rises with scale: in {worse} of {pairs} pairs of runs, the one with more parameters and at "
                "least as many tokens (or more tokens and as many parameters) ends with the higher loss; is the "
                "loss column a metric where higher is better (accuracy, reward), or are params and tokens swapped?")
    return None


def _loss_rising_with_tokens(ok: pd.DataFrame) -> str | None:
    curves = ok.sort_values(["run_id", "tokens"], kind="stable").groupby("run_id", sort=False)["loss"]
    counts = curves.size()
    long_runs = counts[counts >= 3].index
    if len(long_runs) < 3:
        return None
    first, last = curves.first()[long_runs], curves.last()[long_runs]
    rising = int((last > (1 + RISE) * first).sum())
    if rising > len(long_runs) / 2:
        return (f"loss rises with tokens in {rising} of {len(long_runs)} runs (last evaluation more than 1 % above the first); "
                "is the loss column a metric where higher is better (accuracy, reward)?")
    return None
