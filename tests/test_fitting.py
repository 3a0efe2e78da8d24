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
from scalefit.fitting.bootstrap import new_run_noise, residual_shifts, residual_structure
from scalefit.fitting.engine import inert_parameters
from scalefit.fitting.objective import Loss, Objective
from scalefit.fitting.parameters import free_parameters
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

def test_95_percent_intervals_cover_the_truth_at_the_nominal_rate_over_50_repetitions(size_token_grid):
    """Two-sided, as tests/test_coverage.py: within 95 % ± (3 points + 2 standard errors of 50 draws)."""
    covered = []
    for repetition in range(50):
        points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, size_token_grid, sigma=0.01, seed=1000 + repetition)
        result = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=200, seed=repetition)
        covered.append({n: result.intervals.loc[n, "lo"] <= v <= result.intervals.loc[n, "hi"]
                        for n, v in CHINCHILLA_TRUTH.items()})
    coverage = pd.DataFrame(covered).mean()
    band = 0.03 + 2 * np.sqrt(0.95 * 0.05 / 50)
    assert ((coverage - 0.95).abs() <= band).all(), coverage.to_dict()


def test_residual_bootstrap_draws_noise_of_the_true_size(size_token_grid):
    """Replicate noise ``ε* = shift + r`` must have the degrees-of-freedom-corrected size of the residuals,
    ``√(Σ r² / (n − p))`` (the fit's own residuals are shrunk: it pulls about p of them into Huber's δ), and be
    centred; with Gaussian noise of sd 1 % that is 1 % within the sampling error of 64 points."""
    law = Chinchilla()
    points = draw_points(law, CHINCHILLA_TRUTH, size_token_grid, sigma=0.01, seed=7)
    result = fit(law, points, starts=SMALL_GRID, bootstrap=0)
    free = free_parameters(law, None, None)
    objective = Objective(law=law, inputs=law.input_array(points), log_loss=np.log(points["loss"].to_numpy()),
                          point_weights=np.ones(len(points)), loss=Loss("huber", 1e-3), free=free)
    optimum = free.reduce(law.to_fitted(result.params))[0]
    residuals = objective.residuals(optimum[None])[0]
    noise = residual_shifts(residuals, len(free.names), 2000, np.random.default_rng(0)) + residuals
    corrected = np.sqrt(np.sum(residuals**2) / (len(residuals) - 5))
    assert noise.std() == pytest.approx(corrected, rel=0.03)
    assert noise.std() == pytest.approx(0.01, rel=0.2)
    assert abs(np.median(noise)) < 0.001
    assert noise.shape == (2000, len(points)) and len(np.unique(noise)) == noise.size  # smoothed: no ties


def test_residual_structure_flags_a_misfit_and_uneven_noise_but_not_plain_noise():
    rng = np.random.default_rng(0)
    inputs = np.array([(n, d) for n in np.geomspace(1e7, 1e10, 8) for d in np.geomspace(1e9, 1e11, 6)])
    u = np.log(inputs[:, 0]) - np.log(inputs[:, 0]).mean()
    false_alarms = sum(residual_structure(rng.normal(0, 0.01, len(inputs)), inputs) is not None for _ in range(200))
    assert false_alarms <= 8  # a 1 % test twice: about 4 of 200 expected
    bend = 0.004 * (u / u.std()) ** 2 + rng.normal(0, 0.003, len(inputs))
    assert residual_structure(bend, inputs).startswith("misfit")
    uneven = rng.normal(0, 1, len(inputs)) * 0.01 * np.exp(0.5 * u)
    assert residual_structure(uneven, inputs).startswith("uneven noise")


def test_auto_scheme_reweights_when_the_law_misfits(size_token_grid):
    """Data from Chinchilla's law times a term in log N · log D, which its sum of separate terms cannot follow:
    auto must not resample the residuals (they are not noise), and must say why."""
    points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, size_token_grid, sigma=0.003, seed=2)
    u_n, u_d = (np.log(points[c]) - np.log(points[c]).mean() for c in ("params", "tokens"))
    bent = points.assign(loss=points["loss"] * np.exp(0.01 * u_n / u_n.std() * u_d / u_d.std()))
    result = fit(Chinchilla(), bent, starts=SMALL_GRID, bootstrap=50)
    assert result.bootstrap_scheme == "bayesian" and result.interval_method == "bootstrap-point"
    assert any(note.startswith("bootstrap: points reweighted") and "misfit" in note for note in result.notes)
    plain = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=50)
    assert plain.bootstrap_scheme == "residual" and not plain.notes


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


def test_a_term_that_vanished_is_reported_as_failure_not_as_an_answer():
    # No D dependence in the data: the fit sends B·D^-β to zero at every point (here β runs to 2, B·D^-β < 1e-13)
    # and stops short of any bound, where the objective is flat. That is a bound in effect: flagged, naming b.
    params = np.repeat(np.logspace(6, 8, 5), 3)
    points = pd.DataFrame({"params": params, "tokens": params * np.tile([10.0, 20.0, 40.0], 5)})
    points["loss"] = (1.5 + 100.0 * params**-0.3) * np.exp(np.random.default_rng(0).normal(0.0, 0.005, len(params)))
    result = fit(Chinchilla(), points, bootstrap=0)
    assert not result.success
    assert "b no longer acts on the fit" in result.message and "a term of the law has vanished" in result.message


def test_inert_parameters_are_those_whose_move_to_a_bound_changes_no_prediction(chinchilla_points):
    law = Chinchilla()
    objective = Objective(law, law.input_array(chinchilla_points), np.log(chinchilla_points["loss"].to_numpy()),
                          np.ones(len(chinchilla_points)), Loss("huber", 1e-3), free_parameters(law))
    z = law.to_fitted(pd.Series(CHINCHILLA_TRUTH))[0]  # a, b, e, alpha, beta
    assert inert_parameters(objective, z) == []
    vanished = z.copy()
    vanished[1] = -29.99  # B = e^-29.99: its term is ~1e-13 of the loss; so both b and beta stop acting
    names = [name for name, _, _ in inert_parameters(objective, vanished)]
    assert names == ["b", "beta"]
    assert [bound for _, _, bound in inert_parameters(objective, vanished)] == [-30.0, 0.0]
    skip = np.array([False, True, False, False, False])  # already reported as on its bound
    assert [name for name, _, _ in inert_parameters(objective, vanished, skip=skip)] == ["beta"]


def test_a_new_run_interval_covers_a_fresh_run_at_its_level_on_a_small_ladder():
    """Ten runs, five parameters, noise σ = 1 %: the fit passes near about five runs (its residuals' RMS is
    0.74 σ) and estimates the noise scale from five residuals. The new-run interval at a point inside the data
    must cover a fresh run at about its level: 90 % of 80 data sets at 90 % (resampling the raw residuals
    covered 78 % of 120, the residuals less the p smallest without the scale's own uncertainty 81 %)."""
    law, truth, sigma = Chinchilla(), {"E": 1.3, "A": 30.0, "B": 2500.0, "alpha": 0.45, "beta": 0.57}, 0.01
    ladder = pd.DataFrame({"params": np.repeat(np.geomspace(1e4, 1e6, 5), 2)})
    ladder["tokens"] = ladder["params"] * np.tile([10.0, 40.0], 5)
    at, covered = ladder.iloc[[4]], []
    for seed in range(80):
        result = fit(law, draw_points(law, truth, ladder, sigma=sigma, seed=seed), bootstrap=100, seed=seed)
        band = result.predict(at, level=0.9).iloc[0]
        fresh = law.predict(truth, at)[0] * np.exp(np.random.default_rng(1000 + seed).normal(0.0, sigma))
        covered.append(band["obs_lo"] <= fresh <= band["obs_hi"])
    assert 0.83 <= np.mean(covered) <= 0.97, np.mean(covered)


def test_new_run_noise_is_the_smoothed_residuals_with_a_student_t_scale():
    # Var(ε · sqrt(ν / χ²_ν)) = Var(ε) · ν / (ν − 2) for the smoothed draws ε (whose variance is the pool's).
    residuals = np.random.default_rng(0).normal(0.0, 0.01, 12)
    n_free, dof = 5, 7
    rng = np.random.default_rng(1)
    pool = residuals[np.argsort(np.abs(residuals))[n_free:]]
    draws = new_run_noise(residuals, n_free, 400_000, rng)
    assert draws.shape == (400_000, 1)
    assert draws.var() == pytest.approx(pool.var() * dof / (dof - 2), rel=0.02)
    excess_kurtosis = np.mean((draws - draws.mean()) ** 4) / draws.var() ** 2 - 3
    assert excess_kurtosis > 1.0  # heavier tails than the pool's smoothed draws: the scale is uncertain


# --- the result object -----------------------------------------------------------------------------------

def test_result_reports_counts_names_and_interval_method(chinchilla_fit, chinchilla_points):
    assert list(chinchilla_fit.params.index) == ["A", "B", "E", "alpha", "beta"]
    assert list(chinchilla_fit.intervals.columns) == ["lo", "hi"]
    assert chinchilla_fit.interval_method == "bootstrap-residual"  # one point per run: smoothed residuals
    assert chinchilla_fit.bootstrap_scheme == "residual"
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
    for needle in ("alpha", "beta", "95 %", "Success:", "Best basin:", "bootstrap-residual"):
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
    assert (result.interval_method, result.bootstrap_scheme) == ("bootstrap-run", "bayesian")
    by_point = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=5, resample="point")
    assert (by_point.interval_method, by_point.bootstrap_scheme) == ("bootstrap-residual", "residual")
    weighted = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=5, resample="point", bootstrap_scheme="bayesian")
    assert weighted.interval_method == "bootstrap-point"
    with pytest.raises(FitError, match="runs here hold several points"):
        fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=5, bootstrap_scheme="residual")


def test_residual_bootstrap_needs_a_loss_on_log_l_and_auto_falls_back_to_weights(chinchilla_points):
    with pytest.raises(FitError, match="needs a loss on log L"):
        fit(Chinchilla(), chinchilla_points, loss="mse", starts=SMALL_GRID, bootstrap=5, bootstrap_scheme="residual")
    result = fit(Chinchilla(), chinchilla_points, loss="mse", starts=SMALL_GRID, bootstrap=5)
    assert (result.interval_method, result.bootstrap_scheme) == ("bootstrap-point", "bayesian")


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


# --- bootstrap refits run to convergence (#16.1) ---------------------------------------------------------


def test_bootstrap_refits_converge_and_a_step_cap_is_counted_never_silently_dropped(chinchilla_points):
    from scalefit.fitting import OptimiserSettings

    full = fit(Chinchilla(), chinchilla_points, starts=SMALL_GRID, bootstrap=100, seed=2)
    assert full.n_failed_refits == 0 and full.status == "ok"
    # A 2-step cap without restarts cannot converge most refits: they are counted, and the fit is suspect.
    capped = fit(Chinchilla(), chinchilla_points, starts=SMALL_GRID, bootstrap=100, seed=2,
                 settings=OptimiserSettings(bootstrap_iterations=2, bootstrap_restarts=0))
    assert capped.n_failed_refits > 2 and len(capped.draws) == 100
    assert capped.status == "suspect" and any("did not converge" in r for r in capped.reasons)
    assert "failed" in str(capped.summary()) and capped.to_dict()["bootstrap"]["n_failed"] == capped.n_failed_refits


def test_a_stalled_refit_restarts_from_the_other_basins(chinchilla_points):
    from scalefit.fitting import OptimiserSettings
    from scalefit.fitting.bootstrap import refit_replicates
    from scalefit.fitting.objective import Loss, Objective
    from scalefit.fitting.parameters import free_parameters

    law = Chinchilla()
    objective = Objective(law, law.input_array(chinchilla_points), np.log(chinchilla_points["loss"].to_numpy()),
                          np.ones(len(chinchilla_points)), Loss("huber", 1e-3), free_parameters(law))
    optimum = law.to_fitted(fit(law, chinchilla_points, starts=SMALL_GRID, bootstrap=0).params)[0]
    far = optimum + np.array([5.0, 5.0, -3.0, 0.5, 0.5])  # a start 20 steps cannot bring back
    counts, settings = np.ones((4, len(chinchilla_points))), OptimiserSettings(bootstrap_iterations=20)
    assert not refit_replicates(objective, far, counts, settings).converged.any()
    rescued = refit_replicates(objective, far, counts, settings, restarts=optimum[None])
    assert rescued.converged.all()
    np.testing.assert_allclose(rescued.z, np.tile(optimum, (4, 1)), atol=1e-4)


# --- degenerate bootstraps are NOT IDENTIFIED (#15.2) ----------------------------------------------------


def test_power_law_on_one_runs_learning_curve_has_no_interval():
    curve = pd.DataFrame({"tokens": np.geomspace(1e7, 1e9, 20), "run_id": "only-run"})
    points = draw_points(PowerLaw(x="tokens"), {"A": 30.0, "E": 2.0, "alpha": 0.3}, curve, 0.003, seed=0)
    result = fit(PowerLaw(x="tokens"), points, bootstrap=200)
    assert result.interval_method == "bootstrap-run" and result.n_units == 1
    assert "1 run" in result.interval_issue
    assert result.intervals.isna().all(axis=None)  # never a zero-width interval
    assert result.status == "suspect" and "NOT IDENTIFIED" in str(result.summary())
    band = result.predict({"tokens": [2e9]})
    assert np.isfinite(band["mean"]).all() and band[["mean_lo", "obs_hi", "plan_hi"]].isna().all(axis=None)


def test_joint_law_on_two_sizes_checkpoints_has_no_interval():
    curves = pd.DataFrame([(n, d) for n in (1e8, 4e8) for d in np.geomspace(1e9, 1e11, 12)],
                          columns=["params", "tokens"])
    curves["run_id"] = curves["params"].map(lambda n: f"N{n:g}")
    points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, curves, 0.003, seed=0)
    by_run = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=200)
    assert by_run.n_units == 2 and "3 distinct refit" in by_run.interval_issue  # C(3, 2) = 3 multisets
    assert by_run.conf_int(0.9).isna().all(axis=None) and by_run.status == "suspect"
    # Resampling points instead does not help: two sizes cannot separate A and alpha from E.
    by_point = fit(Chinchilla(), points, starts=SMALL_GRID, bootstrap=200, resample="point")
    assert "2 distinct value(s) of 'params'" in by_point.interval_issue
    assert by_point.intervals.isna().all(axis=None)


# --- the result protocol: intervals on demand, prediction frame, save/load -------------------------------


def test_conf_int_is_computed_from_the_draws_at_any_level(chinchilla_fit):
    draws = chinchilla_fit.draws[chinchilla_fit.draws["converged"]]
    for level in (0.9, 0.99):
        expected = draws["alpha"].quantile([(1 - level) / 2, (1 + level) / 2]).to_numpy()
        np.testing.assert_allclose(chinchilla_fit.conf_int(level).loc["alpha"], expected)
    narrow, wide = chinchilla_fit.conf_int(0.5), chinchilla_fit.conf_int(0.99)
    assert ((wide["lo"] <= narrow["lo"]) & (narrow["hi"] <= wide["hi"])).all()


def test_prediction_frame_nests_mean_run_and_planning_intervals(chinchilla_fit):
    from dataclasses import replace

    from scalefit.fitting import ExtrapolationError

    planned = replace(chinchilla_fit, extrapolation_error=ExtrapolationError(0.05, 10, 2, 1.0, "chinchilla"))
    inside = {"params": [1e8], "tokens": [1e10]}
    beyond = {"params": [3e11], "tokens": [1e13]}  # 2 decades beyond the largest N and D
    for target in (inside, beyond):
        band = planned.predict(target)
        assert list(band.columns) == ["mean", "mean_lo", "mean_hi", "obs_lo", "obs_hi", "plan_lo", "plan_hi"]
        row = band.iloc[0]
        assert row["obs_lo"] < row["mean_lo"] < row["mean"] < row["mean_hi"] < row["obs_hi"]
    # Inside the data the planning interval is the new-run interval (same draws); 2 decades out it is wider
    # by about the added log sd 0.05 * 2 = 0.1 (±1.96 sd ≈ ±20 %).
    assert planned.predict(inside)[["plan_lo", "plan_hi"]].to_numpy() == pytest.approx(
        planned.predict(inside)[["obs_lo", "obs_hi"]].to_numpy())
    far = planned.predict(beyond).iloc[0]
    assert far["plan_hi"] / far["mean"] > 1.15 and far["plan_lo"] / far["mean"] < 0.87
    assert np.isnan(chinchilla_fit.predict(beyond)["plan_lo"]).all()  # no rollout measured: no planning bound


def test_save_load_round_trips_the_summary_and_predictions(chinchilla_fit, tmp_path):
    from scalefit.results import load_result

    path = chinchilla_fit.save(tmp_path / "fit.json")
    again = FitResult.load(path)
    assert load_result(path).params.equals(again.params)
    assert again.summary().as_text() == chinchilla_fit.summary().as_text()
    new = {"params": [3e9], "tokens": [1e11]}
    pd.testing.assert_frame_equal(again.predict(new), chinchilla_fit.predict(new))
    pd.testing.assert_frame_equal(again.conf_int(0.9), chinchilla_fit.conf_int(0.9))


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d["params"].update(alpha=float("nan")), "not all finite"),
    (lambda d: d["params"].update(alpha=50.0), "outside the chinchilla law's bounds"),
    (lambda d: d["law_spec"].update(name="gompertz"), "law 'gompertz'"),
    (lambda d: d.update(status="great"), "status 'great'"),
    (lambda d: d.update(schema_version=99), "schema_version 99"),
    (lambda d: d.pop("kind"), "not a 'fit' one"),
])
def test_loading_a_damaged_fit_json_is_refused_in_one_line(chinchilla_fit, tmp_path, change, words):
    from scalefit.errors import ScalefitInputError

    doc = chinchilla_fit.to_dict()
    change(doc)
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ScalefitInputError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
        FitResult.load(path)
    assert "\n" not in str(info.value)


def test_extrapolation_distance_is_decades_outside_the_fitted_ranges(chinchilla_fit):
    from scalefit.fitting import extrapolation_distance

    n_max, d_max = chinchilla_fit.ranges["params"][1], chinchilla_fit.ranges["tokens"][1]
    n_min = chinchilla_fit.ranges["params"][0]
    distance = extrapolation_distance(chinchilla_fit, {"params": [n_max, 100 * n_max, n_min / 10],
                                                       "tokens": [d_max, 10 * d_max, d_max]})
    np.testing.assert_allclose(distance["params_decades"], [0, 2, 1])
    np.testing.assert_allclose(distance["tokens_decades"], [0, 1, 0])
    c_max = chinchilla_fit.ranges["flops"][1]
    np.testing.assert_allclose(distance["flops_decades"].iloc[1], np.log10(6 * 1000 * n_max * d_max / c_max))
    np.testing.assert_allclose(distance["decades"], distance[["params_decades", "tokens_decades",
                                                               "flops_decades"]].max(axis=1))
