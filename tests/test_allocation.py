"""Compute-optimal allocation, Approaches 1 and 2, against the closed form of a known Chinchilla law."""

import json

import numpy as np
import pandas as pd
import pytest

from scalefit.allocation import AllocationResult, approach1, approach2, isoflop_groups
from scalefit.errors import FitError
from scalefit.io import dumps

# A known joint law L = E + A/N^α + B/D^β (Hoffmann et al. 2022, Epoch's refit values).
E, A, B, ALPHA, BETA = 1.82, 482.0, 2085.0, 0.3478, 0.3658
EXPONENT_N = BETA / (ALPHA + BETA)  # N_opt ∝ C^(β/(α+β)) under C = 6ND
EXPONENT_D = ALPHA / (ALPHA + BETA)


def law(n, d):
    return E + A / n**ALPHA + B / d**BETA


def isoflop_table(budgets, n_sizes=9, noise=0.0, seed=0):
    """Final points of runs on IsoFLOP profiles: sizes spread two decades around the true optimum."""
    rng = np.random.default_rng(seed)
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    rows = []
    for c in budgets:
        n_opt = g * (c / 6) ** EXPONENT_N
        for n in n_opt * np.geomspace(0.1, 10, n_sizes):
            d = c / (6 * n)
            loss = law(n, d) * np.exp(noise * rng.standard_normal())
            rows.append({"run_id": f"C{c:.2g}-N{n:.3g}", "params": n, "tokens": d, "loss": loss, "step": 1})
    return pd.DataFrame(rows)


def test_isoflop_groups_split_at_gaps():
    c = np.array([1.0e18, 1.1e18, 0.95e18, 1e19, 1.2e19, 1e20])
    labels = isoflop_groups(c, tolerance_decades=0.1)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2]


def test_isoflop_groups_do_not_chain_through_runs_between_budgets():
    """Three dense budgets with other runs every 0.05 decades between them: chaining 0.1-decade gaps would
    make one budget of everything; density-first windows find the three and leave the rest unlabelled."""
    budgets = np.repeat([18.0, 18.5, 19.0], 8) + np.tile(np.linspace(-0.01, 0.01, 8), 3)
    between = np.arange(18.05, 18.96, 0.05)
    between = between[np.min(np.abs(between[:, None] - [18.0, 18.5, 19.0]), axis=1) > 0.04]
    labels = isoflop_groups(10 ** np.concatenate([budgets, between]), tolerance_decades=0.025, min_runs=4)
    assert labels[:24].tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert (labels[24:] == -1).all()


def test_approach2_recovers_closed_form_exponents():
    result = approach2(isoflop_table(np.geomspace(1e18, 1e22, 5)))
    assert result.params_law.exponent == pytest.approx(EXPONENT_N, abs=0.01)
    assert result.tokens_law.exponent == pytest.approx(EXPONENT_D, abs=0.01)
    lo, hi = result.params_law.exponent_interval
    assert lo <= EXPONENT_N <= hi
    assert len(result.optima) == 5


def test_approach2_excludes_a_budget_whose_profile_does_not_bracket_its_minimum():
    table = isoflop_table(np.geomspace(1e18, 1e22, 5))
    # Keep only sizes far below the optimum for the largest budget: its lowest loss is at its largest size.
    largest = table["tokens"] * table["params"] > 1e21 / 6
    lopsided = table[~largest | (table["params"] < table[largest]["params"].median() / 3)]
    result = approach2(lopsided, min_sizes=3)
    assert len(result.optima) == 4
    assert any("lowest loss is at the largest size trained" in note for note in result.notes)


def test_approach2_result_round_trips_through_strict_json_and_gives_intervals_at_any_level():
    result = approach2(isoflop_table(np.geomspace(1e18, 1e22, 5), noise=0.01))
    doc = json.loads(dumps(result.to_dict()))  # strict JSON: no NaN, no numpy types
    again = AllocationResult.from_dict(doc)
    assert again.params_law.exponent == result.params_law.exponent
    assert again.params.to_dict() == pytest.approx(result.params.to_dict())
    pd.testing.assert_frame_equal(again.sensitivity, result.sensitivity)
    wide, narrow = result.conf_int(0.99).loc["a"], result.conf_int(0.5).loc["a"]
    assert wide["lo"] < narrow["lo"] < result.params["a"] < narrow["hi"] < wide["hi"]
    assert tuple(result.conf_int().loc["a"]) == pytest.approx(result.params_law.exponent_interval)
    assert "Exponents by window" in result.summary().as_text()


def test_approach2_uses_a_declared_budget_column():
    table = isoflop_table(np.geomspace(1e18, 1e22, 5))
    compute = 6 * table["params"] * table["tokens"]
    # Runs of one budget spread ±20 % in compute (steps rounded): clustering could not group them; the column does.
    table["tokens"] *= np.random.default_rng(1).uniform(0.8, 1.2, len(table))
    table["flops_budget"] = compute
    result = approach2(table)
    assert result.settings["budgets"] == "declared (flops_budget column)"
    assert len(result.optima) == 5
    assert result.params_law.exponent == pytest.approx(EXPONENT_N, abs=0.05)


def test_isoflop_plot_draws_the_stored_parabolas():
    plt = pytest.importorskip("matplotlib.pyplot")
    from scalefit import plots

    result = approach2(isoflop_table(np.geomspace(1e18, 1e22, 5), noise=0.01))
    ax = plots.plot_isoflops(result).axes[0]
    curves = [line for line in ax.get_lines() if line.get_marker() in ("None", None, "")]
    assert len(curves) == len(result.optima)
    for line, row in zip(curves, result.optima.sort_values("flops").itertuples(), strict=True):
        x, y = line.get_xdata(), line.get_ydata()
        np.testing.assert_allclose(y, np.polyval([row.curvature, row.slope, row.intercept], np.log(x)))
    plt.close("all")


def test_approach2_needs_three_budgets():
    with pytest.raises(FitError, match="at least 3 IsoFLOP budgets .*declared in a flops_budget column"):
        approach2(isoflop_table([1e18, 1e20]))


def test_approach1_follows_the_closed_form_optimum():
    """Every size trained at many token budgets: the envelope's argmin tracks N_opt(C) ∝ C^0.513."""
    sizes = np.geomspace(1e7, 1e10, 25)
    rows = [{"run_id": f"N{n:.3g}-D{d:.3g}", "params": n, "tokens": d, "loss": law(n, d), "step": 1}
            for n in sizes for d in np.geomspace(1e8, 1e12, 25)]
    result = approach1(pd.DataFrame(rows), n_budgets=10)
    # Sizes are a discrete grid (×1.33): the exponent is recovered to the grid's resolution.
    assert result.params_law.exponent == pytest.approx(EXPONENT_N, abs=0.04)
    assert result.tokens_law.exponent == pytest.approx(EXPONENT_D, abs=0.04)
