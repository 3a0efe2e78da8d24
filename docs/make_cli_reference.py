"""Write docs/cli.md from the parsers' own --help (run after changing a subcommand's options).

    .venv/bin/python docs/make_cli_reference.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HEADER = """# CLI reference

Generated from `scalefit --help` and each subcommand's `--help` by `docs/make_cli_reference.py`; do not edit
by hand (`tests/test_docs.py` checks it is current). Every subcommand exits with code 2 and one readable
message on input you can fix (a bad table, a bad option), and writes an `--out` folder whole or not at all."""


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
