"""Files scalefit writes: atomically (a reader never sees half a file) and as strict JSON.

Every module that writes a file uses these; none grows its own temp-file-and-rename or JSON cleaner.
Files get the usual ``0666 & ~umask`` mode (``tempfile.mkstemp`` would leave them ``0600``, unreadable by
teammates on a shared cluster).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary name is unique (``.<name>.<random>.tmp``), so concurrent writers never collide; on any
    failure it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; name a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def json_safe(value):
    """Strict-JSON form of ``value``: non-finite floats and missing values (None, ``pd.NA``, ``NaT``) become
    None, numpy scalars and arrays Python ones, tuples lists, mapping keys strings, anything else its
    ``str``; recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    import pandas as pd  # only here: the CLI's start-up imports this module and must not load pandas

    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def dumps(payload) -> str:
    """Strict JSON text (non-finite numbers as null), indented, with a final newline."""
    return json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, payload) -> Path:
    """Write ``payload`` as strict JSON to ``path`` atomically."""
    return atomic_write_text(path, dumps(payload))
