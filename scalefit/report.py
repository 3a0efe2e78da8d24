"""Reports: every analysis a runs table supports, written as HTML, markdown, JSON and PNG plots.

``scalefit report RUNS --out DIR`` (or :func:`build_report` then :meth:`Report.write`) writes
``report.html`` (self-contained: images embedded, no network), ``report.md``, ``results.json`` and the
PNGs. Sections, each present only when the data supports it (:attr:`Report.absent` says why one is not):

``data``            runs, model sizes, token range, runs excluded and why, every training curve;
``fit``             the joint law L(N, D) = E + A/N^α + B/D^β with bootstrap intervals, residuals, the
                    parameters' joint bootstrap distribution and a backtest on the largest size;
``frontier``        compute-optimal N_opt(C), D_opt(C) by Approaches 1–3 and an allocation table;
``extrapolations``  predicted loss of planned (N, D) with intervals and the distance beyond the data;
``hparams``         optimal LR and batch-size laws from the table's LR sweeps, and recommendations;
``rl``              the RL post-training law k(N) = K_max / (1 + N0/N), when an RL table is given.

In a notebook a :class:`Report` shows itself as its HTML, and :meth:`Report.tables` gives every table as
a DataFrame. ``scalefit fit --out DIR`` writes the smaller :func:`write_fit_outputs` (``fit.json``,
``report.md``, plots).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.io import dumps, json_safe, write_json
from scalefit.study import RunsFit

REPORT_SCHEMA_VERSION = 1
SECTION_TITLES = {
    "answer": "The answer first",
    "data": "Data",
    "fit": "Joint-law fit",
    "frontier": "Compute-optimal frontier and allocation",
    "extrapolations": "Extrapolations",
    "hparams": "Learning rate and batch size",
    "rl": "RL post-training",
}
#: A group (N, token budget) holds an LR sweep when it tried this many learning rates or more ...
MIN_LRS_PER_GROUP = 3
#: ... and the LR/BS laws need this many such groups.
MIN_SWEPT_GROUPS = 3


# --- the document model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table of a report: ``key`` (its HTML id), a caption, and the numbers (formatted when rendered)."""

    key: str
    caption: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    """A rendered plot: ``key`` (its PNG file stem), a caption and the PNG bytes."""

    key: str
    caption: str
    png: bytes = field(repr=False)


@dataclass(frozen=True)
class Section:
    """One section: paragraphs, warnings (what, why it matters, what to do), tables and figures."""

    key: str
    paragraphs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()

    @property
    def title(self) -> str:
        return SECTION_TITLES[self.key]


@dataclass(frozen=True)
class Report:
    """Everything ``scalefit report`` found in a runs table.

    Attributes
    ----------
    source
        The runs table (and RL table) the report was made from.
    sections
        The sections present, in :data:`SECTION_TITLES` order.
    absent
        Section key → why that section is not in the report.
    results
        The ``results.json`` document: every number of every section.
    """

    source: str
    sections: tuple[Section, ...]
    absent: dict[str, str]
    results: dict = field(repr=False)

    def section(self, key: str) -> Section:
        """The section ``key`` (see :data:`SECTION_TITLES`); KeyError with the reason when it is absent."""
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(f"no {key!r} section: {self.absent.get(key, 'no such section')}")

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by key, as numbers (for a notebook)."""
        return {table.key: table.frame for section in self.sections for table in section.tables}

    def to_markdown(self) -> str:
        """The report in markdown; figures refer to ``<key>.png`` beside it."""
        contents = [f"{n}. [{s.title}](#{n}-{s.title.lower().replace(' ', '-')})"
                    for n, s in enumerate(self.sections, 1)]
        parts = [f"# scalefit report: {_md(self.source)}", "\n".join(contents)]
        for number, section in enumerate(self.sections, 1):
            parts.append(f"## {number}. {section.title}")
            parts += [_md(paragraph) for paragraph in section.paragraphs]
            parts += [f"> **Warning.** {_md(warning)}" for warning in section.warnings]
            for table in section.tables:
                parts += [f"**{_md(table.caption)}**", _markdown_table(_display(table.frame))]
            parts += [f"![{_md(f.caption)}]({f.key}.png)\n\n*{_md(f.caption)}*" for f in section.figures]
        if self.absent:
            parts.append("## Sections not shown")
            parts += [f"- **{SECTION_TITLES[key]}**: {_md(why)}" for key, why in self.absent.items()]
        return "\n\n".join(parts) + "\n"

    def to_html(self) -> str:
        """The report as one self-contained HTML page (images as data URIs, no external resources)."""
        contents = "".join(f"<li><a href='#{s.key}'>{_esc(s.title)}</a></li>" for s in self.sections)
        body = [(f"<header><h1>scalefit report</h1><p class='source'>{_esc(self.source)}</p>"
                f"<nav><ol>{contents}</ol></nav></header>")]
        sections = [_section_html(number, section) for number, section in enumerate(self.sections, 1)]
        first = 1 if self.sections and self.sections[0].key == "answer" else 0  # the answer stays on top
        body += sections[:first]
        if self.absent:
            items = "".join(f"<li><strong>{_esc(SECTION_TITLES[key])}</strong>: {_esc(why)}</li>"
                            for key, why in self.absent.items())
            body.append(f"<aside id='absent'><h2>Sections not shown</h2><ul>{items}</ul></aside>")
        body += sections[first:]
        return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>scalefit report: {_esc(self.source)}</title><style>{_CSS}</style></head>"
                f"<body>{''.join(body)}</body></html>\n")

    def _repr_html_(self) -> str:
        return self.to_html()

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write ``report.html``, ``report.md``, ``results.json``, the PNGs and, with a fit, the ``fit.json``
        that ``scalefit fit --out`` writes (same name, same schema: ``predict``/``allocate`` read it), into
        the folder ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for section in self.sections:
            for figure in section.figures:
                paths[f"{figure.key}.png"] = out / f"{figure.key}.png"
                paths[f"{figure.key}.png"].write_bytes(figure.png)
        documents = {"report.html": self.to_html(), "report.md": self.to_markdown(),
                     "results.json": dumps(self.results)}
        if "fit" in self.results:
            documents["fit.json"] = dumps(self.results["fit"])
        for name, text in documents.items():
            paths[name] = out / name
            paths[name].write_text(text, encoding="utf-8")
        return paths


# --- rendering ------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1150px;margin:0 auto;
padding:1.5em;color:#1a1a1a;background:#fff;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
.source{color:#555;font-family:ui-monospace,monospace}
nav ol{columns:2;padding-left:1.4em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.86em;display:block;overflow-x:auto;
max-width:100%}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;white-space:nowrap}
th{background:#eef4f9}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.9em}
.warning{border-left:4px solid #D55E00;background:#fdf1e9;padding:.5em .8em;margin:.6em 0}
#absent{border-left:4px solid #E69F00;background:#fdf7e6;padding:.2em 1em;margin-top:1em}
"""


def _esc(text) -> str:
    return html.escape(str(text))


def _section_html(number: int, section: Section) -> str:
    parts = [f"<section id='{section.key}'><h2>{number}. {_esc(section.title)}</h2>"]
    parts += [f"<p>{_esc(paragraph)}</p>" for paragraph in section.paragraphs]
    parts += [f"<div class='warning'><strong>Warning.</strong> {_esc(w)}</div>" for w in section.warnings]
    for table in section.tables:
        shown = _display(table.frame)
        head = "".join(f"<th scope='col'>{_esc(c)}</th>" for c in shown.columns)
        rows = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>"
                       for row in shown.itertuples(index=False))
        parts.append(f"<table id='{table.key}'><caption>{_esc(table.caption)}</caption>"
                     f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    for figure in section.figures:
        data = base64.b64encode(figure.png).decode("ascii")
        parts.append(f"<figure id='fig-{figure.key}'><img alt='{_esc(figure.caption)}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{_esc(figure.caption)}</figcaption>"
                     "</figure>")
    return "".join(parts) + "</section>"


def _cell(value) -> str:
    """One table cell: 4 significant digits for floats, '–' for missing numbers."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}" if math.isfinite(value) else "–"
    if value is None or value is pd.NA:
        return "–"
    return str(value)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.map(_cell) if len(frame) else frame.astype(str)


def _md(text) -> str:
    """Text from the data (run ids, file names, messages) made inert in markdown: markdown renderers pass raw
    HTML through, so ``<``, ``>`` and ``&`` become entities."""
    return html.escape(str(text), quote=False)


def _md_cell(text) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _markdown_table(frame, float_format: str = "{:.4g}") -> str:
    header = "| " + " | ".join(map(_md_cell, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(float_format.format(v) if isinstance(v, float) else _md_cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _png(figure, dpi: int = 120) -> bytes:
    from scalefit.plots import save_and_close

    buffer = io.BytesIO()
    save_and_close(figure, buffer, dpi=dpi)
    return buffer.getvalue()


def _records(frame: pd.DataFrame) -> list[dict]:
    return json_safe(frame.to_dict(orient="records"))


def _sentence(text: str) -> str:
    """A note as a sentence: capitalised, ending in a full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _g(value: float) -> str:
    return f"{value:.3g}"


def _bounds(interval, k: int) -> float:
    return math.nan if interval is None or interval[k] is None else float(interval[k])


# --- the sections ---------------------------------------------------------------------------------------


def _data_section(runs: pd.DataFrame) -> tuple[Section, dict]:
    from scalefit.plots import plot_runs
    from scalefit.runs import final_points, select

    val = select(runs, status=None, split="val")
    source = runs.attrs.get("source", "runs table")
    if len(val) == 0:  # every row on another split: nothing held out to describe or fit
        splits = sorted(map(str, runs["split"].unique()))
        raise ScalefitInputError(
            f"{source}: no rows on the 'val' split (splits found: {splits}); the report fits held-out loss: "
            "give held-out evaluations split=val, or drop the split column")
    if not np.isfinite(val["loss"].to_numpy(float)).any():  # only runs that blew up (NaN losses kept)
        raise ScalefitInputError(f"{source}: no row has a finite loss (every run diverged or has no loss); "
                                 "the report needs finished runs")
    final = final_points(val)
    ok = (final["status"] == "ok") if "status" in final else pd.Series(True, index=final.index)
    bad = final[~ok]
    aggregates = {"runs": ("run_id", "size"), "ok_runs": ("ok", "sum"), "D_min": ("tokens", "min"),
                  "D_max": ("tokens", "max"), "best_final_loss": ("loss", "min")}
    if "lr" in final:
        aggregates["learning_rates"] = ("lr", "nunique")
    per_size = (final.assign(ok=ok).groupby("params").agg(**aggregates).reset_index()
                .rename(columns={"params": "N"}))
    convention = runs.attrs.get("flops_convention", "n/a")
    n_other_rows = len(runs) - len(val)
    paragraphs = [
        (f"{final['run_id'].nunique()} runs ({len(runs)} rows, one per run and evaluation) at "
         f"{final['params'].nunique()} model sizes, N = {_g(final['params'].min())} to "
         f"{_g(final['params'].max())} non-embedding parameters; final token counts D = "
         f"{_g(final['tokens'].min())} to {_g(final['tokens'].max())}. FLOPs convention: {convention}."),
        ((f"{int(ok.sum())} runs finished with status ok; the {len(bad)} that did not are excluded from "
          "every fit (the LR laws count them as diverged settings)." if len(bad) else
          f"All {int(ok.sum())} runs finished with status ok.")
         + (f" {n_other_rows} rows on splits other than 'val' are not used." if n_other_rows else "")),
    ]
    tables = [Table("data-sizes", "Runs per model size (final points)", per_size)]
    if len(bad):
        columns = [c for c in ("run_id", "params", "tokens", "lr", "batch_size", "status") if c in bad]
        tables.append(Table("data-excluded", "Runs excluded, and why (their status)",
                            bad[columns].rename(columns={"params": "N", "tokens": "D"})))
    figure = Figure("runs", "Validation loss of every run against tokens, coloured by model size.",
                    _png(plot_runs(runs)))
    summary = {
        "n_runs": int(final["run_id"].nunique()), "n_rows": len(runs),
        "n_sizes": int(final["params"].nunique()),
        "params_range": [float(final["params"].min()), float(final["params"].max())],
        "tokens_range": [float(final["tokens"].min()), float(final["tokens"].max())],
        "flops_convention": convention, "n_ok": int(ok.sum()),
        "excluded_runs": _records(bad[[c for c in ("run_id", "status") if c in bad]]),
        "per_size": _records(per_size),
    }
    return Section("data", tuple(paragraphs), (), tuple(tables), (figure,)), summary


def _fit_section(study: RunsFit) -> Section:
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


def _exponent_row(approach: str, a: float, a_interval, b: float, b_interval, budgets: int) -> dict:
    return {"approach": approach, "a (N_opt ∝ C^a)": a, "a lo": a_interval[0], "a hi": a_interval[1],
            "b (D_opt ∝ C^b)": b, "b lo": b_interval[0], "b hi": b_interval[1], "budgets": budgets}


def _frontier_section(study: RunsFit) -> Section:
    from scalefit.plots import plot_frontier, plot_isoflops

    allocation = study.allocation  # None when the joint law failed: Approaches 1 and 2 are shown alone
    compute = 6.0 * study.points["params"] * study.points["tokens"]
    pct = f"{100 * (study.result.level if allocation is None else allocation.level):.0f}%"
    exponents, tables = [], []
    if allocation is not None:
        a, (a_lo, a_hi) = allocation.params_exponent, allocation.params_exponent_interval
        exponents.append(_exponent_row("approach 3 (joint law)", a, (a_lo, a_hi), 1 - a, (1 - a_hi, 1 - a_lo),
                                       len(allocation.table)))
        t = allocation.table
        tables.append(Table("frontier-allocation", f"Compute-optimal allocation (approach 3) with {pct} "
                            "bootstrap intervals", pd.DataFrame({
                                "C [FLOP]": t["flops"], "N_opt": t["params"], f"N {pct} lo": t["params_lo"],
                                f"N {pct} hi": t["params_hi"], "D_opt": t["tokens"], f"D {pct} lo": t["tokens_lo"],
                                f"D {pct} hi": t["tokens_hi"], "D/N": t["tokens_per_param"],
                                "beyond data [decades of C]": np.maximum(np.log10(t["flops"] / compute.max()),
                                                                         0.0)})))
    exponents += [_exponent_row(x.approach, x.params_law.exponent, x.params_law.exponent_interval,
                                x.tokens_law.exponent, x.tokens_law.exponent_interval, x.params_law.n_points)
                  for x in study.approaches]
    paragraphs = [
        ("Three estimates of how to split a compute budget C = 6ND between model size and data (Hoffmann "
         "et al. 2022, §3): approach 1 takes the lowest final loss at each budget across sizes, approach 2 "
         "fits a parabola in log N to each IsoFLOP profile, approach 3 uses the joint law's closed form "
         "N_opt = G (C/6)^(β/(α+β)). Agreement between them is evidence that the allocation is not an "
         "artefact of one method."),
        (f"The runs span C = {_g(compute.min())} to {_g(compute.max())} FLOPs; allocations beyond that are "
         "extrapolations of the joint law (dashed in the plots)."),
    ]
    warnings = [_sentence(note) for x in study.approaches for note in x.notes]
    warnings += [_sentence(note) for note in study.notes if note.startswith("approach")]
    warnings += [_sentence(f"{approach} is missing: {why}") for approach, why in study.approaches_missing]
    figures = [Figure("allocation", f"N_opt(C) and D_opt(C) by the three approaches, with approach 3's {pct} "
                      "band, and their exponents with 95% intervals.",
                      _png(plot_frontier(allocation, study.approaches,
                                         data_range=(compute.min(), compute.max()))))]
    isoflop = [x for x in study.approaches if x.approach.startswith("approach 2")]
    if isoflop:
        figures.append(Figure("isoflops", "IsoFLOP profiles: final loss against N per budget, their "
                              "parabolas and minima.", _png(plot_isoflops(isoflop[0]))))
    tables.insert(0, Table("frontier-exponents", "Allocation exponents by approach (95% intervals)",
                           pd.DataFrame(exponents)))
    return Section("frontier", tuple(paragraphs), tuple(warnings), tuple(tables), tuple(figures))


def default_targets(study: RunsFit) -> list[tuple[float, None]]:
    """Planned sizes for the extrapolation table: the next three powers of ten of N above the largest size
    trained, each at its compute-optimal D (``None``)."""
    top = math.floor(math.log10(study.points["params"].max())) + 1
    return [(10.0**k, None) for k in range(top, top + 3)]


def _optimal_tokens(result, params: float) -> float:
    """D at which ``params`` is compute-optimal under a fitted Chinchilla law (N_opt(C) inverted)."""
    from scalefit.laws import Chinchilla

    p = result.params
    scale = float(Chinchilla.optimal_allocation(p, 6.0)["params"].iloc[0])  # N_opt at C/6 = 1
    exponent = p["beta"] / (p["alpha"] + p["beta"])
    return float((params / scale) ** (1.0 / exponent) / params)


def target_table(study: RunsFit, targets) -> pd.DataFrame:
    """Predicted loss of planned runs ``targets`` (``(N, D)`` pairs, D None for compute-optimal).

    Columns: ``params``, ``tokens``, ``flops`` (6ND), ``tokens_per_param``, ``loss``, the interval of the
    mean ``mean_lo``/``mean_hi`` and of a new run ``run_lo``/``run_hi`` at the fit's level (NaN without
    bootstrap draws), and
    ``N_beyond_decades``/``D_beyond_decades``: log10 of the distance beyond the largest N and D fitted.
    """
    r = study.result
    rows = [(float(n), _optimal_tokens(r, n) if d is None else float(d)) for n, d in targets]
    frame = pd.DataFrame(rows, columns=["params", "tokens"])
    if len(r.draws) and r.draws["converged"].any():
        confidence = r.predict(frame, interval="confidence", level=r.level)
        prediction = r.predict(frame, interval="prediction", level=r.level)
    else:  # no bootstrap: the point prediction only
        confidence = prediction = r.predict(frame, interval=None).assign(lo=math.nan, hi=math.nan)
    n_max, d_max = study.points["params"].max(), study.points["tokens"].max()
    return frame.assign(
        flops=6.0 * frame["params"] * frame["tokens"], tokens_per_param=frame["tokens"] / frame["params"],
        loss=confidence["mean"], mean_lo=confidence["lo"], mean_hi=confidence["hi"],
        run_lo=prediction["lo"], run_hi=prediction["hi"],
        N_beyond_decades=np.maximum(np.log10(frame["params"] / n_max), 0.0),
        D_beyond_decades=np.maximum(np.log10(frame["tokens"] / d_max), 0.0),
    )


def _extrapolation_section(study: RunsFit, targets: pd.DataFrame, user_given: bool) -> Section:
    from scalefit.plots import plot_predictions

    r = study.result
    pct = f"{100 * r.level:.0f}%"
    which = ("the sizes asked for" if user_given
             else "the next three powers of ten of N above the largest size")
    paragraphs = [(f"Predicted final loss of planned runs at {which} (D as given, else the compute-optimal "
                   f"D for that N under the fitted law), with the {pct} interval of the mean loss and the "
                   f"{pct} interval of a single new run (the law's bootstrap spread plus the observed "
                   "scatter of runs around it; in-sample residuals, so slightly optimistic).")]
    warnings = []
    sizes = np.sort(study.points["params"].unique())
    bt = study.backtest
    if bt is not None:
        tested = math.log10(sizes[-1] / sizes[-1 - bt.holdout_largest])
        paragraphs.append(f"How far to trust them: the backtest extrapolated {tested:.2f} decades in N with "
                          f"mean |relative error| {bt.mean_abs_rel_error:.2%}; nothing here tests the law "
                          "further out.")
        far = targets[targets["N_beyond_decades"] > 3 * max(tested, 0.1)]
        if len(far):
            warnings.append(f"{len(far)} target(s) lie more than 3× the backtested distance beyond the "
                            f"largest size (up to {far['N_beyond_decades'].max():.1f} decades of N): their "
                            "intervals assume the law holds out there, which the data cannot check. Train a "
                            "larger size to test it, or read these numbers as rough.")
    else:
        warnings.append("No backtest (fewer than 4 sizes): nothing measures how well this law extrapolates. "
                        "Add model sizes before trusting these numbers.")
    shown = targets.rename(columns={
        "params": "N", "tokens": "D", "flops": "C [FLOP]", "tokens_per_param": "D/N",
        "mean_lo": f"mean {pct} lo", "mean_hi": f"mean {pct} hi", "run_lo": f"run {pct} lo",
        "run_hi": f"run {pct} hi", "N_beyond_decades": "N beyond data [decades]",
        "D_beyond_decades": "D beyond data [decades]"})
    figure = Figure("extrapolations", f"Predicted loss of the planned runs (stars) against compute with "
                    f"{pct} intervals of the mean (thick) and of a run (thin), and the compute-optimal loss, "
                    "dashed beyond the data.", _png(plot_predictions(r, targets)))
    return Section("extrapolations", tuple(paragraphs), tuple(warnings),
                   (Table("extrapolations-table", "Predicted loss of planned runs", shown),), (figure,))


def lr_sweep_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The final point of every run in a group that holds an LR sweep, and ''; or an empty table and why.

    A group is a model size and token budget (the ``token_budget`` column when present, since runs at
    different batch sizes end a few tokens apart; else ``tokens``); it holds a sweep when its runs tried
    at least :data:`MIN_LRS_PER_GROUP` learning rates. The LR/BS laws need :data:`MIN_SWEPT_GROUPS` such
    groups; groups without a sweep are left out, as their one LR says nothing about the optimum.
    """
    from scalefit.hyperparams import final_losses

    if "lr" not in runs:
        return pd.DataFrame(), ("the runs table has no lr column, so there is no learning-rate sweep to fit "
                                "laws to. Record each run's peak LR in an lr column to get this section.")
    final = final_losses(runs)
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


def _hparams_section(runs: pd.DataFrame, targets: list[tuple[float, float]], bootstrap: int,
                     seed: int) -> tuple[Section, dict]:
    from scalefit.hyperparams import fit_hparams, recommend
    from scalefit.plots import plot_hparam_laws, plot_lr_landscapes

    swept, reason = lr_sweep_table(runs)
    if reason:
        raise ScalefitInputError(reason)
    laws = fit_hparams(swept, n_bootstrap=bootstrap, seed=seed, source=str(runs.attrs.get("source", "runs")))
    optima = laws.optima
    pct = f"{100 * optima.level:.0f}%"
    groups = optima.groups.rename(columns={"params": "N", "tokens": "D"})[[
        "group", "N", "D", "n_runs", "n_excluded", "best_loss", "n_plateau", "opt_lr", "opt_lr_lower",
        "opt_lr_upper", "opt_batch_size", "method", "warning"]]
    law_rows = [{"law": law.name, "formula": law.formula, "parameter": name, "estimate": value,
                 f"{pct} lo": _bounds(law.intervals.get(name), 0),
                 f"{pct} hi": _bounds(law.intervals.get(name), 1), "groups": law.n_groups}
                for law in laws.usable.values() for name, value in law.params.items()]
    advice = [recommend(n, d, laws) for n, d in targets]
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


def _rl_section(rl_runs: pd.DataFrame, bootstrap: int, seed: int) -> tuple[Section, dict]:
    from scalefit.errors import FitError
    from scalefit.plots import plot_rl_curves, plot_rl_efficiency
    from scalefit.rl import fit_rl

    result = fit_rl(rl_runs, bootstrap=bootstrap, seed=seed)
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
    try:
        if n_sizes < 4:
            raise FitError(f"{n_sizes} sizes; holding the largest out needs 4 or more")
        backtest = fit_rl(rl_runs, bootstrap=0, seed=seed, protocol="holdout-largest:1")
    except FitError as err:
        warnings.append(f"No backtest ({err}): nothing measures how well k(N) extrapolates to a larger size. "
                        "Add RL runs at more sizes.")
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


# --- building -------------------------------------------------------------------------------------------


def _answer_section(study: RunsFit, target: tuple[float, float], hparams: dict | None,
                    hparams_why: str | None) -> tuple[Section, dict]:
    """The planner's answer for the first target: its loss with the planning interval, the compute-optimal
    N and D at its budget, LR and batch size, and a trust grade with its reasons (scalefit.trust)."""
    from scalefit.allocation import joint_law_allocation
    from scalefit.trust import trust_grade

    r = study.result
    pct = f"{100 * r.level:g} %"
    n, d = target
    c = 6.0 * n * d
    frame = r.predict(pd.DataFrame({"params": [n], "tokens": [d]}))
    row = frame.iloc[0]
    ranges = {"params": study.points["params"].max(), "tokens": study.points["tokens"].max()}
    decades = max(0.0, math.log10(n / ranges["params"]), math.log10(d / ranges["tokens"]))
    plan_known = math.isfinite(row.get("plan_lo", math.nan)) and math.isfinite(row.get("plan_hi", math.nan))
    width = (row["plan_hi"] - row["plan_lo"]) / row["mean"] if plan_known else None
    grade = trust_grade(study, decades, width)
    rows = [{"quantity": "target run", "value": f"N = {_g(n)}, D = {_g(d)}, C = {_g(c)}",
             f"{pct} interval": "", "note": f"{decades:.2f} decades beyond the data"}]
    interval = f"[{_g(row['plan_lo'])}, {_g(row['plan_hi'])}] planning" if plan_known else \
        (f"[{_g(row['mean_lo'])}, {_g(row['mean_hi'])}] mean only" if "mean_lo" in row else "")
    rows.append({"quantity": "loss", "value": _g(row["mean"]), f"{pct} interval": interval,
                 "note": "planning: spread + run scatter + extrapolation"})
    if r.law.name == "chinchilla" and r.success:
        optimum = joint_law_allocation(r, [c]).table.iloc[0]
        rows.append({"quantity": "compute-optimal N at this C", "value": _g(optimum["params"]),
                     f"{pct} interval": f"[{_g(optimum['params_lo'])}, {_g(optimum['params_hi'])}]",
                     "note": f"D_opt = {_g(optimum['tokens'])} [{_g(optimum['tokens_lo'])}, "
                             f"{_g(optimum['tokens_hi'])}]"})
    advice = (hparams or {}).get("recommendations") or []
    if advice:
        first = advice[0]
        lr_interval, bs_interval = first.get("lr_interval") or [None, None], first.get("batch_size_interval")
        rows.append({"quantity": "peak learning rate", "value": _g(first["lr"]),
                     f"{pct} interval": (f"[{_g(lr_interval[0])}, {_g(lr_interval[1])}]"
                                         if None not in lr_interval else ""),
                     "note": "LR law of this table"})
        if first.get("batch_size_tokens") is not None:
            rows.append({"quantity": "batch size [tokens]", "value": _g(first["batch_size_tokens"]),
                         f"{pct} interval": (f"[{_g(bs_interval[0])}, {_g(bs_interval[1])}]"
                                             if bs_interval and None not in bs_interval else ""),
                         "note": "from the batch-size law"})
    else:
        rows.append({"quantity": "peak learning rate, batch size", "value": "—", f"{pct} interval": "",
                     "note": f"no LR/batch-size law from this table: {hparams_why or 'see its section'}"})
    rows.append({"quantity": "trust grade", "value": f"{grade.grade}: {grade.meaning}", f"{pct} interval": "",
                 "note": f"{len(grade.reasons)} reason(s) above" if grade.reasons else "every check passed"})
    paragraphs = (f"For the planned run N = {_g(n)}, D = {_g(d)}: loss {_g(row['mean'])} "
                  + (f"(planning {interval.split(' planning')[0]})" if plan_known else "")
                  + f"; trust grade {grade.grade} ({grade.meaning}). The sections below show where each number "
                  "comes from.",)
    paragraphs += tuple(f"Grade {grade.grade} because {reason}." for reason in grade.reasons)
    table = Table("answer-table", f"The answer for the first planned run ({pct} intervals)", pd.DataFrame(rows))
    results = {"target": {"params": n, "tokens": d, "flops": c}, "decades_beyond": decades,
               "loss": json_safe(row.to_dict()), "trust": grade.to_dict(), "rows": _records(pd.DataFrame(rows))}
    return Section("answer", paragraphs, (), (table,)), results


def build_report(runs: pd.DataFrame | str | Path, *, rl_runs: pd.DataFrame | str | Path | None = None,
                 targets=None, budgets=None, bootstrap: int = 1000, hparam_bootstrap: int = 1000,
                 rl_bootstrap: int = 200, seed: int = 0, columns=None, flops_convention: str | None = None,
                 progress: bool = False) -> Report:
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
    bootstrap, hparam_bootstrap, rl_bootstrap
        Bootstrap refits of the joint law, of the LR/BS laws and of the RL law.
    seed
        Seeds every bootstrap.
    columns, flops_convention
        As :func:`scalefit.runs.load_runs`.
    progress
        Show a progress bar over the sections (stderr).

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

    data, results["data"] = _data_section(runs)
    done(data)
    try:
        study = fit_runs(runs, budgets=budgets, bootstrap=bootstrap, seed=seed)
    except ScalefitInputError as err:
        study = None
        for key in ("fit", "frontier", "extrapolations"):
            done(key=key, why=f"the joint law could not be fitted: {err}")
    if study is not None:
        results["fit"] = study.to_dict()
        done(_fit_section(study))
        if study.allocation is not None or study.approaches:
            done(_frontier_section(study))
        else:
            done(key="frontier", why="the joint-law fit did not converge, so it gives no compute-optimal "
                                     "allocation; " + "; ".join(f"{a}: {why}" for a, why in study.approaches_missing))
        if study.result.success:
            table = target_table(study, targets or default_targets(study))
            results["extrapolations"] = _records(table)
            done(_extrapolation_section(study, table, user_given=bool(targets)))
        else:
            done(key="extrapolations", why="the joint-law fit did not converge: its predictions would mean "
                                           "nothing.")
    planned = [(row["params"], row["tokens"]) for row in results.get("extrapolations", [])]
    if not planned:  # no fit to say where to go: advise for the largest run trained
        planned = [(results["data"]["params_range"][1], results["data"]["tokens_range"][1])]
    try:
        section, results["hparams"] = _hparams_section(runs, planned, hparam_bootstrap, seed)
        done(section)
    except ScalefitInputError as err:
        done(key="hparams", why=str(err))
    if study is not None and study.result.status != "failed" and planned:
        section, results["answer"] = _answer_section(study, planned[0], results.get("hparams"),
                                                     absent.get("hparams"))
        sections.insert(0, section)
        bar.update(1)
    else:
        done(key="answer", why="no fitted law to answer from: see the fit section's reason")
    if rl_runs is None:
        done(key="rl", why="no RL runs table given; pass one with --rl (e.g. --rl data/rl_runs.parquet).")
    else:
        try:
            section, results["rl"] = _rl_section(rl_runs, rl_bootstrap, seed)
            done(section)
        except ScalefitInputError as err:
            done(key="rl", why=f"the RL law could not be fitted: {err}")
    bar.close()
    if rl_source:
        source = f"{source}; RL: {rl_source}"
    results.update({"sections": [s.key for s in sections], "absent": absent})
    return Report(source, tuple(sections), absent, json_safe(results))


# --- scalefit fit --out --------------------------------------------------------------------------------


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
        parts += ["## Backtest (extrapolation to held-out sizes)", study.backtest.summary(),
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
        compute = 6.0 * study.points["params"] * study.points["tokens"]
        images["allocation"] = plots.plot_frontier(study.allocation, study.approaches,
                                                   data_range=(compute.min(), compute.max()))
    for name, figure in images.items():
        paths[f"{name}.png"] = out / f"{name}.png"
        plots.save_and_close(figure, paths[f"{name}.png"])
    paths["report.md"] = out / "report.md"
    paths["report.md"].write_text(fit_markdown(study, {name: f"{name}.png" for name in images}))
    return paths
