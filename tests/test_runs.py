"""The runs table: loading, validation messages, FLOPs derivation and the selection helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalefit.errors import RunsTableError, ScalefitInputError
from scalefit.points import points
from scalefit.runs import (
    FLOPS_CONVENTIONS,
    compute_frontier,
    derive_flops,
    final_points,
    load_runs,
    parse_column_map,
    select,
    tuned_points,
    write_runs,
)


def small_table(**overrides) -> dict[str, list]:
    """Three runs, two evaluation points each; overrides replace or add columns."""
    table = {
        "run_id": ["a", "a", "b", "b", "c", "c"],
        "params": [1e6, 1e6, 2e6, 2e6, 4e6, 4e6],
        "tokens": [1e8, 2e8, 1e8, 2e8, 1e8, 2e8],
        "loss": [4.0, 3.5, 3.8, 3.3, 3.6, 3.1],
        "step": [100, 200, 100, 200, 100, 200],
    }
    table.update(overrides)
    return table


def write_csv(tmp_path, table: dict | str, name: str = "runs.csv"):
    path = tmp_path / name
    if isinstance(table, str):
        path.write_text(table)
    else:
        pd.DataFrame(table).to_csv(path, index=False)
    return path


def load_error(path, **kwargs) -> str:
    with pytest.raises(RunsTableError) as info:
        load_runs(path, **kwargs)
    return str(info.value)


# --- reading -----------------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    message = load_error(tmp_path / "nowhere.parquet")
    assert "nowhere.parquet" in message and "not found" in message and "check the path" in message


def test_unsupported_suffix_lists_the_supported_formats(tmp_path):
    path = tmp_path / "runs.xlsx"
    path.write_bytes(b"PK\x03\x04")
    message = load_error(path)
    assert "runs.xlsx" in message and "'.xlsx'" in message
    assert ".parquet" in message and ".csv" in message


def test_corrupt_parquet_is_reported_as_unreadable(tmp_path):
    path = tmp_path / "runs.parquet"
    write_runs(pd.DataFrame(small_table()), path)
    path.write_bytes(path.read_bytes()[:40])  # truncated: the footer is gone
    message = load_error(path)
    assert "runs.parquet" in message and "cannot be read as a parquet file" in message
    assert "check that the file is complete" in message


def test_text_that_is_not_csv_is_reported_as_unreadable(tmp_path):
    path = write_csv(tmp_path, "run_id,params,tokens,loss\na,1,2,3\nb,1,2,3,4,5,6\n")
    message = load_error(path)
    assert "runs.csv" in message and "cannot be read as a comma-separated text file" in message


def test_binary_file_named_csv_is_a_runs_table_error(tmp_path):
    parquet = tmp_path / "real.parquet"
    write_runs(pd.DataFrame(small_table()), parquet)
    path = tmp_path / "fake.csv"
    path.write_bytes(parquet.read_bytes())
    assert "fake.csv" in load_error(path)


@pytest.mark.parametrize("text, words", [("", "is empty"), ("run_id,params,tokens,loss\n", "no rows")])
def test_empty_table_is_an_error(tmp_path, text, words):
    message = load_error(write_csv(tmp_path, text))
    assert "runs.csv" in message and words in message and "one row per (run, evaluation point)" in message


def test_empty_parquet_is_an_error(tmp_path):
    path = write_runs(pd.DataFrame(small_table()).iloc[:0], tmp_path / "runs.parquet")
    assert "no rows" in load_error(path)


# --- columns -----------------------------------------------------------------------------------------


def test_missing_required_column_names_it_and_the_columns_present(tmp_path):
    table = small_table()
    del table["loss"]
    message = load_error(write_csv(tmp_path, table))
    assert "runs.csv" in message and "required column 'loss'" in message
    assert "'run_id', 'params', 'tokens', 'step'" in message and "--map" in message


def test_missing_column_with_a_near_name_suggests_the_mapping(tmp_path):
    table = small_table()
    table["Params"] = table.pop("params")
    message = load_error(write_csv(tmp_path, table))
    assert "'params'" in message and "--map 'Params=params'" in message


def test_column_mapping_renames_file_columns(tmp_path):
    table = small_table()
    table["Model Size"] = table.pop("params")
    table["Tokens Seen"] = table.pop("tokens")
    df = load_runs(write_csv(tmp_path, table), columns={"Model Size": "params", "Tokens Seen": "tokens"})
    assert "Model Size" not in df and df["params"].tolist() == [1e6, 1e6, 2e6, 2e6, 4e6, 4e6]
    assert df["tokens"].tolist() == [1e8, 2e8] * 3


def test_unknown_mapping_source_is_an_error_naming_it(tmp_path):
    message = load_error(write_csv(tmp_path, small_table()), columns={"Model Sise": "params"})
    assert "runs.csv" in message and "'Model Sise'" in message and "not a column of the file" in message
    assert "'run_id', 'params'" in message


def test_mapping_onto_an_existing_column_is_an_error(tmp_path):
    table = small_table(N=[1] * 6)
    message = load_error(write_csv(tmp_path, table), columns={"N": "params"})
    assert "already has a column 'params'" in message


def test_aliases_are_not_guessed_without_a_mapping(tmp_path):
    table = small_table()
    table["N"] = table.pop("params")
    assert "required column 'params'" in load_error(write_csv(tmp_path, table))


def test_parse_column_map_reads_old_equals_new():
    assert parse_column_map(["Model Size=params", " D = tokens ", "a=b=loss"]) == {
        "Model Size": "params", "D": "tokens", "a=b": "loss"}
    assert parse_column_map([]) == {}


@pytest.mark.parametrize("items, words", [
    (["params"], "not of the form OLD=NEW"),
    (["=params"], "not of the form OLD=NEW"),
    (["N="], "not of the form OLD=NEW"),
    (["N=params", "N=tokens"], "maps 'N' twice"),
    (["N=params", "M=params"], "maps both 'N' and 'M' to 'params'"),
])
def test_parse_column_map_rejects_malformed_items(items, words):
    with pytest.raises(RunsTableError, match=words):
        parse_column_map(items)


def test_csv_and_parquet_load_identically(tmp_path):
    table = pd.DataFrame(small_table(
        run_id=["007", "007", "b", "b", "c", "c"], status=["ok"] * 5 + ["diverged"],
        split=["val"] * 6, lr=[1e-3] * 6, family=["gpt"] * 6))
    table.loc[5, "loss"] = np.inf
    from_parquet = load_runs(write_runs(table, tmp_path / "runs.parquet"))
    from_csv = load_runs(write_csv(tmp_path, table))
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    assert from_csv["run_id"].tolist()[:2] == ["007", "007"]  # ids stay text
    assert from_csv.attrs["source"].endswith("runs.csv")


def test_integer_run_ids_become_text(tmp_path):
    path = write_runs(pd.DataFrame(small_table(run_id=[1, 1, 2, 2, 3, 3])), tmp_path / "runs.parquet")
    assert load_runs(path)["run_id"].tolist() == ["1", "1", "2", "2", "3", "3"]


# --- values ------------------------------------------------------------------------------------------


def test_non_numeric_cell_names_column_row_and_value(tmp_path):
    message = load_error(write_csv(tmp_path, small_table(params=[1e6, 1e6, "2.0B", 2e6, 4e6, 4e6])))
    assert message.startswith("runs table '") and "runs.csv" in message
    assert "column 'params'" in message and "row 3 ('2.0B')" in message and "must be numeric" in message


@pytest.mark.parametrize("column, hint", [
    ("params", "non-embedding parameter count"),
    ("tokens", "training tokens seen so far"),
    ("flops", "drop the flops column"),
    ("batch_size", "tokens per optimiser step"),
    ("lr", "peak learning rate"),
])
@pytest.mark.parametrize("bad", [0.0, -3.0, math.nan, math.inf])
def test_non_positive_or_missing_values_are_errors(tmp_path, column, hint, bad):
    table = small_table()
    table.setdefault(column, [1.0] * 6)
    table[column][1] = bad
    message = load_error(write_csv(tmp_path, table))
    shown = "NaN" if math.isnan(bad) else f"{bad:g}"
    assert "runs.csv" in message and f"column '{column}'" in message
    assert f"row 2 ({shown})" in message and hint in message


def test_loss_must_be_finite_on_ok_rows(tmp_path):
    table = small_table(status=["ok"] * 6)
    table["loss"][3] = math.inf
    message = load_error(write_csv(tmp_path, table))
    assert "column 'loss'" in message and "row 4 (inf)" in message and "'diverged'" in message


def test_ok_rows_without_a_loss_are_dropped_with_a_note(tmp_path):
    table = small_table(status=["ok"] * 6)
    table["loss"][3] = math.nan
    df = load_runs(write_csv(tmp_path, table))
    assert len(df) == 5 and 3.3 not in df["loss"].tolist()
    assert len(df.attrs["notes"]) == 1 and "dropped 1 of 6 rows without a loss" in df.attrs["notes"][0]


def test_row_numbers_in_errors_count_the_dropped_rows(tmp_path):
    table = small_table()
    table["loss"][0] = math.nan
    table["params"][4] = -1.0
    assert "row 5 (-1)" in load_error(write_csv(tmp_path, table))


def test_diverged_rows_keep_their_nan_and_inf_losses(tmp_path):
    table = small_table(status=["ok", "ok", "diverged", "diverged", "killed", "killed"])
    table["loss"][2:5] = [math.nan, math.inf, math.nan]
    df = load_runs(write_csv(tmp_path, table))
    assert len(df) == 6
    assert np.isnan(df["loss"][2]) and np.isinf(df["loss"][3]) and np.isnan(df["loss"][4])


def test_negative_loss_is_an_error_even_when_diverged(tmp_path):
    table = small_table(status=["ok"] * 4 + ["diverged"] * 2)
    table["loss"][5] = -1.0
    assert "row 6 (-1)" in load_error(write_csv(tmp_path, table))


def test_infinite_loss_without_status_column_suggests_adding_one(tmp_path):
    table = small_table()
    table["loss"][0] = math.inf
    message = load_error(write_csv(tmp_path, table))
    assert "row 1 (inf)" in message and "add a status column" in message


def test_unknown_status_lists_the_allowed_values(tmp_path):
    message = load_error(write_csv(tmp_path, small_table(status=["ok"] * 4 + ["running", "OK"])))
    assert "column 'status'" in message and "2 of 6 rows" in message
    assert "row 5 ('running'), row 6 ('OK')" in message and "ok, diverged, killed" in message


def test_duplicate_run_and_step_names_both_rows(tmp_path):
    message = load_error(write_csv(tmp_path, small_table(step=[100, 200, 100, 100, 100, 200])))
    assert "runs.csv" in message and "column 'step'" in message and "(run_id, step)" in message
    assert "run_id='b', step=100 at rows 3, 4" in message and "drop the repeated rows" in message


def test_long_runs_of_duplicates_are_summarised(tmp_path):
    table = {"run_id": ["a"] * 8, "params": [1.0] * 8, "tokens": [1.0] * 8, "loss": [2.0] * 8}
    message = load_error(write_csv(tmp_path, table))
    assert "run_id='a', tokens=1 at rows 1, 2, 3, 4, 5 and 3 more" in message


def test_duplicate_run_and_tokens_without_step_column(tmp_path):
    table = small_table(tokens=[1e8, 1e8, 1e8, 2e8, 1e8, 2e8])
    del table["step"]
    message = load_error(write_csv(tmp_path, table))
    assert "column 'tokens'" in message and "run_id='a', tokens=1e+08 at rows 1, 2" in message


def test_train_and_val_rows_at_the_same_step_are_not_duplicates(tmp_path):
    df = load_runs(write_csv(tmp_path, small_table(step=[100, 100] * 3, split=["train", "val"] * 3)))
    assert len(df) == 6


def test_all_problems_are_reported_once_each(tmp_path):
    table = small_table(status=["ok", "ok", "ok", "ok", "lost", "ok"])
    table["tokens"][0] = 0
    message = load_error(write_csv(tmp_path, table))
    assert message.startswith(f"runs table '{tmp_path / 'runs.csv'}' has 2 problems:")
    assert message.count("column 'tokens'") == 1 and message.count("column 'status'") == 1


def test_many_bad_rows_are_summarised(tmp_path):
    message = load_error(write_csv(tmp_path, small_table(lr=[0.0] * 6)))
    assert "6 of 6 rows" in message and "row 5 (0) and 1 more" in message and "row 6" not in message


# --- FLOPs -------------------------------------------------------------------------------------------


def test_flops_default_to_6nd(tmp_path):
    df = load_runs(write_csv(tmp_path, small_table()))
    expected = [6 * 1e6 * 1e8, 6 * 1e6 * 2e8, 6 * 2e6 * 1e8, 6 * 2e6 * 2e8, 6 * 4e6 * 1e8, 6 * 4e6 * 2e8]
    assert df["flops"].tolist() == pytest.approx(expected, rel=1e-15)
    assert df["flops"][0] == pytest.approx(6.0e14, rel=1e-15)
    assert df.attrs == {"source": str(tmp_path / "runs.csv"), "flops_convention": "6ND"}
    assert set(df["flops_convention"]) == {"6ND"}


def test_flops_with_attention_term_match_the_closed_form(tmp_path):
    shape = {"n_layers": [4] * 6, "d_model": [256] * 6, "seq_len": [512] * 6}
    df = load_runs(write_csv(tmp_path, small_table(**shape)), flops_convention="6ND+attn")
    # 6 N D + 12 n_layers d_model seq_len D; row 1: N = 1e6, D = 1e8.
    assert df["flops"][0] == pytest.approx(6 * 1e6 * 1e8 + 12 * 4 * 256 * 512 * 1e8, rel=1e-15)
    assert df["flops"][0] == pytest.approx(6.0e14 + 6.291456e14, rel=1e-15)
    assert df["flops"][5] == pytest.approx(6 * 4e6 * 2e8 + 12 * 4 * 256 * 512 * 2e8, rel=1e-15)
    assert df.attrs["flops_convention"] == "6ND+attn" and set(df["flops_convention"]) == {"6ND+attn"}


def test_derive_flops_is_vectorised_and_knows_its_conventions():
    assert FLOPS_CONVENTIONS == ("6ND", "6ND+attn")
    np.testing.assert_allclose(derive_flops([1e9, 7e9], [2e10, 1.4e11]), [1.2e20, 5.88e21], rtol=1e-15)
    assert derive_flops(1e9, 2e10, "6ND+attn", n_layers=24, d_model=2048, seq_len=2048) == pytest.approx(
        1.2e20 + 12 * 24 * 2048 * 2048 * 2e10, rel=1e-15)
    with pytest.raises(RunsTableError, match="unknown FLOPs convention '6N'"):
        derive_flops(1e9, 2e10, "6N")


def test_attention_convention_without_shape_columns_is_an_error(tmp_path):
    message = load_error(write_csv(tmp_path, small_table(n_layers=[4] * 6)), flops_convention="6ND+attn")
    assert "runs.csv" in message and "'d_model', 'seq_len'" in message and "flops_convention='6ND'" in message


def test_unknown_flops_convention_is_an_error(tmp_path):
    message = load_error(write_csv(tmp_path, small_table()), flops_convention="C=6ND")
    assert "runs.csv" in message and "'C=6ND'" in message and "6ND, 6ND+attn" in message


def test_given_flops_with_their_convention_are_kept(tmp_path):
    given = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    df = load_runs(write_csv(tmp_path, small_table(flops=given, flops_convention=["6ND+attn"] * 6)))
    assert df["flops"].tolist() == given and df.attrs["flops_convention"] == "6ND+attn"


def test_given_flops_without_convention_are_kept_and_marked_unspecified(tmp_path):
    df = load_runs(write_csv(tmp_path, small_table(flops=[7.0] * 6)))
    assert df["flops"].tolist() == [7.0] * 6
    assert df.attrs["flops_convention"] == "unspecified" and set(df["flops_convention"]) == {"unspecified"}


def test_mixed_flops_conventions_are_an_error(tmp_path):
    path = write_csv(tmp_path, small_table(flops=[7.0] * 6, flops_convention=["6ND"] * 3 + ["6ND+attn"] * 3))
    message = load_error(path)
    assert "column 'flops_convention'" in message and "'6ND+attn' (first at row 4)" in message
    assert "flops_convention='6ND'" in message


def test_requested_convention_rederives_only_rows_that_differ(tmp_path):
    path = write_csv(tmp_path, small_table(flops=[7.0] * 6, flops_convention=["6ND"] * 3 + ["6ND+attn"] * 3))
    df = load_runs(path, flops_convention="6ND")
    assert df["flops"].tolist() == [7.0, 7.0, 7.0, 6 * 2e6 * 2e8, 6 * 4e6 * 1e8, 6 * 4e6 * 2e8]
    assert set(df["flops_convention"]) == {"6ND"} and df.attrs["flops_convention"] == "6ND"


def test_bad_given_flops_do_not_matter_when_rederived(tmp_path):
    df = load_runs(write_csv(tmp_path, small_table(flops=[0.0] * 6)), flops_convention="6ND")
    assert df["flops"][0] == pytest.approx(6.0e14, rel=1e-15)


# --- selection helpers -------------------------------------------------------------------------------


def frame(**columns) -> pd.DataFrame:
    df = pd.DataFrame(columns)
    df.attrs = {"source": "hand.csv", "flops_convention": "6ND"}
    return df


def test_final_points_take_the_last_step_of_each_run():
    df = frame(run_id=["a", "b", "a", "b", "a", "c"], step=[10, 30, 30, 10, 20, 5],
               tokens=[1, 3, 3, 1, 2, 9], loss=[3.0, 2.0, 2.5, 3.5, 2.8, 4.0])
    out = final_points(df)
    assert out.index.tolist() == [1, 2, 5]
    assert out["run_id"].tolist() == ["b", "a", "c"] and out["step"].tolist() == [30, 30, 5]
    assert out.attrs == df.attrs


def test_final_points_use_tokens_without_a_step_column():
    df = frame(run_id=["a", "a", "b", "b"], tokens=[5e8, 1e8, 2e8, 4e8], loss=[2.0, 3.0, 2.9, 2.7])
    assert final_points(df).index.tolist() == [0, 3]


def test_final_points_keep_splits_apart():
    df = frame(run_id=["a"] * 4, step=[1, 1, 2, 2], split=["train", "val", "train", "val"],
               tokens=[1, 1, 2, 2], loss=[3.0, 3.1, 2.0, 2.1])
    assert final_points(df).index.tolist() == [2, 3]
    assert final_points(select(df, status=None, split="val")).index.tolist() == [3]


def test_compute_frontier_is_the_lower_envelope_over_flops():
    df = frame(run_id=list("abcdefgh"),
               flops=[1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 5.0, 6.0],
               loss=[5.0, 4.0, 3.0, 3.5, 2.0, 2.0, np.nan, 1.0])
    out = compute_frontier(df)
    # b loses to c at equal FLOPs, d to c, f ties e at more FLOPs, g has no loss.
    assert out["run_id"].tolist() == ["a", "c", "e", "h"]
    assert out.attrs == df.attrs


def test_compute_frontier_orders_by_flops_and_keeps_the_first_exact_tie():
    df = frame(run_id=["x", "y", "z", "w"], flops=[3.0, 1.0, 3.0, 2.0], loss=[1.5, 2.0, 1.5, 2.5])
    assert compute_frontier(df)["run_id"].tolist() == ["y", "x"]


def test_select_filters_status_and_split():
    df = frame(run_id=list("abcde"), status=["ok", "ok", "diverged", "ok", "killed"],
               split=["val", "train", "val", "val", "val"])
    assert select(df)["run_id"].tolist() == ["a", "d"]
    assert select(df, split=None)["run_id"].tolist() == ["a", "b", "d"]
    assert select(df, status=None)["run_id"].tolist() == ["a", "c", "d", "e"]
    assert select(df, status=["diverged", "killed"], split=None)["run_id"].tolist() == ["c", "e"]
    assert select(df, status=None, split=None)["run_id"].tolist() == list("abcde")
    assert select(df).attrs == df.attrs


def test_select_skips_filters_on_absent_columns():
    df = frame(run_id=["a", "b"], split=["val", "train"])
    assert select(df)["run_id"].tolist() == ["a"]
    assert select(df[["run_id"]])["run_id"].tolist() == ["a", "b"]


def test_select_rejects_an_unknown_status():
    with pytest.raises(RunsTableError, match="statuses are ok, diverged, killed"):
        select(frame(run_id=["a"], status=["ok"]), status="OK")


def test_helpers_compose_on_a_loaded_table(tmp_path):
    table = small_table(status=["ok", "ok", "ok", "ok", "diverged", "diverged"])
    table["loss"][5] = math.nan
    df = load_runs(write_csv(tmp_path, table))
    finals = final_points(select(df))
    assert finals["run_id"].tolist() == ["a", "b"] and finals["step"].tolist() == [200, 200]
    assert compute_frontier(df).index.tolist() == [0, 1, 3]
    assert finals.attrs["flops_convention"] == "6ND" and finals.attrs["source"] == str(tmp_path / "runs.csv")


def test_tuned_points_keep_the_best_setting_per_size_and_budget_with_seeds_averaged():
    rows = []
    # (N=1e6, D=1e8): lr 1e-3 with two seeds (mean 3.05) beats lr 2e-3 (3.10); batch sizes end a few tokens apart.
    for run_id, lr, seed, loss, tokens in [("a", 1e-3, 0, 3.00, 100_352), ("b", 1e-3, 1, 3.10, 100_352),
                                           ("c", 2e-3, 0, 3.10, 100_352)]:
        rows += [{"run_id": run_id, "params": 1e6, "tokens": tokens // 2, "token_budget": 100_000, "loss": 4.0,
                  "lr": lr, "seed": seed, "step": 1},
                 {"run_id": run_id, "params": 1e6, "tokens": tokens, "token_budget": 100_000, "loss": loss,
                  "lr": lr, "seed": seed, "step": 2}]
    rows.append({"run_id": "d", "params": 2e6, "tokens": 100_000, "token_budget": 100_000, "loss": 2.9,
                 "lr": 1e-3, "seed": 0, "step": 2})
    tuned = tuned_points(pd.DataFrame(rows))
    assert tuned["params"].tolist() == [1e6, 2e6]
    first = tuned.iloc[0]
    assert first["lr"] == 1e-3 and first["loss"] == pytest.approx(3.05)
    assert first["n_runs"] == 2 and first["n_settings"] == 2 and first["tokens"] == 100_352
    assert tuned.iloc[1]["n_settings"] == 1


# -- the front door: points(df, which) ---------------------------------------------------------------------------
def sweep_frame() -> pd.DataFrame:
    """Four runs: a at two lr (b is its worse setting), c diverged, d logged on train only after step 1."""
    return frame(
        run_id=["a", "a", "b", "b", "c", "c", "d", "d"],
        params=[1e6, 1e6, 1e6, 1e6, 2e6, 2e6, 2e6, 2e6],
        tokens=[1e8, 2e8, 1e8, 2e8, 1e8, 2e8, 1e8, 2e8],
        flops=[6e14, 12e14, 6e14, 12e14, 12e14, 24e14, 12e14, 24e14],
        lr=[1e-3, 1e-3, 2e-3, 2e-3, 1e-3, 1e-3, 3e-3, 3e-3],
        step=[1, 2, 1, 2, 1, 2, 1, 2],
        loss=[3.0, 2.5, 3.1, 2.7, 2.9, np.nan, 2.8, 2.4],
        status=["ok", "ok", "ok", "ok", "diverged", "diverged", "ok", "ok"],
        split=["val", "val", "val", "val", "val", "val", "val", "train"],
    )


def test_points_final_all_tuned_and_frontier_are_the_selection_functions_on_ok_val_rows():
    df = sweep_frame()
    usable = select(df)  # ok, val
    assert usable["run_id"].tolist() == ["a", "a", "b", "b", "d"]
    pd.testing.assert_frame_equal(points(df, "all"), usable)
    pd.testing.assert_frame_equal(points(df), final_points(usable))
    assert points(df, "final")["run_id"].tolist() == ["a", "b", "d"]
    pd.testing.assert_frame_equal(points(df, "tuned"), tuned_points(usable))
    # final points per (N, D): a (2.5) beats b (2.7) at (1e6, 2e8); d's last val row is alone at (2e6, 1e8)
    assert points(df, "tuned")["loss"].tolist() == [2.5, 2.8]
    assert points(df, "tuned")["n_settings"].tolist() == [2, 1]
    assert points(df, "frontier")["run_id"].tolist() == ["a", "a"]  # d's 2.8 at 1.2e15 FLOPs loses to a's 2.5
    assert points(df, "final", status=None)["run_id"].tolist() == ["a", "b", "c", "d"]
    assert points(df).attrs == df.attrs


def test_points_groups_keep_every_status_and_smooth_the_last_losses():
    df = sweep_frame()
    groups = points(df, "groups")
    assert groups["run_id"].tolist() == ["a", "b", "c", "d"]  # the diverged run is data for the optimum
    assert groups["loss"].tolist()[:2] == [2.5, 2.7] and np.isnan(groups["loss"].iloc[2])
    assert groups["step"].tolist() == [2, 2, 2, 1]  # the val split: d's step-2 row is on train
    smoothed = points(df, "groups", smooth_last=2)
    assert smoothed["loss"].tolist()[:2] == pytest.approx([2.75, 2.9])
    # a sweep that logs no val rows is used whole
    train_only = df.assign(split="train")
    assert points(train_only, "groups")["step"].tolist() == [2, 2, 2, 2]


@pytest.mark.parametrize(("which", "options", "message"), [
    ("best", {}, "which must be one of final, tuned, frontier, all, groups, not 'best'"),
    ("groups", {"smooth_last": 0}, "smooth_last must be at least 1"),
])
def test_points_refuses_an_unknown_choice(which, options, message):
    with pytest.raises(ScalefitInputError, match=message):
        points(sweep_frame(), which, **options)
