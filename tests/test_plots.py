"""Plots draw what they promise: log–log axes, labels, one curve and band per group, dashed extrapolation,
the asymptote E, held-out points marked apart, corner pairs, IsoFLOP minima, and one style throughout."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from synthetic_runs import SIZES, ladder_table, rl_table

from scalefit import plots
from scalefit.fitting import fit
from scalefit.hyperparams import fit_hparams
from scalefit.laws import PowerLaw
from scalefit.report import lr_sweep_table, target_table
from scalefit.rl import fit_rl
from scalefit.runs import load_runs, write_runs
from scalefit.study import fit_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("plots") / "runs.parquet"
    write_runs(ladder_table(), path)
    return load_runs(path)


@pytest.fixture(scope="module")
def study(runs):
    return fit_runs(runs, bootstrap=100, seed=0)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def lines(ax, style: str):
    """Lines of ``ax`` drawn in ``style`` ('-' or '--')."""
    return [line for line in ax.get_lines() if line.get_linestyle() == style]


def scatters(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def colourbar_labels(fig) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes[1:]]


# --- the joint-law fit ----------------------------------------------------------------------------------


def test_fit_against_tokens_has_a_curve_band_pair_per_size_and_the_asymptote(study):
    fig = plots.plot_fit(study.result)
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert ax.get_xlabel().startswith("D") and "loss" in ax.get_ylabel()
    assert colourbar_labels(fig) == ["N (non-embedding parameters)"]  # data coloured by the other variable
    n_sizes = len(SIZES)
    assert len(bands(ax)) == n_sizes  # the mean's interval, shaded, per size ...
    assert len(lines(ax, ":")) == 2 * n_sizes  # ... and a new run's, dotted edges, told apart
    solid = [line for line in lines(ax, "-") if np.isfinite(line.get_ydata()).any()]
    assert len(solid) == n_sizes  # the law where it has data ...
    asymptote = [line for line in lines(ax, "--") if np.allclose(line.get_ydata(), study.result.params["E"])]
    assert len(asymptote) == 1  # ... E as a dashed horizontal line ...
    assert len(lines(ax, "--")) == n_sizes + 1  # ... and the law extrapolated, dashed
    (points,) = scatters(ax)
    np.testing.assert_allclose(np.sort(points.get_offsets()[:, 1]), np.sort(study.result.data["loss"]))
    assert {"95% interval of the mean", "95% interval of a new run", "fitted (30)"} <= set(legend_texts(ax))
    assert any(text.startswith("E = ") for text in legend_texts(ax))


def test_the_solid_curve_spans_exactly_its_sizes_data(study):
    ax = plots.plot_fit(study.result).axes[0]
    largest = study.result.data[study.result.data["params"] == max(SIZES)]
    # The last solid line is the largest size (sizes are drawn in order): finite only over its data's range.
    x, y = lines(ax, "-")[-1].get_xdata(), np.asarray(lines(ax, "-")[-1].get_ydata(), float)
    drawn = x[np.isfinite(y)]
    assert drawn.min() >= largest["tokens"].min() and drawn.max() <= largest["tokens"].max()
    assert drawn.min() < largest["tokens"].min() * 1.1 and drawn.max() > largest["tokens"].max() / 1.1


@pytest.mark.parametrize(("against", "xlabel", "colourbar"), [
    ("params", "N (non-embedding parameters)", "D (training tokens)"),
    ("flops", "C = 6ND (training FLOPs)", "N (non-embedding parameters)"),
])
def test_fit_against_n_or_c_colours_by_the_other_variable(study, against, xlabel, colourbar):
    fig = plots.plot_fit(study.result, against=against, interval="confidence")
    ax = fig.axes[0]
    assert ax.get_xlabel() == xlabel and colourbar_labels(fig) == [colourbar]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert "95% interval of a new run" not in legend_texts(ax) and lines(ax, ":") == []
    assert len(bands(ax)) == len(lines(ax, "-"))  # one band per curve: the mean's only


def test_fit_without_bands_and_bad_options(study):
    ax = plots.plot_fit(study.result, interval=None).axes[0]
    assert bands(ax) == [] and lines(ax, ":") == []
    with pytest.raises(ValueError, match="against must be one of"):
        plots.plot_fit(study.result, against="lr")
    with pytest.raises(ValueError, match="interval must be"):
        plots.plot_fit(study.result, interval="credible")


def test_a_one_variable_law_draws_one_curve_without_colourbar(study):
    result = fit(PowerLaw(x="params"), study.points.groupby("params", as_index=False)["loss"].min(), bootstrap=40)
    fig = plots.plot_fit(result)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ax.get_xlabel().startswith("N")
    assert len(lines(ax, "-")) == 1 and len(bands(ax)) == 1 and len(lines(ax, ":")) == 2
    assert len(scatters(ax)[0].get_offsets()) == len(SIZES)


def test_backtest_marks_held_out_points_and_extrapolates_dashed_to_them(study):
    backtest = study.backtest
    ax = plots.plot_backtest(backtest).axes[0]
    _, held = scatters(ax)
    assert len(held.get_offsets()) == len(backtest.predictions)
    assert len(held.get_facecolors()) == 0  # hollow
    np.testing.assert_allclose(np.sort(held.get_offsets()[:, 1]), np.sort(backtest.predictions["actual"]))
    finite_solid = [line for line in lines(ax, "-") if np.isfinite(line.get_ydata()).any()]
    assert len(finite_solid) == len(SIZES) - 1  # the held-out size has no solid stretch: all extrapolation
    assert "held out (5)" in legend_texts(ax)
    assert f"{backtest.mean_abs_rel_error:.2%}" in ax.get_title()


def test_residuals_against_each_input_and_the_fitted_loss(study):
    fig = plots.plot_residuals(study.result)
    assert [ax.get_xlabel() for ax in fig.axes] == ["N (non-embedding parameters)", "D (training tokens)",
                                                      "fitted loss L̂"]
    assert [ax.get_xscale() for ax in fig.axes] == ["log", "log", "linear"]
    assert fig.axes[0].get_ylabel() == "log L − log L̂"
    rms = np.sqrt(np.mean(study.result.residuals**2))
    for ax in fig.axes:
        (points,) = scatters(ax)
        np.testing.assert_allclose(points.get_offsets()[:, 1], study.result.residuals)
        levels = sorted(line.get_ydata()[0] for line in ax.get_lines())
        np.testing.assert_allclose(levels, [-2 * rms, 0.0, 2 * rms])
    one = plots.plot_residuals(study.result, against="tokens")
    assert len(one.axes) == 1 and one.axes[0].get_xlabel() == "D (training tokens)"


def test_bootstrap_corner_has_histograms_on_the_diagonal_and_pairs_below(study):
    fig = plots.plot_bootstrap(study.result)
    grid = np.array(fig.axes).reshape(3, 3)
    assert [grid[2, j].get_xlabel() for j in range(3)] == ["α", "β", "E"]
    assert [grid[i, 0].get_ylabel() for i in (1, 2)] == ["β", "E"]
    draws = study.result.draws[study.result.draws["converged"]]
    for i in range(3):
        assert grid[i, i].patches and sum(p.get_height() for p in grid[i, i].patches) == len(draws)
        for j in range(3):
            assert grid[i, j].get_visible() == (j <= i)
    alpha_beta = scatters(grid[1, 0])[0].get_offsets()
    np.testing.assert_allclose(alpha_beta, draws[["alpha", "beta"]].to_numpy())
    assert plots.plot_bootstrap(study.result, params=["A"]).axes[0].get_xlabel() == "A"


def test_a_fit_read_from_json_has_no_points_to_plot(study):
    from dataclasses import replace

    empty = replace(study.result, data=study.result.data.iloc[:0])
    with pytest.raises(ValueError, match="no data points"):
        plots.plot_fit(empty)


def test_training_curves_one_line_per_run_with_excluded_runs_grey(runs):
    ax = plots.plot_runs(runs).axes[0]
    assert len(ax.get_lines()) == runs["run_id"].nunique()
    grey = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(grey) == 1 and grey[0].get_color() == "0.6"
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert "1 not ok" in ax.get_title()


# --- compute-optimal allocation --------------------------------------------------------------------------


def test_allocation_draws_three_approaches_with_exponents_and_dashes_beyond_the_data(study):
    compute = 6 * study.points["params"] * study.points["tokens"]
    ax = plots.plot_allocation(study.allocation, study.approaches, data_range=(compute.min(), compute.max())).axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    texts = legend_texts(ax)
    a = study.allocation.params_exponent
    assert any(t.startswith(f"approach 3 (joint law): C^{a:.3f}") for t in texts)
    assert sum(t.startswith(("approach 1", "approach 2")) for t in texts) == 2
    assert len(bands(ax)) == 1
    assert len(lines(ax, "--")) == 3 and len(lines(ax, "-")) == 3  # each law: data span solid, rest dashed
    tokens = plots.plot_allocation(study.allocation, study.approaches, quantity="tokens").axes[0]
    assert tokens.get_ylabel() == "compute-optimal D (tokens)"
    assert any(t.startswith(f"approach 3 (joint law): C^{1 - a:.3f}") for t in legend_texts(tokens))


def test_frontier_puts_n_d_and_the_exponents_side_by_side(study):
    fig = plots.plot_frontier(study.allocation, study.approaches)
    n_ax, d_ax, exponents = fig.axes
    assert n_ax.get_ylabel().startswith("compute-optimal N") and d_ax.get_ylabel().startswith("compute-optimal D")
    labels = [t.get_text() for t in exponents.get_yticklabels()]
    assert labels == ["approach 1", "approach 2", "approach 3"]
    assert len(exponents.containers) == 2 * 3  # a and b, with intervals, per approach
    b3 = exponents.containers[-1].lines[0].get_xdata()[0]
    assert b3 == pytest.approx(1 - study.allocation.params_exponent)


def test_isoflop_profiles_mark_each_approach2_minimum(study):
    approach2 = study.approaches[1]
    fig = plots.plot_isoflops(approach2)
    ax = fig.axes[0]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == len(approach2.optima)
    np.testing.assert_allclose(sorted(s.get_xdata()[0] for s in stars), np.sort(approach2.optima["params_opt"]))
    parabolas = [line for line in ax.get_lines() if line.get_marker() in ("None", None, "")]
    assert len(parabolas) == len(approach2.optima)
    assert ax.get_xscale() == "log" and colourbar_labels(fig) == ["C = 6ND (training FLOPs)"]


def test_predictions_show_each_target_with_both_intervals(study):
    targets = target_table(study, [(1e6, None), (1e7, 3e8)])
    ax = plots.plot_predictions(study.result, targets).axes[0]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    np.testing.assert_allclose([s.get_ydata()[0] for s in stars], targets["loss"])
    bars = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_linestyle() == "-"]
    assert len(bars) == 2 * len(targets)  # thick (mean) and thin (a run)
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert "compute-optimal loss" in legend_texts(ax)


# --- LR / batch size and RL -------------------------------------------------------------------------------


def test_lr_landscapes_and_laws_one_panel_each(runs):
    swept, reason = lr_sweep_table(runs)
    assert reason == ""
    laws = fit_hparams(swept, n_bootstrap=50)
    fig = plots.plot_lr_landscapes(laws.optima)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_xlabel() == "peak learning rate"]
    assert len(panels) == len(laws.optima.groups)
    assert all(ax.get_xscale() == "log" for ax in panels)
    laws_fig = plots.plot_hparam_laws(laws)
    drawn = [ax for ax in laws_fig.axes if ax.get_visible()]
    assert len(drawn) == sum(len(law.variables) for law in laws.laws.values())
    assert all((ax.get_xscale(), ax.get_yscale()) == ("log", "log") for ax in drawn)


def test_rl_plots_have_log_axes_and_the_saturation_curve():
    result = fit_rl(rl_table(), bootstrap=0)
    curves = plots.plot_rl_curves(result).axes[0]
    assert (curves.get_xscale(), curves.get_yscale()) == ("log", "log")
    efficiency = plots.plot_rl_efficiency(result).axes[0]
    assert efficiency.get_xscale() == "log" and efficiency.get_ylabel() == "learning efficiency k"


# --- one style --------------------------------------------------------------------------------------------


def test_style_is_paper_sized_and_leaves_the_users_rcparams_alone(study):
    before = dict(matplotlib.rcParams)
    fig = plots.plot_fit(study.result)
    ax = fig.axes[0]
    assert ax.xaxis.label.get_fontsize() == plots.STYLE["axes.labelsize"] == 8
    width, height = fig.get_size_inches()
    assert width <= 7.0 and height <= 5.0  # one column of a paper, at most
    assert dict(matplotlib.rcParams) == before
    assert plots.PALETTE[:3] == ("#0072B2", "#E69F00", "#009E73")  # Okabe–Ito


def test_save_and_close_writes_a_png_and_releases_the_figure(study, tmp_path):
    fig = plots.plot_residuals(study.result)
    plots.save_and_close(fig, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()


def test_a_flagged_fit_says_so_in_every_title():
    """Two model sizes cannot identify a joint law: the fit is suspect, and its figures say SUSPECT."""
    from scalefit.laws import Chinchilla

    truth = {"E": 1.3, "A": 30.0, "B": 2500.0, "alpha": 0.45, "beta": 0.57}
    n, d = np.meshgrid([1e4, 1e5], np.geomspace(1e6, 1.6e7, 8))
    points = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
    rng = np.random.default_rng(0)
    points["loss"] = Chinchilla().predict(truth, points) * np.exp(rng.normal(0.0, 0.01, len(points)))
    result = fit(Chinchilla(), points, bootstrap=50)
    assert result.status != "ok"
    flag = f"{result.status.upper()}: "
    assert plots.plot_fit(result).axes[0].get_title().startswith(flag)
    assert plots.plot_residuals(result)._suptitle.get_text().startswith(flag)
    plt.close("all")


def test_backtest_parity_draws_each_held_out_run_at_its_actual_and_predicted_loss(study):
    backtest = study.backtest
    fig = plots.plot_backtest_parity(backtest)
    points = next(c for c in fig.axes[0].collections if isinstance(c, PathCollection)).get_offsets()
    expected = backtest.predictions[["actual", "predicted"]].to_numpy()
    np.testing.assert_allclose(np.asarray(points), expected)
    x, y = fig.axes[0].get_lines()[-1].get_data()
    np.testing.assert_allclose(x, y)  # the line predicted = actual
    plt.close(fig)
