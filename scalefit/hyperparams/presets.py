"""Published LR and batch-size laws (Step Law, DeepSeek LLM), with the setup their numbers assume."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.hyperparams.law_result import HparamLaw
from scalefit.hyperparams.laws import HparamLaws
from scalefit.hyperparams.sweep import STEPLAW_SEQ_LEN
from scalefit.laws.hparam import HPARAM_LAWS
from scalefit.results import DEFAULT_LEVEL, check_level

# Step Law: the mean and covariance of the authors' 1000 bootstrap fits (github.com/step-law/steplaw,
# data/1004_fitted_lr_bs_scaling_model_parameters.csv), coefficients of ln lr* on (1, ln N, ln D) and of
# ln B*_tokens on (1, ln D). exp(mean) gives the published lr* = 1.79 N^-0.713 D^0.307, B* = 0.58 D^0.571.
_STEPLAW_LR_MEAN = (0.5863077907399268, -0.7129222911869904, 0.30749095041206964)
_STEPLAW_LR_COV = (
    (0.389062, -0.013559, -0.005132),
    (-0.013559, 0.000891, -0.000174),
    (-0.005132, -0.000174, 0.000366),
)
_STEPLAW_BS_MEAN = (-0.5435421736103339, 0.5709443646895045)
_STEPLAW_BS_COV = ((0.191180, -0.008152), (-0.008152, 0.000349))
# The released dense runs (data/dense_lr_bs_loss.csv); the published fit also used runs not released.
_STEPLAW_RANGES = {"params": (214663680.0, 1073741824.0), "tokens": (4e9, 1e11)}

#: Planning scatter of the Step Law preset: root-mean-square of ln(optimum / preset law) over the 17 (N, D)
#: groups of Step Law's released dense grid (data/dense_lr_bs_loss.csv, commit 32a8f4c), optima located by
#: :func:`scalefit.hyperparams.locate_optima` with its defaults (every group's LR and batch-size optimum
#: is located). Mean log offsets −0.057 (LR) and −0.048 (batch size) are included in the RMS. Recomputed
#: from ../shared by ``tests/test_hyperparams.py::test_steplaw_planning_scatter_constant_matches_the_grid``.
STEPLAW_LR_PLAN_STD = 0.175
STEPLAW_BS_PLAN_STD = 0.217

#: What each preset's numbers assume. Step Law: Li et al. 2025 (experimental setup; the released runs' names
#: carry the minimum LR, ``mlr1.00e-05``); DeepSeek LLM: Bi et al. 2024, §2.2–2.3 and §3.1.
PRESET_SETUPS = {
    "steplaw": {
        "optimizer": "AdamW",
        "schedule": "warmup, then decay to a fixed minimum LR of 1e-5 (not a fraction of the peak)",
        "parametrisation": "standard (no muP); dense transformers with RMSNorm pre-norm, SwiGLU, ALiBi",
        "sequence length": f"{STEPLAW_SEQ_LEN} tokens; N counts non-embedding parameters, B and D tokens",
    },
    "deepseek": {
        "optimizer": "AdamW (beta1 0.9, beta2 0.95, weight decay 0.1)",
        "schedule": "multi-step: warmup 2000 steps, then 31.6 % of the peak at 80 % of tokens and 10 % at 90 %",
        "parametrisation": "standard (no muP)",
        "tokenizer": "byte-level BPE, 100K vocabulary; sequence length 4096",
        "compute": "C = M * D with M the non-embedding FLOPs per token (attention included); scalefit uses 6ND",
    },
}

PRESETS = ("steplaw", "deepseek")


def _preset_law(name: str, mean, cov, ranges, source: str, method: str, level: float,
                plan_std: float | None) -> HparamLaw:
    law = HPARAM_LAWS[name]
    log_coef = np.asarray(mean, dtype=float)
    params = pd.Series(law.to_reported(log_coef[None])[0], index=list(law.reported_names))
    return HparamLaw(
        name=name, params=params, draws=pd.DataFrame(), log_cov=None if cov is None else np.asarray(cov, dtype=float),
        residual_std=None, ranges={v: ranges.get(v) for v in law.inputs}, fitted_on="published", n_groups=0,
        n_points=0, source=source, level=level, interval_method=method, plan_std=plan_std,
    )


def preset_laws(name: str, *, level: float = DEFAULT_LEVEL) -> HparamLaws:
    """Published LR and batch-size laws, for comparison or when there is no sweep.

    ``steplaw``
        Step Law (Li et al. 2025, "Predictable Scale: Part I", arXiv:2503.04715), from 3,700 runs:
        lr* = 1.79 · N^-0.713 · D^0.307 and B* = 0.58 · D^0.571, N non-embedding parameters, D and B in
        tokens, sequence length 2048. Constants and confidence intervals are the mean and covariance
        (normal approximation) of the authors' 1000 bootstrap fits (github.com/step-law/steplaw,
        ``data/1004_fitted_lr_bs_scaling_model_parameters.csv``); the fitted range is that of their
        released dense runs (N 2.1e8–1.1e9, D 4e9–1e11). Planning intervals add the scatter of those
        runs' optima around the law (:data:`STEPLAW_LR_PLAN_STD`, :data:`STEPLAW_BS_PLAN_STD`).
    ``deepseek``
        DeepSeek LLM (Bi et al. 2024, arXiv:2401.02954, Sec. 3.1): lr* = 0.3118 · C^-0.1250 and
        B* = 0.2920 · C^0.3271 tokens, where their C = M·D counts non-embedding FLOPs per token M
        (attention included); scalefit evaluates it at C = 6·N·D. No intervals, scatter or fitted range
        are published, so recommendations from it carry none.

    Parameters
    ----------
    name : {"steplaw", "deepseek"}
    level : float
        Interval level (default 0.95).
    """
    level = check_level(level)
    if name == "steplaw":
        source = "preset steplaw (Li et al. 2025, arXiv:2503.04715)"
        method = "normal approximation to the authors' 1000 bootstrap fits"
        laws = {
            "lr_vs_N_D": _preset_law("lr_vs_N_D", _STEPLAW_LR_MEAN, _STEPLAW_LR_COV, _STEPLAW_RANGES, source,
                                     method, level, STEPLAW_LR_PLAN_STD),
            "bs_vs_D": _preset_law("bs_vs_D", _STEPLAW_BS_MEAN, _STEPLAW_BS_COV, _STEPLAW_RANGES, source, method,
                                   level, STEPLAW_BS_PLAN_STD),
        }
        return HparamLaws(laws, source, seq_len=STEPLAW_SEQ_LEN, level=level, setup=PRESET_SETUPS["steplaw"])
    if name == "deepseek":
        source = "preset deepseek (Bi et al. 2024, arXiv:2401.02954)"
        method = "none published"
        laws = {
            "lr_vs_C": _preset_law("lr_vs_C", (math.log(0.3118), -0.1250), None, {}, source, method, level, None),
            "bs_vs_C": _preset_law("bs_vs_C", (math.log(0.2920), 0.3271), None, {}, source, method, level, None),
        }
        return HparamLaws(laws, source, notes=("C evaluated as 6ND; DeepSeek's C counts attention FLOPs",),
                          level=level, setup=PRESET_SETUPS["deepseek"])
    raise ScalefitInputError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
