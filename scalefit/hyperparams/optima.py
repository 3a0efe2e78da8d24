"""Locating the optimal LR (and batch size) of every group of a sweep: best cell, plateau, interpolated optimum.

Per (N, D) group (or per FLOP budget): runs that are not ``ok``, not finite, or above ``divergence_factor`` ×
the group's best loss are excluded (and listed with the reason); the **plateau** is every run within
``tolerance`` of the best loss (0.25 %, Step Law); the **interpolated optimum** is the minimum of a convex
quadratic in (log10 lr, log10 batch size) fitted near the best cell (:mod:`.quadratic`), with a
delta-method interval; on the grid's edge, or where no convex quadratic fits, the best cell is used and a
warning says why. A group is **swept** when it tried at least three LRs or three batch sizes; the others
say nothing about an optimum and are only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.errors import ScalefitInputError
from scalefit.flops import training_flops
from scalefit.hyperparams.quadratic import HPARAM_AXES, QuadraticOptimum, quadratic_optimum
from scalefit.hyperparams.records import frame_from_records, records
from scalefit.results import (
    DEFAULT_LEVEL,
    ReasonedStatus,
    Result,
    Summary,
    check_level,
    level_label,
    register,
)

DEFAULT_PLATEAU_TOLERANCE = 0.0025
DEFAULT_DIVERGENCE_FACTOR = 1.5
MIN_VALUES_SWEPT = 3

GroupBy = Literal["params_tokens", "flops"]

_SUMMARY_COLUMNS = ["group", "n_runs", "n_excluded", "best_loss", "n_plateau", "opt_lr", "opt_lr_lower",
                    "opt_lr_upper", "opt_batch_size", "method"]
_RUN_COLUMNS = ["run_id", "group", "params", "tokens", "flops", "lr", "batch_size", "loss", "excluded",
                "exclusion_reason", "on_plateau"]


@register
@dataclass(frozen=True, eq=False)
class HparamOptima(ReasonedStatus, Result):
    """Per-group optima of an LR (× batch-size) sweep.

    Attributes
    ----------
    groups : pandas.DataFrame
        One row per group: ``group``, ``params``, ``tokens``, ``flops``, ``n_runs``, ``n_excluded``,
        ``n_lrs``/``n_batch_sizes`` (values tried), ``swept``, ``best_loss``/``best_lr``/``best_batch_size``
        (best grid cell), ``n_plateau`` and the plateau's ``plateau_lr_min``/``_max``,
        ``plateau_batch_size_min``/``_max``, the optimum ``opt_lr`` with ``opt_lr_log10_sd`` (delta method)
        and its ``opt_lr_lower``/``opt_lr_upper`` at :attr:`level`, the same for ``opt_batch_size``,
        ``opt_loss``, ``method`` (``quadratic``, ``grid`` or ``none``), ``n_fit_points``, ``lr_located``,
        ``batch_size_located`` and ``warning``.
    runs : pandas.DataFrame
        The final point of every run with ``group``, ``excluded``, ``exclusion_reason``, ``on_plateau``.
    tolerance : float
        Relative plateau tolerance.
    level : float
        Level of the ``opt_*_lower``/``_upper`` columns; :meth:`conf_int` gives any other.
    group_by : str
        ``params_tokens`` or ``flops``.
    source : str
        Where the runs came from.
    seq_len : int or None
        Sequence length of the runs when they share one.
    """

    kind = "hparam_optima"
    schema_version = 1

    groups: pd.DataFrame
    runs: pd.DataFrame
    tolerance: float
    level: float
    group_by: str
    source: str
    seq_len: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    # -- the protocol ---------------------------------------------------------------------------------
    @property
    def params(self) -> pd.Series:
        """Located optima of the swept groups, ``"<group>: lr"`` and ``"<group>: batch_size"``."""
        values = {}
        for row in self.swept.itertuples():
            for axis in HPARAM_AXES:
                if getattr(row, f"{axis}_located"):
                    values[f"{row.group}: {axis}"] = getattr(row, f"opt_{axis}")
        return pd.Series(values, dtype=float)

    @property
    def draws(self) -> pd.DataFrame:
        """No bootstrap: the optima's intervals come from the quadratic's delta method (:meth:`conf_int`)."""
        return pd.DataFrame()

    def conf_int(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Normal intervals in log10 from each optimum's delta-method standard error, at ``level``."""
        z = stats.norm.ppf(0.5 + check_level(level) / 2)
        frame = pd.DataFrame(np.nan, index=self.params.index, columns=["lo", "hi"])
        table = self.groups.set_index("group")
        for name in frame.index:
            group, axis = name.rsplit(": ", 1)
            centre, sd = np.log10(table.at[group, f"opt_{axis}"]), table.at[group, f"opt_{axis}_log10_sd"]
            frame.loc[name] = [10 ** (centre - z * sd), 10 ** (centre + z * sd)]
        return frame

    def _reason_lists(self) -> tuple[list[str], list[str]]:
        if not len(self.swept):
            return [f"no group tried {MIN_VALUES_SWEPT} or more LRs or batch sizes"], []
        located = self.swept["lr_located"] | self.swept["batch_size_located"]
        return [], [] if located.any() else ["no swept group has its optimum inside the grid"]

    # -- views ----------------------------------------------------------------------------------------
    @property
    def swept(self) -> pd.DataFrame:
        """The groups that tried at least three LRs or three batch sizes."""
        return self.groups[self.groups["swept"]]

    @property
    def n_skipped(self) -> int:
        """Groups that tried fewer than three LRs and fewer than three batch sizes."""
        return int((~self.groups["swept"]).sum())

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
        """One line per swept group whose optimum needs care (skipped groups are counted, not listed)."""
        flagged = self.swept[self.swept["warning"] != ""]
        return tuple(f"{row.group}: {row.warning}" for row in flagged.itertuples())

    def skipped_note(self) -> str:
        """How many groups were skipped and why ('' when none)."""
        if not self.n_skipped:
            return ""
        return (f"{self.n_skipped} of {len(self.groups)} groups skipped: they tried fewer than "
                f"{MIN_VALUES_SWEPT} LRs and fewer than {MIN_VALUES_SWEPT} batch sizes, so they locate no optimum")

    def summary(self) -> Summary:
        """The optima and plateaus of the swept groups, what was skipped and excluded, each warning once."""
        swept = self.swept
        header = [("Source", self.source), ("Groups", f"{len(swept)} swept of {len(self.groups)}"),
                  ("Plateau", f"within {100 * self.tolerance:.2f} % of the best loss"),
                  ("Intervals", f"{level_label(self.level)}, delta method on the quadratic")]
        notes = [self.skipped_note()] if self.n_skipped else []
        reasons = self.excluded[self.excluded["group"].isin(swept["group"])]["exclusion_reason"].value_counts()
        notes += [f"excluded {count} runs: {reason}" for reason, count in reasons.items()]
        notes += list(self.warnings)
        notes += list(self.notes)
        return Summary(f"LR optima ({self.group_by})", header,
                       ((f"Optima of the {len(swept)} swept groups", swept[_SUMMARY_COLUMNS].reset_index(drop=True)),),
                       notes, self.status, self.reasons)

    def to_dict(self) -> dict:
        """Settings, the per-group table and the runs (with their group, exclusion and plateau flags)."""
        return {
            **self._envelope(), "source": self.source, "group_by": self.group_by, "tolerance": self.tolerance,
            "level": self.level, "seq_len": self.seq_len, "notes": list(self.notes),
            "groups": records(self.groups),
            "runs": records(self.runs[[c for c in _RUN_COLUMNS if c in self.runs.columns]]),
        }

    @classmethod
    def from_dict(cls, doc: dict) -> HparamOptima:
        return cls(frame_from_records(doc["groups"], text=("group", "method", "warning")),
                   frame_from_records(doc["runs"], text=("run_id", "group", "exclusion_reason")),
                   float(doc["tolerance"]), float(doc["level"]), doc["group_by"], doc["source"], doc.get("seq_len"),
                   tuple(doc.get("notes", ())))

    def with_groups(self, keep: pd.Series) -> HparamOptima:
        """The same optima restricted to the groups where ``keep`` (aligned with :attr:`groups`) is true."""
        labels = self.groups.loc[keep, "group"]
        return HparamOptima(self.groups[keep].reset_index(drop=True),
                            self.runs[self.runs["group"].isin(labels)], self.tolerance, self.level,
                            self.group_by, self.source, self.seq_len, self.notes)

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

    fitted by least squares near the best cell (see :func:`scalefit.hyperparams.quadratic.quadratic_optimum`);
    when none fits, the best grid cell is used and the warning says why. An axis's optimum is *located*
    (and enters the laws) when at least three values were tried and the best is not on the grid's edge.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run (see :func:`scalefit.hyperparams.final_losses`) with ``params``, ``tokens``,
        ``loss``, ``lr`` and optionally ``batch_size`` [tokens], ``flops``, ``status``, ``seq_len``,
        ``token_budget`` (then D is the budget, since runs of one budget at different batch sizes end a
        few tokens apart).
    group_by : {"params_tokens", "flops"}
        Group by (N, D) pair (Step Law) or by training FLOPs (DeepSeek's compute budgets, 4 significant
        digits).
    tolerance : float
        Relative plateau tolerance.
    divergence_factor : float or None
        Runs above this multiple of the group's best loss count as diverged; None disables the rule.
    level : float
        Level of the optimum intervals in the table (default 0.95).
    source : str
        Where the runs came from (reported in results).

    Returns
    -------
    HparamOptima
    """
    source = str(source)
    missing = [column for column in ("params", "tokens", "loss", "lr") if column not in runs.columns]
    if missing:
        raise ScalefitInputError(f"{source}: the runs need columns {missing} to locate LR optima")
    level = check_level(level)
    table = runs.reset_index(drop=True).copy()
    if "token_budget" in table.columns:  # runs of one budget at different batch sizes end a few tokens apart
        table["tokens"] = table["token_budget"]
    if "batch_size" not in table.columns:
        table["batch_size"] = np.nan
    if "flops" not in table.columns:
        table["flops"] = training_flops(table["params"], table["tokens"])
    if "run_id" not in table.columns:
        table["run_id"] = [f"row{k}" for k in range(len(table))]
    for column in ("params", "tokens", "loss", "lr", "batch_size", "flops"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    bad_lr = ~(table["lr"] > 0)
    if bad_lr.any():
        raise ScalefitInputError(f"{source}: {int(bad_lr.sum())} runs have a missing or non-positive lr "
                                 f"(first row {int(np.flatnonzero(bad_lr)[0])}); drop them or fill the lr column")
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
        rows.append(_describe_group(label, members, usable, tolerance))
        if len(usable):
            plateau = usable["loss"] <= (1 + tolerance) * usable["loss"].min()
            table.loc[usable.index[plateau.to_numpy()], "on_plateau"] = True
    groups = pd.DataFrame(rows).sort_values(["params", "tokens", "flops"], kind="stable").reset_index(drop=True)
    groups = _with_bounds(groups, level)
    seq_len = None
    if "seq_len" in table.columns and table["seq_len"].nunique() == 1:
        seq_len = int(table["seq_len"].iloc[0])
    return HparamOptima(groups, table, tolerance, level, group_by, source, seq_len)


def _with_bounds(groups: pd.DataFrame, level: float) -> pd.DataFrame:
    """Add ``swept`` and ``opt_<axis>_lower``/``_upper`` at ``level`` (normal in log10)."""
    z = stats.norm.ppf(0.5 + level / 2)
    groups = groups.copy()
    for column in ("n_lrs", "n_batch_sizes"):  # absent where every run of a group was excluded
        groups[column] = (groups[column] if column in groups else pd.Series(0, index=groups.index)).fillna(0)
    groups["swept"] = (groups["n_lrs"] >= MIN_VALUES_SWEPT) | (groups["n_batch_sizes"] >= MIN_VALUES_SWEPT)
    for axis in HPARAM_AXES:
        for column in (f"opt_{axis}", f"opt_{axis}_log10_sd"):
            if column not in groups:
                groups[column] = np.nan
        centre, sd = np.log10(groups[f"opt_{axis}"].astype(float)), groups[f"opt_{axis}_log10_sd"].astype(float)
        groups[f"opt_{axis}_lower"] = 10 ** (centre - z * sd)
        groups[f"opt_{axis}_upper"] = 10 ** (centre + z * sd)
    return groups


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


def _describe_group(label: str, members: pd.DataFrame, usable: pd.DataFrame, tolerance: float) -> dict:
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
    optimum = None if edge else quadratic_optimum(usable, best)
    if isinstance(optimum, QuadraticOptimum):
        return row | optimum.as_row()
    warning = f"{edge or optimum}; using the best grid cell"
    return row | {
        "opt_lr": row["best_lr"], "opt_lr_log10_sd": np.nan,
        "opt_batch_size": row["best_batch_size"], "opt_batch_size_log10_sd": np.nan,
        "opt_loss": row["best_loss"], "method": "grid",
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


