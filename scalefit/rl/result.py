"""The fitted RL law as a result (:class:`RLFit`): estimates, segment-bootstrap draws, per-size table,
backtest errors, predictions, status, and save/load (``rl.json``, docs/rl-json.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.fitting import FitResult
from scalefit.io import json_safe
from scalefit.laws.rl_efficiency import RLEfficiency
from scalefit.results import (
    DEFAULT_LEVEL,
    STATUSES,
    Result,
    Summary,
    check_level,
    level_label,
    percentile_interval,
    prediction_frame,
    register,
)
from scalefit.rl.backtest import describe_protocol
from scalefit.rl.data import Clipping

TITLE = "RL post-training scaling law (Tan et al. 2025)"
FORMULA = "log L = -k(N) log X + E(N), k(N) = K_max / (1 + N0/N)"
LAW_NAME = "rl-efficiency (Tan et al. 2025, arXiv:2509.25300)"
#: Columns of the per-size table, in order (those a result has); ``_lo``/``_hi`` bounds follow ``k`` and ``E``.
SIZE_COLUMNS = ("N", "role", "n_points", "k", "E", "k_free", "E_slope_only", "E_full")
TEXT_POINT_COLUMNS = ("run_id", "size", "role")


def sizes_frame(entries: Mapping[str, Mapping]) -> pd.DataFrame:
    """The per-size table (index: size label) from one mapping per size, columns in :data:`SIZE_COLUMNS` order."""
    frame = pd.DataFrame.from_dict({label: dict(entry) for label, entry in entries.items()}, orient="index")
    frame = frame[[c for c in SIZE_COLUMNS if c in frame.columns]]
    for column in frame.columns.drop("role"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["n_points"] = frame["n_points"].astype(int)
    frame.index.name = "size"
    return frame


@register
@dataclass(frozen=True, eq=False)
class RLFit(Result):
    """A fitted learning-efficiency law, its intervals, and (with a protocol) its held-out errors.

    Follows the result protocol (:mod:`scalefit.results`): :attr:`params`, :meth:`conf_int` (percentiles of
    the segment-bootstrap :attr:`draws` at any level), :meth:`prediction` (one prediction frame), ``status``
    with ``reasons``, :meth:`summary`, :meth:`save` / :meth:`load` (kind ``rl``, docs/rl-json.md).

    Attributes
    ----------
    fit
        The engine's :class:`~scalefit.fitting.FitResult` on the fitted points (``success``/``message``
        say whether the optimum can be trusted, e.g. ``N0`` on its bound when ``k`` does not saturate).
    x, x_column, metric
        What ``X`` is (``compute`` or ``data``), its column, and the metric column (``"L"`` when the
        metric was the error rate itself).
    sizes
        One row per size (index: size label): ``N``, ``role`` (``fit`` or ``target``), ``n_points``, ``k``,
        ``E`` (fitted sizes), ``k_free`` (the size's own least-squares slope of ``log L`` on ``log X`` over
        the points it was fitted on, a check of the saturating form), and for targets ``E_slope_only`` /
        ``E_full``. :attr:`per_size` adds the intervals.
    draws
        Converged segment-bootstrap refits, one per row: ``K_max``, ``N0`` (absent when the bootstrap held
        it at its bound), every ``E[...]`` and ``k[...]``.
    interval_method, n_requested
        E.g. ``bootstrap-segment(3)``: the block bootstrap with segments of 3 points (``none`` without), and
        the number of replicates asked for (:attr:`n_bootstrap` of them converged).
    r2, r2_log
        Coefficient of determination of the fit on ``L`` and on ``log L`` (fitted points, unweighted).
    protocol
        None, or the backtest: ``name``, ``fraction`` or ``k``, and for ``holdout-largest`` the ``variants``,
        ``anchor`` fraction, ``targets`` and ``intercept_trend``.
    heldout_error
        None, or the errors on held-out points: ``rmse`` (of L), ``r2``, ``rel_error_end`` (mean over curves
        of ``|L̂ − L| / L`` at each curve's last point), ``rel_error_end_max``, ``n_points``, ``per_size``;
        for ``holdout-largest`` one such dict per variant, keyed by its name.
    points
        Every point: ``run_id, params, <x column>, loss`` (= L), ``size``, ``x``, ``role`` (``fit``,
        ``heldout`` or ``anchor``), ``L_hat`` (the fitted law, at fitted sizes) and for targets
        ``L_hat_slope_only`` / ``L_hat_full``.
    clipping
        How error rates of 0 or 1 were clipped.
    status, reasons
        ``ok``; ``suspect`` (the optimiser did not accept the optimum, e.g. ``N0`` on its bound; fewer than
        half the bootstrap refits converged); ``failed`` (no usable optimum).
    notes
        Every row dropped or adjusted, every caveat (the reasons included).
    level
        Default coverage of :attr:`intervals`, :attr:`per_size` and :meth:`prediction` (0.95).
    segment_length, n0_held, seed, source
        Points per bootstrap segment; ``"lower"``/``"upper"`` when the bootstrap held ``N0`` at that bound;
        the bootstrap's seed (also of the new-run draws of :meth:`prediction`); the runs table.
    """

    kind = "rl"
    schema_version = 1

    fit: FitResult
    x: str
    x_column: str
    metric: str
    sizes: pd.DataFrame
    draws: pd.DataFrame
    interval_method: str
    n_requested: int
    r2: float
    r2_log: float
    protocol: dict | None
    heldout_error: dict | None
    points: pd.DataFrame
    clipping: Clipping
    status: str = "ok"
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    level: float = DEFAULT_LEVEL
    segment_length: int | None = None
    n0_held: str | None = None
    seed: int = 0
    source: str | None = None

    # -- estimates and intervals ----------------------------------------------------------------------
    @property
    def law(self) -> RLEfficiency:
        return self.fit.law

    @property
    def params(self) -> pd.Series:
        """``K_max``, ``N0``, every ``E[<size>]`` and every ``k[<size>]`` (derived)."""
        return self.fit.params.copy()

    @property
    def n_bootstrap(self) -> int:
        """Bootstrap refits that converged (the intervals use those)."""
        return len(self.draws)

    @property
    def intervals(self) -> pd.DataFrame:
        """``lo``/``hi`` of every parameter at :attr:`level` (``conf_int(self.level)``)."""
        return self.conf_int(self.level)

    @property
    def per_size(self) -> pd.DataFrame:
        """:attr:`sizes` with ``k_lo``/``k_hi`` and ``E_lo``/``E_hi`` at :attr:`level`."""
        return self.per_size_table(self.level)

    def per_size_table(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """:attr:`sizes` with the intervals of ``k`` and ``E`` at ``level`` (NaN at held-out sizes)."""
        bounds = self.conf_int(level)
        table = self.sizes.copy()
        columns = []
        for column in table.columns:
            columns.append(column)
            if column in ("k", "E"):
                names = {label: self._size_parameter(column, n) for label, n in table["N"].items()
                         if table.loc[label, "role"] == "fit"}
                for side in ("lo", "hi"):
                    table[f"{column}_{side}"] = pd.Series({label: bounds.loc[name, side]
                                                          for label, name in names.items()}, dtype=float)
                    columns.append(f"{column}_{side}")
        return table[columns]

    def _size_parameter(self, column: str, n: float) -> str:
        index = int(self.law.size_index([n])[0])
        return self.law.derived_names[index] if column == "k" else self.law.reported_names[2 + index]

    # -- prediction ------------------------------------------------------------------------------------
    def prediction(self, X: pd.DataFrame | Mapping[str, object] | None = None,
                   level: float | None = None) -> pd.DataFrame:
        """The law's ``L`` at fitted sizes, as one prediction frame (``mean, mean_lo, mean_hi, obs_lo, obs_hi``).

        Parameters
        ----------
        X
            ``params`` (a fitted size: the intercept ``E`` is free per size) and ``X`` (the column
            :attr:`x_column` or ``x``); default: every point of a fitted size.
        level
            Coverage (default :attr:`level`).

        Notes
        -----
        With ``ℓ_b`` the log prediction of bootstrap draw ``b``, ``mean_lo/hi`` are percentiles of
        ``exp(ℓ_b)``; ``obs_lo/hi`` (one new evaluation) add a log residual of the fit drawn at random per
        draw and row. Bounds are NaN without draws.
        """
        level = check_level(self.level if level is None else level)
        if X is None:
            frame = self.points[self.points["params"].isin(self.law.sizes)]
        else:
            frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame({k: np.atleast_1d(v) for k, v in X.items()})
        if self.x_column not in frame.columns and "x" in frame.columns:
            frame = frame.assign(**{self.x_column: frame["x"]})
        try:
            inputs = self.law.input_array(frame)
            self.law.size_index(inputs[:, 0])
        except (KeyError, ValueError) as err:
            raise ScalefitInputError(f"RL predictions need columns params (one of the fitted sizes "
                                     f"{[float(n) for n in self.law.sizes]}) and {self.x_column}: {err}") from None
        mean = self.law.predict(self.params, frame)
        nan = np.full(len(frame), np.nan)
        bounds = dict.fromkeys(("mean_lo", "mean_hi", "obs_lo", "obs_hi"), nan)
        if len(self.draws):
            reported = self.draws.reindex(columns=list(self.law.reported_names))
            reported["N0"] = reported["N0"].fillna(self.params["N0"])  # held at its bound: not in the draws
            log_draws = self.law.log_predict(self.law.to_fitted(reported), inputs)
            residuals = self.fit.residuals.to_numpy()
            noise = np.random.default_rng(self.seed).choice(residuals, size=log_draws.shape)
            bounds["mean_lo"], bounds["mean_hi"] = percentile_interval(np.exp(log_draws), level)
            bounds["obs_lo"], bounds["obs_hi"] = percentile_interval(np.exp(log_draws + noise), level)
        return prediction_frame(mean, index=frame.index, **bounds)

    # -- reporting --------------------------------------------------------------------------------------
    def _intervals_line(self, level: float) -> str:
        if self.interval_method == "none":
            return "none (bootstrap=0)"
        line = (f"{level_label(level)}, {self.interval_method}: {self.n_bootstrap} of {self.n_requested} "
                "refits converged")
        return line + (f"; N0 held at its {self.n0_held} bound (no interval)" if self.n0_held else "")

    def backtest_table(self) -> pd.DataFrame:
        """Held-out errors, one row per prediction variant (``held-out`` for ``early``); empty without a
        protocol."""
        if self.protocol is None:
            return pd.DataFrame()
        by_variant = self.protocol["name"] == "holdout-largest"
        errors = self.heldout_error if by_variant else {"held-out": self.heldout_error}
        columns = ("rmse", "r2", "rel_error_end", "rel_error_end_max", "n_points")
        return pd.DataFrame.from_dict({name: {c: err[c] for c in columns} for name, err in errors.items()},
                                      orient="index")

    def summary(self, level: float | None = None) -> Summary:
        """The law, estimates with intervals at ``level``, the per-size table, fit quality, the backtest."""
        level = check_level(self.level if level is None else level)
        n_fitted = int((self.points["role"] == "fit").sum())
        header = [("Source", self.source)] if self.source else []
        header += [
            ("Law", FORMULA),
            ("L", f"1 - {self.metric}" if self.metric != "L" else "the error rate"),
            ("X", f"{self.x} (column {self.x_column!r})"),
            ("Objective", f"{self.fit.loss}, equal total weight per size"),
            ("Optimiser", f"{'converged' if self.fit.success else 'NOT CONVERGED'}: {self.fit.message}"),
            ("Intervals", self._intervals_line(level)),
            ("R^2", f"{self.r2:.4f} on L, {self.r2_log:.4f} on log L ({n_fitted} points)"),
        ]
        bounds = self.conf_int(level)
        main = ["K_max", "N0"]
        tables = [(f"Estimates with {level_label(level)} intervals",
                   pd.DataFrame({"estimate": self.params[main], "lo": bounds.loc[main, "lo"],
                                 "hi": bounds.loc[main, "hi"]})),
                  (f"Per size (k and E with {level_label(level)} intervals)", self.per_size_table(level))]
        if self.protocol is not None:
            header.append(("Protocol", describe_protocol(self.protocol)))
            tables.append(("Backtest: errors on held-out points", self.backtest_table()))
        notes = [note for note in self.notes if note not in self.reasons]
        return Summary(TITLE, header, tables, notes, self.status, self.reasons)

    def plot_curves(self, ax=None):
        """L against X per size, log-log, with the fits (:func:`scalefit.plots.plot_rl_curves`)."""
        from scalefit.plots import plot_rl_curves

        return plot_rl_curves(self, ax=ax)

    def plot_efficiency(self, ax=None):
        """k per size and the saturation curve k(N) (:func:`scalefit.plots.plot_rl_efficiency`)."""
        from scalefit.plots import plot_rl_efficiency

        return plot_rl_efficiency(self, ax=ax)

    # -- persistence ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The ``rl.json`` document (docs/rl-json.md): strict-JSON-able, non-finite numbers as None."""
        sizes = {label: row.to_dict() for label, row in self.sizes.iterrows()}
        p = self.params
        return json_safe({
            **self._envelope(), "law": LAW_NAME,
            "law_spec": {"name": self.law.name, "sizes": list(self.law.sizes), "x": self.law.x},
            "source": self.source, "x": self.x, "x_column": self.x_column, "metric": self.metric,
            "objective": self.fit.loss, "weights": "equal total weight per size",
            "params": {"K_max": p["K_max"], "N0": p["N0"], "sizes": sizes},
            "intervals": {name: [lo, hi] for name, (lo, hi) in self.intervals.iterrows()},
            "interval_method": self.interval_method, "n_bootstrap": self.n_bootstrap,
            "n_bootstrap_requested": self.n_requested, "segment_length": self.segment_length,
            "n0_held": self.n0_held, "level": self.level, "seed": self.seed,
            "r2": self.r2, "r2_log": self.r2_log, "success": bool(self.fit.success), "message": self.fit.message,
            "status": self.status, "reasons": list(self.reasons), "notes": list(self.notes),
            "protocol": self.protocol, "heldout_error": self.heldout_error,
            "clipping": {"epsilon": self.clipping.epsilon, "n_low": self.clipping.n_low,
                         "n_high": self.clipping.n_high},
            "n_points": len(self.points),
            "fit": self.fit.to_dict(),
            "draws": self.draws.to_dict(orient="list"),
            "points": self.points.to_dict(orient="list"),
        })

    @classmethod
    def from_dict(cls, doc: Mapping) -> RLFit:
        """Rebuild a result from :meth:`to_dict`, checking what it holds."""
        spec = doc["law_spec"]
        if spec.get("name") != RLEfficiency.name:
            raise ScalefitInputError(f"law {spec.get('name')!r} is not the RL law ({RLEfficiency.name})")
        law = RLEfficiency(spec["sizes"], spec["x"])
        if doc.get("status", "ok") not in STATUSES:
            raise ScalefitInputError(f"status {doc['status']!r} is not one of {', '.join(STATUSES)}")
        draws = pd.DataFrame(doc.get("draws") or {}).astype(float)
        unknown = set(draws.columns) - {*law.reported_names, *law.derived_names}
        if unknown:
            raise ScalefitInputError(f"the bootstrap draws hold {sorted(unknown)}, not parameters of the law")
        points = pd.DataFrame(doc["points"])
        for column in points.columns:
            if column in TEXT_POINT_COLUMNS:
                points[column] = points[column].astype(str)
            else:
                points[column] = pd.to_numeric(points[column], errors="coerce")
        clipping = doc["clipping"]
        return cls(
            fit=FitResult.from_dict(doc["fit"], law=law), x=doc["x"], x_column=doc["x_column"], metric=doc["metric"],
            sizes=sizes_frame(doc["params"]["sizes"]), draws=draws, interval_method=doc["interval_method"],
            n_requested=int(doc["n_bootstrap_requested"]), r2=_number(doc["r2"]), r2_log=_number(doc["r2_log"]),
            protocol=doc.get("protocol"), heldout_error=doc.get("heldout_error"), points=points,
            clipping=Clipping(float(clipping["epsilon"]), int(clipping["n_low"]), int(clipping["n_high"])),
            status=doc.get("status", "ok"), reasons=tuple(doc.get("reasons") or ()),
            notes=tuple(doc.get("notes") or ()), level=check_level(doc.get("level", DEFAULT_LEVEL)),
            segment_length=doc.get("segment_length"), n0_held=doc.get("n0_held"), seed=int(doc.get("seed", 0)),
            source=doc.get("source"),
        )


def _number(value) -> float:
    return math.nan if value is None else float(value)
