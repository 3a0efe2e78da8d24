"""``flock`` locks in a sweep folder (through the ``filelock`` package, which torch already requires).

``<out>/locks/<run_id>.lock``
    Held by the worker that trains the run, from before it tidies the run's files until its part is written.
    Another worker (of the same sweep or of a second sweep on the same folder) that finds it held skips the
    run. The operating system releases a lock when its holder dies, SIGKILL included, so a killed worker never
    leaves a run locked.
``<out>/locks/sft-<name>.lock``
    The RL runner's supervised stage, shared by several runs: a second worker waits for it, then loads it.
``<out>/locks/_sweep.lock``
    The sweep folder's own bookkeeping (removing stale temporary files, the record of submitted jobs): held
    for a moment at a time.

The folder must be on a filesystem that supports ``flock`` (a local disk, NFSv4, Lustre mounted with
``-o flock``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

SWEEP_KEY = "_sweep"


def lock_file(out: str | Path, key: str) -> Path:
    folder = Path(out) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.lock"


@contextmanager
def claim(out: str | Path, key: str, *, wait: bool = False) -> Iterator[bool]:
    """Hold the lock ``key`` of the sweep folder ``out`` for the ``with`` block.

    Yields True while it is held. With ``wait=False`` it yields False at once when another process holds it
    (the caller skips the work); with ``wait=True`` it waits until the lock is free.
    """
    lock = FileLock(lock_file(out, key))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def sweep_lock(out: str | Path) -> Iterator[None]:
    """Hold the sweep folder's bookkeeping lock (waiting for it) for the ``with`` block."""
    with claim(out, SWEEP_KEY, wait=True):
        yield
