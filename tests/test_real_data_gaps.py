"""Gaps met on real public scaling data (issues #15 and #16), each reproduced on a small committed fixture.

The fixtures come from known synthetic truths (tests/fixtures/make_gap_fixtures.py): mixed families, learning
curves, a good IsoFLOP sweep under a failed joint fit, a wide IsoFLOP sweep, a two-count MoE grid; plus the
frontier fit on the shipped table and Approach 2 on Epoch's Chinchilla points (../shared).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli_fit import run_cli
from test_hyperparams import shared_file

from scalefit.allocation import DEFAULT_WINDOW, approach2
from scalefit.cli import main
from scalefit.errors import RunsTableError, ScalefitInputError
from scalefit.io import dumps
from scalefit.runs import load_runs, select, tuned_points
from scalefit.study import fit_runs

FIXTURES = Path(__file__).parent / "fixtures"
GAPS = FIXTURES / "gaps"
REPO = Path(__file__).parents[1]
sys.path.insert(0, str(FIXTURES))
from make_gap_fixtures import ALPHA, BETA, FAMILIES, law

A_TRUE = BETA / (ALPHA + BETA)  # N_opt ∝ C^a of the IsoFLOP fixtures' truth (Epoch's Chinchilla refit)
MOE_MAP = ("--map", "D=tokens", "--map", "exp_name=run_id", "--map", "bs=batch_size")


# --- #15.1: families ------------------------------------------------------------------------------------

def test_a_table_of_several_families_is_refused_with_each_family_summarised():
    with pytest.raises(RunsTableError) as refused:
        fit_runs(GAPS / "mixed_families.csv", bootstrap=0)
    message = str(refused.value)
    assert "3 families" in message and "--family" in message
    for family in FAMILIES:
        assert f"{family!r} (20 runs, 5 sizes" in message


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_option_fits_that_family_alone_and_recovers_its_law(family):
    study = fit_runs(GAPS / "mixed_families.csv", family=family, bootstrap=0, holdout_largest=0)
    assert study.excluded == {f"runs of other families than {family!r}": 40}
    fitted = study.result.predict(study.points[["params", "tokens"]])["mean"].to_numpy()

    def misfit(truth) -> float:
        return float(np.mean(np.abs(fitted / law(study.points["params"], study.points["tokens"], *truth) - 1)))

    # Its own truth to within the 0.5 % noise (20 points pin the loss surface, not each parameter).
    assert misfit(FAMILIES[family]) < 0.005
    assert all(misfit(FAMILIES[other]) > 0.02 for other in FAMILIES if other != family)


def test_cli_refuses_mixed_families_with_exit_2_and_names_the_option():
    refused = run_cli("fit", GAPS / "mixed_families.csv", "--bootstrap", "0")
    assert refused.code == 2 and "Traceback" not in refused.err
    assert "--family NAME" in refused.err and "'pile' (20 runs" in refused.err
    unknown = run_cli("fit", GAPS / "mixed_families.csv", "--family", "wiki", "--bootstrap", "0")
    assert unknown.code == 2 and "no family 'wiki'" in unknown.err


# --- #15.5: learning curves ------------------------------------------------------------------------------

def test_learning_curve_table_says_what_it_holds_and_suggests_points_all():
    with pytest.raises(ScalefitInputError) as refused:
        fit_runs(GAPS / "learning_curves.csv", bootstrap=0)
    message = str(refused.value)
    assert "32 rows: 4 runs of 4 model sizes, a median of 8 evaluations per run" in message
    assert "learning curves" in message and "--points all" in message
    assert "the same at every point" not in message
    ran = run_cli("fit", GAPS / "learning_curves.csv", "--bootstrap", "0")
    assert ran.code == 2 and "32 rows: 4 runs" in ran.err and "--points all" in ran.err  # read final rows only


def test_one_runs_learning_curve_is_not_called_constant_loss():
    one_run = load_runs(GAPS / "learning_curves.csv").query("params == params.min()")
    with pytest.raises(ScalefitInputError) as refused:
        fit_runs(one_run, bootstrap=0)
    message = str(refused.value)
    assert "8 rows: 1 run of 1 model size, a median of 8 evaluations per run" in message
    assert "the tuned points are 1" in message and "--points all" in message


def test_learning_curve_table_fits_with_points_all():
    study = fit_runs(GAPS / "learning_curves.csv", points="all", bootstrap=0, holdout_largest=0)
    assert study.result.success and len(study.points) == 32


# --- #15.3: approaches without the joint law -------------------------------------------------------------

@pytest.fixture(scope="module")
def failed_joint_fit():
    """A good IsoFLOP sweep; the joint law forced to fail by an implausible constraint (alpha = 0.02)."""
    return fit_runs(GAPS / "isoflop_sweep.csv", fix={"alpha": 0.02}, bootstrap=0, holdout_largest=0)


def test_approach2_is_computed_when_the_joint_fit_fails(failed_joint_fit):
    study = failed_joint_fit
    assert not study.result.success and study.allocation is None
    (isoflop,) = [a for a in study.approaches if a.approach.startswith("approach 2")]
    assert isoflop.params_law.exponent == pytest.approx(A_TRUE, abs=0.01)
    assert len(isoflop.optima) == 9
    missing = dict(study.approaches_missing)
    assert "did not converge" in missing["approach 3 (joint law)"]
    assert "Approach 1 needs at least 3 model sizes" in missing["approach 1"]  # one run per (N, C): no curves


def test_missing_approaches_are_listed_in_summary_and_fit_json(failed_joint_fit):
    text = failed_joint_fit.summary()
    assert "approach 3 (joint law): not computed: the joint-law fit did not converge" in text
    assert "approach 2 (IsoFLOP parabolas): N_opt ∝ C^0.51" in text
    doc = json.loads(dumps(failed_joint_fit.to_dict()))
    assert {m["approach"] for m in doc["approaches_missing"]} == {"approach 1", "approach 3 (joint law)"}
    assert doc["approaches"][0]["params"]["a"] == pytest.approx(A_TRUE, abs=0.01)


def test_fit_out_report_lists_the_missing_approaches(tmp_path):
    ran = run_cli("fit", GAPS / "isoflop_sweep.csv", "--fix", "alpha=0.02", "--bootstrap", "0",
                  "--holdout-largest", "0", "--out", tmp_path / "fit")
    assert ran.code == 1  # the joint fit failed
    report = (tmp_path / "fit" / "report.md").read_text()
    assert "approach 2 (IsoFLOP parabolas)" in report and "approach 3 (joint law): not computed" in report
    assert "approach 3 (joint law): not computed" in ran.out


# --- #15.4: the Approach 2 window -------------------------------------------------------------------------

def test_a_narrow_window_removes_the_bias_of_a_wide_isoflop_sweep():
    runs = load_runs(GAPS / "wide_isoflop.csv")
    narrow, wide = approach2(runs), approach2(runs, window=None)
    assert abs(narrow.params_law.exponent - A_TRUE) < 0.002  # noise-free: only the parabola's misfit is left
    assert abs(wide.params_law.exponent - A_TRUE) > 0.015  # 15 sizes over 3.5 decades: a parabola is biased
    assert narrow.settings["budgets"] == "declared (flops_budget column)"
    by_window = narrow.sensitivity.set_index("window")["a"]
    assert list(by_window.index) == [str(DEFAULT_WINDOW), "3", "5", "9", "all"]
    assert by_window["all"] == pytest.approx(wide.params_law.exponent)
    assert "window sensitivity (a by window)" in str(narrow) and f"all: {by_window['all']:.3f}" in str(narrow)


def test_tuned_points_keep_each_runs_compute_and_declared_budget():
    runs = load_runs(GAPS / "wide_isoflop.csv")
    points = tuned_points(select(runs))
    by_run = runs.set_index("run_id")
    np.testing.assert_array_equal(points["flops"], by_run.loc[points["run_id"], "flops"])
    np.testing.assert_array_equal(points["flops_budget"], by_run.loc[points["run_id"], "flops_budget"])
    assert approach2(points).settings["budgets"] == "declared (flops_budget column)"


def test_cli_window_option_changes_approach2(tmp_path):
    ran = run_cli("fit", GAPS / "wide_isoflop.csv", "--bootstrap", "0", "--holdout-largest", "0",
                  "--isoflop-window", "all", "--json", tmp_path / "fit.json")
    doc = json.loads((tmp_path / "fit.json").read_text())
    (isoflop,) = [a for a in doc["approaches"] if a["approach"].startswith("approach 2")]
    assert isoflop["settings"]["window"] == "every size"
    assert abs(isoflop["params_exponent"] - A_TRUE) > 0.015
    assert ran.code in (0, 1)
    with pytest.raises(SystemExit) as refused:  # argparse: usage error, exit 2
        run_cli("fit", GAPS / "wide_isoflop.csv", "--isoflop-window", "2")
    assert refused.value.code == 2


# --- #16.6: budgets on Epoch's Chinchilla points ---------------------------------------------------------

def epoch_runs() -> pd.DataFrame:
    path = shared_file(REPO.parent / "shared" / "data" / "chinchilla_epoch" / "svg_extracted_data.csv")
    raw = pd.read_csv(path)
    raw = raw[raw["loss"] < raw["loss"].nlargest(5).min()]  # Epoch's 240 points
    return pd.DataFrame({"run_id": [f"run{i}" for i in range(len(raw))], "params": raw["Model Size"],
                         "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]), "loss": raw["loss"]})


def test_approach2_finds_the_nine_isoflop_profiles_of_chinchilla():
    result = approach2(epoch_runs())
    budgets = np.log10(result.optima["flops"].to_numpy())
    # Hoffmann et al.'s budgets 6e18 ... 3e21 (as read off their figure, a little below the nominal values).
    np.testing.assert_allclose(budgets, np.log10([6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21]),
                               atol=0.06)
    assert 0.45 <= result.params_law.exponent <= 0.56
    assert result.status == "ok"


# --- #16.7: the frontier from the CLI --------------------------------------------------------------------

def test_henighan_frontier_fit_from_the_cli_on_the_shipped_table(tmp_path):
    ran = run_cli("fit", REPO / "data" / "runs.parquet", "--law", "power", "--x", "flops", "--points",
                  "frontier", "--bootstrap", "20", "--holdout-largest", "0", "--json", tmp_path / "fit.json")
    assert ran.code == 0, ran.err
    doc = json.loads((tmp_path / "fit.json").read_text())
    assert doc["points"] == "frontier" and doc["success"]
    runs = load_runs(REPO / "data" / "runs.parquet")
    assert "points (frontier)" in ran.out and doc["n_points"] < runs["run_id"].nunique()


def test_fit_help_shows_the_frontier_example(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert "scalefit fit data/runs.parquet --law power --x flops --points frontier" in capsys.readouterr().out


# --- #15.6: two parameter counts -------------------------------------------------------------------------

def test_two_count_moe_table_says_which_count_the_laws_need():
    with pytest.raises(RunsTableError, match=r"'Na' looks like 'params'.*--map 'Na=params'"):
        load_runs(GAPS / "moe_two_counts.csv", columns={"D": "tokens", "exp_name": "run_id"})
    total = load_runs(GAPS / "moe_two_counts.csv", columns={"N": "params", "D": "tokens", "exp_name": "run_id"})
    notes = " ".join(total.attrs["notes"])
    assert "'Na', an activated-parameter count" in notes and "--map Na=params" in notes
    assert "4 model sizes in params lie within 0.26 %" in notes
    activated = load_runs(GAPS / "moe_two_counts.csv",
                          columns={"Na": "params", "D": "tokens", "exp_name": "run_id"})
    assert sorted(activated["params"].unique()) == [1.2e8, 2.1e8, 3.6e8, 6.0e8]
    assert not any("within" in note for note in activated.attrs.get("notes", []))


def test_map_onto_an_existing_params_column_needs_that_column_renamed_and_then_wins(tmp_path):
    """A release whose ``params`` is the total: ``--map Na=params`` alone is refused with what to do; with
    the total moved aside (``--map params=params_total``) the explicit map wins."""
    table = pd.read_csv(GAPS / "moe_two_counts.csv").rename(columns={"N": "params"})
    path = tmp_path / "moe.csv"
    table.to_csv(path, index=False)
    base = {"D": "tokens", "exp_name": "run_id"}
    with pytest.raises(RunsTableError, match=r"already has a column 'params'.*map 'params' to another name"):
        load_runs(path, columns={"Na": "params", **base})
    runs = load_runs(path, columns={"Na": "params", "params": "params_total", **base})
    np.testing.assert_array_equal(runs["params"], table["Na"])
    assert any("'params_total', a total parameter count" in note for note in runs.attrs["notes"])


@pytest.mark.parametrize("count", ["N", "Na"])
def test_hparams_and_recommend_run_on_either_count(count):
    mapping = ("--map", f"{count}=params", *MOE_MAP)
    fitted = run_cli("hparams", GAPS / "moe_two_counts.csv", *mapping, "--bootstrap", "50")
    assert fitted.code in (0, 1) and "Traceback" not in fitted.err, fitted.err
    advised = run_cli("recommend", "--runs", GAPS / "moe_two_counts.csv", *mapping, "--params", "3e8",
                      "--tokens", "5e10", "--bootstrap", "50")
    assert advised.code in (0, 1) and "Traceback" not in advised.err, advised.err
    if count == "N":
        assert "--map Na=params" in fitted.err
