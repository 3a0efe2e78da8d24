"""Expand a TOML sweep spec into runs, execute them through an existing engine, and compact the rows.

Spec format (see ``runners/configs/``)::

    [sweep]
    name = "cpu-ladder"
    out = "data/cpu-ladder"            # parts/ and checkpoints/ go here

    [defaults]                         # any RunSpec field: seq_len, schedule, warmup_frac, corpus, ...
    batch_size = 2048

    [lr_rule]                          # default peak lr per size: lr0 · (N / 1e4)^(-exponent)
    lr0 = 1.4e-2
    exponent = 0.38

    [[grid]]                           # each block is a Cartesian product; blocks are unioned
    size = ["n10k", "n40k"]
    tokens = [1e6, 4e6]
    lr_multipliers = [0.5, 0.71, 1, 1.41, 2]   # or: lr = [...], or: lr_by_size = {n10k = [...]}
    batch_size = [2048, 4096]
    seed = [0]

Executors (:mod:`runners.common.executors`): ``local`` (a process pool, the default), ``submitit`` (SLURM job
arrays with GPU/CPU/memory/time/account/qos/partition requests; ``--cluster local`` or ``debug`` run submitit's
own local executors) and ``ray`` (tasks with ``num_gpus``/``num_cpus``). Relaunching a sweep skips finished runs
(their part exists), resumes unfinished ones from their checkpoints and does not resubmit SLURM jobs that are
still queued or running. Several sweeps may work on one folder at once: each run is claimed by a lock, and a
sweep skips the runs another one holds. Damaged parts and checkpoints are moved to ``quarantine/`` and their
runs trained again (:mod:`runners.common.sweeping`).

Usage::

    python -m runners.sweep runners/configs/cpu_ladder.toml --workers 2 --compact data/runs.parquet
    python -m runners.sweep runners/configs/smoke.toml --executor submitit --cluster slurm --partition gpu \
        --device cuda --gpus-per-node 1 --cpus-per-task 8 --mem-gb 32 --time-min 120 --account myproj
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tomllib
from functools import partial
from pathlib import Path

import pandas as pd

from .common.executors import ExecutorOptions, run_all
from .common.sweeping import (
    RunJob,
    Tally,
    add_sweep_arguments,
    compact_parts,
    prepare,
    run_cli,
    run_command,
    unfinished,
)
from .model import size_config
from .train import RunSpec, spec_from_dict, train

GRID_KEYS = ("size", "tokens", "lr", "lr_multipliers", "lr_by_size", "batch_size", "seed", "schedule")


def default_lr(size: str, rule: dict) -> float:
    n = size_config(size).non_embedding_params
    return float(rule["lr0"]) * (n / 1e4) ** (-float(rule["exponent"]))


def expand(spec: dict) -> list[RunSpec]:
    """All runs of a sweep spec, de-duplicated by run_id, in a stable order."""
    defaults = dict(spec.get("defaults", {}))
    runs: dict[str, RunSpec] = {}
    for block in spec.get("grid", []):
        unknown = sorted(set(block) - set(GRID_KEYS) - set(RunSpec.__dataclass_fields__))
        if unknown:
            raise ValueError(f"grid block has unknown key(s) {unknown}")
        extra = {k: v for k, v in block.items() if k not in GRID_KEYS}
        for size, tokens, batch, seed in itertools.product(
            block["size"], block["tokens"], block.get("batch_size", [defaults.get("batch_size", 2048)]),
            block.get("seed", [0]),
        ):
            if "lr" in block:
                lrs = block["lr"]
            elif "lr_by_size" in block:
                lrs = block["lr_by_size"][size]
            else:
                base = default_lr(size, spec["lr_rule"])
                lrs = [float(f"{base * m:.3g}") for m in block.get("lr_multipliers", [1.0])]
            for lr in lrs:
                config = {**defaults, **extra, "size": size, "tokens": tokens, "lr": lr,
                          "batch_size": batch, "seed": seed}
                run = spec_from_dict(config)
                if runs.setdefault(run.run_id, run) != run:
                    raise ValueError(f"two different runs share the id {run.run_id} (run ids keep 3 significant "
                                     f"digits of tokens and lr): {runs[run.run_id]} and {run}")
    return list(runs.values())


def compact(out: str | Path, dest: str | Path) -> pd.DataFrame:
    """Merge every finished part under ``out/parts`` into one table at ``dest`` (atomic); damaged parts are
    quarantined and left out, with a line saying so."""
    return compact_parts(out, dest, ["run_id", "step"])


def sweep(spec_path: str | Path, *, out: str | Path | None = None, executor: str = "local", workers: int = 1,
          threads: int | None = 1, device: str = "cpu", cluster: str = "local",
          options: ExecutorOptions | None = None, progress: bool = True) -> list[tuple[RunSpec, BaseException]]:
    """Run every unfinished run of a sweep; return the failures (the sweep goes on past them).

    ``options`` (where and with what resources runs execute) overrides ``executor``, ``workers`` and
    ``cluster``. A one-line summary (trained, already finished, held by another sweep, failed) goes to stderr.
    """
    spec = tomllib.loads(Path(spec_path).read_text())
    out = Path(out or spec["sweep"]["out"])
    options = options or ExecutorOptions(executor=executor, workers=workers, cluster=cluster)
    runs = expand(spec)
    notes = prepare(out)
    pending = unfinished(out, runs)
    # Longest runs first, so the pool does not end waiting on one big straggler.
    pending.sort(key=lambda r: -r.tokens * size_config(r.size).flops_per_token())
    from tqdm import tqdm

    for line in notes:
        tqdm.write(line, file=sys.stderr)
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), unit="run", disable=not progress,
               desc=spec["sweep"].get("name", "sweep"))
    tally = Tally()
    job = RunJob(train, out, device=device, threads=threads)
    for run, result in run_all(job, pending, options=options, log_folder=out / "submitit",
                               key=lambda r: r.run_id):
        for line in tally.add(run, result):
            tqdm.write(line, file=sys.stderr)
        bar.update(1)
    bar.close()
    print(tally.summary(already=len(runs) - len(pending)), file=sys.stderr, flush=True)
    return tally.failures


def describe(runs: list[RunSpec]) -> None:
    """``--dry-run``: the runs, their tokens and FLOPs."""
    flops = sum(r.tokens * size_config(r.size).flops_per_token() for r in runs)
    print(f"{len(runs)} runs, {sum(r.tokens for r in runs):.3g} tokens, {flops:.3g} FLOPs (6ND+attn)")
    for r in runs:
        print(r.run_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a sweep spec (TOML) of training runs.",
                                     epilog="example: python -m runners.sweep runners/configs/cpu_ladder.toml "
                                            "--workers 2 --compact data/runs.parquet")
    add_sweep_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    return run_command(args, expand=expand, sweep=partial(sweep, progress=not args.quiet), compact=compact,
                       describe=describe)


if __name__ == "__main__":
    run_cli(main)
