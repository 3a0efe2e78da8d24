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

Executors, all behind ``run_all``: ``local`` (a process pool, the default), ``submitit`` (SLURM through
submitit; ``--cluster local`` runs submitit's own local executor, ``workers`` jobs at a time) and ``ray``. Relaunching a
sweep skips finished runs (their part exists) and resumes unfinished ones from their checkpoints.

Usage::

    python -m runners.sweep runners/configs/cpu_ladder.toml --workers 2 --compact data/runs.parquet
    python -m runners.sweep runners/configs/smoke.toml --executor submitit --cluster slurm --partition gpu
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import multiprocessing
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from runners.model import size_config
from runners.train import RunSpec, part_path, spec_from_dict, train
from scalefit.runs import write_runs

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


def run_all(fn: Callable, items: list, *, executor: str = "local", workers: int = 1, cluster: str = "local",
            log_folder: Path | None = None, slurm: dict | None = None) -> Iterator[tuple[object, object]]:
    """Run ``fn(item)`` for every item on an existing engine; yield (item, result or exception) as they end."""
    if executor == "local":
        context = multiprocessing.get_context("spawn")  # torch and fork do not mix
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            for future in cf.as_completed(futures):
                yield futures[future], future.exception() or future.result()
    elif executor == "submitit":
        import submitit

        ex = submitit.AutoExecutor(folder=log_folder or "submitit_logs", cluster=cluster)
        ex.update_parameters(timeout_min=24 * 60, **(slurm or {}))
        # SLURM queues every job itself; submitit's local cluster would start them all at once.
        in_flight = len(items) if cluster == "slurm" else workers
        queue, jobs = list(items), {}
        while queue or jobs:
            while queue and len(jobs) < in_flight:
                item = queue.pop(0)
                jobs[ex.submit(fn, item)] = item
            for job in [j for j in jobs if j.done()]:
                item = jobs.pop(job)
                yield item, job.exception() or job.result()
            time.sleep(0.5)
    elif executor == "ray":
        import ray

        ray.init(ignore_reinit_error=True)
        remote = ray.remote(fn)
        refs = {remote.remote(item): item for item in items}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            item = refs.pop(done[0])
            try:
                yield item, ray.get(done[0])
            except ray.exceptions.RayError as err:  # a failed run is reported, the sweep goes on
                yield item, err
    else:
        raise ValueError(f"unknown executor {executor!r}; use local, submitit or ray")


class _Job:
    """A picklable ``fn(run)`` for the executors."""

    def __init__(self, out: str, device: str, threads: int | None) -> None:
        self.out, self.device, self.threads = out, device, threads

    def __call__(self, run: RunSpec) -> str:
        return str(train(run, self.out, device=self.device, threads=self.threads))

    def checkpoint(self, run: RunSpec):
        """submitit's hook on SLURM preemption or timeout: requeue; the run resumes from its checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, run)


def compact(out: str | Path, dest: str | Path) -> pd.DataFrame:
    """Merge every finished part under ``out/parts`` into one table at ``dest`` (atomic)."""
    parts = sorted((Path(out) / "parts").glob("*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no finished runs under {Path(out) / 'parts'}")
    table = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    table = table.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)
    write_runs(table, dest)
    return table


def sweep(spec_path: str | Path, *, out: str | Path | None = None, executor: str = "local", workers: int = 1,
          threads: int | None = 1, device: str = "cpu", cluster: str = "local", slurm: dict | None = None,
          progress: bool = True) -> list[tuple[RunSpec, BaseException]]:
    """Run every unfinished run of a sweep; return the failures (the sweep goes on past them)."""
    spec = tomllib.loads(Path(spec_path).read_text())
    out = Path(out or spec["sweep"]["out"])
    runs = expand(spec)
    pending = [r for r in runs if not part_path(out, r).exists()]
    # Longest runs first, so the pool does not end waiting on one big straggler.
    pending.sort(key=lambda r: -r.tokens * size_config(r.size).flops_per_token())
    failures: list[tuple[RunSpec, BaseException]] = []
    from tqdm import tqdm

    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), unit="run", disable=not progress,
               desc=spec["sweep"].get("name", "sweep"))
    job = _Job(str(out), device, threads)
    for run, result in run_all(job, pending, executor=executor, workers=workers, cluster=cluster,
                               log_folder=out / "submitit", slurm=slurm):
        if isinstance(result, BaseException):
            failures.append((run, result))
            tqdm.write(f"FAILED {run.run_id}: {result!r}", file=sys.stderr)
        bar.update(1)
    bar.close()
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a sweep spec (TOML) of training runs.",
                                     epilog="example: python -m runners.sweep runners/configs/cpu_ladder.toml "
                                            "--workers 2 --compact data/runs.parquet")
    parser.add_argument("spec", help="sweep spec (TOML)")
    parser.add_argument("--out", help="sweep folder (default: the spec's [sweep] out)")
    parser.add_argument("--executor", choices=("local", "submitit", "ray"), default="local")
    parser.add_argument("--cluster", default="local",
                        help="submitit cluster: slurm or local (default local)")
    parser.add_argument("--partition", help="SLURM partition (submitit, cluster slurm)")
    parser.add_argument("--workers", type=int, default=1, help="parallel runs (local executor)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compact", metavar="TABLE", help="then merge all finished runs into this parquet")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their cost, run nothing")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    spec = tomllib.loads(Path(args.spec).read_text())
    if args.dry_run:
        runs = expand(spec)
        flops = sum(r.tokens * size_config(r.size).flops_per_token() for r in runs)
        print(f"{len(runs)} runs, {sum(r.tokens for r in runs):.3g} tokens, {flops:.3g} FLOPs (6ND+attn)")
        for r in runs:
            print(r.run_id)
        return 0
    slurm = {"slurm_partition": args.partition} if args.partition else None
    failures = sweep(args.spec, out=args.out, executor=args.executor, workers=args.workers,
                     threads=args.threads, device=args.device, cluster=args.cluster, slurm=slurm,
                     progress=not args.quiet)
    if args.compact:
        table = compact(args.out or spec["sweep"]["out"], args.compact)
        print(f"wrote {args.compact}: {table['run_id'].nunique()} runs, {len(table)} rows")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
