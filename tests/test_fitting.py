"""The fitting engine: recovery of known parameters, calibrated intervals, fix/tie, refusals, FitResult."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import draw_points
from scipy.special import huber

from scalefit.errors import FitError
from scalefit.fitting import FitResult, fit
from scalefit.laws import Chinchilla, Kaplan, PowerLaw
from scalefit.laws.base import Law, Parameter

CHINCHILLA_TRUTH = {"A": 400.0, "B": 1500.0, "E": 1.8, "alpha": 0.34, "beta": 0.37}
#: A 3^5 grid: enough for synthetic data, ~20 times cheaper than Epoch's 4500 starts.
SMALL_GRID = {"a": (0, 10, 20), "b": (0, 10, 20), "e": (-1, 0, 1), "alpha": (0, 0.5, 1), "beta": (0, 0.5, 1)}


def flops_design() -> pd.DataFrame:
    return pd.DataFrame({"flops": np.logspace(15, 21, 40)})


@pytest.fixture
def chinchilla_points(size_token_grid) -> pd.DataFrame:
    return draw_points(Chinchilla(), CHINCHILLA_TRUTH, size_token_grid, sigma=0.005, seed=3)


@pytest.fixture
def chinchilla_fit(chinchilla_points) -> FitResult:
    return fit(Chinchilla(), chinchilla_points, starts=SMALL_GRID, bootstrap=200, seed=1)


# --- recovery of known parameters ------------------------------------------------------------------------

# Tolerances: about twice the largest relative error over 10 noise seeds at sigma = 0.002 (log-normal);
# amplitudes are loose because they trade off against their exponents.
@pytest.mark.parametrize(
    ("law", "truth", "tolerance"),
    [
        (Chinchilla(), CHINCHILLA_TRUTH, {"A": 0.15, "B": 0.25, "E": 0.012, "alpha": 0.03, "beta": 0.03}),
        (Kaplan(), {"Nc": 6.4e13, "Dc": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
         {"Nc": 0.15, "Dc": 0.25, "alpha_N": 0.01, "alpha_D": 0.02}),
    ],
)
def test_joint_laws_recover_known_parameters_from_default_grid(law, truth, tolerance, size_token_grid):
    result = fit(law, draw_points(law, truth, size_token_grid, sigma=0.002, seed=11), bootstrap=0)
    assert result.success, result.message
    for name, value in truth.items():
        assert result.params[name] == pytest.approx(value, rel=tolerance[name]), name
    assert result.n_best_basin >= 1 and result.n_converged >= result.n_best_basin


def test_power_law_recovers_known_parameters_over_flops():
    truth = {"A": 50.0, "E": 1.7, "alpha": 0.08}
    result = fit(PowerLaw(x="flops"), draw_points(PowerLaw(x="flops"), truth, flops_design(), 0.002, seed=11),
                 bootstrap=0)
    assert result.success, result.message
    assert result.params["alpha"] == pytest.approx(0.08, rel=0.08)
    assert result.params["E"] == pytest.approx(1.7, rel=0.08)
    assert result.params["A"] == pytest.approx(50.0, rel=0.2)
    assert result.params["x0"] == pytest.approx(result.params["A"] ** (1 / result.params["alpha"]), rel=1e-9)


@pytest.mark.parametrize("loss", ["huber", "mse_log", "mse"])
def test_every_loss_recovers_noise_free_parameters_exactly(loss):
    truth = {"A": 300.0, "E": 2.0, "alpha": 0.3}
    points = draw_points(PowerLaw(), truth, pd.DataFrame({"params": np.logspace(6, 10, 12)}), 0.0, seed=0)
    result = fit(PowerLaw(), points, loss=loss, bootstrap=0)
    assert result.success, result.message
    for name, value in truth.items():
        assert result.params[name] == pytest.approx(value, rel=1e-5), name


def test_objective_is_the_sum_of_scipy_huber_of_log_residuals(chinchilla_fit, chinchilla_points):
    predicted = Chinchilla().predict(chinchilla_fit.params, chinchilla_points)
    residuals = np.log(chinchilla_points["loss"]) - np.log(predicted)
    assert chinchilla_fit.objective == pytest.approx(huber(1e-3, residuals).sum(), rel=1e-9)
    np.testing.assert_allclose(chinchilla_fit.residuals, residuals, atol=1e-12)


class DataLimitedLaw(Law):
    """``L(D) = E + B / D^β`` written as a user would: a prediction only, no Jacobian, no engine change."""

    name = "data-limited"
    inputs = ("tokens",)
    parameters = (
        Parameter("b", "B", True, (-30.0, 80.0), (0.0, 10.0, 20.0)),
        Parameter("e", "E", True, (-20.0, 10.0), (-1.0, 0.0, 1.0)),
        Parameter("beta", "beta", False, (0.0, 10.0), (0.2, 0.5, 1.0)),
    )

    def log_predict(self, theta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        b, e, beta = (theta[:, k : k + 1] for k in range(3))
        return np.logaddexp(b - beta * np.log(inputs[:, 0]).astype(theta.dtype), e)


def test_a_new_law_fits_through_the_finite_difference_jacobian():
    truth = {"B": 800.0, "E": 1.5, "beta": 0.3}
    design = pd.DataFrame({"tokens": np.logspace(8, 12, 30)})
    result = fit(DataLimitedLaw(), draw_points(DataLimitedLaw(), truth, design, 0.002, seed=2), bootstrap=50)
    assert result.success, result.message
    assert result.params["beta"] == pytest.approx(0.3, rel=0.05)
    assert result.params["E"] == pytest.approx(1.5, rel=0.02)
    assert result.intervals.loc["beta", "lo"] < 0.3 < result.intervals.loc["beta", "hi"]


# --- calibration -----------------------------------------------------------------------------------------

def test_bootstrap_intervals_cover_the_truth_in_at_least_90_percent_of_50_repetitions(size_token_grid):
    covered = []
    for repetition in range(50):
        points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, size_token_grid, sigma=0.01, seed=1000 + repetition)
        result = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=200, seed=repetition)
        covered.append({n: result.intervals.loc[n, "lo"] <= v <= result.intervals.loc[n, "hi"]
                        for n, v in CHINCHILLA_TRUTH.items()})
    coverage = pd.DataFrame(covered).mean()
    assert (coverage >= 0.9).all(), coverage.to_dict()


# --- fixing and tying ------------------------------------------------------------------------------------

def test_fixed_parameter_stays_at_its_value_in_estimate_draws_and_interval(chinchilla_points):
    result = fit(Chinchilla(), chinchilla_points, fix={"alpha": 0.3}, starts=SMALL_GRID, bootstrap=50)
    assert result.params["alpha"] == 0.3
    assert (result.draws["alpha"] == 0.3).all()
    assert tuple(result.intervals.loc["alpha"]) == (0.3, 0.3)
    assert result.n_free == 4 and result.fixed == {"alpha": 0.3}
    assert "fixed" in str(result.summary())


def test_fixing_a_log_scaled_parameter_by_its_reported_name(chinchilla_points):
    result = fit(Chinchilla(), chinchilla_points, fix={"E": 1.7}, starts=SMALL_GRID, bootstrap=0)
    assert result.params["E"] == pytest.approx(1.7, rel=1e-12)


def test_tied_parameters_are_equal_and_recover_a_shared_exponent(size_token_grid):
    truth = {**CHINCHILLA_TRUTH, "beta": 0.34}
    points = draw_points(Chinchilla(), truth, size_token_grid, sigma=0.002, seed=5)
    result = fit(Chinchilla(), points, tie=("alpha", "beta"), starts=SMALL_GRID, bootstrap=50)
    assert result.params["alpha"] == result.params["beta"]
    assert (result.draws["alpha"] == result.draws["beta"]).all()
    assert result.params["alpha"] == pytest.approx(0.34, rel=0.03)
    assert result.n_free == 4


def test_fixing_one_tied_parameter_fixes_the_group(chinchilla_points):
    result = fit(Chinchilla(), chinchilla_points, fix={"beta": 0.35}, tie=("alpha", "beta"), starts=SMALL_GRID,
                 bootstrap=0)
    assert result.params["alpha"] == result.params["beta"] == 0.35


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fix": {"gamma": 1.0}}, "no parameter 'gamma'"),
        ({"tie": ("A", "alpha")}, "not on the same scale"),
        ({"fix": {"E": -1.0}}, "must be positive"),
        ({"fix": {k: 1.0 for k in ("A", "B", "E", "alpha", "beta")}}, "nothing to fit"),
    ],
)
def test_bad_fix_or_tie_raises(chinchilla_points, options, message):
    with pytest.raises(FitError, match=message):
        fit(Chinchilla(), chinchilla_points, bootstrap=0, **options)


# --- refusing degenerate input ---------------------------------------------------------------------------

def one_size(points: pd.DataFrame) -> pd.DataFrame:
    return points[points["params"] == points["params"].iloc[0]]


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (one_size, "two distinct values of 'params'"),
        (lambda p: p.assign(loss=2.5), "same at every point"),
        (lambda p: p.iloc[::9].head(4), "cannot determine 5 free parameters"),
        (lambda p: p.assign(loss=np.where(p.index == 3, 0.0, p["loss"])), "finite and positive: 1 row"),
        (lambda p: p.assign(tokens=-p["tokens"]), "'tokens' must be finite and positive"),
        (lambda p: p.assign(loss=np.where(p.index == 0, np.nan, p["loss"])), "finite and positive"),
        (lambda p: p.drop(columns="tokens"), "lacks \\['tokens'\\]"),
    ],
)
def test_degenerate_input_raises_fit_error(chinchilla_points, corrupt, message):
    with pytest.raises(FitError, match=message):
        fit(Chinchilla(), corrupt(chinchilla_points), bootstrap=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resample": "run"}, "needs a 'run_id' column"),
        ({"weights": np.ones(3)}, "one value per point"),
        ({"weights": "per_token"}, "equal_per_size"),
        ({"loss": "l1"}, "loss must be one of"),
    ],
)
def test_bad_options_raise_fit_error(chinchilla_points, options, message):
    with pytest.raises(FitError, match=message):
        fit(Chinchilla(), chinchilla_points, bootstrap=1, **options)


def test_parameter_on_a_bound_is_reported_as_failure_not_as_an_answer():
    # A pure power law has no floor: E runs to zero (e to its lower bound), which the fit must flag.
    points = pd.DataFrame({"params": np.logspace(6, 10, 15)})
    points["loss"] = 300.0 * points["params"] ** -0.3
    result = fit(PowerLaw(), points, bootstrap=0)
    assert not result.success
    assert "e ended on its bound" in result.message


# --- the result object -----------------------------------------------------------------------------------

def test_result_reports_counts_names_and_interval_method(chinchilla_fit, chinchilla_points):
    assert list(chinchilla_fit.params.index) == ["A", "B", "E", "alpha", "beta"]
    assert list(chinchilla_fit.intervals.columns) == ["lo", "hi"]
    assert chinchilla_fit.interval_method == "bootstrap-point"
    assert chinchilla_fit.n_points == len(chinchilla_points) == len(chinchilla_fit.data)
    assert chinchilla_fit.n_starts == 243
    assert chinchilla_fit.n_pruned + chinchilla_fit.n_converged <= chinchilla_fit.n_starts
    assert 1 <= chinchilla_fit.n_best_basin <= chinchilla_fit.n_converged
    assert len(chinchilla_fit.draws) == 200 and chinchilla_fit.draws["converged"].all()
    assert ((chinchilla_fit.intervals["lo"] <= chinchilla_fit.params)
            & (chinchilla_fit.params <= chinchilla_fit.intervals["hi"])).all()


def test_same_seed_gives_the_same_result(chinchilla_points):
    first = fit(Chinchilla(), chinchilla_points, starts=SMALL_GRID, bootstrap=30, seed=4)
    second = fit(Chinchilla(), chinchilla_points, starts=SMALL_GRID, bootstrap=30, seed=4)
    pd.testing.assert_frame_equal(first.draws, second.draws)
    pd.testing.assert_series_equal(first.params, second.params)


def test_prediction_band_contains_the_confidence_band(chinchilla_fit):
    new = pd.DataFrame({"params": [1e8, 1e10], "tokens": [2e9, 2e11]})
    confidence = chinchilla_fit.predict(new, interval="confidence")
    prediction = chinchilla_fit.predict(new, interval="prediction")
    assert list(confidence.columns) == ["mean", "lo", "hi"]
    assert (confidence["lo"] < confidence["mean"]).all() and (confidence["mean"] < confidence["hi"]).all()
    assert (prediction["lo"] < confidence["lo"]).all() and (prediction["hi"] > confidence["hi"]).all()
    np.testing.assert_allclose(chinchilla_fit.predict(new, interval=None)["mean"],
                               Chinchilla().predict(CHINCHILLA_TRUTH, new), rtol=0.02)


def test_intervals_need_bootstrap_draws(chinchilla_points):
    result = fit(Chinchilla(), chinchilla_points, starts=SMALL_GRID, bootstrap=0)
    assert result.interval_method == "none" and result.intervals.isna().all().all()
    band = result.predict({"params": [1e8], "tokens": [1e9]})
    assert np.isfinite(band["mean"]).all() and band.drop(columns="mean").isna().all(axis=None)


def test_to_dict_is_json_with_the_documented_keys(chinchilla_fit):
    payload = json.loads(json.dumps(chinchilla_fit.to_dict(), allow_nan=False))
    assert {"law", "params", "intervals", "interval_method", "objective", "success", "message", "n_points",
            "n_starts", "n_converged", "n_best_basin", "flops_convention"} <= set(payload)
    assert payload["intervals"]["alpha"] == list(chinchilla_fit.intervals.loc["alpha"])


def test_summary_and_html_show_estimates_and_diagnostics(chinchilla_fit):
    text = str(chinchilla_fit.summary())
    for needle in ("alpha", "beta", "95 %", "Success:", "Best basin:", "bootstrap-point"):
        assert needle in text
    assert "<table>" in chinchilla_fit._repr_html_()


def test_information_criteria_are_gaussian_on_log_residuals(chinchilla_fit):
    residuals = chinchilla_fit.residuals.to_numpy()
    n, k = len(residuals), 6
    log_likelihood = -0.5 * n * (np.log(2 * np.pi * np.mean(residuals**2)) + 1)
    assert chinchilla_fit.aic() == pytest.approx(2 * k - 2 * log_likelihood)
    assert chinchilla_fit.bic() == pytest.approx(k * np.log(n) - 2 * log_likelihood)


def test_runs_with_several_rows_are_resampled_whole(chinchilla_points):
    points = chinchilla_points.assign(run_id=chinchilla_points["params"].rank(method="dense").astype(int).astype(str))
    result = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=40)
    assert result.interval_method == "bootstrap-run"
    assert fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=5, resample="point").interval_method == (
        "bootstrap-point"
    )


def test_equal_per_size_weights_match_explicit_weights(chinchilla_points):
    unbalanced = pd.concat([chinchilla_points, one_size(chinchilla_points)], ignore_index=True)
    counts = unbalanced["params"].map(unbalanced["params"].value_counts())
    explicit = len(unbalanced) / (unbalanced["params"].nunique() * counts.to_numpy())
    by_name = fit(Chinchilla(), unbalanced, weights="equal_per_size", starts=SMALL_GRID, bootstrap=0)
    by_array = fit(Chinchilla(), unbalanced, weights=explicit, starts=SMALL_GRID, bootstrap=0)
    assert by_name.objective == pytest.approx(by_array.objective, rel=1e-12)


def test_flops_convention_is_read_from_the_data():
    points = draw_points(PowerLaw(x="flops"), {"A": 50.0, "E": 1.7, "alpha": 0.08}, flops_design(), 0.005, 0)
    result = fit(PowerLaw(x="flops"), points.assign(flops_convention="6ND"), bootstrap=0)
    assert result.flops_convention == "6ND" and result.to_dict()["flops_convention"] == "6ND"


def test_plots_return_figures(chinchilla_fit):
    from scalefit.plots import plot_bootstrap, plot_residuals

    for figure in (chinchilla_fit.plot(), plot_residuals(chinchilla_fit), plot_bootstrap(chinchilla_fit)):
        assert figure.axes
