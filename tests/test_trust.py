"""The trust grade orders the signals a fit already carries: each rule of scalefit.trust, one at a time."""

from types import SimpleNamespace

import pandas as pd
import pytest

from scalefit.trust import trust_grade


def _study(status="ok", verdicts=None, backtest_error=0.01, coverage=0.95, backtest=True):
    identifiability = None if verdicts is None else SimpleNamespace(verdicts=pd.Series(verdicts))
    tested = SimpleNamespace(mean_abs_rel_error=backtest_error, coverage=coverage) if backtest else None
    result = SimpleNamespace(status=status, reasons=("a parameter on its bound",) if status != "ok" else (),
                             level=0.95)
    return SimpleNamespace(result=result, identifiability=identifiability, backtest=tested)


GOOD = {"E": "identified", "alpha": "identified"}


@pytest.mark.parametrize(("study", "decades", "width", "grade", "says"), [
    (_study(verdicts=GOOD), 0.5, 0.1, "A", ""),
    (_study(verdicts=GOOD), 1.5, 0.1, "B", "1.5 decades beyond"),
    (_study(verdicts=GOOD), 2.5, 0.1, "C", "2.5 decades beyond"),
    (_study(verdicts=GOOD), 0.5, 0.3, "B", "30 % of the prediction wide"),
    (_study(verdicts=GOOD), 0.5, 0.6, "C", "60 % of the prediction wide"),
    (_study(verdicts=GOOD), 0.5, None, "B", "no planning interval"),
    (_study(verdicts={"E": "weakly identified", "alpha": "identified"}), 0.5, 0.1, "B", "weakly identified: E"),
    (_study(verdicts={"E": "identified", "alpha": "not identified"}), 0.5, 0.1, "C", "not identified by"),
    (_study(status="suspect", verdicts=GOOD), 0.5, 0.1, "C", "the fit is suspect"),
    (_study(verdicts=GOOD, backtest_error=0.08), 0.5, 0.1, "B", "misses held-out sizes by 8.0 %"),
    (_study(verdicts=GOOD, coverage=0.7), 0.5, 0.1, "B", "covered 70 %"),
    (_study(verdicts=GOOD, backtest=False), 0.5, 0.1, "B", "no backtest"),
])
def test_each_rule_sets_the_grade_it_documents(study, decades, width, grade, says):
    verdict = trust_grade(study, decades, width)
    assert verdict.grade == grade
    assert says in verdict.as_text()
    assert verdict.to_dict()["grade"] == grade
