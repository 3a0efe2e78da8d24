"""Saved results written by earlier versions keep loading (lmfit's saved-model fixtures): a fit.json of schema 1
(written by the scalefit of 2026-11, commit caca0ee) and of the current schema 2, both committed under
tests/fixtures/. A change that breaks reading them fails here."""

import json
from pathlib import Path

import pandas as pd
import pytest

from scalefit.fitting import FitResult
from scalefit.results import load_result
from scalefit.study import load_fit

FIXTURES = Path(__file__).resolve().parent / "fixtures"
POINT = pd.DataFrame({"params": [1e5], "tokens": [1e7]})


def _closed_form(params: dict) -> float:
    return params["E"] + params["A"] / 1e5 ** params["alpha"] + params["B"] / 1e7 ** params["beta"]


@pytest.mark.parametrize("name", ["fit_schema1.json", "fit_schema2.json"])
def test_old_and_current_fit_json_load_and_predict_the_stored_law(name):
    path = FIXTURES / name
    document = json.loads(path.read_text())
    result = load_fit(path)
    assert isinstance(result, FitResult)
    for key in ("E", "A", "B", "alpha", "beta"):
        assert result.params[key] == pytest.approx(document["params"][key], rel=1e-12)
    frame = result.predict(POINT)
    assert frame["mean"].iloc[0] == pytest.approx(_closed_form(document["params"]), rel=1e-10)
    assert frame["mean_lo"].iloc[0] <= frame["mean"].iloc[0] <= frame["mean_hi"].iloc[0]
    lo, hi = result.conf_int(0.9).loc["alpha"]
    assert lo <= result.params["alpha"] <= hi


def test_schema1_has_no_schema_field_and_still_loads_as_a_fit():
    document = json.loads((FIXTURES / "fit_schema1.json").read_text())
    assert document["schema_version"] == 1 and "kind" not in document
    assert load_fit(FIXTURES / "fit_schema1.json").law.name == "chinchilla"


def test_current_schema_round_trips_to_the_same_summary(tmp_path):
    result = load_result(FIXTURES / "fit_schema2.json")
    again = load_result(result.save(tmp_path / "again.json"))
    assert again.summary().as_text() == result.summary().as_text()
