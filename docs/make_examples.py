"""Rewrite the command outputs quoted in README.md and docs/*.md from the current code (run after a change).

    .venv/bin/python docs/make_examples.py            # rewrite the blocks
    .venv/bin/python docs/make_examples.py --check    # exit 1 and name the stale blocks (tests/test_docs.py)

A quoted output is a fenced block right after a marker line::

    <!-- example: scalefit fit data/runs.parquet | keep=^(Intervals|note): | elide=^\\s+1e\\+1[2-6] -->

The command runs from the repository root (``scalefit`` is this checkout's CLI, run with this Python); its
stdout and stderr, in order, replace the block's contents. ``keep=REGEX`` keeps only the lines that match
(an abridged quote); ``elide=REGEX`` replaces each run of matching lines by one ``...`` line. Exit codes 0 and 1
are outputs (1: a flagged result); any other code is an error. Each command runs once per invocation.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/*.md")
MARKER = re.compile(r"^<!-- example: (?P<spec>.+?) -->\n(?P<fence>```[a-z]*\n)(?P<body>.*?)^```$",
                    re.MULTILINE | re.DOTALL)


@cache
def command_output(command: str) -> str:
    """What ``command`` prints (stdout and stderr interleaved), run from the repository root."""
    argv = shlex.split(command)
    if argv[0] == "scalefit":
        argv = [sys.executable, "-m", "scalefit.cli", *argv[1:]]
    done = subprocess.run(argv, check=False, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "COLUMNS": "110", "MPLBACKEND": "Agg"})  # exit 1 is an output
    if done.returncode not in (0, 1) or "Traceback (most recent call last)" in done.stdout or not done.stdout:
        raise RuntimeError(f"{command!r} exited {done.returncode}:\n{done.stdout[-2000:]}")
    return done.stdout


def render(spec: str) -> str:
    """The block's new contents for a marker's ``spec`` (``command | keep=... | elide=...``)."""
    command, *options = (part.strip() for part in spec.split(" | "))
    settings = dict(option.split("=", 1) for option in options)
    unknown = set(settings) - {"keep", "elide"}
    if unknown:
        raise ValueError(f"unknown example option(s) {sorted(unknown)} in {spec!r}")
    lines = command_output(command).rstrip("\n").splitlines()
    if "keep" in settings:
        lines = [line for line in lines if re.search(settings["keep"], line)]
    if "elide" in settings:
        elided: list[str] = []
        for line in lines:
            if re.search(settings["elide"], line):
                if not elided or elided[-1] != "...":
                    elided.append("...")
            else:
                elided.append(line)
        lines = elided
    return "".join(f"{line.rstrip()}\n" for line in lines)


def pages() -> list[Path]:
    return sorted({path for pattern in PAGES for path in ROOT.glob(pattern)})


def regenerate(check: bool) -> list[str]:
    """Rewrite (or, with ``check``, only compare) every quoted output; return the stale blocks' names."""
    stale = []
    for path in pages():
        text = path.read_text()
        pieces, last = [], 0
        for match in MARKER.finditer(text):
            body = render(match["spec"])
            if body != match["body"]:
                stale.append(f"{path.relative_to(ROOT)}: {match['spec'].split(' | ')[0]}")
            pieces += [text[last:match.start("body")], body]
            last = match.end("body")
        new = "".join(pieces) + text[last:]
        if not check and new != text:
            path.write_text(new)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if a block is stale")
    args = parser.parse_args()
    stale = regenerate(args.check)
    for name in stale:
        print(("stale: " if args.check else "rewrote: ") + name)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
