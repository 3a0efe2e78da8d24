"""``scalefit fit --out``: ``fit.json``, a markdown report and the plots of one fit."""

from __future__ import annotations

from pathlib import Path

from scalefit.flops import training_flops
from scalefit.io import write_json
from scalefit.report.document import _markdown_table, _md
from scalefit.study import RunsFit


def fit_markdown(study: RunsFit, images: dict[str, str]) -> str:
    """The fit as a markdown report: data, estimates with intervals, backtest, allocation, plots."""
    r = study.result
    table = r.intervals.assign(estimate=r.params)[["estimate", "lo", "hi"]].reset_index(names="parameter")
    parts = [
        f"# scalefit fit: {r.law.name}",
        (f"Source {_md(study.source)}: {len(study.points)} points ({study.points_rule}) from "
         f"{study.points['params'].nunique()} model sizes. FLOPs convention: {r.flops_convention or 'n/a'}."),
        *(f"- excluded: {n} {_md(what)}" for what, n in study.excluded.items()),
        "## Estimates",
        (f"Objective {r.objective:.6g} ({r.loss}); {r.n_starts} starts, {r.n_converged} converged, "
         f"{r.n_best_basin} in the best basin; success: **{r.success}** ({r.message}). "
         f"Intervals: {r.interval_method}, {100 * r.level:.0f}%."),
        _markdown_table(table),
        f"AIC {r.aic():.2f}, BIC {r.bic():.2f} (Gaussian on log residuals).",
    ]
    if study.backtest is not None:
        parts += ["## Backtest (extrapolation to held-out sizes)", study.backtest.headline(),
                  _markdown_table(study.backtest.predictions.drop(columns=["lo", "hi"]))]
    if study.allocation is not None:
        columns = ["flops", "params", "params_lo", "params_hi", "tokens", "tokens_lo", "tokens_hi",
                   "tokens_per_param"]
        parts += ["## Compute-optimal allocation", study.allocation.summary().splitlines()[0],
                  _markdown_table(study.allocation.table[columns])]
    parts += [str(a) for a in study.approaches]
    parts += [f"- {approach}: not computed: {why}" for approach, why in study.approaches_missing]
    if study.notes:
        parts += ["## Notes", *(f"- {_md(n)}" for n in study.notes)]
    parts += ["## Plots", *(f"![{name}]({path})" for name, path in images.items())]
    return "\n\n".join(parts) + "\n"


def write_fit_outputs(study: RunsFit, out: str | Path) -> dict[str, Path]:
    """Write ``fit.json``, ``report.md`` and the plots of a fit into the folder ``out``; return the paths.

    Plots: ``fit`` (loss against the law's last input, with bands), ``fit_params`` (a joint law against N),
    ``residuals``, ``bootstrap`` (with draws), ``backtest`` (with a backtest) and ``allocation`` (the
    compute-optimal frontier, for the joint law).
    """
    from scalefit import plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fit.json": out / "fit.json"}
    write_json(paths["fit.json"], study.to_dict())
    result = study.result
    images = {"fit": plots.plot_fit(result), "residuals": plots.plot_residuals(result)}
    if len(result.law.inputs) == 2:
        images["fit_params"] = plots.plot_fit(result, against=result.law.inputs[0])
    if len(result.draws) and result.draws["converged"].any():
        images["bootstrap"] = plots.plot_bootstrap(result)
    if study.backtest is not None:
        images["backtest"] = plots.plot_backtest(study.backtest)
    if study.allocation is not None:
        compute = training_flops(study.points["params"], study.points["tokens"])
        images["allocation"] = plots.plot_frontier(study.allocation, study.approaches,
                                                   data_range=(compute.min(), compute.max()))
    for name, figure in images.items():
        paths[f"{name}.png"] = out / f"{name}.png"
        plots.save_and_close(figure, paths[f"{name}.png"])
    paths["report.md"] = out / "report.md"
    paths["report.md"].write_text(fit_markdown(study, {name: f"{name}.png" for name in images}))
    return paths
