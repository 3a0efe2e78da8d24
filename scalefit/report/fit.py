"""The fit section: the joint law's parameters with intervals, residuals, bootstrap draws and the backtest."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalefit.report.document import Figure, Section, Table, _png, _sentence
from scalefit.study import RunsFit


def fit_section(study: RunsFit) -> Section:
    """The joint law fitted by :func:`scalefit.study.fit_runs` (``study``), drawn; nothing is fitted here."""
    from scalefit.plots import plot_backtest, plot_backtest_parity, plot_bootstrap, plot_fit, plot_residuals

    r = study.result
    pct = f"{100 * r.level:.0f}%"
    notes = ["fixed" if n in r.fixed else "derived" if n in r.law.derived_names else ""
             for n in r.params.index]
    params = pd.DataFrame({"parameter": r.params.index, "estimate": r.params.to_numpy(),
                           f"{pct} lo": r.intervals["lo"].to_numpy(),
                           f"{pct} hi": r.intervals["hi"].to_numpy(), "note": notes})
    residual_scale = float(np.sqrt(np.mean(r.residuals.to_numpy() ** 2)))
    excluded = "; ".join(f"{n} {what}" for what, n in study.excluded.items()) or "nothing"
    paragraphs = [
        (f"L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022) fitted to {r.n_points} points "
         f"({study.points_rule}: per (N, D), the final loss of the best learning-rate/batch-size setting, "
         f"seeds averaged) from {study.points['params'].nunique()} sizes. Left out: {excluded}."),
        (f"Objective: {r.loss}, {r.n_starts} starts ({r.n_converged} converged, {r.n_best_basin} in the best "
         f"basin). Converged: {r.success} ({r.message}). Intervals: {r.interval_method}, {pct}. Residuals "
         f"log L − log L̂ have RMS {residual_scale:.3g}; AIC {r.aic():.2f}, BIC {r.bic():.2f}."),
    ]
    warnings = [_sentence(note) for note in study.notes if not note.startswith("approach")]
    if not r.success:
        warnings.insert(0, "The fit did not converge, so its estimates cannot be trusted; the frontier and "
                           "extrapolations are left out. Look for outlying runs, or fix a parameter the data "
                           "cannot pin down (scalefit fit --fix alpha=0.34).")
    tables = [Table("fit-params", f"Parameters with {pct} {r.interval_method} intervals", params)]
    figures = [
        Figure("fit", f"Loss against D, one curve per model size, with the {pct} interval of the mean "
               "(shaded) and of a new run (dotted); dashed: extrapolation; grey dashed: E.",
               _png(plot_fit(r, against="tokens"))),
        Figure("fit_params", "Loss against N, one curve per token budget.",
               _png(plot_fit(r, against="params"))),
        Figure("residuals", "Log residuals against N, D and the fitted loss; dotted: ±2 RMS.",
               _png(plot_residuals(r))),
    ]
    if len(r.draws) and r.draws["converged"].any():
        figures.append(Figure("bootstrap", "Bootstrap draws of α, β and E: histograms and pairs.",
                              _png(plot_bootstrap(r))))
    if study.backtest is not None:
        bt = study.backtest
        coverage = "n/a (no bootstrap)" if math.isnan(bt.coverage) else f"{bt.coverage:.0%}"
        paragraphs.append(
            f"Backtest: refitted without the largest {bt.holdout_largest} size(s) and predicted their "
            f"{len(bt.predictions)} runs: mean |relative error| {bt.mean_abs_rel_error:.2%}, max "
            f"{bt.max_abs_rel_error:.2%}, {pct} prediction-interval coverage {coverage}.")
        table = bt.predictions.rename(columns={"params": "N", "tokens": "D", "lo": f"{pct} lo",
                                               "hi": f"{pct} hi"})
        tables.append(Table("fit-backtest", "Backtest: held-out runs, actual and predicted loss", table))
        figures.append(Figure("backtest", "Backtest: the law fitted on the smaller sizes, extrapolated "
                              "(dashed) to the held-out largest size (hollow diamonds).",
                              _png(plot_backtest(bt))))
        figures.append(Figure("backtest_parity", f"Backtest, run by run: predicted against actual loss of the "
                              f"held-out runs with their {pct} new-run intervals; dashed: predicted = actual.",
                              _png(plot_backtest_parity(bt))))
    return Section("fit", tuple(paragraphs), tuple(warnings), tuple(tables), tuple(figures))
