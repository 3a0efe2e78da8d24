"""The extrapolations section: predicted loss of planned runs with intervals and their distance beyond the data.

:func:`target_table` predicts from the fitted law (no fitting); the section draws the table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalefit.flops import training_flops
from scalefit.report.document import Figure, Section, Table, _png
from scalefit.study import RunsFit


def default_targets(study: RunsFit) -> list[tuple[float, None]]:
    """Planned sizes for the extrapolation table: the next three powers of ten of N above the largest size
    trained, each at its compute-optimal D (``None``)."""
    top = math.floor(math.log10(study.points["params"].max())) + 1
    return [(10.0**k, None) for k in range(top, top + 3)]


def _optimal_tokens(result, params: float) -> float:
    """D at which ``params`` is compute-optimal under a fitted Chinchilla law (N_opt(C) inverted)."""
    from scalefit.laws import Chinchilla

    p = result.params
    scale = float(Chinchilla.optimal_allocation(p, training_flops(1.0, 1.0))["params"].iloc[0])  # N_opt at N·D = C/6 = 1
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
        flops=training_flops(frame["params"], frame["tokens"]), tokens_per_param=frame["tokens"] / frame["params"],
        loss=confidence["mean"], mean_lo=confidence["lo"], mean_hi=confidence["hi"],
        run_lo=prediction["lo"], run_hi=prediction["hi"],
        N_beyond_decades=np.maximum(np.log10(frame["params"] / n_max), 0.0),
        D_beyond_decades=np.maximum(np.log10(frame["tokens"] / d_max), 0.0),
    )


def extrapolation_section(study: RunsFit, targets: pd.DataFrame, user_given: bool) -> Section:
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
