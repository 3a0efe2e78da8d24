"""``scalefit report``: every analysis the table supports, as HTML, markdown, JSON and PNGs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scalefit.cli.common import (
    EXIT_OK,
    EXIT_SUSPECT,
    add_input_options,
    floats,
    load_input,
    staged_output_dir,
)
from scalefit.errors import ScalefitInputError


def _parse_target(text: str) -> tuple[float, float | None]:
    """``"1e7"`` or ``"1e7:2e8"`` → (N, D or None); a bad one is a usage error (exit 2)."""
    import math

    size, _, tokens = text.partition(":")
    try:
        target = (float(size), float(tokens) if tokens.strip() else None)
    except ValueError:
        target = (math.nan, None)
    if not all(v is None or (math.isfinite(v) and v > 0) for v in target):
        raise argparse.ArgumentTypeError(f"{text!r} is not N or N:D with N, D positive numbers, e.g. 1e7 or "
                                         "1e7:2e8")
    return target


def _add_report(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="run every analysis a runs table supports and write report.html, report.md, results.json, PNGs",
        description="Fit the joint law (with bootstrap intervals and a backtest), the compute-optimal "
                    "frontier (Approaches 1-3), extrapolations to planned sizes, LR and batch-size laws "
                    "(when the table holds LR sweeps in 3+ (N, D) groups) and, with --rl, the RL "
                    "post-training law; write them as one self-contained HTML page (images embedded), "
                    "markdown, JSON and PNG plots. A section the data cannot support is left out, and the "
                    "report says why.",
        epilog="examples:\n"
               "  scalefit report data/runs.parquet --out out/report\n"
               "  scalefit report data/runs.parquet --rl data/rl_runs.parquet --target 1e6 --target 1e7:2e8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", metavar="RUNS", help="runs table (parquet or CSV)")
    parser.add_argument("--out", metavar="DIR", default="out/report",
                        help="folder to write (replaced whole; default out/report)")
    parser.add_argument("--rl", metavar="RL_RUNS", help="RL runs table for the RL section")
    parser.add_argument("--target", type=_parse_target, action="append", metavar="N[:D]",
                        help="a planned run for the extrapolation and recommendation tables (repeatable; "
                             "D default: compute-optimal for N; default targets: the next 3 powers of ten "
                             "of N)")
    parser.add_argument("--budgets", type=floats, metavar="C1,C2,...",
                        help="compute budgets [FLOP] for the allocation table (default: the data's range and "
                             "3 decades beyond)")
    parser.add_argument("--law", choices=("auto", "chinchilla"), default="auto",
                        help="the loss law, as `scalefit fit`: auto (default) chooses among the free joint law, "
                             "alpha=beta and Kaplan's law by rollout; chinchilla: the free joint law")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap refits of the joint law (default 1000)")
    parser.add_argument("--hparam-bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples of the LR/batch-size laws (default 1000)")
    parser.add_argument("--rl-bootstrap", type=int, default=200, metavar="N",
                        help="block-bootstrap replicates of the RL law (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every bootstrap (default 0)")
    add_input_options(parser)
    parser.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    import math

    from scalefit.report import build_report, section_title

    budgets = args.budgets
    if budgets is not None and not (budgets and all(math.isfinite(c) and c > 0 for c in budgets)):
        raise ScalefitInputError("--budgets must be one or more finite positive FLOP budgets, e.g. 1e18,1e20")
    if min(args.bootstrap, args.hparam_bootstrap, args.rl_bootstrap) < 0:
        raise ScalefitInputError("bootstrap counts must be 0 or more")
    report = build_report(
        load_input(args), rl_runs=args.rl, targets=args.target, budgets=args.budgets, law=args.law,
        bootstrap=args.bootstrap, hparam_bootstrap=args.hparam_bootstrap, rl_bootstrap=args.rl_bootstrap,
        seed=args.seed, progress=not args.quiet and sys.stderr.isatty(),
    )
    with staged_output_dir(args.out) as out:
        paths = report.write(out)
    print(f"scalefit report: {len(report.sections)} sections from {report.source}: "
          + ", ".join(section_title(s.key) for s in report.sections))
    for key, why in report.absent.items():
        print(f"scalefit report: warning: no {section_title(key)} section: {why}", file=sys.stderr)
    print(f"wrote {Path(args.out) / 'report.html'} (self-contained), report.md, results.json and "
          f"{sum(name.endswith('.png') for name in paths)} PNG plots in {args.out}")
    fit = report.results.get("fit") or {}
    status = fit.get("status", "ok" if fit.get("success", True) else "failed")
    if status != "ok":  # the joint law was fitted but cannot be trusted: flagged, as `scalefit fit` does
        print(f"scalefit report: warning: the joint law's fit is {status}; its numbers are flagged in the report",
              file=sys.stderr)
        return EXIT_SUSPECT
    return EXIT_OK


SUBCOMMANDS = [_add_report]
