"""Bring your own runs: W&B and MLflow exports of the shipped ladder give the numbers the native table gives.

The fixtures under tests/fixtures/byo/ are made from data/runs.parquet by tests/fixtures/byo/make.py (82 runs
copied exactly, plus one crashed run), so the reference is real: fitting the same rows of the native table.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalefit import readers
from scalefit.cli import main
from scalefit.errors import RunsTableError
from scalefit.readers import mlflow_to_wide, parse_value_map, read_mapping_file
from scalefit.runs import NUMERIC_COLUMNS, STATUSES, final_points, load_runs, write_runs

BYO = Path(__file__).resolve().parent / "fixtures" / "byo"
_spec = importlib.util.spec_from_file_location("byo_make", BYO / "make.py")
byo_make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(byo_make)
CRASHED_NAME, shipped_subset = byo_make.CRASHED_NAME, byo_make.shipped_subset

#: The columns the W&B and MLflow exports carry, under their runs-table names.
EXPORTED = ["run_id", "params", "tokens", "token_budget", "loss", "lr", "batch_size", "step", "n_layers", "d_model",
            "seq_len"]
FAST_FIT = ["--bootstrap", "0", "--holdout-largest", "0"]


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    """The same 82 runs as the native runs table, with only the columns the exports carry."""
    path = tmp_path_factory.mktemp("native") / "runs.parquet"
    write_runs(shipped_subset()[EXPORTED].assign(status="ok"), path)
    return path


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def fit_json(tmp_path, name, *args) -> dict:
    out = tmp_path / f"{name}.json"
    assert run_cli("fit", *args, *FAST_FIT, "--json", out) in (0, 1)
    return json.loads(out.read_text())


def assert_same_fit(doc, reference):
    assert doc["n_points"] == reference["n_points"]
    for name, value in reference["params"].items():
        assert doc["params"][name] == pytest.approx(value, rel=1e-9), name


# --- the exports through every command, against the native table --------------------------------------------


def test_wandb_history_with_a_mapping_file_fits_as_the_native_table(tmp_path, native, capsys):
    reference = fit_json(tmp_path, "native", native, "--flops-convention", "6ND+attn")
    doc = fit_json(tmp_path, "wandb", BYO / "wandb_history.csv", "--columns", BYO / "cols.toml")
    assert_same_fit(doc, reference)
    assert doc["excluded_runs"]["runs diverged"] == [CRASHED_NAME]
    err = capsys.readouterr().err
    assert "note:" in err and "dropped 496 of 998 rows without a loss" in err


def test_wandb_runs_export_fits_as_the_native_final_points(tmp_path, native):
    reference = fit_json(tmp_path, "native", native, "--points", "final")
    doc = fit_json(tmp_path, "wandb", BYO / "wandb_runs.csv", "--columns", BYO / "cols.toml", "--points", "final")
    assert doc["n_points"] == 82
    assert_same_fit(doc, reference)


def test_mlflow_long_form_with_run_info_fits_as_the_native_table(tmp_path, native):
    reference = fit_json(tmp_path, "native", native)
    doc = fit_json(tmp_path, "mlflow", BYO / "mlflow_metrics.csv", "--columns", BYO / "mlflow_cols.toml")
    assert_same_fit(doc, reference)
    assert len(doc["excluded_runs"]["runs diverged"]) == 1


def test_exports_load_to_the_native_rows_and_flops(native):
    spec = read_mapping_file(BYO / "mlflow_cols.toml")
    mlflow = load_runs(BYO / "mlflow_metrics.csv", columns=spec.columns, status_map=spec.status_map,
                       format=spec.format, run_info=spec.run_info, flops_convention="6ND+attn")
    shipped = shipped_subset()
    ok = mlflow[mlflow["status"] == "ok"].sort_values(["run_name", "step"])  # run name: the MLflow tag
    shipped = shipped.sort_values(["run_id", "step"])
    assert len(ok) == len(shipped) == 496
    np.testing.assert_array_equal(ok["loss"], shipped["loss"])
    np.testing.assert_array_equal(ok["tokens"], shipped["tokens"])
    # flops derived under 6ND+attn from the exported model shape equal the runner's own count
    np.testing.assert_allclose(ok["flops"], shipped["flops"], rtol=1e-12)


def test_hparams_and_recommend_on_the_wandb_export_match_the_native_table(tmp_path, native):
    options = ["--bootstrap", "20", "--seed", "3"]
    byo = ["--columns", BYO / "cols.toml"]
    assert run_cli("hparams", native, *options, "--out", tmp_path / "native") in (0, 1)
    assert run_cli("hparams", BYO / "wandb_history.csv", *byo, *options, "--out", tmp_path / "wandb") in (0, 1)
    native_groups = pd.read_csv(tmp_path / "native" / "groups.csv")
    wandb_groups = pd.read_csv(tmp_path / "wandb" / "groups.csv")
    assert len(native_groups) >= 5
    for column in ("params", "tokens", "opt_lr", "opt_loss"):
        np.testing.assert_allclose(wandb_groups[column], native_groups[column], rtol=1e-12, err_msg=column)

    target = ["--params", "1e6", "--tokens", "2e7"]
    assert run_cli("recommend", "--runs", native, *target, *options, "--json", tmp_path / "n.json") in (0, 1)
    assert run_cli("recommend", "--runs", BYO / "wandb_history.csv", *byo, *target, *options,
                   "--json", tmp_path / "w.json") in (0, 1)
    native_advice = json.loads((tmp_path / "n.json").read_text())
    wandb_advice = json.loads((tmp_path / "w.json").read_text())
    assert math.isfinite(native_advice["lr"]) and wandb_advice["lr"] == pytest.approx(native_advice["lr"], rel=1e-9)
    assert wandb_advice["lr_interval"] == pytest.approx(native_advice["lr_interval"], rel=1e-9)


@pytest.mark.slow
def test_report_on_the_mlflow_export_matches_the_native_report(tmp_path, native):
    options = ["--bootstrap", "20", "--hparam-bootstrap", "20", "--seed", "1", "--target", "1e6"]
    assert run_cli("report", native, *options, "--out", tmp_path / "native") in (0, 1)
    assert run_cli("report", BYO / "mlflow_metrics.csv", "--columns", BYO / "mlflow_cols.toml", *options,
                   "--out", tmp_path / "mlflow") in (0, 1)
    assert (tmp_path / "mlflow" / "report.html").stat().st_size > 10_000
    native_doc = json.loads((tmp_path / "native" / "results.json").read_text())
    mlflow_doc = json.loads((tmp_path / "mlflow" / "results.json").read_text())
    assert _loss_law_params(mlflow_doc) == pytest.approx(_loss_law_params(native_doc), rel=1e-9)


def _loss_law_params(doc) -> dict:
    """The joint law's estimates, wherever the report's JSON keeps them."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            params = node.get("params")
            if isinstance(params, dict) and {"E", "A", "alpha"} <= set(params):
                found.append(params)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert found, "no joint-law estimates in results.json"
    return found[0]


# --- what the user is told -------------------------------------------------------------------------------------


def test_every_command_that_reads_a_runs_table_takes_the_input_options(capsys):
    for command in (["fit"], ["hparams"], ["recommend", "--params", "1", "--tokens", "1"], ["rl"], ["report"],
                    ["plan"]):
        with pytest.raises(SystemExit) as stop:
            main([*command, "--help"])
        assert stop.value.code == 0
        text = capsys.readouterr().out
        assert all(option in text for option in ("--columns", "--map", "--status-map", "--format")), command


def test_an_unmapped_wandb_export_is_told_to_map_name_to_run_id(tmp_path, capsys):
    assert run_cli("fit", BYO / "wandb_history.csv", *FAST_FIT) == 2
    err = capsys.readouterr().err
    assert "'Name' looks like 'run_id'" in err and "--map 'Name=run_id'" in err
    assert "'val/loss' looks like 'loss'" in err and "'train_tokens' looks like 'tokens'" in err


def test_unknown_states_suggest_a_status_map(tmp_path):
    spec = read_mapping_file(BYO / "cols.toml")
    with pytest.raises(RunsTableError) as err:
        load_runs(BYO / "wandb_history.csv", columns=spec.columns)
    assert "--status-map finished=ok,crashed=diverged" in str(err.value)


def test_wandb_bookkeeping_columns_need_no_mapping():
    spec = read_mapping_file(BYO / "cols.toml")
    columns = {old: new for old, new in spec.columns.items() if old not in ("_step", "State")}
    df = load_runs(BYO / "wandb_history.csv", columns=columns, status_map=parse_value_map("finished=ok,crashed=diverged"))
    assert {"step", "status", "wall_time"} <= set(df.columns) and df["step"].max() == 7813


def test_mlflow_keeps_the_latest_value_logged_at_a_step_and_times_the_run():
    long = pd.DataFrame({"run_id": ["r", "r", "r", "r"], "key": ["loss", "loss", "loss", "tokens"],
                         "value": [3.0, 2.5, 2.0, 100.0], "step": [1, 1, 2, 2],
                         "timestamp": [1000, 3000, 5000, 5000]})
    wide = mlflow_to_wide(long.iloc[[1, 0, 2, 3]], "m.csv")  # row order does not matter, timestamps do
    assert wide["loss"].tolist() == [2.5, 2.0] and np.isnan(wide["tokens"][0])
    assert wide["wall_time"].tolist() == [2.0, 4.0]  # seconds since the run's first metric


@pytest.mark.parametrize("text, words", [
    ("[columns]\nName = 1\n", "strings on both sides"),
    ("colums = 3\n", "unknown key 'colums'"),
    ('format = "neptune"\n', "format 'neptune'"),
    ("[columns\n", "not valid TOML"),
])
def test_bad_mapping_files_say_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "cols.toml"
    path.write_text(text)
    with pytest.raises(RunsTableError, match="cols.toml") as err:
        read_mapping_file(path)
    assert words in str(err.value)


def test_run_info_without_a_shared_id_or_with_missing_runs_is_refused(tmp_path):
    info = pd.read_csv(BYO / "mlflow_runs.csv")
    info.rename(columns={"run_id": "uuid"}).to_csv(tmp_path / "no_id.csv", index=False)
    info.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(RunsTableError, match="shares no run id column"):
        load_runs(BYO / "mlflow_metrics.csv", run_info=tmp_path / "no_id.csv")
    with pytest.raises(RunsTableError, match=f"run '{info['run_id'][0]}' has no row in the run info"):
        load_runs(BYO / "mlflow_metrics.csv", run_info=tmp_path / "short.csv")


def test_status_map_needs_runs_table_statuses():
    with pytest.raises(RunsTableError, match="ok, diverged, killed"):
        load_runs(BYO / "wandb_runs.csv", columns=read_mapping_file(BYO / "cols.toml").columns,
                  status_map={"finished": "done"})


# --- sweep folders and the big-table path ----------------------------------------------------------------------


def test_a_sweep_folder_loads_its_parts(tmp_path):
    shipped = shipped_subset()
    parts = tmp_path / "sweep" / "parts"
    parts.mkdir(parents=True)
    for run_id, rows in shipped.groupby("run_id"):
        write_runs(rows, parts / f"{run_id}.parquet")
    df = load_runs(tmp_path / "sweep")
    assert len(df) == len(shipped) and df["run_id"].nunique() == 82
    assert sorted(df["loss"]) == sorted(shipped["loss"])
    (parts / "zz-damaged.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(RunsTableError, match="part 'zz-damaged.parquet' cannot be read"):
        load_runs(tmp_path / "sweep")


def test_a_folder_without_parts_is_refused(tmp_path):
    with pytest.raises(RunsTableError, match="folder without parquet parts"):
        load_runs(tmp_path)


def history_with_splits_ties_and_gaps() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for run in range(6):
        for step in rng.permutation(np.arange(1, 9)):  # rows out of order
            for split in ("train", "val"):
                loss = 3.0 + 1.0 / step + 0.01 * run
                empty = split == "val" and step in (8, 5) and run % 2 == 0  # no evaluation at the last step
                rows.append({"run_id": f"r{run}", "params": 1e6 * (run + 1), "tokens": 1e6 * step,
                             "step": int(step), "split": split, "loss": np.nan if empty else loss,
                             "lr": 1e-3, "status": "finished"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_keep_final_equals_the_final_points_of_the_whole_table(tmp_path, suffix):
    table = history_with_splits_ties_and_gaps()
    path = tmp_path / f"history{suffix}"
    table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, index=False)
    options = {"status_map": {"finished": "ok"}}
    whole = final_points(load_runs(path, **options)).reset_index(drop=True)
    fast = load_runs(path, keep="final", **options)
    assert len(fast) == 12  # 6 runs x 2 splits
    pd.testing.assert_frame_equal(fast[whole.columns], whole, check_dtype=False)
    val = fast[fast["split"] == "val"]
    assert set(val.loc[val["run_id"].isin(["r0", "r2", "r4"]), "step"]) == {7}  # last step with a loss
    assert fast.attrs["notes"] == load_runs(path, **options).attrs["notes"]


@pytest.mark.parametrize("column, row, value", [
    ("params", 17, -1.0),  # out of range in a row of run r1 that is not its last
    ("step", 19, 1),  # a step logged twice
    ("status", 18, "running"),  # a status the map does not recode
    ("loss", 20, math.inf),
])
def test_keep_final_refuses_what_the_whole_read_refuses(tmp_path, column, row, value):
    table = history_with_splits_ties_and_gaps()
    options = {"status_map": {"finished": "ok"}}
    table.to_parquet(tmp_path / "clean.parquet")
    assert readers.final_rows_of_parquet(tmp_path / "clean.parquet", "clean", {}, options["status_map"],
                                         STATUSES, NUMERIC_COLUMNS, []) is not None  # the fast path reads it
    table.loc[table.index[row], column] = value
    table.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(RunsTableError) as whole:
        load_runs(tmp_path / "bad.parquet", **options)
    with pytest.raises(RunsTableError) as final:
        load_runs(tmp_path / "bad.parquet", keep="final", **options)
    assert str(final.value) == str(whole.value)
