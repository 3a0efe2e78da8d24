"""Does law selection by rollout predict big runs better? Epoch's Chinchilla points, fitted on N ≤ 1e9 only.

Run by hand: ``python benchmarks/epoch_backtest.py`` (about a minute on 2 cores). On Epoch's extraction of
Hoffmann et al.'s runs (240 points, ``shared/data/chinchilla_epoch``), every candidate law of
:func:`scalefit.selection.default_candidates` is fitted on the runs with N ≤ 1e9 and predicts every larger
run. It prints, per candidate: the error on those held-out runs (mean and max |rel. error|, by size band), the
coverage of the held-out losses by the 95 % intervals of the mean, of one new run and for planning, and the
median planning width; then the law the rollout on the N ≤ 1e9 runs chose (it never sees the larger runs),
and timings. The chosen law must not be worse than the free joint law here (issue 16).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.fitting import extrapolation_distance
from scalefit.selection import default_candidates, rollout, select_law

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla_epoch" / "svg_extracted_data.csv"


def load_points(path: Path) -> pd.DataFrame:
    """Epoch's 240 points: the extraction without its 5 highest losses; D = C / (6 N)."""
    raw = pd.read_csv(path)
    kept = raw[raw["loss"] < raw["loss"].nlargest(5).iloc[-1]]
    return pd.DataFrame({"params": kept["Model Size"], "tokens": kept["Training FLOP"] / (6 * kept["Model Size"]),
                         "loss": kept["loss"]}).reset_index(drop=True)


def held_out_table(result, target: pd.DataFrame, level: float) -> dict:
    band = result.predict(target, level=level)
    actual = target["loss"].to_numpy(float)
    error = (band["mean"].to_numpy(float) - actual) / actual
    row = {"mean |err|": np.mean(np.abs(error)), "max |err|": np.max(np.abs(error))}
    bands = {"≤3e9": target["params"] <= 3e9, ">3e9": target["params"] > 3e9}
    for name, mask in bands.items():
        row[f"|err| N{name}"] = np.mean(np.abs(error[mask.to_numpy()])) if mask.any() else np.nan
    for kind in ("mean", "obs", "plan"):
        lo, hi = band[f"{kind}_lo"].to_numpy(float), band[f"{kind}_hi"].to_numpy(float)
        row[f"cover {kind}"] = np.mean((actual >= lo) & (actual <= hi)) if np.isfinite(lo).all() else np.nan
    width = (band["plan_hi"] - band["plan_lo"]) / band["mean"]
    row["plan width"] = float(np.median(width))
    row["bias"] = float(np.mean(error))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cut", type=float, default=1e9, help="fit on N ≤ cut (default 1e9)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--level", type=float, default=0.95)
    args = parser.parse_args()

    points = load_points(args.data)
    train, target = points[points["params"] <= args.cut], points[points["params"] > args.cut]
    span = extrapolation_distance({"params": (train["params"].min(), train["params"].max())}, target)
    print(f"{len(train)} runs with N ≤ {args.cut:g} fitted; {len(target)} larger runs predicted "
          f"(N up to {target['params'].max():.3g}, {span['decades'].max():.2f} decades beyond)")

    candidates = default_candidates()
    rows, timings = {}, {}
    for candidate in candidates:
        start = time.perf_counter()
        result = candidate.fit(train, bootstrap=args.bootstrap, seed=0)
        rolled = rollout(train, lambda t, c=candidate: c.fit(t, bootstrap=200, seed=0), candidate.name,
                         level=args.level)
        result = replace(result, extrapolation_error=rolled.extrapolation_error())
        timings[candidate.name] = time.perf_counter() - start
        rows[candidate.name] = held_out_table(result, target, args.level) | {
            "rollout score": rolled.score, "s/decade": result.extrapolation_error.per_decade,
            "AIC": result.aic(), "status": result.status}
    table = pd.DataFrame.from_dict(rows, orient="index")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(f"\nHeld-out runs (N > {args.cut:g}); coverage of {100 * args.level:g} % intervals; "
              "plan width = median (plan_hi − plan_lo)/mean")
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))

    start = time.perf_counter()
    selection = select_law(train, candidates, seed=0)
    chosen_time = time.perf_counter() - start
    print(f"\nRollout on the N ≤ {args.cut:g} runs only: {selection.reason}")
    if selection.disagreement:
        print(selection.disagreement)
    free, chosen = rows[candidates[0].name], rows[selection.chosen]
    verdict = "not worse" if chosen["mean |err|"] <= free["mean |err|"] + 1e-12 else "WORSE"
    print(f"chosen {selection.chosen}: mean |err| {chosen['mean |err|']:.2%} vs free joint law "
          f"{free['mean |err|']:.2%} on the held-out runs: {verdict}")
    print("\ntimings [s] (fit with bootstrap + its rollout): "
          + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + f"; selection ({len(candidates)} candidates) {chosen_time:.1f}")


if __name__ == "__main__":
    main()
