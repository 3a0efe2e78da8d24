"""The shared result protocol: intervals from draws at query time, summaries, save/load with a schema."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from scalefit.errors import ScalefitInputError
from scalefit.results import (
    Result,
    Summary,
    check_level,
    load_result,
    percentile_interval,
    prediction_frame,
    register,
)


@register
@dataclass(frozen=True)
class _Toy(Result):
    kind = "toy"
    schema_version = 2
    params: pd.Series
    draws: pd.DataFrame
    status: str = "ok"
    reasons: tuple = ()
    notes: tuple = ()
    level: float = 0.95

    def summary(self) -> Summary:
        table = pd.DataFrame({"estimate": self.params}).join(self.conf_int(self.level))
        return Summary("toy", [("Draws", str(len(self.draws)))], [("estimates", table)], self.notes,
                       self.status, self.reasons)

    def to_dict(self) -> dict:
        return {**self._envelope(), "params": self.params.to_dict(), "draws": self.draws.to_dict(orient="list"),
                "status": self.status, "reasons": list(self.reasons), "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, doc):
        return cls(pd.Series(doc["params"], dtype=float), pd.DataFrame(doc["draws"]), doc["status"],
                   tuple(doc["reasons"]), tuple(doc["notes"]))


def _toy(n=4001):
    rng = np.random.default_rng(1)
    draws = pd.DataFrame({"a": rng.normal(1.0, 0.1, n), "b": rng.uniform(0.0, 1.0, n)})
    return _Toy(pd.Series({"a": 1.0, "b": 0.5}), draws, "suspect", ("b is flat",), ("a note",))


def test_conf_int_is_taken_from_the_draws_at_any_level():
    toy = _toy()
    # uniform(0, 1): the percentile interval at level p is [(1-p)/2, (1+p)/2]
    for level in (0.5, 0.9, 0.99):
        lo, hi = toy.conf_int(level).loc["b"]
        assert lo == pytest.approx((1 - level) / 2, abs=0.02) and hi == pytest.approx((1 + level) / 2, abs=0.02)
    # normal(1, 0.1): 95 % interval 1 ± 1.96·0.1
    lo, hi = toy.conf_int().loc["a"]
    assert lo == pytest.approx(1 - 0.196, abs=0.01) and hi == pytest.approx(1 + 0.196, abs=0.01)


@pytest.mark.parametrize("level", [0.0, 1.0, 2.0, -0.5, "x", None])
def test_a_level_outside_0_1_is_refused_with_a_hint(level):
    with pytest.raises(ScalefitInputError, match="between 0 and 1"):
        check_level(level)


def test_save_load_round_trip_gives_the_same_summary(tmp_path):
    toy = _toy(200)
    path = toy.save(tmp_path / "toy.json")
    again = load_result(path)
    assert isinstance(again, _Toy)
    assert again.summary().as_text() == toy.summary().as_text()
    assert "SUSPECT: b is flat" in again.summary().as_text()
    assert "<strong>SUSPECT</strong>" in again._repr_html_()
    assert again.exit_code == 1


def test_load_refuses_another_kind_a_newer_schema_and_garbage(tmp_path):
    (tmp_path / "other.json").write_text('{"kind": "fit", "schema_version": 1}')
    with pytest.raises(ScalefitInputError, match="not a 'toy'"):
        _Toy.load(tmp_path / "other.json")
    (tmp_path / "newer.json").write_text('{"kind": "toy", "schema_version": 3}')
    with pytest.raises(ScalefitInputError, match="schema_version 3"):
        _Toy.load(tmp_path / "newer.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ScalefitInputError, match="not a JSON file"):
        load_result(tmp_path / "bad.json")
    with pytest.raises(ScalefitInputError, match="is a folder"):
        load_result(tmp_path)


def test_prediction_frame_orders_columns_and_refuses_unknown_ones():
    frame = prediction_frame([1.0], obs_hi=[3.0], mean_lo=[0.5])
    assert list(frame.columns) == ["mean", "mean_lo", "obs_hi"]
    with pytest.raises(ValueError, match="unknown prediction columns"):
        prediction_frame([1.0], lo=[0.0])


def test_percentile_interval_of_arrays_ignores_non_finite_draws():
    draws = np.array([[1.0, np.nan], [2.0, np.inf], [3.0, 5.0]])
    lo, hi = percentile_interval(draws, 0.5)
    assert lo[0] == pytest.approx(1.5) and hi[0] == pytest.approx(2.5)
    assert lo[1] == pytest.approx(5.0) and hi[1] == pytest.approx(5.0)


def test_load_result_finds_every_kind_without_its_module_imported(tmp_path):
    """A fresh interpreter that imports only scalefit.results loads a saved fit (kind looked up by name)."""
    import subprocess
    import sys

    import numpy as np
    import pandas as pd

    from scalefit.fitting import fit
    from scalefit.laws import PowerLaw
    from scalefit.results import _REGISTRY, KIND_MODULES

    x = np.geomspace(1e6, 1e9, 12)
    path = tmp_path / "fit.json"
    fit(PowerLaw(), pd.DataFrame({"params": x, "loss": 1.5 + (3e5 / x) ** 0.3}), bootstrap=20).save(path)
    code = (f"from scalefit.results import load_result; r = load_result({str(path)!r}); "
            "print(type(r).__name__, round(float(r.params['E']), 3))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["FitResult", "1.5"]
    import scalefit.plan.design
    import scalefit.rl  # noqa: F401  (registers rl)
    ours = {kind: cls.__module__ for kind, cls in _REGISTRY.items() if cls.__module__.startswith("scalefit.")}
    assert all(module.startswith(KIND_MODULES.get(kind, "?")) for kind, module in ours.items()), ours
