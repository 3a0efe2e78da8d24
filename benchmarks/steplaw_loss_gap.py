"""Fit the LR and batch-size laws on Step Law's released dense grid and backtest them group by group.

Data: ``dense_lr_bs_loss.csv`` from github.com/step-law/steplaw (1911 runs, 17 (N, D) groups; see the
folder's PROVENANCE.md). For each way of fitting (per-group interpolated optima, or every plateau run as
Step Law does) this prints the fitted laws with their bootstrap intervals and a leave-one-group-out
"loss gap": fit on 16 groups, recommend (lr, B) for the 17th, and take the relative gap between the loss
of the tried setting nearest the recommendation and the group's best loss. The batch size comes from
B*(D) (Step Law's form), from B*(N, D), or ``auto`` (the default: B*(N, D) when its N exponent's
interval excludes 0). The published Step Law constants are scored the
same way; they were fitted on these runs (among others), so theirs is an in-sample figure.

Then the refit (on optima) and the published preset recommend side by side for N = 7e9, D = 1.4e12 (the
published example), with the preset's planning interval (its scatter of optima around the law, the constant
``STEPLAW_LR_PLAN_STD`` recomputed here), and the extrapolation distance. Laws are fitted by the fitting
engine (``scalefit.laws.hparam``) with a bootstrap over groups.

Run::

    .venv/bin/python benchmarks/steplaw_loss_gap.py [--data PATH] [--bootstrap 1000] [--per-group]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit import hyperparams as hp

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "steplaw_dense" / "dense_lr_bs_loss.csv"


def law_lines(law: hp.HparamLaw) -> list[str]:
    """One line per parameter: estimate and interval."""
    return [f"    {name:<2} = {value:10.4g}   {100 * law.level:.0f}% [{low:.4g}, {high:.4g}]"
            for name, value in law.params.items() for low, high in [law.intervals[name]]]


def gap_line(label: str, table: pd.DataFrame) -> str:
    gaps = 100 * table["loss_gap"]
    return (f"  {label:<42} mean {gaps.mean():.3f}%   median {gaps.median():.3f}%   max {gaps.max():.3f}%"
            f"   ({len(table)} groups)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--per-group", action="store_true", help="print the per-group backtest tables")
    args = parser.parse_args()

    started = time.perf_counter()
    runs = hp.read_steplaw_csv(args.data)
    optima = hp.locate_optima(runs, source=args.data)
    print(f"{len(runs)} runs, {len(optima.groups)} (N, D) groups; "
          f"{int(optima.groups['n_excluded'].sum())} runs excluded as diverged; "
          f"{int((optima.groups['method'] == 'quadratic').sum())} groups with an interpolated optimum")
    for line in optima.warnings:
        print(f"  warning: {line}")

    backtests = {}
    for fit_on in ("optima", "plateau"):
        laws = hp.fit_hparam_laws(optima, fit_on=fit_on, n_bootstrap=args.bootstrap)
        print(f"\nLaws fitted on {fit_on} ({laws['lr_vs_N_D'].interval_method}):")
        for law in laws.laws.values():
            print(f"  {law.name}: {law.formula}")
            print("\n".join(law_lines(law)))
        for bs_law in ("auto", "D", "N_D"):
            backtests[f"leave-one-group-out, {fit_on}, B* {bs_law}"] = (
                hp.leave_one_group_out(optima, fit_on=fit_on, bs_law=bs_law)
            )
    published = hp.preset_laws("steplaw")
    backtests["published Step Law (in-sample)"] = hp.nearest_grid_loss_gap(optima, published)
    print("\nPublished Step Law: lr* = 1.797 N^-0.7129 D^0.3075, B* = 0.5807 D^0.5709 (tokens)")
    for axis, law in (("lr", published["lr_vs_N_D"]), ("batch_size", published["bs_vs_D"])):
        located = optima.groups[optima.groups[f"{axis}_located"]]
        ratio = located[f"opt_{axis}"] / law.predict(params=located["params"], tokens=located["tokens"])
        print(f"  scatter of the grid's {axis} optima around it: RMS ln = {(np.log(ratio) ** 2).mean() ** 0.5:.3f}"
              f" over {len(located)} groups (the preset's planning scatter)")
    refit = hp.fit_hparam_laws(optima, n_bootstrap=args.bootstrap)
    print()
    print(hp.side_by_side([hp.recommend(7e9, 1.4e12, refit), hp.recommend(7e9, 1.4e12, published)]).as_text())

    print("\nRelative loss gap, nearest tried setting to the recommendation vs the group's best:")
    for label, table in backtests.items():
        print(gap_line(label, table))
    if args.per_group:
        for label, table in backtests.items():
            print(f"\n{label}:")
            print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"\n({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
