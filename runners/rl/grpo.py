"""RL post-training with group-relative policy gradients (GRPO) on a verifiable task; one row per evaluation.

One RL step (Shao et al. 2024, "DeepSeekMath", §4.1, with one gradient step per batch):

1. draw ``prompts_per_step`` training problems (seeded by (seed, step)) and sample ``group_size`` answers
   to each from the current policy at temperature 1;
2. reward each answer 1 if it matches the reference exactly, else 0 (:mod:`runners.rl.task`);
3. group-relative advantage ``A_i = (r_i − mean_g r) / (std_g r + 1e-6)`` (or ``r_i − mean_g r`` with
   ``scale_rewards = false``, Liu et al. 2025, "Dr. GRPO");
4. loss ``−Σ_{i,t} A_i log π(y_it) / Σ_{i,t} 1 + β · Σ_{i,t} KL̂_it / Σ_{i,t} 1`` over response tokens up to
   the terminator. Each batch is used for one gradient step, so the PPO ratio is 1 and its clipping never
   acts; the surrogate's gradient is exactly the policy gradient.

The optional KL penalty (``kl_coef`` β > 0) pulls the policy towards the initial (SFT) policy π_ref with a
per-token estimator of KL(π ‖ π_ref) on the sampled tokens, ``log ρ = log π_ref − log π`` (Schulman 2020,
"Approximating KL Divergence"): ``k1 = −log ρ``, ``k2 = (log ρ)²/2``, ``k3 = ρ − 1 − log ρ`` (GRPO's choice).

Evaluation, at RL steps 0, 1, 2, 4, … below ``eval_every``, every ``eval_every`` steps and at the end, on the
task's fixed held-out problems:

``pass_at_1``   exact pass@1 at temperature 1: mean over problems of P(sampled answer = reference), the
                product of the reference tokens' probabilities (no sampling noise);
``greedy_acc``  fraction solved by greedy decoding;
``answer_nll``  mean cross-entropy of the reference answers [nats/byte];
``kl``          KL(π ‖ π_ref) per answer [nats]: one seeded sample per problem, the exact per-token KL of the
                next-byte distributions summed along it (an unbiased estimate of the sequence KL);
``mean_reward`` mean training reward of the RL batches since the previous evaluation.

Accounting: ``samples`` = answers sampled so far (steps × prompts × group), ``prompts`` = problems drawn,
``tokens`` = samples × (prompt + answer bytes), every sampled sequence counted once, and
``flops = 6 · N · tokens`` (``flops_convention = "6ND"``, D = tokens processed by the RL training passes;
the sampling passes and the reference model are not counted), with N the non-embedding parameters.

Every row of a run carries ``status``: ``ok``, or ``sft_failed`` when the supervised stage ended at
``sft_max_steps`` short of its target (RL still runs, but from a policy with little to reinforce; the
analysis drops such runs and says so).

A checkpoint (policy, optimiser, step, rows) is written atomically every ``checkpoint_every`` steps; a
killed run relaunched with the same spec resumes and ends with exactly the rows of an uninterrupted one
(all randomness is keyed on (seed, step)); only ``wall_time`` differs. Finished rows go to
``<out>/parts/<run_id>.parquet``; a run whose part exists is skipped.

Usage::

    python -m runners.rl.grpo --size n10k --rl-steps 40 --out sweeps/rl-demo
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..common import files
from ..common.files import save_checkpoint, write_table
from ..common.training import adamw, clipped_step, resume
from .sft import supervised_stage
from .task import AdditionTask, answer_logprob, generate, response_mask, token_logprobs

KL_ESTIMATORS = ("k1", "k2", "k3")
FLOPS_CONVENTION = "6ND"
_STREAM_SAMPLE, _STREAM_EVAL = 2, 3  # generator streams, apart from the task's problem streams


@dataclass(frozen=True)
class RLSpec:
    """One RL run: a model size, its supervised stage, and the GRPO settings.

    ``digits``, ``reverse``, ``n_heldout`` define the task (:class:`~runners.rl.task.AdditionTask`);
    ``sft_*`` the supervised stage (:func:`~runners.rl.sft.supervised_stage`: stop at validation pass@1
    ``sft_target`` or after ``sft_max_steps`` steps of ``sft_batch`` problems at peak lr ``sft_lr``); then
    ``rl_steps`` GRPO steps of ``prompts_per_step`` problems × ``group_size`` answers at lr ``rl_lr``
    (AdamW, β = 0.9, 0.95, no weight decay, gradient clipping at 1.0), KL penalty ``kl_coef`` with
    estimator ``kl_estimator``, advantages divided by the group's std when ``scale_rewards``.
    """

    size: str
    seed: int = 0
    digits: int = 3
    reverse: bool = True
    n_heldout: int = 256
    sft_target: float = 0.3
    sft_max_steps: int = 5000
    sft_batch: int = 64
    sft_lr: float = 1e-2
    rl_steps: int = 300
    prompts_per_step: int = 32
    group_size: int = 8
    rl_lr: float = 3e-4
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    scale_rewards: bool = True
    eval_every: int = 10
    checkpoint_every: int = 50
    family: str = "gpt-byte"

    def __post_init__(self) -> None:
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"unknown kl_estimator {self.kl_estimator!r}; use one of {KL_ESTIMATORS}")
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size}: group-relative advantages need >= 2 answers")
        if min(self.rl_steps, self.prompts_per_step, self.eval_every, self.checkpoint_every) < 1:
            raise ValueError("rl_steps, prompts_per_step, eval_every and checkpoint_every must be >= 1")

    @property
    def task(self) -> AdditionTask:
        return AdditionTask(self.digits, self.reverse, self.n_heldout)

    @property
    def run_id(self) -> str:
        kl = f"-kl{self.kl_coef:.3g}{self.kl_estimator}" if self.kl_coef else ""
        return (f"{self.family}-rl-{self.task.name}-{self.size}-sft{self.sft_target:.3g}lr{self.sft_lr:.3g}"
                f"-g{self.group_size}-p{self.prompts_per_step}-lr{self.rl_lr:.3g}{kl}-s{self.seed}")

    def eval_steps(self) -> list[int]:
        early = [0] + [2**k for k in range(30) if 2**k < self.eval_every]
        regular = range(self.eval_every, self.rl_steps, self.eval_every)
        return sorted({*early, *regular, self.rl_steps})


def part_path(out: str | Path, spec: RLSpec) -> Path:
    return files.part_path(out, spec.run_id)


def checkpoint_path(out: str | Path, spec: RLSpec) -> Path:
    return files.checkpoint_path(out, spec.run_id)


def _generator(*key: int) -> torch.Generator:
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from sampled tokens' log-probs (Schulman 2020's k1, k2, k3)."""
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    return torch.exp(log_ratio) - 1.0 - log_ratio


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool) -> torch.Tensor:
    """GRPO's group-relative advantages of rewards laid out group by group, (n,)."""
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(dim=1, unbiased=False, keepdim=True) + 1e-6)
    return centred.reshape(-1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, reference: torch.nn.Module, task: AdditionTask, seed: int,
             step: int) -> dict[str, float]:
    """Held-out pass@1 (exact), greedy accuracy, answer cross-entropy and KL to the reference policy."""
    model.eval()
    device = next(model.parameters()).device
    prompts, answers = (t.to(device) for t in task.encode(task.heldout))
    logp = answer_logprob(model, prompts, answers)
    greedy = generate(model, prompts, task.answer_len, temperature=0)
    samples = generate(model, prompts, task.answer_len, generator=_generator(seed, step, _STREAM_EVAL))
    sequence = torch.cat([prompts, samples], dim=1)[:, :-1]
    log_p = F.log_softmax(model(sequence)[:, task.prompt_len - 1 :].float(), dim=-1)
    log_q = F.log_softmax(reference(sequence)[:, task.prompt_len - 1 :].float(), dim=-1)
    kl_tokens = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    model.train()
    return {
        "pass_at_1": float(logp.exp().mean()),
        "greedy_acc": float(task.reward(greedy, answers).mean()),
        "answer_nll": float(-logp.mean() / task.answer_len),
        "kl": float((kl_tokens * response_mask(samples)).sum(dim=1).mean()),
    }


def train_rl(spec: RLSpec, out: str | Path, *, device: str = "cpu", threads: int | None = None) -> Path:
    """Run ``spec`` (its supervised stage first, resuming from checkpoints); return the path of its rows.

    ``device`` is where the policy trains (``cuda`` or ``cuda:<i>`` on a GPU); the random draws stay on the
    CPU, keyed on (seed, step), so a resumed run repeats an uninterrupted one on any device.
    """
    out = Path(out)
    part = part_path(out, spec)
    if part.exists():
        return part
    if threads:
        torch.set_num_threads(threads)
    task = spec.task
    policy, sft = supervised_stage(spec.size, task, target=spec.sft_target, max_steps=spec.sft_max_steps,
                                   batch=spec.sft_batch, lr=spec.sft_lr, seed=spec.seed, out=out,
                                   device=device)
    reference = copy.deepcopy(policy).requires_grad_(False).eval()
    optimizer = adamw(policy, spec.rl_lr, weight_decay=0.0)
    ckpt = checkpoint_path(out, spec)
    state = {"step": 0, "rows": [], "wall_time": 0.0, "reward_sum": 0.0, "reward_count": 0}
    state = resume(ckpt, out, policy, optimizer, state, map_location=device)

    cfg = policy.cfg
    n_params = cfg.non_embedding_params
    per_step = spec.prompts_per_step * spec.group_size
    eval_steps = set(spec.eval_steps())
    step, rows = state["step"], state["rows"]
    reward_sum, reward_count = state["reward_sum"], state["reward_count"]
    started = time.perf_counter() - state["wall_time"]

    def log_row() -> None:
        samples = step * per_step
        tokens = samples * task.seq_len
        rows.append({
            "run_id": spec.run_id, "family": spec.family, "size": spec.size, "task": task.name,
            "params": n_params, "params_embedding": cfg.embedding_params,
            "params_convention": "non_embedding",
            "n_layers": cfg.n_layers, "d_model": cfg.d_model, "n_heads": cfg.n_heads,
            "rl_step": step, "samples": samples, "prompts": step * spec.prompts_per_step, "tokens": tokens,
            "flops": 6.0 * n_params * tokens, "flops_convention": FLOPS_CONVENTION,
            **evaluate(policy, reference, task, spec.seed, step),
            "mean_reward": reward_sum / reward_count if reward_count else math.nan,
            "heldout_problems": task.n_heldout, "rl_lr": spec.rl_lr, "group_size": spec.group_size,
            "prompts_per_step": spec.prompts_per_step, "kl_coef": spec.kl_coef,
            "kl_estimator": spec.kl_estimator, "scale_rewards": spec.scale_rewards, "seed": spec.seed,
            **sft, "sft_flops": 6.0 * n_params * sft["sft_tokens"],
            "wall_time": time.perf_counter() - started,
        })

    if step == 0 and not rows:
        log_row()
    while step < spec.rl_steps:
        prompts, answers = task.encode(task.sample(spec.prompts_per_step, spec.seed, step, stream=1))
        prompts, answers = (t.repeat_interleave(spec.group_size, 0).to(device) for t in (prompts, answers))
        generator = _generator(spec.seed, step, _STREAM_SAMPLE)
        samples = generate(policy, prompts, task.answer_len, generator=generator)
        rewards = task.reward(samples, answers)
        advantages = group_advantages(rewards, spec.group_size, spec.scale_rewards)
        mask = response_mask(samples).float()
        logp = token_logprobs(policy, prompts, samples)
        loss = -(advantages[:, None] * logp * mask).sum() / mask.sum()
        if spec.kl_coef:
            with torch.no_grad():
                ref_logp = token_logprobs(reference, prompts, samples)
            penalty = kl_penalty(logp, ref_logp, spec.kl_estimator)
            loss = loss + spec.kl_coef * (penalty * mask).sum() / mask.sum()
        clipped_step(loss, policy, optimizer)
        step += 1
        reward_sum, reward_count = reward_sum + float(rewards.sum()), reward_count + len(rewards)
        if step in eval_steps:
            log_row()
            reward_sum, reward_count = 0.0, 0
        if step % spec.checkpoint_every == 0 and step < spec.rl_steps:
            save_checkpoint({"model": policy.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "rows": rows, "wall_time": time.perf_counter() - started,
                             "reward_sum": reward_sum, "reward_count": reward_count}, ckpt)
    table = pd.DataFrame(rows)
    table["status"] = "ok" if sft["sft_reached_target"] else "sft_failed"
    table["device"] = device
    write_table(table, part)
    ckpt.unlink(missing_ok=True)
    return part


def spec_from_dict(config: dict) -> RLSpec:
    """An :class:`RLSpec` from a mapping, rejecting unknown settings by name."""
    fields = RLSpec.__dataclass_fields__
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ValueError(f"unknown RL run setting(s) {unknown}; known: {sorted(fields)}")
    return RLSpec(**config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One RL run: supervised stage, then GRPO on addition.",
                                     epilog="example: python -m runners.rl.grpo --size n10k --rl-steps 40 "
                                            "--out sweeps/rl-demo")
    defaults = RLSpec("n10k")
    parser.add_argument("--size", required=True, help="ladder name (n10k … n5m) or d<d_model>l<n_layers>")
    for name, value in asdict(defaults).items():
        if name == "size":
            continue
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(value, bool) else type(value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, help=f"default {value}")
    parser.add_argument("--out", required=True, help="folder (sft/, parts/ and checkpoints/ go under it)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = vars(parser.parse_args(argv))
    out, device, threads = args.pop("out"), args.pop("device"), args.pop("threads")
    print(train_rl(spec_from_dict(args), out, device=device, threads=threads))


if __name__ == "__main__":
    main()
