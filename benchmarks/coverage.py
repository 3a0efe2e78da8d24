"""Are the joint law's intervals calibrated? Coverage of the truth on three synthetic designs, with widths.

Run by hand: ``python benchmarks/coverage.py [--datasets 150] [--bootstrap 1000]`` (several minutes on 2
cores). For each design of ``tests/coverage_designs.py`` (Epoch-like, ladder-like, few sizes predicting 4× and
16× beyond) it draws ``--datasets`` noisy data sets from a known truth, fits each with bootstrap intervals,
and prints, at nominal 90 % and 95 %, how often the intervals of E, α, β and of the mean loss at the targets
contained the truth, beside the median width (absolute for parameters, relative for the loss). The target:
coverage within ±3 points of nominal, at widths that are still useful. ``tests/test_coverage.py`` runs a
small variant of the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the designs live beside the fast test

from coverage_designs import coverage_run, coverage_table, designs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=150)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scheme", choices=("auto", "residual", "bayesian", "multinomial"), default="auto",
                        help="bootstrap scheme (default auto, the fit's default: residual for these designs)")
    parser.add_argument("--design", action="append", choices=("epoch", "ladder", "few"),
                        help="run only these designs (repeatable; default all three)")
    args = parser.parse_args()
    for design in designs():
        if args.design and not any(design.name.lower().startswith(d) for d in args.design):
            continue
        start = time.perf_counter()
        runs = coverage_run(design, args.datasets, bootstrap=args.bootstrap, seed=args.seed,
                            bootstrap_scheme=args.scheme)
        table = coverage_table(runs)
        table["off by"] = table["coverage"] - table.index.get_level_values("level")
        table["within ±3 pts"] = table["off by"].abs() <= 0.03
        print(f"\n{design.name}: {args.datasets} data sets, noise sd {design.sigma} on log L, bootstrap "
              f"{args.bootstrap} ({args.scheme} scheme; {time.perf_counter() - start:.0f} s)")
        with pd.option_context("display.width", 160):
            print(table.to_string(float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
