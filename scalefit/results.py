"""The protocol every analysis result follows (loss law, LR/BS laws, allocation, RL, tasks, plan, backtest).

Modelled on statsmodels' results (``conf_int(alpha)`` computed when asked, ``get_prediction().summary_frame``
as one frame) and lmfit's ``ModelResult.dumps/loads`` (every result saves and reloads):

- ``params``: named estimates (a :class:`pandas.Series`);
- ``conf_int(level=0.95)``: percentile intervals computed *at query time* from the stored bootstrap ``draws``;
- predictions as one frame with the columns of :data:`PREDICTION_COLUMNS` (``mean``; ``mean_lo/hi``: the
  mean; ``obs_lo/hi``: one new run; ``plan_lo/hi``: a planning interval that also carries extrapolation
  error, where the analysis has one);
- ``status`` (``"ok"`` | ``"suspect"`` | ``"failed"``) with ``reasons``, and free-text ``notes``;
- ``summary()`` returning a :class:`Summary` (``as_text()``, ``_repr_html_``);
- ``to_dict()`` / ``from_dict()`` and ``save(path)`` / ``load(path)``: strict JSON with a ``kind`` and a
  ``schema_version``, checked on load.

Subclasses implement ``summary``, ``to_dict`` and ``from_dict``, set ``kind`` and ``schema_version``, and are
registered with :func:`register` so that :func:`load_result` can read any saved result.
"""

from __future__ import annotations

import html
import importlib
import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from scalefit.errors import ScalefitInputError
from scalefit.io import write_json

DEFAULT_LEVEL = 0.95
STATUSES = ("ok", "suspect", "failed")
PREDICTION_COLUMNS = ("mean", "mean_lo", "mean_hi", "obs_lo", "obs_hi", "plan_lo", "plan_hi")


def check_level(level: float) -> float:
    """``level`` as a float in (0, 1), or a :class:`ScalefitInputError` saying what to give."""
    try:
        level = float(level)
    except (TypeError, ValueError):
        level = math.nan
    if not 0.0 < level < 1.0:
        raise ScalefitInputError(f"level must be a coverage between 0 and 1 (e.g. 0.95 for 95 %), not {level!r}")
    return level


def level_label(level: float) -> str:
    """``0.95`` → ``"95 %"``."""
    return f"{100 * level:g} %"


def percentile_interval(draws: pd.DataFrame | np.ndarray, level: float = DEFAULT_LEVEL, axis: int = 0):
    """Percentile interval ``[q((1−level)/2), q((1+level)/2)]`` of bootstrap draws.

    A DataFrame gives a (columns × ``lo``/``hi``) frame; an array gives ``(lo, hi)`` arrays along ``axis``.
    Non-finite draws are ignored; a column without finite draws gives NaN bounds.
    """
    level = check_level(level)
    tail = (1.0 - level) / 2.0
    if isinstance(draws, pd.DataFrame):
        bounds = draws.replace([np.inf, -np.inf], np.nan).quantile([tail, 1.0 - tail]).T
        bounds.columns = ["lo", "hi"]
        return bounds
    values = np.where(np.isfinite(draws), draws, np.nan)
    with warnings.catch_warnings():  # an all-NaN column gives NaN bounds, as documented
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(values, [tail, 1.0 - tail], axis=axis)
    return lo, hi


def prediction_frame(mean, index=None, **bounds) -> pd.DataFrame:
    """One prediction frame: ``mean`` and any of ``mean_lo, mean_hi, obs_lo, obs_hi, plan_lo, plan_hi``,
    in that column order (absent bounds are left out)."""
    unknown = set(bounds) - set(PREDICTION_COLUMNS)
    if unknown:
        raise ValueError(f"unknown prediction columns {sorted(unknown)}; use {PREDICTION_COLUMNS}")
    columns = {"mean": np.asarray(mean, dtype=float)}
    columns.update({name: np.asarray(bounds[name], dtype=float) for name in PREDICTION_COLUMNS if name in bounds})
    return pd.DataFrame(columns, index=index)


@dataclass(frozen=True)
class Summary:
    """A result's report: a title, key–value lines, tables and notes; text or HTML.

    ``str(summary)`` and ``summary.as_text()`` give the text; a notebook shows the HTML.
    """

    title: str
    header: Sequence[tuple[str, str]] = ()
    tables: Sequence[tuple[str, pd.DataFrame]] = ()
    notes: Sequence[str] = ()
    status: str = "ok"
    reasons: Sequence[str] = ()
    float_format: str = "{:.4g}"

    def _formatted(self, frame: pd.DataFrame) -> pd.DataFrame:
        def cell(value):
            if isinstance(value, float | np.floating):
                return "—" if not np.isfinite(value) else self.float_format.format(value)
            return str(value)

        return frame.map(cell) if len(frame) else frame

    def as_text(self) -> str:
        lines = [self.title, "=" * max(len(self.title), 20)]
        width = max((len(k) for k, _ in self.header), default=0) + 2
        lines += [f"{(key + ':'):<{width}}{value}" for key, value in self.header]
        if self.status != "ok":
            lines.append(f"{'Status:':<{width}}{self.status.upper()}: " + "; ".join(self.reasons))
        for caption, frame in self.tables:
            lines += ["", caption, "-" * max(len(caption), 20)]
            lines.append(self._formatted(frame).to_string() if len(frame) else "(empty)")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        esc = html.escape
        status = "<p style='color:#070'><strong>OK</strong></p>"
        if self.status != "ok":
            status = (f"<p style='color:#b00'><strong>{esc(self.status.upper())}</strong>: "
                      f"{esc('; '.join(self.reasons))}</p>")
        header = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(str(v))}</td></tr>"
                         for k, v in self.header)
        tables = "".join(f"<p><em>{esc(caption)}</em></p>{self._formatted(frame).to_html(escape=True)}"
                         for caption, frame in self.tables)
        notes = "".join(f"<li>{esc(note)}</li>" for note in self.notes)
        return (f"<div><strong>{esc(self.title)}</strong>{status}<table>{header}</table>{tables}"
                f"{'<ul>' + notes + '</ul>' if notes else ''}</div>")


_REGISTRY: dict[str, type[Result]] = {}
#: Where each kind is defined, so that :func:`load_result` finds a kind whose module is not imported yet
#: (a name lookup, like an entry point: this module imports none of them).
KIND_MODULES = {
    "fit": "scalefit.fitting.result", "allocation": "scalefit.allocation", "backtest": "scalefit.backtest",
    "rl": "scalefit.rl", "task-scaling": "scalefit.tasks.result", "plan": "scalefit.plan.design",
    "identifiability": "scalefit.plan.identify", "hparam_laws": "scalefit.hyperparams.laws",
    "hparam_optima": "scalefit.hyperparams.optima", "hparam_law": "scalefit.hyperparams.law_result",
    "hparam_recommendation": "scalefit.hyperparams.recommend",
}


def register(cls: type[Result]) -> type[Result]:
    """Class decorator: make ``cls`` loadable by :func:`load_result` under ``cls.kind``."""
    _REGISTRY[cls.kind] = cls
    return cls


class Result:
    """Mixin with the shared behaviour of every result; see the module docstring for the protocol.

    A subclass provides the attributes ``params`` (Series), ``draws`` (DataFrame, may be empty), ``status``,
    ``reasons``, ``notes`` and ``level``, and the methods ``summary``, ``to_dict`` and ``from_dict``.
    """

    kind: ClassVar[str] = "result"
    schema_version: ClassVar[int] = 1

    # -- intervals ----------------------------------------------------------------------------------
    def conf_int(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """Percentile intervals of ``params`` at ``level`` from the stored bootstrap draws (NaN without
        draws), as a (parameters × ``lo``/``hi``) frame."""
        level = check_level(level)
        names = list(self.params.index)
        draws = self._interval_draws()
        usable = [n for n in names if n in draws.columns]
        frame = pd.DataFrame(np.nan, index=names, columns=["lo", "hi"])
        if len(draws) and usable:
            frame.loc[usable] = percentile_interval(draws[usable].astype(float), level).to_numpy()
        return frame

    def _interval_draws(self) -> pd.DataFrame:
        """The draws intervals are taken from (a subclass may keep only converged ones)."""
        return self.draws

    # -- status ---------------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this result: 0 ok, 1 suspect or failed."""
        return 0 if self.status == "ok" else 1

    # -- persistence --------------------------------------------------------------------------------
    def _envelope(self) -> dict:
        return {"kind": self.kind, "schema_version": self.schema_version}

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as strict JSON to ``path`` (atomically)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path):
        """Read a result saved by :meth:`save`; a clear :class:`ScalefitInputError` if it is not one."""
        doc = read_document(path)
        return cls._from_document(doc, path)

    @classmethod
    def _from_document(cls, doc: dict, source) -> Result:
        kind, version = doc.get("kind"), doc.get("schema_version")
        if kind != cls.kind:
            raise ScalefitInputError(f"{source}: holds a {kind!r} result, not a {cls.kind!r} one")
        if not isinstance(version, int) or version > cls.schema_version:
            raise ScalefitInputError(f"{source}: schema_version {version!r} is not one this scalefit reads "
                                     f"(≤ {cls.schema_version}); upgrade scalefit or rewrite the file")
        try:
            return cls.from_dict(doc)
        except ScalefitInputError as err:
            raise ScalefitInputError(f"{source}: {err}") from err
        except (KeyError, TypeError, ValueError) as err:
            raise ScalefitInputError(f"{source}: not a valid {cls.kind} result ({type(err).__name__}: {err}); "
                                     "write it again with the command that made it") from err

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


def read_document(path: str | Path) -> dict:
    """A saved result's JSON document, or a clear :class:`ScalefitInputError`."""
    path = Path(path)
    if path.is_dir():
        raise ScalefitInputError(f"{path} is a folder; name the JSON file inside it")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScalefitInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ScalefitInputError(f"{path}: not a JSON file written by scalefit ({type(err).__name__})") from None
    if not isinstance(doc, dict):
        raise ScalefitInputError(f"{path}: not a JSON object written by scalefit")
    return doc


def load_result(path: str | Path) -> Result:
    """Load any saved result, dispatching on its ``kind``."""
    doc = read_document(path)
    kind = doc.get("kind")
    if kind not in _REGISTRY and kind in KIND_MODULES:
        importlib.import_module(KIND_MODULES[kind])
    if kind not in _REGISTRY:
        raise ScalefitInputError(f"{path}: unknown result kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind]._from_document(doc, path)


class ReasonedStatus:
    """Mixin: ``status`` and ``reasons`` from the subclass's ``_reason_lists() -> (failed, suspect)``."""

    @property
    def status(self) -> str:
        return status_from(*self._reason_lists())[0]

    @property
    def reasons(self) -> tuple[str, ...]:
        return status_from(*self._reason_lists())[1]


def status_from(reasons_failed: Iterable[str] = (), reasons_suspect: Iterable[str] = ()) -> tuple[str, tuple]:
    """``(status, reasons)`` from the reasons that make a result failed or suspect (failed wins)."""
    failed, suspect = tuple(reasons_failed), tuple(reasons_suspect)
    if failed:
        return "failed", failed + suspect
    if suspect:
        return "suspect", suspect
    return "ok", ()
