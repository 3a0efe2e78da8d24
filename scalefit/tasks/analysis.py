"""``fit_task_scaling``: predict each task's accuracy at a target (N, D) from a ladder of smaller runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scalefit.errors import FitError, ScalefitInputError
from scalefit.flops import training_flops
from scalefit.points import points as choose_points
from scalefit.results import DEFAULT_LEVEL, check_level, percentile_interval, status_from
from scalefit.tasks import table as tt
from scalefit.tasks.chain import STEP1_LAWS, Chain, chain, fit_sigmoid, fit_step1, one_step
from scalefit.tasks.predictability import Thresholds, checkpoint_noise, verdict
from scalefit.tasks.result import TaskScalingResult

INTERMEDIATES = ("bpb", "loss", "ppl")


def targets_frame(params: float | Sequence[float], tokens: float | Sequence[float]) -> pd.DataFrame:
    """Targets ``params, tokens, flops`` (6ND) from scalars or equal-length lists (a scalar is broadcast)."""
    try:
        n, d = np.broadcast_arrays(np.atleast_1d(np.asarray(params, float)), np.atleast_1d(np.asarray(tokens, float)))
    except ValueError:
        raise ScalefitInputError("give one --predict-tokens per --predict-params, or one for all") from None
    if not (np.isfinite(n).all() and np.isfinite(d).all() and (n > 0).all() and (d > 0).all()):
        raise ScalefitInputError("target params and tokens must be finite numbers > 0")
    return pd.DataFrame({"params": n, "tokens": d, "flops": training_flops(n, d)})


def intermediate_values(frame: pd.DataFrame, task: str, kind: str, reference: str | None) -> pd.Series:
    """The step-1/step-2 intermediate of ``task``: its bpb, the general ``loss``, or ``log`` of a perplexity."""
    if kind == "bpb":
        name = tt.column(task, "bpb")
        if name not in frame:
            raise ScalefitInputError(f"--intermediate bpb needs the column {name!r}; the table lacks it (use "
                                     "--intermediate loss or ppl)")
        return frame[name]
    if kind == "loss":
        if "loss" not in frame:
            raise ScalefitInputError("--intermediate loss needs a 'loss' column (the general validation loss)")
        return frame["loss"]
    return np.log(frame[tt.column(reference, "ppl")])


def perplexity_task(frame: pd.DataFrame, wanted: str | None) -> str:
    """The task whose ``ppl`` is the general intermediate: ``wanted``, or the only task with a ``ppl``."""
    have = sorted(c[len(tt.PREFIX):-len("/ppl")] for c in frame.columns if c.startswith(tt.PREFIX) and
                  c.endswith("/ppl"))
    if wanted is not None:
        if wanted not in have:
            raise ScalefitInputError(f"--intermediate-task {wanted}: no column {tt.column(wanted, 'ppl')!r}; tasks "
                                     f"with a perplexity: {', '.join(have) or 'none'}")
        return wanted
    if len(have) != 1:
        raise ScalefitInputError("--intermediate ppl needs one task/<name>/ppl column; the table has "
                                 f"{len(have)} ({', '.join(have) or 'none'}): name one with --intermediate-task")
    return have[0]


def fit_task_scaling(
    frame: pd.DataFrame,
    targets: pd.DataFrame,
    tasks: Sequence[str] | None = None,
    *,
    intermediate: str = "bpb",
    intermediate_task: str | None = None,
    chance: dict[str, float] | None = None,
    fit_floor: bool = False,
    step1: str = "chinchilla",
    bootstrap: int = 200,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    min_fraction: float = 0.1,
    thresholds: Thresholds | None = None,
    backtest: bool = True,
    alternatives: bool = True,
    source: str = "the table",
) -> TaskScalingResult:
    """Predict each task's accuracy at ``targets`` by the two-step method of Bhagia et al. (2024).

    Step 1 fits ``step1`` (a law from :mod:`scalefit.laws`) from (N, D) to the intermediate on every
    checkpoint past ``min_fraction`` of its run; step 2 fits a sigmoid with the chance floor (fixed, or
    fitted with ``fit_floor`` or when the chance had to be inferred) from the intermediate to the accuracy on
    every checkpoint; the chain is bootstrapped over runs through both steps (``bootstrap`` draws).
    Alternatives for comparison: accuracy from log compute in one step, and — with ``intermediate="bpb"``
    and a ``loss`` column — the chain through the general loss. Each task is then judged predictable or not
    (:mod:`scalefit.tasks.predictability`).

    Parameters
    ----------
    frame
        A validated wide task table (:func:`scalefit.tasks.table.validate`).
    targets
        :func:`targets_frame`.
    tasks
        Task names (default: every task with an accuracy).
    intermediate
        ``bpb`` (the task's bits per byte), ``loss`` (the general loss), ``ppl`` (log of a task's perplexity,
        ``intermediate_task`` or the only task that has one).
    chance
        Chance accuracy per task, overriding the table's.
    """
    level = check_level(level)
    thresholds = thresholds or Thresholds()
    if intermediate not in INTERMEDIATES:
        raise ScalefitInputError(f"--intermediate must be one of {', '.join(INTERMEDIATES)}, not {intermediate!r}")
    if step1 not in STEP1_LAWS:
        raise ScalefitInputError(f"the step-1 law must be one of {', '.join(STEP1_LAWS)}, not {step1!r}")
    names = tt.select_tasks(frame, list(tasks) if tasks else None, source)
    reference = perplexity_task(frame, intermediate_task) if intermediate == "ppl" else None
    chances = tt.chance_levels(frame, names, chance)
    base = frame[["run_id", "params", "tokens"]].assign(flops=training_flops(frame["params"], frame["tokens"]))
    fits = _Fits(step1, bootstrap, seed, min_fraction)

    params, draws, predictions, rows, all_points, failed, suspect = {}, {}, {}, {}, [], [], []
    below_chance, ceiling_at_one = [], []
    for task in names:
        points = base.assign(intermediate=intermediate_values(frame, task, intermediate, reference).to_numpy(),
                             acc=frame[tt.column(task, "acc")].to_numpy())
        points = points[points["acc"].notna()]
        all_points.append(points.assign(task=task))
        level_value, origin = chances[task]
        below = float((points["acc"] < level_value - 0.01).mean())
        if below > 0.25 and not origin.startswith("inferred"):
            below_chance.append(f"{task} ({100 * below:.0f} %)")
        floor = None if (fit_floor or origin.startswith("inferred") or below > 0.25) else level_value
        key = task if intermediate == "bpb" else "general"
        try:
            main = fits.chain(points, key, floor, targets)
        except FitError as err:
            failed.append(f"{task}: {err}")
            rows[task] = _task_row(level_value, origin, floor is None, points, thresholds, None, [str(err)], "")
            continue
        _collect(params, draws, key, task, main)
        predictions[f"{task}|two-step"] = _stored(main.mean, main.draws, main.obs_draws)
        owner = f"{task}: step 1" if key == task else "step 1 (shared by every task)"
        suspect += [f"{owner}: {problem}" for problem in _flags(main.step1)]
        problems = _flags(main.step2)
        on_constraint = [p for p in problems if p.split(" ")[0] in ("reach", "floor") and "ended on its bound" in p]
        others = [p for p in problems if p not in on_constraint]
        suspect += [f"{task}: step 2: {problem}" for problem in others]
        if on_constraint and not others:
            ceiling_at_one.append(task)
        if alternatives:
            predictions.update(_alternatives(fits, frame, base, points, task, floor, intermediate, targets, seed))
        tried = _backtest(fits, points, key, floor, level) if backtest else None
        width = _width(main.draws, level)
        noise, relative = checkpoint_noise(points, last_k=thresholds.last_k)
        issue = _interval_issue(main)
        if issue:
            suspect.append(f"no interval can be read from the bootstrap: {issue}")
        reasons = verdict(width[0], relative, tried, thresholds, issue)
        rows[task] = _task_row(level_value, origin, floor is None, points, thresholds, tried, reasons, issue,
                               main.step2.law.x_range, noise, relative)

    suspect = list(dict.fromkeys(suspect))  # a shared step 1 is flagged once
    all_failed = len(failed) == len(names)
    status, status_reasons = status_from(failed if all_failed else (), ([] if all_failed else failed) + suspect)
    notes = [*frame.attrs.get("notes", []), (f"{bootstrap} bootstrap draws over runs through both steps (draw i of step 1 and of step 2 refit "
             "the same resample of runs)"),
             (f"step 1 fitted on checkpoints with ≥ {100 * min_fraction:g} % of their run's final tokens; "
             "step 2 on every checkpoint")]
    if intermediate == "ppl":
        notes.append(f"intermediate: log perplexity of {reference} (a general loss: Pythia-style tables have no "
                     "per-task bits per byte)")
    inferred = [t for t in names if chances[t][1].startswith("inferred")]
    if inferred:
        notes.append(f"chance inferred and the floor fitted for: {', '.join(inferred)} (give --chance TASK=P or a "
                     "task/<name>/n_choices column to fix it)")
    if ceiling_at_one:
        notes.append("the sigmoid's ceiling (or floor) sits on its constraint (ceiling ≤ 1, floor ≥ 0) for: "
                     + ", ".join(ceiling_at_one) + "; the ladder does not reach the saturation")
    if below_chance:
        notes.append("floor fitted, not fixed at chance, where over a quarter of the points score below chance: "
                     + ", ".join(below_chance))
    return TaskScalingResult(
        tasks=pd.DataFrame.from_dict(rows, orient="index").rename_axis("task"),
        targets=targets.reset_index(drop=True), params=pd.Series(params, dtype=float),
        draws=pd.DataFrame(draws), prediction_draws=predictions,
        points=pd.concat(all_points, ignore_index=True) if all_points else pd.DataFrame(),
        intermediate=intermediate if reference is None else f"log ppl ({reference})", step1_law=step1,
        thresholds=thresholds, level=level, status=status, reasons=status_reasons, notes=tuple(notes),
        settings={"bootstrap": bootstrap, "seed": seed, "min_fraction": min_fraction, "fit_floor": fit_floor,
                  "source": source},
    )


class _Fits:
    """Fits shared between tasks: step 1 of a general intermediate is fitted once per set of runs."""

    def __init__(self, step1: str, bootstrap: int, seed: int, min_fraction: float) -> None:
        self.step1, self.bootstrap, self.seed, self.min_fraction = step1, bootstrap, seed, min_fraction
        self._step1_cache = {}

    def step1_fit(self, points: pd.DataFrame, key: str):
        runs = tuple(sorted(points["run_id"].unique()))
        if (key, runs) not in self._step1_cache or not key.startswith("general"):
            self._step1_cache[(key, runs)] = fit_step1(points, self.step1, bootstrap=self.bootstrap, seed=self.seed,
                                                      min_fraction=self.min_fraction)
        return self._step1_cache[(key, runs)]

    def chain(self, points: pd.DataFrame, key: str, floor: float | None, targets: pd.DataFrame) -> Chain:
        points = points[points["intermediate"].notna()]
        runs_with_accuracy = points.loc[points["acc"] > 0, "run_id"].unique()
        points = points[points["run_id"].isin(runs_with_accuracy)]  # one set of runs for both steps
        if points["run_id"].nunique() < 2:
            raise FitError("fewer than two runs have both the intermediate and an accuracy > 0")
        step1 = self.step1_fit(points, key)
        step2 = fit_sigmoid(points, "intermediate", floor, bootstrap=self.bootstrap, seed=self.seed)
        return chain(step1, step2, targets, points, self.seed)


def _flags(fitted) -> list[str]:
    """The engine's reasons for flagging a fit, one item each, without scipy's message."""
    if fitted.success:
        return []
    return fitted.message.split(" (scipy L-BFGS-B:")[0].split("; ")


def _alternatives(fits, frame, base, points, task, floor, intermediate, targets, seed) -> dict:
    out = {}
    try:
        direct = fit_sigmoid(points, "flops", floor, bootstrap=fits.bootstrap, seed=seed, log_x=True, increasing=True)
        out[f"{task}|compute"] = _stored(*one_step(direct, targets, points, seed))
    except FitError:
        pass
    if intermediate == "bpb" and "loss" in frame:
        try:
            via = fits.chain(points.assign(intermediate=frame.loc[points.index, "loss"].to_numpy()), "general",
                             floor, targets)
            out[f"{task}|via-loss"] = _stored(via.mean, via.draws, via.obs_draws)
        except FitError:
            pass
    return out


def _backtest(fits: _Fits, points: pd.DataFrame, key: str, floor: float | None, level: float) -> dict | None:
    """Fit on every size but the largest; predict the largest run's final accuracy."""
    sizes = np.sort(points["params"].unique())
    if len(sizes) < 3:
        return None
    largest = points[points["params"] == sizes[-1]]
    final = choose_points(largest, "final", status=None, split=None)
    target = pd.DataFrame({"params": [sizes[-1]], "tokens": [final["tokens"].median()]})
    target["flops"] = training_flops(target["params"], target["tokens"])
    actual = float(final["acc"].mean())
    try:
        held = fits.chain(points[points["params"] < sizes[-1]], f"{key}-backtest", floor, target)
    except FitError as err:
        return {"size": sizes[-1], "actual": actual, "predicted": np.nan, "obs_lo": np.nan, "obs_hi": np.nan,
                "error": str(err)}
    readable = len(held.obs_draws) and not _interval_issue(held)
    obs_lo, obs_hi = percentile_interval(held.obs_draws, level) if readable else (np.nan, np.nan)
    return {"size": sizes[-1], "actual": actual, "predicted": float(held.mean[0]),
            "obs_lo": float(np.ravel(obs_lo)[0]), "obs_hi": float(np.ravel(obs_hi)[0])}


def _width(draws: np.ndarray, level: float) -> np.ndarray:
    if not len(draws):
        return np.full(draws.shape[1], np.nan)
    lo, hi = percentile_interval(draws, level)
    return hi - lo


def _stored(mean, draws, obs) -> dict:
    return {"mean": np.asarray(mean, float).tolist(), "draws": np.asarray(draws, float).tolist(),
            "obs": np.asarray(obs, float).tolist()}


def _collect(params: dict, draws: dict, key: str, task: str, main: Chain) -> None:
    prefix1 = f"{task}/step1/" if key == task else "general/step1/"
    for fitted, prefix in ((main.step1, prefix1), (main.step2, f"{task}/step2/")):
        names = [c for c in fitted.params.index]
        for name in names:
            params[prefix + name] = float(fitted.params[name])
            draws[prefix + name] = fitted.draws[name].to_numpy(dtype=float) if len(fitted.draws) else np.empty(0)


def _interval_issue(fitted: Chain) -> str:
    """The engine's reasons (if any) why either step's bootstrap gives no interval, one line."""
    issues = [getattr(step, "interval_issue", None) for step in (fitted.step1, fitted.step2)]
    return "; ".join(dict.fromkeys(issue for issue in issues if issue))


def _task_row(chance, origin, floor_fitted, points, thresholds, tried, reasons, issue, x_range=(np.nan, np.nan),
              noise=np.nan, relative=np.nan) -> dict:
    tried = tried or {}
    return {"chance": chance, "chance_source": origin, "floor_fitted": bool(floor_fitted), "interval_issue": issue,
            "x_lo": x_range[0], "x_hi": x_range[1], "noise": noise, "relative_noise": relative,
            "backtest_size": tried.get("size", np.nan), "backtest_actual": tried.get("actual", np.nan),
            "backtest_predicted": tried.get("predicted", np.nan), "backtest_obs_lo": tried.get("obs_lo", np.nan),
            "backtest_obs_hi": tried.get("obs_hi", np.nan), "predictable": not reasons, "reasons": "; ".join(reasons)}
