"""The files of a sweep folder: atomic saves, damage checks, quarantine and stale temporary files.

Layout of a sweep folder ``<out>``::

    parts/<run_id>.parquet        a finished run's rows (the data)
    checkpoints/<run_id>.pt       an unfinished run's last checkpoint (deleted when the run ends)
    sft/<name>.pt                 the RL runner's cached supervised stages
    locks/<key>.lock              flock files (see :mod:`runners.common.locks`)
    quarantine/...                damaged files, moved aside (never deleted), each under a UTC time stamp

Every file is written to a unique temporary name beside its destination and renamed into place
(:func:`scalefit.io.atomic_write`), with mode ``0666 & ~umask`` (0644 under the usual umask 022), so a reader
never sees half a file, two writers never share a temporary name and teammates can read the results. A writer
killed mid-write leaves ``.<name>.<random>.tmp``; :func:`remove_temps` deletes those of a run once its lock is
held (no live writer can own them then).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pandas as pd

from scalefit.io import atomic_write

TEMP_PATTERN = re.compile(r"^\.(?P<name>.+\.(?:parquet|pt))(?:\.[A-Za-z0-9_]+)?\.tmp$")
SWEEP_SUBFOLDERS = ("parts", "checkpoints", "sft")


def part_path(out: str | Path, run_id: str) -> Path:
    return Path(out) / "parts" / f"{run_id}.parquet"


def checkpoint_path(out: str | Path, run_id: str) -> Path:
    return Path(out) / "checkpoints" / f"{run_id}.pt"


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` to parquet at ``path`` atomically, mode ``0666 & ~umask``."""
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """``torch.save(state)`` to ``path`` atomically (unique temporary name, then rename)."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def part_problem(path: Path) -> str | None:
    """Why the part at ``path`` is not a readable table of rows, or None when it is."""
    import pyarrow
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        return "zero bytes"
    try:
        rows = pq.read_metadata(path).num_rows
    except (OSError, pyarrow.ArrowException) as err:
        return f"not a parquet file: {_first_line(err)}"
    return None if rows else "no rows"


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed from, or None when it loads.

    The check memory-maps the file (``torch.load(mmap=True)``), so it costs little even for a large model.
    """
    import torch

    if path.stat().st_size == 0:
        return "zero bytes"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - whatever torch raises, the file cannot be resumed from
        return f"unreadable: {_first_line(err)}"
    if not isinstance(state, dict) or "model" not in state:
        return "not a checkpoint of this runner (no model state)"
    return None


def load_checkpoint(path: Path, out: str | Path, *, map_location: str = "cpu") -> dict | None:
    """The checkpoint at ``path``; None when there is none or it is damaged (then moved to quarantine)."""
    import torch

    if not path.exists():
        return None
    problem = checkpoint_problem(path)
    if problem:
        print(quarantine(path, out, problem) + "; starting it again", flush=True)
        return None
    return torch.load(path, map_location=map_location, weights_only=True)


def quarantine(path: Path, out: str | Path, reason: str) -> str:
    """Move the damaged file ``path`` to ``<out>/quarantine/`` (kept, never deleted); return one line saying so."""
    out = Path(out)
    relative = path.relative_to(out) if path.is_relative_to(out) else Path(path.name)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = out / "quarantine" / relative.parent / f"{stamp}-{os.getpid()}-{relative.name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    return f"quarantined {relative} ({reason}) as {dest.relative_to(out)}"


def remove_temps(path: Path) -> int:
    """Delete the temporary files a killed writer of ``path`` left beside it; return how many."""
    if not path.parent.is_dir():
        return 0
    removed = 0
    for entry in path.parent.iterdir():
        match = TEMP_PATTERN.match(entry.name)
        if match and match["name"] == path.name:
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def temp_owners(out: str | Path) -> dict[str, list[Path]]:
    """Temporary files under the sweep folder's subfolders, by the lock key of the file they were to become."""
    owners: dict[str, list[Path]] = {}
    for sub in SWEEP_SUBFOLDERS:
        folder = Path(out) / sub
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            match = TEMP_PATTERN.match(entry.name)
            if match:
                owners.setdefault(lock_key(folder / match["name"]), []).append(entry)
    return owners


def lock_key(path: Path) -> str:
    """The lock that guards ``path``: its run for parts and checkpoints, its stage for ``sft/`` files."""
    name = path.name.removesuffix(".parquet").removesuffix(".pt").removesuffix(".partial")
    return f"sft-{name}" if path.parent.name == "sft" else name


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]
