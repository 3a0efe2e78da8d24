"""The result of a task-scaling analysis: per-task chained predictions, predictability, both steps' laws."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalefit.flops import training_flops
from scalefit.results import (
    DEFAULT_LEVEL,
    Result,
    Summary,
    check_level,
    level_label,
    percentile_interval,
    prediction_frame,
    register,
)
from scalefit.tasks.chain import law_values, sigmoid_accuracy, step1_law
from scalefit.tasks.predictability import Thresholds

METHODS = {
    "two-step": "(N, D) → intermediate → accuracy (Bhagia et al. 2024)",
    "compute": "accuracy from log C directly (one sigmoid)",
    "via-loss": "(N, D) → general loss → accuracy",
}


@register
@dataclass(frozen=True, eq=False)
class TaskScalingResult(Result):
    """Predicted accuracy per task at target (N, D), with intervals and a predictability verdict.

    Attributes
    ----------
    tasks
        Per task (index): ``chance`` and where it came from, whether the floor was fitted, the step-2
        abscissa range ``x_lo``/``x_hi``, checkpoint ``noise`` and ``relative_noise``, the backtest on the
        largest size (``backtest_*``), ``predictable`` (at the first target) and ``reasons``.
    targets
        The targets: ``params``, ``tokens``, ``flops`` (6ND).
    params, draws
        Both steps' reported parameters as ``<task>/step1/<name>`` and ``<task>/step2/<name>`` (a general
        intermediate's step 1 is ``general/step1/<name>``), point estimates and bootstrap draws.
    prediction_draws
        ``{"<task>|<method>": {"mean": [targets], "draws": [[targets]...], "obs": [[targets]...]}}``.
    points
        The points fitted, per task: ``task, run_id, params, tokens, flops, intermediate, acc``.
    """

    tasks: pd.DataFrame
    targets: pd.DataFrame
    params: pd.Series
    draws: pd.DataFrame
    prediction_draws: dict
    points: pd.DataFrame
    intermediate: str
    step1_law: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    level: float = DEFAULT_LEVEL
    status: str = "ok"
    reasons: tuple = ()
    notes: tuple = ()
    settings: dict = field(default_factory=dict)

    kind = "task-scaling"
    schema_version = 1

    # -- predictions ---------------------------------------------------------------------------------
    def prediction(self, level: float | None = None) -> pd.DataFrame:
        """One frame, index (task, method, target): ``params, tokens, decades`` (of compute beyond the ladder),
        ``mean, mean_lo, mean_hi, obs_lo, obs_hi``
        at ``level`` (default: the analysis's), ``predictable`` and ``reasons`` (two-step rows; judged at the
        fit's level)."""
        level = check_level(self.level if level is None else level)
        frames = []
        for key, stored in self.prediction_draws.items():
            task, method = key.split("|")
            draws, obs = (np.asarray(stored[k], dtype=float).reshape(-1, len(self.targets)) for k in ("draws", "obs"))
            mean_lo, mean_hi = percentile_interval(draws, level)
            obs_lo, obs_hi = percentile_interval(obs, level)
            index = pd.MultiIndex.from_product([[task], [method], range(len(self.targets))],
                                               names=["task", "method", "target"])
            frame = prediction_frame(stored["mean"], index=index, mean_lo=mean_lo, mean_hi=mean_hi,
                                     obs_lo=obs_lo, obs_hi=obs_hi)
            frame.insert(0, "tokens", self.targets["tokens"].to_numpy())
            frame.insert(0, "params", self.targets["params"].to_numpy())
            frame.insert(2, "decades", self.decades_beyond(task))
            reasons = _reasons(self, task) if method == "two-step" else [["not the chosen method"]] * len(frame)
            frame["predictable"] = [not r for r in reasons]
            frame["reasons"] = ["; ".join(r) for r in reasons]
            frames.append(frame)
        return pd.concat(frames) if frames else pd.DataFrame()

    def table(self, level: float | None = None) -> pd.DataFrame:
        """The per-task answer at each target: how many decades of compute beyond the ladder, predicted
        accuracy (blank when not predictable), intervals, chance, predictability and reasons."""
        frame = self.prediction(level).xs("two-step", level="method").reset_index()
        tasks = self.tasks.loc[frame["task"]]
        return pd.DataFrame({
            "task": frame["task"], "params": frame["params"], "tokens": frame["tokens"],
            "decades": frame["decades"],
            "predicted": frame["mean"].where(frame["predictable"]), "raw_mean": frame["mean"],
            "mean_lo": frame["mean_lo"], "mean_hi": frame["mean_hi"],
            "obs_lo": frame["obs_lo"], "obs_hi": frame["obs_hi"],
            "chance": tasks["chance"].to_numpy(), "predictable": frame["predictable"],
            "reasons": frame["reasons"],
        })

    def decades_beyond(self, task: str) -> np.ndarray:
        """How far each target reaches: ``log10`` of its compute over the largest compute fitted for ``task``."""
        fitted = self.points.loc[self.points["task"] == task, "flops"]
        return np.log10(self.targets["flops"].to_numpy() / fitted.max())

    # -- curves for the plots ------------------------------------------------------------------------
    def step1_prefix(self, task: str) -> str:
        return f"{task}/step1/" if self.intermediate == "bpb" else "general/step1/"

    def _step_params(self, prefix: str, which: pd.Series | pd.DataFrame) -> pd.DataFrame:
        frame = which.to_frame().T if isinstance(which, pd.Series) else which
        picked = frame[[c for c in frame.columns if c.startswith(prefix)]]
        return picked.rename(columns=lambda c: c[len(prefix):]).astype(float)

    def intermediate_at(self, task: str, frame: pd.DataFrame, draws: bool = False) -> np.ndarray:
        """Step 1 at ``frame`` (params, tokens[, flops]): (1 or draws, points)."""
        frame = frame.assign(flops=training_flops(frame["params"], frame["tokens"])) if "flops" not in frame else frame
        source = self.draws if draws else self.params
        return law_values(step1_law(self.step1_law), self._step_params(self.step1_prefix(task), source), frame)

    def accuracy_at(self, task: str, x: np.ndarray, draws: bool = False) -> np.ndarray:
        """Step 2 at intermediate values ``x`` (m,) or (rows, m): (1 or draws, m)."""
        from scalefit.tasks.chain import sigmoid_for

        row = self.tasks.loc[task]
        law = sigmoid_for(np.array([row["x_lo"], row["x_hi"]]), column="intermediate")
        source = self.draws if draws else self.params
        return sigmoid_accuracy(law, self._step_params(f"{task}/step2/", source), x)

    # -- reporting -----------------------------------------------------------------------------------
    def summary(self, level: float | None = None) -> Summary:
        level = check_level(self.level if level is None else level)
        table = self.table(level)
        shown = table.assign(
            params=table["params"].map("{:.3g}".format), tokens=table["tokens"].map("{:.3g}".format),
            decades=table["decades"].map("{:.1f}".format),
            predictable=table["predictable"].map({True: "yes", False: "not predictable at this ladder"}),
        ).drop(columns=["raw_mean"]).set_index("task")
        compare = self.prediction(level)["mean"].unstack("method")
        header = [("Intermediate", self.intermediate), ("Step 1", self.step1_law),
                  ("Step 2", "acc = floor + (ceiling − floor) σ(k (x0 − x))"), ("Level", level_label(level)),
                  ("Runs", str(self.points["run_id"].nunique())),
                  ("Thresholds", (f"interval ≤ {100 * self.thresholds.max_width:g} points, backtest error ≤ "
                                 f"{100 * self.thresholds.max_backtest_error:g} points, noise ≤ "
                                 f"{self.thresholds.max_relative_noise:g} of the signal"))]
        return Summary(
            title="Task scaling (two steps: loss law → sigmoid)", header=header,
            tables=[((f"Predicted accuracy at the targets ({level_label(level)} intervals; blank = not "
                     "predictable)"), shown),
                    ("Methods compared (predicted mean)", compare)],
            notes=self.notes, status=self.status, reasons=self.reasons, float_format="{:.3f}",
        )

    def to_dict(self) -> dict:
        return {
            **self._envelope(), "intermediate": self.intermediate, "step1_law": self.step1_law,
            "level": self.level, "status": self.status, "reasons": list(self.reasons), "notes": list(self.notes),
            "thresholds": vars(self.thresholds), "settings": self.settings,
            "targets": self.targets.to_dict(orient="list"),
            "tasks": self.tasks.reset_index().to_dict(orient="list"),
            "params": self.params.to_dict(), "draws": self.draws.to_dict(orient="list"),
            "prediction_draws": self.prediction_draws, "points": self.points.to_dict(orient="list"),
            "prediction": self.table().to_dict(orient="records"),
        }

    @classmethod
    def from_dict(cls, doc: dict) -> TaskScalingResult:
        def frame(data):
            return pd.DataFrame({k: [np.nan if v is None else v for v in values] for k, values in data.items()})

        return cls(
            tasks=frame(doc["tasks"]).set_index("task"), targets=frame(doc["targets"]),
            params=pd.Series({k: np.nan if v is None else v for k, v in doc["params"].items()}, dtype=float),
            draws=frame(doc["draws"]), prediction_draws=doc["prediction_draws"], points=frame(doc["points"]),
            intermediate=doc["intermediate"], step1_law=doc["step1_law"], thresholds=Thresholds(**doc["thresholds"]),
            level=float(doc["level"]), status=doc["status"], reasons=tuple(doc["reasons"]),
            notes=tuple(doc["notes"]), settings=dict(doc["settings"]),
        )

    # -- plots ---------------------------------------------------------------------------------------
    def plot_steps(self, task: str):
        """Both steps and the chained curve of ``task`` (three panels), see :mod:`scalefit.plots`."""
        from scalefit.plots import plot_task_steps

        return plot_task_steps(self, task)


def _reasons(result: TaskScalingResult, task: str) -> list[list[str]]:
    """Per target, why the two-step prediction of ``task`` is not predictable (at the fit's level)."""
    from scalefit.tasks.predictability import verdict

    row = result.tasks.loc[task]
    backtest = None if not np.isfinite(row["backtest_size"]) else {
        "actual": row["backtest_actual"], "predicted": row["backtest_predicted"],
        "obs_lo": row["backtest_obs_lo"], "obs_hi": row["backtest_obs_hi"]}
    if backtest is not None and not np.isfinite(backtest["predicted"]):
        backtest["error"] = "fit failed"
    stored = result.prediction_draws[f"{task}|two-step"]
    draws = np.asarray(stored["draws"], dtype=float).reshape(-1, len(result.targets))
    lo, hi = percentile_interval(draws, result.level)
    issue = row.get("interval_issue")
    issue = issue if isinstance(issue, str) else None
    return [verdict(w, row["relative_noise"], backtest, result.thresholds, issue) for w in hi - lo]
