"""Train one run and log its evaluations as rows of the runs table.

One run = (size, token budget D, peak lr, batch size in tokens, schedule, warmup, seed). AdamW
(β = 0.9, 0.95; weight decay 0.1 on matrices), linear warmup then cosine decay to 10% of the peak at the end
of the token budget (or WSD: warmup, constant, linear decay to 0 over the last 20%), gradient clipping at 1.0.

The validation loss is measured on a fixed set of windows at steps 32, 64, 128, … and at the last step; each
evaluation is one row. A run that diverges (non-finite loss, or training loss far above its start) stops
and all its rows carry ``status="diverged"``: those rows are data for learning-rate laws, not errors.

A checkpoint (model, optimiser, step, rows so far) is written atomically every ``checkpoint_every`` steps;
a killed run relaunched with the same spec resumes from it and ends with exactly the rows of an
uninterrupted run (batches depend only on (seed, step)). Only ``wall_time`` differs. The finished run's rows
are written atomically to ``<out>/parts/<run_id>.parquet``; a run whose part exists is skipped.

Usage::

    python -m runners.train --size n10k --tokens 2e6 --lr 1e-2 --batch-size 2048 --out sweeps/demo
    torchrun --nproc-per-node 4 -m runners.train --size d1024l16 --tokens 2e9 ... --device cuda   # DDP
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from runners.data import eval_windows, prepare_corpus, train_batch
from runners.model import GPT, size_config
from scalefit.runs import write_runs

FLOPS_CONVENTION = "6ND+attn"
DIVERGENCE_MARGIN = 1.0  # nats above ln(vocab), the loss of a uniform guess


@dataclass(frozen=True)
class RunSpec:
    size: str
    tokens: int
    lr: float
    batch_size: int = 2048
    seq_len: int = 128
    schedule: str = "cosine"
    warmup_frac: float = 0.05
    seed: int = 0
    family: str = "gpt-byte"
    corpus: str = "shakespeare"
    eval_windows: int = 256
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        if self.batch_size % self.seq_len:
            raise ValueError(f"batch_size={self.batch_size} tokens is not a multiple of seq_len={self.seq_len}")
        if self.schedule not in ("cosine", "wsd"):
            raise ValueError(f"unknown schedule {self.schedule!r}; use 'cosine' or 'wsd'")

    @property
    def run_id(self) -> str:
        return (f"{self.family}-{self.size}-D{self.tokens:.3g}-lr{self.lr:.3g}-bs{self.batch_size}"
                f"-{self.schedule}-s{self.seed}").replace("+", "")

    @property
    def total_steps(self) -> int:
        return math.ceil(self.tokens / self.batch_size)

    @property
    def warmup_steps(self) -> int:
        return max(1, round(self.warmup_frac * self.total_steps))

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "wsd":
            decay_start = int(0.8 * self.total_steps)
            if step < decay_start:
                return self.lr
            return self.lr * (self.total_steps - step) / (self.total_steps - decay_start)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return self.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def eval_steps(self) -> list[int]:
        steps = [2**k for k in range(5, 40) if 2**k < self.total_steps]
        return steps + [self.total_steps]


def part_path(out: Path, spec: RunSpec) -> Path:
    return Path(out) / "parts" / f"{spec.run_id}.parquet"


def checkpoint_path(out: Path, spec: RunSpec) -> Path:
    return Path(out) / "checkpoints" / f"{spec.run_id}.pt"


def _distributed() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return int(os.environ.get("RANK", "0")), world


def _optimizer(model: GPT, spec: RunSpec) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.95), eps=1e-8)


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: tuple[torch.Tensor, torch.Tensor], device: str) -> float:
    model.eval()
    x_all, y_all = windows
    total = 0.0
    for i in range(0, len(x_all), 64):
        x, y = x_all[i:i + 64].to(device), y_all[i:i + 64].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            total += float(model(x, y)) * len(x)
    model.train()
    return total / len(x_all)


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(spec: RunSpec, out: str | Path, *, device: str = "cpu", threads: int | None = None,
          corpus_cache: str | Path | None = None) -> Path:
    """Train ``spec`` (resuming from its checkpoint if one exists); return the path of its rows."""
    out = Path(out)
    part = part_path(out, spec)
    if part.exists():
        return part
    if threads:
        torch.set_num_threads(threads)
    rank, world = _distributed()
    if spec.batch_size // spec.seq_len % world:
        raise ValueError(f"{spec.batch_size // spec.seq_len} sequences per step do not split over {world} ranks")
    torch.manual_seed(spec.seed)
    corpus = prepare_corpus(spec.corpus, corpus_cache)
    train_data, val_windows = corpus.split("train"), eval_windows(corpus.split("val"), spec.eval_windows,
                                                                  spec.seq_len)
    cfg = size_config(spec.size, seq_len=spec.seq_len)
    model = GPT(cfg).to(device)
    optimizer = _optimizer(model, spec)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    ckpt = checkpoint_path(out, spec)
    state = {"step": 0, "rows": [], "wall_time": 0.0, "train_loss_ema": None}
    if ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        state = saved

    n_params, n_embedding = cfg.non_embedding_params, cfg.embedding_params
    flops_per_token = cfg.flops_per_token(FLOPS_CONVENTION)
    divergence_limit = math.log(cfg.vocab_size) + DIVERGENCE_MARGIN
    eval_steps = set(spec.eval_steps())
    seqs_per_step = spec.batch_size // spec.seq_len
    step, rows, ema = state["step"], state["rows"], state["train_loss_ema"]
    started = time.perf_counter() - state["wall_time"]
    status = "ok"

    def row(loss: float) -> dict:
        return {
            "run_id": spec.run_id, "family": spec.family, "size": spec.size,
            "params": n_params, "params_embedding": n_embedding, "params_convention": "non_embedding",
            "tokens": step * spec.batch_size, "flops": float(flops_per_token) * step * spec.batch_size,
            "flops_convention": FLOPS_CONVENTION, "token_budget": spec.tokens,
            "lr": spec.lr, "batch_size": spec.batch_size, "batch_seqs": seqs_per_step,
            "seq_len": spec.seq_len, "vocab_size": cfg.vocab_size, "n_layers": cfg.n_layers,
            "d_model": cfg.d_model, "n_heads": cfg.n_heads, "schedule": spec.schedule,
            "warmup": spec.warmup_steps, "step": step, "total_steps": spec.total_steps,
            "loss": loss, "train_loss": ema, "split": "val", "seed": spec.seed, "corpus": corpus.name,
            "corpus_sha256": corpus.sha256, "wall_time": time.perf_counter() - started,
        }

    model.train()
    while step < spec.total_steps:
        for group in optimizer.param_groups:
            group["lr"] = spec.lr_at(step)
        x, y = train_batch(train_data, seqs_per_step, spec.seq_len, spec.seed, step)
        x, y = x[rank::world].to(device), y[rank::world].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            loss = ddp_model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        value = loss.detach().clone()
        if world > 1:  # the global batch's loss, identical on every rank, so that all ranks stop together
            torch.distributed.all_reduce(value)
            value = value / world
        value = value.item()
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        if not math.isfinite(value) or (step > spec.warmup_steps and ema > divergence_limit):
            status = "diverged"
            rows.append(row(evaluate(model, val_windows, device)))
            break
        if step in eval_steps:
            rows.append(row(evaluate(model, val_windows, device)))
        if step % spec.checkpoint_every == 0 and step < spec.total_steps and rank == 0:
            _save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "step": step, "rows": rows, "wall_time": time.perf_counter() - started,
                                    "train_loss_ema": ema})
    if rank == 0:
        table = pd.DataFrame(rows)
        table["status"] = status
        table["device"] = device
        write_runs(table, part)
        ckpt.unlink(missing_ok=True)
    return part


def spec_from_dict(config: dict) -> RunSpec:
    fields = RunSpec.__dataclass_fields__
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ValueError(f"unknown run setting(s) {unknown}; known: {sorted(fields)}")
    return RunSpec(**{k: (int(float(v)) if k == "tokens" else v) for k, v in config.items()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python -m runners.train --size n10k --tokens 2e6 "
                                            "--lr 1e-2 --batch-size 2048 --out sweeps/demo")
    parser.add_argument("--size", required=True, help="ladder name (n10k … n5m) or d<d_model>l<n_layers>")
    parser.add_argument("--tokens", type=float, required=True, help="token budget D")
    parser.add_argument("--lr", type=float, required=True, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=2048, help="tokens per optimiser step")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--schedule", choices=("cosine", "wsd"), default="cosine")
    parser.add_argument("--warmup-frac", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", default="shakespeare", help="shakespeare, pydoc or auto")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--out", required=True, help="sweep folder (parts/ and checkpoints/ go under it)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    spec = RunSpec(args.size, int(args.tokens), args.lr, args.batch_size, args.seq_len, args.schedule,
                   args.warmup_frac, args.seed, corpus=args.corpus, checkpoint_every=args.checkpoint_every)
    print(train(spec, args.out, device=args.device, threads=args.threads))


if __name__ == "__main__":
    main()

