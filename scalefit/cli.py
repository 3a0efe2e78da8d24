"""The ``scalefit`` command line.

Each subcommand is one ``_add_<name>`` function (its parser) and one ``_run_<name>`` function (its work).
Errors the user can fix (``ScalefitInputError``) print one readable message and exit with code 2; output
folders are written to a temporary sibling and renamed into place, so a failed command writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from scalefit.errors import ScalefitInputError

EXIT_INPUT_ERROR = 2


@contextlib.contextmanager
def staged_output_dir(out: str | os.PathLike | None) -> Iterator[Path | None]:
    """Yield a temporary folder whose contents replace ``out`` only if the block succeeds."""
    if out is None:
        yield None
        return
    out = Path(out)
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


# --- subcommands ------------------------------------------------------------------------------------
# (each subcommand: _add_<name>(subparsers) registering set_defaults(run=_run_<name>))

SUBCOMMANDS: list = []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalefit",
        description="Fit scaling laws from a runs table and plan training runs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ScalefitInputError as err:
        print(f"scalefit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
