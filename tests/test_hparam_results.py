"""LR/BS results follow the result protocol, fit through the engine, and say honestly what they can support."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_hyperparams import LR_A, LR_B, STEPLAW_DIR, shared_file, synthetic_sweep

from scalefit import hyperparams as hp
from scalefit.cli import main
from scalefit.errors import ScalefitInputError
from scalefit.hyperparams.least_squares import cluster_cov, ols
from scalefit.hyperparams.quadratic import quadratic_design
from scalefit.results import load_result

FIXTURE = Path(__file__).parent / "fixtures" / "hparams_schema0.json"


@pytest.fixture(scope="module")
def laws() -> hp.HparamLaws:
    return hp.fit_hparams(synthetic_sweep(), n_bootstrap=300)


# --- the engine and numpy replace statsmodels --------------------------------------------------------


def test_quadratic_least_squares_matches_statsmodels_to_1e_10():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(14, 2))
    loss = 2 + 0.1 * x[:, 0] ** 2 + 0.05 * x[:, 1] ** 2 + 0.02 * x[:, 0] * x[:, 1] + rng.normal(0, 1e-3, 14)
    design = quadratic_design(x)
    coef, cov = ols(design, loss)
    reference = sm.OLS(loss, design).fit()
    np.testing.assert_allclose(coef, reference.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(cov, reference.cov_params(), rtol=1e-10, atol=1e-16)


def test_clustered_covariance_matches_statsmodels_to_1e_10():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(9), 4)
    design = np.column_stack([np.ones(36), rng.normal(size=36), rng.normal(size=36)])
    response = design @ [0.5, -0.7, 0.3] + rng.normal(0, 0.1, 9)[groups] + rng.normal(0, 0.05, 36)
    coef, _ = ols(design, response)
    reference = sm.OLS(response, design).fit(cov_type="cluster", cov_kwds={"groups": groups})
    np.testing.assert_allclose(cluster_cov(design, response - design @ coef, groups), reference.cov_params(),
                               rtol=1e-10, atol=1e-16)


def test_without_bootstrap_intervals_come_from_the_least_squares_covariance(laws):
    plain = hp.fit_hparam_laws(laws.optima, n_bootstrap=0)["lr_vs_N_D"]
    assert len(plain.draws) == 0 and "least-squares covariance (bootstrap=0)" in plain.interval_method
    assert plain.intervals["a"][0] < LR_A < plain.intervals["a"][1]
    plateau = hp.fit_hparam_laws(laws.optima, fit_on="plateau", n_bootstrap=0)["lr_vs_N_D"]
    assert "clustered by group" in plateau.interval_method


def test_laws_are_fitted_by_the_engine_to_the_least_squares_solution(laws):
    law = laws["lr_vs_N_D"]
    points = law.points
    design = np.column_stack([np.ones(len(points)), np.log(points[["params", "tokens"]].to_numpy())])
    response = np.log(points["lr"].to_numpy())
    solution, *_ = np.linalg.lstsq(design, response, rcond=None)
    np.testing.assert_allclose(law.log_coef, solution, rtol=0, atol=1e-7)
    residuals = response - design @ solution
    assert law.residual_std == pytest.approx(math.sqrt(residuals @ residuals / (len(points) - 3)), rel=1e-6)
    assert law.params["a"] == pytest.approx(LR_A, abs=0.05) and law.params["b"] == pytest.approx(LR_B, abs=0.05)


# --- the result protocol -----------------------------------------------------------------------------


def test_every_hparam_result_round_trips_to_the_same_summary(laws, tmp_path):
    advice = laws.recommend(1.5e8, 6e9, seq_len=1024)
    preset = hp.recommend(7e9, 1.4e12, "steplaw")
    for k, result in enumerate((laws, laws.optima, laws["lr_vs_N_D"], advice, preset, hp.preset_laws("steplaw"))):
        path = result.save(tmp_path / f"{k}_{result.kind}.json")
        loaded = type(result).load(path)
        assert loaded.summary().as_text() == result.summary().as_text()
        assert load_result(path).summary().as_text() == result.summary().as_text()
        assert "<table>" in loaded._repr_html_()
    assert hp.HparamLaws.load(tmp_path / "0_hparam_laws.json").recommend(1.5e8, 6e9).lr == pytest.approx(advice.lr)


def test_conf_int_at_any_level_from_stored_draws(laws):
    law = laws["lr_vs_N_D"]
    narrow, wide = law.conf_int(0.9), law.conf_int(0.99)
    assert (narrow["lo"] > wide["lo"]).all() and (narrow["hi"] < wide["hi"]).all()
    tail = np.quantile(law.draws["a"], [0.05, 0.95])
    assert tuple(narrow.loc["a"]) == pytest.approx(tuple(tail))
    stacked = laws.conf_int(0.99)
    assert stacked.loc["lr_vs_N_D.a", "lo"] == wide.loc["a", "lo"]
    assert set(laws.params.index) == set(stacked.index)
    for result in (laws.optima, laws.recommend(1.5e8, 6e9), hp.recommend(7e9, 1.4e12, "steplaw")):
        for level in (0.9, 0.99):
            bounds = result.conf_int(level)
            assert (bounds["lo"] < result.params[bounds.index]).all()
            assert (bounds["hi"] > result.params[bounds.index]).all()
        assert (result.conf_int(0.99)["hi"] > result.conf_int(0.9)["hi"]).all()


def test_default_level_is_95_percent(laws):
    assert laws.level == laws["bs_vs_D"].level == laws.optima.level == 0.95
    assert hp.recommend(7e9, 1.4e12, "steplaw").level == 0.95
    assert "95 %" in laws.summary().as_text()


def test_schema0_file_written_before_the_redesign_still_loads():
    old = json.loads(FIXTURE.read_text())
    laws = hp.HparamLaws.load(FIXTURE)
    assert set(laws.laws) == set(old["laws"])
    law = laws["lr_vs_N_D"]
    assert law.params.to_dict() == old["laws"]["lr_vs_N_D"]["params"]
    assert law.conf_int(0.9).loc["a"].tolist() == old["laws"]["lr_vs_N_D"]["intervals"]["a"]  # stored level
    assert np.isnan(law.conf_int(0.99).loc["a", "lo"])  # schema 0 kept no draws: no other level
    assert laws.recommend(2e8, 8e9).lr == pytest.approx(law.params["c"] * 2e8 ** law.params["a"] * 8e9 ** law.params["b"])
    assert "lr* = c * N^a * D^b" in laws.summary().as_text()


# --- honest output (#11.5) ---------------------------------------------------------------------------


def sweep_with_unswept_groups() -> pd.DataFrame:
    """Five swept groups of an LR-only sweep, plus six groups that tried a single LR."""
    swept = synthetic_sweep(params=(1e8, 4e8), tokens=(2e9, 8e9, 3.2e10), batch_sizes=False)
    swept = swept[~((swept["params"] == 4e8) & (swept["tokens"] == 3.2e10))]
    single = synthetic_sweep(params=(2e8, 8e8), tokens=(2e9, 8e9, 3.2e10), batch_sizes=False)
    single = single.groupby(["params", "tokens"]).nth(4)
    return pd.concat([swept, single], ignore_index=True).drop(columns=["lr_opt", "bs_opt"])


def test_only_swept_groups_are_listed_and_the_others_counted():
    optima = hp.locate_optima(sweep_with_unswept_groups())
    text = optima.summary().as_text()
    assert len(optima.groups) == 11 and len(optima.swept) == 5 and optima.n_skipped == 6
    assert "6 of 11 groups skipped" in text
    assert "fewer than three distinct" not in text  # the skipped groups' own warnings are not listed
    assert set(optima.params.index) == {f"{g}: lr" for g in optima.swept["group"]}


def test_law_with_few_optima_is_suspect_and_the_cli_exits_1(tmp_path, capsys):
    runs = sweep_with_unswept_groups()
    laws = hp.fit_hparams(runs, n_bootstrap=100)
    law = laws["lr_vs_N_D"]
    assert law.n_groups == 5 - 1 or law.n_groups == 5
    path = tmp_path / "sweep.parquet"
    runs.to_parquet(path)
    few = runs[runs["params"] == 1e8]  # 3 swept groups: lr_vs_N_D (3 parameters) is refused
    refused = hp.fit_hparams(pd.concat([few, runs[runs["params"] == 4e8].iloc[:9]]), n_bootstrap=0)
    assert "lr_vs_N_D" in refused and refused["lr_vs_N_D"].n_groups == 4
    assert refused["lr_vs_N_D"].status == "suspect"
    assert "4 located optima for 3 parameters" in refused["lr_vs_N_D"].reasons[0]
    assert refused.status == "suspect" and refused.exit_code == 1
    # Four groups give too few distinct bootstrap resamples: the engine says no interval can be read.
    unread = hp.fit_hparam_laws(refused.optima, n_bootstrap=100)["lr_vs_N_D"]
    assert unread.status == "suspect" and any("NOT IDENTIFIED" in r for r in unread.reasons)
    assert unread.conf_int(0.95).isna().all().all() and not unread.intervals
    small = tmp_path / "small.parquet"
    pd.concat([few, runs[runs["params"] == 4e8].iloc[:9]]).to_parquet(small)
    assert main(["hparams", str(small), "--bootstrap", "50"]) == 1
    printed = capsys.readouterr().out
    assert "SUSPECT" in printed
    lines = [line for line in printed.splitlines() if "optimum may be" in line or "skipped" in line]
    assert len(lines) == len(set(lines))  # each warning once


def test_unidentified_law_is_reported_not_offered():
    rng = np.random.default_rng(1)
    rows = []
    for k, flops in enumerate(np.geomspace(1e17, 1.2e17, 5)):  # budgets 0.08 decades apart: no slope to see
        lr_opt = 3e-3 * math.exp(rng.normal(0, 0.3))
        for lr in lr_opt * 2 ** ((np.arange(-4, 5) + 0.3) / 2):
            rows.append({"params": 1e8 * (1 + k), "tokens": flops / (6e8 * (1 + k)), "flops": flops, "lr": lr,
                         "loss": 2.0 + 0.02 * math.log(lr / lr_opt) ** 2})
    laws = hp.fit_hparams(pd.DataFrame(rows), group_by="flops", n_bootstrap=200)
    law = laws["lr_vs_C"]
    assert law.status == "failed" and "interval of a" in law.reasons[0]
    assert "lr_vs_C" not in laws.usable and "lr_vs_C.a" not in laws.params
    text = laws.summary().as_text()
    assert "lr_vs_C: unidentified" in text and "lr_vs_C    a" not in text
    assert laws.status == "failed"
    with pytest.raises(ScalefitInputError, match="no identified learning-rate law"):
        laws.recommend(1e8, 1e9)


@pytest.mark.parametrize("level", [0.5, 0.95, 0.99])
def test_prediction_and_planning_bands_contain_the_confidence_band(laws, level):
    grid = {"params": np.geomspace(1e7, 1e11, 9), "tokens": np.geomspace(1e9, 1e13, 9)}
    for law in (laws["lr_vs_N_D"], hp.preset_laws("steplaw")["lr_vs_N_D"]):
        frame = law.prediction(**grid, level=level)
        for band in ("obs", "plan"):
            if f"{band}_lo" in frame:
                assert (frame[f"{band}_lo"] <= frame["mean_lo"]).all() and (frame[f"{band}_hi"] >= frame["mean_hi"]).all()
        assert (frame["mean_lo"] < frame["mean"]).all() and (frame["mean"] < frame["mean_hi"]).all()


def test_plotted_prediction_band_contains_the_confidence_band(laws):
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PolyCollection

    figure = laws["lr_vs_C"].plot() if "lr_vs_C" in laws.usable else laws["lr_vs_N_D"].plot()
    bands = {c.get_label(): c.get_paths()[0].vertices for c in figure.axes[0].collections
             if isinstance(c, PolyCollection)}
    prediction = next(v for k, v in bands.items() if "prediction" in k)
    confidence = next(v for k, v in bands.items() if "confidence" in k)
    assert prediction[:, 1].max() >= confidence[:, 1].max() and prediction[:, 1].min() <= confidence[:, 1].min()


def test_preset_planning_interval_adds_the_published_scatter_of_optima():
    advice = hp.recommend(7e9, 1.4e12, "steplaw")
    z = stats.norm.ppf(0.975)
    conf_lo, conf_hi = advice.lr_interval
    plan_lo, plan_hi = advice.lr_planning_interval
    half = math.log(advice.lr / conf_lo)
    assert math.log(advice.lr / plan_lo) == pytest.approx(math.hypot(half, z * hp.presets.STEPLAW_LR_PLAN_STD))
    assert plan_lo < conf_lo and plan_hi > conf_hi
    assert advice.batch_size_planning_interval[0] < advice.batch_size_interval[0]
    assert advice.lr_prediction_interval is None  # a preset publishes no fitted points
    assert "Assumes optimizer" in advice.summary().as_text() and "AdamW" in advice.summary().as_text()


def test_steplaw_planning_scatter_constant_matches_the_grid():
    grid = shared_file(STEPLAW_DIR / "dense_lr_bs_loss.csv")
    optima = hp.locate_optima(hp.read_steplaw_csv(grid))
    preset = hp.preset_laws("steplaw")
    for axis, law, constant in (("lr", preset["lr_vs_N_D"], hp.presets.STEPLAW_LR_PLAN_STD),
                                ("batch_size", preset["bs_vs_D"], hp.presets.STEPLAW_BS_PLAN_STD)):
        located = optima.groups[optima.groups[f"{axis}_located"]]
        assert len(located) == 17
        residuals = np.log(located[f"opt_{axis}"]) - np.log(law.predict(params=located["params"],
                                                                          tokens=located["tokens"]))
        assert math.sqrt(np.mean(residuals**2)) == pytest.approx(constant, abs=5e-4)


def test_extrapolation_warns_only_past_one_decade(laws):
    near = laws.recommend(4e8 * 10**0.5, 8e9)  # N half a decade beyond the fitted 4e8
    assert near.extrapolation_decades == pytest.approx(0.5)
    assert not any("decades outside" in w for w in near.warnings)
    assert "0.50 decades beyond the fitted range" in near.summary().as_text()
    far = laws.recommend(4e10, 8e9)
    assert far.extrapolation_decades == pytest.approx(2.0)
    assert any("2.00 decades outside the fitted range" in w for w in far.warnings)
    assert far.to_dict()["extrapolation_by_variable"]["params"] == pytest.approx(2.0)


def test_cli_recommend_shows_refit_and_preset_side_by_side(tmp_path, capsys):
    runs = tmp_path / "sweep.parquet"
    synthetic_sweep(params=(1e8, 4e8), tokens=(2e9, 8e9, 3.2e10)).drop(columns=["lr_opt", "bs_opt"]).to_parquet(runs)
    out = tmp_path / "rec.json"
    code = main(["recommend", "--runs", str(runs), "--params", "2e8", "--tokens", "8e9", "--bootstrap", "100",
                 "--level", "0.9", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "side by side" in printed and str(runs) in printed and "preset steplaw" in printed
    assert "90 % planning" in printed and "Assumes optimizer" not in printed.split("side by side")[0]
    record = json.loads(out.read_text())
    assert record["level"] == 0.9 and record["extrapolation_decades"] == 0
    assert record["compared_with"][0]["source"].startswith("preset steplaw")
    assert record["compared_with"][0]["setup"]["optimizer"] == "AdamW"


def test_cli_hparams_writes_a_handful_of_landscapes_for_swept_groups_only(tmp_path):
    runs = tmp_path / "sweep.parquet"
    sweep_with_unswept_groups().to_parquet(runs)
    out = tmp_path / "hp"
    main(["hparams", str(runs), "--out", str(out), "--bootstrap", "50"])
    assert len(list((out / "landscapes").glob("*.png"))) == 5  # 5 swept of 11 groups
    many = tmp_path / "many.parquet"
    synthetic_sweep(params=(5e7, 1e8, 2e8, 4e8), batch_sizes=False).drop(columns=["lr_opt", "bs_opt"]).to_parquet(many)
    main(["hparams", str(many), "--out", str(tmp_path / "many"), "--bootstrap", "50"])
    assert [p.name for p in (tmp_path / "many" / "landscapes").glob("*.png")] == ["swept_groups.png"]
    assert hp.HparamLaws.load(tmp_path / "many" / "hparams.json").optima.n_skipped == 0


def test_hparam_power_law_jacobian_matches_finite_differences():
    from scalefit.laws import HPARAM_LAWS, Law

    law = HPARAM_LAWS["lr_vs_N_D"]
    theta = np.array([[0.5, -0.7, 0.3], [-2.0, -0.2, 0.6]])
    inputs = np.array([[1e8, 1e10], [4e8, 3e9], [2e9, 1e11]])
    value, analytic = law.log_predict_jacobian(theta, inputs)
    _, numeric = Law.log_predict_jacobian(law, theta, inputs)  # the base class's central differences
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)
    np.testing.assert_allclose(value[0], 0.5 - 0.7 * np.log(inputs[:, 0]) + 0.3 * np.log(inputs[:, 1]))
    assert law.formula == "lr* = c * N^a * D^b" and law.reported_names == ("c", "a", "b")


def test_a_fitted_recommendation_states_the_setup_its_sweep_shared():
    runs = synthetic_sweep(params=(1e8, 4e8), tokens=(2e9, 8e9, 3.2e10)).assign(schedule="cosine", seq_len=1024)
    laws = hp.fit_hparams(runs, n_bootstrap=0)
    assert laws.setup == {"schedule": "cosine", "sequence length": "1024"}
    text = laws.recommend(2e8, 8e9).summary().as_text()
    assert "Assumes schedule:" in text and "sequences of 1024" in text


def test_schema1_fixture_keeps_loading_and_resaves_unchanged(tmp_path):
    """A file of today's schema, committed: a later change that breaks reading it fails here."""
    fixture = Path(__file__).parent / "fixtures" / "hparams_schema1.json"
    laws = hp.HparamLaws.load(fixture)
    assert laws["lr_vs_N_D"].params["a"] == pytest.approx(LR_A, abs=0.05)  # the sweep's known truth
    assert laws["lr_vs_N_D"].conf_int(0.9).loc["a", "lo"] > laws["lr_vs_N_D"].conf_int(0.99).loc["a", "lo"]
    assert len(laws.optima.swept) == 6 and laws.recommend(2e8, 8e9).lr > 0
    resaved = json.loads(laws.save(tmp_path / "again.json").read_text())
    assert resaved == json.loads(fixture.read_text())
