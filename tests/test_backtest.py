"""Backtests (fit the smaller sizes, predict the held-out largest) and law comparison, on known synthetic laws."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from conftest import draw_points

from scalefit.backtest import Backtest, backtest, compare_laws
from scalefit.cli.common import OUTPUT_MARKER, write_result_outputs
from scalefit.errors import FitError, ScalefitInputError
from scalefit.laws import Chinchilla, Kaplan
from scalefit.results import load_result

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
    assert "95% prediction interval coverage" in tested.headline()
    assert tested.coverage == pytest.approx(tested.coverage_at(0.95))  # the stored bounds are the fit-level ones
    records = tested.to_records()
    assert len(records) == len(TOKENS)
    assert set(records[0]) == {"run_id", "params", "tokens", "actual", "predicted", "rel_error"}


def test_backtest_without_bootstrap_predicts_without_an_interval():
    tested = backtest(Chinchilla(), chinchilla_points(sigma=0.0), holdout_largest=1, starts=SMALL_GRID, bootstrap=0)

    assert np.all(np.abs(tested.predictions["rel_error"]) < 1e-3)
    assert tested.predictions[["lo", "hi"]].isna().all(axis=None)
    assert np.isnan(tested.coverage)
    assert "no prediction interval" in tested.headline()
    assert "no prediction interval" in tested.summary().as_text()
    assert tested.prediction()[["mean_lo", "mean_hi", "obs_lo", "obs_hi"]].isna().all(axis=None)


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


# -- the result protocol ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def noisy_backtest() -> Backtest:
    return backtest(Chinchilla(), chinchilla_points(sigma=0.005, seed=1), holdout_largest=1, starts=SMALL_GRID,
                    bootstrap=60, seed=0)


def test_backtest_params_and_intervals_are_the_fit_on_the_smaller_sizes(noisy_backtest):
    tested = noisy_backtest
    assert tested.kind == "backtest" and tested.status == tested.fit.status == "ok" and tested.reasons == ()
    pd.testing.assert_series_equal(tested.params, tested.fit.params)
    narrow, wide = tested.conf_int(0.9), tested.conf_int(0.99)
    # Intervals at query time from the stored draws: a 99 % interval contains the 90 % one, and 0.5 % noise
    # on 25 points pins the exponents to within ±0.1 of the truth.
    assert ((wide["lo"] <= narrow["lo"]) & (narrow["hi"] <= wide["hi"])).all()
    for name in ("alpha", "beta"):
        assert wide.loc[name, "lo"] - 0.1 < TRUTH[name] < wide.loc[name, "hi"] + 0.1


def test_backtest_prediction_frame_matches_the_stored_bounds_and_widens_with_the_level(noisy_backtest):
    tested = noisy_backtest
    frame = tested.prediction()
    assert list(frame.columns) == ["params", "tokens", "actual", "mean", "mean_lo", "mean_hi", "obs_lo", "obs_hi",
                                   "rel_error"]
    np.testing.assert_allclose(frame["mean"], tested.predictions["predicted"])
    # the stored lo/hi are the fit-level new-run interval: the frame recomputes the same bounds from the draws
    np.testing.assert_allclose(frame["obs_lo"], tested.predictions["lo"])
    np.testing.assert_allclose(frame["obs_hi"], tested.predictions["hi"])
    assert (frame["obs_lo"] <= frame["mean_lo"]).all() and (frame["mean_hi"] <= frame["obs_hi"]).all()
    wide = tested.prediction(0.99)
    assert (wide["obs_hi"] - wide["obs_lo"] >= frame["obs_hi"] - frame["obs_lo"]).all()
    assert tested.coverage_at(0.99) >= tested.coverage_at(0.5)


def test_backtest_round_trips_through_save_and_load(noisy_backtest, tmp_path):
    tested = noisy_backtest
    path = tested.save(tmp_path / "backtest.json")
    loaded = load_result(path)

    assert isinstance(loaded, Backtest) and loaded.holdout_largest == 1
    assert loaded.summary().as_text() == tested.summary().as_text()
    assert loaded.summary(0.9).as_text() == tested.summary(0.9).as_text()
    pd.testing.assert_frame_equal(loaded.conf_int(0.99), tested.conf_int(0.99))
    pd.testing.assert_frame_equal(loaded.prediction(0.8), tested.prediction(0.8))
    assert loaded.coverage == tested.coverage and loaded.mean_abs_rel_error == tested.mean_abs_rel_error
    html = loaded._repr_html_()
    assert html.startswith("<div>") and "Held-out runs" in html


def test_a_backtest_file_of_another_kind_or_without_predictions_is_refused(noisy_backtest, tmp_path):
    path = noisy_backtest.fit.save(tmp_path / "fit.json")
    with pytest.raises(ScalefitInputError, match="holds a 'fit' result, not a 'backtest' one"):
        Backtest.load(path)
    document = noisy_backtest.to_dict()
    del document["predictions"]["actual"]
    with pytest.raises(ScalefitInputError, match=r"lack the columns \['actual'\]"):
        Backtest.from_dict(document)


def test_write_result_outputs_writes_the_whole_out_folder(noisy_backtest, tmp_path):
    out = tmp_path / "out"
    write_result_outputs(out, noisy_backtest, tables={"held_out": noisy_backtest.prediction()},
                         figures={"backtest": lambda: noisy_backtest.fit.plot()})

    assert {p.name for p in out.iterdir()} == {OUTPUT_MARKER, "result.json", "summary.txt", "held_out.csv",
                                               "backtest.png"}
    assert load_result(out / "result.json").summary().as_text() == noisy_backtest.summary().as_text()
    assert (out / "summary.txt").read_text() == noisy_backtest.summary().as_text() + "\n"
    assert len(pd.read_csv(out / "held_out.csv")) == len(TOKENS)
    assert (out / "backtest.png").read_bytes()[:4] == b"\x89PNG"


def test_write_result_outputs_leaves_the_old_folder_when_a_figure_fails(noisy_backtest, tmp_path):
    out = tmp_path / "out"
    write_result_outputs(out, noisy_backtest)
    before = sorted(p.name for p in out.iterdir())

    def broken():
        raise RuntimeError("no figure")

    with pytest.raises(RuntimeError, match="no figure"):
        write_result_outputs(out, noisy_backtest, tables={"held_out": noisy_backtest.prediction()},
                             figures={"broken": broken})
    assert sorted(p.name for p in out.iterdir()) == before  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staged folder left behind
