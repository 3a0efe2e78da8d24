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
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

REQUIRED_COLUMNS = ("run_id", "params", "tokens", "loss")
NUMERIC_COLUMNS = (
    "params", "tokens", "loss", "flops", "params_embedding", "lr", "batch_size", "warmup",
    "step", "seed", "n_layers", "d_model", "seq_len", "vocab_size", "wall_time",
)
STATUSES = ("ok", "diverged", "killed")


def write_runs(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a runs table to parquet atomically (temp file in the same folder, then rename).

    Readers never see a half-written file, and concurrent writers of different paths never
    interfere.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_runs(path: str | os.PathLike) -> pd.DataFrame:  # placeholder replaced by the validated loader
    return pd.read_parquet(path)
