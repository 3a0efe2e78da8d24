"""Run ``fn(item)`` for many items on an existing engine; yield ``(item, result or exception)`` as they end.

Engines (:class:`ExecutorOptions` ``executor``):

``local``
    A process pool (``spawn``: torch and ``fork`` do not mix) of ``workers`` processes. Each worker dies with
    the sweep that started it (``prctl(PR_SET_PDEATHSIG)`` on Linux, a parent watchdog elsewhere), so killing
    the sweep leaves no orphan to race a relaunch.
``submitit``
    ``cluster="slurm"``: every item of one launch in one SLURM job array (``--array=0-K%parallelism``), with
    ``--gpus-per-node``, ``--cpus-per-task``, ``--mem``, ``--time``, ``--account``, ``--qos``, ``--partition``
    and any further ``#SBATCH`` option passed through. ``cluster="local"`` runs submitit's local executor
    (``workers`` jobs at a time) and ``cluster="debug"`` its in-process debug executor. The job id of every
    item is recorded in ``<log folder>/jobs.json``; a relaunch asks the cluster for the state of a recorded
    job (``sacct`` through submitit) and, while it is pending or running, waits for it instead of submitting
    the item again.
``ray``
    One Ray task per item with ``num_gpus``/``num_cpus`` (and ``memory``) requested, so that Ray lets the task
    see its GPU; ``ray.init()`` joins the running cluster (``RAY_ADDRESS``) or starts a local one.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scalefit.io import write_json

from .locks import claim

EXECUTORS = ("local", "submitit", "ray")
CLUSTERS = ("slurm", "local", "debug")
# SLURM states of a job that may still run (sacct's names); any other state lets a relaunch resubmit.
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING",
                           "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT"})
_PR_SET_PDEATHSIG = 1


class ExecutorError(RuntimeError):
    """The engine cannot be used here (not installed, or no cluster to submit to); the message says why."""


@dataclass(frozen=True)
class ExecutorOptions:
    """Where and with what resources each item runs.

    ``gpus_per_node`` and ``cpus_per_task`` are one run's GPUs and CPUs: SLURM's ``--gpus-per-node`` and
    ``--cpus-per-task`` (one run is one single-task job), Ray's ``num_gpus`` and ``num_cpus``. ``mem_gb``,
    ``timeout_min``, ``account``, ``qos``, ``partition`` and ``slurm_extra`` (any other ``#SBATCH`` option,
    without its dashes, e.g. ``{"constraint": "a100"}``) are SLURM's; ``array_parallelism`` caps how many
    tasks of the job array run at once. With ``wait=False`` a SLURM launch submits (or finds still queued)
    every item and returns without waiting: relaunch the same command later to collect.
    """

    executor: str = "local"
    workers: int = 1
    cluster: str = "local"
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: int = 24 * 60
    account: str | None = None
    qos: str | None = None
    partition: str | None = None
    slurm_extra: dict[str, str] = field(default_factory=dict)
    array_parallelism: int | None = None
    wait: bool = True

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; use one of {', '.join(EXECUTORS)}")
        if self.cluster not in CLUSTERS:
            raise ValueError(f"unknown submitit cluster {self.cluster!r}; use one of {', '.join(CLUSTERS)}")
        if self.workers < 1 or self.timeout_min < 1:
            raise ValueError(f"workers={self.workers} and timeout_min={self.timeout_min} must be >= 1")

    def submitit_parameters(self) -> dict:
        """Parameters for ``submitit.AutoExecutor.update_parameters`` (None values are left unset)."""
        parameters = {"timeout_min": int(self.timeout_min), "gpus_per_node": self.gpus_per_node,
                      "cpus_per_task": self.cpus_per_task, "mem_gb": self.mem_gb}
        if self.cluster == "slurm":
            parameters |= {"slurm_partition": self.partition, "slurm_account": self.account,
                           "slurm_qos": self.qos,
                           "slurm_additional_parameters": dict(self.slurm_extra) or None,
                           "slurm_array_parallelism": self.array_parallelism}
        return {k: v for k, v in parameters.items() if v is not None}

    def ray_resources(self) -> dict:
        """``ray.remote`` resource requests of one task."""
        resources = {"num_gpus": self.gpus_per_node or 0, "num_cpus": self.cpus_per_task or 1}
        if self.mem_gb:
            resources["memory"] = int(self.mem_gb * 2**30)
        return resources


@dataclass(frozen=True)
class Queued:
    """An item left running on the cluster by a launch with ``wait=False``."""

    job_id: str
    resubmitted: bool  # False: a job recorded by an earlier launch was still pending or running


def run_all(fn: Callable, items: list, *, options: ExecutorOptions, log_folder: str | Path | None = None,
            key: Callable[[object], str] = str) -> Iterator[tuple[object, object]]:
    """Run ``fn(item)`` for every item; yield ``(item, result or exception)`` in the order they end.

    ``key(item)`` names an item in the submitit job record; ``log_folder`` holds submitit's logs and that
    record (default ``submitit_logs``).
    """
    if options.executor == "local":
        yield from _local(fn, items, options.workers)
    elif options.executor == "submitit":
        yield from _submitit(fn, items, options, Path(log_folder or "submitit_logs"), key)
    else:
        yield from _ray(fn, items, options)


# --- local process pool -------------------------------------------------------------------------------------


def die_with_parent(parent_pid: int) -> None:
    """Pool-worker initializer: end this process as soon as the process that started it ends."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _local(fn: Callable, items: list, workers: int) -> Iterator[tuple[object, object]]:
    if not items:
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent,
                                initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        for future in cf.as_completed(futures):
            yield futures[future], future.exception() or future.result()


# --- submitit -----------------------------------------------------------------------------------------------


def job_state(cluster: str, folder: Path, job_id: str) -> str:
    """The state of a recorded submitit job: a SLURM state (``RUNNING``, ``PENDING``, …) or ``UNKNOWN``."""
    import submitit

    if cluster == "slurm":
        state = submitit.SlurmJob(folder=folder, job_id=job_id).state
        return (state.split() or ["UNKNOWN"])[0].upper()
    if cluster == "local":  # the job id is the pid of submitit's job controller
        if submitit.LocalJob(folder=folder, job_id=job_id).paths.result_pickle.exists():
            return "COMPLETED"
        cmdline = Path(f"/proc/{job_id}/cmdline")
        if cmdline.exists():
            return "RUNNING" if b"submitit" in cmdline.read_bytes() else "UNKNOWN"
        try:
            os.kill(int(job_id), 0)
        except (OSError, ValueError):
            return "UNKNOWN"
        return "RUNNING"
    return "UNKNOWN"  # the debug executor runs in the launching process: nothing outlives it


class _Attached:
    """A job submitted by an earlier launch, still pending or running: waited for, not resubmitted."""

    def __init__(self, cluster: str, folder: Path, job_id: str) -> None:
        import submitit

        self.cluster, self.folder, self.job_id = cluster, folder, job_id
        job_class = submitit.SlurmJob if cluster == "slurm" else submitit.LocalJob
        self.job = job_class(folder=folder, job_id=job_id)

    def done(self) -> bool:
        return job_state(self.cluster, self.folder, self.job_id) not in ACTIVE_STATES

    def exception(self):
        return self.job.exception()

    def result(self):
        return self.job.result()


class JobRecord:
    """``<log folder>/jobs.json``: the submitit job id of every item, read and written under a lock."""

    def __init__(self, folder: Path, cluster: str) -> None:
        self.folder, self.cluster, self.path = folder, cluster, folder / "jobs.json"

    def read(self) -> dict[str, dict]:
        import json

        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except ValueError:
            return {}  # a damaged record only costs a resubmission

    def add(self, ids: dict[str, str]) -> None:
        with claim(self.folder, "jobs", wait=True):
            record = self.read()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record |= {name: {"job_id": job_id, "cluster": self.cluster, "submitted": stamp}
                       for name, job_id in ids.items()}
            write_json(self.path, record)

    def active(self, name: str) -> str | None:
        """The recorded job id of ``name`` if that job is still pending or running on this cluster."""
        entry = self.read().get(name)
        if not entry or entry.get("cluster") != self.cluster:
            return None
        return entry["job_id"] if job_state(self.cluster, self.folder, entry["job_id"]) in ACTIVE_STATES else None


def _submitit(fn: Callable, items: list, options: ExecutorOptions, folder: Path,
              key: Callable[[object], str]) -> Iterator[tuple[object, object]]:
    try:
        import submitit
    except ImportError as err:
        raise ExecutorError("submitit is not installed: pip install 'scalefit[runners]'") from err

    folder.mkdir(parents=True, exist_ok=True)
    record = JobRecord(folder, options.cluster)
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=options.cluster)
    except RuntimeError as err:  # e.g. no srun: not on a SLURM cluster
        raise ExecutorError(f"submitit cannot use the {options.cluster} cluster here: {err}") from err
    executor.update_parameters(**options.submitit_parameters())
    jobs: dict[object, object] = {}
    queue = []
    for item in items:
        job_id = record.active(key(item))
        if job_id is None:
            queue.append(item)
        else:
            jobs[_Attached(options.cluster, folder, job_id)] = item
    submitted: dict[object, object] = {}
    if options.cluster == "slurm" and queue:  # one job array; SLURM queues the tasks itself
        array = executor.map_array(fn, queue)
        submitted = dict(zip(array, queue))
        record.add({key(item): job.job_id for job, item in submitted.items()})
        queue = []
    jobs |= submitted
    if not options.wait and options.cluster == "slurm":
        for job, item in jobs.items():
            yield item, Queued(job.job_id, job in submitted)
        return
    # submitit's local executor would start every job at once: at most `workers` run at a time.
    in_flight = len(jobs) + len(queue) if options.cluster == "slurm" else options.workers
    while queue or jobs:
        while queue and len(jobs) < in_flight:
            item = queue.pop(0)
            job = executor.submit(fn, item)
            record.add({key(item): job.job_id})
            jobs[job] = item
        for job in [j for j in jobs if j.done()]:
            item = jobs.pop(job)
            yield item, job.exception() or job.result()
        time.sleep(5.0 if options.cluster == "slurm" else 0.2)


# --- ray ----------------------------------------------------------------------------------------------------


def _call(fn: Callable, item: object) -> object:
    """``fn(item)`` as a plain function: ``ray.remote`` takes functions and classes, not callable objects."""
    return fn(item)


def _ray(fn: Callable, items: list, options: ExecutorOptions) -> Iterator[tuple[object, object]]:
    try:
        import ray
    except ImportError as err:
        raise ExecutorError("ray is not installed: pip install 'scalefit[runners,ray]'") from err

    ray.init(ignore_reinit_error=True)
    remote = ray.remote(**options.ray_resources())(_call)
    refs = {remote.remote(fn, item): item for item in items}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        item = refs.pop(done[0])
        try:
            yield item, ray.get(done[0])
        except ray.exceptions.RayError as err:  # a failed run is reported, the sweep goes on
            yield item, err
