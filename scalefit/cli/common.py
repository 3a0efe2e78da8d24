"""What every ``scalefit`` command shares: exit codes, staged output folders, argument parsers."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scalefit.errors import ScalefitInputError
from scalefit.io import atomic_write_text, write_json

__all__ = [
    "EXIT_INPUT_ERROR", "EXIT_OK", "EXIT_SUSPECT", "atomic_write_text", "check_out", "floats", "staged_output_dir",
    "write_json",
]

EXIT_OK = 0
EXIT_SUSPECT = 1  # fitted, but the numbers are flagged (suspect or failed)
EXIT_INPUT_ERROR = 2

def check_out(out: str | os.PathLike | None) -> None:
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ScalefitInputError(f"--out {out} is a file, not a folder; name a folder (it is replaced whole)")


@contextlib.contextmanager
def staged_output_dir(out: str | os.PathLike | None) -> Iterator[Path | None]:
    """Yield a temporary folder whose contents replace ``out`` only if the block succeeds."""
    if out is None:
        yield None
        return
    out = Path(out)
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def floats(text: str) -> list[float]:
    """``"1e6,2e6"`` or ``"1e6"`` → floats; argparse turns a ValueError into a usage error (exit 2)."""
    return [float(v) for v in text.split(",") if v.strip()]

