"""How long and how much memory does ``scalefit fit`` take on a 10M-row per-step history?

Run by hand (heavy: several minutes and a few GB; use ``nice`` on a shared machine)::

    nice python benchmarks/big_table.py                      # 2,000 runs x 5,000 evaluations = 10M rows
    nice python benchmarks/big_table.py --runs 200 --evals 500 --bootstrap 100    # a quick look

It writes (once; reused when present with the same shape) a runs table of ``--runs`` runs, each logged at
``--evals`` evaluation points, with the columns a trainer's per-step log has (``run_id``, ``family``,
``params``, ``params_embedding``, ``tokens``, ``flops``, ``flops_convention``, ``token_budget``, ``lr``,
``batch_size``, ``seq_len``, ``vocab_size``, ``n_layers``, ``d_model``, ``step``, ``loss``, ``train_loss``, ``split``,
``seed``, ``wall_time``, ``status``), one row per optimiser step (the batch is the budget over
``--evals`` tokens): 20 model sizes x 10 token budgets x 10 learning rates, the loss
drawn from a Chinchilla law (E 1.8, A 400, alpha 0.34, B 1500, beta 0.3) with a quadratic penalty in
log LR and 1 % log-normal noise. Then it runs ``scalefit fit TABLE --bootstrap B`` in a child process
and prints its wall time and peak resident memory (the child's ``ru_maxrss``), with the machine's load.
Targets on the 2-core development machine: under 30 s and 4 GB for the default shape.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TRUTH = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1500.0, "beta": 0.3}
SIZES = np.round(np.logspace(6, 8.5, 20)).astype(np.int64)
BUDGET_MULTIPLES = np.logspace(0.5, 2.0, 10)  # tokens per parameter
LR_FACTORS = np.logspace(-0.6, 0.6, 10)  # around each size's best LR
SEQ_LEN = 1024
VOCAB = 50_304


def _run_grid(n_runs: int) -> list[tuple[int, float, float]]:
    """(params, token budget, lr) of each run: sizes x budgets x LRs, cycled to ``n_runs``."""
    grid = [(int(n), float(round(n * m, -6) or 1e6), float(f)) for n in SIZES for m in BUDGET_MULTIPLES
            for f in LR_FACTORS]
    return [grid[i % len(grid)] for i in range(n_runs)]


def write_history(path: Path, n_runs: int, n_evals: int, seed: int = 0) -> None:
    """Write the per-step history in row groups of 100 runs (bounded memory)."""
    rng = np.random.default_rng(seed)
    grid = _run_grid(n_runs)
    tmp = path.with_suffix(".tmp")
    writer = None
    try:
        for start in range(0, n_runs, 100):
            chunk = grid[start:start + 100]
            k = len(chunk)
            params = np.repeat([c[0] for c in chunk], n_evals)
            budget = np.repeat([c[1] for c in chunk], n_evals)
            lr_factor = np.repeat([c[2] for c in chunk], n_evals)
            batch = np.round(budget / n_evals).astype(np.int64)  # one evaluation per optimiser step
            step = np.tile(np.arange(1, n_evals + 1, dtype=np.int64), k)
            tokens = step * batch
            lr_opt = 3e-3 * (params / 1e6) ** -0.25
            lr = lr_opt * lr_factor
            law = (TRUTH["E"] + TRUTH["A"] / params.astype(float) ** TRUTH["alpha"]
                   + TRUTH["B"] / tokens.astype(float) ** TRUTH["beta"])
            # an untrained model's loss is log(vocab): the law's early-step values are capped there
            loss = np.minimum(law + 0.05 * np.log(lr_factor) ** 2, np.log(VOCAB)) * np.exp(
                rng.normal(0.0, 0.01, len(params)))
            d_model = np.round(np.sqrt(params / 12.0 / 8)).astype(np.int64)
            run_id = np.repeat([f"run-{start + i:05d}-n{c[0]:.3g}-d{c[1]:.3g}-lr{c[2]:.3g}"
                                for i, c in enumerate(chunk)], n_evals)
            table = pa.table({
                "run_id": pa.array(run_id),
                "family": pa.array(np.full(len(params), "gpt")),
                "params": params,
                "params_embedding": d_model * VOCAB,
                "tokens": tokens,
                "flops": 6.0 * params * tokens,
                "flops_convention": pa.array(np.full(len(params), "6ND")),
                "token_budget": budget.astype(np.int64),
                "lr": lr,
                "batch_size": batch,
                "seq_len": np.full(len(params), SEQ_LEN, dtype=np.int64),
                "vocab_size": np.full(len(params), VOCAB, dtype=np.int64),
                "n_layers": np.full(len(params), 8, dtype=np.int64),
                "d_model": d_model,
                "step": step,
                "loss": loss,
                "train_loss": loss * np.exp(rng.normal(0.01, 0.02, len(params))),
                "split": pa.array(np.full(len(params), "val")),
                "seed": np.zeros(len(params), dtype=np.int64),
                "wall_time": step * 0.35,
                "status": pa.array(np.full(len(params), "ok")),
            })
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--evals", type=int, default=5000, help="evaluation points per run")
    parser.add_argument("--bootstrap", type=int, default=1000, help="scalefit fit --bootstrap (default 1000)")
    parser.add_argument("--table", type=Path, help="where to write the table (default: the temp folder)")
    args = parser.parse_args()

    table = args.table or Path(tempfile.gettempdir()) / f"scalefit-big-{args.runs}x{args.evals}.parquet"
    if table.exists() and pq.ParquetFile(table).metadata.num_rows == args.runs * args.evals:
        print(f"reusing {table}")
    else:
        began = time.perf_counter()
        write_history(table, args.runs, args.evals)
        print(f"wrote {table} in {time.perf_counter() - began:.1f} s")
    rows = pq.ParquetFile(table).metadata.num_rows
    print(f"{rows:,} rows ({args.runs:,} runs x {args.evals:,} evaluations), "
          f"{table.stat().st_size / 2**20:.0f} MiB on disk")

    command = [sys.executable, "-m", "scalefit.cli", "--quiet", "fit", str(table),
               "--bootstrap", str(args.bootstrap)]
    print("$ " + " ".join(command[1:]))
    load = os.getloadavg()[0]
    began = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - began
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
    if done.returncode not in (0, 1) or not done.stdout:
        print(done.stdout + done.stderr)
        print(f"scalefit fit failed (exit {done.returncode})")
        return 1
    print("\n".join(done.stdout.splitlines()[:3]))
    print(f"scalefit fit: {wall:.1f} s wall, {peak_gib:.2f} GiB peak RSS (exit {done.returncode}; load "
          f"average {load:.2f} on {os.cpu_count()} CPUs before the run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
