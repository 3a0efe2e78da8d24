"""The answer section: the planner's answer for the first target, with its trust grade."""

from __future__ import annotations

import math

import pandas as pd

from scalefit.flops import training_flops
from scalefit.io import json_safe
from scalefit.report.document import Section, Table, _g, _records
from scalefit.study import RunsFit


def answer_section(study: RunsFit, target: tuple[float, float], hparams: dict | None,
                    hparams_why: str | None) -> tuple[Section, dict]:
    """The planner's answer for the first target: its loss with the planning interval, the compute-optimal
    N and D at its budget, LR and batch size, and a trust grade with its reasons (scalefit.trust)."""
    from scalefit.allocation import joint_law_allocation
    from scalefit.trust import trust_grade

    r = study.result
    pct = f"{100 * r.level:g} %"
    n, d = target
    c = training_flops(n, d)
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
