"""How fast is the joint-law fit on Epoch's Chinchilla data, against Epoch's own procedure?

Run by hand: ``python benchmarks/fit_speed.py`` (options: ``--help``). Prints, in one process:

* the 4500-start grid fit (``fit(Chinchilla(), data, bootstrap=0)``) and the grid fit plus 1000 bootstrap
  refits, median of ``--repeats`` runs, with a breakdown of one run into its phases;
* the baseline: scipy's L-BFGS-B with a numerical gradient from each start in a Python loop, as in Epoch's
  ``data_analysis.ipynb`` (with a lean numpy objective rather than ``scipy.special.logsumexp``, whose
  per-call overhead would make the baseline several times slower still). It is slow, so it runs on
  ``--baseline-starts`` starts drawn at random from the grid (seeded) and its time is extrapolated
  linearly to all 4500 (stated in the output);
* the speed-up and both best objectives (Epoch's full-grid best is 0.0010182740346);
* the cost of 1000 bootstrap refits run to convergence on the shipped table's tuned points
  (``data/runs.parquet``), against the old 100-step cap (which dropped the refits it cut off).

Timings are wall-clock and depend on what else runs on the machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber

from scalefit.fitting import OptimiserSettings, fit
from scalefit.fitting.bootstrap import refit_replicates, resample_weights
from scalefit.fitting.objective import Loss, Objective
from scalefit.fitting.optimiser import multistart, polish
from scalefit.fitting.parameters import free_parameters
from scalefit.laws import Chinchilla

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla_epoch" / "svg_extracted_data.csv"
SHIPPED_TABLE = Path(__file__).resolve().parents[1] / "data" / "runs.parquet"
DELTA = 1e-3


def load_points(path: Path) -> pd.DataFrame:
    """Epoch's 240 points: the extraction without its 5 highest losses; D = C / (6 N)."""
    raw = pd.read_csv(path)
    kept = raw[raw["loss"] < raw["loss"].nlargest(5).iloc[-1]]
    return pd.DataFrame({
        "params": kept["Model Size"],
        "tokens": kept["Training FLOP"] / (6 * kept["Model Size"]),
        "loss": kept["loss"],
    })


def timed(function, repeats: int) -> tuple[float, list[float], object]:
    """Median wall time of ``repeats`` calls, all times, and the last return value."""
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, value


def epoch_baseline(points: pd.DataFrame, starts: np.ndarray) -> tuple[float, float]:
    """Epoch's procedure on ``starts``: L-BFGS-B per start, numerical gradient. Returns (seconds, best)."""
    log_n, log_d = np.log(points["params"].to_numpy()), np.log(points["tokens"].to_numpy())
    log_loss = np.log(points["loss"].to_numpy())

    def objective(theta: np.ndarray) -> float:
        a, b, e, alpha, beta = theta
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        top = terms.max(axis=0)
        predicted = top + np.log(np.exp(terms - top).sum(axis=0))
        return float(np.sum(huber(DELTA, predicted - log_loss)))

    begin = time.perf_counter()
    best = min(minimize(objective, start, method="L-BFGS-B").fun for start in starts)
    return time.perf_counter() - begin, best


def phase_breakdown(points: pd.DataFrame, n_bootstrap: int) -> dict[str, float]:
    """Seconds spent in each phase of one grid fit with bootstrap (the engine's internals, called in turn)."""
    law, settings = Chinchilla(), OptimiserSettings()
    free = free_parameters(law)
    objective = Objective(law, law.input_array(points), np.log(points["loss"].to_numpy()), np.ones(len(points)),
                          Loss("huber", DELTA), free)
    marks = [time.perf_counter()]
    search = multistart(objective, law.start_grid(), settings)
    marks.append(time.perf_counter())
    polished = polish(objective, search.best, settings)
    marks.append(time.perf_counter())
    # the fit's default here: Epoch's residuals trend with N and D (residual_structure), so points are reweighted
    counts = resample_weights(len(points), n_bootstrap, np.random.default_rng(0))
    refit_replicates(objective, polished.z, counts, settings, restarts=search.basins)
    marks.append(time.perf_counter())
    names = ("multi-start (explore, prune, converge)", "polish (L-BFGS-B + Gauss-Newton)",
             f"{n_bootstrap} bootstrap refits (Bayesian weights, auto's choice on these points)")
    return dict(zip(names, np.diff(marks)))


def shipped_table_cost(n_bootstrap: int, repeats: int) -> None:
    """Grid fit + refits on the shipped ladder's tuned points: run to convergence vs the old 100-step cap."""
    from scalefit.runs import load_runs
    from scalefit.study import select_points

    if not SHIPPED_TABLE.exists():
        print(f"\nshipped table not found at {SHIPPED_TABLE}; skipped")
        return
    points = select_points(load_runs(SHIPPED_TABLE))[0]
    law = Chinchilla()
    print(f"\nshipped table ({len(points)} tuned points, {points['params'].nunique()} sizes):")
    for label, settings in (("to convergence (default)", OptimiserSettings()),
                            ("old cap: 100 steps, no restarts", OptimiserSettings(bootstrap_iterations=100,
                                                                                   bootstrap_restarts=0))):
        seconds, _, result = timed(lambda s=settings: fit(law, points, bootstrap=n_bootstrap, settings=s), repeats)
        e_lo, e_hi = result.intervals.loc["E"]
        print(f"  {label}: grid fit + {n_bootstrap} refits median {seconds:.2f} s; "
              f"{result.n_failed_refits} refits not converged; E 95% [{e_lo:.3g}, {e_hi:.3g}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Epoch's svg_extracted_data.csv")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--baseline-starts", type=int, default=150, help="grid starts the baseline runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    points = load_points(args.data)
    law = Chinchilla()
    print(f"data: {len(points)} points from {args.data}")
    print(f"machine: {os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.2f} (timings are noisy)")
    fit(law, points, bootstrap=10)  # warm-up: imports and first-call costs

    grid_time, grid_times, grid = timed(lambda: fit(law, points, bootstrap=0), args.repeats)
    full_time, full_times, full = timed(lambda: fit(law, points, bootstrap=args.bootstrap), args.repeats)
    print(f"\nscalefit grid fit, {grid.n_starts} starts: median {grid_time:.3f} s of {args.repeats} "
          f"({', '.join(f'{t:.3f}' for t in grid_times)})")
    print(f"  objective {grid.objective:.13f}; {grid.n_pruned} pruned, {grid.n_converged} converged, "
          f"{grid.n_best_basin} in the best basin; success {grid.success}: {grid.message}")
    print(f"scalefit grid fit + {args.bootstrap} bootstrap refits: median {full_time:.3f} s "
          f"({', '.join(f'{t:.3f}' for t in full_times)}); "
          f"{int(full.draws['converged'].sum())} refits converged, {full.n_failed_refits} failed (target < 3 s)")
    print("  alpha 95%: [{:.3f}, {:.3f}], beta 95%: [{:.3f}, {:.3f}] (Epoch: [0.317, 0.373], [0.331, 0.415])".format(
        *full.intervals.loc["alpha"], *full.intervals.loc["beta"]))
    print("one run, by phase: " + "; ".join(f"{k} {v:.3f} s" for k, v in phase_breakdown(points, args.bootstrap).items()))

    grid_starts = law.start_grid()
    chosen = np.random.default_rng(args.seed).choice(len(grid_starts), args.baseline_starts, replace=False)
    seconds, baseline_best = epoch_baseline(points, grid_starts[chosen])
    extrapolated = seconds * len(grid_starts) / args.baseline_starts
    print(f"\nbaseline (Epoch's procedure: scipy L-BFGS-B, numerical gradient, start by start): "
          f"{seconds:.2f} s for {args.baseline_starts} random grid starts (seed {args.seed}),\n"
          f"  extrapolated linearly to {len(grid_starts)} starts: {extrapolated:.1f} s; best objective "
          f"{baseline_best:.13f}")
    print(f"\nspeed-up of the grid fit over the baseline: {extrapolated / grid_time:.0f}x; "
          f"|objective difference| {abs(grid.objective - baseline_best):.2e} (target: >= 30x at <= 1e-9)")
    shipped_table_cost(args.bootstrap, max(1, args.repeats // 2))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
