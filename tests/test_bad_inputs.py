"""The bad-input corpus (issue #10): every command on damaged, empty, mis-scaled or hostile input.

Each case is generated here by code (no binary fixtures) and asserts the CLI contract: the exit code (2 bad
input, 1 fitted but flagged), one ``scalefit CMD: error:`` (or ``warning:``) line that says what is wrong, no
traceback, and, for refusals, nothing written or changed in the working folder. The cases run in process
through :func:`scalefit.cli.main` (fast); a few run ``python -m scalefit.cli`` as a subprocess to exercise the
top-level handler as a user meets it (pipes, ``--debug``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import joint_loss, ladder_table, rl_table

from scalefit.cli import main
from scalefit.cli.common import OUTPUT_MARKER

REPO = Path(__file__).resolve().parents[1]
FAST_FIT = ("--bootstrap", "0", "--holdout-largest", "0")


# --- tables -------------------------------------------------------------------------------------------


@cache
def _ladder() -> pd.DataFrame:
    return ladder_table(seed=0)


def ladder() -> pd.DataFrame:
    """The synthetic CPU-ladder table: 6 sizes, LR and batch sweeps, one diverged run (a valid table)."""
    return _ladder().copy()


def small() -> pd.DataFrame:
    """A quick valid table for commands that must fit: 4 sizes x 4 token budgets, 3 evaluations each, drawn
    from the synthetic law with 0.3 % noise (no rollout, a fit in a second)."""
    rng = np.random.default_rng(3)
    rows = []
    for n in (1e6, 3e6, 1e7, 3e7):
        for budget in (1e8, 3e8, 1e9, 3e9):
            for step, fraction in ((1, 0.25), (2, 0.5), (3, 1.0)):
                d = budget * fraction
                rows.append({"run_id": f"n{n:g}-d{budget:g}", "params": n, "tokens": d, "step": step,
                             "loss": float(joint_loss(n, d)) * float(np.exp(rng.normal(0, 0.003)))})
    return pd.DataFrame(rows)


def noise_free() -> pd.DataFrame:
    """Loss exactly on the law: every residual 0 (the residual histogram once had no width to bin)."""
    sizes, budgets = (1e6, 3e6, 1e7, 3e7, 1e8), (1e8, 3e8, 1e9, 3e9)
    rows = [{"run_id": f"n{n:g}-d{d:g}", "params": n, "tokens": d, "loss": float(joint_loss(n, d))}
            for n in sizes for d in budgets]
    return pd.DataFrame(rows)


def six_points() -> pd.DataFrame:
    """3 sizes x 2 token budgets, one point each (Approach 1 once failed with KeyError 'flops')."""
    rows = [{"run_id": f"n{n:g}-d{d:g}", "params": n, "tokens": d, "loss": float(joint_loss(n, d)) * (1 + 0.003 * k)}
            for k, (n, d) in enumerate((n, d) for n in (1e6, 1e7, 1e8) for d in (1e9, 1e10))]
    return pd.DataFrame(rows)


def every_run_diverged() -> pd.DataFrame:
    table = ladder()
    table["status"] = "diverged"
    table["loss"] = np.nan
    return table


def with_column(column: str, transform: Callable[[pd.Series], pd.Series],
                base: Callable[[], pd.DataFrame] = ladder) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        table = base()
        table[column] = transform(table[column])
        return table
    return make


def with_cell(column: str, value) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        table = ladder()
        table[column] = table[column].astype(object)
        table.loc[5, column] = value  # the first run's last evaluation: a row every analysis reads
        return table
    return make


def without(column: str) -> Callable[[], pd.DataFrame]:
    return lambda: ladder().drop(columns=[column])


def duplicated_rows() -> pd.DataFrame:
    table = ladder()
    return pd.concat([table, table.iloc[4:6]], ignore_index=True)  # the first run's last two evaluations


def rising_loss() -> pd.DataFrame:
    """A metric where higher is better in the loss column: 'loss' grows with N and with D."""
    table = small()
    table["loss"] = 10.0 - table["loss"]
    return table


def hostile_ids() -> pd.DataFrame:
    table = ladder()
    table["run_id"] = "<script>alert(1)</script>|" + table["run_id"]
    return table


# --- files --------------------------------------------------------------------------------------------

Writer = Callable[[Path], None]


def table_file(make: Callable[[], pd.DataFrame]) -> Writer:
    def write(path: Path) -> None:
        table = make()
        if path.suffix == ".csv":
            table.to_csv(path, index=False)
        else:
            table.to_parquet(path, index=False)
    return write


def raw_bytes(data: bytes) -> Writer:
    return lambda path: path.write_bytes(data)


def truncated_parquet(path: Path) -> None:
    buffer = io.BytesIO()
    ladder().to_parquet(buffer, index=False)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def header_only(path: Path) -> None:
    path.write_text("run_id,params,tokens,loss\n")


def header_only_parquet(path: Path) -> None:
    ladder().iloc[:0].to_parquet(path, index=False)


def latin1_csv(path: Path) -> None:
    path.write_bytes("run_id,params,tokens,loss\nr\xe9sum\xe9,1e6,1e8,3.2\n".encode("latin-1") + b"\xff\xfe\x00\n")


def folder(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("not a table\n")


RANDOM_BYTES = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()

#: Files no command can read, under the name the command is given.
UNREADABLE: dict[str, tuple[str, Writer | None]] = {
    "missing": ("runs.parquet", None),
    "zero_byte_csv": ("runs.csv", raw_bytes(b"")),
    "zero_byte_parquet": ("runs.parquet", raw_bytes(b"")),
    "random_bytes_parquet": ("runs.parquet", raw_bytes(RANDOM_BYTES)),
    "random_bytes_csv": ("runs.csv", raw_bytes(RANDOM_BYTES)),
    "truncated_parquet": ("runs.parquet", truncated_parquet),
    "header_only_csv": ("runs.csv", header_only),
    "header_only_parquet": ("runs.parquet", header_only_parquet),
    "latin1_csv": ("runs.csv", latin1_csv),
    "folder_without_parts": ("runs_dir", folder),
    "unknown_suffix": ("runs.txt", table_file(ladder)),
}

#: Every command that reads a runs table, with fast settings; ``{runs}`` is the table.
READERS: dict[str, tuple[str, ...]] = {
    "fit": ("fit", "{runs}", *FAST_FIT),
    "hparams": ("hparams", "{runs}", "--bootstrap", "0"),
    "recommend": ("recommend", "--runs", "{runs}", "--params", "1e6", "--tokens", "1e8", "--bootstrap", "0"),
    "report": ("report", "{runs}", "--out", "rep", "--bootstrap", "0", "--hparam-bootstrap", "0"),
    "rl": ("rl", "{runs}", "--bootstrap", "0"),
    "plan": ("plan", "--check", "{runs}", "--bootstrap", "0"),
    "tasks": ("tasks", "{runs}", "--predict-params", "1e9", "--predict-tokens", "2e10", "--bootstrap", "0"),
}


# --- the contract -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One command line on prepared files, and what the CLI must answer."""

    argv: tuple[str, ...]
    files: dict[str, Writer] = field(default_factory=dict)
    code: int = 2
    says: tuple[str, ...] = ()  # substrings (case-insensitive) of the error/warning line
    writes_nothing: bool = True


@dataclass
class Ran:
    code: int
    out: str
    err: str


def run_in_process(argv: tuple[str, ...]) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as done:  # argparse usage errors
            code = done.code
    return Ran(code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def check_case(case: Case, root: Path) -> Ran:
    for name, write in case.files.items():
        write(root / name)
    before = snapshot(root)
    ran = run_in_process(case.argv)
    assert ran.code == case.code, f"exit {ran.code}, wanted {case.code}\nstderr: {ran.err}\nstdout: {ran.out[-2000:]}"
    assert "Traceback" not in ran.err + ran.out
    assert "internal error" not in ran.err, ran.err
    lines = [line for line in ran.err.splitlines() if line.startswith(f"scalefit {case.argv[0]}: ")
             and (": error: " in line or ": warning: " in line)]
    if case.code == 0:
        assert not any(": error: " in line for line in lines), ran.err
    else:
        assert lines, f"no 'scalefit {case.argv[0]}: error/warning:' line in stderr:\n{ran.err}"
    if case.code == 2:
        assert len(lines) == 1 and len(lines[0]) < 2100, f"not one error line:\n{ran.err}"
        stray = [line for line in ran.err.splitlines() if line.strip() and not line.startswith(("scalefit ", "usage:", " "))]
        assert not stray, f"stderr holds more than scalefit's own lines:\n{ran.err}"
    text = " ".join(lines).lower()
    for fragment in case.says:
        assert fragment.lower() in text, f"{fragment!r} not in {text!r}"
    if case.writes_nothing:
        assert snapshot(root) == before, "a refused command wrote or changed files"
    return ran


def cases_from(table: dict[str, Case]) -> list:
    return [pytest.param(case, id=name) for name, case in table.items()]


# --- 1. unreadable files x every command (60 cases) ---------------------------------------------------


def _unreadable_cases() -> dict[str, Case]:
    cases = {}
    for command, template in READERS.items():
        for damage, (name, write) in UNREADABLE.items():
            argv = tuple(a.replace("{runs}", name) for a in template)
            cases[f"{command}-{damage}"] = Case(argv, {name: write} if write else {}, says=(name,))
    return cases


@pytest.mark.parametrize("case", cases_from(_unreadable_cases()))
def test_unreadable_file_is_one_line_exit_2_and_nothing_written(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_case(case, tmp_path)


# --- 2. tables that are readable but wrong ------------------------------------------------------------

SCHEMA_DAMAGE: dict[str, tuple[Callable[[], pd.DataFrame], tuple[str, ...]]] = {
    "no_loss_column": (without("loss"), ("loss",)),
    "no_params_column": (without("params"), ("params",)),
    "params_not_numeric": (with_cell("params", "12M"), ("params", "row 6")),
    "negative_loss": (with_cell("loss", -1.0), ("loss", "row 6")),
    "unknown_status": (with_cell("status", "finished"), ("status",)),
    "duplicated_rows": (duplicated_rows, ("repeat",)),
    "loss_1e300": (with_cell("loss", 1e300), ("loss", "row 6", "1e+300")),
    "lr_1e300": (with_cell("lr", 1e300), ("lr", "row 6")),
    "params_1e20": (with_cell("params", 1e20), ("params", "row 6")),
    "tokens_inf": (with_cell("tokens", math.inf), ("tokens", "row 6")),
    "loss_column_empty": (with_column("loss", lambda s: np.nan), ("runs.csv",)),
    "loss_column_empty_no_status": (lambda: small().assign(loss=np.nan), ("no row has a loss",)),
}


def _table_schema_cases() -> dict[str, Case]:
    cases = {}
    for command in ("fit", "hparams", "report"):
        for damage, (make, says) in SCHEMA_DAMAGE.items():
            argv = tuple(a.replace("{runs}", "runs.csv") for a in READERS[command])
            cases[f"{command}-{damage}"] = Case(argv, {"runs.csv": table_file(make)}, says=says)
    return cases


def _rl_table_with(**changes) -> Callable[[], pd.DataFrame]:
    return lambda: rl_table().assign(**changes)


RL_DAMAGE: dict[str, tuple[Writer, tuple[str, ...]]] = {
    "header_only_rl_columns": (lambda path: path.write_text("run_id,params,flops,pass_at_1\n"), ("flops",)),
    "metric_in_percent": (table_file(lambda: rl_table().assign(pass_at_1=lambda t: 100 * t["pass_at_1"])),
                          ("pass_at_1", "[0, 1]")),
    "flat_curves": (table_file(_rl_table_with(pass_at_1=1.0)), ("flat",)),
    "params_not_numeric": (table_file(_rl_table_with(params="big")), ("params",)),
    "one_size": (table_file(lambda: rl_table().head(3)), ("one model size",)),
    "no_metric_column": (table_file(lambda: rl_table().drop(columns=["pass_at_1"])), ("rl.csv", "pass_at_1")),
}


def _schema_cases() -> dict[str, Case]:
    cases = _table_schema_cases()
    cases["tasks-no_task_columns"] = Case(
        ("tasks", "runs.csv", "--predict-params", "1e9", "--predict-tokens", "2e10"), {"runs.csv": table_file(small)},
        says=("runs.csv", "no task columns"))
    for damage, (write, says) in RL_DAMAGE.items():
        cases[f"rl-{damage}"] = Case(("rl", "rl.csv", "--bootstrap", "0"), {"rl.csv": write}, says=says)
    return cases


@pytest.mark.parametrize("case", cases_from(_schema_cases()))
def test_invalid_or_impossible_values_are_refused_naming_column_and_row(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_case(case, tmp_path)


# --- 3. plausible-looking but mis-scaled tables: fitted, flagged, exit 1 ------------------------------

MIS_SCALED: dict[str, tuple[Callable[[], pd.DataFrame], tuple[str, ...]]] = {
    "params_in_millions": (with_column("params", lambda s: s / 1e6, small), ("params look like millions",)),
    "params_in_thousands_with_flops": (
        lambda: small().assign(flops=lambda t: 6 * t["params"] * t["tokens"], params=lambda t: t["params"] / 1e3),
        ("flops are 1e+03 x",)),
    "tokens_in_billions": (with_column("tokens", lambda s: s / 1e9, small),
                           ("tokens look like millions or billions",)),
    # a small model's perplexity (25 to 60 here): a good model's (< e^3) cannot be told from nats without vocab_size
    "perplexity_as_loss": (with_column("loss", np.exp), ("perplexity",)),
    "perplexity_with_vocab_size": (lambda: small().assign(loss=lambda t: np.exp(t["loss"]) + 10, vocab_size=256),
                                   ("ln(vocab_size 256)",)),
    "loss_rising_with_scale": (rising_loss, ("loss rises with scale",)),
}


@pytest.mark.parametrize("name", list(MIS_SCALED))
def test_mis_scaled_table_is_fitted_but_flagged_with_the_likely_cause(name, tmp_path, monkeypatch):
    make, says = MIS_SCALED[name]
    monkeypatch.chdir(tmp_path)
    ran = check_case(Case(("fit", "runs.parquet", *FAST_FIT), {"runs.parquet": table_file(make)}, code=1,
                          says=says, writes_nothing=False), tmp_path)
    warnings = [line for line in ran.err.splitlines() if line.startswith("scalefit fit: warning: ")]
    assert len(warnings) == len(set(warnings)), "a warning printed twice"


def test_residual_bootstrap_on_curves_is_refused_once_with_what_to_use(tmp_path, monkeypatch):
    """Runs with several points each cannot resample residuals: exit 2, the reason said once even when every
    candidate law of the selection hits it, and the scheme to use instead."""
    monkeypatch.chdir(tmp_path)
    argv = ("fit", "runs.parquet", "--points", "all", "--bootstrap-scheme", "residual", "--bootstrap", "5",
            "--holdout-largest", "0")
    ran = check_case(Case(argv, {"runs.parquet": table_file(ladder)}, says=("several points", "'bayesian'")),
                     tmp_path)
    assert ran.err.count("several points") == 1, ran.err


def test_library_users_get_the_same_checks_as_python_warnings_and_errors(tmp_path):
    from scalefit.errors import RunsTableError
    from scalefit.plausibility import PlausibilityWarning
    from scalefit.runs import load_runs

    table_file(with_column("params", lambda s: s / 1e6, small))(tmp_path / "millions.parquet")
    with pytest.warns(PlausibilityWarning, match="params look like millions"):
        load_runs(tmp_path / "millions.parquet")
    table_file(lambda: small().assign(loss=lambda t: t["loss"].where(t.index != 2, 1e300)))(tmp_path / "big.csv")
    with pytest.raises(RunsTableError, match=r"'loss' holds 1e\+300 on data row 3"):
        load_runs(tmp_path / "big.csv")


@pytest.mark.parametrize("make", [small, ladder], ids=["small", "ladder"])
def test_a_sane_table_raises_no_plausibility_warning(make, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table_file(make)(tmp_path / "runs.parquet")
    ran = run_in_process(("fit", "runs.parquet", *FAST_FIT))
    assert "warning:" not in ran.err and ran.code == 0, ran.err


def test_shipped_runs_table_raises_no_plausibility_warning():
    import warnings

    from scalefit.plausibility import PlausibilityWarning
    from scalefit.runs import load_runs

    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)
        load_runs(REPO / "data" / "runs.parquet")


# --- 4. tables that once crashed a command ------------------------------------------------------------

CRASHERS: dict[str, Case] = {
    "fit-noise_free_table": Case(("fit", "runs.csv", *FAST_FIT, "--out", "o"), {"runs.csv": table_file(noise_free)},
                                 code=0, writes_nothing=False),
    "fit-three_sizes_two_budgets": Case(("fit", "runs.csv", *FAST_FIT), {"runs.csv": table_file(six_points)},
                                        code=0, writes_nothing=False),
    "report-three_sizes_two_budgets": Case(("report", "runs.csv", "--out", "rep", "--bootstrap", "0"),
                                           {"runs.csv": table_file(six_points)}, code=0, writes_nothing=False),
    "hparams-every_run_diverged": Case(("hparams", "runs.csv", "--bootstrap", "0"),
                                       {"runs.csv": table_file(every_run_diverged)}, says=("runs.csv", "no lr or batch-size law")),
    "recommend-every_run_diverged": Case(
        ("recommend", "--runs", "runs.csv", "--params", "1e6", "--tokens", "1e8", "--bootstrap", "0"),
        {"runs.csv": table_file(every_run_diverged)}, says=("runs.csv", "no lr or batch-size law")),
    "report-every_row_train_split": Case(
        ("report", "runs.parquet", "--out", "rep", "--bootstrap", "0", "--hparam-bootstrap", "0"),
        {"runs.parquet": table_file(lambda: ladder().assign(split="train"))}, says=("split",)),
    "hparams-no_flops_column": Case(("hparams", "runs.csv", "--bootstrap", "50"), {"runs.csv": table_file(ladder)},
                                    code=0, writes_nothing=False),
    "report-no_flops_column_6ND": Case(("report", "runs.csv", "--out", "rep", "--bootstrap", "0", "--hparam-bootstrap",
                                        "50", "--flops-convention", "6ND"), {"runs.csv": table_file(ladder)},
                                       code=0, writes_nothing=False),
    "hparams-flops_convention_6ND": Case(("hparams", "runs.csv", "--bootstrap", "50", "--flops-convention", "6ND"),
                                         {"runs.csv": table_file(ladder)}, code=0, writes_nothing=False),
}


@pytest.mark.parametrize("case", cases_from(CRASHERS))
def test_tables_that_once_crashed_now_fit_or_say_why(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_case(case, tmp_path)


# --- 5. damaged fit.json: predict and allocate refuse or flag -----------------------------------------


@pytest.fixture(scope="module")
def fit_document(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fit")
    table_file(ladder)(root / "runs.parquet")
    ran = run_in_process(("fit", str(root / "runs.parquet"), "--bootstrap", "20", "--holdout-largest", "0",
                          "--json", str(root / "fit.json")))
    assert ran.code == 0, ran.err
    return json.loads((root / "fit.json").read_text())


def _edit(change: Callable[[dict], None]) -> Callable[[dict], str]:
    def damaged(doc: dict) -> str:
        doc = json.loads(json.dumps(doc))
        change(doc)
        return json.dumps(doc)
    return damaged


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(doc):
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value
    return change


def _drop_beta(doc):
    del doc["params"]["beta"]
    doc["intervals"].pop("beta", None)


#: name -> (fit.json text from the valid document, exit code, words of the message)
FIT_JSON_DAMAGE: dict[str, tuple[Callable[[dict], str] | None, int, tuple[str, ...]]] = {
    "missing_file": (None, 2, ("fit.json",)),
    "zero_byte": (lambda doc: "", 2, ("fit.json",)),
    "random_bytes": (lambda doc: RANDOM_BYTES.decode("latin-1"), 2, ("fit.json",)),
    "a_runs_table_not_a_fit": (lambda doc: "run_id,params,tokens,loss\nr,1e6,1e8,3\n", 2, ("fit.json",)),
    "missing_beta": (_edit(_drop_beta), 2, ("beta",)),
    "E_nan": (_edit(_set("params", "E", math.nan)), 2, ("E",)),
    "E_null": (_edit(_set("params", "E", None)), 2, ("E",)),
    "alpha_negative": (_edit(_set("params", "alpha", -0.3)), 2, ("alpha",)),
    "A_1e308": (_edit(_set("params", "A", 1e308)), 2, ("A",)),
    "law_name_unknown": (_edit(_set("law_spec", "name", "gpt5")), 2, ("gpt5",)),
    "law_name_mismatch": (_edit(_set("law_spec", "name", "kaplan")), 2, ("kaplan",)),
    "level_2": (_edit(_set("level", 2.0)), 2, ("level",)),
    "params_not_a_mapping": (_edit(_set("params", [1, 2, 3])), 2, ("fit.json",)),
    "success_false": (_edit(_set("success", False)), 1, ("failed",)),
    "schema_from_the_future": (_edit(_set("schema_version", 99)), 2, ("schema_version 99",)),
    "another_kind_of_result": (_edit(_set("kind", "hparams")), 2, ("hparams",)),
    "no_law_spec": (_edit(lambda doc: doc.pop("law_spec")), 2, ("law_spec",)),
}

PREDICTORS = {
    "predict": ("predict", "--fit", "fit.json", "--params", "1e6", "--tokens", "1e8"),
    "allocate": ("allocate", "--fit", "fit.json", "--flops", "1e15"),
}


@pytest.mark.parametrize(("damage", "command"), [(d, c) for d in FIT_JSON_DAMAGE for c in PREDICTORS])
def test_damaged_fit_json_is_refused_or_flagged_not_printed(command, damage, fit_document, tmp_path, monkeypatch):
    text, code, says = FIT_JSON_DAMAGE[damage]
    monkeypatch.chdir(tmp_path)
    files = {} if text is None else {"fit.json": lambda path: path.write_text(text(fit_document))}
    ran = check_case(Case((*PREDICTORS[command], "--json", "out.json"), files, code=code, says=says), tmp_path)
    assert ran.out.strip() == "", f"numbers printed from a damaged fit.json:\n{ran.out}"


@pytest.mark.parametrize("command", list(PREDICTORS))
def test_a_fit_whose_bootstrap_mostly_failed_is_shown_but_flagged(command, fit_document, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = json.loads(json.dumps(fit_document))
    converged = doc["draws"]["converged"]
    doc["draws"]["converged"] = [i % 5 == 0 for i in range(len(converged))]  # 4 refits in 5 failed
    (tmp_path / "fit.json").write_text(json.dumps(doc))
    ran = run_in_process(PREDICTORS[command])
    assert ran.code == 1 and ran.out.strip(), ran.err
    assert f"scalefit {command}: warning: fit.json is suspect: {len(converged) - len(converged[::5])} of " \
           f"{len(converged)} bootstrap refits did not converge" in ran.err


def test_valid_fit_json_still_predicts_and_allocates(fit_document, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fit.json").write_text(json.dumps(fit_document))
    for argv in PREDICTORS.values():
        ran = run_in_process(argv)
        assert ran.code == 0 and ran.out.strip(), ran.err


BAD_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "predict-level_2": ((*PREDICTORS["predict"], "--level", "2"), ("level",)),
    "predict-level_0": ((*PREDICTORS["predict"], "--level", "0"), ("level",)),
    "allocate-level_1.5": ((*PREDICTORS["allocate"], "--level", "1.5"), ("level",)),
    "predict-negative_params": (("predict", "--fit", "fit.json", "--params=-1e6", "--tokens", "1e8"),
                                ("positive",)),
    "predict-nan_tokens": (("predict", "--fit", "fit.json", "--params", "1e6", "--tokens", "nan"), ("positive",)),
    "predict-missing_tokens": (("predict", "--fit", "fit.json", "--params", "1e6"), ("--tokens",)),
    "predict-unequal_lengths": (("predict", "--fit", "fit.json", "--params", "1e6,2e6", "--tokens", "1e8,2e8,3e8"),
                                ("equally many",)),
    "allocate-zero_flops": (("allocate", "--fit", "fit.json", "--flops", "0"), ("--flops",)),
    "allocate-inf_flops": (("allocate", "--fit", "fit.json", "--flops", "inf"), ("--flops",)),
}


@pytest.mark.parametrize("name", list(BAD_OPTIONS))
def test_bad_predict_and_allocate_options_are_refused(name, fit_document, tmp_path, monkeypatch):
    argv, says = BAD_OPTIONS[name]
    monkeypatch.chdir(tmp_path)
    files = {"fit.json": lambda path: path.write_text(json.dumps(fit_document))}
    check_case(Case(argv, files, says=says), tmp_path)


# --- 6. --out and --json never destroy what scalefit did not write ------------------------------------


def _foreign_folder(path: Path) -> None:
    path.mkdir()
    (path / "thesis.tex").write_text("three years of work\n")


def _input_in(folder_name: str) -> Writer:
    def write(path: Path) -> None:
        (path.parent / folder_name).mkdir(parents=True, exist_ok=True)
        table_file(ladder)(path)
    return write


def _file(path: Path) -> None:
    path.write_text("not a folder\n")


def _empty_folder(path: Path) -> None:
    path.mkdir()


OUT_COMMANDS = {
    "fit": ("fit", "{runs}", *FAST_FIT),
    "hparams": ("hparams", "{runs}", "--bootstrap", "0"),
    "report": ("report", "{runs}", "--bootstrap", "0", "--hparam-bootstrap", "0"),
    "rl": ("rl", "{rl_runs}", "--bootstrap", "0"),
}


def _out_cases() -> dict[str, Case]:
    cases = {}
    for command, template in OUT_COMMANDS.items():
        def argv(runs: str, *extra: str, template=template) -> tuple[str, ...]:
            return (*(a.replace("{runs}", runs).replace("{rl_runs}", runs) for a in template), *extra)

        table = table_file(rl_table) if command == "rl" else table_file(ladder)
        cases[f"{command}-out_foreign_folder"] = Case(
            argv("runs.parquet", "--out", "mine"), {"runs.parquet": table, "mine": _foreign_folder},
            says=("scalefit did not write",))
        cases[f"{command}-out_is_the_inputs_folder"] = Case(
            argv("data/runs.parquet", "--out", "data"), {"data/runs.parquet": _input_in("data")}, says=("input",))
        cases[f"{command}-out_above_the_input"] = Case(
            argv("a/b/runs.parquet", "--out", "a"), {"a/b/runs.parquet": _input_in("a/b")}, says=("input",))
        cases[f"{command}-out_dot"] = Case(argv("runs.parquet", "--out", "."), {"runs.parquet": table},
                                           says=("working directory",))
        cases[f"{command}-out_parent"] = Case(argv("runs.parquet", "--out", ".."), {"runs.parquet": table},
                                              says=("working directory",))
        cases[f"{command}-out_is_a_file"] = Case(argv("runs.parquet", "--out", "notes.txt"),
                                                 {"runs.parquet": table, "notes.txt": _file}, says=("is a file",))
        if command != "report":
            cases[f"{command}-json_is_a_folder"] = Case(argv("runs.parquet", "--json", "results"),
                                                        {"runs.parquet": table, "results": _empty_folder},
                                                        says=("is a folder",))
            cases[f"{command}-json_is_the_input"] = Case(argv("runs.parquet", "--json", "runs.parquet"),
                                                         {"runs.parquet": table}, says=("input",))
            cases[f"{command}-json_inside_out"] = Case(argv("runs.parquet", "--out", "o", "--json", "o/x.json"),
                                                       {"runs.parquet": table}, says=("inside --out",))
    cases["predict-json_is_the_fit"] = Case(("predict", "--fit", "fit.json", "--params", "1e6", "--tokens", "1e8",
                                             "--json", "fit.json"), {"fit.json": _file}, says=("input",))
    cases["plan-sweep_is_a_folder"] = Case(("plan", "--target-params", "1e7", "--target-tokens", "2e8", "--budget",
                                            "1e16", "--sweep", "conf"), {"conf": _empty_folder}, says=("is a folder",))
    cases["recommend-json_slash"] = Case(("recommend", "--params", "1e9", "--tokens", "2e10", "--json", "new/"),
                                         says=("is a folder",))
    return cases


@pytest.mark.parametrize("case", cases_from(_out_cases()))
def test_outputs_never_replace_what_scalefit_did_not_write(case, tmp_path, monkeypatch):
    work = tmp_path / "work"  # so that "--out .." is a folder of the test, not of pytest
    work.mkdir()
    monkeypatch.chdir(work)
    for name, write in case.files.items():
        write(work / name)
    before = snapshot(tmp_path)
    ran = check_case(Case(case.argv, {}, case.code, case.says), work)
    assert snapshot(tmp_path) == before, ran.err


def test_out_replaces_only_its_own_previous_output_and_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table_file(small)(tmp_path / "runs.parquet")
    (tmp_path / "empty").mkdir()
    assert run_in_process(("fit", "runs.parquet", *FAST_FIT, "--out", "empty")).code == 0
    assert (tmp_path / "empty" / OUTPUT_MARKER).is_file() and (tmp_path / "empty" / "fit.json").is_file()
    (tmp_path / "empty" / "stale.png").write_bytes(b"old plot")  # inside scalefit's own folder: replaced
    assert run_in_process(("fit", "runs.parquet", *FAST_FIT, "--out", "empty")).code == 0
    assert not (tmp_path / "empty" / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "runs.parquet"]  # no staging leftovers


# --- 7. other bad options -----------------------------------------------------------------------------

OPTION_CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fit-negative_budget": (("fit", "runs.parquet", *FAST_FIT, "--budgets", "-1e18"), ("--budgets",)),
    "fit-fix_without_value": (("fit", "runs.parquet", *FAST_FIT, "--fix", "alpha"), ("--fix",)),
    "fit-tie_one_name": (("fit", "runs.parquet", *FAST_FIT, "--tie", "alpha"), ("--tie",)),
    "fit-fix_unknown_parameter": (("fit", "runs.parquet", *FAST_FIT, "--fix", "gamma=1"), ("gamma",)),
    "report-negative_bootstrap": (("report", "runs.parquet", "--out", "rep", "--bootstrap", "-1"), ("bootstrap",)),
    "recommend-negative_params": (("recommend", "--params", "-1e9", "--tokens", "2e10"), ("params",)),
    "recommend-level_2": (("recommend", "--params", "1e9", "--tokens", "2e10", "--level", "2"), ("level",)),
    "recommend-unknown_preset": (("recommend", "--params", "1e9", "--tokens", "2e10", "--preset", "gpt5"),
                                 ("gpt5",)),
    "rl-clip_not_a_number": (("rl", "rl.parquet", "--bootstrap", "0", "--clip", "lots"), ("--clip",)),
    "rl-unknown_protocol": (("rl", "rl.parquet", "--bootstrap", "0", "--protocol", "sideways:2"), ("protocol",)),
    "rl-metric_not_a_column": (("rl", "rl.parquet", "--bootstrap", "0", "--metric", "vibes"), ("vibes",)),
    "plan-level_2": (("plan", "--target-params", "1e7", "--target-tokens", "2e8", "--budget", "1e16", "--level",
                      "2"), ("level",)),
    "fit-columns_not_toml": (("fit", "runs.parquet", *FAST_FIT, "--columns", "bad.toml"), ("bad.toml", "toml")),
    "fit-columns_missing": (("fit", "runs.parquet", *FAST_FIT, "--columns", "nowhere.toml"), ("nowhere.toml",)),
    "hparams-status_map_garbage": (("hparams", "runs.parquet", "--status-map", "garbage"), ("--status-map",)),
    "report-map_without_equals": (("report", "runs.parquet", "--out", "rep", "--map", "nonsense"), ("nonsense",)),
    "fit-map_unknown_column": (("fit", "runs.parquet", *FAST_FIT, "--map", "Size=params"), ("Size",)),
    "plan-max_runs_0": (("plan", "--target-params", "1e7", "--target-tokens", "2e8", "--budget", "1e16",
                         "--max-runs", "0"), ("--max-runs",)),
}


@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_bad_option_values_are_one_line_exit_2(name, tmp_path, monkeypatch):
    argv, says = OPTION_CASES[name]
    monkeypatch.chdir(tmp_path)
    files = {"runs.parquet": table_file(ladder), "rl.parquet": table_file(rl_table),
             "bad.toml": lambda path: path.write_text("this is [not toml\n")}
    check_case(Case(argv, files, says=says), tmp_path)


# --- 7b. random damage: whatever the table holds, no command crashes -----------------------------------

ODD_VALUES = (np.nan, np.inf, -np.inf, -1.0, 0.0, 1e300, 1e-300, "abc", "", "1,000", None, "diverged")


def randomly_damaged(rng: np.random.Generator) -> pd.DataFrame:
    """The small table with 1-4 random blows: a column dropped or filled with an odd value, rows cut, or a
    few cells replaced by odd values."""
    table = small().assign(status="ok", lr=1e-3)
    for _ in range(int(rng.integers(1, 5))):
        column = str(rng.choice(table.columns))
        blow = rng.random()
        if blow < 0.15:
            table = table.drop(columns=[column])
        elif blow < 0.3:
            table[column] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
        elif blow < 0.4:
            table = table.iloc[: int(rng.integers(0, 5))]
        elif len(table):
            table[column] = table[column].astype(object)
            for row in rng.choice(len(table), size=min(len(table), int(rng.integers(1, 6))), replace=False):
                table.iat[int(row), table.columns.get_loc(column)] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
    return table


@pytest.mark.parametrize("seed", range(16))
def test_randomly_damaged_table_never_crashes_a_command(seed, tmp_path, monkeypatch):
    rng = np.random.default_rng(seed)
    monkeypatch.chdir(tmp_path)
    randomly_damaged(rng).to_csv(tmp_path / "runs.csv", index=False)
    command = [READERS["fit"], READERS["hparams"], READERS["plan"]][seed % 3]
    ran = run_in_process(tuple(a.replace("{runs}", "runs.csv") for a in command))
    assert ran.code in (0, 1, 2) and "internal error" not in ran.err and "Traceback" not in ran.err, ran.err
    if ran.code == 2:
        assert len([line for line in ran.err.splitlines() if ": error: " in line]) == 1, ran.err


# --- 8. the top-level handler as a user meets it ------------------------------------------------------


def scalefit(*argv: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "scalefit.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False, **kwargs)


def test_process_prints_one_line_and_exits_2_and_debug_shows_the_traceback(tmp_path):
    (tmp_path / "runs.csv").write_bytes(b"")
    plain = scalefit("hparams", "runs.csv", cwd=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1 and "runs.csv" in plain.stderr
    debug = scalefit("hparams", "runs.csv", "--debug", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_internal_error_is_one_line_exit_1_naming_debug(monkeypatch, tmp_path):
    from scalefit.cli import fit as fit_commands

    def broken(args):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(fit_commands, "_run_allocate", broken)
    monkeypatch.chdir(tmp_path)
    from scalefit.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["allocate", "--fit", "f.json", "--flops", "1e15"])
    args.run = broken
    from scalefit.cli import _run

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = _run(args)
    assert code == 1 and "Traceback" not in err.getvalue()
    assert err.getvalue().count("\n") == 1 and "internal error: RuntimeError: a bug over two lines" in err.getvalue()
    assert "--debug" in err.getvalue()


def test_output_into_a_closed_pipe_finishes_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "scalefit.cli", "recommend", "--params", "1e9", "--tokens",
                                "2e10", "--json", "rec.json"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert process.returncode == 0 and json.loads((tmp_path / "rec.json").read_text())  # the work still finished


@pytest.mark.parametrize(("result", "code"), [
    ({"status": "ok"}, 0), ({"status": "suspect"}, 1), ({"status": "failed"}, 1),
    ({"success": True}, 0), ({"success": False}, 1),
    ({"fit": SimpleNamespace(success=False)}, 1), ({"result": SimpleNamespace(success=True)}, 0),
])
def test_every_command_maps_a_result_to_the_same_exit_code(result, code):
    from scalefit.cli.common import result_exit_code

    assert result_exit_code(SimpleNamespace(**result)) == code


def test_debug_before_the_command_shows_the_traceback_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--debug", "fit", "missing.parquet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "scalefit fit: error: " in err


def test_version_comes_from_the_installed_metadata(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"scalefit {metadata.version('scalefit')}"


# --- 9. hostile strings in the report -----------------------------------------------------------------


def test_report_markdown_escapes_run_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table_file(hostile_ids)(tmp_path / "runs.parquet")
    ran = run_in_process(("report", "runs.parquet", "--out", "rep", "--bootstrap", "0", "--hparam-bootstrap", "0"))
    assert ran.code in (0, 1), ran.err
    for name in ("report.md", "report.html"):
        text = (tmp_path / "rep" / name).read_text()
        assert "<script>" not in text, name


def test_corpus_has_at_least_60_cases():
    counted = (len(_unreadable_cases()) + len(_schema_cases()) + len(MIS_SCALED) + len(CRASHERS)
               + 2 * len(FIT_JSON_DAMAGE) + len(BAD_OPTIONS) + len(_out_cases()) + len(OPTION_CASES))
    assert counted >= 60
