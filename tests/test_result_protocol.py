"""Every result kind in ``KIND_MODULES`` holds to the shared protocol (issue #9, "Done when").

One case per kind builds a real result from small synthetic data with known parameters; the same checks run on
each: save → load (by kind and by class) gives the same class, summary, params, status and reasons;
``conf_int(0.9)`` nests inside ``conf_int(0.99)`` and a level outside (0, 1) is refused; the summary and the
result render HTML that shows the status. A kind added to ``KIND_MODULES`` without a case here fails.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from conftest import draw_points
from test_allocation import EXPONENT_D, EXPONENT_N, isoflop_table
from test_backtest import SMALL_GRID as BACKTEST_GRID
from test_backtest import chinchilla_points as backtest_points
from test_fitting import CHINCHILLA_TRUTH
from test_fitting import SMALL_GRID as FIT_GRID
from test_hyperparams import LR_A, LR_B, synthetic_sweep, true_lr
from test_plan import LAW as PLAN_LAW
from test_plan import TRUTH as PLAN_TRUTH
from test_plan import WIDE
from test_rl import QWEN_SIZES, synthetic_curves
from test_tasks import CHINCHILLA as CHINCHILLA_TASK
from test_tasks import SIGMOID, TARGET, ladder

from scalefit import hyperparams as hp
from scalefit.allocation import approach2
from scalefit.backtest import backtest
from scalefit.errors import ScalefitInputError
from scalefit.fitting import fit
from scalefit.flops import training_flops
from scalefit.laws import Chinchilla, PowerLaw
from scalefit.plan.design import design_runs
from scalefit.plan.identify import check_identifiability
from scalefit.results import KIND_MODULES, STATUSES, Result, load_result
from scalefit.rl import fit_rl
from scalefit.tasks import fit_task_scaling, validate

BOOTSTRAP = 60  # few draws: enough for 90 % and 99 % percentile intervals to be defined and nested


@dataclass(frozen=True)
class Case:
    """How to build a result of one kind, and (where the kind estimates something) its check against truth."""

    build: Callable[[], Result]
    near_truth: Callable[[Result], None] | None = None


@functools.cache
def _hparam_laws() -> hp.HparamLaws:
    """Step-Law-shaped sweep: lr* = 2 N^−0.7 D^0.3, B* = 0.5 D^0.55, with 5 % scatter per (N, D) group."""
    return hp.fit_hparams(synthetic_sweep(), n_bootstrap=BOOTSTRAP)


def _one_run_curve() -> pd.DataFrame:
    """One run's learning curve: the run bootstrap has a single unit, so no interval can be read (suspect)."""
    curve = pd.DataFrame({"tokens": np.geomspace(1e7, 1e9, 20), "run_id": "only-run"})
    return draw_points(PowerLaw(x="tokens"), {"A": 30.0, "E": 2.0, "alpha": 0.3}, curve, 0.003, seed=0)


def _size_token_grid() -> pd.DataFrame:
    """8 sizes (1e7 to 3e9) × 8 token counts (3e8 to 1e11), as the ``size_token_grid`` fixture."""
    n, d = np.meshgrid(np.logspace(7, 9.5, 8), np.logspace(8.5, 11, 8), indexing="ij")
    return pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})


def _fit_near_truth(result) -> None:
    # 64 points at 0.5 % noise: exponents and E within a few percent, amplitudes looser (they trade off).
    tolerance = {"E": 0.03, "alpha": 0.06, "beta": 0.06, "A": 0.4, "B": 0.4}
    for name, rel in tolerance.items():
        assert result.params[name] == pytest.approx(CHINCHILLA_TRUTH[name], rel=rel), name


def _allocation_near_truth(result) -> None:
    assert result.params["a"] == pytest.approx(EXPONENT_N, abs=0.01)
    assert result.params["b"] == pytest.approx(EXPONENT_D, abs=0.01)


def _rl_near_truth(result) -> None:
    assert result.params["K_max"] == pytest.approx(0.135, rel=0.10)
    assert result.params["N0"] == pytest.approx(13.1e9, rel=0.10)


def _tasks_near_truth(result) -> None:
    assert result.params["qa/step1/alpha"] == pytest.approx(CHINCHILLA_TASK["alpha"], abs=0.08)
    assert result.params["qa/step2/k"] == pytest.approx(SIGMOID["k"], rel=0.25)
    assert result.params["qa/step2/x0"] == pytest.approx(SIGMOID["x0"], abs=0.1)


def _hparam_law_near_truth(result) -> None:
    assert result.params["a"] == pytest.approx(LR_A, abs=0.05)
    assert result.params["b"] == pytest.approx(LR_B, abs=0.05)


def _recommendation_near_truth(result) -> None:
    # inside the swept range: the law's lr is the truth up to the 5 % group scatter averaged over 12 groups
    assert result.lr == pytest.approx(float(true_lr(1.5e8, 6e9)), rel=0.10)


CASES: dict[str, Case] = {
    "fit": Case(lambda: fit(Chinchilla(), draw_points(Chinchilla(), CHINCHILLA_TRUTH, _size_token_grid(),
                                                      sigma=0.005, seed=3),
                            starts=FIT_GRID, bootstrap=BOOTSTRAP, seed=1), _fit_near_truth),
    "allocation": Case(lambda: approach2(isoflop_table(np.geomspace(1e18, 1e22, 5), noise=0.002, seed=1)),
                       _allocation_near_truth),
    "backtest": Case(lambda: backtest(Chinchilla(), backtest_points(sigma=0.005, seed=1), holdout_largest=1,
                                      starts=BACKTEST_GRID, bootstrap=BOOTSTRAP, seed=0)),
    "rl": Case(lambda: fit_rl(synthetic_curves(n_eval=40), bootstrap=BOOTSTRAP), _rl_near_truth),
    "task-scaling": Case(lambda: fit_task_scaling(validate(ladder(seed=3, truth="chinchilla")), TARGET,
                                                  bootstrap=BOOTSTRAP, backtest=False, alternatives=False),
                         _tasks_near_truth),
    "plan": Case(lambda: design_runs(7e9, 1.4e11, 1e-3 * training_flops(7e9, 1.4e11), refits=0)),
    "identifiability": Case(lambda: check_identifiability(PLAN_LAW, WIDE, PLAN_TRUTH)),
    "hparam_laws": Case(_hparam_laws),
    "hparam_optima": Case(lambda: _hparam_laws().optima),
    "hparam_law": Case(lambda: _hparam_laws()["lr_vs_N_D"], _hparam_law_near_truth),
    "hparam_recommendation": Case(lambda: _hparam_laws().recommend(1.5e8, 6e9, seq_len=1024),
                                  _recommendation_near_truth),
}


#: Results that are not ok, so that their status and reasons are seen to survive save/load and reach the HTML.
NOT_OK_CASES: dict[str, Case] = {
    "fit/suspect": Case(lambda: fit(PowerLaw(x="tokens"), _one_run_curve(), bootstrap=BOOTSTRAP)),
    "identifiability/failed": Case(lambda: check_identifiability(
        PLAN_LAW, pd.DataFrame({"params": 4e4, "tokens": np.geomspace(1e6, 1.6e7, 8)}), PLAN_TRUTH)),
    "rl/suspect": Case(lambda: fit_rl(synthetic_curves(k_max=0.1, n0=1.0, sizes=QWEN_SIZES[:4], n_eval=30),
                                      bootstrap=BOOTSTRAP)),
}


@functools.cache
def _built(case: str) -> Result:
    return {**CASES, **NOT_OK_CASES}[case].build()


def test_every_registered_kind_has_a_case():
    assert set(CASES) == set(KIND_MODULES)


def test_the_not_ok_cases_are_not_ok():
    assert _built("fit/suspect").status == "suspect"
    assert _built("identifiability/failed").status == "failed"
    assert _built("rl/suspect").status == "suspect"


@pytest.fixture(params=sorted(KIND_MODULES) + sorted(NOT_OK_CASES))
def kind_and_result(request) -> tuple[str, Result]:
    case = request.param
    if case not in CASES and case not in NOT_OK_CASES:
        pytest.fail(f"result kind {case!r} has no case in tests/test_result_protocol.py: add one")
    return case.split("/")[0], _built(case)


def test_result_is_its_kind_and_has_a_known_status(kind_and_result):
    kind, result = kind_and_result
    assert result.kind == kind
    assert result.status in STATUSES
    assert isinstance(result.params, pd.Series)


def test_save_then_load_gives_the_same_result(kind_and_result, tmp_path):
    kind, result = kind_and_result
    path = result.save(tmp_path / f"{kind}.json")
    for again in (load_result(path), type(result).load(path)):
        assert type(again) is type(result)
        assert again.summary().as_text() == result.summary().as_text()
        pd.testing.assert_series_equal(again.params, result.params, check_dtype=False, check_names=False)
        assert again.status == result.status
        assert tuple(again.reasons) == tuple(result.reasons)
        assert tuple(again.notes) == tuple(result.notes)
        for level in (0.9, 0.99):
            pd.testing.assert_frame_equal(again.conf_int(level), result.conf_int(level), check_dtype=False)


def test_conf_int_nests_by_level_and_refuses_levels_outside_0_1(kind_and_result):
    _, result = kind_and_result
    narrow, wide = result.conf_int(0.9), result.conf_int(0.99)
    assert list(narrow.columns) == ["lo", "hi"] and narrow.index.equals(wide.index)
    assert set(narrow.index) <= set(result.params.index)
    for frame in (narrow, wide):
        finite = frame.dropna()
        assert (finite["lo"] <= finite["hi"]).all(), frame
    both = narrow.notna().all(axis=1) & wide.notna().all(axis=1)
    assert (wide.loc[both, "lo"] <= narrow.loc[both, "lo"]).all(), (narrow, wide)
    assert (narrow.loc[both, "hi"] <= wide.loc[both, "hi"]).all(), (narrow, wide)
    if both.any():  # the level is used: some interval is strictly wider at 99 % than at 90 %
        assert ((wide["hi"] - wide["lo"])[both] > (narrow["hi"] - narrow["lo"])[both]).any(), (narrow, wide)
    for level in (0.0, 1.0, 1.5, -0.1, math.nan):
        with pytest.raises(ScalefitInputError, match="between 0 and 1"):
            result.conf_int(level)


def test_summary_and_result_render_html_with_the_status(kind_and_result):
    _, result = kind_and_result
    summary = result.summary()
    for page in (summary._repr_html_(), result._repr_html_()):
        assert page.startswith("<div>") and html.escape(summary.title) in page
        if result.status == "ok":
            assert "<strong>OK</strong>" in page and "SUSPECT" not in page and "FAILED" not in page
        else:
            assert f"<strong>{result.status.upper()}</strong>" in page


@pytest.mark.parametrize("kind", sorted(kind for kind, case in CASES.items() if case.near_truth))
def test_estimates_are_near_the_known_truth(kind):
    CASES[kind].near_truth(_built(kind))
