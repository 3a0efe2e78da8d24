"""From a plan to the runners: a sweep TOML for ``runners/`` and what it will cost in CPU or GPU hours.

scalefit never imports the runners; this module knows their config format and their model family's
parameter count (``runners/model.py``: ``N = L·(12·d² + 4·d) + 2·d`` with ``d_ff = 4·d``), and shapes are
written as ``d<d_model>l<n_layers>``, which the runners accept for any size whose d_model is a multiple of
their head size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from scalefit.flops import training_flops

#: Training throughput of the CPU runner, one thread per run (shared/notes/cpu-runner-facts.md, 2-core x86-64,
#: torch 2.13 CPU, fp32, T = 128): non-embedding parameters → tokens/s.
CPU_THROUGHPUT = ((9_440, 119e3), (49_728, 58e3), (197_760, 23e3), (985_856, 7.5e3), (3_102_336, 2.6e3))
#: GPU assumption when none is measured: an H100's dense bf16 peak and a model FLOPs utilisation of 40 %.
GPU_PEAK_FLOPS = 989e12
GPU_MFU = 0.4


def runner_params(d_model: int, n_layers: int) -> int:
    """Non-embedding parameters of the runners' GPT of this shape (runners/model.py's accounting)."""
    return n_layers * (12 * d_model * d_model + 4 * d_model) + 2 * d_model


def _head_dim(d_model: int) -> int:
    """The runners' head size rule (runners/model.py ``shape``): d_model must be a multiple of it."""
    return 8 if d_model < 64 else 16 if d_model < 256 else 32 if d_model < 1024 else 64


def runner_shape(params: float) -> tuple[int, int]:
    """A ``(d_model, n_layers)`` of the runners' family near ``params``: d a multiple of the head size, and the
    aspect ratio d/L close to the ladder's (about 5 at 10k parameters, growing as N^(1/6))."""
    aspect = 5.0 * (params / 1e4) ** (1 / 6)
    best, best_score = (8, 1), math.inf
    for n_layers in range(1, 97):
        ideal = math.sqrt(params / (12 * n_layers))
        step = _head_dim(int(ideal))
        for d_model in {max(8, math.floor(ideal / step) * step), max(8, math.ceil(ideal / step) * step)}:
            if d_model % _head_dim(d_model):
                continue
            size_error = abs(math.log(runner_params(d_model, n_layers) / params))
            score = size_error + 0.1 * abs(math.log(d_model / n_layers / aspect))
            if score < best_score:
                best, best_score = (d_model, n_layers), score
    return best


def cpu_hours(params: float, tokens: float) -> float:
    """Hours of one CPU core for a run, from the runner's measured throughput (log-log interpolation)."""
    sizes, rates = (np.log([row[i] for row in CPU_THROUGHPUT]) for i in (0, 1))
    slope = (rates[-1] - rates[-2]) / (sizes[-1] - sizes[-2])
    log_n = math.log(params)
    rate = np.interp(log_n, sizes, rates) if log_n <= sizes[-1] else rates[-1] + slope * (log_n - sizes[-1])
    return tokens / math.exp(rate) / 3600.0


def gpu_hours(flops: float, peak_flops: float = GPU_PEAK_FLOPS, mfu: float = GPU_MFU) -> float:
    """GPU hours for ``flops`` training FLOPs at ``mfu`` of ``peak_flops``."""
    return flops / (peak_flops * mfu) / 3600.0


def sweep_toml(runs: pd.DataFrame, *, name: str = "plan", out: str = "sweeps/plan", batch_size: int = 2048,
               seq_len: int = 128, corpus: str = "shakespeare", lr0: float = 1.4e-2, lr_exponent: float = 0.38,
               lrs: Sequence[float] | None = None) -> str:
    """A sweep config for ``python -m runners.sweep`` training ``runs`` (``params``, ``tokens``).

    Learning rates come from ``lrs`` (one per run, e.g. from ``scalefit recommend``) or from the runners'
    rule ``lr = lr0 · (N/1e4)^(−lr_exponent)`` (the CPU ladder's default, ``[lr_rule]``). Token budgets are
    rounded up to whole batches.
    """
    lines = [
        "# Made by `scalefit plan`: the runs it proposed to narrow the planning interval at the target.",
        f"#   python -m runners.sweep THIS_FILE --workers 2 --threads 1 --compact {out}/runs.parquet",
        "", "[sweep]", f'name = "{name}"', f'out = "{out}"', "", "[defaults]", f"seq_len = {seq_len}",
        f"batch_size = {batch_size}", 'schedule = "cosine"', "warmup_frac = 0.05", f'corpus = "{corpus}"',
    ]
    if lrs is None:
        lines += ["", "[lr_rule]", f"lr0 = {lr0:g}", f"exponent = {lr_exponent:g}"]
    for k, row in enumerate(runs.itertuples(index=False)):
        d_model, n_layers = runner_shape(row.params)
        tokens = math.ceil(row.tokens / batch_size) * batch_size
        lines += ["", "[[grid]]", (f"# planned N = {row.params:.4g}; this shape has "
                  f"{runner_params(d_model, n_layers):,} non-embedding parameters"),
                  f'size = ["d{d_model}l{n_layers}"]', f"tokens = [{tokens}]"]
        if lrs is not None:
            lines.append(f"lr = [{lrs[k]:.4g}]")
    return "\n".join(lines) + "\n"


def cost_table(runs: pd.DataFrame, peak_flops: float = GPU_PEAK_FLOPS, mfu: float = GPU_MFU) -> pd.DataFrame:
    """Per run: the runner shape, its exact N, FLOPs (6ND), CPU-core hours and GPU hours."""
    rows = []
    for row in runs.itertuples(index=False):
        d_model, n_layers = runner_shape(row.params)
        n = runner_params(d_model, n_layers)
        rows.append({"shape": f"d{d_model}l{n_layers}", "params": n, "tokens": row.tokens,
                     "flops": training_flops(n, row.tokens), "cpu_hours": cpu_hours(n, row.tokens),
                     "gpu_hours": gpu_hours(training_flops(n, row.tokens), peak_flops, mfu)})
    return pd.DataFrame(rows)
