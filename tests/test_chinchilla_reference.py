"""Reference test: Epoch AI's replication of Hoffmann et al.'s Approach 3 (Besiroglu et al. 2024).

Same data (their SVG extraction), filtering (the 5 highest losses dropped), objective (sum of Huber,
δ = 1e-3, on log residuals) and start grid (4500 starts) must reach the same optimum; see
``shared/data/chinchilla_epoch/PROVENANCE.md`` and ``reference.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import huber

from scalefit.fitting import FitResult, fit
from scalefit.laws import Chinchilla

DATA = Path(__file__).parents[2] / "shared" / "data" / "chinchilla_epoch"

pytestmark = pytest.mark.skipif(
    not (DATA / "svg_extracted_data.csv").exists(),
    reason=f"Epoch's Chinchilla data not found at {DATA} (it sits beside the repository in CI)",
)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((DATA / "reference.json").read_text())


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    raw = pd.read_csv(DATA / "svg_extracted_data.csv")
    kept = raw[raw["loss"] < raw["loss"].nlargest(5).iloc[-1]]  # Epoch keeps losses below the 5th largest
    return pd.DataFrame({
        "params": kept["Model Size"],
        "tokens": kept["Training FLOP"] / (6 * kept["Model Size"]),
        "loss": kept["loss"],
    })


@pytest.fixture(scope="module")
def result(points) -> FitResult:
    return fit(Chinchilla(), points, bootstrap=1000, bootstrap_scheme="multinomial", seed=0)  # Epoch resamples points


def test_filtering_keeps_epochs_240_points(points):
    assert len(points) == 240


def test_grid_fit_reaches_epochs_optimum(result, reference):
    grid_best = reference["grid_lbfgsb_huber_best"]
    assert result.success, result.message
    assert result.n_starts == 4500
    assert result.objective <= 0.0010182741
    assert result.objective == pytest.approx(grid_best["objective_sum_huber"], abs=1e-9)
    for name in ("A", "B", "E", "alpha", "beta"):
        assert result.params[name] == pytest.approx(grid_best[name], rel=0.005), name


def test_objective_is_epochs_sum_of_huber_losses(result, points):
    residuals = np.log(points["loss"]) - np.log(Chinchilla().predict(result.params, points))
    assert huber(1e-3, residuals).sum() == pytest.approx(result.objective, rel=1e-12)


def test_hoffmanns_published_fit_is_far_worse_on_this_data(result, points, reference):
    # Epoch's finding: the published parameters do not fit the extracted data.
    residuals = np.log(points["loss"]) - np.log(Chinchilla().predict(reference["hoffmann_2022_published"], points))
    assert huber(1e-3, residuals).sum() > 3 * result.objective


def test_bootstrap_intervals_overlap_epochs(result, reference):
    for name in ("alpha", "beta"):
        lo, hi = result.intervals.loc[name]
        epoch_lo, epoch_hi = reference["bootstrap_95ci"][name]
        assert lo <= epoch_hi and epoch_lo <= hi, (name, (lo, hi), (epoch_lo, epoch_hi))
        assert lo <= reference["point_estimate"][name] <= hi


def test_compute_optimal_ratio_at_chinchillas_budget(result, reference):
    budget = 5.88e23
    epoch = reference["compute_optimal_at_C_5.88e23"]["epoch_mle"]["D_over_N"]  # 18.33, from Epoch's MLE
    grid_best = Chinchilla.optimal_allocation(reference["grid_lbfgsb_huber_best"], budget)["tokens_per_param"][0]
    ours = Chinchilla.optimal_allocation(result.params, budget)["tokens_per_param"][0]
    assert ours == pytest.approx(grid_best, rel=0.01)  # the same optimum implies the same split
    draws = result.draws[result.draws["converged"]]
    band = Chinchilla.optimal_allocation(draws, budget)["tokens_per_param"].quantile([0.025, 0.975])
    assert band.iloc[0] < epoch < band.iloc[1]
    assert band.iloc[0] < ours < band.iloc[1]
