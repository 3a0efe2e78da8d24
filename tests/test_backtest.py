"""Backtests (fit the smaller sizes, predict the held-out largest) and law comparison, on known synthetic laws."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from conftest import draw_points

from scalefit.backtest import backtest, compare_laws
from scalefit.errors import FitError
from scalefit.laws import Chinchilla, Kaplan

TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}
SIZES = np.geomspace(1e6, 1e8, 6)
TOKENS = np.geomspace(1e8, 1e10, 5)
#: A 3^5 start grid: ample for synthetic data from this law, ~20 times cheaper than the default 4500 starts.
SMALL_GRID = {"a": (0, 5, 10), "b": (0, 5, 10), "e": (-1, 0, 1), "alpha": (0.1, 0.5, 1), "beta": (0.1, 0.5, 1)}


def chinchilla_points(sigma: float, seed: int = 0) -> pd.DataFrame:
    """6 sizes over 2 decades x 5 token budgets over 2 decades, one final point per run, log-normal noise."""
    design = pd.DataFrame(list(itertools.product(SIZES, TOKENS)), columns=["params", "tokens"])
    design.insert(0, "run_id", [f"N{n:.3g}-D{d:.3g}" for n, d in zip(design["params"], design["tokens"])])
    return draw_points(Chinchilla(), TRUTH, design, sigma=sigma, seed=seed)


def test_noise_free_backtest_predicts_held_out_size_to_within_0_1_percent():
    points = chinchilla_points(sigma=0.0)
    tested = backtest(Chinchilla(), points, holdout_largest=1, starts=SMALL_GRID, bootstrap=20)

    predictions = tested.predictions
    assert set(predictions["params"]) == {SIZES[-1]}
    assert len(predictions) == len(TOKENS)
    # Noise-free data pin the law down on the 5 smaller sizes, so extrapolating one size (2.5x) is exact up to
    # the optimiser's convergence (errors ~1e-15 here); 1e-3 leaves room for a looser optimiser.
    assert np.all(np.abs(predictions["rel_error"]) < 1e-3)
    expected = Chinchilla().predict(TRUTH, predictions)
    np.testing.assert_allclose(predictions["predicted"], expected, rtol=1e-3)
    np.testing.assert_allclose(predictions["rel_error"],
                               (predictions["predicted"] - predictions["actual"]) / predictions["actual"])
    assert tested.fit.n_points == len(points) - len(TOKENS)
    assert tested.max_abs_rel_error < 1e-3
    assert predictions["run_id"].str.startswith("N1e+08").all()


def test_noisy_backtest_errors_are_finite_and_the_prediction_interval_covers_most_points():
    points = chinchilla_points(sigma=0.005, seed=1)
    tested = backtest(Chinchilla(), points, holdout_largest=1, starts=SMALL_GRID, bootstrap=100, seed=0)

    predictions = tested.predictions
    assert np.isfinite(predictions[["predicted", "lo", "hi", "rel_error"]].to_numpy()).all()
    assert (predictions["lo"] < predictions["predicted"]).all() and (predictions["predicted"] < predictions["hi"]).all()
    # 0.5% noise, one size extrapolated: errors of a few noise widths at most.
    assert tested.max_abs_rel_error < 0.03
    assert tested.coverage >= 0.6  # "most" of 5 points: at least 3 inside the 95% prediction interval
    assert "coverage" in tested.summary()
    records = tested.to_records()
    assert len(records) == len(TOKENS)
    assert set(records[0]) == {"run_id", "params", "tokens", "actual", "predicted", "rel_error"}


def test_backtest_without_bootstrap_predicts_without_an_interval():
    tested = backtest(Chinchilla(), chinchilla_points(sigma=0.0), holdout_largest=1, starts=SMALL_GRID, bootstrap=0)

    assert np.all(np.abs(tested.predictions["rel_error"]) < 1e-3)
    assert tested.predictions[["lo", "hi"]].isna().all(axis=None)
    assert np.isnan(tested.coverage)
    assert "no prediction interval" in tested.summary()


def test_holding_out_two_sizes_fits_on_the_rest():
    tested = backtest(Chinchilla(), chinchilla_points(sigma=0.0), holdout_largest=2, starts=SMALL_GRID, bootstrap=0)
    assert set(tested.predictions["params"]) == set(SIZES[-2:])
    assert tested.fit.data["params"].max() == pytest.approx(SIZES[-3])


def test_compare_laws_ranks_the_true_chinchilla_law_first_by_aic():
    points = chinchilla_points(sigma=0.005, seed=2)
    table = compare_laws([Kaplan(), Chinchilla()], points)

    assert table["law"].tolist() == ["chinchilla", "kaplan"]
    assert table["aic"].is_monotonic_increasing
    assert table.loc[0, "aic"] < table.loc[1, "aic"] - 10  # not a close call: Kaplan has no floor E
    assert table["n_points"].tolist() == [len(points)] * 2
    assert table.set_index("law")["n_params"].to_dict() == {"chinchilla": 5, "kaplan": 4}


@pytest.mark.parametrize(("holdout", "message"), [
    (5, "holding out 5 of 6 model sizes leaves fewer than 2"),
    (6, "holding out 6 of 6 model sizes"),
    (0, "holdout_largest must be at least 1"),
])
def test_holding_out_too_many_sizes_or_none_raises_fit_error(holdout, message):
    with pytest.raises(FitError, match=message):
        backtest(Chinchilla(), chinchilla_points(sigma=0.0), holdout_largest=holdout, bootstrap=0)


def test_a_fit_on_too_few_remaining_points_raises_fit_error():
    # Holding out 4 of 6 sizes leaves 2 sizes x 2 budgets = 4 points for 5 free parameters.
    points = chinchilla_points(sigma=0.0)
    points = points[points["tokens"].isin(TOKENS[:2])]
    with pytest.raises(FitError, match="4 points cannot determine 5 free parameters"):
        backtest(Chinchilla(), points, holdout_largest=4, bootstrap=0)
