"""Expand a TOML grid of RL runs, execute the unfinished ones on an existing engine, and compact the rows.

Spec format (see ``runners/rl/configs/``)::

    [sweep]
    name = "rl-addition"
    out = "data/rl-parts"              # sft/, parts/ and checkpoints/ go here

    [defaults]                         # any RLSpec field: digits, rl_steps, group_size, rl_lr, kl_coef, ...
    rl_steps = 300

    [sft_lr_rule]                      # optional: supervised-stage lr per size, lr0 · (N / 1e4)^(-exponent)
    lr0 = 1e-2
    exponent = 0.38

    [[grid]]                           # each block is a Cartesian product of its list values; blocks unioned
    size = ["n10k", "n40k"]
    seed = [0, 1]

Runs go through the executors of :mod:`runners.common.executors` (a local process pool, submitit — SLURM job
arrays with GPU/CPU/memory/time requests, or its local/debug executors — or Ray) on any device
(``--device cuda``). Relaunching skips runs whose part exists, resumes unfinished ones (and unfinished
supervised stages) from their checkpoints and does not resubmit SLURM jobs still queued or running; every
random draw is keyed on (seed, step), so the rows are those of an uninterrupted sweep. Runs are claimed by
locks, so two sweeps on one folder never train the same run; damaged files are quarantined and retrained.

Usage::

    python -m runners.rl.sweep runners/rl/configs/rl_addition.toml --workers 2 --compact data/rl_runs.parquet
    python -m runners.rl.sweep runners/rl/configs/rl_addition.toml --executor submitit --cluster slurm \
        --device cuda --gpus-per-node 1 --cpus-per-task 4 --time-min 60 --partition gpu
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd

from ..common.executors import ExecutorOptions, run_all
from ..common.sweeping import (
    RunJob,
    Tally,
    add_sweep_arguments,
    compact_parts,
    prepare,
    run_cli,
    run_command,
    unfinished,
)
from ..model import size_config
from ..sweep import default_lr
from .grpo import RLSpec, spec_from_dict, train_rl


def expand(spec: dict) -> list[RLSpec]:
    """All runs of a sweep spec, de-duplicated by run_id, in a stable order."""
    defaults = dict(spec.get("defaults", {}))
    runs: dict[str, RLSpec] = {}
    for block in spec.get("grid", []):
        keys = list(block)
        lists = [value if isinstance(value, list) else [value] for value in block.values()]
        for values in itertools.product(*lists):
            config = {**defaults, **dict(zip(keys, values))}
            if "sft_lr_rule" in spec and "sft_lr" not in block:
                config["sft_lr"] = float(f"{default_lr(config['size'], spec['sft_lr_rule']):.3g}")
            run = spec_from_dict(config)
            runs.setdefault(run.run_id, run)
    return list(runs.values())


def compact(out: str | Path, dest: str | Path) -> pd.DataFrame:
    """Merge every finished part under ``out/parts`` into one table at ``dest`` (atomic); damaged parts are
    quarantined and left out, with a line saying so."""
    return compact_parts(out, dest, ["params", "run_id", "rl_step"])


def sweep(spec_path: str | Path, *, out: str | Path | None = None, executor: str = "local", workers: int = 1,
          threads: int | None = 1, device: str = "cpu",
          options: ExecutorOptions | None = None) -> list[tuple[RLSpec, BaseException]]:
    """Run every unfinished run of a sweep, largest models first; return the failures (the sweep goes on).

    ``options`` (where and with what resources runs execute) overrides ``executor`` and ``workers``. One line
    per finished run and a summary go to stderr.
    """
    spec = tomllib.loads(Path(spec_path).read_text())
    out = Path(out or spec["sweep"]["out"])
    options = options or ExecutorOptions(executor=executor, workers=workers)
    runs = expand(spec)
    for line in prepare(out):
        print(line, file=sys.stderr, flush=True)
    pending = unfinished(out, runs)
    pending.sort(key=lambda r: -size_config(r.size).non_embedding_params)
    tally = Tally()
    started = time.perf_counter()
    job = RunJob(train_rl, out, device=device, threads=threads)
    for run, result in run_all(job, pending, options=options, log_folder=out / "submitit",
                               key=lambda r: r.run_id):
        lines = tally.add(run, result)
        if getattr(result, "status", None) == "trained":
            lines.append(f"{run.run_id}: done")
        for line in lines:
            print(f"[{time.perf_counter() - started:7.0f} s] {line}", file=sys.stderr, flush=True)
    print(tally.summary(already=len(runs) - len(pending)), file=sys.stderr, flush=True)
    return tally.failures


def describe(runs: list[RLSpec]) -> None:
    """``--dry-run``: the runs' ids."""
    for run in runs:
        print(run.run_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a TOML grid of RL runs (supervised stage, then GRPO).",
                                     epilog="example: python -m runners.rl.sweep "
                                            "runners/rl/configs/rl_addition.toml --workers 2 "
                                            "--compact data/rl_runs.parquet")
    add_sweep_arguments(parser)
    return run_command(parser.parse_args(argv), expand=expand, sweep=sweep, compact=compact, describe=describe)


if __name__ == "__main__":
    run_cli(main)
