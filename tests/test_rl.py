"""RL post-training scaling (scalefit.rl): the paper's constants recovered, backtests, bad input, CLI, the
result protocol (save/load, conf_int, prediction frame, status), the rl.json fixture, segment resampling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalefit.cli import EXIT_INPUT_ERROR, main
from scalefit.errors import FitError, RunsTableError, ScalefitInputError
from scalefit.fitting.resampling import (
    default_segment_length,
    refit_resamples,
    segment_counts,
)
from scalefit.laws.rl_efficiency import RLEfficiency
from scalefit.rl import PAPER_CONSTANTS, RLFit, fit_rl, load_rl_runs, parse_protocol, rl_points

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data" / "rl_runs.parquet"
QWEN_SIZES = np.array([0.5, 1.5, 3.0, 7.0, 14.0, 32.0, 72.0]) * 1e9  # Qwen2.5, as in Tan et al.
TOKENS_PER_STEP = 1e6
SAMPLES_PER_STEP = 512


def synthetic_curves(k_max: float = 0.135, n0: float = 13.1e9, *, x: str = "compute", noise: float = 0.005,
                     n_eval: int = 100, seed: int = 0, sizes: np.ndarray = QWEN_SIZES) -> pd.DataFrame:
    """RL curves drawn from the law: ``L = exp(E(N)) · X^(−k(N))`` plus Gaussian noise on ``L``.

    Every size runs 200 RL steps of ``TOKENS_PER_STEP`` tokens (``SAMPLES_PER_STEP`` samples), evaluated
    ``n_eval`` times at even intervals. ``E(N)`` puts the first evaluation at ``L = 0.75 − 0.06 ln(N/0.5B)``
    (bigger bases start better). The noise, sd 0.005 on L, is that of pass@1 averaged over ~10,000 samples
    (e.g. 500 problems × 16 answers: sqrt(0.25 / 8000) ≈ 0.0056), as in the paper's smooth curves.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        k = k_max / (1.0 + n0 / n)
        steps = np.arange(1, n_eval + 1) * (200 // n_eval)
        flops, samples = 6.0 * n * TOKENS_PER_STEP * steps, SAMPLES_PER_STEP * steps
        axis = flops if x == "compute" else samples
        start = 0.75 - 0.06 * np.log(n / sizes[0])
        error = np.exp(np.log(start) - k * np.log(axis / axis[0]))
        observed = np.clip(error + rng.normal(0.0, noise, len(error)), 0.0, 1.0)
        rows.append(pd.DataFrame({"run_id": f"qwen-{n / 1e9:g}b", "params": n, "rl_step": steps,
                                  "flops": flops, "samples": samples, "pass_at_1": 1.0 - observed}))
    return pd.concat(rows, ignore_index=True)


def relative_error(value: float, truth: float) -> float:
    return abs(value / truth - 1.0)


# --- the law ---------------------------------------------------------------------------------------------


def test_efficiency_is_half_the_ceiling_at_n0():
    law = RLEfficiency([1e9, 1e10], "flops")
    assert law.efficiency(0.135, 13.1e9, 13.1e9) == pytest.approx(0.0675)
    assert law.efficiency(0.135, 13.1e9, 1e15) == pytest.approx(0.135, rel=1e-4)


def test_law_jacobian_matches_finite_differences():
    law = RLEfficiency(QWEN_SIZES, "flops")
    data = synthetic_curves()
    theta = np.array([[0.1, np.log(5e9), *np.linspace(-1, 3, 7)], [0.3, np.log(3e10), *np.linspace(2, 0, 7)]])
    inputs = law.input_array(data)
    _, analytic = law.log_predict_jacobian(theta, inputs)
    step = 1e-6
    for p in range(theta.shape[1]):
        shift = np.zeros_like(theta)
        shift[:, p] = step
        up, down = law.log_predict(theta + shift, inputs), law.log_predict(theta - shift, inputs)
        numeric = (up - down) / (2 * step)
        np.testing.assert_allclose(analytic[p], numeric, rtol=1e-6, atol=1e-6)


def test_law_has_one_intercept_per_size_and_rejects_other_sizes():
    law = RLEfficiency([3e9, 1e9, 3e9], "samples")
    assert law.reported_names == ("K_max", "N0", "E[1B]", "E[3B]")
    assert law.derived_names == ("k[1B]", "k[3B]")
    with pytest.raises(ValueError, match="built for sizes"):
        law.size_index([2e9])


# --- recovery of the paper's constants ----------------------------------------------------------------------


@pytest.mark.parametrize(("x", "constants"), [("compute", "base, L(N,C)"), ("data", "base, L(N,D)")])
def test_mse_on_L_recovers_the_papers_k_max_and_n0_within_10_percent(x, constants):
    truth = PAPER_CONSTANTS[constants]
    result = fit_rl(synthetic_curves(truth["K_max"], truth["N0"], x=x), x=x)
    assert result.fit.success, result.fit.message
    assert relative_error(result.params["K_max"], truth["K_max"]) < 0.10
    assert relative_error(result.params["N0"], truth["N0"]) < 0.10
    for name in ("K_max", "N0"):
        assert result.intervals.loc[name, "lo"] < truth[name] < result.intervals.loc[name, "hi"]
    assert result.r2 > 0.95
    assert result.fit.loss == "squared error on L"


def test_huber_on_log_L_recovers_them_too():
    result = fit_rl(synthetic_curves(), loss="huber")
    assert result.fit.loss.startswith("huber") and result.fit.loss.endswith("on log L")
    assert relative_error(result.params["K_max"], 0.135) < 0.10
    assert relative_error(result.params["N0"], 13.1e9) < 0.10


def test_per_size_k_follows_the_saturation_curve():
    result = fit_rl(synthetic_curves(), bootstrap=50)
    table = result.per_size
    truth = 0.135 / (1 + 13.1e9 / table["N"])
    np.testing.assert_allclose(table["k"], truth, rtol=0.10)
    assert (table["k_lo"] <= table["k"]).all() and (table["k"] <= table["k_hi"]).all()
    assert table["k"].is_monotonic_increasing


def test_the_bootstrap_is_seeded():
    data = synthetic_curves(n_eval=40)
    first, again = fit_rl(data, bootstrap=30, seed=3), fit_rl(data, bootstrap=30, seed=3)
    pd.testing.assert_frame_equal(first.intervals, again.intervals)
    assert first.interval_method == "bootstrap-segment(4)"  # ceil(40^(1/3))


# --- protocols ---------------------------------------------------------------------------------------------


def test_holdout_largest_slope_only_reproduces_the_target_curve():
    result = fit_rl(synthetic_curves(), protocol="holdout-largest:1")
    assert result.protocol["targets"] == ["72B"] and result.protocol["variants"] == ["slope-only", "full"]
    fitted = set(result.per_size.index[result.per_size["role"] == "fit"])
    assert fitted == {"500M", "1.5B", "3B", "7B", "14B", "32B"}
    slope_only = result.heldout_error["slope-only"]
    assert slope_only["variant"] == "slope-only"
    assert slope_only["r2"] >= 0.8
    assert slope_only["rel_error_end"] < 0.05
    # The target's k comes from the law fitted without it.
    assert result.per_size.loc["72B", "k"] == pytest.approx(0.135 / (1 + 13.1e9 / 72e9), rel=0.10)
    # Both variants are scored on the same points: the target's points after the anchor.
    assert result.heldout_error["full"]["n_points"] == slope_only["n_points"] == 90


def test_holdout_variant_can_be_chosen_and_is_reported():
    result = fit_rl(synthetic_curves(), protocol="holdout-largest:2", variant="full", bootstrap=0)
    assert result.protocol["variants"] == ["full"] and list(result.heldout_error) == ["full"]
    assert result.protocol["targets"] == ["32B", "72B"]
    assert set(result.heldout_error["full"]["per_size"]) == {"32B", "72B"}


def test_early_protocol_fits_the_first_part_of_every_curve_and_scores_the_rest():
    result = fit_rl(synthetic_curves(), protocol="early:0.5")
    points = result.points
    fitted = points[points["role"] == "fit"]
    assert (fitted.groupby("run_id").size() == 50).all()
    x_max = points.groupby("run_id")["x"].transform("max")
    assert (fitted["x"] <= 0.5 * x_max[fitted.index]).all()
    assert result.heldout_error["n_points"] == 350
    assert result.heldout_error["r2"] > 0.9
    assert result.heldout_error["rel_error_end"] < 0.05


@pytest.mark.parametrize("bad", ["early", "early:1.5", "early:x", "holdout-largest:0", "latest:2"])
def test_bad_protocols_are_input_errors(bad):
    with pytest.raises(ScalefitInputError, match="protocol must be"):
        parse_protocol(bad)


def test_holdout_needs_two_sizes_left_to_fit():
    with pytest.raises(FitError, match="need at least 2"):
        fit_rl(synthetic_curves(sizes=QWEN_SIZES[:3]), protocol="holdout-largest:2")


def test_a_slope_that_does_not_grow_with_n_is_reported_as_unidentified_saturation():
    result = fit_rl(synthetic_curves(k_max=0.1, n0=1.0, sizes=QWEN_SIZES[:4], n_eval=30), bootstrap=50)
    assert not result.fit.success
    assert any(note.startswith("N0 is on its lower bound") for note in result.notes)
    assert any(note.startswith("the bootstrap held N0 at its bound") for note in result.notes)
    assert result.params["K_max"] == pytest.approx(0.1, rel=0.1)
    # K_max (the common slope) keeps an interval; N0 has none.
    assert result.intervals.loc["K_max", "lo"] < 0.1 < result.intervals.loc["K_max", "hi"]
    assert result.intervals.loc["N0"].isna().all() and result.n_bootstrap == 50


# --- degenerate input ------------------------------------------------------------------------------------


def test_one_model_size_is_a_clear_error():
    with pytest.raises(FitError, match="one model size"):
        fit_rl(synthetic_curves(sizes=QWEN_SIZES[3:4]))


def test_flat_curves_are_a_clear_error():
    data = synthetic_curves(sizes=QWEN_SIZES[:3], noise=0.0)
    data.loc[data["params"] == QWEN_SIZES[1], "pass_at_1"] = 0.4
    with pytest.raises(FitError, match="flat"):
        fit_rl(data)


def test_error_rates_of_0_and_1_are_clipped_and_the_result_says_so():
    data = synthetic_curves(sizes=QWEN_SIZES[:4], n_eval=20)
    data.loc[[3, 5], "pass_at_1"] = 1.0  # L = 0: log L undefined
    data.loc[[25], "pass_at_1"] = 0.0  # L = 1
    data["heldout_problems"] = 500
    result = fit_rl(data, bootstrap=0)
    assert (result.clipping.n_low, result.clipping.n_high, result.clipping.epsilon) == (2, 1, 0.001)
    assert any("clipped 2 point(s) with L = 0 and 1 with L = 1" in note for note in result.notes)
    assert "clipped 2 point(s)" in result.summary().as_text()
    assert result.to_dict()["clipping"] == {"epsilon": 0.001, "n_low": 2, "n_high": 1}
    assert np.isfinite(result.params.to_numpy()).all()


def test_without_clipping_error_rates_of_0_are_an_error():
    data = synthetic_curves(sizes=QWEN_SIZES[:3], n_eval=20)
    data.loc[4, "pass_at_1"] = 1.0
    with pytest.raises(FitError, match="L = 0"):
        fit_rl(data, clip=None)


def test_metric_outside_0_1_and_missing_columns_name_the_problem():
    data = synthetic_curves(sizes=QWEN_SIZES[:3], n_eval=20)
    data.loc[2, "pass_at_1"] = 1.5
    with pytest.raises(RunsTableError, match=r"'pass_at_1' must be a rate in \[0, 1\]"):
        fit_rl(data)
    with pytest.raises(RunsTableError, match=r"'samples' \(RL data so far\)"):
        fit_rl(data.drop(columns="samples"), x="data")


def test_zero_x_rows_are_dropped_and_reported():
    data = synthetic_curves(sizes=QWEN_SIZES[:3], n_eval=20)
    start = data.groupby("run_id").head(1).assign(rl_step=0, flops=0.0, samples=0, pass_at_1=0.2)
    points, clipping, notes = rl_points(pd.concat([start, data]))
    assert len(points) == len(data) and clipping.n_clipped == 0
    assert len(notes) == 1 and notes[0].startswith("dropped 3 row(s) with flops = 0 or missing")


def test_runs_whose_status_is_not_ok_are_dropped_and_named():
    data = synthetic_curves(sizes=QWEN_SIZES[:4], n_eval=20)
    data["status"] = np.where(data["run_id"] == "qwen-1.5b", "sft_failed", "ok")
    points, _, notes = rl_points(data)
    assert "qwen-1.5b" not in set(points["run_id"])
    assert notes == ["dropped 20 row(s) of 1 run(s) with status ['sft_failed'] (not 'ok'): qwen-1.5b"]


def test_an_error_metric_column_is_used_as_it_is():
    data = synthetic_curves(sizes=QWEN_SIZES[:4], n_eval=20)
    data["error"] = 1.0 - data["pass_at_1"]
    by_error = fit_rl(data.drop(columns="pass_at_1"), metric="error", metric_is_error=True, bootstrap=0)
    by_pass = fit_rl(data, bootstrap=0)
    assert by_error.params["K_max"] == pytest.approx(by_pass.params["K_max"], rel=1e-9)
    assert by_error.metric == "L"


# --- output ------------------------------------------------------------------------------------------------


def test_to_dict_has_the_documented_keys_and_is_json():
    data = synthetic_curves(sizes=QWEN_SIZES[:5], n_eval=30)
    result = fit_rl(data, protocol="holdout-largest:1", bootstrap=20)
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert {"params", "intervals", "r2", "protocol", "heldout_error"} <= set(payload)
    assert set(payload["params"]) == {"K_max", "N0", "sizes"}
    assert payload["params"]["sizes"]["3B"]["role"] == "fit" and "E" in payload["params"]["sizes"]["3B"]
    assert {"E_slope_only", "E_full", "k"} <= set(payload["params"]["sizes"]["14B"])
    assert payload["protocol"]["name"] == "holdout-largest"
    assert set(payload["heldout_error"]) == {"slope-only", "full"}
    assert payload["intervals"]["K_max"][0] < payload["params"]["K_max"] < payload["intervals"]["K_max"][1]


def test_plots_draw(tmp_path):
    pytest.importorskip("matplotlib")
    from scalefit.plots import save_and_close

    data = synthetic_curves(sizes=QWEN_SIZES[:5], n_eval=30)
    result = fit_rl(data, protocol="holdout-largest:1", bootstrap=20)
    curves, efficiency = result.plot_curves(), result.plot_efficiency()
    assert {line.get_linestyle() for line in curves.axes[0].lines} >= {"-", "--", ":"}
    assert efficiency.axes[0].get_xscale() == "log"
    save_and_close(curves, tmp_path / "c.png")
    save_and_close(efficiency, tmp_path / "e.png")


def test_cli_writes_json_and_plots(tmp_path, capsys):
    runs = tmp_path / "rl.csv"
    synthetic_curves(sizes=QWEN_SIZES[:5], n_eval=30).to_csv(runs, index=False)
    code = main(["rl", str(runs), "--protocol", "holdout-largest:1", "--bootstrap", "20", "--out",
                 str(tmp_path / "out"), "--json", str(tmp_path / "rl.json")])
    assert code == 0
    assert "K_max" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "result.json", "summary.txt", "points.csv", "per_size.csv", "predictions.csv", "backtest.csv", "curves.png",
        "efficiency.png", ".scalefit-output"}
    payload = json.loads((tmp_path / "rl.json").read_text())
    assert payload["protocol"]["variants"] == ["slope-only", "full"] and "heldout_error" in payload


def test_cli_input_errors_exit_2_and_write_nothing(tmp_path, capsys):
    runs = tmp_path / "one.csv"
    synthetic_curves(sizes=QWEN_SIZES[:1], n_eval=10).to_csv(runs, index=False)
    assert main(["rl", str(runs), "--out", str(tmp_path / "out")]) == EXIT_INPUT_ERROR
    assert "one model size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["rl", str(tmp_path / "missing.parquet")]) == EXIT_INPUT_ERROR
    assert main(["rl", str(runs), "--clip", "lots"]) == EXIT_INPUT_ERROR


def test_cli_level_sets_every_interval_and_a_suspect_fit_exits_1(tmp_path, capsys):
    from scalefit.results import load_result

    runs = tmp_path / "rl.csv"
    synthetic_curves(sizes=QWEN_SIZES[:4], n_eval=20).to_csv(runs, index=False)
    assert main(["rl", str(runs), "--bootstrap", "30", "--level", "0.8", "--json", str(tmp_path / "rl.json")]) == 0
    assert "Estimates with 80 % intervals" in capsys.readouterr().out
    saved = load_result(tmp_path / "rl.json")
    assert saved.level == 0.8 and saved.source == str(runs)
    pd.testing.assert_frame_equal(saved.intervals, saved.conf_int(0.8))
    assert main(["rl", str(runs), "--level", "95"]) == EXIT_INPUT_ERROR
    assert "level must be a coverage between 0 and 1" in capsys.readouterr().err
    flat = tmp_path / "flat.csv"
    synthetic_curves(k_max=0.1, n0=1.0, sizes=QWEN_SIZES[:4], n_eval=20).to_csv(flat, index=False)
    assert main(["rl", str(flat), "--bootstrap", "10", "--out", str(tmp_path / "flat")]) == 1
    assert "SUSPECT: " in capsys.readouterr().out
    assert load_result(tmp_path / "flat" / "result.json").status == "suspect"


# --- the shipped sweep ------------------------------------------------------------------------------------


@pytest.mark.skipif(not SHIPPED.exists(), reason="data/rl_runs.parquet not generated yet")
def test_shipped_rl_runs_span_the_promised_sizes_and_fit_end_to_end():
    table = load_rl_runs(SHIPPED)
    assert table["params"].nunique() >= 4 and table["params"].max() / table["params"].min() >= 10
    assert (table["heldout_problems"] >= 200).all()
    assert table["pass_at_1"].between(0, 1).all() and table["greedy_acc"].between(0, 1).all()
    assert (table["flops"] == 6.0 * table["params"] * table["tokens"]).all()
    assert (table["flops_convention"] == "6ND").all()
    for protocol in (None, "early:0.5", "holdout-largest:1"):
        result = fit_rl(table, protocol=protocol, bootstrap=20)
        assert math.isfinite(result.params["K_max"]) and math.isfinite(result.r2)
        assert json.dumps(result.to_dict(), allow_nan=False)


# --- the result protocol ----------------------------------------------------------------------------------

FIXTURES = REPO / "tests" / "fixtures"
#: rl.json of schema 1, written by :func:`write_schema1_fixture` (``.venv/bin/python tests/test_rl.py``) with the
#: code of the commit that added it: all seven Qwen sizes, 20 evaluations each, the largest held out.
SCHEMA1_FIXTURE = FIXTURES / "rl_schema1.json"


def write_schema1_fixture() -> None:
    """Fit the synthetic truth (K_max = 0.135, N0 = 13.1B) and save it as the schema-1 fixture."""
    result = fit_rl(synthetic_curves(n_eval=20, seed=7), protocol="holdout-largest:1", bootstrap=40, seed=1,
                    source="synthetic_curves(n_eval=20, seed=7)")
    result.save(SCHEMA1_FIXTURE)


@pytest.fixture(scope="module")
def backtested():
    return fit_rl(synthetic_curves(sizes=QWEN_SIZES[:5], n_eval=30), protocol="holdout-largest:1", bootstrap=60,
                  source="synthetic")


def test_save_load_gives_the_same_summary_and_numbers(backtested, tmp_path):
    from scalefit.results import load_result

    path = backtested.save(tmp_path / "rl.json")
    again = load_result(path)
    assert isinstance(again, RLFit) and again.kind == "rl"
    assert again.summary().as_text() == backtested.summary().as_text()
    assert again.summary(level=0.8).as_text() == backtested.summary(level=0.8).as_text()
    pd.testing.assert_frame_equal(again.conf_int(0.9), backtested.conf_int(0.9))
    pd.testing.assert_frame_equal(again.per_size, backtested.per_size)
    pd.testing.assert_frame_equal(again.prediction(), backtested.prediction())
    pd.testing.assert_frame_equal(again.points, backtested.points)
    assert again.heldout_error == backtested.heldout_error and again.fit.success == backtested.fit.success
    saved, reloaded = json.loads(path.read_text()), RLFit.load(path).to_dict()
    assert {k: v for k, v in reloaded.items() if k != "fit"} == {k: v for k, v in saved.items() if k != "fit"}
    for key in ("params", "loss", "success", "message", "objective", "residuals", "n_starts", "n_converged"):
        assert reloaded["fit"][key] == saved["fit"][key]


def test_conf_int_at_any_level_from_the_stored_draws(backtested):
    narrow, wide = backtested.conf_int(0.9), backtested.conf_int(0.99)
    estimates = backtested.params
    assert list(narrow.index) == list(estimates.index)
    assert (wide["lo"] < narrow["lo"]).all() and (narrow["hi"] < wide["hi"]).all()
    for bounds in (narrow, wide):
        assert (bounds["lo"] <= estimates).all() and (estimates <= bounds["hi"]).all()
    pd.testing.assert_frame_equal(backtested.intervals, backtested.conf_int(0.95))
    # the per-size table's k bounds are the intervals of the k[...] parameters at the same level
    table = backtested.per_size_table(0.9)
    assert table.loc["3B", "k_lo"] == narrow.loc["k[3B]", "lo"] and np.isnan(table.loc["14B", "k_lo"])
    with pytest.raises(ScalefitInputError, match="between 0 and 1"):
        backtested.conf_int(95)


def test_the_summary_renders_as_text_and_html(backtested):
    text = backtested.summary().as_text()
    assert "Estimates with 95 % intervals" in text and "Backtest: errors on held-out points" in text
    assert "90 % intervals" in backtested.summary(level=0.9).as_text()
    html = backtested._repr_html_()
    assert html.startswith("<div>") and "K_max" in html and "<table" in html and "slope-only" in html


def test_the_prediction_frame_brackets_the_law_and_the_data(backtested):
    frame = backtested.prediction()
    assert list(frame.columns) == ["mean", "mean_lo", "mean_hi", "obs_lo", "obs_hi"]
    assert (frame["mean_lo"] <= frame["mean"]).all() and (frame["mean"] <= frame["mean_hi"]).all()
    assert (frame["obs_lo"] < frame["mean_lo"]).all() and (frame["mean_hi"] < frame["obs_hi"]).all()
    # one new evaluation (noise sd 0.005 on L) falls in the 95 % new-evaluation band about 95 % of the time
    observed = backtested.points.loc[frame.index, "loss"]
    inside = ((frame["obs_lo"] <= observed) & (observed <= frame["obs_hi"])).mean()
    assert 0.85 <= inside <= 1.0
    # the noiseless law at 3B, 2e18 FLOPs (inside the curve) lies within the mean's 95 % interval
    at = backtested.prediction({"params": [3e9], "flops": [2e18]})
    assert at.loc[0, "mean_lo"] < synthetic_error(3e9, 2e18, first_step=6) < at.loc[0, "mean_hi"]
    with pytest.raises(ScalefitInputError, match="fitted sizes"):
        backtested.prediction({"params": [72e9], "flops": [1e22]})


def synthetic_error(n: float, flops: float, *, first_step: int, k_max: float = 0.135, n0: float = 13.1e9) -> float:
    """The noiseless ``L`` of :func:`synthetic_curves` (compute axis) at size ``n`` after ``flops``; the first
    evaluation is after ``first_step`` steps (``200 // n_eval``)."""
    first = 6.0 * n * TOKENS_PER_STEP * first_step
    return (0.75 - 0.06 * np.log(n / QWEN_SIZES[0])) * (flops / first) ** (-k_max / (1 + n0 / n))


def test_status_is_suspect_when_n0_sits_on_its_bound_and_ok_otherwise(backtested):
    assert backtested.status == "ok" and backtested.reasons == () and backtested.exit_code == 0
    flat = fit_rl(synthetic_curves(k_max=0.1, n0=1.0, sizes=QWEN_SIZES[:4], n_eval=30), bootstrap=20)
    assert flat.status == "suspect" and flat.exit_code == 1
    assert any(reason.startswith("N0 is on its lower bound") for reason in flat.reasons)
    assert flat.n0_held == "lower" and "N0" not in flat.draws.columns
    assert "SUSPECT: " in flat.summary().as_text() and "<strong>SUSPECT</strong>" in flat._repr_html_()


def test_the_committed_schema1_fixture_keeps_loading_and_holds_the_truth():
    from scalefit.results import load_result

    result = load_result(SCHEMA1_FIXTURE)
    assert isinstance(result, RLFit) and result.status == "ok"
    truth = PAPER_CONSTANTS["base, L(N,C)"]
    assert relative_error(result.params["K_max"], truth["K_max"]) < 0.10
    assert relative_error(result.params["N0"], truth["N0"]) < 0.15
    for name in ("K_max", "N0"):
        lo, hi = result.conf_int(0.95).loc[name]
        assert lo < truth[name] < hi
    assert result.conf_int(0.5).loc["K_max", "hi"] < result.conf_int(0.99).loc["K_max", "hi"]
    assert set(result.heldout_error) == {"slope-only", "full"} and result.protocol["targets"] == ["72B"]
    assert result.heldout_error["slope-only"]["rel_error_end"] < 0.05
    assert result.summary().as_text().startswith("RL post-training scaling law")


def test_a_damaged_rl_json_is_one_clear_error(tmp_path):
    doc = json.loads(SCHEMA1_FIXTURE.read_text())
    for damage, match in ((lambda d: d.update(schema_version=99), "schema_version 99"),
                          (lambda d: d.update(kind="fit"), "holds a 'fit' result"),
                          (lambda d: d["fit"]["params"].pop("K_max"), "lack"),
                          (lambda d: d.pop("points"), "not a valid rl result")):
        broken = json.loads(json.dumps(doc))
        damage(broken)
        (tmp_path / "bad.json").write_text(json.dumps(broken))
        with pytest.raises(ScalefitInputError, match=match):
            RLFit.load(tmp_path / "bad.json")


# --- the engine's resampling schemes ---------------------------------------------------------------------


def test_segment_counts_move_whole_segments_within_each_group():
    groups = np.repeat(["a", "b"], [10, 7])
    order = np.concatenate([np.arange(10)[::-1], np.arange(7)])  # group a listed backwards
    counts = segment_counts(groups, order, 3, 500, np.random.default_rng(0))
    for rows, n_segments in ((np.flatnonzero(groups == "a"), 4), (np.flatnonzero(groups == "b"), 3)):
        ranked = rows[np.argsort(order[rows])]
        segment = np.arange(len(ranked)) // 3
        for s in range(n_segments):
            block = counts[:, ranked[segment == s]]
            assert (block == block[:, :1]).all()  # a segment's points move together
        drawn = np.stack([counts[:, ranked[segment == s][0]] for s in range(n_segments)], axis=1)
        assert (drawn.sum(axis=1) == n_segments).all()  # as many segments as the group has
    assert counts.mean() == pytest.approx(1.0, abs=0.05)
    with pytest.raises(FitError, match="segment_length"):
        segment_counts(groups, order, 0, 5, np.random.default_rng(0))


def test_grouped_counts_draw_whole_groups():
    from scalefit.fitting.bootstrap import resample_counts

    groups = np.repeat(["r1", "r2", "r3", "r4"], 5)
    counts = resample_counts(len(groups), 200, np.random.default_rng(1), groups)
    assert (counts.reshape(200, 4, 5) == counts.reshape(200, 4, 5)[:, :, :1]).all()
    assert (counts.sum(axis=1) == 20).all() and len(np.unique(counts, axis=0)) > 20


def _correlated_curves(seed: int, rho: float = 0.5, sd: float = 0.01, n_points: int = 40) -> pd.DataFrame:
    """Four RL curves of the law (K_max = 0.3, N0 = 3B) with stationary AR(1) noise on log L along each curve."""
    rng = np.random.default_rng(seed)
    frames = []
    for n in np.array([0.5, 1.5, 4.0, 12.0]) * 1e9:
        flops = np.geomspace(1e17, 1e19, n_points) * n / 1e9
        noise = np.zeros(n_points)
        noise[0] = rng.normal(0.0, sd / np.sqrt(1 - rho**2))
        for i in range(1, n_points):
            noise[i] = rho * noise[i - 1] + rng.normal(0.0, sd)
        log_l = np.log(0.8) - 0.3 / (1 + 3e9 / n) * np.log(flops / flops[0]) + noise
        frames.append(pd.DataFrame({"run_id": f"n{n:g}", "params": n, "flops": flops, "loss": np.exp(log_l)}))
    return pd.concat(frames, ignore_index=True)


def test_segment_refits_cover_the_truth_where_a_point_bootstrap_does_not():
    """Noise correlated along every curve (AR(1), ρ = 0.5): over 12 data sets, the 95 % interval of K_max from
    segments of ceil(40^(1/3)) = 4 points covers the truth (0.3) at least 10 times; segments of one point
    (a point bootstrap within curves, which treats neighbours as independent) cover it less often."""
    from scalefit.fitting import fit

    covered = {1: 0, 4: 0}
    for seed in range(12):
        data = _correlated_curves(seed)
        law = RLEfficiency(data["params"].unique(), "flops")
        result = fit(law, data, loss="mse_log", bootstrap=0)
        assert result.success, result.message
        assert default_segment_length(data["run_id"]) == 4
        for length in covered:
            counts = segment_counts(data["run_id"], data["flops"], length, 150, np.random.default_rng(seed))
            draws = refit_resamples(law, data, counts, result.params, loss="mse_log")
            assert draws["converged"].all()
            lo, hi = np.quantile(draws["K_max"], [0.025, 0.975])
            covered[length] += bool(lo < 0.3 < hi)
    assert covered[4] >= 10 and covered[1] < covered[4]


if __name__ == "__main__":
    write_schema1_fixture()
