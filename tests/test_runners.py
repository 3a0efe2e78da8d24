"""The training runners: exact parameter/FLOP accounting, schedules, data, sweeps, resume, divergence, DDP.

Everything here trains tiny byte-level models on the no-download ``pydoc`` corpus in a temporary cache, with
one torch thread, so the tests need neither the network nor the Shakespeare cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from runners import sweep as sweep_module
from runners.data import VAL_FRACTION, eval_windows, prepare_corpus, train_batch
from runners.model import GPT, SIZES, GPTConfig, shape, size_config
from runners.sweep import compact, expand, sweep
from runners.tasks import DEFAULT_TASKS
from runners.train import (
    FLOPS_CONVENTION,
    TIMING_COLUMNS,
    RunSpec,
    checkpoint_path,
    part_path,
    spec_from_dict,
    train,
)
from scalefit import load_runs
from scalefit.runs import derive_flops, write_runs

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "runners" / "configs" / "smoke.toml"
LADDER = REPO / "runners" / "configs" / "cpu_ladder.toml"

# The reference run: one of the smoke sweep's runs (n10k, 200 steps of 8 × 64 tokens, pydoc).
REFERENCE = RunSpec("n10k", 102400, 5e-3, batch_size=512, seq_len=64, corpus="pydoc")


def closed_form_non_embedding(d: int, n_layers: int) -> int:
    """N = L·(12d² + 4d) + 2d for d_ff = 4d: attention 4d², MLP 8d², two LayerNorms 4d, final LayerNorm 2d."""
    return n_layers * (12 * d * d + 4 * d) + 2 * d


@pytest.fixture(scope="module")
def corpus_cache(tmp_path_factory) -> Path:
    """A private corpus cache holding the pydoc corpus, made once for the module."""
    cache = tmp_path_factory.mktemp("corpus-cache")
    prepare_corpus("pydoc", cache)
    return cache


@pytest.fixture(scope="module")
def reference_rows(corpus_cache, tmp_path_factory) -> pd.DataFrame:
    """The rows of an uninterrupted single-process run of ``REFERENCE``."""
    out = tmp_path_factory.mktemp("reference")
    return pd.read_parquet(train(REFERENCE, out, threads=1, corpus_cache=corpus_cache))


def subprocess_env(corpus_cache: Path) -> dict[str, str]:
    return {**os.environ, "SCALEFIT_DATA_CACHE": str(corpus_cache), "OMP_NUM_THREADS": "1"}


def train_cli(spec: RunSpec, out: Path, *extra: str) -> list[str]:
    """The ``python -m runners.train`` arguments that train ``spec`` (the CLI cannot set eval_windows)."""
    assert spec.eval_windows == RunSpec.__dataclass_fields__["eval_windows"].default
    return ["-m", "runners.train", "--size", spec.size, "--tokens", str(spec.tokens), "--lr", repr(spec.lr),
            "--batch-size", str(spec.batch_size), "--seq-len", str(spec.seq_len), "--schedule", spec.schedule,
            "--warmup-frac", repr(spec.warmup_frac), "--seed", str(spec.seed), "--corpus", spec.corpus,
            "--tasks", ",".join(spec.tasks), "--out", str(out), "--threads", "1", *extra]


def without_wall_time(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows without the columns that measure time (the only ones that differ between identical runs)."""
    return rows.drop(columns=[c for c in TIMING_COLUMNS if c in rows]).reset_index(drop=True)


# --- parameter and FLOP accounting -------------------------------------------------------------------------

SHAPES = [(16, 3, 128, 256), (24, 3, 64, 256), (40, 4, 128, 256), (64, 6, 32, 256), (128, 5, 128, 256),
          (96, 2, 256, 512), (256, 1, 16, 100)]


@pytest.mark.parametrize(("d", "n_layers", "seq_len", "vocab"), SHAPES)
def test_non_embedding_params_match_closed_form_and_the_built_module(d, n_layers, seq_len, vocab):
    cfg = shape(d, n_layers, seq_len=seq_len, vocab_size=vocab)
    assert cfg.d_ff == 4 * d
    expected = closed_form_non_embedding(d, n_layers)
    assert cfg.non_embedding_params == expected
    assert cfg.embedding_params == (vocab + seq_len) * d
    assert GPT(cfg).count_params() == (expected, (vocab + seq_len) * d)


def test_module_has_no_parameters_outside_the_accounting():
    """Every tensor is a block's, the final LayerNorm's or an embedding (the head is tied, so adds none)."""
    cfg = shape(32, 2)
    model = GPT(cfg)
    total = sum(p.numel() for p in model.parameters())
    assert total == cfg.non_embedding_params + cfg.embedding_params == 24_896 + 12_288
    names = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert names == {"token_embedding", "position_embedding", "blocks", "ln_final"}


def test_ladder_rungs_have_their_documented_sizes():
    documented = {"n10k": 9_440, "n20k": 21_072, "n40k": 37_312, "n80k": 77_520, "n160k": 151_536,
                  "n320k": 296_576, "n640k": 666_048, "n1m": 985_856, "n3m": 3_102_336, "n5m": 4_725_248}
    assert set(documented) == set(SIZES)
    for name, n in documented.items():
        assert size_config(name).non_embedding_params == n == closed_form_non_embedding(*SIZES[name])
    counts = [documented[name] for name in SIZES]
    assert counts == sorted(counts)
    assert documented["n320k"] / documented["n10k"] >= 30
    assert shape(2048, 24).non_embedding_params == 1_208_160_256  # the "≈ 1.2B" of the model docstring
    assert size_config("d48l2") == shape(48, 2)


@pytest.mark.parametrize(("d", "n_layers", "seq_len"), [(16, 3, 128), (64, 6, 64), (128, 5, 256), (40, 4, 32)])
def test_flops_per_token_conventions(d, n_layers, seq_len):
    cfg = shape(d, n_layers, seq_len=seq_len)
    n = closed_form_non_embedding(d, n_layers)
    assert cfg.flops_per_token("6ND") == 6 * n
    assert cfg.flops_per_token("6ND+attn") == 6 * n + 12 * n_layers * d * seq_len
    assert cfg.flops_per_token() == cfg.flops_per_token("6ND+attn")
    # The loader derives the same FLOPs from a row's columns as the runner writes.
    tokens = 123_456
    for convention in ("6ND", "6ND+attn"):
        derived = derive_flops(n, tokens, convention, n_layers=n_layers, d_model=d, seq_len=seq_len)
        assert float(derived) == cfg.flops_per_token(convention) * tokens


@pytest.mark.parametrize(("d", "n_layers", "seq_len"), [(16, 3, 64), (32, 2, 32), (64, 2, 16)])
def test_6nd_attn_is_the_measured_matmul_count_less_the_tied_head(d, n_layers, seq_len):
    """Count the matmul FLOPs of a real forward + backward with torch's FlopCounterMode.

    The measured count is exactly 6ND+attn plus the tied output head (6·V·d per token, excluded from N as in
    Kaplan et al.) minus the LayerNorm parameters (counted in N, but they do no matmuls).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    cfg = shape(d, n_layers, seq_len=seq_len)
    model = GPT(cfg)
    batch = 2
    x = torch.randint(0, cfg.vocab_size, (batch, seq_len))
    # The math backend runs attention as counted bmm's (full, unmasked scores, as the convention counts).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, x).backward()
    measured = counter.get_total_flops() / (batch * seq_len)
    layernorm_params = 4 * d * n_layers + 2 * d
    assert measured == cfg.flops_per_token("6ND+attn") + 6 * cfg.vocab_size * d - 6 * layernorm_params


def test_bad_shapes_sizes_and_conventions_raise():
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        GPTConfig(d_model=30, n_layers=2, n_heads=4, d_ff=120)
    with pytest.raises(ValueError, match="not divisible"):
        size_config("d17l2")  # head dim 8 → 2 heads for d=17
    with pytest.raises(ValueError, match="unknown model size"):
        size_config("n7k")
    with pytest.raises(ValueError):
        size_config("dXlY")
    with pytest.raises(ValueError, match="unknown FLOPs convention"):
        shape(16, 3).flops_per_token("6N")
    with pytest.raises(ValueError, match="not a multiple of seq_len"):
        RunSpec("n10k", 10_000, 1e-2, batch_size=1000, seq_len=128)
    with pytest.raises(ValueError, match="unknown schedule"):
        RunSpec("n10k", 10_000, 1e-2, schedule="linear")
    with pytest.raises(ValueError, match="unknown run setting"):
        spec_from_dict({"size": "n10k", "tokens": 1e6, "lr": 1e-2, "learning_rate": 1e-2})


# --- run identity, schedule, evaluation steps --------------------------------------------------------------

def test_run_id_format_is_stable():
    """Relaunching a sweep finds its finished parts by run_id: this format must not drift."""
    assert RunSpec("n10k", 1_000_000, 0.014, 2048).run_id == "gpt-byte-n10k-D1e06-lr0.014-bs2048-cosine-s0"
    assert REFERENCE.run_id == "gpt-byte-n10k-D1.02e05-lr0.005-bs512-cosine-s0"
    wsd = RunSpec("n160k", 8_000_000, 6.59e-3, 4096, schedule="wsd", seed=2)
    assert wsd.run_id == "gpt-byte-n160k-D8e06-lr0.00659-bs4096-wsd-s2"
    assert spec_from_dict({"size": "n10k", "tokens": "1e6", "lr": 0.014}).tokens == 1_000_000


def test_warmup_rises_linearly_to_the_peak():
    spec = RunSpec("n10k", 200 * 512, 1e-2, batch_size=512, seq_len=64, warmup_frac=0.05)
    assert (spec.total_steps, spec.warmup_steps) == (200, 10)
    for schedule in ("cosine", "wsd"):
        s = RunSpec(**{**spec.__dict__, "schedule": schedule})
        lrs = [s.lr_at(k) for k in range(10)]
        assert lrs == pytest.approx([1e-3 * (k + 1) for k in range(10)], rel=1e-12)
        assert s.lr_at(9) == s.lr_at(10) == 1e-2
    assert RunSpec("n10k", 512 * 10, 1e-2, batch_size=512, seq_len=64, warmup_frac=0.0).warmup_steps == 1


def test_cosine_decays_to_ten_percent_of_the_peak_at_the_end():
    spec = RunSpec("n10k", 200 * 512, 1e-2, batch_size=512, seq_len=64, warmup_frac=0.05)
    total, warmup = spec.total_steps, spec.warmup_steps
    lrs = np.array([spec.lr_at(k) for k in range(total + 1)])
    assert np.all(np.diff(lrs[warmup:]) <= 0)
    assert spec.lr_at(warmup + (total - warmup) // 2) == pytest.approx(0.55e-2, rel=1e-12)  # halfway: 0.1 + 0.45
    # The schedule reaches 10% at the end of the budget (step index total); the last update (index total-1)
    # uses 10% to within 1e-3 relative.
    assert spec.lr_at(total) == pytest.approx(1e-3, rel=1e-12)
    assert spec.lr_at(total - 1) == pytest.approx(1e-3, rel=1e-3)
    assert lrs.min() == pytest.approx(1e-3, rel=1e-12)


def test_wsd_is_constant_then_decays_linearly_to_zero():
    spec = RunSpec("n10k", 200 * 512, 1e-2, batch_size=512, seq_len=64, warmup_frac=0.05, schedule="wsd")
    total, warmup, decay_start = spec.total_steps, spec.warmup_steps, 160  # the last 20% of the steps
    assert all(spec.lr_at(k) == 1e-2 for k in range(warmup, decay_start + 1))
    decay = np.array([spec.lr_at(k) for k in range(decay_start, total + 1)])
    assert np.diff(decay) == pytest.approx(np.full(total - decay_start, -1e-2 / (total - decay_start)), rel=1e-9)
    assert spec.lr_at(total) == 0.0
    assert spec.lr_at(total - 1) == pytest.approx(1e-2 / (total - decay_start), rel=1e-12)


@pytest.mark.parametrize(("total_steps", "expected"), [
    (200, [32, 64, 128, 200]),
    (256, [32, 64, 128, 256]),
    (1000, [32, 64, 128, 256, 512, 1000]),
    (33, [32, 33]),
    (32, [32]),
    (20, [20]),
])
def test_eval_steps_are_powers_of_two_from_32_plus_the_last_step(total_steps, expected):
    spec = RunSpec("n10k", total_steps * 512 - 100, 1e-2, batch_size=512, seq_len=64)  # ceil → total_steps
    assert spec.total_steps == total_steps
    assert spec.eval_steps() == expected


# --- data ----------------------------------------------------------------------------------------------------

def test_corpus_split_sizes_and_checksum(corpus_cache):
    from pydoc_data.topics import topics

    corpus = prepare_corpus("pydoc", corpus_cache)
    text = "\n\n".join(topics[k] for k in sorted(topics)).encode("utf-8")
    train_split, val_split = corpus.split("train"), corpus.split("val")
    assert corpus.n_bytes == len(text) > 100_000
    assert len(val_split) == int(len(text) * VAL_FRACTION)
    assert len(train_split) + len(val_split) == len(text)
    joined = np.concatenate([train_split, val_split]).tobytes()
    assert joined == text
    assert corpus.sha256 == hashlib.sha256(text).hexdigest()
    assert prepare_corpus("pydoc", corpus_cache) == corpus  # cached: the same files, the same checksum
    with pytest.raises(ValueError, match="unknown corpus"):
        prepare_corpus("wikipedia", corpus_cache)


def test_train_batch_is_a_pure_function_of_seed_and_step(corpus_cache):
    data = prepare_corpus("pydoc", corpus_cache).split("train")
    x, y = train_batch(data, 8, 64, seed=0, step=5)
    assert x.shape == y.shape == (8, 64) and x.dtype == torch.int64
    x2, y2 = train_batch(data, 8, 64, seed=0, step=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, train_batch(data, 8, 64, seed=0, step=6)[0])
    assert not torch.equal(x, train_batch(data, 8, 64, seed=1, step=5)[0])
    # The batch of a step does not depend on which steps were drawn before it (a resumed run sees the same).
    for step in range(4):
        train_batch(data, 8, 64, seed=0, step=step)
    assert torch.equal(x, train_batch(data, 8, 64, seed=0, step=5)[0])


def test_targets_are_the_inputs_shifted_by_one(corpus_cache):
    data = prepare_corpus("pydoc", corpus_cache).split("train")
    raw = data.tobytes()
    x, y = train_batch(data, 8, 64, seed=3, step=11)
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y, strict=True):
        window = bytes(row_x.tolist()) + bytes([int(row_y[-1])])
        assert raw.find(window) >= 0  # one contiguous window of the corpus


def test_eval_windows_are_fixed_and_span_the_validation_split(corpus_cache):
    val = prepare_corpus("pydoc", corpus_cache).split("val")
    x, y = eval_windows(val, 16, 64)
    x2, y2 = eval_windows(val, 16, 64)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (16, 64)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert bytes(x[0].tolist()) == val[:64].tobytes()  # first window at the start
    assert bytes(y[-1].tolist()) == val[-64:].tobytes()  # last window ends at the last byte


# --- training: one run, resume, divergence ----------------------------------------------------------------

def test_reference_run_rows(reference_rows):
    rows = reference_rows
    cfg = size_config("n10k", seq_len=64)
    assert rows["step"].tolist() == REFERENCE.eval_steps() == [32, 64, 128, 200]
    assert (rows["tokens"] == rows["step"] * 512).all()
    assert (rows["flops"] == cfg.flops_per_token(FLOPS_CONVENTION) * rows["tokens"]).all()
    assert (rows["params"] == 9_440).all() and (rows["params_embedding"] == (256 + 64) * 16).all()
    assert (rows["status"] == "ok").all() and (rows["warmup"] == 10).all() and (rows["total_steps"] == 200).all()
    assert np.isfinite(rows["loss"]).all() and np.isfinite(rows["train_loss"]).all()
    assert rows["loss"].iloc[0] < math.log(256)  # learnt something by step 32
    assert rows["loss"].iloc[-1] < rows["loss"].iloc[0] - 0.2


def test_killed_run_resumes_to_exactly_the_rows_of_an_uninterrupted_run(corpus_cache, reference_rows, tmp_path):
    """SIGKILL a real training process after its first checkpoint; the relaunch ends with the same rows."""
    env = subprocess_env(corpus_cache)
    args = [sys.executable, *train_cli(REFERENCE, tmp_path, "--checkpoint-every", "40")]
    ckpt, part = checkpoint_path(tmp_path, REFERENCE), part_path(tmp_path, REFERENCE)
    log = tmp_path / "first-launch.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists():
            assert proc.poll() is None, f"training ended before its first checkpoint:\n{log.read_text()}"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not part.exists(), "the run finished before it was killed: nothing was resumed"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] % 40 == 0 and 40 <= saved["step"] < REFERENCE.total_steps
    assert 1 <= len(saved["rows"]) == sum(s <= saved["step"] for s in REFERENCE.eval_steps())

    relaunch = subprocess.run(args, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert relaunch.returncode == 0, relaunch.stderr
    rows = pd.read_parquet(part)
    assert not ckpt.exists()  # a finished run deletes its checkpoint
    pd.testing.assert_frame_equal(without_wall_time(rows), without_wall_time(reference_rows), check_exact=True)
    # The rows logged before the kill come from the checkpoint, untouched (so the run really resumed).
    before = [r["wall_time"] for r in saved["rows"]]
    assert rows["wall_time"].iloc[:len(before)].tolist() == before
    assert rows["wall_time"].is_monotonic_increasing


@pytest.mark.parametrize("lr", [10.0, 50.0])
def test_absurd_learning_rate_diverges_and_stops_early(corpus_cache, tmp_path, lr):
    spec = RunSpec("n10k", 102400, lr, batch_size=512, seq_len=64, corpus="pydoc")
    rows = pd.read_parquet(train(spec, tmp_path, threads=1, corpus_cache=corpus_cache))
    assert len(rows) >= 1 and (rows["status"] == "diverged").all()
    assert rows["step"].max() < spec.total_steps
    assert rows["step"].iloc[-1] > spec.warmup_steps or not np.isfinite(rows["train_loss"].iloc[-1])
    final = rows.iloc[-1]
    assert not np.isfinite(final["loss"]) or final["loss"] > math.log(256)
    # The loader keeps diverged rows (they are data for learning-rate laws), NaN losses included.
    loaded = load_runs(write_runs(rows, tmp_path / "runs.parquet"))
    assert len(loaded) == len(rows) and (loaded["status"] == "diverged").all()


# --- sweeps ---------------------------------------------------------------------------------------------------

SMOKE_IDS = sorted(f"gpt-byte-{size}-D1.02e05-lr{lr}-bs512-cosine-s0"
                   for size in ("n10k", "n20k") for lr in ("0.005", "0.01"))


def test_smoke_spec_expands_to_four_tiny_runs(capsys):
    runs = expand(tomllib.loads(SMOKE.read_text()))
    assert sorted(r.run_id for r in runs) == SMOKE_IDS
    assert REFERENCE.run_id in {r.run_id for r in runs}
    for run in runs:
        assert (run.batch_size, run.seq_len, run.corpus, run.total_steps) == (512, 64, "pydoc", 200)
    assert sweep_module.main([str(SMOKE), "--dry-run"]) == 0
    printed = capsys.readouterr().out.split("\n")
    assert printed[0].startswith("4 runs, 4.1e+05 tokens")
    assert sorted(printed[1:5]) == SMOKE_IDS


def test_shipped_ladder_expands_to_unique_runs_spanning_30x():
    runs = expand(tomllib.loads(LADDER.read_text()))
    ids = [r.run_id for r in runs]
    assert len(ids) == len(set(ids)) > 50
    params = [size_config(r.size).non_embedding_params for r in runs]
    assert max(params) / min(params) >= 30
    assert {r.corpus for r in runs} == {"shakespeare"}
    assert {r.tasks for r in runs} == {DEFAULT_TASKS}  # the whole built-in suite


def test_shipped_ladder_sweeps_batch_from_256_to_4096_tokens_with_seven_lrs_each():
    """(n10k, 1M) and (n40k, 1M): 5 batch sizes × 7–8 LRs, so that the best batch can be interior."""
    runs = expand(tomllib.loads(LADDER.read_text()))
    for size in ("n10k", "n40k"):
        group = [r for r in runs if r.size == size and r.tokens == 1_000_000 and r.seed == 0]
        lrs = {b: sorted(r.lr for r in group if r.batch_size == b) for b in (256, 512, 1024, 2048, 4096)}
        assert all(len(v) >= 7 for v in lrs.values()), lrs
        default = lrs[2048][3]  # the middle of the 2048-token grid (0.354 … 2.83×)
        assert lrs[256][-1] >= 1.9 * default and lrs[512][-1] >= 2.8 * default  # reaching up as far as 1024
        assert [b // 128 for b in lrs] == [2, 4, 8, 16, 32]  # sequences of 128 bytes per step
        assert lrs[256][0] < lrs[512][0] < lrs[1024][0]  # the small batches' LR grids reach lower
    n10k_128 = [r for r in runs if r.size == "n10k" and r.batch_size == 128]
    assert len(n10k_128) == 6 and {r.tokens for r in n10k_128} == {1_000_000}


def test_hparams_spec_is_a_subset_of_the_ladder_with_the_same_run_ids():
    """Running cpu_ladder_hparams.toml first, then cpu_ladder.toml into the same folder, trains each run once."""
    ladder = {r.run_id: r for r in expand(tomllib.loads(LADDER.read_text()))}
    first_spec = tomllib.loads((LADDER.parent / "cpu_ladder_hparams.toml").read_text())
    first = expand(first_spec)
    assert first_spec["sweep"]["out"] == tomllib.loads(LADDER.read_text())["sweep"]["out"]
    assert all(ladder[r.run_id] == r for r in first)  # the same runs, settings and all
    # Every run that sweeps LR or batch is in it: only the default-LR, batch-2048 runs are left for later.
    default_batch = [r for r in ladder.values() if r.run_id not in {f.run_id for f in first}]
    assert {r.batch_size for r in default_batch} == {2048}


def check_smoke_table(path: Path) -> pd.DataFrame:
    """The compacted smoke sweep, loaded by the validating loader, holds exactly the expected rows."""
    df = load_runs(path)
    assert df.attrs["flops_convention"] == "6ND+attn"
    assert sorted(df["run_id"].unique()) == SMOKE_IDS
    specs = {r.run_id: r for r in expand(tomllib.loads(SMOKE.read_text()))}
    for run_id, rows in df.groupby("run_id"):
        spec = specs[run_id]
        per_token = size_config(spec.size, seq_len=64).flops_per_token("6ND+attn")
        assert rows["step"].tolist() == spec.eval_steps() == [32, 64, 128, 200]
        assert (rows["tokens"] == rows["step"] * 512).all()
        assert np.array_equal(rows["flops"].to_numpy(), per_token * rows["tokens"].to_numpy(dtype=float))
        assert (rows["params"] == size_config(spec.size).non_embedding_params).all()
        assert (rows["lr"] == spec.lr).all() and (rows["status"] == "ok").all()
        assert np.isfinite(rows["loss"]).all()
        assert rows["loss"].iloc[-1] < rows["loss"].iloc[0]
    return df


@pytest.fixture(scope="module")
def local_smoke(corpus_cache, tmp_path_factory) -> Path:
    """The smoke sweep run once through the local (process pool) executor; its sweep folder."""
    out = tmp_path_factory.mktemp("smoke-local")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCALEFIT_DATA_CACHE", str(corpus_cache))  # read by the spawned workers' runners.data
        failures = sweep(SMOKE, out=out, executor="local", workers=2, threads=1, progress=False)
    assert failures == []
    return out


def test_smoke_sweep_through_the_local_executor(local_smoke, reference_rows):
    compact(local_smoke, local_smoke / "runs.parquet")
    check_smoke_table(local_smoke / "runs.parquet")
    assert not list((local_smoke / "checkpoints").glob("*"))  # checkpoints were written, and deleted at the end
    # A run in a pool worker logs exactly what the same run logs in-process.
    pooled = pd.read_parquet(part_path(local_smoke, REFERENCE))
    pd.testing.assert_frame_equal(without_wall_time(pooled).drop(columns="device"),
                                  without_wall_time(reference_rows).drop(columns="device"), check_exact=True)


def test_relaunching_a_finished_sweep_runs_nothing(local_smoke, monkeypatch, capsys):
    launched = []
    real_run_all = sweep_module.run_all

    def spy(fn, items, **kwargs):
        launched.extend(items)
        return real_run_all(fn, items, **kwargs)

    monkeypatch.setattr(sweep_module, "run_all", spy)
    parts = sorted((local_smoke / "parts").glob("*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in parts]
    table = local_smoke / "relaunch.parquet"
    assert sweep_module.main([str(SMOKE), "--out", str(local_smoke), "--quiet", "--compact", str(table)]) == 0
    assert launched == []
    assert sorted((local_smoke / "parts").glob("*.parquet")) == parts
    assert [p.stat().st_mtime_ns for p in parts] == stamps
    assert "4 runs, 16 rows" in capsys.readouterr().out
    check_smoke_table(table)


def test_smoke_sweep_through_submitit_local_executor(corpus_cache, local_smoke, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("SCALEFIT_DATA_CACHE", str(corpus_cache))  # inherited by submitit's job processes
    failures = sweep(SMOKE, out=tmp_path, executor="submitit", cluster="local", threads=1, progress=False)
    assert failures == []
    assert list((tmp_path / "submitit").glob("*_result.pkl"))  # the runs really went through submitit
    compact(tmp_path, tmp_path / "runs.parquet")
    df = check_smoke_table(tmp_path / "runs.parquet")
    # The same runs give the same rows whichever executor ran them.
    local = load_runs(write_runs(compact(local_smoke, tmp_path / "local.parquet"), tmp_path / "local.parquet"))
    pd.testing.assert_frame_equal(without_wall_time(df), without_wall_time(local), check_exact=True)
    # Relaunching through submitit submits nothing.
    assert sweep(SMOKE, out=tmp_path, executor="submitit", cluster="local", progress=False) == []
    assert len(list((tmp_path / "submitit").glob("*_result.pkl"))) == len(SMOKE_IDS)


# --- DDP -----------------------------------------------------------------------------------------------------

def _ddp_available() -> bool:
    return (importlib.util.find_spec("torch.distributed.run") is not None and torch.distributed.is_available()
            and torch.distributed.is_gloo_available())


@pytest.mark.skipif(not _ddp_available(), reason="torch.distributed with the gloo backend is not available")
@pytest.mark.parametrize("micro_batch", [None, 128])
def test_ddp_on_two_cpu_ranks_matches_a_single_process(corpus_cache, tmp_path, micro_batch):
    """``torchrun --nproc-per-node 2`` (gloo): each rank takes half of every batch; rows match one process.

    With ``micro_batch=128`` each rank also accumulates its 4 sequences in 2 micro-batches of 2 (gradients
    all-reduced on the last one only). The gradients agree to float rounding, so the first evaluation
    (step 32) agrees to ~1e-6. Later ones drift apart: on the early loss plateau these tiny runs amplify
    rounding differences (even the thread count moves the step-200 loss by ~0.08 nats), so step 64 is
    compared loosely. A sharding bug (ranks training on the same half, or on the whole batch) or a skipped
    gradient all-reduce moves the step-32 loss by far more than the tight tolerance.
    """
    spec = RunSpec("n10k", 64 * 512, 5e-3, batch_size=512, seq_len=64, corpus="pydoc", tasks=("near-line",))
    single = pd.read_parquet(train(spec, tmp_path / "single", threads=1, corpus_cache=corpus_cache))
    extra = ["--micro-batch-size", str(micro_batch)] if micro_batch else []
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           *train_cli(spec, tmp_path / "ddp", *extra)]
    done = subprocess.run(cmd, check=False, cwd=REPO, env=subprocess_env(corpus_cache), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pd.read_parquet(part_path(tmp_path / "ddp", spec))  # written once, by rank 0
    assert sorted(p.name for p in (tmp_path / "ddp").rglob("*") if p.is_file()) == [f"{spec.run_id}.parquet"]
    exact = ["run_id", "step", "tokens", "flops", "params", "status", "batch_size", "batch_seqs", "lr",
             "epochs", "task/near-line/n_choices"]
    pd.testing.assert_frame_equal(rows[exact], single[exact])
    assert rows["step"].tolist() == [32, 64]
    assert (rows["world_size"] == 2).all() and (single["world_size"] == 1).all()
    assert (rows["micro_batch_size"] == (micro_batch or 256)).all()  # tokens per rank per forward pass
    for column in ("loss", "train_loss", "task/near-line/bpb"):  # train_loss: the global batch's, not a half's
        assert rows[column].iloc[0] == pytest.approx(single[column].iloc[0], abs=1e-4), column
        assert rows[column].iloc[1] == pytest.approx(single[column].iloc[1], abs=2e-2), column
