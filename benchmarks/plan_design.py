"""Planned ladders against naive grids at equal compute, on synthetic truths (issue #14's acceptance figure).

For each target and budget: ``scalefit.plan.design_runs`` proposes runs (prior centred on the truth, as a user
with a first fit would have); the naive grid has the same number of runs and the same compute (log-spaced sizes
at 20 tokens per parameter). For each design, ``--seeds`` data sets are simulated from the truth (log-normal
noise σ = 1 %), the joint law is refitted with ``--bootstrap`` refits, and at the target we record the width of
the 95 % interval of the mean (log hi/lo; the fit gives none when it finds its parameters not identified),
whether it covers the true loss (a missing interval covers nothing), and the prediction's error.

Run by hand (a few minutes)::

    python benchmarks/plan_design.py               # prints one row per (target, budget, design)
    python benchmarks/plan_design.py --seeds 40
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from scalefit.fitting import fit
from scalefit.laws import Chinchilla
from scalefit.plan import design_runs

TRUTH = {"E": 1.3, "A": 30.0, "B": 2500.0, "alpha": 0.45, "beta": 0.57}
TARGETS = ((1e7, 2e8), (1e7, 2e9))  # 20 and 200 tokens per parameter
BUDGET_FRACTIONS = (1e-3, 1e-2)     # of the target's own 6ND


def evaluate(design: pd.DataFrame, target, seeds: int, bootstrap: int, sigma: float = 0.01) -> dict:
    law = Chinchilla()
    point = pd.DataFrame({"params": [target[0]], "tokens": [target[1]]})
    truth = law.predict(TRUTH, point)[0]
    widths, errors, covered, ok = [], [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        data = design[["params", "tokens"]].assign(run_id=[f"r{i}" for i in range(len(design))])
        data["loss"] = law.predict(TRUTH, data) * np.exp(rng.normal(0.0, sigma, len(data)))
        result = fit(law, data, bootstrap=bootstrap, seed=seed)
        band = result.predict(point).iloc[0]
        widths.append(np.log(band["mean_hi"] / band["mean_lo"]))  # NaN when the fit says "not identified"
        errors.append(np.log(band["mean"] / truth))
        covered.append(band["mean_lo"] <= truth <= band["mean_hi"])
        ok.append(result.status == "ok")
    return {"median width": float(np.nanmedian(widths)) if np.isfinite(widths).any() else np.nan,
            "rmse": float(np.sqrt(np.mean(np.square(errors)))), "coverage": float(np.mean(covered)),
            "interval given": float(np.mean(np.isfinite(widths))), "status ok": float(np.mean(ok))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for target in TARGETS:
        for fraction in BUDGET_FRACTIONS:
            start = time.perf_counter()
            plan = design_runs(*target, fraction * 6 * target[0] * target[1], prior=TRUTH, max_runs=10)
            seconds = time.perf_counter() - start
            for name, design in (("planned", plan.runs), ("naive", plan.naive_runs)):
                rows.append({"target N": target[0], "target D": target[1], "budget / target": fraction,
                             "design": name, "runs": len(design), "flops": design["flops"].sum(),
                             "model width": plan.width(plan.after if name == "planned" else plan.naive),
                             **evaluate(design, target, args.seeds, args.bootstrap), "plan s": seconds})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
