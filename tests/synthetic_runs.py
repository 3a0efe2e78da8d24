"""Synthetic runs tables shaped like the shipped CPU ladder, drawn from laws with known parameters.

Used by the plot and report tests: a joint law to recover, LR and batch-size sweeps whose optima follow
known power laws, repeated seeds, one diverged run, and RL curves from the learning-efficiency law.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# The joint law L = E + A/N^alpha + B/D^beta behind the pre-training table.
TRUTH = {"E": 1.2, "A": 40.0, "alpha": 0.35, "B": 100.0, "beta": 0.35}
SIZES = (9.4e3, 1.9e4, 3.7e4, 7.8e4, 1.5e5, 3.0e5)
BUDGETS = (1e6, 2e6, 4e6, 8e6, 16e6)
LR_MULTIPLIERS = (0.354, 0.5, 0.707, 1.0, 1.41, 2.0, 2.83)
SWEPT = ((9.4e3, 1e6), (9.4e3, 4e6), (3.7e4, 1e6), (3.7e4, 4e6), (1.5e5, 1e6))


def joint_loss(n, d):
    t = TRUTH
    return t["E"] + t["A"] / np.asarray(n, float) ** t["alpha"] + t["B"] / np.asarray(d, float) ** t["beta"]


def optimal_lr(n, d):
    """lr*(N, D) = 0.3 N^-0.4 D^0.1."""
    return 0.3 * np.asarray(n, float) ** -0.4 * np.asarray(d, float) ** 0.1


def _run(rows, rng, n, budget, lr, batch, seed=0, status="ok", noise=0.004, n_evals=6):
    lr_opt = float(optimal_lr(n, budget))
    penalty = 0.02 * math.log(lr / lr_opt) ** 2 + 0.01 * math.log(batch / 2048) ** 2
    steps = math.ceil(budget / batch)
    run_id = f"n{n:.3g}-D{budget:.3g}-lr{lr:.3g}-bs{batch}-s{seed}"
    run_noise = rng.normal(0, noise)
    for k in range(1, n_evals + 1):
        step = steps * k // n_evals
        tokens = step * batch
        loss = float(joint_loss(n, tokens)) * (1 + penalty) * math.exp(run_noise)
        if status == "diverged" and k == n_evals:
            loss = float("nan")
        rows.append({"run_id": run_id, "params": n, "tokens": float(tokens), "token_budget": budget, "loss": loss,
                     "lr": lr, "batch_size": batch, "step": step, "seed": seed, "split": "val", "status": status})


def ladder_table(seed: int = 0) -> pd.DataFrame:
    """Every size at 4 or 5 budgets (IsoFLOP-friendly), LR sweeps on 5 (N, D) groups, batch sweeps on 2,
    repeated seeds on 3 sizes, one diverged run: the cpu_ladder design on a known law."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for n in SIZES:
        budgets = BUDGETS if n < 5e4 else tuple(b / 2 for b in BUDGETS)
        for budget in budgets:
            _run(rows, rng, n, budget, 0.9 * float(optimal_lr(n, budget)), 2048)
    for n, budget in SWEPT:
        base = float(optimal_lr(n, budget))
        for m in LR_MULTIPLIERS:
            if m != 1.0:
                _run(rows, rng, n, budget, base * m, 2048)
        if budget == 1e6 and n < 1e5:
            for batch in (1024, 4096):
                for m in LR_MULTIPLIERS:
                    _run(rows, rng, n, budget, base * m, batch)
    for n in (9.4e3, 3.7e4, 1.5e5):
        for s in (1, 2):
            _run(rows, rng, n, 2e6, 0.9 * float(optimal_lr(n, 2e6)), 2048, seed=s)
    _run(rows, rng, 3.7e4, 4e6, 8.0 * float(optimal_lr(3.7e4, 4e6)), 2048, status="diverged")
    return pd.DataFrame(rows)


# --- RL: log L = -k(N) log X + E(N), k(N) = K_max / (1 + N0/N) -------------------------------------------
RL_TRUTH = {"K_max": 0.3, "N0": 5e4}
RL_SIZES = (9.4e3, 1.9e4, 3.7e4, 7.8e4, 1.5e5)


def rl_table(seed: int = 0, n_eval: int = 30) -> pd.DataFrame:
    """Curves of pass@1 for 5 sizes, 2 seeds each, drawn from the RL law with noise of sd 0.005 on L."""
    rng = np.random.default_rng(seed)
    frames = []
    for n in RL_SIZES:
        k = RL_TRUTH["K_max"] / (1 + RL_TRUTH["N0"] / n)
        for s in (0, 1):
            steps = np.arange(1, n_eval + 1) * 10
            flops = 6.0 * n * 6656 * steps
            start = 0.7 - 0.05 * np.log(n / RL_SIZES[0])
            error = start * (flops / flops[0]) ** -k
            observed = np.clip(error + rng.normal(0.0, 0.005, n_eval), 0.0, 1.0)
            frames.append(pd.DataFrame({"run_id": f"rl-n{n:.3g}-s{s}", "params": n, "rl_step": steps,
                                        "flops": flops, "samples": 256 * steps, "pass_at_1": 1.0 - observed,
                                        "status": "ok"}))
    return pd.concat(frames, ignore_index=True)
