"""Training throughput of the runner's GPT family on this machine, against its own fp32 matmul rate.

For each size, build the model and the AdamW optimiser exactly as ``runners.train`` does, take ``--warmup``
untimed steps, then time ``--steps`` training steps (batch from ``train_batch`` on the pydoc corpus, forward,
backward, gradient clipping, optimiser step, ``loss.item()``: the runner's loop without evaluations or
checkpoints). Achieved FLOP/s count the ``6ND+attn`` convention per token (the FLOPs the runs table logs).
The matmul rate is a timed square fp32 ``torch.matmul`` (2·n³ FLOPs) in the same process with the same thread
count, measured before and after the models (median of both sets); the last column is their ratio.

Run by hand::

    python benchmarks/runner_throughput.py                       # n10k n40k n160k n320k n1m, all threads
    python benchmarks/runner_throughput.py --threads 1 --sizes n10k n3m d512l8

Timings on a shared machine are pessimistic: the header prints the load average so a reader can tell.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from runners.data import prepare_corpus, train_batch
from runners.model import GPT, size_config
from runners.train import RunSpec, _optimizer

DEFAULT_SIZES = ("n10k", "n40k", "n160k", "n320k", "n1m")


def matmul_rate(n: int = 1024, repeats: int = 7) -> list[float]:
    """FLOP/s of ``repeats`` timed n×n fp32 matmuls (after one untimed warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - start))
    return rates


def train_rate(size: str, *, batch: int, seq_len: int, steps: int, warmup: int, data) -> dict:
    """Tokens/s and 6ND+attn FLOP/s of the runner's training step for one size."""
    cfg = size_config(size, seq_len=seq_len)
    spec = RunSpec(size, tokens=(steps + warmup) * batch * seq_len, lr=1e-3, batch_size=batch * seq_len,
                   seq_len=seq_len, corpus="pydoc")
    torch.manual_seed(0)
    model = GPT(cfg)
    optimizer = _optimizer(model, spec)
    model.train()

    def step(k: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = spec.lr_at(k)
        x, y = train_batch(data, batch, seq_len, spec.seed, k)
        loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()

    for k in range(warmup):
        step(k)
    start = time.perf_counter()
    for k in range(warmup, warmup + steps):
        step(k)
    elapsed = time.perf_counter() - start
    tokens_per_s = steps * batch * seq_len / elapsed
    per_token = cfg.flops_per_token("6ND+attn")
    return {"size": size, "shape": f"{cfg.d_model}x{cfg.n_layers}", "params": cfg.non_embedding_params,
            "flops_per_token": per_token, "tokens_per_s": tokens_per_s, "flops_per_s": tokens_per_s * per_token,
            "seconds": elapsed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES),
                        help="ladder names or d<d_model>l<n_layers> (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--matmul-n", type=int, default=1024, help="side of the timed square matmul")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    data = prepare_corpus("pydoc").split("train")
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, {threads} thread(s); "
          f"batch {args.batch}x{args.seq_len} tokens, {args.warmup} warm-up + {args.steps} timed steps; "
          f"load average {load[0]:.2f} at start")

    rates = matmul_rate(args.matmul_n)
    results = [train_rate(size, batch=args.batch, seq_len=args.seq_len, steps=args.steps, warmup=args.warmup,
                          data=data) for size in args.sizes]
    rates += matmul_rate(args.matmul_n)
    peak = statistics.median(rates)

    header = (f"{'size':>8} {'d x L':>7} {'N (non-emb)':>12} {'FLOPs/token':>12} {'tokens/s':>10} "
              f"{'GFLOP/s':>8} {'% matmul':>9} {'time (s)':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['size']:>8} {r['shape']:>7} {r['params']:>12,} {r['flops_per_token']:>12,} "
              f"{r['tokens_per_s']:>10,.0f} {r['flops_per_s'] / 1e9:>8.2f} {100 * r['flops_per_s'] / peak:>8.1f}% "
              f"{r['seconds']:>9.2f}")
    print(f"fp32 matmul {args.matmul_n}x{args.matmul_n}, {threads} thread(s): median {peak / 1e9:.1f} GFLOP/s "
          f"(range {min(rates) / 1e9:.1f}-{max(rates) / 1e9:.1f} over {len(rates)} timings before and after); "
          f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
