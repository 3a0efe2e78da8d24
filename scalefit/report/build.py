"""The assembler: run every analysis a runs table supports once, then hand the results to the sections.

The sections (:mod:`scalefit.report.data`, ``fit``, ``frontier``, ``extrapolation``, ``hparams``, ``rl``,
``tasks``, ``answer``) take results and draw them; nothing is fitted in them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scalefit.errors import FitError, ScalefitInputError
from scalefit.io import json_safe
from scalefit.points import points
from scalefit.report.answer import answer_section
from scalefit.report.data import data_section, overview
from scalefit.report.document import (
    REPORT_SCHEMA_VERSION,
    SECTION_TITLES,
    Report,
    Section,
    _records,
)
from scalefit.report.extrapolation import default_targets, extrapolation_section, target_table
from scalefit.report.fit import fit_section
from scalefit.report.frontier import frontier_section
from scalefit.report.hparams import MIN_LRS_PER_GROUP, MIN_SWEPT_GROUPS, hparams_section
from scalefit.report.rl import rl_section
from scalefit.report.tasks import tasks_section

#: Bootstrap draws over runs of the task-scaling chain (as ``scalefit tasks``).
TASK_BOOTSTRAP = 200


def lr_sweep_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The final point of every run in a group that holds an LR sweep, and ''; or an empty table and why.

    A group is a model size and token budget (the ``token_budget`` column when present, since runs at
    different batch sizes end a few tokens apart; else ``tokens``); it holds a sweep when its runs tried
    at least :data:`MIN_LRS_PER_GROUP` learning rates. The LR/BS laws need :data:`MIN_SWEPT_GROUPS` such
    groups; groups without a sweep are left out, as their one LR says nothing about the optimum.
    """
    if "lr" not in runs:
        return pd.DataFrame(), ("the runs table has no lr column, so there is no learning-rate sweep to fit "
                                "laws to. Record each run's peak LR in an lr column to get this section.")
    final = points(runs, "groups")  # the swept runs: last point each, every status
    if "token_budget" in final:
        final = final.assign(tokens=final["token_budget"].astype(float))
    n_lrs = final.groupby(["params", "tokens"])["lr"].transform("nunique")
    swept = final[n_lrs >= MIN_LRS_PER_GROUP]
    n_groups = swept.groupby(["params", "tokens"]).ngroups
    if n_groups < MIN_SWEPT_GROUPS:
        return pd.DataFrame(), (
            f"only {n_groups} (N, D) group(s) tried {MIN_LRS_PER_GROUP} or more learning rates; the LR "
            f"and batch-size laws need at least {MIN_SWEPT_GROUPS} to see how the optimum moves with N and "
            "D. Add LR sweeps (e.g. lr_multipliers in a sweep config) at more (N, D) pairs.")
    return swept.reset_index(drop=True), ""


def _hparams(runs: pd.DataFrame, planned: list[tuple[float, float]], bootstrap: int, seed: int):
    """The LR/BS laws of the table's sweeps and the advice for each planned run (ScalefitInputError: why none)."""
    from scalefit.hyperparams import fit_hparams, recommend

    swept, reason = lr_sweep_table(runs)
    if reason:
        raise ScalefitInputError(reason)
    laws = fit_hparams(swept, n_bootstrap=bootstrap, seed=seed, source=str(runs.attrs.get("source", "runs")))
    return laws, [recommend(n, d, laws) for n, d in planned]


def _rl(rl_runs: pd.DataFrame, bootstrap: int, seed: int):
    """The RL law, and its backtest on the largest size or why there is none."""
    from scalefit.rl import fit_rl

    result = fit_rl(rl_runs, bootstrap=bootstrap, seed=seed)
    n_sizes = len(result.per_size)
    try:
        if n_sizes < 4:
            raise FitError(f"{n_sizes} sizes; holding the largest out needs 4 or more")
        return result, fit_rl(rl_runs, bootstrap=0, seed=seed, protocol="holdout-largest:1"), None
    except FitError as err:
        return result, None, str(err)


def has_task_metrics(runs: pd.DataFrame) -> bool:
    """Whether the runs table holds task accuracies (``task/<name>/acc`` columns; scalefit.tasks.table)."""
    from scalefit.tasks.table import task_names

    return bool(task_names(runs))


def task_scaling(runs: pd.DataFrame, target: tuple[float, float], *, bootstrap: int = TASK_BOOTSTRAP,
                 seed: int = 0):
    """The task-scaling analysis of the table's ``ok`` validation rows at ``target`` (N, D), as ``scalefit
    tasks`` runs it: each task's bits per byte as the intermediate when every task has one, else the loss."""
    from scalefit.tasks import fit_task_scaling, targets_frame, validate
    from scalefit.tasks.table import column, task_names

    source = str(runs.attrs.get("source", "runs table"))
    rows = points(runs, "all")
    frame = validate(rows.reset_index(drop=True), source)
    names = task_names(frame)
    intermediate = "bpb" if all(column(name, "bpb") in frame for name in names) else "loss"
    return fit_task_scaling(frame, targets_frame(*target), intermediate=intermediate, bootstrap=bootstrap,
                            seed=seed, source=source)


def build_report(runs: pd.DataFrame | str | Path, *, rl_runs: pd.DataFrame | str | Path | None = None,
                 targets=None, budgets=None, bootstrap: int = 1000, hparam_bootstrap: int = 1000,
                 rl_bootstrap: int = 200, seed: int = 0, columns=None, flops_convention: str | None = None,
                 progress: bool = False, task_bootstrap: int = TASK_BOOTSTRAP, law: str = "auto") -> Report:
    """Run every analysis the runs table supports and gather it into a :class:`Report`.

    Parameters
    ----------
    runs
        Runs table: a path (parquet or CSV) or a table from :func:`scalefit.runs.load_runs`.
    rl_runs
        RL runs table (see :func:`scalefit.rl.load_rl_runs`), for the RL section.
    targets
        Planned runs for the extrapolation and recommendation tables: ``(N, D)`` pairs, D None for the
        compute-optimal D of that N; default :func:`default_targets`.
    budgets
        Compute budgets for the allocation table (default: the data's range and 3 decades beyond).
    bootstrap, hparam_bootstrap, rl_bootstrap, task_bootstrap
        Bootstrap refits of the joint law, of the LR/BS laws, of the RL law and of the task-scaling chain.
    seed
        Seeds every bootstrap.
    columns, flops_convention
        As :func:`scalefit.runs.load_runs`.
    progress
        Show a progress bar over the sections (stderr).
    law
        The loss law, as ``scalefit fit --law``: ``"auto"`` (chosen by rollout, the default, so the report's
        numbers are the fit's) or ``"chinchilla"`` (the free joint law).

    A table with task metrics (``task/<name>/acc``) gets a downstream-tasks section at the first planned run.

    Returns
    -------
    Report
        A section whose analysis fails on this data (too few sizes, no LR sweep, no RL table) is left
        out, and :attr:`Report.absent` says why; an unreadable table raises ``ScalefitInputError``.
    """
    from tqdm import tqdm

    from scalefit.rl import load_rl_runs
    from scalefit.runs import load_runs
    from scalefit.study import fit_runs

    if not isinstance(runs, pd.DataFrame):
        runs = load_runs(runs, columns=columns, flops_convention=flops_convention)
    source = str(runs.attrs.get("source", "runs table"))
    rl_source = None
    if rl_runs is not None and not isinstance(rl_runs, pd.DataFrame):
        rl_source, rl_runs = str(rl_runs), load_rl_runs(rl_runs)
    sections, absent = [], {}
    results = {"schema_version": REPORT_SCHEMA_VERSION, "source": source, "rl_source": rl_source}
    bar = tqdm(total=len(SECTION_TITLES), desc="report", unit="section", disable=not progress, leave=False)

    def done(section: Section | None = None, key: str = "", why: str = "") -> None:
        if section is not None:
            sections.append(section)
        else:
            absent[key] = why
        bar.update(1)

    data, results["data"] = data_section(overview(runs))
    done(data)
    try:
        study = fit_runs(runs, law=law, budgets=budgets, bootstrap=bootstrap, seed=seed)
    except ScalefitInputError as err:
        study = None
        for key in ("fit", "frontier", "extrapolations"):
            done(key=key, why=f"the joint law could not be fitted: {err}")
    if study is not None:
        results["fit"] = study.to_dict()
        done(fit_section(study))
        if study.allocation is not None or study.approaches:
            done(frontier_section(study))
        else:
            done(key="frontier", why="the joint-law fit did not converge, so it gives no compute-optimal "
                                     "allocation; " + "; ".join(f"{a}: {why}" for a, why in study.approaches_missing))
        if study.result.success:
            table = target_table(study, targets or default_targets(study))
            results["extrapolations"] = _records(table)
            done(extrapolation_section(study, table, user_given=bool(targets)))
        else:
            done(key="extrapolations", why="the joint-law fit did not converge: its predictions would mean "
                                           "nothing.")
    planned = [(row["params"], row["tokens"]) for row in results.get("extrapolations", [])]
    if not planned:  # no fit to say where to go: advise for the largest run trained
        planned = [(results["data"]["params_range"][1], results["data"]["tokens_range"][1])]
    if has_task_metrics(runs):
        try:
            section, results["tasks"] = tasks_section(task_scaling(runs, planned[0], bootstrap=task_bootstrap,
                                                                   seed=seed))
            sections.append(section)
        except (ScalefitInputError, FitError) as err:
            absent["tasks"] = f"the task-scaling analysis could not be run: {err}"
    try:
        laws, advice = _hparams(runs, planned, hparam_bootstrap, seed)
    except ScalefitInputError as err:
        done(key="hparams", why=str(err))
    else:
        section, results["hparams"] = hparams_section(laws, advice)
        done(section)
    if study is not None and study.result.status != "failed" and planned:
        section, results["answer"] = answer_section(study, planned[0], results.get("hparams"),
                                                     absent.get("hparams"))
        sections.insert(0, section)
        bar.update(1)
    else:
        done(key="answer", why="no fitted law to answer from: see the fit section's reason")
    if rl_runs is None:
        done(key="rl", why="no RL runs table given; pass one with --rl (e.g. --rl data/rl_runs.parquet).")
    else:
        try:
            fitted = _rl(rl_runs, rl_bootstrap, seed)
        except ScalefitInputError as err:
            done(key="rl", why=f"the RL law could not be fitted: {err}")
        else:
            section, results["rl"] = rl_section(*fitted)
            done(section)
    bar.close()
    if rl_source:
        source = f"{source}; RL: {rl_source}"
    results.update({"sections": [s.key for s in sections], "absent": absent})
    return Report(source, tuple(sections), absent, json_safe(results))