"""``scalefit fit / predict / allocate`` end to end on a runs table drawn from a known Chinchilla law, and the
bad-input contract: one readable message on stderr, exit code 2, nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalefit.cli import main

# The law the runs are drawn from: L(N, D) = E + A/N^alpha + B/D^beta.
TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.36}
SIZES = np.geomspace(1e6, 1e8, 6)  # 6 model sizes over 2 decades
BUDGETS = np.geomspace(1e8, 1e10, 5)  # 5 token budgets over 2 decades
BEST_LR, WORSE_LR, DIVERGED_LR = 1e-3, 3e-3, 1e-1
WORSE_LR_PENALTY = 1.04  # the worse learning rate's loss is 4% higher: 8 noise widths, clearly worse
NOISE = 0.005  # log-normal noise, sigma of log L
EXPONENT_TRUTH = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])  # N_opt ∝ C^(β/(α+β))

# Tolerances on the fitted parameters: about 3.5 standard deviations of each estimate over 30 noise seeds of
# this very design and fitting path (sd: alpha 0.010, beta 0.014, E 3.6%, A 13%, B 30% with a long upper
# tail, up to +127%). Amplitudes trade off against their exponents, so A and B are loose; the exponents and
# E are pinned tightly. Seeded noise makes the test deterministic; the margins keep it robust to engine changes.
ABS_TOLERANCE = {"alpha": 0.035, "beta": 0.05}
REL_TOLERANCE = {"E": 0.12, "A": 0.45}
B_FACTOR = 2.5  # B within a factor 2.5 of the truth

FIT_KEYS = {"law", "params", "intervals", "interval_method", "objective", "success", "message", "n_points",
            "flops_convention", "backtest"}
BACKTEST_KEYS = {"run_id", "params", "tokens", "actual", "predicted", "rel_error"}
WORSE_LR_EXCLUSION = "runs at a worse lr/batch setting of the same (N, D)"


def chinchilla_law(params: dict, n, d):
    n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
    return params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"]


def runs_table(seed: int = 0) -> pd.DataFrame:
    """Runs at every (size, budget) and two learning rates, each evaluated at half its budget and at the budget
    (its final row), plus one diverged run with NaN losses; 0.5% log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in SIZES:
        for budget in BUDGETS:
            for lr, penalty in ((BEST_LR, 1.0), (WORSE_LR, WORSE_LR_PENALTY)):
                for step, fraction in ((1, 0.5), (2, 1.0)):
                    d = budget * fraction
                    loss = chinchilla_law(TRUTH, n, d) * penalty * np.exp(rng.normal(0.0, NOISE))
                    rows.append({"run_id": f"N{n:.3g}-D{budget:.3g}-lr{lr:g}", "params": n, "tokens": d,
                                 "loss": loss, "lr": lr, "step": step, "status": "ok"})
    for step, fraction in ((1, 0.5), (2, 1.0)):
        rows.append({"run_id": "diverged", "params": SIZES[0], "tokens": BUDGETS[0] * fraction, "loss": np.nan,
                     "lr": DIVERGED_LR, "step": step, "status": "diverged"})
    return pd.DataFrame(rows)


@dataclass
class Ran:
    code: int
    out: str
    err: str


def run_cli(*argv) -> Ran:
    """``scalefit.cli.main`` in process, with its stdout and stderr (usable in module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return Ran(code, out.getvalue(), err.getvalue())


@dataclass
class Fitted:
    ran: Ran
    runs: Path
    out: Path
    json: Path
    doc: dict


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Fitted:
    """One ``scalefit fit RUNS --law chinchilla --out DIR --json FILE --bootstrap 100`` shared by the
    fit/predict/allocate tests: the free joint law, whose exponents these tests check (the default, ``--law
    auto``, is tested in test_selection.py)."""
    root = tmp_path_factory.mktemp("fit")
    runs = root / "runs.parquet"
    runs_table().to_parquet(runs, index=False)
    out, fit_json = root / "out", root / "fit.json"
    ran = run_cli("fit", runs, "--law", "chinchilla", "--out", out, "--json", fit_json, "--bootstrap", 100)
    assert ran.code == 0, ran.err
    return Fitted(ran, runs, out, fit_json, json.loads(fit_json.read_text()))


# --- scalefit fit ----------------------------------------------------------------------------------------


def test_fit_writes_the_documented_fit_json(fitted):
    doc = fitted.doc
    assert FIT_KEYS <= set(doc)
    assert doc["law"] == "Chinchilla()"
    assert doc["success"] is True
    assert doc["interval_method"] == "bootstrap-residual"  # tuned points: one row per (N, D)
    assert doc["bootstrap"]["scheme"] == "residual"
    assert doc["n_points"] == len(SIZES) * len(BUDGETS)
    assert doc["flops_convention"] == "6ND"
    assert set(doc["params"]) == set(doc["intervals"]) == set(TRUTH)
    for name, (lo, hi) in doc["intervals"].items():
        assert lo <= doc["params"][name] <= hi, name
    assert fitted.ran.err == ""


def test_fit_recovers_the_true_law_within_tolerance(fitted):
    params, intervals = fitted.doc["params"], fitted.doc["intervals"]
    for name, tolerance in ABS_TOLERANCE.items():
        assert params[name] == pytest.approx(TRUTH[name], abs=tolerance), name
    for name, tolerance in REL_TOLERANCE.items():
        assert params[name] == pytest.approx(TRUTH[name], rel=tolerance), name
    assert 1 / B_FACTOR < params["B"] / TRUTH["B"] < B_FACTOR
    for name in ("E", "alpha", "beta"):  # the 95% bootstrap intervals cover the truth at this seed
        lo, hi = intervals[name]
        assert lo <= TRUTH[name] <= hi, name


def test_fit_excludes_the_diverged_run_and_the_worse_learning_rate(fitted):
    assert fitted.doc["excluded"] == {"runs diverged": 1, WORSE_LR_EXCLUSION: len(SIZES) * len(BUDGETS)}
    assert "excluded: 1 runs diverged" in fitted.ran.out
    assert f"excluded: {len(SIZES) * len(BUDGETS)} {WORSE_LR_EXCLUSION}" in fitted.ran.out
    assert fitted.doc["points"] == "tuned"


def test_fit_backtests_the_largest_size(fitted):
    records = fitted.doc["backtest"]
    assert len(records) == len(BUDGETS)
    for record in records:
        assert set(record) == BACKTEST_KEYS
        assert record["params"] == pytest.approx(SIZES[-1])
        assert record["run_id"].endswith(f"lr{BEST_LR:g}")  # the tuned point's run
        assert record["rel_error"] == pytest.approx((record["predicted"] - record["actual"]) / record["actual"])
        assert abs(record["rel_error"]) < 0.03  # 0.5% noise, one size (2.5x) extrapolated
    assert sorted(r["tokens"] for r in records) == pytest.approx(BUDGETS)
    assert "backtest:" in fitted.ran.out


def test_fit_prints_the_summary(fitted):
    assert "scalefit fit: chinchilla" in fitted.ran.out
    assert f"{len(SIZES) * len(BUDGETS)} points (tuned) from {len(SIZES)} model sizes" in fitted.ran.out
    assert "approach 3 (joint law)" in fitted.ran.out


def test_fit_out_folder_holds_json_report_and_plots_and_nothing_else_is_left(fitted):
    names = set(os.listdir(fitted.out))
    assert {"fit.json", "report.md", "fit.png", "residuals.png", "allocation.png"} <= names
    assert ".scalefit-output" in names  # the marker that lets a later --out replace this folder
    for name in names - {"fit.json", "report.md", ".scalefit-output"}:
        assert (fitted.out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (fitted.out / "report.md").read_text()
    assert "# scalefit fit: chinchilla" in report and "![fit](fit.png)" in report
    # the staging folder was renamed into place, the JSON temp file replaced: no leftovers beside them
    assert sorted(os.listdir(fitted.out.parent)) == ["fit.json", "out", "runs.parquet"]


def test_fit_json_option_writes_the_same_document_as_the_out_folder(fitted):
    assert json.loads((fitted.out / "fit.json").read_text()) == fitted.doc


def test_fit_json_allocation_matches_the_closed_form(fitted):
    allocation = fitted.doc["allocation"]
    budgets = pd.DataFrame(allocation["budgets"])
    expected = closed_form_n_opt(fitted.doc["params"], budgets["flops"])
    np.testing.assert_allclose(budgets["params"], expected, rtol=1e-9)
    np.testing.assert_allclose(budgets["tokens"], budgets["flops"] / (6 * budgets["params"]), rtol=1e-9)


# --- scalefit predict ------------------------------------------------------------------------------------


def test_predict_prints_the_law_at_the_fitted_parameters_with_nested_intervals(fitted, tmp_path, capsys):
    predictions = tmp_path / "predictions.json"
    code = main(["predict", "--fit", str(fitted.json), "--params", "3e8", "--tokens", "2e10",
                 "--json", str(predictions)])
    out = capsys.readouterr().out
    assert code == 0
    [row] = json.loads(predictions.read_text())["predictions"]
    expected = chinchilla_law(fitted.doc["params"], 3e8, 2e10)
    assert row["loss"] == pytest.approx(expected, rel=1e-12)
    assert f"{expected:.4g}" in out and "mean_lo" in out and "run_hi" in out
    assert row["run_lo"] <= row["mean_lo"] <= row["loss"] <= row["mean_hi"] <= row["run_hi"]
    assert row["run_hi"] - row["run_lo"] > row["mean_hi"] - row["mean_lo"]
    # a 3x extrapolation in N and 2x in D from 0.5% noisy data: within 2% of the true law
    assert row["loss"] == pytest.approx(chinchilla_law(TRUTH, 3e8, 2e10), rel=0.02)


def test_predict_broadcasts_comma_separated_values(fitted, tmp_path, capsys):
    predictions = tmp_path / "predictions.json"
    code = main(["predict", "--fit", str(fitted.json), "--params", "1e6,1e7,1e8", "--tokens", "1e9",
                 "--json", str(predictions)])
    capsys.readouterr()
    assert code == 0
    rows = pd.DataFrame(json.loads(predictions.read_text())["predictions"])
    assert rows["params"].tolist() == [1e6, 1e7, 1e8]
    assert rows["tokens"].tolist() == [1e9] * 3
    np.testing.assert_allclose(rows["loss"], chinchilla_law(fitted.doc["params"], rows["params"], 1e9), rtol=1e-12)
    assert rows["loss"].is_monotonic_decreasing


@pytest.mark.parametrize(("argv", "words"), [
    (["--params", "1e7"], "needs --tokens"),
    (["--tokens", "1e9"], "needs --params"),
    (["--params", "1e6,1e7", "--tokens", "1e9,2e9,3e9"], "equally many values"),
    (["--params", "0", "--tokens", "1e9"], "finite and positive"),
    (["--params", "nan", "--tokens", "1e9"], "finite and positive"),
])
def test_predict_with_missing_or_bad_inputs_exits_2(fitted, tmp_path, argv, words):
    predictions = tmp_path / "predictions.json"
    ran = run_cli("predict", "--fit", fitted.json, *argv, "--json", predictions)
    assert ran.code == 2
    assert_one_message(ran.err, "predict", [words])
    assert not predictions.exists()


def test_predict_rejects_a_value_that_is_not_a_number_as_usage_error(fitted, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--fit", str(fitted.json), "--params", "big", "--tokens", "1e9"])
    assert exit_info.value.code == 2
    assert "--params" in capsys.readouterr().err


# --- scalefit allocate -----------------------------------------------------------------------------------


def closed_form_n_opt(params: dict, flops) -> np.ndarray:
    """N_opt = G (C/6)^(β/(α+β)), G = (αA/(βB))^(1/(α+β)) (Hoffmann et al. 2022, eq. 4)."""
    a, b, alpha, beta = params["A"], params["B"], params["alpha"], params["beta"]
    g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))
    return g * (np.atleast_1d(np.asarray(flops, dtype=float)) / 6) ** (beta / (alpha + beta))


def test_allocate_equals_the_closed_form_at_the_fitted_parameters(fitted, tmp_path, capsys):
    allocation_json = tmp_path / "allocation.json"
    code = main(["allocate", "--fit", str(fitted.json), "--flops", "1e18,1e20", "--json", str(allocation_json)])
    out = capsys.readouterr().out
    assert code == 0
    allocation = json.loads(allocation_json.read_text())
    budgets = pd.DataFrame(allocation["budgets"])
    assert budgets["flops"].tolist() == [1e18, 1e20]
    n_opt = closed_form_n_opt(fitted.doc["params"], [1e18, 1e20])
    np.testing.assert_allclose(budgets["params"], n_opt, rtol=1e-12)
    np.testing.assert_allclose(budgets["tokens"], np.array([1e18, 1e20]) / (6 * n_opt), rtol=1e-12)
    assert (budgets["params_lo"] <= budgets["params"]).all() and (budgets["params"] <= budgets["params_hi"]).all()
    p = fitted.doc["params"]
    assert allocation["params_exponent"] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]), rel=1e-12)
    lo, hi = allocation["params_exponent_interval"]
    assert lo <= EXPONENT_TRUTH <= hi
    assert allocation["tokens_exponent"] == pytest.approx(1 - allocation["params_exponent"])
    assert "approach 3 (joint law)" in out and f"{n_opt[0]:.3g}" in out


# --- other laws, fixed and tied parameters, column mapping, no bootstrap ------------------------------------


def fit_doc(tmp_path: Path, runs: Path, *options) -> dict:
    fit_json = tmp_path / "variant.json"
    ran = run_cli("fit", runs, "--json", fit_json, *options)
    assert ran.code == 0, ran.err
    return json.loads(fit_json.read_text())


@pytest.mark.parametrize(("options", "law", "names"), [
    (["--law", "power", "--x", "params"], "PowerLaw(x='params')", {"A", "E", "alpha", "x0"}),
    (["--law", "kaplan"], "Kaplan()", {"Nc", "Dc", "alpha_N", "alpha_D"}),
])
def test_other_laws_fit_from_the_command_line(fitted, tmp_path, options, law, names):
    doc = fit_doc(tmp_path, fitted.runs, *options, "--bootstrap", 10)
    assert doc["law"] == law
    assert doc["success"] is True
    assert set(doc["params"]) == names
    assert doc["allocation"] is None  # no closed-form allocation outside the joint Chinchilla law
    assert len(doc["backtest"]) == len(BUDGETS)
    ran = run_cli("allocate", "--fit", tmp_path / "variant.json", "--flops", "1e18")
    assert ran.code == 2
    assert_one_message(ran.err, "allocate", ["closed-form", "chinchilla"])


def test_power_law_fit_json_predicts_from_its_own_variable(fitted, tmp_path):
    doc = fit_doc(tmp_path, fitted.runs, "--law", "power", "--x", "params", "--bootstrap", 10)
    ran = run_cli("predict", "--fit", tmp_path / "variant.json", "--params", "1e9")
    assert ran.code == 0, ran.err
    p = doc["params"]
    assert f"{p['E'] + p['A'] * 1e9 ** -p['alpha']:.4g}" in ran.out


def test_fix_holds_alpha_at_its_value(fitted, tmp_path):
    doc = fit_doc(tmp_path, fitted.runs, "--fix", "alpha=0.34", "--bootstrap", 20, "--holdout-largest", 0)
    assert doc["params"]["alpha"] == 0.34
    assert doc["intervals"]["alpha"] == [0.34, 0.34]
    assert doc["fixed"] == {"alpha": 0.34}
    assert doc["n_free"] == 4
    assert doc["params"]["beta"] == pytest.approx(TRUTH["beta"], abs=ABS_TOLERANCE["beta"])


def test_tie_gives_equal_alpha_and_beta(fitted, tmp_path):
    doc = fit_doc(tmp_path, fitted.runs, "--tie", "alpha,beta", "--bootstrap", 0, "--holdout-largest", 0)
    assert doc["params"]["alpha"] == doc["params"]["beta"]
    assert doc["params"]["alpha"] == pytest.approx((TRUTH["alpha"] + TRUTH["beta"]) / 2, abs=0.03)
    assert doc["n_free"] == 4


def test_map_renames_a_csv_column_with_a_space(fitted, tmp_path):
    csv = tmp_path / "runs.csv"
    runs_table().rename(columns={"params": "Model Size"}).to_csv(csv, index=False)
    doc = fit_doc(tmp_path, csv, "--map", "Model Size=params", "--law", "chinchilla", "--bootstrap", 0,
                  "--holdout-largest", 0)
    assert doc["source"] == str(csv)
    assert doc["n_points"] == fitted.doc["n_points"]
    for name, value in fitted.doc["params"].items():  # the same data as the parquet file: the same estimate
        assert doc["params"][name] == pytest.approx(value, rel=1e-6), name


def test_fit_without_bootstrap_still_backtests_predicts_and_allocates(fitted, tmp_path):
    out = tmp_path / "out"
    doc = fit_doc(tmp_path, fitted.runs, "--bootstrap", 0, "--out", out)
    assert doc["interval_method"] == "none"
    assert all(interval == [None, None] for interval in doc["intervals"].values())
    assert len(doc["backtest"]) == len(BUDGETS)
    assert doc["backtest_summary"]["prediction_interval_coverage"] is None
    assert {"fit.json", "report.md", "fit.png", "residuals.png", "allocation.png"} <= set(os.listdir(out))

    predictions = tmp_path / "predictions.json"
    ran = run_cli("predict", "--fit", tmp_path / "variant.json", "--params", "1e7", "--tokens", "1e9",
                  "--json", predictions)
    assert ran.code == 0, ran.err
    assert "no intervals" in ran.out
    [row] = json.loads(predictions.read_text())["predictions"]
    assert row["loss"] == pytest.approx(chinchilla_law(doc["params"], 1e7, 1e9), rel=1e-12)
    assert row["mean_lo"] is row["run_hi"] is None

    allocation_json = tmp_path / "allocation.json"
    ran = run_cli("allocate", "--fit", tmp_path / "variant.json", "--flops", "1e18", "--json", allocation_json)
    assert ran.code == 0, ran.err
    allocation = json.loads(allocation_json.read_text())
    assert allocation["budgets"][0]["params"] == pytest.approx(closed_form_n_opt(doc["params"], 1e18)[0], rel=1e-12)
    assert allocation["params_exponent_interval"] == [None, None]


# --- the bad-input contract ------------------------------------------------------------------------------


def assert_one_message(err: str, command: str, words) -> None:
    """One line on stderr, ``scalefit COMMAND: error: ...``, holding every one of ``words``; no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"scalefit {command}: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def small_table() -> pd.DataFrame:
    """The runs at the best learning rate: 30 runs x 2 rows, all ok."""
    return runs_table().query("status == 'ok' and lr == @BEST_LR").reset_index(drop=True)


def bad_cell(column: str, value) -> pd.DataFrame:
    """``small_table`` with ``value`` in ``column`` at data row 3."""
    table = small_table()
    table[column] = table[column].astype(object)
    table.loc[2, column] = value
    return table


def csv_of(table, *options: str, name: str = "t.csv"):
    """A case maker: write ``table()`` as CSV, fit it with ``options``."""
    def make(folder: Path) -> tuple[str, list[str]]:
        table().to_csv(folder / name, index=False)
        return name, list(options)
    return make


def parquet_of(table, name: str = "t.parquet"):
    def make(folder: Path) -> tuple[str, list[str]]:
        table().to_parquet(folder / name, index=False)
        return name, []
    return make


def raw(name: str, content: bytes | None):
    """A case maker: a file of these bytes (None: no file at all)."""
    def make(folder: Path) -> tuple[str, list[str]]:
        if content is not None:
            (folder / name).write_bytes(content)
        return name, []
    return make


# Each case: a maker (folder) -> (RUNS file name, extra options), and words the one message must hold: the
# file, the column or row, and what to do.
BAD_RUNS = {
    "missing file": (raw("nowhere.parquet", None), ["nowhere.parquet", "not found", "check the path"]),
    "garbage parquet": (raw("junk.parquet", bytes(range(256)) * 4),
                        ["junk.parquet", "cannot be read as a parquet file", "rewrite it"]),
    "binary blob as csv": (raw("blob.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50),
                           ["blob.csv", "cannot be read as a comma-separated text file"]),
    "missing loss column": (csv_of(lambda: small_table().drop(columns="loss")),
                            ["t.csv", "lacks the required column 'loss'", "--map"]),
    "non-numeric tokens": (csv_of(lambda: bad_cell("tokens", "1e9 tokens")),
                           ["t.csv", "column 'tokens'", "row 3 ('1e9 tokens')", "must be numeric"]),
    "NaN params": (parquet_of(lambda: bad_cell("params", np.nan)),
                   ["t.parquet", "column 'params'", "row 3 (NaN)", "not a finite number > 0", "fix or drop"]),
    "inf tokens": (parquet_of(lambda: bad_cell("tokens", np.inf)),
                   ["t.parquet", "column 'tokens'", "row 3 (inf)", "not a finite number > 0"]),
    "zero tokens": (csv_of(lambda: bad_cell("tokens", 0.0)), ["t.csv", "column 'tokens'", "row 3 (0)", "drop such rows"]),
    "negative params": (csv_of(lambda: bad_cell("params", -1e6)),
                        ["t.csv", "column 'params'", "row 3 (-1e+06)", "not a finite number > 0"]),
    "duplicate run and step": (csv_of(lambda: pd.concat([small_table(), small_table().iloc[[4]]])),
                               ["t.csv", "(run_id, step) repeats", "rows 5, 61", "drop the repeated rows"]),
    "header only": (raw("t.csv", b"run_id,params,tokens,loss\n"), ["t.csv", "has a header but no rows"]),
    "empty file": (raw("t.csv", b""), ["t.csv", "is empty"]),
    "unknown map source": (csv_of(lambda: small_table().rename(columns={"params": "Model Size"}),
                                  "--map", "Model Sise=params"),
                           ["t.csv", "'Model Sise'", "not a column of the file", "Did you mean 'Model Size'"]),
    "map without equals": (csv_of(small_table, "--map", "Model Size"), ["'Model Size'", "OLD=NEW"]),
    "fix without value": (csv_of(small_table, "--fix", "alpha"), ["--fix 'alpha'", "NAME=VALUE"]),
    "fix with a word for a value": (csv_of(small_table, "--fix", "alpha=high"), ["--fix 'alpha=high'", "NAME=VALUE"]),
    "fix of an unknown parameter": (csv_of(small_table, "--fix", "gamma=1"), ["no parameter 'gamma'", "alpha, beta"]),
    "tie of one name": (csv_of(small_table, "--tie", "alpha"), ["--tie 'alpha'", "two or more"]),
    "one model size": (csv_of(lambda: small_table().query("params == @SIZES[0]")),
                       ["t.csv", "at least two distinct values of 'params'", "one model size"]),
    "fewer points than parameters": (
        csv_of(lambda: small_table().query("params in @SIZES[:2] and tokens in @BUDGETS[:2]")),
        ["t.csv", "4 points cannot determine 5 free parameters"]),
    "no ok rows": (csv_of(lambda: small_table().assign(status="killed")), ["t.csv", "no rows with status 'ok'"]),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_fit_input_gives_one_message_exit_2_and_writes_nothing(tmp_path, case):
    make, words = BAD_RUNS[case]
    work = tmp_path / "work"
    work.mkdir()
    name, options = make(work)
    before = set(os.listdir(work))
    ran = run_cli("fit", work / name, *options, "--out", work / "out", "--json", work / "fit.json",
                  "--bootstrap", 10)
    assert ran.code == 2, ran.err
    assert_one_message(ran.err, "fit", words)
    assert ran.out == ""
    assert set(os.listdir(work)) == before  # no out folder, no fit.json, no staging or temp leftovers


BAD_FIT_JSON = {
    "missing": (lambda d: None, ["fit.json", "no such file", "scalefit fit RUNS --json"]),
    "truncated": (lambda d: (d / "fit.json").write_text('{"law": "Chinchilla()", "params": {'),
                  ["fit.json", "not a fit.json written by `scalefit fit`", "JSONDecodeError", "refit"]),
    "binary": (lambda d: (d / "fit.json").write_bytes(bytes(range(256))),
               ["fit.json", "not a fit.json written by `scalefit fit`"]),
    "other JSON": (lambda d: (d / "fit.json").write_text('{"laws": {}}'),
                   ["fit.json", "not a fit.json written by `scalefit fit`", "not a 'fit' one"]),
    "a list": (lambda d: (d / "fit.json").write_text("[1, 2]"),
               ["fit.json", "not a fit.json written by `scalefit fit`"]),
}


@pytest.mark.parametrize("command", [
    ["predict", "--params", "1e7", "--tokens", "1e9"],
    ["allocate", "--flops", "1e18"],
])
@pytest.mark.parametrize("case", list(BAD_FIT_JSON))
def test_predict_and_allocate_with_a_missing_or_corrupt_fit_json_exit_2(tmp_path, command, case):
    make, words = BAD_FIT_JSON[case]
    make(tmp_path)
    before = set(os.listdir(tmp_path))
    ran = run_cli(command[0], "--fit", tmp_path / "fit.json", *command[1:], "--json", tmp_path / "result.json")
    assert ran.code == 2, ran.err
    assert_one_message(ran.err, command[0], words)
    assert set(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("flops", ["0", "-1e18", "inf", ","])
def test_allocate_rejects_budgets_that_are_not_positive_numbers(fitted, tmp_path, flops):
    ran = run_cli("allocate", "--fit", fitted.json, f"--flops={flops}", "--json", tmp_path / "a.json")
    assert ran.code == 2
    assert_one_message(ran.err, "allocate", ["--flops", "finite positive"])
    assert not (tmp_path / "a.json").exists()


def test_out_naming_an_existing_file_is_refused_and_the_file_kept(tmp_path, capsys):
    runs_path = tmp_path / "runs.csv"
    runs_path.write_text("run_id,params,tokens,loss\na,1e6,1e8,3.0\n")
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    assert main(["fit", str(runs_path), "--out", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "runs.csv"]
