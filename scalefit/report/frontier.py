"""The frontier section: compute-optimal N_opt(C), D_opt(C) by Approaches 1–3 and the allocation table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalefit.flops import training_flops
from scalefit.report.document import Figure, Section, Table, _g, _png, _sentence
from scalefit.study import RunsFit


def _exponent_row(approach: str, a: float, a_interval, b: float, b_interval, budgets: int) -> dict:
    return {"approach": approach, "a (N_opt ∝ C^a)": a, "a lo": a_interval[0], "a hi": a_interval[1],
            "b (D_opt ∝ C^b)": b, "b lo": b_interval[0], "b hi": b_interval[1], "budgets": budgets}


def frontier_section(study: RunsFit) -> Section:
    """The allocations of ``study`` (approach 3 from the joint law, approaches 1 and 2), drawn."""
    from scalefit.plots import plot_frontier, plot_isoflops

    allocation = study.allocation  # None when the joint law failed: Approaches 1 and 2 are shown alone
    compute = training_flops(study.points["params"], study.points["tokens"])
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
