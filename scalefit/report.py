"""Reports: what ``scalefit fit --out DIR`` writes (``fit.json``, ``report.md``, PNG plots)."""

from __future__ import annotations

import json
from pathlib import Path

from scalefit.study import RunsFit


def _markdown_table(frame, float_format: str = "{:.4g}") -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(float_format.format(v) if isinstance(v, float) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def fit_markdown(study: RunsFit, images: dict[str, str]) -> str:
    """The fit as a markdown report: data, estimates with intervals, backtest, allocation, plots."""
    r = study.result
    table = r.intervals.assign(estimate=r.params)[["estimate", "lo", "hi"]].reset_index(names="parameter")
    parts = [
        f"# scalefit fit: {r.law.name}",
        (f"Source `{study.source}`: {len(study.points)} points ({study.points_rule}) from "
        f"{study.points['params'].nunique()} model sizes. FLOPs convention: {r.flops_convention or 'n/a'}."),
        *(f"- excluded: {n} {what}" for what, n in study.excluded.items()),
        "## Estimates",
        (f"Objective {r.objective:.6g} ({r.loss}); {r.n_starts} starts, {r.n_converged} converged, "
        f"{r.n_best_basin} in the best basin; success: **{r.success}** ({r.message}). "
        f"Intervals: {r.interval_method}, {100 * r.level:.0f}%."),
        _markdown_table(table),
        f"AIC {r.aic():.2f}, BIC {r.bic():.2f} (Gaussian on log residuals).",
    ]
    if study.backtest is not None:
        parts += ["## Backtest (extrapolation to held-out sizes)", study.backtest.summary(),
                  _markdown_table(study.backtest.predictions.drop(columns=["lo", "hi"]))]
    if study.allocation is not None:
        columns = ["flops", "params", "params_lo", "params_hi", "tokens", "tokens_lo", "tokens_hi", "tokens_per_param"]
        parts += ["## Compute-optimal allocation", study.allocation.summary().splitlines()[0],
                  _markdown_table(study.allocation.table[columns])]
        parts += [a.summary() for a in study.approaches]
    if study.notes:
        parts += ["## Notes", *(f"- {n}" for n in study.notes)]
    parts += ["## Plots", *(f"![{name}]({path})" for name, path in images.items())]
    return "\n\n".join(parts) + "\n"


def write_fit_outputs(study: RunsFit, out: str | Path) -> dict[str, Path]:
    """Write ``fit.json``, ``report.md`` and the plots of a fit into the folder ``out``; return the paths."""
    from scalefit.plots import plot_allocation, plot_bootstrap, plot_fit, plot_residuals, save_and_close

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fit.json": out / "fit.json"}
    paths["fit.json"].write_text(json.dumps(study.to_dict(), indent=2, allow_nan=False) + "\n")
    images = {"fit": plot_fit(study.result), "residuals": plot_residuals(study.result)}
    if len(study.result.draws):
        images["bootstrap"] = plot_bootstrap(study.result)
    if study.allocation is not None:
        images["allocation"] = plot_allocation(study.allocation, study.approaches)
    for name, figure in images.items():
        paths[f"{name}.png"] = out / f"{name}.png"
        save_and_close(figure, paths[f"{name}.png"])
    paths["report.md"] = out / "report.md"
    paths["report.md"].write_text(fit_markdown(study, {name: f"{name}.png" for name in images}))
    return paths
