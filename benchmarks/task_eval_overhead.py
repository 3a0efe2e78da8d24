"""What the built-in task suite costs a run: its share of the wall time, read from a sweep's finished parts.

Every evaluation row carries ``task_eval_time`` (seconds spent scoring the tasks at that evaluation),
``eval_time`` (the whole evaluation: validation loss and tasks) and ``wall_time`` (since the run started), so
a finished run's task overhead is the sum of its ``task_eval_time`` over its final ``wall_time``, measured
in place, under whatever load the machine had. Grouped by size, token budget and batch size.

Run by hand::

    python benchmarks/task_eval_overhead.py data/cpu-ladder-v2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def overhead(folder: Path) -> pd.DataFrame:
    parts = sorted((folder / "parts").glob("*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no finished runs under {folder / 'parts'}")
    rows = []
    for part in parts:
        run = pd.read_parquet(part)
        if "task_eval_time" not in run:
            continue
        last = run.iloc[-1]
        rows.append({"size": last["size"], "tokens": last["token_budget"], "batch": last["batch_size"],
                     "evals": len(run), "wall_s": last["wall_time"],
                     "per_eval_s": run["task_eval_time"].mean(),
                     "task_share": run["task_eval_time"].sum() / last["wall_time"],
                     "eval_share": run["eval_time"].sum() / last["wall_time"]})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a sweep folder (with parts/)")
    args = parser.parse_args(argv)
    try:
        runs = overhead(args.folder)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = runs.groupby(["size", "tokens", "batch"]).agg(
        runs=("wall_s", "size"), wall_s=("wall_s", "median"), evals=("evals", "median"),
        task_s_per_eval=("per_eval_s", "median"), task_share=("task_share", "median"),
        eval_share=("eval_share", "median"))
    print(summary.round(3).to_string())
    print(f"\nall {len(runs)} runs: tasks take {runs['task_share'].median():.1%} of a run's wall time (median; "
          f"{runs['task_share'].min():.1%}–{runs['task_share'].max():.1%}), all evaluations "
          f"{runs['eval_share'].median():.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
