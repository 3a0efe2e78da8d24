"""Laws: formulas against their papers' closed forms, Jacobians against finite differences, closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalefit.laws import Chinchilla, Kaplan, PowerLaw
from scalefit.laws.base import Law

RNG = np.random.default_rng(0)
SIZES_TOKENS = np.exp(RNG.uniform(16, 24, size=(50, 2)))

CHINCHILLA = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
KAPLAN = {"Nc": 6.4e13, "Dc": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
POWER = {"A": 50.0, "E": 1.7, "alpha": 0.08}


def frame(values: np.ndarray, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(values[:, : len(columns)], columns=columns)


def test_chinchilla_predicts_hoffmann_formula():
    n, d = SIZES_TOKENS.T
    expected = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    predicted = Chinchilla().predict(CHINCHILLA, frame(SIZES_TOKENS, ["params", "tokens"]))
    np.testing.assert_allclose(predicted, expected, rtol=1e-12)


def test_kaplan_predicts_kaplan_formula():
    n, d = SIZES_TOKENS.T
    expected = ((6.4e13 / n) ** (0.076 / 0.103) + 1.8e13 / d) ** 0.103
    predicted = Kaplan().predict(KAPLAN, frame(SIZES_TOKENS, ["params", "tokens"]))
    np.testing.assert_allclose(predicted, expected, rtol=1e-12)


def test_power_law_predicts_formula_and_reports_henighan_scale():
    law = PowerLaw(x="flops")
    flops = np.logspace(15, 22, 20)
    np.testing.assert_allclose(law.predict(POWER, pd.DataFrame({"flops": flops})), 1.7 + 50.0 * flops**-0.08)
    x0 = law.derive(pd.DataFrame([POWER]))["x0"].iloc[0]
    np.testing.assert_allclose(1.7 + (x0 / flops) ** 0.08, 1.7 + 50.0 * flops**-0.08, rtol=1e-10)


@pytest.mark.parametrize(
    ("law", "theta"),
    [
        (Chinchilla(), [[6.0, 7.0, 0.6, 0.34, 0.37], [3.0, 12.0, -0.5, 0.5, 0.6], [20.0, 0.0, 1.0, 2.0, 0.0]]),
        (Kaplan(), [[31.8, 30.5, 0.076, 0.103], [25.0, 28.0, 0.2, 0.3]]),
        (PowerLaw(x="params"), [[6.0, 0.6, 0.34], [3.0, -1.0, 0.05]]),
    ],
)
def test_analytic_jacobian_matches_finite_differences(law: Law, theta):
    theta = np.array(theta)
    inputs = SIZES_TOKENS[:, : len(law.inputs)]
    value, jacobian = law.log_predict_jacobian(theta, inputs)
    fd_value, fd_jacobian = Law.log_predict_jacobian(law, theta, inputs)
    assert jacobian.shape == (len(law.parameters), len(theta), len(inputs))
    np.testing.assert_allclose(value, fd_value, rtol=1e-14)
    np.testing.assert_allclose(jacobian, fd_jacobian, atol=1e-6 * np.abs(jacobian).max())


def test_float32_evaluation_keeps_dtype_and_precision():
    theta = np.array([[6.0, 7.0, 0.6, 0.34, 0.37]])
    value64 = Chinchilla().log_predict(theta, SIZES_TOKENS)
    value32, jacobian32 = Chinchilla().log_predict_jacobian(theta.astype(np.float32), SIZES_TOKENS)
    assert value32.dtype == jacobian32.dtype == np.float32
    np.testing.assert_allclose(value32, value64, atol=1e-5)


def test_chinchilla_declares_epochs_grid_and_names():
    law = Chinchilla()
    assert law.param_names == ("a", "b", "e", "alpha", "beta")
    assert set(law.reported_names) == {"E", "A", "B", "alpha", "beta"}
    grid = law.start_grid()
    assert grid.shape == (4500, 5)
    assert sorted(set(grid[:, 0])) == [0, 5, 10, 15, 20, 25]
    assert sorted(set(grid[:, 2])) == [-1, -0.5, 0, 0.5, 1]
    assert sorted(set(grid[:, 3])) == [0, 0.5, 1, 1.5, 2]


def test_reported_and_fitted_spaces_round_trip():
    law = Chinchilla()
    theta = law.to_fitted(CHINCHILLA)
    np.testing.assert_allclose(theta[0, :3], np.log([406.4, 410.7, 1.69]))
    np.testing.assert_allclose(law.to_reported(theta)[0], [406.4, 410.7, 1.69, 0.34, 0.28])


def test_parameter_lookup_by_either_name_and_clear_error():
    law = Chinchilla()
    assert law.parameter("E") is law.parameter("e")
    with pytest.raises(KeyError, match="has no parameter 'gamma'"):
        law.parameter("gamma")


def test_optimal_allocation_spends_the_budget_and_minimises_loss():
    law = Chinchilla()
    budget = 5.88e23
    best = law.optimal_allocation(CHINCHILLA, budget).iloc[0]
    assert 6 * best["params"] * best["tokens"] == pytest.approx(budget, rel=1e-12)
    sizes = best["params"] * np.exp(np.linspace(-0.5, 0.5, 101))
    along_budget = pd.DataFrame({"params": sizes, "tokens": budget / (6 * sizes)})
    assert np.argmin(law.predict(CHINCHILLA, along_budget)) == 50


def test_optimal_allocation_matches_reference_numbers():
    # reference.json, compute_optimal_at_C_5.88e23.hoffmann_rounded: N 32.5e9, D 3.02e12, D/N 92.83
    allocation = Chinchilla.optimal_allocation(CHINCHILLA, 5.88e23).iloc[0]
    assert allocation["params"] == pytest.approx(32.5e9, rel=0.01)
    assert allocation["tokens"] == pytest.approx(3.02e12, rel=0.01)
    assert allocation["tokens_per_param"] == pytest.approx(92.83, rel=0.01)


def test_optimal_allocation_is_vectorised_over_budgets_and_draws():
    budgets = np.logspace(20, 25, 6)
    assert len(Chinchilla.optimal_allocation(CHINCHILLA, budgets)) == 6
    draws = pd.DataFrame([CHINCHILLA] * 3).assign(alpha=[0.3, 0.34, 0.38])
    allocation = Chinchilla.optimal_allocation(draws, 1e24)
    assert len(allocation) == 3
    assert allocation["tokens_per_param"].is_monotonic_increasing  # a larger alpha favours data
