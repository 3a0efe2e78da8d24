"""Optimal learning-rate and batch-size laws, fitted from a user's own LR × batch-size sweep.

Three steps, each usable alone:

1. :func:`locate_optima` — per (N, D) group (or per FLOP budget), exclude diverged runs (and say which),
   find the best grid cell, the **plateau** (every setting within ``tolerance`` of the best loss, 0.25% as
   in Step Law) and an **interpolated optimum**: a convex quadratic in (log lr, log batch size) fitted to
   the settings around the minimum, with a delta-method interval.  When the minimum sits on the edge of the
   grid, or the landscape is not convex there, the best grid cell is used instead and a warning says why
   (e.g. "optimum may be below the smallest LR tried").
2. :func:`fit_hparam_laws` — least squares in log space (statsmodels) of

   * ``lr_vs_N_D``:  lr*(N, D) = c · N^a · D^b        (Step Law, Li et al. 2025, arXiv:2503.04715)
   * ``bs_vs_D``:    B*(D)    = c · D^g               (Step Law; B in tokens)
   * ``bs_vs_N_D``:  B*(N, D) = c · N^h · D^g         (Step Law's form with an N term, to test its claim
     that B* does not depend on N; a recommendation uses it only when asked: ``bs_law="N_D"``)
   * ``lr_vs_C``:    lr*(C)   = c · C^a               (DeepSeek LLM, Bi et al. 2024, arXiv:2401.02954)
   * ``bs_vs_C``:    B*(C)    = c · C^g               (DeepSeek LLM; B in tokens)

   fitted either on the interpolated optima (one point per group) or on every plateau point (Step Law's
   choice), with intervals from a bootstrap over groups.
3. :func:`recommend` — the peak LR and batch size for a planned (N, D), with intervals, the law and data
   they came from, and the distance in decades outside the fitted range.

:func:`leave_one_group_out` and :func:`nearest_grid_loss_gap` backtest a law on the sweep itself: the
relative loss gap between the grid setting nearest the recommendation and the group's best loss.

Units: ``params`` N are non-embedding parameters, ``tokens`` D training tokens, ``flops`` C training
FLOPs (``6ND`` when the table has none), ``batch_size`` tokens per optimiser step, ``lr`` the peak
learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from scalefit.errors import FitError, ScalefitInputError

DEFAULT_PLATEAU_TOLERANCE = 0.0025
DEFAULT_DIVERGENCE_FACTOR = 1.5
DEFAULT_LEVEL = 0.9
DEFAULT_N_BOOTSTRAP = 1000
STEPLAW_SEQ_LEN = 2048

# Relative loss windows (above the best loss) tried, smallest first, to pick the settings for the quadratic.
QUADRATIC_WINDOWS = (0.01, 0.02, 0.04, 0.08, 0.16)
HPARAM_AXES = ("lr", "batch_size")
LAW_VARIABLE_SYMBOLS = {"params": "N", "tokens": "D", "flops": "C"}

GroupBy = Literal["params_tokens", "flops"]
FitOn = Literal["optima", "plateau"]
IntervalKind = Literal["confidence", "prediction"]
BatchSizeLaw = Literal["auto", "D", "N_D"]
BATCH_SIZE_LAWS = {"D": ("bs_vs_D", "bs_vs_C"), "N_D": ("bs_vs_N_D",)}


# --- reading a sweep ----------------------------------------------------------------------------------

STEPLAW_COLUMNS = ("N", "D", "lr", "bs", "loss", "smooth loss", "exp_name", "ti")


def read_steplaw_csv(path: str | Path, *, smoothed: bool = True) -> pd.DataFrame:
    """Read Step Law's released grid (``dense_lr_bs_loss.csv``) as final points of a runs table.

    Column mapping (units from the file's provenance: github.com/step-law/steplaw, ``data/``):

    ============  =================================================================================
    ours          theirs
    ============  =================================================================================
    run_id        ``exp_name``
    params        ``N``, non-embedding parameters
    tokens        ``D``, training tokens
    loss          ``smooth loss`` (the authors' smoothed final training loss) or ``loss`` (raw final)
    lr            ``lr``, peak learning rate (every run decays to 1e-5)
    batch_size    ``bs`` × 2048: the file counts batch size in sequences of 2048 tokens
    seq_len       2048
    step          ``ti``, training iterations
    flops         6·N·D (``flops_convention`` = ``6ND``)
    ============  =================================================================================

    Parameters
    ----------
    path : str or Path
        The CSV file.
    smoothed : bool
        Use the smoothed final loss (Step Law's choice) rather than the raw final loss.

    Returns
    -------
    pandas.DataFrame
        One row per run.
    """
    raw = pd.read_csv(path)
    missing = [column for column in STEPLAW_COLUMNS if column not in raw.columns]
    if missing:
        raise ScalefitInputError(f"{path}: not a Step Law grid file, missing columns {missing}")
    params = raw["N"].astype(float)
    tokens = raw["D"].astype(float)
    return pd.DataFrame({
        "run_id": raw["exp_name"].astype(str),
        "params": params,
        "tokens": tokens,
        "loss": raw["smooth loss" if smoothed else "loss"].astype(float),
        "lr": raw["lr"].astype(float),
        "batch_size": raw["bs"].astype(float) * STEPLAW_SEQ_LEN,
        "seq_len": STEPLAW_SEQ_LEN,
        "step": raw["ti"].astype(int),
        "flops": 6.0 * params * tokens,
        "flops_convention": "6ND",
    })


def final_losses(runs: pd.DataFrame, *, smooth_last: int = 1) -> pd.DataFrame:
    """One row per run: its last evaluation point, with the loss optionally averaged over the last points.

    Parameters
    ----------
    runs : pandas.DataFrame
        A runs table (one row per run and evaluation point, as :func:`scalefit.runs.load_runs` gives).
        Validation rows are used when a ``split`` column marks any; the last point is chosen by
        :func:`scalefit.runs.final_points` (by ``step``, else ``tokens``). Every status is kept:
        :func:`locate_optima` excludes and reports the runs that are not ``ok``.
    smooth_last : int
        Average the loss over this many final evaluation points (1: the final loss as logged; a
        non-finite loss among them makes the average non-finite).

    Returns
    -------
    pandas.DataFrame
        The last row of each run, ``loss`` replaced by the smoothed final loss.
    """
    from scalefit.runs import final_points, select

    if smooth_last < 1:
        raise ScalefitInputError(f"smooth_last must be at least 1, got {smooth_last}")
    if "split" in runs.columns and (runs["split"] == "val").any():
        runs = select(runs, status=None, split="val")
    last = final_points(runs).reset_index(drop=True)
    if smooth_last > 1:
        order = "step" if "step" in runs.columns else "tokens"
        ordered = runs.sort_values(order, kind="stable")
        smoothed = ordered.groupby("run_id", sort=False)["loss"].apply(
            lambda loss: loss.iloc[-smooth_last:].mean(skipna=False)
        )
        last["loss"] = last["run_id"].map(smoothed).to_numpy(float)
    return last


def load_sweep(path: str | Path, *, smooth_last: int = 1) -> pd.DataFrame:
    """Read an LR × batch-size sweep as one row per run.

    A CSV with Step Law's columns goes through :func:`read_steplaw_csv` (smoothed loss); anything else
    through :func:`scalefit.runs.load_runs` and :func:`final_losses`.
    """
    path = Path(path)
    if not path.exists():
        raise ScalefitInputError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        header = pd.read_csv(path, nrows=0).columns
        if all(column in header for column in STEPLAW_COLUMNS):
            return read_steplaw_csv(path)
    from scalefit.runs import load_runs

    return final_losses(load_runs(path), smooth_last=smooth_last)


# --- locating optima per group ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HparamOptima:
    """Per-group optima of an LR (× batch-size) sweep.

    Attributes
    ----------
    groups : pandas.DataFrame
        One row per group: ``group``, ``params``, ``tokens``, ``flops``, ``n_runs``, ``n_excluded``,
        ``best_loss``/``best_lr``/``best_batch_size`` (best grid cell), ``n_plateau`` and the plateau's
        ``plateau_lr_min``/``_max``, ``plateau_batch_size_min``/``_max``, the optimum ``opt_lr``,
        ``opt_lr_lower``, ``opt_lr_upper``, ``opt_batch_size`` (and its bounds), ``opt_loss``,
        ``method`` (``quadratic`` or ``grid``), ``n_fit_points`` and ``warning``.
    runs : pandas.DataFrame
        The final point of every run with ``group``, ``excluded``, ``exclusion_reason``, ``on_plateau``.
    tolerance : float
        Relative plateau tolerance.
    level : float
        Level of the optimum intervals.
    group_by : str
        ``params_tokens`` or ``flops``.
    source : str
        Where the runs came from.
    seq_len : int or None
        Sequence length of the runs when they share one.
    """

    groups: pd.DataFrame
    runs: pd.DataFrame
    tolerance: float
    level: float
    group_by: str
    source: str
    seq_len: int | None = None

    @property
    def plateau(self) -> pd.DataFrame:
        """The runs on their group's plateau."""
        return self.runs[self.runs["on_plateau"]]

    @property
    def excluded(self) -> pd.DataFrame:
        """The runs left out of the optimum search, with the reason."""
        return self.runs[self.runs["excluded"]]

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per group whose optimum needs care."""
        flagged = self.groups[self.groups["warning"] != ""]
        return tuple(f"{row.group}: {row.warning}" for row in flagged.itertuples())

    def summary(self) -> str:
        """Text table of the per-group optima and plateaus, and what was excluded."""
        lines = [
            (f"Optima of {len(self.groups)} groups from {self.source} (plateau: within "
            f"{100 * self.tolerance:.2f}% of the best loss; optimum intervals {100 * self.level:.0f}%)"),
        ]
        columns = ["group", "n_runs", "n_excluded", "best_loss", "n_plateau", "opt_lr", "opt_lr_lower",
                   "opt_lr_upper", "opt_batch_size", "method"]
        lines.append(self.groups[columns].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        reasons = self.excluded["exclusion_reason"].value_counts()
        for reason, count in reasons.items():
            lines.append(f"excluded {count} runs: {reason}")
        lines.extend(f"warning: {line}" for line in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> list[dict]:
        """The per-group table as JSON-able records (NaN as None)."""
        return _records(self.groups)

    def plot(self, group: str | int = 0, ax=None):
        """The loss landscape of one group (name or position), optimum and plateau marked."""
        from scalefit.plots import plot_lr_landscape

        return plot_lr_landscape(self, group, ax=ax)


def locate_optima(
    runs: pd.DataFrame,
    *,
    group_by: GroupBy = "params_tokens",
    tolerance: float = DEFAULT_PLATEAU_TOLERANCE,
    divergence_factor: float | None = DEFAULT_DIVERGENCE_FACTOR,
    level: float = DEFAULT_LEVEL,
    source: str = "runs",
) -> HparamOptima:
    """Locate the optimal LR (and batch size) per (N, D) group or per FLOP budget.

    Within a group: runs whose status is not ``ok``, whose loss is not finite, or whose loss exceeds
    ``divergence_factor`` × the group's best loss are excluded (and listed in ``runs`` with the reason).
    The plateau is every remaining run with ``loss <= (1 + tolerance) · best`` (Step Law's 0.25%). The
    interpolated optimum minimises a quadratic

        loss ≈ β0 + Σ_i β_i x_i + Σ_{i<=j} β_ij x_i x_j,   x = (log10 lr, log10 batch_size)

    fitted by least squares to the settings within 1%, 2%, 4%, 8% or 16% of the best loss: the smallest
    window with enough points (5 for one axis, 8 for two, and three distinct values on each axis) whose
    quadratic has a positive-definite Hessian and its minimum inside the settings it was fitted on; when
    no window gives one, the best grid cell is used and the warning says why. The interval comes
    from the delta method on the quadratic's coefficient covariance. An axis enters the quadratic when
    it has at least three distinct values in the group; an axis with two is held at the best cell's value.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run (see :func:`final_losses`) with ``params``, ``tokens``, ``loss``, ``lr`` and
        optionally ``batch_size`` [tokens], ``flops``, ``status``, ``seq_len``, ``token_budget`` (then D is
        the budget, since runs of one budget at different batch sizes end a few tokens apart).
    group_by : {"params_tokens", "flops"}
        Group by (N, D) pair (Step Law) or by training FLOPs (DeepSeek's compute budgets, 4 significant
        digits).
    tolerance : float
        Relative plateau tolerance.
    divergence_factor : float or None
        Runs above this multiple of the group's best loss count as diverged; None disables the rule.
    level : float
        Level of the optimum intervals.
    source : str
        Where the runs came from (reported in results).

    Returns
    -------
    HparamOptima
    """
    missing = [column for column in ("params", "tokens", "loss", "lr") if column not in runs.columns]
    if missing:
        raise ScalefitInputError(f"{source}: the runs need columns {missing} to locate LR optima")
    if not 0 < level < 1:
        raise ScalefitInputError(f"level must lie in (0, 1), got {level}")
    table = runs.reset_index(drop=True).copy()
    if "token_budget" in table.columns:  # runs of one budget at different batch sizes end a few tokens apart
        table["tokens"] = table["token_budget"]
    if "batch_size" not in table.columns:
        table["batch_size"] = np.nan
    if "flops" not in table.columns:
        table["flops"] = 6.0 * table["params"] * table["tokens"]
    for column in ("params", "tokens", "loss", "lr", "batch_size", "flops"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    bad_lr = ~(table["lr"] > 0)
    if bad_lr.any():
        raise ScalefitInputError(f"{source}: {int(bad_lr.sum())} runs have a missing or non-positive lr")
    table["group"] = _group_labels(table, group_by)
    table["excluded"] = False
    table["exclusion_reason"] = ""
    table["on_plateau"] = False

    rows = []
    for label, members in table.groupby("group", sort=False):
        reason = _exclusion_reasons(members, divergence_factor)
        table.loc[members.index, "exclusion_reason"] = reason
        table.loc[members.index, "excluded"] = reason != ""
        usable = members[reason == ""]
        row = _describe_group(label, members, usable, tolerance, level)
        if len(usable):
            plateau = usable["loss"] <= (1 + tolerance) * usable["loss"].min()
            table.loc[usable.index[plateau.to_numpy()], "on_plateau"] = True
        rows.append(row)
    groups = pd.DataFrame(rows).sort_values(["params", "tokens", "flops"], kind="stable")
    seq_len = None
    if "seq_len" in table.columns and table["seq_len"].nunique() == 1:
        seq_len = int(table["seq_len"].iloc[0])
    return HparamOptima(groups.reset_index(drop=True), table, tolerance, level, group_by, source, seq_len)


def _group_labels(table: pd.DataFrame, group_by: GroupBy) -> pd.Series:
    if group_by == "params_tokens":
        n_pairs = len(table[["params", "tokens"]].drop_duplicates())
        for digits in (4, 10):  # short labels unless they would merge distinct (N, D) pairs
            fmt = f"{{:.{digits}g}}".format
            labels = "N=" + table["params"].map(fmt) + " D=" + table["tokens"].map(fmt)
            if labels.nunique() == n_pairs:
                break
        return labels
    if group_by == "flops":
        return "C=" + table["flops"].map("{:.4g}".format)
    raise ScalefitInputError(f"group_by must be 'params_tokens' or 'flops', got {group_by!r}")


def _exclusion_reasons(members: pd.DataFrame, divergence_factor: float | None) -> pd.Series:
    reason = pd.Series("", index=members.index, dtype=object)
    if "status" in members.columns:
        status = members["status"].fillna("ok").astype(str)
        reason[status != "ok"] = "status " + status[status != "ok"]
    finite = np.isfinite(members["loss"].to_numpy())
    reason[(reason == "") & ~finite] = "loss is not finite"
    if divergence_factor is not None:
        candidates = members["loss"][reason == ""]
        if len(candidates):
            ceiling = divergence_factor * candidates.min()
            diverged = (reason == "") & (members["loss"] > ceiling)
            reason[diverged] = f"diverged: loss above {divergence_factor:g}x the group's best"
    return reason


def _describe_group(label: str, members: pd.DataFrame, usable: pd.DataFrame, tolerance: float,
                    level: float) -> dict:
    row: dict = {
        "group": label,
        "params": _unique_or_nan(members["params"]),
        "tokens": _unique_or_nan(members["tokens"]),
        "flops": (float(members["flops"].iloc[0]) if members["flops"].nunique() == 1
                  else float(np.exp(np.log(members["flops"]).mean()))),
        "n_runs": len(members),
        "n_excluded": len(members) - len(usable),
    }
    if usable.empty:
        return row | {"method": "none", "n_fit_points": 0, "warning": "every run was excluded",
                      "lr_located": False, "batch_size_located": False}
    best = usable.loc[usable["loss"].idxmin()]
    plateau = usable[usable["loss"] <= (1 + tolerance) * best["loss"]]
    row |= {
        "best_loss": float(best["loss"]),
        "best_lr": float(best["lr"]),
        "best_batch_size": float(best["batch_size"]),
        "n_plateau": len(plateau),
        "plateau_lr_min": float(plateau["lr"].min()),
        "plateau_lr_max": float(plateau["lr"].max()),
        "plateau_batch_size_min": float(plateau["batch_size"].min()),
        "plateau_batch_size_max": float(plateau["batch_size"].max()),
    }
    edge = _grid_edge(members, best)
    # An axis's optimum is located only when ≥ 3 values were tried and the best is not on the grid's edge;
    # the laws are fitted on located optima only (a single-LR group's "optimum" is just the LR it ran at).
    for axis, name in (("lr", "LR"), ("batch_size", "batch size")):
        n_tried = usable[axis].nunique()
        row[f"n_{axis}s"] = n_tried
        row[f"{axis}_located"] = bool(n_tried >= 3 and f" {name} tried" not in edge)
    optimum = None if edge else _quadratic_optimum(usable, best, level)
    if isinstance(optimum, _QuadraticOptimum):
        return row | optimum.as_row()
    warning = f"{edge or optimum}; using the best grid cell"
    return row | {
        "opt_lr": row["best_lr"], "opt_lr_lower": np.nan, "opt_lr_upper": np.nan,
        "opt_batch_size": row["best_batch_size"], "opt_batch_size_lower": np.nan,
        "opt_batch_size_upper": np.nan, "opt_loss": row["best_loss"], "method": "grid",
        "n_fit_points": 0, "warning": warning,
    }


def _unique_or_nan(values: pd.Series) -> float:
    unique = values.dropna().unique()
    return float(unique[0]) if len(unique) == 1 else np.nan


def _grid_edge(members: pd.DataFrame, best: pd.Series) -> str:
    """Say which edge of the tried grid the best cell lies on ('' when inside)."""
    messages = []
    for axis, name in (("lr", "LR"), ("batch_size", "batch size")):
        tried = members[axis].dropna()
        if tried.nunique() < 2:
            continue
        if best[axis] <= tried.min():
            messages.append(f"optimum may be below the smallest {name} tried ({tried.min():.4g})")
        elif best[axis] >= tried.max():
            messages.append(f"optimum may be above the largest {name} tried ({tried.max():.4g})")
    return "; ".join(messages)


@dataclass(frozen=True, eq=False)
class _QuadraticOptimum:
    """A convex quadratic's minimum in log10 hyperparameters, with its covariance."""

    axes: tuple[str, ...]
    log10_optimum: np.ndarray
    log10_cov: np.ndarray
    loss: float
    fixed: dict[str, float]
    n_points: int
    level: float

    def as_row(self) -> dict:
        z = stats.norm.ppf(0.5 + self.level / 2)
        row = {"opt_loss": self.loss, "method": "quadratic", "n_fit_points": self.n_points, "warning": ""}
        for axis in HPARAM_AXES:
            prefix = f"opt_{axis}"
            if axis in self.axes:
                k = self.axes.index(axis)
                centre, half = self.log10_optimum[k], z * math.sqrt(self.log10_cov[k, k])
                row |= {prefix: 10**centre, f"{prefix}_lower": 10 ** (centre - half),
                        f"{prefix}_upper": 10 ** (centre + half)}
            else:
                row |= {prefix: self.fixed[axis], f"{prefix}_lower": np.nan, f"{prefix}_upper": np.nan}
        return row


def _quadratic_optimum(usable: pd.DataFrame, best: pd.Series, level: float) -> _QuadraticOptimum | str:
    """Fit the convex quadratic around the best cell; return the reason instead when it cannot be done."""
    axes = tuple(axis for axis in HPARAM_AXES if usable[axis].nunique() >= 3)
    if not axes:
        return "fewer than three distinct LRs (or batch sizes) to interpolate"
    fixed = {axis: float(best[axis]) for axis in HPARAM_AXES if axis not in axes}
    cells = usable.dropna(subset=list(axes))
    for axis, value in fixed.items():
        if usable[axis].nunique() > 1:
            cells = cells[np.isclose(cells[axis], value)]
    n_coef = 1 + len(axes) + len(axes) * (len(axes) + 1) // 2
    min_points = n_coef + 2
    best_loss = float(best["loss"])
    reason = f"fewer than {min_points} settings within {QUADRATIC_WINDOWS[-1]:.0%} of the best loss"
    for window in QUADRATIC_WINDOWS:
        near = cells[cells["loss"] <= (1 + window) * best_loss]
        if len(near) < min_points or any(near[axis].nunique() < 3 for axis in axes):
            continue
        fitted = _fit_quadratic(near, axes, best)
        if isinstance(fitted, str):
            reason = fitted
            continue
        return _QuadraticOptimum(axes, fitted[0], fitted[1], fitted[2], fixed, len(near), level)
    return reason


def _quadratic_design(x: np.ndarray) -> np.ndarray:
    """Columns 1, x_i, x_i x_j (i <= j) of a quadratic in the columns of ``x``."""
    k = x.shape[1]
    squares = [x[:, i] * x[:, j] for i in range(k) for j in range(i, k)]
    return np.column_stack([np.ones(len(x)), x, *squares])


def _quadratic_minimum(coef: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stationary point and Hessian of the quadratic with coefficients ``coef`` in ``k`` variables."""
    gradient = coef[1:1 + k]
    hessian = np.zeros((k, k))
    position = 1 + k
    for i in range(k):
        for j in range(i, k):
            hessian[i, j] += coef[position]
            hessian[j, i] += coef[position]
            position += 1
    return np.linalg.solve(hessian, -gradient), hessian


def _fit_quadratic(near: pd.DataFrame, axes: tuple[str, ...],
                   best: pd.Series) -> tuple[np.ndarray, np.ndarray, float] | str:
    """Least-squares quadratic in log10 coordinates centred on the best cell.

    Returns (optimum in log10, its delta-method covariance, loss at the optimum), or the reason the
    quadratic is unusable (flat, not convex, minimum outside the fitted settings).
    """
    centre = np.array([math.log10(best[axis]) for axis in axes])
    x = np.log10(near[list(axes)].to_numpy(float)) - centre
    design = _quadratic_design(x)
    fit = sm.OLS(near["loss"].to_numpy(float), design).fit()
    coef = np.asarray(fit.params)
    k = len(axes)
    try:
        stationary, hessian = _quadratic_minimum(coef, k)
    except np.linalg.LinAlgError:
        return "the loss landscape is flat near the minimum (singular curvature)"
    if np.linalg.eigvalsh(hessian).min() <= 0:
        return "the loss landscape is not convex near the minimum (curvature not positive-definite)"
    if np.any(stationary < x.min(axis=0)) or np.any(stationary > x.max(axis=0)):
        return "the interpolated optimum lies outside the settings it was fitted on"
    jacobian = np.empty((k, len(coef)))
    for p in range(len(coef)):
        step = 1e-6 * max(1.0, abs(coef[p]))
        shifted = coef.copy()
        shifted[p] += step
        jacobian[:, p] = (_quadratic_minimum(shifted, k)[0] - stationary) / step
    cov = jacobian @ np.asarray(fit.cov_params()) @ jacobian.T
    loss = float((_quadratic_design(stationary[None, :]) @ coef)[0])
    return stationary + centre, cov, loss


# --- fitting the laws ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LawSpec:
    name: str
    target: str
    variables: tuple[str, ...]
    exponents: tuple[str, ...]

    @property
    def formula(self) -> str:
        symbol = "lr*" if self.target == "lr" else "B*"
        factors = " * ".join(
            f"{LAW_VARIABLE_SYMBOLS[v]}^{e}" for v, e in zip(self.variables, self.exponents, strict=True)
        )
        unit = "  [B in tokens]" if self.target == "batch_size" else ""
        return f"{symbol} = c * {factors}{unit}"


LAW_SPECS = {
    spec.name: spec
    for spec in (
        _LawSpec("lr_vs_N_D", "lr", ("params", "tokens"), ("a", "b")),
        _LawSpec("bs_vs_D", "batch_size", ("tokens",), ("g",)),
        _LawSpec("bs_vs_N_D", "batch_size", ("params", "tokens"), ("h", "g")),
        _LawSpec("lr_vs_C", "lr", ("flops",), ("a",)),
        _LawSpec("bs_vs_C", "batch_size", ("flops",), ("g",)),
    )
}


@dataclass(frozen=True, eq=False)
class HparamLaw:
    """A fitted (or published) power law for the optimal LR or batch size, ln y = ln c + Σ e_v ln v.

    Attributes
    ----------
    name : str
        ``lr_vs_N_D``, ``bs_vs_D``, ``bs_vs_N_D``, ``lr_vs_C`` or ``bs_vs_C``.
    formula : str
        The law in words, e.g. ``lr* = c * N^a * D^b``.
    variables : tuple of str
        Runs-table columns the law takes (``params``, ``tokens``, ``flops``).
    params : dict
        ``c`` and the exponents.
    intervals : dict
        Parameter name → (lower, upper) at ``level``; empty when the source gives no uncertainty.
    interval_method : str
        How the intervals were made.
    level : float
        Interval level.
    stderr : dict
        Standard errors from statsmodels (``ln_c`` for the prefactor, in log space).
    log_coef : numpy.ndarray
        (ln c, exponents...), the coefficients of the log-linear model.
    log_cov : numpy.ndarray or None
        Their covariance (bootstrap, OLS, or published).
    draws : numpy.ndarray or None
        Bootstrap draws of ``log_coef`` (one per row).
    residual_std : float or None
        Scatter of ln y around the law (natural log), for prediction intervals.
    ranges : dict
        Variable → (min, max) of the data the law was fitted on (None when unknown).
    fitted_on : str
        ``optima``, ``plateau`` or ``published``.
    n_groups, n_points : int
        Groups and points entering the fit.
    source : str
        Preset name or runs file.
    points : pandas.DataFrame or None
        The fitted points (variables, target, group), for plots.
    """

    name: str
    formula: str
    variables: tuple[str, ...]
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    interval_method: str
    level: float
    stderr: dict[str, float]
    log_coef: np.ndarray
    log_cov: np.ndarray | None
    draws: np.ndarray | None
    residual_std: float | None
    ranges: dict[str, tuple[float, float] | None]
    fitted_on: str
    n_groups: int
    n_points: int
    source: str
    points: pd.DataFrame | None = None

    @property
    def target(self) -> str:
        """``lr`` or ``batch_size``."""
        return LAW_SPECS[self.name].target

    def _log_design(self, values: Mapping[str, object]) -> np.ndarray:
        missing = [v for v in self.variables if values.get(v) is None]
        if missing:
            raise ScalefitInputError(f"{self.name} needs {missing} to predict")
        columns = [np.log(np.atleast_1d(np.asarray(values[v], dtype=float))) for v in self.variables]
        columns = np.broadcast_arrays(*columns)
        return np.column_stack([np.ones(columns[0].shape[0]), *columns])

    def predict(self, params=None, tokens=None, flops=None, *, interval: IntervalKind | None = None,
                level: float | None = None) -> np.ndarray | pd.DataFrame:
        """Predict the optimal LR or batch size.

        Parameters
        ----------
        params, tokens, flops : array-like, optional
            The law's variables (N, D, C); those it does not use are ignored.
        interval : {"confidence", "prediction"}, optional
            ``confidence``: interval of the law's mean (parameter uncertainty; percentiles of the
            bootstrap draws when there are any, else normal in log space). ``prediction``: adds the
            scatter of the fitted points around the law (where a new group's optimum would fall), in
            quadrature on each side: ln(upper / estimate) = hypot(confidence half-width, z · scatter).
        level : float, optional
            Interval level (default: the law's).

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            The estimates; with ``interval``, a frame with ``estimate``, ``lower``, ``upper``.
        """
        design = self._log_design({"params": params, "tokens": tokens, "flops": flops})
        log_estimate = design @ self.log_coef
        if interval is None:
            return np.exp(log_estimate)
        level = self.level if level is None else level
        if interval not in ("confidence", "prediction"):
            raise ScalefitInputError(f"interval must be 'confidence' or 'prediction', got {interval!r}")
        if self.log_cov is None:
            raise ScalefitInputError(f"{self.source} publishes no uncertainty for {self.name}")
        if interval == "prediction" and self.residual_std is None:
            raise ScalefitInputError(f"{self.source} gives no scatter for {self.name}: no prediction "
                                     "interval; use interval='confidence'")
        z = stats.norm.ppf(0.5 + level / 2)
        if self.draws is not None:
            tail = 100 * (1 - level) / 2
            lower, upper = np.percentile(design @ self.draws.T, [tail, 100 - tail], axis=1)
            below, above = np.maximum(log_estimate - lower, 0), np.maximum(upper - log_estimate, 0)
        else:
            below = above = z * np.sqrt(np.einsum("ij,jk,ik->i", design, self.log_cov, design))
        if interval == "prediction":
            scatter = z * self.residual_std
            below, above = np.hypot(below, scatter), np.hypot(above, scatter)
        return pd.DataFrame({"estimate": np.exp(log_estimate), "lower": np.exp(log_estimate - below),
                             "upper": np.exp(log_estimate + above)})

    def extrapolation_decades(self, params=None, tokens=None, flops=None) -> dict[str, float] | None:
        """Decades (log10) by which each variable lies outside the fitted range (0 inside); None if unknown."""
        values = {"params": params, "tokens": tokens, "flops": flops}
        distances = {}
        for variable in self.variables:
            bounds = self.ranges.get(variable)
            if bounds is None:
                return None
            position = math.log10(float(values[variable]))
            low, high = math.log10(bounds[0]), math.log10(bounds[1])
            distances[variable] = max(low - position, position - high, 0.0)
        return distances

    def summary(self) -> str:
        """Text report: formula, estimates with intervals, how they were made, the data's range."""
        lines = [
            f"{self.name}: {self.formula}",
            (f"  source: {self.source}; fitted on {self.fitted_on} ({self.n_groups} groups, "
            f"{self.n_points} points)"),
            f"  {100 * self.level:.0f}% intervals: {self.interval_method}",
            f"  {'param':<6}{'estimate':>12}{'lower':>12}{'upper':>12}{'stderr':>10}",
        ]
        for name, value in self.params.items():
            low, high = self.intervals.get(name, (np.nan, np.nan))
            se = self.stderr.get("ln_c" if name == "c" else name, np.nan)
            lines.append(f"  {name:<6}{value:>12.5g}{low:>12.5g}{high:>12.5g}{se:>10.3g}")
        if self.stderr:
            lines.append("  (stderr of c is that of ln c)")
        if self.residual_std is not None:
            lines.append(f"  scatter of ln {self.target} around the law: {self.residual_std:.3f}")
        for variable, bounds in self.ranges.items():
            if bounds is not None:
                lines.append(f"  {LAW_VARIABLE_SYMBOLS[variable]} range: {bounds[0]:.3g} .. {bounds[1]:.3g}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{self.summary()}</pre>"

    def to_dict(self) -> dict:
        """JSON-able description: formula, params, intervals, stderr, method, ranges."""
        return {
            "formula": self.formula,
            "variables": list(self.variables),
            "params": dict(self.params),
            "intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
            "interval_method": self.interval_method,
            "level": self.level,
            "stderr": dict(self.stderr),
            "residual_std": self.residual_std,
            "ranges": {v: (list(b) if b is not None else None) for v, b in self.ranges.items()},
            "fitted_on": self.fitted_on,
            "n_groups": self.n_groups,
            "n_points": self.n_points,
            "source": self.source,
        }

    def plot(self, against: str | None = None, ax=None):
        """Optima against one variable with the law and its bands (see :func:`scalefit.plots.plot_hparam_law`)."""
        from scalefit.plots import plot_hparam_law

        return plot_hparam_law(self, against=against, ax=ax)


@dataclass(frozen=True, eq=False)
class HparamLaws:
    """The LR and batch-size laws of one source (a fitted sweep or a published preset).

    ``laws`` maps law names to :class:`HparamLaw`; ``optima`` holds the per-group table they were fitted
    on (None for presets); ``seq_len`` is the sequence length used to convert batch sizes to sequences.
    """

    laws: dict[str, HparamLaw]
    source: str
    optima: HparamOptima | None = None
    seq_len: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __getitem__(self, name: str) -> HparamLaw:
        return self.laws[name]

    def __contains__(self, name: str) -> bool:
        return name in self.laws

    def recommend(self, params: float, tokens: float, **options) -> Recommendation:
        """Shortcut for :func:`recommend` with these laws."""
        return recommend(params, tokens, self, **options)

    def summary(self) -> str:
        """Every law's summary, then the notes."""
        return "\n\n".join([law.summary() for law in self.laws.values()] + list(self.notes))

    def _repr_html_(self) -> str:
        return f"<pre>{self.summary()}</pre>"

    def to_dict(self) -> dict:
        """``source``, ``laws`` (each with ``params`` and ``intervals``), ``groups`` and ``notes``."""
        return {
            "source": self.source,
            "laws": {name: law.to_dict() for name, law in self.laws.items()},
            "groups": self.optima.to_dict() if self.optima is not None else [],
            "excluded_runs": (self.optima.excluded["exclusion_reason"].value_counts().to_dict()
                              if self.optima is not None else {}),
            "notes": list(self.notes),
        }

    def plot(self, name: str, against: str | None = None, ax=None):
        """Plot one law against one of its variables."""
        return self.laws[name].plot(against=against, ax=ax)


def fit_hparam_laws(
    optima: HparamOptima,
    *,
    fit_on: FitOn = "optima",
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> HparamLaws:
    """Fit the LR and batch-size power laws on per-group optima or plateau points.

    Each law is ordinary least squares of ln y on (1, ln N, ln D) or (1, ln C) (statsmodels; standard
    errors clustered by group when fitting plateau points). Parameter intervals are percentiles of
    ``n_bootstrap`` refits on groups resampled with replacement (a group's plateau points travel
    together); with ``n_bootstrap=0`` they are statsmodels' t intervals. A law is skipped (and a note
    says why) when its variables do not vary across groups or there are too few groups.

    Parameters
    ----------
    optima : HparamOptima
        From :func:`locate_optima`.
    fit_on : {"optima", "plateau"}
        One point per group at its optimum (interpolated, or the best cell), or every plateau run (Step
        Law's choice: more points, and the plateau's width enters as scatter).
    n_bootstrap : int
        Bootstrap resamples over groups (0: OLS intervals only).
    level : float
        Interval level.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    HparamLaws
    """
    if fit_on not in ("optima", "plateau"):
        raise ScalefitInputError(f"fit_on must be 'optima' or 'plateau', got {fit_on!r}")
    points = _law_points(optima, fit_on)
    laws, notes = {}, []
    for spec in LAW_SPECS.values():
        usable = points.dropna(subset=[*spec.variables, spec.target])
        reason = _unfittable_reason(spec, usable)
        if reason:
            notes.append(f"{spec.name} not fitted: {reason}")
            continue
        laws[spec.name] = _fit_law(spec, usable, fit_on, n_bootstrap, level, seed, optima.source)
    for axis, name in (("lr", "LR"), ("batch_size", "batch-size")):
        unlocated = int((~optima.groups[f"{axis}_located"]).sum())
        if unlocated:
            notes.append(f"{unlocated} of {len(optima.groups)} groups are left out of the {name} laws: fewer than "
                         f"3 values tried, or the best on the grid's edge (see each group's warning)")
    if not laws:
        raise FitError(f"{optima.source}: no LR or batch-size law can be fitted: " + "; ".join(notes))
    notes.extend(optima.warnings)
    return HparamLaws(laws, optima.source, optima, optima.seq_len, tuple(notes))


def _law_points(optima: HparamOptima, fit_on: FitOn) -> pd.DataFrame:
    """Points for the laws: an axis's value is NaN (so unused by its laws) where its optimum is not located."""
    groups = optima.groups[optima.groups["method"] != "none"]
    keys = ["group", "params", "tokens", "flops", "lr_located", "batch_size_located"]
    if fit_on == "optima":
        points = groups[keys].assign(lr=groups["opt_lr"], batch_size=groups["opt_batch_size"])
    else:
        points = optima.plateau[["group", "lr", "batch_size"]].merge(groups[keys], on="group", how="inner")
    return points.assign(lr=points["lr"].where(points["lr_located"]),
                         batch_size=points["batch_size"].where(points["batch_size_located"]))


def _unfittable_reason(spec: _LawSpec, points: pd.DataFrame) -> str:
    n_groups = points["group"].nunique()
    if n_groups < len(spec.variables) + 2:
        return (f"{n_groups} groups with a {spec.target} optimum and known {', '.join(spec.variables)}; "
                f"need at least {len(spec.variables) + 2}")
    target_varies = points[spec.target].nunique() > 1
    if spec.target == "batch_size" and not target_varies:
        return "the batch size does not vary in the sweep"
    group_values = points.groupby("group")[list(spec.variables)].first()
    flat = [v for v in spec.variables if group_values[v].nunique() < 2]
    if flat:
        return f"{', '.join(flat)} takes a single value across groups"
    design = np.column_stack([np.ones(len(group_values)), np.log(group_values.to_numpy(float))])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        return f"{', '.join(spec.variables)} are collinear across groups"
    return ""


def _fit_law(spec: _LawSpec, points: pd.DataFrame, fit_on: FitOn, n_bootstrap: int, level: float,
             seed: int, source: str) -> HparamLaw:
    names = ("c", *spec.exponents)
    design = np.column_stack([np.ones(len(points)), np.log(points[list(spec.variables)].to_numpy(float))])
    response = np.log(points[spec.target].to_numpy(float))
    group_codes = pd.factorize(points["group"])[0]
    n_groups = int(group_codes.max()) + 1
    model = sm.OLS(response, design)
    if fit_on == "plateau":
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": group_codes})
    else:
        fit = model.fit()
    log_coef = np.asarray(fit.params)
    stderr = dict(zip(("ln_c", *spec.exponents), map(float, fit.bse), strict=True))
    residual_std = float(np.sqrt(fit.scale))
    draws = None
    if n_bootstrap > 0:
        draws = _bootstrap_groups(design, response, group_codes, n_groups, n_bootstrap, seed)
        tail = 100 * (1 - level) / 2
        bounds = np.percentile(draws, [tail, 100 - tail], axis=0)
        log_cov = np.cov(draws, rowvar=False)
        method = (f"percentile bootstrap over groups ({len(draws)} resamples of {n_groups} groups, "
                  f"seed {seed})")
    else:
        bounds = np.asarray(fit.conf_int(alpha=1 - level)).T
        log_cov = np.asarray(fit.cov_params())
        method = "OLS t-interval" + (" (standard errors clustered by group)" if fit_on == "plateau" else "")
    params = {name: float(value) for name, value in zip(names, log_coef, strict=True)}
    params["c"] = math.exp(log_coef[0])
    intervals = {name: (float(bounds[0, k]), float(bounds[1, k])) for k, name in enumerate(names)}
    intervals["c"] = (math.exp(bounds[0, 0]), math.exp(bounds[1, 0]))
    ranges = {v: (float(points[v].min()), float(points[v].max())) for v in spec.variables}
    return HparamLaw(
        name=spec.name, formula=spec.formula, variables=spec.variables, params=params, intervals=intervals,
        interval_method=method, level=level, stderr=stderr, log_coef=log_coef, log_cov=log_cov, draws=draws,
        residual_std=residual_std, ranges=ranges, fitted_on=fit_on, n_groups=n_groups,
        n_points=len(points), source=source,
        points=points[["group", *spec.variables, spec.target]].reset_index(drop=True),
    )


def _bootstrap_groups(design: np.ndarray, response: np.ndarray, group_codes: np.ndarray, n_groups: int,
                      n_bootstrap: int, seed: int) -> np.ndarray:
    """Refit on groups resampled with replacement; drop the resamples that cannot identify the law."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_groups, size=(n_bootstrap, n_groups))
    counts = np.stack([np.bincount(row, minlength=n_groups) for row in picks]).astype(float)
    weights = counts[:, group_codes]
    shift = design.mean(axis=0)
    shift[0] = 0.0
    centred = design - shift
    gram = np.einsum("br,ri,rj->bij", weights, centred, centred)
    moment = np.einsum("br,ri,r->bi", weights, centred, response)
    identifiable = np.linalg.cond(gram) < 1e10
    solved = np.linalg.solve(gram[identifiable], moment[identifiable][..., None])[..., 0]
    solved[:, 0] -= solved[:, 1:] @ shift[1:]
    return solved


# --- presets ------------------------------------------------------------------------------------------

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


def _preset_law(spec: _LawSpec, mean, cov, ranges, source: str, method: str, level: float) -> HparamLaw:
    names = ("c", *spec.exponents)
    log_coef = np.asarray(mean, dtype=float)
    log_cov = None if cov is None else np.asarray(cov, dtype=float)
    params = dict(zip(names, map(float, log_coef), strict=True))
    params["c"] = math.exp(log_coef[0])
    intervals = {}
    if log_cov is not None:
        half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(np.diag(log_cov))
        intervals = {name: (float(log_coef[k] - half[k]), float(log_coef[k] + half[k]))
                     for k, name in enumerate(names)}
        intervals["c"] = (math.exp(log_coef[0] - half[0]), math.exp(log_coef[0] + half[0]))
    return HparamLaw(
        name=spec.name, formula=spec.formula, variables=spec.variables, params=params, intervals=intervals,
        interval_method=method, level=level, stderr={}, log_coef=log_coef, log_cov=log_cov, draws=None,
        residual_std=None, ranges={v: ranges.get(v) for v in spec.variables}, fitted_on="published",
        n_groups=0, n_points=0, source=source,
    )


def preset_laws(name: str, *, level: float = DEFAULT_LEVEL) -> HparamLaws:
    """Published LR and batch-size laws, for comparison or when there is no sweep.

    ``steplaw``
        Step Law (Li et al. 2025, "Predictable Scale: Part I", arXiv:2503.04715), from 3,700 runs:
        lr* = 1.79 · N^-0.713 · D^0.307 and B* = 0.58 · D^0.571, N non-embedding parameters, D and B in
        tokens, sequence length 2048. Constants and intervals are the mean and covariance (normal
        approximation) of the authors' 1000 bootstrap fits (github.com/step-law/steplaw,
        ``data/1004_fitted_lr_bs_scaling_model_parameters.csv``); the fitted range is that of their
        released dense runs (N 2.1e8–1.1e9, D 4e9–1e11).
    ``deepseek``
        DeepSeek LLM (Bi et al. 2024, arXiv:2401.02954, Sec. 3.1): lr* = 0.3118 · C^-0.1250 and
        B* = 0.2920 · C^0.3271 tokens, where their C = M·D counts non-embedding FLOPs per token M
        (attention included); scalefit evaluates it at C = 6·N·D. No intervals or fitted range are
        published, so recommendations from it carry none.

    Parameters
    ----------
    name : {"steplaw", "deepseek"}
    level : float
        Interval level.
    """
    if name == "steplaw":
        source = "preset steplaw (Li et al. 2025, arXiv:2503.04715)"
        method = "normal approximation to the authors' 1000 bootstrap fits"
        laws = {
            "lr_vs_N_D": _preset_law(LAW_SPECS["lr_vs_N_D"], _STEPLAW_LR_MEAN, _STEPLAW_LR_COV,
                                     _STEPLAW_RANGES, source, method, level),
            "bs_vs_D": _preset_law(LAW_SPECS["bs_vs_D"], _STEPLAW_BS_MEAN, _STEPLAW_BS_COV,
                                   _STEPLAW_RANGES, source, method, level),
        }
        return HparamLaws(laws, source, seq_len=STEPLAW_SEQ_LEN)
    if name == "deepseek":
        source = "preset deepseek (Bi et al. 2024, arXiv:2401.02954)"
        method = "none published"
        laws = {
            "lr_vs_C": _preset_law(LAW_SPECS["lr_vs_C"], (math.log(0.3118), -0.1250), None, {}, source,
                                   method, level),
            "bs_vs_C": _preset_law(LAW_SPECS["bs_vs_C"], (math.log(0.2920), 0.3271), None, {}, source,
                                   method, level),
        }
        return HparamLaws(laws, source, notes=("C evaluated as 6ND; DeepSeek's C counts attention FLOPs",))
    raise ScalefitInputError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")


PRESETS = ("steplaw", "deepseek")


def fit_hparams(
    runs: pd.DataFrame,
    *,
    group_by: GroupBy = "params_tokens",
    tolerance: float = DEFAULT_PLATEAU_TOLERANCE,
    divergence_factor: float | None = DEFAULT_DIVERGENCE_FACTOR,
    fit_on: FitOn = "optima",
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    source: str = "runs",
) -> HparamLaws:
    """:func:`locate_optima` then :func:`fit_hparam_laws` (see them for the parameters)."""
    optima = locate_optima(runs, group_by=group_by, tolerance=tolerance,
                           divergence_factor=divergence_factor, level=level, source=source)
    return fit_hparam_laws(optima, fit_on=fit_on, n_bootstrap=n_bootstrap, level=level, seed=seed)


# --- recommending -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """Peak LR and batch size for one planned run, with intervals and provenance.

    Intervals are the ``level`` confidence intervals of the laws' means; ``*_prediction_interval`` add
    the scatter of the fitted groups' optima around the law (None for presets, which publish none).
    ``extrapolation_decades`` is the largest distance, in decades, of N, D or C outside the range the
    laws were fitted on (0 inside; None when the source gives no range).
    """

    params: float
    tokens: float
    flops: float
    lr: float
    lr_interval: tuple[float, float] | None
    lr_prediction_interval: tuple[float, float] | None
    batch_size_tokens: float | None
    batch_size_interval: tuple[float, float] | None
    batch_size_prediction_interval: tuple[float, float] | None
    seq_len: int | None
    level: float
    source: str
    lr_law: str
    bs_law: str | None
    extrapolation_decades: float | None
    extrapolation_by_variable: dict[str, float]
    warnings: tuple[str, ...]

    @property
    def batch_size_sequences(self) -> float | None:
        """Batch size in sequences of ``seq_len`` tokens."""
        if self.batch_size_tokens is None or self.seq_len is None:
            return None
        return self.batch_size_tokens / self.seq_len

    @property
    def batch_size_sequences_interval(self) -> tuple[float, float] | None:
        """The batch-size interval in sequences."""
        if self.batch_size_interval is None or self.seq_len is None:
            return None
        return (self.batch_size_interval[0] / self.seq_len, self.batch_size_interval[1] / self.seq_len)

    def summary(self) -> str:
        """Text for the terminal."""
        pct = f"{100 * self.level:.0f}%"
        lines = [(f"Planned run: N = {self.params:.4g} non-embedding params, D = {self.tokens:.4g} tokens "
                 f"(C = {self.flops:.3g} FLOPs)"),
                 f"  peak LR     {self.lr:.3e}" + _interval_text(self.lr_interval, pct, ".3e")]
        if self.lr_prediction_interval is not None:
            low, high = self.lr_prediction_interval
            lines.append(f"              {pct} prediction interval [{low:.3e}, {high:.3e}] (with the "
                         "groups' scatter around the law)")
        if self.batch_size_tokens is not None:
            lines.append(f"  batch size  {self.batch_size_tokens:.4g} tokens"
                         + _interval_text(self.batch_size_interval, pct, ".4g"))
            if self.batch_size_prediction_interval is not None:
                low, high = self.batch_size_prediction_interval
                lines.append(f"              {pct} prediction interval [{low:.4g}, {high:.4g}]")
            if self.batch_size_sequences is not None:
                lines.append(f"              {self.batch_size_sequences:.0f} sequences of {self.seq_len}"
                             + _interval_text(self.batch_size_sequences_interval, pct, ".0f"))
        lines.append(f"  law: {self.lr_law}" + (f"; {self.bs_law}" if self.bs_law else ""))
        lines.append(f"  from: {self.source}")
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able record, including ``batch_size_sequences``."""
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["batch_size_sequences"] = self.batch_size_sequences
        record["batch_size_sequences_interval"] = self.batch_size_sequences_interval
        record["warnings"] = list(self.warnings)
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in record.items()}


def _interval_text(interval: tuple[float, float] | None, pct: str, spec: str) -> str:
    if interval is None:
        return "   (no interval: the source publishes no uncertainty)"
    return f"   {pct} confidence interval [{interval[0]:{spec}}, {interval[1]:{spec}}]"


def recommend(
    params: float,
    tokens: float,
    laws: HparamLaws | str,
    *,
    flops: float | None = None,
    seq_len: int | None = None,
    level: float = DEFAULT_LEVEL,
    bs_law: BatchSizeLaw = "auto",
) -> Recommendation:
    """Recommend the peak LR and batch size for a run of N non-embedding params on D tokens.

    Uses ``lr_vs_N_D`` and ``bs_vs_D`` (Step Law's forms) when the laws have them, else the compute forms
    at C (``flops``, default 6·N·D); ``bs_law="N_D"`` takes the batch size from ``bs_vs_N_D`` instead.

    Parameters
    ----------
    params, tokens : float
        N (non-embedding parameters) and D (training tokens) of the planned run.
    laws : HparamLaws or str
        Fitted laws, or a preset name (see :func:`preset_laws`).
    flops : float, optional
        Training FLOPs C for the compute forms (default 6·N·D).
    seq_len : int, optional
        Sequence length to express the batch size in sequences (default: the laws' own).
    level : float
        Interval level.
    bs_law : {"auto", "D", "N_D"}
        Batch-size law: B*(D) (falling back to B*(C)), B*(N, D), or ``"auto"``: B*(N, D) when its N
        exponent's interval excludes 0, else B*(D).

    Returns
    -------
    Recommendation
    """
    if isinstance(laws, str):
        laws = preset_laws(laws, level=level)
    if not (params > 0 and tokens > 0):
        raise ScalefitInputError(f"params and tokens must be positive, got N={params}, D={tokens}")
    flops = 6.0 * params * tokens if flops is None else flops
    values = {"params": params, "tokens": tokens, "flops": flops}
    warnings: list[str] = []
    lr_law = _first_law(laws, ("lr_vs_N_D", "lr_vs_C"))
    if lr_law is None:
        raise ScalefitInputError(f"{laws.source} has no learning-rate law")
    if bs_law == "auto":
        bs_law = _auto_batch_size_law(laws)
    if bs_law not in BATCH_SIZE_LAWS:
        raise ScalefitInputError(f"bs_law must be auto or one of {sorted(BATCH_SIZE_LAWS)}, got {bs_law!r}")
    batch_law = _first_law(laws, BATCH_SIZE_LAWS[bs_law])
    lr, lr_ci, lr_pi = _predict_with_intervals(lr_law, values, level)
    bs = bs_ci = bs_pi = None
    if batch_law is None and bs_law == "N_D":
        raise ScalefitInputError(f"{laws.source} has no bs_vs_N_D law (laws: {sorted(laws.laws)})")
    if batch_law is None:
        reasons = [n for n in laws.notes if n.startswith("bs_vs_D ") or "batch-size laws" in n]
        warnings.append("no batch-size law, so no batch size: " + ("; ".join(reasons) if reasons else
                        "the source has none"))
    else:
        bs, bs_ci, bs_pi = _predict_with_intervals(batch_law, values, level)
    by_variable: dict[str, float] = {}
    unknown_range = False
    for law in filter(None, (lr_law, batch_law)):
        distances = law.extrapolation_decades(**values)
        if distances is None:
            unknown_range = True
            continue
        for variable, distance in distances.items():
            by_variable[variable] = max(distance, by_variable.get(variable, 0.0))
    decades = None if unknown_range else max(by_variable.values(), default=0.0)
    outside = {v: d for v, d in by_variable.items() if d > 0}
    if outside:
        detail = ", ".join(f"{LAW_VARIABLE_SYMBOLS[v]} by {d:.2f}" for v, d in outside.items())
        warnings.append(f"extrapolating {max(outside.values()):.2f} decades outside the fitted range "
                        f"({detail}): intervals assume the power law holds out there")
    if unknown_range:
        warnings.append(f"{laws.source} publishes no fitted range: extrapolation distance unknown")
    return Recommendation(
        params=float(params), tokens=float(tokens), flops=float(flops), lr=lr, lr_interval=lr_ci,
        lr_prediction_interval=lr_pi, batch_size_tokens=bs, batch_size_interval=bs_ci,
        batch_size_prediction_interval=bs_pi, seq_len=seq_len or laws.seq_len, level=level,
        source=laws.source, lr_law=f"{lr_law.name}: {_law_text(lr_law)}",
        bs_law=f"{batch_law.name}: {_law_text(batch_law)}" if batch_law else None,
        extrapolation_decades=decades, extrapolation_by_variable=by_variable, warnings=tuple(warnings),
    )


def _auto_batch_size_law(laws: HparamLaws) -> str:
    """``"N_D"`` when B*(N, D) was fitted and its N exponent's interval excludes 0, else ``"D"`` (Step Law's form).

    The data decide whether the extra N term is real: on Step Law's own dense runs it is (h ≈ −0.35, 90%
    interval [−0.54, −0.24]), and using it halves the leave-one-group-out loss gap.
    """
    law = _first_law(laws, ("bs_vs_N_D",))
    interval = None if law is None else law.intervals.get("h")
    if interval is not None and all(np.isfinite(interval)) and (interval[0] > 0 or interval[1] < 0):
        return "N_D"
    return "D"


def _first_law(laws: HparamLaws, names: tuple[str, ...]) -> HparamLaw | None:
    return next((laws[name] for name in names if name in laws), None)


def _law_text(law: HparamLaw) -> str:
    text = f"c={law.params['c']:.4g}"
    return law.formula + " with " + ", ".join(
        [text] + [f"{name}={value:.4g}" for name, value in law.params.items() if name != "c"]
    )


def _predict_with_intervals(law: HparamLaw, values: dict, level: float):
    estimate = float(law.predict(**values)[0])
    if law.log_cov is None:
        return estimate, None, None
    confidence = law.predict(**values, interval="confidence", level=level).iloc[0]
    prediction = None
    if law.residual_std is not None:
        row = law.predict(**values, interval="prediction", level=level).iloc[0]
        prediction = (float(row["lower"]), float(row["upper"]))
    return estimate, (float(confidence["lower"]), float(confidence["upper"])), prediction


# --- backtesting on the sweep -------------------------------------------------------------------------


def nearest_grid_loss_gap(optima: HparamOptima, laws: HparamLaws | str,
                          groups: list[str] | None = None, *, bs_law: BatchSizeLaw = "auto") -> pd.DataFrame:
    """Relative loss gap of the grid setting nearest each group's recommendation.

    For each group: recommend (lr, B) from ``laws`` at the group's (N, D), take the tried setting nearest
    to it in (log10 lr, log10 B) (diverged runs included: they are what that setting gave), and report
    ``loss_gap = loss(nearest) / best_loss - 1``. Step Law reports this figure as its headline accuracy.

    Parameters
    ----------
    optima : HparamOptima
    laws : HparamLaws or str
        Laws or a preset name.
    groups : list of str, optional
        Only these groups.
    bs_law : {"D", "N_D"}
        Batch-size law used by :func:`recommend`.

    Returns
    -------
    pandas.DataFrame
        Per group: ``group``, ``params``, ``tokens``, ``best_loss``, ``recommended_lr``,
        ``recommended_batch_size``, ``nearest_lr``, ``nearest_batch_size``, ``nearest_loss``, ``loss_gap``.
    """
    if isinstance(laws, str):
        laws = preset_laws(laws)
    rows = []
    selected = optima.groups if groups is None else optima.groups[optima.groups["group"].isin(groups)]
    for group in selected[selected["method"] != "none"].itertuples():
        advice = recommend(group.params, group.tokens, laws, flops=group.flops, bs_law=bs_law)
        tried = optima.runs[(optima.runs["group"] == group.group) & np.isfinite(optima.runs["loss"])]
        distance = (np.log10(tried["lr"]) - math.log10(advice.lr)) ** 2
        if advice.batch_size_tokens is not None and tried["batch_size"].notna().all():
            distance = distance + (np.log10(tried["batch_size"]) - math.log10(advice.batch_size_tokens)) ** 2
        nearest = tried.loc[distance.idxmin()]
        rows.append({
            "group": group.group, "params": group.params, "tokens": group.tokens,
            "best_loss": group.best_loss, "recommended_lr": advice.lr,
            "recommended_batch_size": advice.batch_size_tokens, "nearest_lr": float(nearest["lr"]),
            "nearest_batch_size": float(nearest["batch_size"]), "nearest_loss": float(nearest["loss"]),
            "loss_gap": float(nearest["loss"]) / group.best_loss - 1,
        })
    return pd.DataFrame(rows)


def leave_one_group_out(optima: HparamOptima, *, fit_on: FitOn = "optima",
                        bs_law: BatchSizeLaw = "auto") -> pd.DataFrame:
    """Backtest the fitted laws: fit on all groups but one, recommend for the one left out.

    Returns the :func:`nearest_grid_loss_gap` table, one row per held-out group (point estimates only:
    no bootstrap inside the loop). ``fit_on`` and ``bs_law`` as in :func:`fit_hparam_laws` and
    :func:`recommend`.
    """
    usable = optima.groups[optima.groups["method"] != "none"]
    tables = []
    for held_out in usable["group"]:
        training = HparamOptima(
            optima.groups[optima.groups["group"] != held_out], optima.runs[optima.runs["group"] != held_out],
            optima.tolerance, optima.level, optima.group_by, optima.source, optima.seq_len,
        )
        laws = fit_hparam_laws(training, fit_on=fit_on, n_bootstrap=0)
        tables.append(nearest_grid_loss_gap(optima, laws, groups=[held_out], bs_law=bs_law))
    return pd.concat(tables, ignore_index=True)


def _records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as dicts of plain Python values, NaN as None."""
    cleaned = frame.astype(object).where(frame.notna(), None)
    return [
        {key: (value.item() if isinstance(value, np.generic) else value) for key, value in row.items()}
        for row in cleaned.to_dict(orient="records")
    ]
