"""The ``scalefit`` command line.

One module per command group (``fit``: fit/predict/allocate, ``hparams``: recommend/hparams, ``rl``,
``report``, ...); each subcommand is one ``_add_<name>`` function (its parser) and one ``_run_<name>`` function
(its work), listed in the module's ``SUBCOMMANDS``.

Exit codes, the same for every command: 0 the numbers are ok; 1 fitted, but the result is suspect or failed
(or scalefit itself failed); 2 bad input the user can fix (a bad table, a bad option, a damaged fit.json).
Every failure prints one line on stderr and no traceback (``--debug`` shows it). Output folders are written to
a temporary sibling and renamed into place, so a failed command writes nothing, and ``--out`` only ever
replaces a folder that scalefit wrote itself (see :func:`scalefit.cli.common.check_outputs`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence

from scalefit.cli import fit, hparams, plan, report, rl, tasks
from scalefit.cli.common import (
    EXIT_FAILED,
    EXIT_INPUT_ERROR,
    EXIT_OK,
    EXIT_SUSPECT,
    FailedResultError,
    check_outputs,
    input_error_message,
    pipe_safe_stdout,
)

__all__ = ["EXIT_INPUT_ERROR", "build_parser", "main"]

COMMAND_MODULES = [fit, hparams, rl, report, plan, tasks]

EPILOG = """exit codes: 0 ok; 1 fitted but suspect or failed (the numbers are flagged); 2 bad input (one line on
stderr says what to fix). --out DIR only replaces a folder scalefit wrote (it holds .scalefit-output), never
a non-empty folder of yours, the working directory, or a folder holding the input."""


def version() -> str:
    """The installed distribution's version, else the package's own ``__version__``."""
    from importlib import metadata

    try:
        return metadata.version("scalefit")
    except metadata.PackageNotFoundError:
        import scalefit

        return scalefit.__version__


class _VersionAction(argparse.Action):
    """``--version``: looked up only when asked, so that ``--help`` stays fast."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"scalefit {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalefit",
        description="Fit scaling laws from a runs table and plan training runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback too (also accepted after the command)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        for add in module.SUBCOMMANDS:
            add(subparsers)
    for sub in subparsers.choices.values():
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (0 ok, 1 suspect/failed, 2 bad input).

    Usage errors, ``--help`` and ``--version`` raise ``SystemExit`` from argparse (code 2, 0, 0), as usual;
    any error after parsing becomes one line on stderr and an exit code, never a traceback.
    """
    args = build_parser().parse_args(argv)
    with pipe_safe_stdout():  # `scalefit ... | head` finishes its work and exits quietly
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    prefix = f"scalefit {args.command}"
    try:
        check_outputs(args)  # before any work: fail fast, and never replace what scalefit did not write
        with _plausibility_warnings(prefix) as flagged:
            code = int(args.run(args) or EXIT_OK)
        if flagged and code == EXIT_OK:
            print(f"{prefix}: exit 1: the table's numbers are flagged ({len(flagged)} warning"
                  f"{'s' if len(flagged) > 1 else ''} above)", file=sys.stderr)
            code = EXIT_SUSPECT
    except FailedResultError as err:  # a saved fit that failed: its numbers are not shown
        print(f"{prefix}: error: {_one_line(str(err), limit=2000)}", file=sys.stderr)
        return EXIT_SUSPECT
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted; no --out folder was put in place", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns any error into one line
        if args.debug:
            traceback.print_exc()
        message = input_error_message(err, args)
        hint = "" if args.debug else " (--debug shows the traceback)"
        if message is not None:
            print(f"{prefix}: error: {_one_line(message, limit=2000)}", file=sys.stderr)
            return EXIT_INPUT_ERROR
        print(f"{prefix}: internal error: {type(err).__name__}: {_one_line(str(err))}{hint}. Please report it "
              "with the command line and the table's header", file=sys.stderr)
        return EXIT_FAILED
    return code


@contextlib.contextmanager
def _plausibility_warnings(prefix: str) -> Iterator[list[str]]:
    """Print each unit-sanity warning (``scalefit.plausibility``) once as ``scalefit CMD: warning: ...`` and
    yield the list of them, so that a command whose table is flagged exits 1."""
    from scalefit.plausibility import PlausibilityWarning

    flagged: list[str] = []
    original = warnings.showwarning

    def show(message, category, *args, **kwargs):
        if not issubclass(category, PlausibilityWarning):
            original(message, category, *args, **kwargs)
        elif str(message) not in flagged:
            flagged.append(str(message))
            print(f"{prefix}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", PlausibilityWarning)
        warnings.showwarning = show
        yield flagged


def _one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (newlines and runs of spaces made one space), cut at ``limit`` characters."""
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


if __name__ == "__main__":
    sys.exit(main())
