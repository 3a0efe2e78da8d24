"""Write docs/cli.md from the parsers' own --help (run after changing a subcommand's options).

    .venv/bin/python docs/make_cli_reference.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HEADER = """# CLI reference

Generated from `scalefit --help` and each subcommand's `--help` by `docs/make_cli_reference.py`; do not edit
by hand (`tests/test_docs.py` checks it is current).

## Exit codes

The same for every command:

| code | meaning |
|---|---|
| 0 | done; the numbers can be used |
| 1 | fitted, but the result is suspect or failed (the numbers are flagged, with the reasons), or the table's units look wrong (`warning:` lines, see below); also an internal error (a bug: please report it) |
| 2 | bad input you can fix: a table that cannot be read or fails validation, a bad option, a damaged fit.json; nothing was written |

Every failure is one line on stderr, `scalefit COMMAND: error: ...`, naming the file, column or row and what
to do; `--debug` (before or after the command) adds the Python traceback. A table whose numbers are valid but
implausible (parameters in millions, tokens in billions, perplexity in the loss column, loss that rises with
N or D) is fitted and flagged: one `scalefit COMMAND: warning: ...` line per suspicion with its likely cause,
and exit code 1. Values no unit can explain (a loss of 1e300) are refused (exit 2). Output into a closed pipe
(`scalefit recommend ... | head`) stops the output, not the work.

## Where outputs go

`--out DIR` writes a folder whole: into a temporary sibling, renamed into place when everything succeeded, so a
failed command leaves nothing behind. It replaces DIR only when DIR is new, empty, or a folder scalefit wrote
before (it holds a `.scalefit-output` marker); it refuses a folder with files of yours, the working directory
or any folder above it, your home or root folder, and any folder that holds the command's input. `--json FILE`
(and `plan --sweep FILE`) is written atomically and must not be a folder, the command's input, or inside
`--out`. A failed fit's numbers are not shown by `predict` or `allocate` (exit 1)."""


def reference() -> str:
    """The markdown reference: the top-level help, then each subcommand's."""
    os.environ["COLUMNS"] = "110"  # argparse wraps to the terminal width: fix it for a stable file
    from scalefit.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [HEADER, "## scalefit", "```text\n" + parser.format_help().rstrip() + "\n```"]
    for name, sub in subparsers.choices.items():
        parts += [f"## scalefit {name}", "```text\n" + sub.format_help().rstrip() + "\n```"]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    target = Path(__file__).with_name("cli.md")
    target.write_text(reference())
    print(f"wrote {target}")
