"""Law selection by expanding-window rollout and the planning interval it measures, on known synthetic laws."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from conftest import draw_points

from scalefit.cli import main
from scalefit.fitting import ExtrapolationError, fit
from scalefit.laws import Chinchilla, Kaplan
from scalefit.selection import (
    Rollout,
    default_candidates,
    rollout,
    select_law,
    size_groups,
    window_cuts,
)

CHINCHILLA_TRUTH = {"E": 1.7, "A": 400.0, "B": 4000.0, "alpha": 0.25, "beta": 0.45}
KAPLAN_TRUTH = {"Nc": 6.4e13, "Dc": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
SIZES = np.geomspace(1e7, 1e9, 6)
TOKENS = np.geomspace(1e9, 1e11, 5)
SMALL_GRID = {"a": (0, 5, 10), "b": (0, 5, 10), "e": (-1, 0, 1), "alpha": (0.1, 0.5, 1), "beta": (0.1, 0.5, 1)}


def design() -> pd.DataFrame:
    return pd.DataFrame(list(itertools.product(SIZES, TOKENS)), columns=["params", "tokens"])


def test_windows_fit_at_least_three_sizes_and_are_thinned_evenly():
    assert window_cuts(6) == [3, 4, 5]
    assert window_cuts(3) == []
    many = window_cuts(40, max_windows=6)
    assert len(many) == 6 and many[0] == 3 and many[-1] == 39


def test_sizes_read_off_a_figure_a_little_apart_are_one_size():
    jittered = pd.Series([1e8, 1.0001e8, 1e8 * 1.02, 2e8, 2.0002e8])  # 1.02x = 0.0086 decades: same size
    assert size_groups(jittered).tolist() == [0, 0, 0, 1, 1]


def test_extrapolation_error_per_decade_is_the_closed_form():
    decades = np.array([0.5, 1.0, 2.0])
    exact = ExtrapolationError.from_rollout(0.03 * decades, decades, np.zeros(3), "law", 2)
    assert exact.per_decade == pytest.approx(0.03) and exact.max_decades == 2.0 and exact.n_points == 3
    # Run noise already in the new-run interval is taken out: r² − σ² = (0.05² − 0.03²) = 0.04² at d = 1.
    noisy = ExtrapolationError.from_rollout([0.05, -0.05], [1.0, 1.0], [0.03, 0.03], "law", 1)
    assert noisy.per_decade == pytest.approx(0.04)
    assert exact.log_sd(3.0) == pytest.approx(0.09)
    # So is the window fit's own parameter uncertainty: 0.05² − 0.03² − 0.024² = 0.032² at d = 1.
    uncertain = ExtrapolationError.from_rollout([0.05, -0.05], [1.0, 1.0], [0.03, 0.03], "law", 1,
                                                prediction_sd=[0.024, 0.024])
    assert uncertain.per_decade == pytest.approx(0.032)
    # Terms are weighted by the inverse of their variance, d⁴ / (σ² + v + s²d²)²: a window whose own error is
    # large (v = 0.1², r² − σ² − v = 0.0125) counts little against a precise one (v = 0, r² − σ² = 0.0003).
    r, d, sigma, v = np.array([0.12, 0.02]), np.array([1.0, 1.0]), np.array([0.01, 0.01]), np.array([0.1, 0.0])
    excess, expected = r**2 - sigma**2 - v**2, sigma**2 + v**2
    s2 = np.average(excess, weights=1 / expected**2)
    s2 = np.average(excess, weights=1 / (expected + s2) ** 2)
    weighted = ExtrapolationError.from_rollout(r, d, sigma, "law", 2, prediction_sd=v)
    assert weighted.per_decade == pytest.approx(np.sqrt(s2)) and weighted.per_decade < np.sqrt(np.mean(excess))


def test_flagged_windows_are_left_out_of_the_error_per_decade():
    # Window 3's fit ended on a bound (its bootstrap cannot leave that corner), window 4's is trusted.
    predictions = pd.DataFrame({"window": [3, 3, 4, 4], "log_residual": [0.30, -0.30, 0.02, -0.02],
                                "decades": [1.0, 1.0, 0.5, 0.5], "noise": 0.0, "prediction_sd": 0.0})
    windows = pd.DataFrame({"k": [3, 4], "flag": ["b ended on its bound", ""]})
    error = Rollout("law", predictions, windows).extrapolation_error()
    assert error.per_decade == pytest.approx(0.04) and error.n_points == 2
    assert error.n_windows == 1 and error.n_flagged_windows == 1
    assert ExtrapolationError.from_dict(error.to_dict()) == error
    # With every window flagged they all count (wide, not missing): mean of (0.3² / 1, 0.02² / 0.25) per decade².
    every = Rollout("law", predictions, windows.assign(flag="on its bound")).extrapolation_error()
    assert every.per_decade == pytest.approx(np.sqrt((0.09 + 0.0016) / 2)) and every.n_flagged_windows == 0


def test_a_windows_noise_is_its_residuals_per_degree_of_freedom():
    points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, design(), sigma=0.01, seed=4)
    fits = {}

    def fit_one(train):
        fits[len(train)] = fit(Chinchilla(), train, starts=SMALL_GRID, bootstrap=0)
        return fits[len(train)]

    rolled = rollout(points, fit_one)
    groups = size_groups(points["params"])
    assert len(fits) == len(rolled.windows) >= 2
    for k in rolled.windows["k"]:
        n = int(np.sum(groups < k))  # points the window fitted
        r = fits[n].residuals.to_numpy()
        expected = np.sqrt(np.sum(r**2) / (n - 5))  # 5 free parameters
        got = rolled.predictions.loc[rolled.predictions["window"] == k, "noise"].unique()
        np.testing.assert_allclose(got, [expected], rtol=1e-12)
        assert expected > np.sqrt(np.mean(r**2))


def test_a_right_law_fitted_on_few_sizes_adds_little_extrapolation_error():
    """Truth: the data come from the law itself (noise 1 %), so the held-out errors are parameter uncertainty
    and noise, which the window fits' intervals already carry. Over 12 data sets the measured error per decade
    (a median: with 3 windows one unlucky window moves it) must be under half of what it is when that
    uncertainty is not taken out."""
    measured, uncorrected = [], []
    for seed in range(4, 16):
        points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, design(), sigma=0.01, seed=seed)
        rolled = rollout(points, lambda train: fit(Chinchilla(), train, starts=SMALL_GRID, bootstrap=200))
        p = rolled.predictions
        measured.append(rolled.extrapolation_error().per_decade)
        uncorrected.append(ExtrapolationError.from_rollout(p["log_residual"], p["decades"], p["noise"], "law", 3).per_decade)
    assert np.median(measured) < 0.5 * np.median(uncorrected), (measured, uncorrected)


def test_noise_free_rollout_predicts_every_larger_size_exactly():
    points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, design(), sigma=0.0, seed=0)
    rolled = rollout(points, lambda train: fit(Chinchilla(), train, starts=SMALL_GRID, bootstrap=0))
    assert rolled.windows["k"].tolist() == [3, 4, 5]
    assert rolled.windows["n_targets"].tolist() == [15, 10, 5]
    assert np.abs(rolled.predictions["rel_error"]).max() < 1e-3
    # Distances: the window fitted on 3 sizes predicts the 6th at log10(SIZES[5] / SIZES[2]) = 1.2 decades.
    assert rolled.predictions["decades"].max() == pytest.approx(np.log10(SIZES[5] / SIZES[2]))
    assert rolled.extrapolation_error().per_decade < 1e-3


@pytest.mark.parametrize(("law", "truth", "expected"), [
    (Kaplan(), KAPLAN_TRUTH, {"kaplan"}),
    (Chinchilla(), CHINCHILLA_TRUTH, {"joint (free)", "joint α=β"}),
])
def test_rollout_chooses_the_family_the_data_came_from(law, truth, expected):
    points = draw_points(law, truth, design(), sigma=0.003, seed=0)
    selection = select_law(points, default_candidates(), rollout_bootstrap=50, seed=0)
    assert selection.chosen in expected
    scores = {name: r.score for name, r in selection.rollouts.items()}
    worst_other = max(scores[n] for n in scores if n not in expected)
    assert worst_other > 3 * scores[selection.chosen]  # the wrong family extrapolates several times worse
    record = selection.to_dict(default_candidates())
    assert record["chosen"] == selection.chosen and len(record["windows"]) == 3
    assert {c["name"] for c in record["candidates"]} == set(scores)
    assert all(np.isfinite(c["aic"]) and len(c["window_errors"]) == 3 for c in record["candidates"])


def test_fixing_e_adds_a_candidate_and_other_constraints_leave_nothing_to_choose():
    from scalefit.selection import auto_constraints

    assert [c.name for c in default_candidates(1.7)][2] == "joint E=1.7"
    assert auto_constraints({"E": 1.7}, None) == (True, 1.7)
    assert auto_constraints(None, None) == (True, None)
    assert auto_constraints({"alpha": 0.3}, None) == (False, None)
    assert auto_constraints(None, ("alpha", "beta")) == (False, None)


@pytest.fixture(scope="module")
def auto_fit(tmp_path_factory):
    """``scalefit fit RUNS --law auto`` on runs drawn from the Chinchilla truth (one final point per run)."""
    root = tmp_path_factory.mktemp("auto")
    points = draw_points(Chinchilla(), CHINCHILLA_TRUTH, design(), sigma=0.003, seed=1)
    points["run_id"] = [f"r{k}" for k in range(len(points))]
    points.to_csv(root / "runs.csv", index=False)
    code = main(["fit", str(root / "runs.csv"), "--law", "auto", "--bootstrap", "200", "--json",
                 str(root / "fit.json")])
    return code, root


def test_fit_law_auto_records_the_choice_and_the_planning_error(auto_fit, capsys):
    code, root = auto_fit
    doc = json.loads((root / "fit.json").read_text())
    assert code == 0
    assert doc["selection"]["chosen"] in {"joint (free)", "joint α=β"}
    assert doc["selection"]["reason"].startswith("chose ")
    assert doc["extrapolation_error"]["per_decade"] >= 0 and doc["extrapolation_error"]["n_windows"] == 3


def test_predict_and_allocate_say_how_far_they_extrapolate_and_warn_past_a_decade(auto_fit, tmp_path, capsys):
    _, root = auto_fit
    capsys.readouterr()
    out = tmp_path / "p.json"
    assert main(["predict", "--fit", str(root / "fit.json"), "--params", "1e9,1e11", "--tokens", "1e11,1e13",
                 "--json", str(out)]) == 0
    captured = capsys.readouterr()
    rows = json.loads(out.read_text())["predictions"]
    assert rows[0]["decades"] == pytest.approx(0.0) and rows[1]["params_decades"] == pytest.approx(2.0)
    assert rows[1]["tokens_decades"] == pytest.approx(2.0)
    assert captured.err.count("warning:") == 1 and "decades beyond" in captured.err
    inside, far = rows
    assert inside["plan_lo"] == pytest.approx(inside["run_lo"], rel=1e-9)  # no extra error inside the data
    per_decade = json.loads((root / "fit.json").read_text())["extrapolation_error"]["per_decade"]
    widened = far["plan_hi"] - far["plan_lo"] > far["run_hi"] - far["run_lo"]  # by s·d, when s > 0
    assert widened == (per_decade > 0) and far["plan_hi"] >= far["run_hi"]
    allocation = tmp_path / "a.json"
    assert main(["allocate", "--fit", str(root / "fit.json"), "--flops", "1e20,1e24", "--json",
                 str(allocation)]) == 0
    budgets = json.loads(allocation.read_text())["budgets"]
    assert budgets[1]["flops_decades"] == pytest.approx(np.log10(1e24 / (6 * SIZES[-1] * TOKENS[-1])))
    assert "warning:" in capsys.readouterr().err
