"""Train one run and log its evaluations as rows of the runs table.

One run = (size, token budget D, peak lr, batch size in tokens, schedule, warmup, seed). AdamW
(β = 0.9, 0.95; weight decay 0.1 on matrices), linear warmup then cosine decay to 10% of the peak at the end
of the token budget (or WSD: warmup, constant, linear decay to 0 over the last 20%), gradient clipping at 1.0.

The validation loss is measured on a fixed set of windows at steps 32, 64, 128, … and at the last step; each
evaluation is one row. A run that diverges (non-finite loss, or training loss far above its start) stops
and all its rows carry ``status="diverged"``: those rows are data for learning-rate laws, not errors.

A checkpoint (model, optimiser, step, rows so far) is written atomically every ``checkpoint_every`` steps;
a killed run relaunched with the same spec resumes from it and ends with exactly the rows of an
uninterrupted run (batches depend only on (seed, step)). Only the timing columns (``TIMING_COLUMNS``) differ.
The finished run's rows are written atomically to ``<out>/parts/<run_id>.parquet``; a run whose part exists is
skipped.

Each evaluation row also carries: the built-in tasks' ``task/<name>/{acc,bpb,n_choices}`` (``runners.tasks``;
``RunSpec.tasks``, off by default); data repetition (``unique_tokens`` in the training split, ``epochs`` =
tokens / unique_tokens, ``tokenizer``); throughput (``tokens_per_s``: training tokens per second since the
previous evaluation, evaluation time excluded; ``mfu`` = tokens_per_s · FLOPs per token ÷ (world size ·
``peak_flops``), the peak per device given by ``RunSpec.peak_flops`` or else measured once per process by
``measure_peak_flops``); ``eval_time`` and ``task_eval_time`` (seconds of this evaluation, and of its tasks).

Speed options (none changes a run's id or, beyond float rounding, its losses): ``micro_batch_size`` (tokens per
device per forward pass; gradients are accumulated up to the step's batch), ``compile`` (``torch.compile``),
and on CUDA only ``tf32`` and ``bf16`` (autocast). Data parallel under ``torchrun``: every rank trains on its
own disjoint slice of each global batch; rank 0 alone writes checkpoints and parts.

Usage::

    python -m runners.train --size n10k --tokens 2e6 --lr 1e-2 --batch-size 2048 --out sweeps/demo --tasks default
    torchrun --standalone --nproc-per-node 4 -m runners.train --size d512l8 --tokens 2e8 --lr 3e-3 \
        --batch-size 262144 --micro-batch-size 32768 --seq-len 1024 --out sweeps/gpu --device cuda --bf16 --tf32
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from scalefit.runs import write_runs

from .common.files import save_checkpoint
from .data import TOKEN_DTYPES, TOKENS_PREFIX, eval_windows, prepare_corpus, train_batch
from .model import GPT, size_config
from .tasks import DEFAULT_TASKS, build_tasks, check_task_names, score_tasks

FLOPS_CONVENTION = "6ND+attn"
DIVERGENCE_MARGIN = 1.0  # nats above ln(vocab), the loss of a uniform guess
# Columns that measure time: they differ between two runs of the same spec (everything else is identical).
TIMING_COLUMNS = ("wall_time", "tokens_per_s", "mfu", "peak_flops", "eval_time", "task_eval_time")


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
    # What is logged (not part of the run id).
    tasks: tuple[str, ...] = ()              # built-in tasks scored at every evaluation; "default" = all
    peak_flops: float | None = None          # per device, for MFU; None: measured once per process
    # Pre-tokenized corpora ("tokens:/path/file.bin").
    vocab_size: int | None = None            # required for token files; byte corpora have 256
    token_dtype: str = "uint16"
    tokenizer: str | None = None             # the token file's tokenizer, for the runs table
    # Speed options (not part of the run id: they change losses by float rounding at most).
    micro_batch_size: int | None = None      # tokens per device per forward pass; None: the rank's whole share
    compile: bool = False                    # torch.compile the model
    tf32: bool = False                       # CUDA only: TF32 matmuls
    bf16: bool = False                       # CUDA only: bfloat16 autocast

    def __post_init__(self) -> None:
        tasks = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks)
        object.__setattr__(self, "tasks", DEFAULT_TASKS if tasks == ("default",) else tasks)
        check_task_names(self.tasks)
        if self.batch_size % self.seq_len:
            raise ValueError(f"batch_size={self.batch_size} tokens is not a multiple of seq_len={self.seq_len}")
        if self.schedule not in ("cosine", "wsd"):
            raise ValueError(f"unknown schedule {self.schedule!r}; use 'cosine' or 'wsd'")
        if self.micro_batch_size is not None and (self.micro_batch_size <= 0 or self.micro_batch_size % self.seq_len
                                                  or self.batch_size % self.micro_batch_size):
            raise ValueError(f"micro_batch_size={self.micro_batch_size} tokens must be a multiple of "
                             f"seq_len={self.seq_len} that divides batch_size={self.batch_size}")
        if self.token_dtype not in TOKEN_DTYPES:
            raise ValueError(f"token_dtype {self.token_dtype!r} is not one of {TOKEN_DTYPES}")
        if self.corpus.startswith(TOKENS_PREFIX):
            if not self.vocab_size:
                raise ValueError(f"corpus {self.corpus!r} is a token file: declare its vocab_size")
            if self.tasks:
                raise ValueError("the built-in tasks are byte-level (bits per byte); set tasks = [] for a token "
                                 "file corpus")
        elif self.vocab_size not in (None, 256):
            raise ValueError(f"corpus {self.corpus!r} is byte-level (vocab 256), not vocab_size={self.vocab_size}")
        if self.peak_flops is not None and not self.peak_flops > 0:
            raise ValueError(f"peak_flops={self.peak_flops} must be positive (FLOP/s per device) or unset")

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


@dataclass(frozen=True)
class Distributed:
    rank: int
    local_rank: int
    world: int
    device: str


def _distributed(device: str) -> Distributed:
    """Rank, local rank and world size from torchrun's environment (else one process) and this rank's device.

    Under torchrun with CUDA every rank takes the GPU of its local rank (``torch.cuda.set_device``) and the
    NCCL backend; on CPU the gloo backend.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Distributed(rank, local_rank, world, device)


_PEAK_CACHE: dict[tuple[str, str, int], float] = {}


def measure_peak_flops(device: str = "cpu", dtype: torch.dtype = torch.float32, seconds: float = 0.3) -> float:
    """Dense matmul FLOP/s of this process on ``device`` (n×n by n×n, 2n³ FLOPs each), measured once and cached.

    n = 1024 on CPU (with the current torch thread count), 8192 on CUDA; the best of repeated timings over
    ``seconds``. On a shared CPU the figure moves with the load, and so does MFU: give ``peak_flops`` to pin it.
    """
    key = (device, str(dtype), torch.get_num_threads())
    if key not in _PEAK_CACHE:
        n = 8192 if device.startswith("cuda") else 1024
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        best, spent = math.inf, 0.0
        for i in range(1000):
            _synchronize(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _synchronize(device)
            elapsed = time.perf_counter() - start
            if i:  # the first product warms up
                best, spent = min(best, elapsed), spent + elapsed
            if spent > seconds:
                break
        _PEAK_CACHE[key] = 2.0 * n**3 / best
    return _PEAK_CACHE[key]


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _check_speed_options(spec: RunSpec, device: str) -> None:
    cuda_only = [name for name in ("tf32", "bf16") if getattr(spec, name)]
    if cuda_only and not device.startswith("cuda"):
        raise ValueError(f"{' and '.join(cuda_only)} work on CUDA only; run with --device cuda or turn "
                         f"{'them' if len(cuda_only) > 1 else 'it'} off (device is {device!r})")


def _optimizer(model: GPT, spec: RunSpec) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.95), eps=1e-8)


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: tuple[torch.Tensor, torch.Tensor], device: str,
             autocast: bool = False) -> float:
    """Mean loss (nats per token) on the fixed validation windows."""
    model.eval()
    x_all, y_all = windows
    total = 0.0
    for i in range(0, len(x_all), 64):
        x, y = x_all[i:i + 64].to(device), y_all[i:i + 64].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            total += float(model(x, y)) * len(x)
    model.train()
    return total / len(x_all)


def _to_device(batch: tuple[torch.Tensor, ...], device: str) -> tuple[torch.Tensor, ...]:
    """Host batch to the device: through pinned memory, asynchronously, on CUDA."""
    if device.startswith("cuda"):
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in batch)
    return tuple(t.to(device) for t in batch)


def train(spec: RunSpec, out: str | Path, *, device: str = "cpu", threads: int | None = None,
          corpus_cache: str | Path | None = None) -> Path:
    """Train ``spec`` (resuming from its checkpoint if one exists); return the path of its rows."""
    out = Path(out)
    part = part_path(out, spec)
    if part.exists():
        return part
    if threads:
        torch.set_num_threads(threads)
    dist = _distributed(device)
    rank, world, device = dist.rank, dist.world, dist.device
    _check_speed_options(spec, device)
    seqs_per_step = spec.batch_size // spec.seq_len
    if seqs_per_step % world:
        raise ValueError(f"{seqs_per_step} sequences per step do not split over {world} ranks")
    rank_seqs = seqs_per_step // world
    micro_seqs = min(rank_seqs, (spec.micro_batch_size or spec.batch_size) // spec.seq_len)
    if rank_seqs % micro_seqs:
        raise ValueError(f"micro_batch_size={spec.micro_batch_size} tokens ({micro_seqs} sequences) does not "
                         f"divide a rank's {rank_seqs} sequences per step")
    n_micro = rank_seqs // micro_seqs
    if spec.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(spec.seed)
    corpus = prepare_corpus(spec.corpus, corpus_cache, vocab_size=spec.vocab_size, token_dtype=spec.token_dtype,
                            tokenizer=spec.tokenizer)
    train_data, val_split = corpus.split("train"), corpus.split("val")
    val_windows = eval_windows(val_split, spec.eval_windows, spec.seq_len)
    tasks = build_tasks(spec.tasks, val_split, spec.seq_len)
    unique_tokens = len(train_data)
    if spec.tokens > unique_tokens and rank == 0:
        print(f"warning: {spec.run_id} repeats its data: {spec.tokens:,} tokens over {unique_tokens:,} unique "
              f"training tokens ({spec.tokens / unique_tokens:.2f} epochs)", file=sys.stderr)
    cfg = size_config(spec.size, seq_len=spec.seq_len, vocab_size=corpus.vocab_size)
    model = GPT(cfg).to(device)
    optimizer = _optimizer(model, spec)
    step_model: torch.nn.Module = torch.compile(model) if spec.compile else model
    if world > 1:
        device_ids = [dist.local_rank] if device.startswith("cuda") else None
        step_model = torch.nn.parallel.DistributedDataParallel(step_model, device_ids=device_ids)

    ckpt = checkpoint_path(out, spec)
    state = {"step": 0, "rows": [], "wall_time": 0.0, "train_loss_ema": None, "train_time": 0.0,
             "last_eval": (0, 0.0)}
    if ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        state = {**state, **saved}

    n_params, n_embedding = cfg.non_embedding_params, cfg.embedding_params
    flops_per_token = cfg.flops_per_token(FLOPS_CONVENTION)
    divergence_limit = math.log(cfg.vocab_size) + DIVERGENCE_MARGIN
    eval_steps = set(spec.eval_steps())
    step, rows, ema = state["step"], state["rows"], state["train_loss_ema"]
    train_time, last_eval = state["train_time"], tuple(state["last_eval"])
    started = time.perf_counter() - state["wall_time"]
    peak = spec.peak_flops or measure_peak_flops(device, torch.bfloat16 if spec.bf16 else torch.float32)
    precision = "bf16" if spec.bf16 else "tf32" if spec.tf32 else "fp32"
    status = "ok"

    def row() -> dict:
        nonlocal last_eval
        _synchronize(device)
        eval_start = time.perf_counter()
        loss = evaluate(model, val_windows, device, spec.bf16)
        task_start = time.perf_counter()
        task_columns = score_tasks(model, tasks, device, spec.bf16)
        _synchronize(device)
        eval_end = time.perf_counter()
        tokens = step * spec.batch_size
        seconds = train_time - last_eval[1]
        tokens_per_s = (tokens - last_eval[0]) / seconds if seconds > 0 else math.nan
        last_eval = (tokens, train_time)
        return {
            "run_id": spec.run_id, "family": spec.family, "size": spec.size,
            "params": n_params, "params_embedding": n_embedding, "params_convention": "non_embedding",
            "tokens": tokens, "flops": float(flops_per_token) * tokens,
            "flops_convention": FLOPS_CONVENTION, "token_budget": spec.tokens,
            "lr": spec.lr, "batch_size": spec.batch_size, "batch_seqs": seqs_per_step,
            "seq_len": spec.seq_len, "vocab_size": cfg.vocab_size, "n_layers": cfg.n_layers,
            "d_model": cfg.d_model, "n_heads": cfg.n_heads, "schedule": spec.schedule,
            "warmup": spec.warmup_steps, "step": step, "total_steps": spec.total_steps,
            "loss": loss, "train_loss": ema, "split": "val", "seed": spec.seed, "corpus": corpus.name,
            "corpus_sha256": corpus.sha256, "tokenizer": corpus.tokenizer, "unique_tokens": unique_tokens,
            "epochs": tokens / unique_tokens, "world_size": world, "micro_batch_size": micro_seqs * spec.seq_len,
            "precision": precision, "compiled": spec.compile,
            **task_columns,
            "tokens_per_s": tokens_per_s, "mfu": tokens_per_s * flops_per_token / (world * peak),
            "peak_flops": peak, "eval_time": eval_end - eval_start, "task_eval_time": eval_end - task_start,
            "wall_time": eval_end - started,
        }

    model.train()
    _synchronize(device)
    tick = time.perf_counter()
    while step < spec.total_steps:
        for group in optimizer.param_groups:
            group["lr"] = spec.lr_at(step)
        x, y = _to_device(train_batch(train_data, seqs_per_step, spec.seq_len, spec.seed, step,
                                      rows=slice(rank * rank_seqs, (rank + 1) * rank_seqs)), device)
        optimizer.zero_grad(set_to_none=True)
        value = torch.zeros((), device=device)
        for k in range(n_micro):
            # DDP all-reduces gradients on the last micro-batch's backward only.
            sync = contextlib.nullcontext() if world == 1 or k == n_micro - 1 else step_model.no_sync()
            with sync, torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=spec.bf16):
                part_x, part_y = x[k * micro_seqs:(k + 1) * micro_seqs], y[k * micro_seqs:(k + 1) * micro_seqs]
                loss = step_model(part_x, part_y) / n_micro  # equal micro-batches: the mean of their means
                loss.backward()
            value += loss.detach().float()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if world > 1:  # the global batch's loss, identical on every rank, so that all ranks stop together
            torch.distributed.all_reduce(value)
            value = value / world
        value = value.item()  # synchronises the device, so the step's time is all counted
        now = time.perf_counter()
        train_time, tick = train_time + now - tick, now
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        diverged = not math.isfinite(value) or (step > spec.warmup_steps and ema > divergence_limit)
        if diverged or step in eval_steps:
            rows.append(row())
            tick = time.perf_counter()
        if diverged:
            status = "diverged"
            break
        if step % spec.checkpoint_every == 0 and step < spec.total_steps and rank == 0:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "rows": rows, "wall_time": time.perf_counter() - started, "train_loss_ema": ema,
                             "train_time": train_time, "last_eval": last_eval}, ckpt)
            tick = time.perf_counter()
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


def _task_list(text: str) -> tuple[str, ...]:
    return tuple(name for name in text.split(",") if name)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m runners.train`` (and of each rank under ``torchrun``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python -m runners.train --size n10k --tokens 2e6 "
                                            "--lr 1e-2 --batch-size 2048 --out sweeps/demo")
    parser.add_argument("--size", required=True, help="ladder name (n10k … n5m) or d<d_model>l<n_layers>")
    parser.add_argument("--tokens", type=float, required=True, help="token budget D")
    parser.add_argument("--lr", type=float, required=True, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=2048, help="tokens per optimiser step (global)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--schedule", choices=("cosine", "wsd"), default="cosine")
    parser.add_argument("--warmup-frac", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", default="gpt-byte", help="model family name, the start of the run id")
    parser.add_argument("--corpus", default="shakespeare",
                        help="shakespeare, pydoc, auto, or tokens:/path/file.bin (a flat token file)")
    parser.add_argument("--vocab-size", type=int, help="vocabulary size of a token file corpus (required there)")
    parser.add_argument("--token-dtype", choices=TOKEN_DTYPES, default="uint16", help="token file dtype")
    parser.add_argument("--tokenizer", help="name of the token file's tokenizer, for the runs table")
    parser.add_argument("--tasks", type=_task_list, default=(), metavar="NAMES",
                        help=f"built-in tasks scored at every evaluation, comma-separated "
                             f"({', '.join(DEFAULT_TASKS)}), or 'default' for all (default: none)")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--out", required=True, help="sweep folder (parts/ and checkpoints/ go under it)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: each rank's local GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--micro-batch-size", type=int,
                        help="tokens per device per forward pass (gradient accumulation); default: all")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls (CUDA only)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA only)")
    parser.add_argument("--peak-flops", type=float,
                        help="peak FLOP/s of one device, for MFU (default: measured by a matmul benchmark)")
    return parser


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The run a parsed command line describes (ValueError for settings that do not fit together)."""
    return RunSpec(args.size, int(args.tokens), args.lr, args.batch_size, args.seq_len, args.schedule,
                   args.warmup_frac, args.seed, corpus=args.corpus, checkpoint_every=args.checkpoint_every,
                   tasks=args.tasks, peak_flops=args.peak_flops, vocab_size=args.vocab_size,
                   token_dtype=args.token_dtype, tokenizer=args.tokenizer, micro_batch_size=args.micro_batch_size,
                   compile=args.compile, tf32=args.tf32, bf16=args.bf16, family=args.family)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        spec = spec_from_args(args)
        _check_speed_options(spec, args.device)
    except ValueError as err:
        parser.error(str(err))
    try:
        print(train(spec, args.out, device=args.device, threads=args.threads))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
