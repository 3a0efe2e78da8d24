"""The learning-rate and batch-size section: optima per swept group, the LR/BS laws, recommendations."""

from __future__ import annotations

import math

import pandas as pd

from scalefit.io import json_safe
from scalefit.report.document import Figure, Section, Table, _bounds, _png, _sentence

#: A group (N, token budget) holds an LR sweep when it tried this many learning rates or more ...
MIN_LRS_PER_GROUP = 3
#: ... and the LR/BS laws need this many such groups.
MIN_SWEPT_GROUPS = 3


def _recommendation_row(advice, pct: str) -> dict:
    return {
        "N": advice.n_params, "D": advice.tokens, "peak LR": advice.lr,
        f"LR {pct} lo": _bounds(advice.lr_interval, 0), f"LR {pct} hi": _bounds(advice.lr_interval, 1),
        "batch size [tokens]": math.nan if advice.batch_size_tokens is None else advice.batch_size_tokens,
        f"batch {pct} lo": _bounds(advice.batch_size_interval, 0),
        f"batch {pct} hi": _bounds(advice.batch_size_interval, 1),
        "beyond fitted range [decades]": (math.nan if advice.extrapolation_decades is None
                                          else advice.extrapolation_decades),
    }


def hparams_section(laws, advice: list) -> tuple[Section, dict]:
    """The LR/BS laws fitted by :func:`scalefit.hyperparams.fit_hparams` (``laws``) and the recommendations
    made from them (``advice``), drawn; the section and its ``results.json`` part."""
    from scalefit.plots import plot_hparam_laws, plot_lr_landscapes

    optima = laws.optima
    pct = f"{100 * optima.level:.0f}%"
    groups = optima.groups.rename(columns={"params": "N", "tokens": "D"})[[
        "group", "N", "D", "n_runs", "n_excluded", "best_loss", "n_plateau", "opt_lr", "opt_lr_lower",
        "opt_lr_upper", "opt_batch_size", "method", "warning"]]
    law_rows = [{"law": law.name, "formula": law.formula, "parameter": name, "estimate": value,
                 f"{pct} lo": _bounds(law.intervals.get(name), 0),
                 f"{pct} hi": _bounds(law.intervals.get(name), 1), "groups": law.n_groups}
                for law in laws.usable.values() for name, value in law.params.items()]
    paragraphs = [
        (f"{len(optima.groups)} (N, D) groups of the table tried {MIN_LRS_PER_GROUP}+ learning rates "
         f"({len(optima.runs)} runs; {int(optima.runs['excluded'].sum())} excluded: diverged or not ok). "
         "In each, the optimum is the minimum of a quadratic in (log LR, log batch size) fitted near the "
         "best run, with a delta-method interval; the plateau is every run within "
         f"{100 * optima.tolerance:.2g}% of the best loss (Step Law)."),
        ("Power laws lr*(N, D) = c N^a D^b and B*(D) = c D^g (Step Law, Li et al. 2025) and their compute "
         f"forms lr*(C), B*(C) (DeepSeek LLM, Bi et al. 2024), fitted on the optima with {pct} intervals "
         "from a bootstrap over groups; then recommendations for the planned runs of the extrapolation "
         "table."),
    ]
    warnings = [_sentence(note) for note in (*laws.notes, *optima.warnings)]
    runs_by_warning: dict[str, list[str]] = {}  # one line per warning, naming every planned run it concerns
    for a in advice:
        for warning in a.warnings:
            runs_by_warning.setdefault(warning, []).append(f"N = {a.n_params:.3g}, D = {a.tokens:.3g}")
    warnings += [_sentence(f"{'; '.join(runs)}: {w}") for w, runs in runs_by_warning.items()]
    tables = (Table("hparams-groups", f"Optimal LR per group ({pct} intervals)", groups),
              Table("hparams-laws", f"LR and batch-size laws ({pct} intervals)", pd.DataFrame(law_rows)),
              Table("hparams-recommendations", f"Recommended peak LR and batch size ({pct} confidence "
                    "intervals)", pd.DataFrame([_recommendation_row(a, pct) for a in advice])))
    figures = (Figure("lr_landscapes", "Loss over the LR (× batch-size) grid of each group: optimum (star), "
                      "plateau (ringed), excluded runs (crosses).", _png(plot_lr_landscapes(optima))),
               Figure("hparam_laws", f"Optimal LR and batch size against N, D and C with {pct} bands.",
                      _png(plot_hparam_laws(laws))))
    results = {**laws.to_dict(), "recommendations": [a.to_dict() for a in advice]}
    return Section("hparams", tuple(paragraphs), tuple(warnings), tables, figures), json_safe(results)
