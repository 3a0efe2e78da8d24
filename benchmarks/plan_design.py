"""Planned ladders against naive grids at equal compute, on synthetic truths (issue #14's acceptance figure).

For each truth, target and budget: ``scalefit.plan.design_runs`` proposes runs (prior centred on the truth, as
a user with a first fit would have; the shortlist measured by simulated refits); the naive grid has the same
number of runs and the same compute (log-spaced sizes at 20 tokens per parameter). For each design, ``--seeds``
data sets are simulated from the truth (log-normal noise σ = 1 %), the joint law is refitted by
``scalefit.fitting.fit`` (Huber, ``--bootstrap`` refits with its default weights), and at the target we record:

- ``mean w``: median width of the fit's 95 % interval of the mean, log(hi/lo) (NaN when the fit reports its
  intervals as not identified), and ``mean cov``: how often it covers the true loss (a missing interval covers
  nothing);
- ``plan w`` and ``plan cov``: the same for the 95 % planning interval, with the extrapolation error per decade
  set to the planner's κ (1.5 %, as if a backtest had measured it) at the fit's own distance d (largest of the
  N, D, C decades), covering a new run at the target (true loss × one draw of the run noise). With
  ``--rollout`` the error per decade is measured per data set, as ``scalefit fit`` does (an expanding-window
  rollout of the same law with its bootstrap, :func:`scalefit.selection.rollout`; κ where the design has too
  few sizes for one),
  so a design that extrapolates worse in its own windows pays for it; about 3× the cost. The synthetic law
  has no model error, so the extrapolation term is margin and the planning interval is expected to over-cover;
- ``trusted``: the share of fits that end without a flag (``success``: no parameter on its bound or gone from
  the fit, converged); the widths and coverages above count every fit, flagged or not;
- ``rmse``: root-mean-square error of log L̂ at the target, and ``2·1.96·rmse``, the width a calibrated 95 %
  interval of the mean would have (``calib w``);
- ``model w``: the planner's own prediction of the 95 % planning width (parameters by simulated refits, a new
  run's noise, extrapolation), and ``model mean w`` its parameter part alone (an interval of the mean).

With ``--oracle`` a third design is added: the one optimal by the linearised criterion at the truth itself (a
point prior), a bound on what a design could gain that no user could plan. ``--bootstrap 0`` skips the fit's
intervals (the width and coverage columns are then empty), for the error figures alone.

Run by hand (about 12 minutes with 40 data sets on two loaded cores)::

    python benchmarks/plan_design.py               # prints one row per (truth, target, budget, design)
    python benchmarks/plan_design.py --seeds 40
    python benchmarks/plan_design.py --seeds 40 --rollout   # planning intervals as scalefit fit makes them
    python benchmarks/plan_design.py --seeds 100 --bootstrap 0 --oracle     # errors only, against the bound
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.fitting import ExtrapolationError, fit
from scalefit.laws import Chinchilla
from scalefit.plan import design_runs
from scalefit.plan.design import DEFAULT_KAPPA
from scalefit.selection import ROLLOUT_BOOTSTRAP, rollout

#: Synthetic truths: (name, parameters, target (N, D), budget as a share of the target's 6ND).
SETTINGS = (
    ("reference", {"E": 1.3, "A": 30.0, "B": 2500.0, "alpha": 0.45, "beta": 0.57}, (1e7, 2e8), 1e-3),
    ("reference", {"E": 1.3, "A": 30.0, "B": 2500.0, "alpha": 0.45, "beta": 0.57}, (1e7, 2e9), 1e-2),
    # Hoffmann et al. (2022)'s own fit: every parameter weakly identified by a 10-run ladder at 1 % of 6ND
    ("hoffmann (weak)", {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, (1e8, 2e9), 1e-2),
    # a low floor the small runs do not reach: E and alpha weakly identified at 0.1 % of 6ND
    ("low floor (weak E)", {"E": 1.0, "A": 200.0, "B": 2000.0, "alpha": 0.3, "beta": 0.3}, (1e8, 2e9), 1e-3),
)
SIGMA = 0.01
Z95 = stats.norm.ppf(0.975)


def evaluate(design: pd.DataFrame, truth: dict, target, seeds: int, bootstrap: int, measured: bool = False) -> dict:
    law = Chinchilla()
    point = pd.DataFrame({"params": [target[0]], "tokens": [target[1]]})
    true_loss = law.predict(truth, point)[0]
    assumed = ExtrapolationError(per_decade=DEFAULT_KAPPA, n_points=0, n_windows=0, max_decades=np.nan,
                                 law="assumed: the planner's kappa")
    mean_w, mean_cov, plan_w, plan_cov, errors, trusted = [], [], [], [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        data = design[["params", "tokens"]].assign(run_id=[f"r{i}" for i in range(len(design))])
        data["loss"] = law.predict(truth, data) * np.exp(rng.normal(0.0, SIGMA, len(data)))
        new_run = true_loss * np.exp(rng.normal(0.0, SIGMA))
        result = fit(law, data, bootstrap=bootstrap, seed=seed)
        trusted.append(result.success)
        error = None
        if measured:
            rolled = rollout(data, lambda train, seed=seed: fit(law, train, bootstrap=ROLLOUT_BOOTSTRAP, seed=seed),
                             "joint")
            error = rolled.extrapolation_error()
        result = replace(result, extrapolation_error=error or assumed)
        band = result.predict(point).iloc[0]
        mean_w.append(np.log(band["mean_hi"] / band["mean_lo"]))  # NaN when the fit says "not identified"
        plan_w.append(np.log(band["plan_hi"] / band["plan_lo"]))
        mean_cov.append(band["mean_lo"] <= true_loss <= band["mean_hi"])
        plan_cov.append(band["plan_lo"] <= new_run <= band["plan_hi"])
        errors.append(np.log(band["mean"] / true_loss))
    rmse = float(np.sqrt(np.mean(np.square(errors))))
    return {"mean w": _median(mean_w), "mean cov": float(np.mean(mean_cov)), "plan w": _median(plan_w),
            "plan cov": float(np.mean(plan_cov)), "rmse": rmse, "calib w": 2 * Z95 * rmse,
            "given": float(np.mean(np.isfinite(mean_w))), "trusted": float(np.mean(trusted))}


def _median(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--refits", type=int, default=16, help="simulated refits per shortlisted design")
    parser.add_argument("--oracle", action="store_true",
                        help="add the design that is optimal (linearised criterion) at the truth itself: a bound on "
                             "what any design could gain, not something a user could plan")
    parser.add_argument("--rollout", action="store_true",
                        help="measure the planning interval's error per decade by a rollout on each data set")
    args = parser.parse_args()
    rows = []
    for name, truth, target, fraction in SETTINGS:
        start = time.perf_counter()
        plan = design_runs(*target, fraction * 6 * target[0] * target[1], prior=truth, max_runs=10,
                           refits=args.refits)
        seconds = time.perf_counter() - start
        designs = [("planned", plan.runs, plan.after), ("naive", plan.naive_runs, plan.naive)]
        if args.oracle:  # how far could any design go? the locally optimal design at the truth (linearised)
            local = design_runs(*target, fraction * 6 * target[0] * target[1], parameter_draws=pd.DataFrame([truth]),
                                max_runs=10, refits=0)
            designs.append(("optimal at truth", local.runs, local.after))
        for design_name, design, parts in designs:
            rows.append({"truth": name, "target N": target[0], "target D": target[1], "budget/C*": fraction,
                         "design": design_name, "runs": len(design), "flops": design["flops"].sum(),
                         "model w": 2 * Z95 * np.sqrt(sum(parts.values())),
                         "model mean w": 2 * Z95 * np.sqrt(parts["parameters"]),
                         **evaluate(design, truth, target, args.seeds, args.bootstrap, args.rollout), "plan s": seconds})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.float_format", "{:.3g}".format):
        print(f"{args.seeds} simulated data sets per design, {args.bootstrap} bootstrap refits each, "
              f"{args.refits} simulated refits per shortlisted design; widths are log(hi/lo) of 95 % intervals; "
              f"error per decade {'measured by a rollout per data set' if args.rollout else 'the planner κ'}")
        print(table.to_string(index=False))
        ratio = table.pivot_table(index=["truth", "target D", "budget/C*"], columns="design",
                                  values=["mean w", "plan w", "calib w", "rmse", "model w"])
        narrower = 1 - ratio.xs("planned", axis=1, level=1) / ratio.xs("naive", axis=1, level=1)
        print("\nplanned narrower than naive by (1 − planned/naive):")
        print(narrower.to_string())
        if args.oracle:
            rmse = table.pivot_table(index=["truth", "target D", "budget/C*"], columns="design", values="rmse")
            print("\nrmse at the target relative to the design optimal at the truth:")
            print((rmse[["planned", "naive"]].div(rmse["optimal at truth"], axis=0)).to_string())


if __name__ == "__main__":
    main()
