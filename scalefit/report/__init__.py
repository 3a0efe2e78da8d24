"""Reports: every analysis a runs table supports, written as HTML, markdown, JSON and PNG plots.

``scalefit report RUNS --out DIR`` (or :func:`build_report` then :meth:`Report.write`) writes
``report.html`` (self-contained: images embedded, no network), ``report.md``, ``results.json`` and the
PNGs. Sections, each present only when the data supports it (:attr:`Report.absent` says why one is not):

``data``            runs, model sizes, token range, runs excluded and why, every training curve;
``fit``             the joint law L(N, D) = E + A/N^α + B/D^β with bootstrap intervals, residuals, the
                    parameters' joint bootstrap distribution and a backtest on the largest size;
``frontier``        compute-optimal N_opt(C), D_opt(C) by Approaches 1–3 and an allocation table;
``extrapolations``  predicted loss of planned (N, D) with intervals and the distance beyond the data;
``tasks``           downstream accuracy per task at the first planned run (two steps: loss law → sigmoid),
                    only when the table has task metrics;
``hparams``         optimal LR and batch-size laws from the table's LR sweeps, and recommendations;
``rl``              the RL post-training law k(N) = K_max / (1 + N0/N), when an RL table is given.

One module per section, each a function that takes results and draws them; :mod:`scalefit.report.build`
runs the analyses once and assembles the sections; :mod:`scalefit.report.document` renders them.
In a notebook a :class:`Report` shows itself as its HTML, and :meth:`Report.tables` gives every table as
a DataFrame. ``scalefit fit --out DIR`` writes the smaller :func:`write_fit_outputs` (``fit.json``,
``report.md``, plots).
"""

from scalefit.report.build import TASK_BOOTSTRAP, build_report, has_task_metrics, lr_sweep_table, task_scaling
from scalefit.report.document import (
    OPTIONAL_SECTION_TITLES,
    REPORT_SCHEMA_VERSION,
    SECTION_TITLES,
    Figure,
    Report,
    Section,
    Table,
    section_title,
)
from scalefit.report.extrapolation import default_targets, target_table
from scalefit.report.fit_outputs import fit_markdown, write_fit_outputs
from scalefit.report.hparams import MIN_LRS_PER_GROUP, MIN_SWEPT_GROUPS

__all__ = [
    "MIN_LRS_PER_GROUP", "MIN_SWEPT_GROUPS", "OPTIONAL_SECTION_TITLES", "REPORT_SCHEMA_VERSION", "SECTION_TITLES",
    "TASK_BOOTSTRAP", "Figure", "Report", "Section", "Table", "build_report", "default_targets", "fit_markdown",
    "has_task_metrics", "lr_sweep_table", "section_title", "target_table", "task_scaling", "write_fit_outputs",
]
