"""Optimal LR / batch-size laws: optima on known synthetic landscapes, law recovery, presets, CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalefit import hyperparams as hp
from scalefit.cli import main
from scalefit.errors import ScalefitInputError

# Truth of the synthetic sweeps (Step Law's shape, round numbers).
LR_C, LR_A, LR_B = 2.0, -0.7, 0.3
BS_C, BS_G = 0.5, 0.55
STEPLAW_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "steplaw_dense"


def true_lr(params, tokens):
    return LR_C * np.asarray(params, float) ** LR_A * np.asarray(tokens, float) ** LR_B


def true_bs(tokens):
    return BS_C * np.asarray(tokens, float) ** BS_G


def landscape(lr, bs, lr_opt, bs_opt, floor=2.5):
    """loss = L0 + 0.02 (ln lr - ln lr*)^2 + 0.01 (ln B - ln B*)^2."""
    return floor + 0.02 * np.log(lr / lr_opt) ** 2 + 0.01 * np.log(bs / bs_opt) ** 2


def synthetic_sweep(
    params=(5e7, 1e8, 2e8, 4e8),
    tokens=(2e9, 8e9, 3.2e10),
    *,
    seed=0,
    noise=3e-4,
    group_scatter=0.05,
    batch_sizes=True,
) -> pd.DataFrame:
    """An LR (× batch-size) grid per (N, D) around optima that follow the true laws.

    Each group's optimum is the law times a log-normal group effect (``group_scatter``), so the laws
    hold on average; grids are √2 in LR and in batch size, offset at random from the optimum.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in params:
        for d in tokens:
            lr_opt = float(true_lr(n, d)) * math.exp(rng.normal(0, group_scatter))
            bs_opt = float(true_bs(d)) * math.exp(rng.normal(0, group_scatter))
            lr_grid = lr_opt * 2 ** ((np.arange(-4, 5) + rng.uniform(-0.5, 0.5)) / 2)
            bs_grid = bs_opt * 2 ** ((np.arange(-3, 4) + rng.uniform(-0.5, 0.5)) / 2) if batch_sizes \
                else np.array([bs_opt])
            for lr in lr_grid:
                for bs in bs_grid:
                    loss = landscape(lr, bs, lr_opt, bs_opt, floor=1.7 + 30 * n**-0.2) + rng.normal(0, noise)
                    rows.append({"run_id": f"n{n:.0e}_d{d:.0e}_lr{lr:.3e}_bs{bs:.0f}", "params": n,
                                 "tokens": d, "loss": loss, "lr": lr, "batch_size": bs, "status": "ok",
                                 "lr_opt": lr_opt, "bs_opt": bs_opt})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    return synthetic_sweep()


@pytest.fixture(scope="module")
def optima(sweep) -> hp.HparamOptima:
    return hp.locate_optima(sweep)


# --- locating optima ----------------------------------------------------------------------------------


def test_interpolated_optimum_lands_on_known_lr_and_batch_size(sweep, optima):
    truth = sweep.groupby(["params", "tokens"])[["lr_opt", "bs_opt"]].first().reset_index()
    found = optima.groups.merge(truth, on=["params", "tokens"])
    assert (found["method"] == "quadratic").all()
    assert np.abs(np.log(found["opt_lr"] / found["lr_opt"])).max() < 0.03
    assert np.abs(np.log(found["opt_batch_size"] / found["bs_opt"])).max() < 0.05
    covered_lr = (found["opt_lr_lower"] <= found["lr_opt"]) & (found["lr_opt"] <= found["opt_lr_upper"])
    covered_bs = ((found["opt_batch_size_lower"] <= found["bs_opt"])
                  & (found["bs_opt"] <= found["opt_batch_size_upper"]))
    # 90% intervals over 12 groups: most, not necessarily all, cover.
    assert covered_lr.mean() >= 0.75 and covered_bs.mean() >= 0.75


def test_lr_only_sweep_interpolates_between_grid_points():
    lr_opt = 3e-3
    lrs = lr_opt * 2 ** ((np.arange(-4, 5) + 0.4) / 2)
    runs = pd.DataFrame({"params": 1e8, "tokens": 2e9, "lr": lrs,
                         "loss": 2.0 + 0.03 * np.log(lrs / lr_opt) ** 2})
    group = hp.locate_optima(runs).groups.iloc[0]
    assert group["method"] == "quadratic"
    assert group["opt_lr"] == pytest.approx(lr_opt, rel=1e-6)
    assert group["best_lr"] != pytest.approx(lr_opt, rel=0.05)
    assert np.isnan(group["opt_batch_size"])


def test_plateau_is_every_run_within_tolerance_of_the_best(optima):
    runs = optima.runs
    best = runs[~runs["excluded"]].groupby("group")["loss"].transform("min")
    expected = (~runs["excluded"]) & (runs["loss"] <= 1.0025 * best)
    assert (runs["on_plateau"] == expected).all()
    counts = optima.plateau.groupby("group").size()
    assert (optima.groups.set_index("group")["n_plateau"] == counts.reindex(optima.groups["group"])).all()


def test_diverged_and_nan_runs_are_excluded_and_reported():
    lrs = 1e-3 * 2 ** (np.arange(-4, 5) / 2)
    losses = 2.0 + 0.03 * np.log(lrs / 1.1e-3) ** 2
    runs = pd.DataFrame({"run_id": [f"r{k}" for k in range(len(lrs))], "params": 1e8, "tokens": 2e9,
                         "lr": lrs, "loss": losses, "status": "ok"})
    extra = pd.DataFrame({"run_id": ["nan", "blowup", "flagged"], "params": 1e8, "tokens": 2e9,
                          "lr": [1.1e-3, 2e-2, 1.05e-3], "loss": [np.nan, 7.5, 1.0],
                          "status": ["ok", "ok", "diverged"]})
    result = hp.locate_optima(pd.concat([runs, extra], ignore_index=True))
    reasons = result.excluded.set_index("run_id")["exclusion_reason"]
    assert reasons["nan"] == "loss is not finite"
    assert reasons["blowup"].startswith("diverged: loss above 1.5x")
    assert reasons["flagged"] == "status diverged"
    group = result.groups.iloc[0]
    assert group["n_excluded"] == 3
    assert group["best_loss"] > 1.5  # the flagged run's loss of 1.0 did not count
    assert group["opt_lr"] == pytest.approx(1.1e-3, rel=1e-6)
    assert "excluded 1 runs: loss is not finite" in result.summary().as_text()


@pytest.mark.parametrize(("lr_opt", "edge"), [
    (1e-4, "optimum may be below the smallest LR tried"),
    (1e-1, "optimum may be above the largest LR tried"),
])
def test_minimum_on_grid_edge_falls_back_to_best_cell_and_names_the_edge(lr_opt, edge):
    lrs = 1e-3 * 2 ** (np.arange(-4, 5) / 2)
    runs = pd.DataFrame({"params": 1e8, "tokens": 2e9, "lr": lrs,
                         "loss": 2.0 + 0.03 * np.log(lrs / lr_opt) ** 2})
    result = hp.locate_optima(runs)
    group = result.groups.iloc[0]
    assert group["method"] == "grid"
    assert group["opt_lr"] == group["best_lr"] == (lrs.min() if lr_opt < 1e-3 else lrs.max())
    assert edge in group["warning"]
    assert any(edge in line for line in result.warnings)


def test_non_convex_landscape_falls_back_to_best_cell():
    lrs = 1e-3 * 2 ** (np.arange(-3, 4) / 2)
    # A hump between two dips, inside steep walls: no convex quadratic fits near the minimum.
    losses = [2.6, 2.000, 2.010, 2.016, 2.010, 2.002, 2.6]
    result = hp.locate_optima(pd.DataFrame({"params": 1e8, "tokens": 2e9, "lr": lrs, "loss": losses}))
    group = result.groups.iloc[0]
    assert group["method"] == "grid"
    assert group["opt_lr"] == lrs[1]
    assert "not convex" in group["warning"]


def test_final_losses_takes_last_step_and_smooths_over_last_points():
    runs = pd.DataFrame({"run_id": ["a"] * 4 + ["b"] * 2, "params": 1e8, "tokens": [1, 2, 3, 4, 1, 2],
                         "step": [1, 2, 3, 4, 1, 2], "loss": [4.0, 3.0, 2.2, 2.0, 5.0, 4.0]}).sample(
        frac=1, random_state=0)  # row order must not matter
    final = hp.final_losses(runs, smooth_last=2).set_index("run_id")
    assert final.loc["a", "loss"] == pytest.approx(2.1)
    assert final.loc["a", "step"] == 4
    assert final.loc["b", "loss"] == pytest.approx(4.5)
    assert hp.final_losses(runs).set_index("run_id").loc["a", "loss"] == 2.0


def test_steplaw_csv_adapter_counts_batch_size_in_tokens(tmp_path):
    csv = tmp_path / "grid.csv"
    csv.write_text("h,ffnh,numh,numl,lr,bs,ti,loss,smooth loss,exp_name,D,N,D/N\n"
                   "960,9368,15,7,0.0003453,736,66342,2.41,2.39,run1,100000000000,214663680,465.8\n")
    run = hp.load_sweep(csv).iloc[0]
    assert run["batch_size"] == 736 * 2048
    assert run["loss"] == 2.39 and run["params"] == 214663680 and run["tokens"] == 1e11
    assert run["flops"] == pytest.approx(6 * 214663680 * 1e11)
    assert hp.read_steplaw_csv(csv, smoothed=False).iloc[0]["loss"] == 2.41


# --- fitting the laws ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def laws(optima) -> hp.HparamLaws:
    return hp.fit_hparam_laws(optima)


def test_law_exponents_recovered_and_intervals_cover_truth(laws):
    lr_law, bs_law = laws["lr_vs_N_D"], laws["bs_vs_D"]
    assert lr_law.params["a"] == pytest.approx(LR_A, abs=0.05)
    assert lr_law.params["b"] == pytest.approx(LR_B, abs=0.05)
    assert bs_law.params["g"] == pytest.approx(BS_G, abs=0.05)
    for law, truth in ((lr_law, {"c": LR_C, "a": LR_A, "b": LR_B}), (bs_law, {"c": BS_C, "g": BS_G})):
        for name, value in truth.items():
            low, high = law.intervals[name]
            assert low <= value <= high, (law.name, name, low, value, high)
        assert "bootstrap over groups" in law.interval_method
    assert lr_law.n_groups == 12 and lr_law.fitted_on == "optima"


def test_plateau_fit_recovers_exponents_with_clustered_errors(optima):
    plateau_laws = hp.fit_hparam_laws(optima, fit_on="plateau", n_bootstrap=200)
    law = plateau_laws["lr_vs_N_D"]
    assert law.fitted_on == "plateau" and law.n_points > law.n_groups
    assert law.params["a"] == pytest.approx(LR_A, abs=0.06)
    assert law.params["b"] == pytest.approx(LR_B, abs=0.06)
    # Groups, not plateau points, are resampled: a group's plateau points travel together.
    assert "bootstrap over groups" in law.interval_method and "12 groups" in law.interval_method
    low, high = law.intervals["a"]
    assert low <= LR_A <= high


def test_compute_form_recovered_when_optima_follow_compute():
    rng = np.random.default_rng(3)
    rows = []
    for flops in np.geomspace(1e17, 1e20, 8):
        lr_opt = 0.3118 * flops**-0.125 * math.exp(rng.normal(0, 0.03))
        for n_share in (0.5, 1.0, 2.0):  # three models per budget, grouped together by FLOPs
            params = n_share * math.sqrt(flops / 120)
            for lr in lr_opt * 2 ** ((np.arange(-4, 5) + rng.uniform(-0.5, 0.5)) / 2):
                rows.append({"params": params, "tokens": flops / (6 * params), "flops": flops, "lr": lr,
                             "loss": 2.0 + 0.02 * math.log(lr / lr_opt) ** 2 + 0.01 * abs(math.log(n_share))})
    result = hp.fit_hparams(pd.DataFrame(rows), group_by="flops", n_bootstrap=300)
    law = result["lr_vs_C"]
    assert law.params["a"] == pytest.approx(-0.125, abs=0.02)
    assert law.intervals["a"][0] <= -0.125 <= law.intervals["a"][1]
    assert "lr_vs_N_D" not in result  # N and D are not single-valued within a FLOP budget
    assert "no swept group tried 3 or more batch sizes: no batch-size law" in result.notes


def test_prediction_interval_contains_confidence_interval(laws):
    law = laws["lr_vs_N_D"]
    confidence = law.predict(params=[1e8, 1e10], tokens=[1e10, 1e12], interval="confidence")
    prediction = law.predict(params=[1e8, 1e10], tokens=[1e10, 1e12], interval="prediction")
    assert (prediction["lower"] < confidence["lower"]).all()
    assert (prediction["upper"] > confidence["upper"]).all()
    assert (confidence["lower"] < confidence["estimate"]).all()
    assert np.allclose(confidence["estimate"], law.predict(params=[1e8, 1e10], tokens=[1e10, 1e12]))


def test_law_fails_readably_when_a_variable_never_varies():
    runs = synthetic_sweep(params=(1e8,), tokens=(2e9, 8e9, 3.2e10, 1e11))
    result = hp.fit_hparams(runs, n_bootstrap=0)
    assert "lr_vs_N_D" not in result
    assert any("params takes a single value" in note for note in result.notes)
    with pytest.raises(ScalefitInputError, match="no LR or batch-size law"):
        hp.fit_hparams(runs.iloc[:60], n_bootstrap=0)


def test_laws_to_dict_is_json_with_laws_and_groups(laws):
    payload = json.loads(json.dumps(laws.to_dict(), allow_nan=False))
    assert set(payload["laws"]) == {"lr_vs_N_D", "bs_vs_D", "bs_vs_N_D", "lr_vs_C", "bs_vs_C"}
    assert set(payload["laws"]["lr_vs_N_D"]["params"]) == {"c", "a", "b"}
    assert len(payload["laws"]["bs_vs_D"]["intervals"]["g"]) == 2
    assert len(payload["groups"]) == 12 and "opt_lr" in payload["groups"][0]
    assert "lr* = c * N^a * D^b" in laws.summary().as_text()


def test_same_seed_same_intervals(optima):
    first = hp.fit_hparam_laws(optima, n_bootstrap=200, seed=7)["lr_vs_N_D"].intervals
    second = hp.fit_hparam_laws(optima, n_bootstrap=200, seed=7)["lr_vs_N_D"].intervals
    assert first == second


# --- recommending and backtesting ---------------------------------------------------------------------


def test_steplaw_preset_reproduces_published_example():
    advice = hp.recommend(7e9, 1.4e12, "steplaw")
    assert advice.lr == pytest.approx(9.35e-4, rel=0.01)
    assert advice.batch_size_tokens == pytest.approx(5.00e6, rel=0.01)
    assert advice.batch_size_sequences == pytest.approx(2440, rel=0.01)
    assert advice.lr_interval[0] < advice.lr < advice.lr_interval[1]
    assert advice.extrapolation_decades == pytest.approx(math.log10(1.4e12 / 1e11))
    assert any("1.15 decades outside the fitted range" in w for w in advice.warnings)


def shared_file(path: Path) -> Path:
    """``path`` under ../shared; skipped when absent, except under CI (CI=true), where absence is a failure."""
    if not path.exists():
        message = f"{path} absent (../shared sits beside the repository in CI and on dev machines)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_steplaw_preset_uncertainty_matches_the_authors_bootstrap_fits():
    fits = pd.read_csv(shared_file(STEPLAW_DIR / "1004_fitted_lr_bs_scaling_model_parameters.csv"))
    law = hp.preset_laws("steplaw")["lr_vs_N_D"]
    assert law.log_coef == pytest.approx(fits[["lr_intercept", "lr_coefN", "lr_coefD"]].mean().to_numpy())
    draws = fits["lr_intercept"] + fits["lr_coefN"] * math.log(7e9) + fits["lr_coefD"] * math.log(1.4e12)
    low, high = np.exp(np.quantile(draws, [0.025, 0.975]))  # 95 %, the default level
    interval = hp.recommend(7e9, 1.4e12, "steplaw").lr_interval
    assert interval[0] == pytest.approx(low, rel=0.02) and interval[1] == pytest.approx(high, rel=0.02)


def test_recommendation_inside_the_fitted_range_has_no_extrapolation(laws):
    advice = laws.recommend(1.5e8, 6e9, seq_len=1024)
    assert advice.extrapolation_decades == 0
    assert advice.lr == pytest.approx(float(true_lr(1.5e8, 6e9)), rel=0.1)
    assert advice.batch_size_sequences == pytest.approx(advice.batch_size_tokens / 1024)
    assert advice.lr_prediction_interval[0] < advice.lr_interval[0]
    assert not advice.warnings


def test_batch_size_law_with_n_term_finds_no_n_dependence_when_there_is_none(laws):
    law = laws["bs_vs_N_D"]
    low, high = law.intervals["h"]
    assert low <= 0 <= high
    assert law.params["g"] == pytest.approx(BS_G, abs=0.05)
    advice = laws.recommend(1.5e8, 6e9, bs_law="N_D")
    assert advice.bs_law.startswith("bs_vs_N_D")
    assert advice.batch_size_tokens == pytest.approx(laws.recommend(1.5e8, 6e9).batch_size_tokens, rel=0.1)
    with pytest.raises(ScalefitInputError, match="no bs_vs_N_D law"):
        hp.recommend(7e9, 1.4e12, "steplaw", bs_law="N_D")


def test_deepseek_preset_says_it_has_no_intervals_or_range():
    advice = hp.recommend(7e9, 1.4e12, "deepseek")
    assert advice.lr == pytest.approx(0.3118 * (6 * 7e9 * 1.4e12) ** -0.125)
    assert advice.lr_interval is None and advice.extrapolation_decades is None
    assert any("no fitted range" in w for w in advice.warnings)
    assert any("publishes no uncertainty" in w for w in advice.warnings)


def test_leave_one_group_out_gap_is_small_on_a_law_abiding_sweep(optima):
    backtest = hp.leave_one_group_out(optima)
    assert len(backtest) == 12
    assert (backtest["loss_gap"] >= 0).all()
    assert backtest["loss_gap"].mean() < 0.002
    own = hp.nearest_grid_loss_gap(optima, hp.fit_hparam_laws(optima, n_bootstrap=0))
    assert own["loss_gap"].mean() <= backtest["loss_gap"].mean() + 1e-12


# --- command line -------------------------------------------------------------------------------------


def test_cli_recommend_preset_json(tmp_path, capsys):
    out = tmp_path / "rec.json"
    code = main(["recommend", "--preset", "steplaw", "--params", "7e9", "--tokens", "1.4e12",
                 "--json", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["lr"] == pytest.approx(9.35e-4, rel=0.01)
    assert record["batch_size_tokens"] == pytest.approx(5.0e6, rel=0.01)
    assert len(record["lr_interval"]) == 2 and len(record["batch_size_interval"]) == 2
    assert record["source"].startswith("preset steplaw")
    assert record["extrapolation_decades"] == pytest.approx(1.146, abs=1e-3)
    printed = capsys.readouterr().out
    assert "2440 sequences of 2048" in printed and "decades outside the fitted range" in printed


def test_cli_hparams_writes_laws_table_and_plots(tmp_path):
    runs_file = tmp_path / "sweep.parquet"
    small = synthetic_sweep(params=(1e8, 4e8), tokens=(2e9, 8e9, 3.2e10), group_scatter=0.02)
    small.drop(columns=["lr_opt", "bs_opt"]).to_parquet(runs_file)
    out, laws_json = tmp_path / "hp", tmp_path / "laws.json"
    code = main(["hparams", str(runs_file), "--out", str(out), "--json", str(laws_json),
                 "--bootstrap", "100"])
    assert code == 0
    payload = json.loads(laws_json.read_text())
    assert payload["laws"]["lr_vs_N_D"]["params"]["a"] == pytest.approx(LR_A, abs=0.05)
    assert "intervals" in payload["laws"]["bs_vs_D"] and len(payload["groups"]) == 6
    assert {"hparams.json", "groups.csv", "plateau.csv", "excluded.csv", "summary.txt",
            "lr_vs_N_D_against_params.png", "bs_vs_D_against_tokens.png"} <= {p.name for p in out.iterdir()}
    assert len(list((out / "landscapes").glob("*.png"))) == 6


def test_cli_input_error_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "hp"
    code = main(["hparams", str(tmp_path / "missing.parquet"), "--out", str(out)])
    assert code == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()
    assert main(["recommend", "--preset", "nope", "--params", "1e9", "--tokens", "1e10"]) == 2


def test_every_new_subcommand_help_has_an_example(capsys):
    for command in ("recommend", "hparams"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert f"scalefit {command} " in capsys.readouterr().out


def test_auto_batch_size_law_uses_the_N_term_only_when_its_interval_excludes_zero(laws):
    """B*(N, D) is chosen when the data pin its N exponent away from 0; B*(D) otherwise (and for presets)."""
    assert laws.recommend(1.5e8, 6e9).bs_law.startswith("bs_vs_D")  # synthetic: B* has no N term
    assert hp.recommend(7e9, 1.4e12, "steplaw").bs_law.startswith("bs_vs_D")
    real = hp.fit_hparam_laws(hp.locate_optima(hp.read_steplaw_csv(shared_file(STEPLAW_DIR / "dense_lr_bs_loss.csv"))),
                              n_bootstrap=200)
    assert real["bs_vs_N_D"].intervals["h"][1] < 0  # Step Law's own runs: B* falls with N at fixed D
    assert real.recommend(1e9, 1e11).bs_law.startswith("bs_vs_N_D")
