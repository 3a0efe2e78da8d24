"""RunLogger: a training loop's evaluations become a runs table that load_runs reads, resumes included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalefit.errors import RunsTableError
from scalefit.log import RunLogger
from scalefit.runs import final_points, load_runs


class FakeTensor:
    """What a loop hands over: a 0-d tensor that converts with float() (no torch needed)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


def loss_at(params: float, tokens: float) -> float:
    return 1.7 + 400.0 / params**0.34 + 60.0 / tokens**0.28


def train(logger: RunLogger, params: float, steps: range, tokens_per_step: int = 2**18, eval_every: int = 10,
          blow_up_at: int | None = None) -> None:
    """A fake training loop: evaluates every ``eval_every`` steps."""
    for step in steps:
        if step % eval_every:
            continue
        tokens = step * tokens_per_step
        loss = math.nan if blow_up_at is not None and step >= blow_up_at else loss_at(params, tokens)
        logger.log(step=step, tokens=tokens, loss=FakeTensor(loss))


def test_a_loop_of_three_runs_gives_a_table_load_runs_reads(tmp_path):
    path = tmp_path / "runs.parquet"
    for params in (1e6, 4e6, 1.6e7):
        logger = RunLogger(path, run_id=f"gpt-{params:.0e}", params=params, lr=3e-3, batch_size=2**18,
                           family="gpt")
        train(logger, params, range(1, 101))
        logger.close()
    df = load_runs(path)
    assert len(df) == 30 and df["run_id"].nunique() == 3 and set(df["status"]) == {"ok"}
    finals = final_points(df)
    assert finals["step"].tolist() == [100, 100, 100]
    np.testing.assert_allclose(finals["loss"], [loss_at(n, 100 * 2**18) for n in (1e6, 4e6, 1.6e7)], rtol=1e-12)
    assert (df["lr"] == 3e-3).all() and (df["family"] == "gpt").all()
    assert (df["wall_time"] >= 0).all() and df["step"].dtype == np.int64


def test_the_file_is_valid_after_every_evaluation(tmp_path):
    path = tmp_path / "runs.parquet"
    logger = RunLogger(path, run_id="a", params=1e6)
    for step in (10, 20, 30):
        logger.log(step=step, tokens=step * 1e6, loss=3.0 - step / 100)
        assert len(load_runs(path)) == step // 10  # readable mid-run, as scalefit fit would read it


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint(tmp_path):
    path = tmp_path / "runs.parquet"
    other = RunLogger(path, run_id="other", params=2e6)
    train(other, 2e6, range(1, 51))
    other.close()
    first = RunLogger(path, run_id="a", params=1e6)
    train(first, 1e6, range(1, 61))  # the process dies after step 60: no close()
    # the run resumes from its step-40 checkpoint and logs again from step 50, with other values
    second = RunLogger(path, run_id="a", params=1e6)
    for step in (50, 60, 70, 80):
        second.log(step=step, tokens=step * 2**18, loss=2.0 + 1.0 / step)
    second.close()
    df = load_runs(path)  # no repeated (run_id, step): load_runs would refuse it
    a = df[df["run_id"] == "a"].sort_values("step")
    assert a["step"].tolist() == [10, 20, 30, 40, 50, 60, 70, 80]
    assert a.loc[a["step"] == 60, "loss"].item() == pytest.approx(2.0 + 1.0 / 60)
    assert a.loc[a["step"] == 40, "loss"].item() == pytest.approx(loss_at(1e6, 40 * 2**18))
    assert (df["run_id"] == "other").sum() == 5
    assert a["wall_time"].is_monotonic_increasing  # the clock continues from the first process's rows


def test_a_run_that_blew_up_is_marked_diverged_and_keeps_its_nan_rows(tmp_path):
    path = tmp_path / "runs.parquet"
    logger = RunLogger(path, run_id="hot", params=1e6, lr=0.3)
    train(logger, 1e6, range(1, 61), blow_up_at=40)
    logger.close()
    df = load_runs(path)
    assert set(df["status"]) == {"diverged"} and df["loss"].isna().sum() == 3


def test_a_loop_that_raises_leaves_the_run_marked_killed(tmp_path):
    path = tmp_path / "runs.parquet"
    with pytest.raises(KeyboardInterrupt), RunLogger(path, run_id="a", params=1e6) as logger:
        logger.log(step=10, tokens=1e7, loss=3.0)
        raise KeyboardInterrupt
    assert load_runs(path)["status"].tolist() == ["killed"]


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "runs.parquet"
    logger = RunLogger(path, run_id="a", params=1e6)
    logger.log(step=10, tokens=1e7, loss=3.0)
    before = path.read_bytes()

    def broken(self, target, *args, **kwargs):
        with open(target, "wb") as half:
            half.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        logger.log(step=20, tokens=2e7, loss=2.9)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.parquet"]  # no temporary file left


def test_flush_every_batches_the_writes(tmp_path):
    path = tmp_path / "runs.parquet"
    logger = RunLogger(path, run_id="a", params=1e6, flush_every=3)
    logger.log(step=1, tokens=1e7, loss=3.0)
    logger.log(step=2, tokens=2e7, loss=2.9)
    assert not path.exists()
    logger.log(step=3, tokens=3e7, loss=2.8)
    assert len(load_runs(path)) == 3
    logger.log(step=4, tokens=4e7, loss=2.7)
    logger.close()
    assert len(load_runs(path)) == 4


@pytest.mark.parametrize("kwargs, words", [
    ({"step": 1, "tokens": 1e5}, "lacks params, loss"),
    ({"step": 1, "tokens": 1e5, "loss": 3.0, "params": "big"}, "params='big' is not a number"),
])
def test_missing_or_bad_values_say_what_to_pass(tmp_path, kwargs, words):
    with pytest.raises(RunsTableError, match=words):
        RunLogger(tmp_path / "runs.parquet", run_id="a").log(**kwargs)


def test_a_file_that_is_not_a_runs_table_is_not_overwritten(tmp_path):
    path = tmp_path / "runs.parquet"
    path.write_text("not parquet")
    with pytest.raises(RunsTableError, match="not a readable parquet runs table"):
        RunLogger(path, run_id="a", params=1e6)
    assert path.read_text() == "not parquet"
