"""Training compute C = 6ND and its inverses, checked against published figures and closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalefit.flops import FLOPS_PER_PARAM_TOKEN, params_for, tokens_for, training_flops
from scalefit.laws import Chinchilla
from scalefit.runs import derive_flops


def test_six_flops_per_parameter_per_token():
    # 2 forward + 4 backward (Kaplan et al. 2020, §2.1)
    assert FLOPS_PER_PARAM_TOKEN == 2.0 + 4.0


def test_chinchilla_70b_on_1_4t_tokens_costs_5_88e23_flops():
    # Hoffmann et al. 2022: Chinchilla, 70B parameters, 1.4T tokens; 6 · 7e10 · 1.4e12 = 5.88e23
    assert training_flops(70e9, 1.4e12) == pytest.approx(5.88e23, rel=1e-12)


def test_gpt3_175b_on_300b_tokens_matches_the_published_3_14e23_flops():
    # Brown et al. 2020, Table D.1: GPT-3 175B (174.6B parameters), 300B tokens, 3.14e23 training FLOPs
    assert training_flops(174.6e9, 300e9) == pytest.approx(3.14e23, rel=1e-3)


def test_tokens_a_budget_buys_at_chinchilla_size_are_1_4t():
    assert tokens_for(5.88e23, 70e9) == pytest.approx(1.4e12, rel=1e-12)


def test_size_a_budget_buys_at_20_tokens_per_parameter_is_chinchilla():
    # N = sqrt(C / (6 r)) = sqrt(5.88e23 / 120) = sqrt(4.9e21) = 7e10
    assert params_for(5.88e23, 20.0) == pytest.approx(70e9, rel=1e-12)


def test_integer_inputs_give_float_flops_without_overflow():
    flops = training_flops(np.array([10**9, 7 * 10**10]), np.array([2 * 10**10, 14 * 10**11]))
    assert flops.dtype == np.float64
    np.testing.assert_allclose(flops, [1.2e20, 5.88e23], rtol=1e-12)


def test_inverses_round_trip_on_arrays():
    params = np.geomspace(1e4, 1e11, 15)
    tokens = np.geomspace(1e6, 1e13, 15)[::-1]
    flops = training_flops(params, tokens)
    np.testing.assert_allclose(tokens_for(flops, params), tokens, rtol=1e-14)
    ratio = tokens / params
    np.testing.assert_allclose(params_for(flops, ratio), params, rtol=1e-14)


def test_series_keep_their_index_through_every_helper():
    index = pd.Index(["a", "b", "c"], name="run_id")
    params = pd.Series([1e6, 3e7, 2e9], index=index)
    tokens = pd.Series([2e7, 6e8, 4e10], index=index)
    flops = training_flops(params, tokens)
    assert isinstance(flops, pd.Series) and flops.index.equals(index)
    np.testing.assert_allclose(flops, [1.2e14, 1.08e17, 4.8e20], rtol=1e-12)
    back = tokens_for(flops, params)
    assert isinstance(back, pd.Series) and back.index.equals(index)
    pd.testing.assert_series_equal(back, tokens, rtol=1e-14)
    size = params_for(flops, tokens / params)
    assert isinstance(size, pd.Series) and size.index.equals(index)
    pd.testing.assert_series_equal(size, params, rtol=1e-14)


def test_runs_table_6nd_convention_is_this_formula():
    params, tokens = np.array([1e5, 2.5e7]), np.array([3e8, 4e9])
    np.testing.assert_array_equal(derive_flops(params, tokens, "6ND"), training_flops(params, tokens))


def test_chinchilla_compute_optimal_allocation_spends_the_whole_budget():
    # N_opt(C) · D_opt(C) = C / 6 whatever the law's parameters (the scale G cancels)
    params = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    budgets = np.array([1e18, 5.88e23, 1e26])
    allocation = Chinchilla.optimal_allocation(params, budgets)
    np.testing.assert_allclose(training_flops(allocation["params"], allocation["tokens"]), budgets, rtol=1e-12)
