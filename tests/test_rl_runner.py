"""The RL runner: the addition task, exact pass@1, GRPO pieces, a smoke run, resume after SIGKILL, sweeps.

Everything trains tiny models (2-digit addition, a few dozen RL steps) with one torch thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from runners.common.files import lock_key
from runners.common.locks import claim
from runners.model import size_config
from runners.rl.grpo import (
    RLSpec,
    checkpoint_path,
    group_advantages,
    kl_penalty,
    part_path,
    train_rl,
)
from runners.rl.sft import sft_id, supervised_stage
from runners.rl.sweep import compact, expand, main, sweep
from runners.rl.task import AdditionTask, answer_logprob, generate, response_mask
from scalefit.rl import rl_points

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / "runners" / "rl" / "configs" / "rl_addition.toml"

# A smoke run: 2-digit addition, a short supervised stage (~400 steps to pass@1 0.2), 24 GRPO steps of
# 4 problems × 4 answers, with a KL penalty.
SMOKE = RLSpec("n10k", digits=2, n_heldout=200, sft_target=0.2, sft_max_steps=600, sft_batch=32, sft_lr=1e-2,
               rl_steps=24, prompts_per_step=4, group_size=4, rl_lr=3e-4, kl_coef=0.05, eval_every=8,
               checkpoint_every=8)


def cli_args(spec: RLSpec, out: Path) -> list[str]:
    """``python -m runners.rl.grpo`` arguments for ``spec``."""
    args = ["-m", "runners.rl.grpo", "--out", str(out), "--threads", "1"]
    for name, value in spec.__dict__.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


@pytest.fixture(scope="module")
def smoke_rows(tmp_path_factory) -> pd.DataFrame:
    """The rows of an uninterrupted in-process smoke run."""
    out = tmp_path_factory.mktemp("rl-smoke")
    return pd.read_parquet(train_rl(SMOKE, out, threads=1))


def without_wall_time(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=["wall_time", "sft_wall_time"]).reset_index(drop=True)


# --- the task --------------------------------------------------------------------------------------------


def test_problems_are_fixed_width_text_with_the_sum_reversed():
    task = AdditionTask(digits=3, reverse=True)
    assert task.prompt_text(123, 456) + task.answer_text(123, 456) == "123+456=9750\n"
    assert AdditionTask(3, reverse=False).answer_text(7, 45) == "0052\n"
    prompts, answers = task.encode(np.array([[123, 456], [999, 999]]))
    assert prompts.shape == (2, task.prompt_len) and answers.shape == (2, task.answer_len)
    assert bytes(answers[1].tolist()).decode() == "8991\n"  # 1998 reversed


def test_heldout_problems_are_fixed_distinct_and_never_drawn_for_training():
    task = AdditionTask(digits=2, n_heldout=300)
    assert len({tuple(p) for p in task.heldout}) == 300
    np.testing.assert_array_equal(task.heldout, AdditionTask(digits=2, n_heldout=300).heldout)
    heldout = {tuple(p) for p in task.heldout}
    drawn = np.concatenate([task.sample(500, seed, step) for seed in range(3) for step in range(20)])
    assert not heldout & {tuple(p) for p in drawn}
    np.testing.assert_array_equal(task.sample(16, 1, 7, stream=1), task.sample(16, 1, 7, stream=1))
    assert not np.array_equal(task.sample(16, 1, 7, stream=1), task.sample(16, 1, 8, stream=1))


def test_reward_is_exact_match_and_the_mask_stops_at_the_terminator():
    answers = torch.tensor([list(b"9750\n")] * 3)
    samples = torch.tensor([list(b"9750\n"), list(b"975\n0"), list(b"97500")])
    assert AdditionTask.reward(samples, answers).tolist() == [1.0, 0.0, 0.0]
    assert response_mask(samples).tolist() == [[True] * 5, [True, True, True, True, False], [True] * 5]


class PositionModel(torch.nn.Module):
    """A stand-in policy: at answer position j it gives the reference byte probability ``p``, else uniform."""

    def __init__(self, task: AdditionTask, answer: torch.Tensor, p: float) -> None:
        super().__init__()
        self.offset, self.answer = task.prompt_len - 1, answer
        self.boost = float(np.log(p / (1 - p) * 255))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*idx.shape, 256)
        for j, token in enumerate(self.answer.tolist()):
            if self.offset + j < idx.shape[1]:
                logits[:, self.offset + j, token] = self.boost
        return logits


def test_exact_pass_at_1_is_the_frequency_of_exact_matches_when_sampling():
    task = AdditionTask(digits=3)
    prompts, answers = task.encode(np.array([[123, 456]]))
    model = PositionModel(task, answers[0], p=0.7)
    exact = float(answer_logprob(model, prompts, answers).exp())
    assert exact == pytest.approx(0.7**5, rel=1e-5)
    n = 20000
    generator = torch.Generator().manual_seed(0)
    samples = generate(model, prompts.expand(n, -1), task.answer_len, generator=generator)
    frequency = float(task.reward(samples, answers.expand(n, -1)).mean())
    assert abs(frequency - exact) < 4 * np.sqrt(exact * (1 - exact) / n)


# --- GRPO pieces -----------------------------------------------------------------------------------------


def test_group_advantages_are_centred_and_scaled_within_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    scaled = group_advantages(rewards, 4, scale=True).view(2, 4)
    assert scaled[0].sum().abs() < 1e-6 and scaled[0].std(unbiased=False) == pytest.approx(1.0, abs=1e-4)
    assert scaled[1].abs().max() == 0  # a group that all agree carries no signal
    assert group_advantages(rewards, 4, scale=False)[:4].tolist() == [0.75, -0.25, -0.25, -0.25]


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_estimators_vanish_at_the_reference_and_k2_k3_are_nonnegative(estimator):
    logp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert kl_penalty(logp, logp, estimator).abs().max() == 0
    other = kl_penalty(logp, torch.log(torch.tensor([0.4, 0.1, 0.8])), estimator)
    if estimator != "k1":
        assert (other >= 0).all()


def test_eval_steps_are_log_spaced_then_regular():
    assert RLSpec("n10k", rl_steps=35, eval_every=10).eval_steps() == [0, 1, 2, 4, 8, 10, 20, 30, 35]


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="kl_estimator"):
        RLSpec("n10k", kl_estimator="k4")
    with pytest.raises(ValueError, match="group_size"):
        RLSpec("n10k", group_size=1)


# --- a smoke run and resume ------------------------------------------------------------------------------


def test_smoke_run_writes_one_row_per_evaluation(smoke_rows):
    rows = smoke_rows
    assert rows["rl_step"].tolist() == SMOKE.eval_steps()
    assert rows["pass_at_1"].between(0, 1).all() and rows["greedy_acc"].between(0, 1).all()
    assert rows["pass_at_1"].iloc[0] > 0.1  # the supervised stage left RL something to reinforce
    n = size_config("n10k").non_embedding_params
    assert (rows["params"] == n).all()
    per_step = SMOKE.prompts_per_step * SMOKE.group_size
    assert (rows["samples"] == rows["rl_step"] * per_step).all()
    assert (rows["tokens"] == rows["samples"] * SMOKE.task.seq_len).all()
    assert np.allclose(rows["flops"], 6.0 * n * rows["tokens"]) and (rows["flops_convention"] == "6ND").all()
    assert rows["kl"].iloc[0] == 0 and (rows["kl"] > -1e-6).all()
    assert rows["mean_reward"].iloc[1:].between(0, 1).all() and np.isnan(rows["mean_reward"].iloc[0])
    assert (rows["heldout_problems"] == 200).all() and (rows["status"] == "ok").all()
    assert rows["sft_reached_target"].all() and rows["sft_val_pass_at_1"].iloc[0] >= 0.2
    assert rows["sft_steps"].iloc[0] > 0 and rows["sft_flops"].iloc[0] == 6.0 * n * rows["sft_tokens"].iloc[0]


def test_finished_run_is_skipped(smoke_rows, tmp_path):
    part = part_path(tmp_path, SMOKE)
    part.parent.mkdir(parents=True)
    smoke_rows.to_parquet(part)
    before = part.stat().st_mtime_ns
    assert train_rl(SMOKE, tmp_path) == part and part.stat().st_mtime_ns == before


def test_killed_run_resumes_to_exactly_the_rows_of_an_uninterrupted_run(smoke_rows, tmp_path):
    """SIGKILL a real RL process after its first checkpoint; the relaunch ends with the same rows."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, *cli_args(SMOKE, tmp_path)]
    ckpt, part = checkpoint_path(tmp_path, SMOKE), part_path(tmp_path, SMOKE)
    log = tmp_path / "first-launch.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not ckpt.exists():
            assert proc.poll() is None, f"the run ended before its first checkpoint:\n{log.read_text()}"
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not part.exists(), "the run finished before it was killed: nothing was resumed"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] % SMOKE.checkpoint_every == 0 and 0 < saved["step"] < SMOKE.rl_steps

    relaunch = subprocess.run(args, check=False, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
    assert relaunch.returncode == 0, relaunch.stderr
    rows = pd.read_parquet(part)
    assert not ckpt.exists()
    pd.testing.assert_frame_equal(without_wall_time(rows), without_wall_time(smoke_rows), check_exact=True)
    before = [r["wall_time"] for r in saved["rows"]]
    assert rows["wall_time"].iloc[: len(before)].tolist() == before  # those rows came from the checkpoint


# --- sweeps ----------------------------------------------------------------------------------------------


def test_shipped_config_expands_to_unique_runs_spanning_10x():
    spec = tomllib.loads(SHIPPED_CONFIG.read_text())
    runs = expand(spec)
    assert len({r.run_id for r in runs}) == len(runs)
    sizes = {size_config(r.size).non_embedding_params for r in runs}
    assert len(sizes) >= 4 and max(sizes) / min(sizes) >= 10
    assert all(r.n_heldout >= 200 and r.group_size == 8 for r in runs)
    lrs = {r.size: r.sft_lr for r in runs}
    assert lrs["n10k"] == pytest.approx(1e-2, rel=0.05) and lrs["n160k"] < lrs["n10k"]


def test_smoke_sweep_runs_compacts_and_relaunches_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    spec = tmp_path / "smoke.toml"
    fields = {k: v for k, v in SMOKE.__dict__.items() if k not in ("size", "rl_steps", "kl_coef")}
    defaults = "\n".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v!r}" for k, v in fields.items())
    spec.write_text(f'[sweep]\nname = "smoke"\nout = "{out}"\n\n[defaults]\n{defaults}\nrl_steps = 8\n\n'
                    '[[grid]]\nsize = ["n10k", "d8l2"]\nseed = [0]\n')
    assert sweep(spec, workers=2) == []
    table = compact(out, tmp_path / "rl_runs.parquet")
    assert table["run_id"].nunique() == 2 and table["params"].nunique() == 2
    assert table.groupby("run_id")["rl_step"].apply(list).map(lambda s: s == [0, 1, 2, 4, 8]).all()
    capsys.readouterr()
    assert sweep(spec, workers=2) == []  # everything is done: nothing runs
    assert "done" not in capsys.readouterr().err
    # The analysis reads what the runner writes: every evaluation after step 0 of every run whose
    # supervised stage reached its target (a tiny model may not, in 300 steps: then it is named).
    points, _, notes = rl_points(table)
    ok = table[(table["status"] == "ok") & (table["rl_step"] > 0)]
    assert len(points) == len(ok) and set(points["run_id"]) == set(ok["run_id"])
    assert all(run in " ".join(notes) for run in set(table.loc[table["status"] != "ok", "run_id"]))


def test_tiny_runs_change_nothing_but_wall_time_with_the_same_seed(tmp_path):
    spec = replace(SMOKE, rl_steps=4, kl_coef=0.0)
    first = pd.read_parquet(train_rl(spec, tmp_path / "a", threads=1))
    again = pd.read_parquet(train_rl(spec, tmp_path / "b", threads=1))
    pd.testing.assert_frame_equal(without_wall_time(first), without_wall_time(again), check_exact=True)


def write_sweep_spec(folder: Path, out: Path, sizes: list[str], rl_steps: int = 8) -> Path:
    """A sweep spec of SMOKE's settings (no KL penalty) for ``sizes``."""
    fields = {k: v for k, v in SMOKE.__dict__.items() if k not in ("size", "rl_steps", "kl_coef")}
    defaults = "\n".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v!r}" for k, v in fields.items())
    spec = folder / "smoke.toml"
    spec.write_text(f'[sweep]\nname = "smoke"\nout = "{out}"\n\n[defaults]\n{defaults}\nrl_steps = {rl_steps}\n\n'
                    f'[[grid]]\nsize = {sizes!r}\nseed = [0]\n')
    return spec


def test_rl_sweep_through_submitit_gives_the_rows_of_an_in_process_run(tmp_path, capsys):
    """The RL sweep runs on the shared executors (here submitit's in-process debug executor) and devices."""
    pytest.importorskip("submitit")
    spec = write_sweep_spec(tmp_path, tmp_path / "sweep", ["n10k"])
    (run,) = expand(tomllib.loads(spec.read_text()))
    assert main([str(spec), "--executor", "submitit", "--cluster", "debug", "--device", "cpu",
                 "--compact", str(tmp_path / "rl_runs.parquet")]) == 0
    assert "1 runs" in capsys.readouterr().out
    rows = pd.read_parquet(tmp_path / "rl_runs.parquet")
    alone = pd.read_parquet(train_rl(run, tmp_path / "alone", threads=1))
    pd.testing.assert_frame_equal(without_wall_time(rows), without_wall_time(alone), check_exact=True)
    assert (rows["device"] == "cpu").all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_rl_run_on_cuda_logs_its_device_and_sane_rows(tmp_path):
    rows = pd.read_parquet(train_rl(replace(SMOKE, rl_steps=4), tmp_path, device="cuda", threads=1))
    assert (rows["device"] == "cuda").all() and rows["pass_at_1"].between(0, 1).all()


def test_a_supervised_stage_shared_by_two_runs_is_trained_once(tmp_path):
    """A second worker that needs a supervised stage another one is training waits for it, then loads it."""
    task = SMOKE.task
    settings = {"target": 1.1, "max_steps": 20, "batch": 8, "lr": 1e-2, "seed": 0}  # 20 steps, then stop
    cache = tmp_path / "sweep" / "sft" / f"{sft_id('n10k', task, **settings)}.pt"
    result = {}
    with claim(tmp_path / "sweep", lock_key(cache)) as held:  # the first worker holds the stage's lock
        assert held
        waiter = threading.Thread(target=lambda: result.update(
            stage=supervised_stage("n10k", task, out=tmp_path / "sweep", **settings)))
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and "stage" not in result  # it waits, it does not train the stage too
        # The first worker's stage (trained elsewhere here) lands in the cache before its lock is released.
        first_model, first = supervised_stage("n10k", task, out=tmp_path / "first", **settings)
        cache.parent.mkdir(parents=True)
        cache.write_bytes((tmp_path / "first" / "sft" / cache.name).read_bytes())
    waiter.join(timeout=120)
    model, summary = result["stage"]
    assert summary == first  # sft_wall_time included: loaded, not trained again
    for a, b in zip(model.state_dict().values(), first_model.state_dict().values()):
        assert torch.equal(a, b)


def test_damaged_supervised_stage_cache_is_quarantined_and_trained_again(tmp_path, capsys):
    task = SMOKE.task
    settings = {"target": 1.1, "max_steps": 20, "batch": 8, "lr": 1e-2, "seed": 0}
    cache = tmp_path / "sft" / f"{sft_id('n10k', task, **settings)}.pt"
    cache.parent.mkdir()
    cache.write_bytes(b"")
    _, summary = supervised_stage("n10k", task, out=tmp_path, **settings)
    assert summary["sft_steps"] == 20
    out = capsys.readouterr().out
    assert f"quarantined sft/{cache.name} (zero bytes)" in out
    assert [p.stat().st_size for p in (tmp_path / "quarantine" / "sft").iterdir()] == [0]
    assert torch.load(cache, weights_only=True)["summary"] == summary
