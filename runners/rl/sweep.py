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

Runs go through :func:`runners.sweep.run_all` (local process pool, submitit or ray). Relaunching skips runs
whose part exists and resumes unfinished ones (and unfinished supervised stages) from their checkpoints;
every random draw is keyed on (seed, step), so the rows are those of an uninterrupted sweep.

Usage::

    python -m runners.rl.sweep runners/rl/configs/rl_addition.toml --workers 2 --compact data/rl_runs.parquet
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd

from runners.model import size_config
from runners.rl.grpo import RLSpec, part_path, spec_from_dict, train_rl
from runners.sweep import default_lr, run_all
from scalefit.runs import write_runs


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


class _Job:
    """A picklable ``fn(run)`` for the executors."""

    def __init__(self, out: str, threads: int | None) -> None:
        self.out, self.threads = out, threads

    def __call__(self, run: RLSpec) -> str:
        return str(train_rl(run, self.out, threads=self.threads))


def compact(out: str | Path, dest: str | Path) -> pd.DataFrame:
    """Merge every finished part under ``out/parts`` into one table at ``dest`` (atomic)."""
    parts = sorted((Path(out) / "parts").glob("*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no finished runs under {Path(out) / 'parts'}")
    table = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    table = table.sort_values(["params", "run_id", "rl_step"], kind="stable").reset_index(drop=True)
    write_runs(table, dest)
    return table


def sweep(spec_path: str | Path, *, out: str | Path | None = None, executor: str = "local", workers: int = 1,
          threads: int | None = 1) -> list[tuple[RLSpec, BaseException]]:
    """Run every unfinished run of a sweep, largest models first; return the failures (the sweep goes on)."""
    spec = tomllib.loads(Path(spec_path).read_text())
    out = Path(out or spec["sweep"]["out"])
    pending = [r for r in expand(spec) if not part_path(out, r).exists()]
    pending.sort(key=lambda r: -size_config(r.size).non_embedding_params)
    failures = []
    started = time.perf_counter()
    for run, result in run_all(_Job(str(out), threads), pending, executor=executor, workers=workers,
                               log_folder=out / "submitit"):
        status = f"FAILED {result!r}" if isinstance(result, BaseException) else "done"
        print(f"[{time.perf_counter() - started:7.0f} s] {run.run_id}: {status}", file=sys.stderr, flush=True)
        if isinstance(result, BaseException):
            failures.append((run, result))
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a TOML grid of RL runs (supervised stage, then GRPO).",
                                     epilog="example: python -m runners.rl.sweep "
                                            "runners/rl/configs/rl_addition.toml --workers 2 "
                                            "--compact data/rl_runs.parquet")
    parser.add_argument("spec", help="sweep spec (TOML)")
    parser.add_argument("--out", help="sweep folder (default: the spec's [sweep] out)")
    parser.add_argument("--executor", choices=("local", "submitit", "ray"), default="local")
    parser.add_argument("--workers", type=int, default=1, help="parallel runs (local executor)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--compact", metavar="TABLE", help="then merge all finished runs into this parquet")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    args = parser.parse_args(argv)
    spec = tomllib.loads(Path(args.spec).read_text())
    if args.dry_run:
        for run in expand(spec):
            print(run.run_id)
        return 0
    failures = sweep(args.spec, out=args.out, executor=args.executor, workers=args.workers,
                     threads=args.threads)
    if args.compact:
        table = compact(args.out or spec["sweep"]["out"], args.compact)
        print(f"wrote {args.compact}: {table['run_id'].nunique()} runs, {len(table)} rows")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
