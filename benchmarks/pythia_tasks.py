"""Task scaling on Pythia: fit on the ≤ 1.4B models, predict the 2.8B, 6.9B and 12B final accuracies.

The public Pythia evaluations (``../shared/data/pythia_evals``, see its PROVENANCE.md; not copied into the
repository): standard variant, 0-shot, eight tasks. Pythia has no per-task bits per byte, so the
intermediate is LAMBADA's log-perplexity (a general loss); params are the non-embedding counts and tokens
``step × 2,097,152``. Prints, per task and target: actual, predicted, interval, error in points, predictable
or not, and writes that table into ``docs/tasks.md`` between the markers.

Run: ``.venv/bin/python benchmarks/pythia_tasks.py`` (about a minute on two cores; ``--no-docs`` to only
print).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.tasks import fit_task_scaling, targets_frame, to_wide, validate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "pythia_evals" / "pythia_evals.csv.gz"
DOCS = REPO / "docs" / "tasks.md"
TOKENS_PER_STEP = 2_097_152
TASKS = ("arc_challenge", "arc_easy", "lambada_openai", "logiqa", "piqa", "sciq", "winogrande", "wsc")
CHOICES = {"arc_challenge": 4, "arc_easy": 4, "logiqa": 4, "piqa": 2, "sciq": 4, "winogrande": 2, "wsc": 2}
LADDER_MAX = 1.5e9  # fit on ≤ 1.4B (total); the 1.4B model has 1.21e9 non-embedding parameters
TARGETS = ("2.8b", "6.9b", "12b")
BEGIN, END = "<!-- pythia-table:begin -->", "<!-- pythia-table:end -->"


def pythia_table(path: Path = DATA, variant: str = "standard", shots: int = 0) -> pd.DataFrame:
    """Pythia's evaluations as a wide task table: run_id (model), params (non-embedding), tokens, step,
    ``task/<name>/acc``, ``task/lambada_openai/ppl`` and ``task/<name>/n_choices`` (LAMBADA: chance 0)."""
    raw = pd.read_csv(path)
    raw = raw[(raw["variant"] == variant) & (raw["num_fewshot"] == shots) & raw["task"].isin(TASKS)
              & raw["metric"].isin(["acc", "ppl"])]
    long = pd.DataFrame({"run_id": raw["model"], "size": raw["size"], "params": raw["params_nonembed"],
                         "step": raw["step"], "tokens": raw["step"] * TOKENS_PER_STEP, "task": raw["task"],
                         "metric": raw["metric"], "value": raw["value"]})
    wide = to_wide(long[long["step"] > 0], str(path))
    for task, n in CHOICES.items():
        wide[f"task/{task}/n_choices"] = float(n)
    wide["task/lambada_openai/chance"] = 0.0
    return validate(wide, str(path))


def backtest_table(table: pd.DataFrame, bootstrap: int = 200, seed: int = 0, tasks=TASKS, alternatives=True):
    """Fit on the ladder (≤ 1.4B), predict the targets' final accuracies; one row per (task, target)."""
    ladder = table[table["params"] <= LADDER_MAX]
    finals = table[table["step"] == table["step"].max()].set_index("size")
    targets = finals.loc[list(TARGETS)]
    result = fit_task_scaling(ladder.drop(columns="size"), targets_frame(targets["params"], targets["tokens"]),
                              tasks, intermediate="ppl", intermediate_task="lambada_openai", bootstrap=bootstrap,
                              seed=seed, alternatives=alternatives, source=str(DATA))
    answer = result.table()
    answer["size"] = np.tile(list(TARGETS), len(tasks))
    answer["actual"] = [targets.loc[size, f"task/{task}/acc"] for task, size in zip(answer["task"], answer["size"])]
    answer["error_points"] = 100 * (answer["raw_mean"] - answer["actual"])
    answer["covered"] = (answer["obs_lo"] <= answer["actual"]) & (answer["actual"] <= answer["obs_hi"])
    return result, answer


def method_errors(result, answer: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute error (points) and coverage of the one-run interval per method, over every prediction."""
    frame = result.prediction().reset_index()
    sizes = dict(enumerate(TARGETS))
    truth = answer.set_index(["task", "size"])["actual"]
    frame["actual"] = [truth[(t, sizes[i])] for t, i in zip(frame["task"], frame["target"])]
    frame["abs_error"] = 100 * (frame["mean"] - frame["actual"]).abs()
    frame["covered"] = (frame["obs_lo"] <= frame["actual"]) & (frame["actual"] <= frame["obs_hi"])
    return frame.groupby("method")[["abs_error", "covered"]].mean()


def markdown(answer: pd.DataFrame, level: float, methods: pd.DataFrame) -> str:
    pct = f"{100 * level:g} %"
    lines = [f"| task | target | actual | predicted | {pct} interval (one run) | error (points) | predictable |",
             "|---|---|---|---|---|---|---|"]
    for row in answer.itertuples():
        verdict = "yes" if row.predictable else f"no: {row.reasons}"
        lines.append(f"| {row.task} | {row.size} | {row.actual:.3f} | {row.raw_mean:.3f} | "
                     f"[{row.obs_lo:.3f}, {row.obs_hi:.3f}] | {row.error_points:+.1f} | {verdict} |")
    good = answer[answer["predictable"]]
    called = (f"{good['error_points'].abs().mean():.1f} points over the {len(good)} called predictable "
              f"(their interval covers {good['covered'].mean():.0%})" if len(good) else "none called predictable")
    lines += ["", (f"Mean absolute error: {answer['error_points'].abs().mean():.1f} points over all {len(answer)} "
                   f"predictions; {called}. Coverage of the {pct} one-run interval over all: "
                   f"{answer['covered'].mean():.0%}.")]
    lines += ["", f"| method | mean abs. error (points) | coverage of the {pct} one-run interval |", "|---|---|---|"]
    lines += [f"| {name} | {row.abs_error:.1f} | {row.covered:.0%} |" for name, row in methods.iterrows()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/tasks.md alone")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the Pythia evaluations sit in ../shared beside the repository")
    start = time.perf_counter()
    result, answer = backtest_table(pythia_table(), bootstrap=args.bootstrap)
    elapsed = time.perf_counter() - start
    text = markdown(answer, result.level, method_errors(result, answer))
    print(result.summary().as_text())
    print()
    print(text)
    print(f"\n{elapsed:.0f} s (fit, {args.bootstrap} bootstrap draws over runs, backtests, alternatives)")
    if not args.no_docs:
        doc = DOCS.read_text()
        if BEGIN not in doc or END not in doc:
            raise SystemExit(f"{DOCS} lacks the markers {BEGIN} … {END}")
        head, rest = doc.split(BEGIN, 1)
        DOCS.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")
        print(f"wrote the table into {DOCS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
