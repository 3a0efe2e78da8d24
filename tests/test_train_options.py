"""Training options of the LM runner: gradient accumulation, throughput/MFU and repetition columns, task
columns in the rows, speed options refused on CPU, and pre-tokenized corpora (nanoGPT-style token files).

Tiny runs (n10k, 32–80 steps) on the no-download pydoc corpus or on a generated token file, one thread.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from runners import train as train_module
from runners.data import VAL_FRACTION, prepare_corpus
from runners.model import size_config
from runners.train import RunSpec, measure_peak_flops, train

REPO = Path(__file__).resolve().parents[1]
# 32 steps of 8 sequences × 64 bytes; one evaluation, at step 32, with one task.
BASE = RunSpec("n10k", 32 * 512, 5e-3, batch_size=512, seq_len=64, corpus="pydoc", tasks=("next-line",),
               peak_flops=1e11)


@pytest.fixture(scope="module")
def corpus_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("corpus-cache")
    prepare_corpus("pydoc", cache)
    return cache


@pytest.fixture(scope="module")
def one_batch_rows(corpus_cache, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("one-batch")
    return pd.read_parquet(train(BASE, out, threads=1, corpus_cache=corpus_cache))


@pytest.mark.parametrize("micro_tokens", [128, 64])  # 4-way and 8-way accumulation
def test_gradient_accumulation_matches_one_batch(corpus_cache, one_batch_rows, tmp_path, micro_tokens):
    spec = RunSpec(**{**BASE.__dict__, "micro_batch_size": micro_tokens})
    assert spec.run_id == BASE.run_id  # the same run, executed in pieces
    rows = pd.read_parquet(train(spec, tmp_path, threads=1, corpus_cache=corpus_cache))
    assert rows["micro_batch_size"].tolist() == [micro_tokens]
    assert one_batch_rows["micro_batch_size"].tolist() == [512]
    for column in ("step", "tokens", "flops", "batch_size", "epochs"):
        assert rows[column].tolist() == one_batch_rows[column].tolist()
    # Equal micro-batches: the mean of their mean losses is the batch's mean loss, and the accumulated
    # gradient is the batch's gradient, up to float rounding over 32 AdamW steps.
    for column in ("loss", "train_loss", "task/next-line/bpb"):
        assert rows[column].iloc[0] == pytest.approx(one_batch_rows[column].iloc[0], abs=1e-4), column
    assert abs(rows["task/next-line/acc"].iloc[0] - one_batch_rows["task/next-line/acc"].iloc[0]) <= 0.02


def test_rows_record_tasks_repetition_and_throughput(one_batch_rows, corpus_cache):
    row = one_batch_rows.iloc[-1]
    unique = len(prepare_corpus("pydoc", corpus_cache).split("train"))
    assert row["tokenizer"] == "bytes" and row["unique_tokens"] == unique
    assert row["epochs"] == row["tokens"] / unique == 32 * 512 / unique
    assert (row["task/next-line/n_choices"], row["world_size"], row["precision"]) == (4, 1, "fp32")
    assert 0.0 <= row["task/next-line/acc"] <= 1.0 and 0.0 < row["task/next-line/bpb"] < 8.5
    assert math.isfinite(row["tokens_per_s"]) and row["tokens_per_s"] > 0
    flops_per_token = size_config("n10k", seq_len=64).flops_per_token("6ND+attn")
    assert row["peak_flops"] == 1e11  # given, so not measured
    assert row["mfu"] == pytest.approx(row["tokens_per_s"] * flops_per_token / 1e11, rel=1e-12)
    assert 0 < row["task_eval_time"] < row["eval_time"] < row["wall_time"]
    # tokens/s counts training time only: at most the tokens over the wall time less the evaluation time.
    assert row["tokens_per_s"] >= row["tokens"] / row["wall_time"]


def test_peak_flops_benchmark_is_measured_once_per_process():
    first = measure_peak_flops("cpu")
    assert 1e8 < first < 1e14  # between 0.1 GFLOP/s and 100 TFLOP/s
    assert measure_peak_flops("cpu") == first  # cached


def test_cuda_only_options_are_refused_on_cpu(corpus_cache, tmp_path):
    for option in ("bf16", "tf32"):
        spec = RunSpec(**{**BASE.__dict__, option: True})
        with pytest.raises(ValueError, match=f"{option} work on CUDA only"):
            train(spec, tmp_path, threads=1, corpus_cache=corpus_cache)
    assert not (tmp_path / "parts").exists()
    done = subprocess.run([sys.executable, "-m", "runners.train", "--size", "n10k", "--tokens", "1e4", "--lr",
                           "1e-2", "--out", str(tmp_path), "--bf16"], cwd=REPO, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 2 and "bf16 work on CUDA only" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_micro_batch_sizes_are_refused():
    for micro in (100, 1024, 0):  # not a multiple of seq_len; larger than the batch; zero
        with pytest.raises(ValueError, match="micro_batch_size"):
            RunSpec("n10k", 10_000, 1e-2, batch_size=512, seq_len=64, micro_batch_size=micro)
    with pytest.raises(ValueError, match="micro_batch_size"):  # 3 sequences do not divide 8
        RunSpec("n10k", 10_000, 1e-2, batch_size=512, seq_len=64, micro_batch_size=192)


# --- pre-tokenized corpora ----------------------------------------------------------------------------------

VOCAB = 1000


def write_token_file(path: Path, n_tokens: int, dtype: str) -> np.ndarray:
    """A learnable toy token stream: each id is a fixed function of the previous one (a bigram chain)."""
    ids = np.empty(n_tokens, dtype=np.int64)
    ids[0] = 1
    for i in range(1, n_tokens):
        ids[i] = (ids[i - 1] * 31 + 7) % VOCAB
    ids.astype(dtype).tofile(path)
    return ids


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_token_file_split_rule(tmp_path, dtype):
    ids = write_token_file(tmp_path / "toy.bin", 20_480, dtype)
    corpus = prepare_corpus(f"tokens:{tmp_path / 'toy.bin'}", tmp_path / "cache", vocab_size=VOCAB,
                            token_dtype=dtype, tokenizer="toy")
    n_val = int(20_480 * VAL_FRACTION)
    assert np.array_equal(corpus.split("train"), ids[:-n_val])  # the first 90% train
    assert np.array_equal(corpus.split("val"), ids[-n_val:])  # the last 10% validate
    assert (corpus.vocab_size, corpus.tokenizer, corpus.name) == (VOCAB, "toy", "tokens:toy.bin")
    import hashlib

    assert corpus.sha256 == hashlib.sha256((tmp_path / "toy.bin").read_bytes()).hexdigest()


def test_training_on_a_token_file_records_vocab_and_repetition(tmp_path, capsys):
    write_token_file(tmp_path / "toy.bin", 20_480, "uint16")
    unique = 20_480 - 2_048
    spec = RunSpec("n10k", 80 * 256, 2e-2, batch_size=256, seq_len=32, corpus=f"tokens:{tmp_path / 'toy.bin'}",
                   vocab_size=VOCAB, token_dtype="uint16", tokenizer="toy", family="gpt-toy")
    rows = pd.read_parquet(train(spec, tmp_path / "out", threads=1, corpus_cache=tmp_path / "cache"))
    warning = capsys.readouterr().err
    assert f"repeats its data: 20,480 tokens over {unique:,} unique" in warning and "1.11 epochs" in warning
    assert (rows["vocab_size"] == VOCAB).all() and (rows["tokenizer"] == "toy").all()
    assert (rows["params_embedding"] == (VOCAB + 32) * 16).all()
    assert (rows["unique_tokens"] == unique).all()
    assert rows["epochs"].iloc[-1] == pytest.approx(20_480 / unique)
    assert not any(c.startswith("task/") for c in rows)
    assert rows["loss"].iloc[-1] < math.log(VOCAB) - 1.0  # it learnt the chain


def test_bad_token_files_are_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "toy.bin"
    write_token_file(path, 20_480, "uint16")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"token id \d+ is not below the declared vocab_size 500"):
        prepare_corpus(f"tokens:{path}", cache, vocab_size=500)
    with pytest.raises(ValueError, match="declare the vocabulary size"):
        prepare_corpus(f"tokens:{path}", cache)
    with pytest.raises(FileNotFoundError, match="no such token file"):
        prepare_corpus(f"tokens:{tmp_path / 'missing.bin'}", cache, vocab_size=VOCAB)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x00" * 20_000 + b"\x01")
    with pytest.raises(ValueError, match="not a whole number of uint16 tokens"):
        prepare_corpus(f"tokens:{odd}", cache, vocab_size=VOCAB)
    with pytest.raises(ValueError, match="declare its vocab_size"):
        RunSpec("n10k", 10_000, 1e-2, corpus=f"tokens:{path}")
    with pytest.raises(ValueError, match="byte-level"):
        RunSpec("n10k", 10_000, 1e-2, corpus="pydoc", vocab_size=1000)
    assert train_module.TOKEN_DTYPES == ("uint16", "uint32")


# --- the docs' commands ---------------------------------------------------------------------------------------

def docs_torchrun_commands() -> list[str]:
    text = (REPO / "docs" / "sweeps.md").read_text()
    blocks = re.findall(r"```bash\n(.+?)\n```", text, flags=re.DOTALL)
    return [b.replace("\\\n", " ") for b in blocks if b.startswith("torchrun ")]


def test_docs_torchrun_command_is_valid_for_torchrun_and_the_runner():
    """The documented data-parallel command parses for torchrun and for runners.train, and its batch splits
    over its ranks into whole micro-batches."""
    from torch.distributed.run import get_args_parser

    from runners.train import build_parser, spec_from_args

    commands = docs_torchrun_commands()
    assert len(commands) == 1
    words = shlex.split(commands[0])
    launcher = get_args_parser().parse_args(words[1:])
    assert launcher.standalone and launcher.module and launcher.training_script == "runners.train"
    args = build_parser().parse_args(launcher.training_script_args)
    spec = spec_from_args(args)
    ranks = int(launcher.nproc_per_node)
    per_rank = spec.batch_size // spec.seq_len // ranks
    assert per_rank * ranks * spec.seq_len == spec.batch_size
    assert per_rank % (spec.micro_batch_size // spec.seq_len) == 0
    assert (args.device, spec.bf16, spec.tf32, spec.compile) == ("cuda", True, True, True)
    assert spec.vocab_size < 2**16 and spec.token_dtype == "uint16" and spec.tasks == ()
    assert size_config(spec.size, spec.seq_len, spec.vocab_size).n_heads * 32 == 768


def test_docs_token_corpus_defaults_make_a_valid_run():
    import tomllib

    from runners.train import spec_from_dict

    text = (REPO / "docs" / "sweeps.md").read_text()
    [block] = [b for b in re.findall(r"```toml\n(.+?)\n```", text, flags=re.DOTALL) if "tokens:" in b]
    defaults = tomllib.loads(block)["defaults"]
    spec = spec_from_dict({**defaults, "size": "d768l12", "tokens": 2e9, "lr": 6e-4})
    assert spec.batch_size // spec.micro_batch_size == 8  # "8 accumulation steps on one GPU"
    assert spec.micro_batch_size // spec.seq_len == 64
