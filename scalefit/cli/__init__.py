"""The ``scalefit`` command line.

One module per command group (``fit``: fit/predict/allocate, ``hparams``: recommend/hparams, ``rl``,
``report``, ...); each subcommand is one ``_add_<name>`` function (its parser) and one ``_run_<name>`` function
(its work), listed in the module's ``SUBCOMMANDS``. Errors the user can fix (``ScalefitInputError``) print one
readable message and exit with code 2; a fit whose numbers are flagged exits 1; output folders are written to
a temporary sibling and renamed into place, so a failed command writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scalefit.cli import fit, hparams, plan, report, rl
from scalefit.cli.common import EXIT_INPUT_ERROR, check_out
from scalefit.errors import ScalefitInputError

__all__ = ["EXIT_INPUT_ERROR", "build_parser", "main"]

COMMAND_MODULES = [fit, hparams, rl, report, plan]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalefit",
        description="Fit scaling laws from a runs table and plan training runs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        for add in module.SUBCOMMANDS:
            add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_out(getattr(args, "out", None))  # before any work: fail fast
        return int(args.run(args) or 0)
    except ScalefitInputError as err:
        print(f"scalefit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
