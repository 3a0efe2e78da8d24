"""The supervised stage: teach a freshly initialised model of the family the task's format and some skill.

RL needs a policy whose pass@1 is above 0, or every group's rewards are all 0 and no gradient flows. This
stage trains ``runners.model.GPT`` on teacher-forced (prompt, answer) pairs, cross-entropy on the answer
bytes only, with AdamW (β = 0.9, 0.95; weight decay 0.1 on matrices), a linear warmup over the first
``WARMUP_STEPS`` steps then a constant learning rate, gradient clipping at 1.0, and stops as soon as pass@1
on a fixed *validation* set (training-distribution problems, disjoint from the held-out test set), checked
every ``CHECK_EVERY`` steps, reaches ``target`` (or at ``max_steps``). Every size so starts RL from about the
same pass@1, with room to improve: differences in what RL then achieves are differences in RL efficiency,
not in the starting point. (Learning addition is abrupt — pass@1 jumps from ~0 to ~1 within a few hundred
steps — so a fixed step budget cannot leave every size of a ladder between 0.05 and 0.6.)

The result is cached as ``<out>/sft/<sft_id>.pt`` (weights and a summary) and shared by every RL run with
the same size, task, stage settings and seed; one worker trains it under its lock while any other waits,
then loads it. A partial stage is checkpointed every ``checkpoint_every`` steps and resumed; batches depend
only on (seed, step), so a resumed stage ends with the same weights. A damaged cache or checkpoint is moved
to ``quarantine/`` and the stage trained again.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..common.files import load_checkpoint, lock_key, save_checkpoint
from ..common.locks import claim
from ..common.training import adamw, clipped_step, resume
from ..model import GPT, size_config
from .task import AdditionTask, answer_logprob

WARMUP_STEPS = 50
CHECK_EVERY = 10
VALIDATION_PROBLEMS = 256
_STREAM_TRAIN, _STREAM_VALIDATION = 0, 4


def sft_id(size: str, task: AdditionTask, target: float, max_steps: int, batch: int, lr: float,
           seed: int) -> str:
    return f"{size}-{task.name}-sft{target:.3g}-max{max_steps}-b{batch}-lr{lr:.3g}-s{seed}"


def new_model(size: str, task: AdditionTask, seed: int) -> GPT:
    """A freshly initialised model of the family, context just long enough for the task."""
    torch.manual_seed(seed)
    return GPT(size_config(size, seq_len=task.seq_len))


@torch.no_grad()
def validation_pass_at_1(model: GPT, task: AdditionTask) -> float:
    """Exact pass@1 on the fixed validation problems (drawn like training problems, seed 0)."""
    prompts, answers = task.encode(task.sample(VALIDATION_PROBLEMS, 0, 0, stream=_STREAM_VALIDATION))
    device = next(model.parameters()).device
    prompts, answers = prompts.to(device), answers.to(device)
    model.eval()
    value = float(answer_logprob(model, prompts, answers).exp().mean())
    model.train()
    return value


def supervised_stage(size: str, task: AdditionTask, *, target: float, max_steps: int, batch: int, lr: float,
                     seed: int, out: str | Path, checkpoint_every: int = 500,
                     device: str = "cpu") -> tuple[GPT, dict]:
    """The SFT model for these settings (trained once, then loaded from the cache) and its summary.

    The summary holds ``sft_steps`` (steps taken), ``sft_tokens`` (prompt and answer bytes of every training
    example), ``sft_val_pass_at_1`` (validation pass@1 where it stopped), ``sft_reached_target`` and
    ``sft_wall_time`` [s].
    """
    name = sft_id(size, task, target, max_steps, batch, lr, seed)
    final, partial = Path(out) / "sft" / f"{name}.pt", Path(out) / "sft" / f"{name}.partial.pt"
    with claim(out, lock_key(final), wait=True):
        return _train_or_load(final, partial, size, task, target=target, max_steps=max_steps, batch=batch,
                              lr=lr, seed=seed, out=out, checkpoint_every=checkpoint_every, device=device)


def _train_or_load(final: Path, partial: Path, size: str, task: AdditionTask, *, target: float, max_steps: int,
                   batch: int, lr: float, seed: int, out: str | Path, checkpoint_every: int,
                   device: str) -> tuple[GPT, dict]:
    model = new_model(size, task, seed).to(device)
    saved = load_checkpoint(final, out, map_location=device)
    if saved is not None:
        model.load_state_dict(saved["model"])
        return model, saved["summary"]

    optimizer = adamw(model, lr)
    state = {"step": 0, "wall_time": 0.0, "val_pass": validation_pass_at_1(model, task)}
    state = resume(partial, out, model, optimizer, state, map_location=device)
    step, val_pass = state["step"], state["val_pass"]
    started = time.perf_counter() - state["wall_time"]
    model.train()
    while step < max_steps and val_pass < target:
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / WARMUP_STEPS)
        prompts, answers = task.encode(task.sample(batch, seed, step, stream=_STREAM_TRAIN))
        answers = answers.to(device)
        sequence = torch.cat([prompts.to(device), answers], dim=1)
        logits = model(sequence[:, :-1])[:, task.prompt_len - 1 :]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), answers.reshape(-1))
        clipped_step(loss, model, optimizer)
        step += 1
        if step % CHECK_EVERY == 0:
            val_pass = validation_pass_at_1(model, task)
        if step % checkpoint_every == 0 and step < max_steps:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "wall_time": time.perf_counter() - started, "val_pass": val_pass}, partial)
    summary = {"sft_steps": step, "sft_tokens": step * batch * task.seq_len, "sft_val_pass_at_1": val_pass,
               "sft_reached_target": bool(val_pass >= target), "sft_wall_time": time.perf_counter() - started}
    save_checkpoint({"model": model.state_dict(), "summary": summary}, final)
    partial.unlink(missing_ok=True)
    return model, summary
