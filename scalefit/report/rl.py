"""The RL post-training section: Tan et al. (2025)'s law k(N) = K_max / (1 + N0/N) and its backtest."""

from __future__ import annotations

import pandas as pd

from scalefit.io import json_safe
from scalefit.report.document import Figure, Section, Table, _png, _sentence


def rl_section(result, backtest=None, backtest_error: str | None = None) -> tuple[Section, dict]:
    """The RL law fitted by :func:`scalefit.rl.fit_rl` (``result``) and its backtest on the largest size
    (``backtest``, or why there is none: ``backtest_error``), drawn; the section and its ``results.json``
    part."""
    from scalefit.plots import plot_rl_curves, plot_rl_efficiency

    p, ci = result.params, result.intervals
    pct = f"{100 * result.level:.0f}%"
    n_sizes = len(result.per_size)
    paragraphs = [
        ("Tan et al. (2025)'s law of RL post-training: log L = −k(N) log X + E(N) with k(N) = K_max / "
         f"(1 + N0/N), L = 1 − {result.metric}, X = RL {result.x} (column {result.x_column}), fitted to "
         f"{int((result.points['role'] == 'fit').sum())} evaluations of {n_sizes} sizes, each size weighted "
         "equally."),
        (f"K_max = {p['K_max']:.4g} [{ci.loc['K_max', 'lo']:.4g}, {ci.loc['K_max', 'hi']:.4g}], N0 = "
         f"{p['N0']:.4g} [{ci.loc['N0', 'lo']:.4g}, {ci.loc['N0', 'hi']:.4g}] ({pct}, "
         f"{result.interval_method}); R² = {result.r2:.4f} on L, {result.r2_log:.4f} on log L. Converged: "
         f"{result.fit.success} ({result.fit.message})."),
    ]
    warnings = [_sentence(note) for note in result.notes]
    per_size = result.per_size.reset_index(names="size")
    per_size = per_size[[c for c in ("size", "N", "role", "n_points", "k", "k_lo", "k_hi", "k_free", "E")
                         if c in per_size]]
    tables = [Table("rl-sizes", f"Learning efficiency k per size ({pct} intervals) and each size's own "
                    "slope", per_size)]
    figures = [Figure("rl_curves", "RL test error against X per size, log–log, with the fitted law.",
                      _png(plot_rl_curves(result))),
               Figure("rl_efficiency", "Learning efficiency k per size and the saturation curve k(N).",
                      _png(plot_rl_efficiency(result)))]
    results = {"fit": result.to_dict(), "backtest": None}
    if backtest is None:
        warnings.append(f"No backtest ({backtest_error}): nothing measures how well k(N) extrapolates to a "
                        "larger size. Add RL runs at more sizes.")
    else:
        rows = [{"variant": variant, "RMSE(L)": e["rmse"], "R²": e["r2"],
                 "mean |rel. error| at end": e["rel_error_end"],
                 "max |rel. error| at end": e["rel_error_end_max"], "points": e["n_points"]}
                for variant, e in backtest.heldout_error.items()]
        paragraphs.append("Backtest: the law refitted without the largest size and that size's curve "
                          "predicted. Slope-only takes k(N) from the law and refits the intercept on the "
                          "target's first points (as Tan et al.); full extrapolates the intercept too.")
        tables.append(Table("rl-backtest", "Backtest on the largest size", pd.DataFrame(rows)))
        figures.append(Figure("rl_backtest", "Backtest: the held-out largest size (hollow), slope-only "
                              "(dashed) and full (dotted) predictions.", _png(plot_rl_curves(backtest))))
        results["backtest"] = backtest.to_dict()
    section = Section("rl", tuple(paragraphs), tuple(warnings), tuple(tables), tuple(figures))
    return section, json_safe(results)
