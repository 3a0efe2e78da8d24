"""The sweep driver both runners use: claim a run, tidy its files, train it unless done; tally; compact.

A sweep folder may be worked on by several sweeps at once (two launches on one machine, or one per node of a
cluster): each run is claimed with its own lock (:mod:`runners.common.locks`) and a sweep skips the runs
another sweep's workers hold, saying how many at the end, so no run is ever trained twice and nothing fails
because of the other sweep. Relaunch (or ``--compact``) once the other sweep has ended to collect everything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .executors import CLUSTERS, EXECUTORS, ExecutorError, ExecutorOptions, Queued
from .files import (
    checkpoint_path,
    checkpoint_problem,
    lock_key,
    part_path,
    part_problem,
    quarantine,
    remove_temps,
    temp_owners,
    write_table,
)
from .locks import claim, sweep_lock


@dataclass(frozen=True)
class Outcome:
    """What a worker did with one run: ``trained`` it, found it ``done`` by another worker meanwhile, or
    found it ``held`` by another worker (and left it); ``notes`` are lines to show (quarantined files)."""

    run_id: str
    status: str
    notes: tuple[str, ...] = ()


class RunJob:
    """The picklable ``fn(run)`` every executor runs: ``train(run, out, **options)`` under the run's lock.

    Under the lock it removes the temporary files a killed writer left, returns at once if the run's part is
    already there (another worker finished it since the sweep looked), and moves a damaged part or checkpoint
    to ``quarantine/`` before training (a damaged checkpoint means starting the run again).
    """

    def __init__(self, train: Callable[..., Path], out: str | Path, **options) -> None:
        self.train, self.out, self.options = train, str(out), options

    def __call__(self, run) -> Outcome:
        out, run_id = Path(self.out), run.run_id
        part, ckpt = part_path(out, run_id), checkpoint_path(out, run_id)
        notes = []
        with claim(out, run_id) as held:
            if not held:
                return Outcome(run_id, "held")
            remove_temps(part)
            remove_temps(ckpt)
            if part.exists():
                problem = part_problem(part)
                if problem is None:
                    return Outcome(run_id, "done")
                notes.append(quarantine(part, out, problem) + f"; training {run_id} again")
            if ckpt.exists() and (problem := checkpoint_problem(ckpt)):
                notes.append(quarantine(ckpt, out, problem) + f"; training {run_id} from the start")
            self.train(run, out, **self.options)
        return Outcome(run_id, "trained", tuple(notes))

    def checkpoint(self, run):
        """submitit's hook on SLURM preemption or timeout: requeue; the run resumes from its checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, run)


def prepare(out: Path) -> list[str]:
    """Create the sweep folder and delete the temporary files of writers that were killed; lines to show.

    A temporary file belongs to a run (or an RL supervised stage); it is removed only when that run's lock is
    free, so the files a live worker of another sweep is writing are left alone.
    """
    out.mkdir(parents=True, exist_ok=True)
    removed = 0
    with sweep_lock(out):
        for key, temps in temp_owners(out).items():
            with claim(out, key) as held:
                if held:
                    for temp in temps:
                        temp.unlink(missing_ok=True)
                    removed += len(temps)
    return [f"removed {removed} temporary file(s) left by killed writers"] if removed else []


def unfinished(out: Path, runs: Iterable) -> list:
    """The runs without a readable part (a damaged part is quarantined by the worker that retrains it)."""
    pending = []
    for run in runs:
        part = part_path(out, run.run_id)
        if not part.exists() or part_problem(part):
            pending.append(run)
    return pending


OUTCOME_WORDS = {"trained": "trained", "done": "finished by another sweep", "held": "held by another sweep",
                 "queued": "queued on the cluster", "failed": "failed"}


class Tally:
    """Counts what the workers did and turns each result into the lines to show."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failures: list[tuple[object, BaseException]] = []
        self.held: list[str] = []

    def add(self, run, result) -> list[str]:
        if isinstance(result, BaseException):
            self.counts["failed"] += 1
            self.failures.append((run, result))
            return [f"FAILED {run.run_id}: {one_line(result)}"]
        if isinstance(result, Queued):
            self.counts["queued"] += 1
            verb = "submitted as" if result.resubmitted else "still queued or running from an earlier launch:"
            return [f"{run.run_id}: {verb} job {result.job_id}"]
        self.counts[result.status] += 1
        if result.status == "held":
            self.held.append(result.run_id)
        return list(result.notes)

    def summary(self, already: int) -> str:
        parts = [f"{already} already finished"] + [f"{self.counts[k]} {w}" for k, w in OUTCOME_WORDS.items()
                                                    if self.counts[k]]
        line = "sweep: " + ", ".join(parts)
        if self.held:
            line += " (another sweep on this folder is training them: relaunch once it ends)"
        if self.counts["queued"]:
            line += " (relaunch the same command to wait for them and collect)"
        return line


def one_line(err: BaseException) -> str:
    """An error in one line: its type and the last line of its message (where a job's traceback ends)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"[:300]


def compact_parts(out: str | Path, dest: str | Path, sort_by: list[str]) -> pd.DataFrame:
    """Merge every readable part under ``out/parts`` into one table at ``dest`` (atomic).

    A damaged part (zero bytes, not parquet, no rows) is moved to ``quarantine/`` with a line on stderr and
    left out; relaunching the sweep retrains its run.
    """
    import pyarrow

    out = Path(out)
    tables = []
    for part in sorted((out / "parts").glob("*.parquet")):
        problem = part_problem(part)
        if problem is None:
            try:
                tables.append(pd.read_parquet(part))
                continue
            except (OSError, pyarrow.ArrowException) as err:
                problem = f"unreadable: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
        with claim(out, lock_key(part)) as held:
            line = (quarantine(part, out, problem) + "; left out, relaunch the sweep to train it again" if held
                    else f"left out {part.name} ({problem}): a worker is training it again")
        print(line, file=sys.stderr, flush=True)
    if not tables:
        raise FileNotFoundError(f"no finished runs under {out / 'parts'}")
    table = pd.concat(tables, ignore_index=True)
    table = table.sort_values(sort_by, kind="stable").reset_index(drop=True)
    write_table(table, dest)
    return table


# --- the command line -----------------------------------------------------------------------------------------


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip("- "):
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. --slurm-extra constraint=a100)")
    return key.strip().lstrip("-"), value.strip()


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the engine and each run's resources, shared by both sweep commands."""
    group = parser.add_argument_group("where the runs execute")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local process pool (default), submitit (SLURM) or ray")
    group.add_argument("--workers", type=int, default=1,
                       help="runs at a time (local pool; submitit's local cluster)")
    group.add_argument("--cluster", choices=CLUSTERS, default="local",
                       help="submitit cluster: slurm, local (jobs on this machine) or debug (in-process)")
    group.add_argument("--gpus-per-node", type=int,
                       help="GPUs of one run: SLURM --gpus-per-node, Ray num_gpus (default 1 with --device "
                            "cuda, else 0)")
    group.add_argument("--cpus-per-task", type=int,
                       help="CPUs of one run: SLURM --cpus-per-task, Ray num_cpus (default: --threads)")
    group.add_argument("--mem-gb", type=float, help="memory of one run, GB (SLURM --mem, Ray memory)")
    group.add_argument("--time-min", type=int, default=24 * 60,
                       help="time limit of one run, minutes (SLURM --time; default 1440)")
    group.add_argument("--account", help="SLURM --account")
    group.add_argument("--qos", help="SLURM --qos")
    group.add_argument("--partition", help="SLURM --partition")
    group.add_argument("--slurm-extra", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                       help="any other #SBATCH option, repeatable (e.g. --slurm-extra constraint=a100)")
    group.add_argument("--array-parallelism", type=int,
                       help="SLURM: at most this many runs of the job array at once")
    group.add_argument("--no-wait", action="store_true",
                       help="SLURM: submit and return; relaunch the same command later to collect")


def executor_options(args: argparse.Namespace, *, device: str, threads: int | None) -> ExecutorOptions:
    """:class:`ExecutorOptions` from the options of :func:`add_executor_arguments`."""
    gpus = args.gpus_per_node
    if gpus is None and args.executor != "local":
        gpus = 1 if device.startswith("cuda") else None
    return ExecutorOptions(
        executor=args.executor, workers=args.workers, cluster=args.cluster, gpus_per_node=gpus,
        cpus_per_task=args.cpus_per_task or threads, mem_gb=args.mem_gb, timeout_min=args.time_min,
        account=args.account, qos=args.qos, partition=args.partition, slurm_extra=dict(args.slurm_extra),
        array_parallelism=args.array_parallelism, wait=not args.no_wait)


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both sweep commands take: the spec, its folder, threads, device, compaction, a dry run and
    where the runs execute (:func:`add_executor_arguments`)."""
    parser.add_argument("spec", help="sweep spec (TOML)")
    parser.add_argument("--out", help="sweep folder (default: the spec's [sweep] out)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<i>")
    parser.add_argument("--compact", metavar="TABLE", help="then merge all finished runs into this parquet")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    add_executor_arguments(parser)


def run_command(args: argparse.Namespace, *, expand: Callable[[dict], list], sweep: Callable[..., list],
                compact: Callable[[Path, str], pd.DataFrame], describe: Callable[[list], None]) -> int:
    """What both sweep commands do once their options are parsed: read and expand the spec, then list its
    runs (``--dry-run``, through ``describe``) or run them with ``sweep``, then ``compact`` if asked.

    Exit code 0 when every run finished, 1 when some failed, 2 for a spec or engine that cannot be used
    (one line, no traceback).
    """
    try:
        spec = tomllib.loads(Path(args.spec).read_text())
        runs = expand(spec)
        out = Path(args.out or spec["sweep"]["out"])
    except (OSError, tomllib.TOMLDecodeError, ValueError, KeyError, TypeError) as err:
        print(f"error: {args.spec}: {err!s}", file=sys.stderr)
        return 2
    if args.dry_run:
        describe(runs)
        return 0
    options = executor_options(args, device=args.device, threads=args.threads)
    try:
        failures = sweep(args.spec, out=out, threads=args.threads, device=args.device, options=options)
    except ExecutorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.compact:
        try:
            table = compact(out, args.compact)
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {args.compact}: {table['run_id'].nunique()} runs, {len(table)} rows")
    return 1 if failures else 0


def run_cli(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s code; output piped into a reader that stops early (``| head``) is not an error."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        code = 0
    sys.exit(code)
