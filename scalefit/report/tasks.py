"""The downstream-tasks section: each task's predicted accuracy at the report's target, by the two-step method
of Bhagia et al. (2024, arXiv:2412.04403), with its interval, whether the ladder can predict it, and plots of
both steps and the chain. Shown only when the runs table has task metrics (``task/<name>/acc``)."""

from __future__ import annotations

import pandas as pd

from scalefit.io import json_safe
from scalefit.report.document import Figure, Section, Table, _g, _png, _sentence
from scalefit.results import level_label
from scalefit.tasks import TaskScalingResult

#: How each intermediate of step 1 reads in the report.
INTERMEDIATE_NAMES = {"bpb": "the task's bits per byte of the correct answer", "loss": "the general validation loss",
                      "ppl": "the log of a task's perplexity"}


def tasks_section(result: TaskScalingResult) -> tuple[Section, dict]:
    """The task-scaling result of :func:`scalefit.tasks.fit_task_scaling` at the report's target, drawn; the
    section and its ``results.json`` part (``result.to_dict()``)."""
    from scalefit.plots import plot_task_steps

    pct = level_label(result.level)
    table = result.table()
    first = table[table["params"] == result.targets["params"].iloc[0]]
    first = first[first["tokens"] == result.targets["tokens"].iloc[0]]
    shown = pd.DataFrame({
        "task": first["task"], "predicted accuracy": first["predicted"], "mean (any verdict)": first["raw_mean"],
        f"mean {pct} lo": first["mean_lo"], f"mean {pct} hi": first["mean_hi"],
        f"run {pct} lo": first["obs_lo"], f"run {pct} hi": first["obs_hi"], "chance": first["chance"],
        "predictability": first["predictable"].map({True: "predictable", False: "not predictable at this ladder"}),
        "intermediate": result.intermediate, "why not": first["reasons"],
    })
    target = result.targets.iloc[0]
    n_predictable = int(first["predictable"].sum())
    paragraphs = (
        (f"Downstream accuracy at the planned run N = {_g(target['params'])}, D = {_g(target['tokens'])} "
         f"({first['decades'].iloc[0]:.1f} decades of compute beyond the ladder), by the two-step method of "
         f"Bhagia et al. (2024): step 1 a {result.step1_law} law from (N, D) to "
         f"{INTERMEDIATE_NAMES.get(result.intermediate, result.intermediate)}, step 2 a sigmoid from it to the "
         f"accuracy with the chance floor, chained with a bootstrap over runs ({pct} intervals)."),
        (f"{n_predictable} of {len(first)} task(s) are predictable at this ladder: a task is not when its "
         f"interval is wider than {100 * result.thresholds.max_width:g} points, its backtest on the largest "
         f"size misses by more than {100 * result.thresholds.max_backtest_error:g} points, or its checkpoints "
         "are too noisy; such a task's predicted accuracy is left blank."),
    )
    warnings = tuple(_sentence(reason) for reason in result.reasons)
    figures = tuple(
        Figure(f"task_{task.replace('/', '_')}", f"Task {task}: step 1 (the intermediate against tokens per "
               "size, with the fitted law), step 2 (accuracy against the intermediate, with the sigmoid) and the "
               f"chained prediction with its {pct} interval.", _png(plot_task_steps(result, task)))
        for task in result.tasks.index[result.tasks["x_lo"].notna()])
    section = Section("tasks", paragraphs, warnings,
                      (Table("tasks-table", f"Predicted accuracy per task ({pct} intervals; blank = not "
                             "predictable)", shown),), figures)
    return section, json_safe(result.to_dict())
