"""A trust grade for a planned run's prediction: one letter and its reasons, from what the fit already says.

The grade reads signals every fit carries (docs/trust.md): its status, the identifiability verdicts, the
backtest's error and coverage, how many decades the target lies beyond the data, and the width of the
planning interval there. It invents nothing; it orders them:

- **C — do not plan on this number alone**: the fit failed or is suspect, a parameter is not identified, the
  target lies more than :data:`FAR_DECADES` beyond the data, or the planning interval is wider than
  :data:`WIDE` of the prediction;
- **B — use with care**: a parameter is weakly identified, the backtest misses by more than
  :data:`BACKTEST_ERROR` on average or covers less than nominal − 10 points, the target lies beyond
  :data:`NEAR_DECADES`, or the planning interval is wider than :data:`MODERATE`;
- **A — plan on it** otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Targets further than this many decades beyond the fitted N, D or C grade C; further than NEAR, B.
FAR_DECADES = 2.0
NEAR_DECADES = 1.0
#: Planning intervals wider than these fractions of the prediction grade C and B.
WIDE = 0.5
MODERATE = 0.2
#: A backtest missing by more than this mean relative error grades B.
BACKTEST_ERROR = 0.05


@dataclass(frozen=True)
class TrustGrade:
    """``grade`` (``"A"``, ``"B"`` or ``"C"``), what it means, and the reasons that set it."""

    grade: str
    reasons: tuple[str, ...]

    @property
    def meaning(self) -> str:
        return {"A": "plan on it", "B": "use with care", "C": "do not plan on this number alone"}[self.grade]

    def as_text(self) -> str:
        why = "; ".join(self.reasons) if self.reasons else "every check passed"
        return f"{self.grade} ({self.meaning}): {why}"

    def to_dict(self) -> dict:
        return {"grade": self.grade, "meaning": self.meaning, "reasons": list(self.reasons)}


def trust_grade(study, decades: float, planning_width: float | None) -> TrustGrade:
    """Grade the prediction of ``study`` (a :class:`scalefit.study.RunsFit`) at a target ``decades`` beyond
    the data whose planning interval is ``planning_width`` of the prediction wide (None: no planning
    interval could be made)."""
    serious, caution = [], []
    result = study.result
    if result.status != "ok":
        serious.append(f"the fit is {result.status}: " + "; ".join(result.reasons))
    verdicts = {} if study.identifiability is None else study.identifiability.verdicts.to_dict()
    not_identified = [name for name, v in verdicts.items() if v == "not identified"]
    weak = [name for name, v in verdicts.items() if v == "weakly identified"]
    if not_identified:
        serious.append(f"not identified by these runs: {', '.join(not_identified)}")
    if weak:
        caution.append(f"weakly identified: {', '.join(weak)}")
    if decades > FAR_DECADES:
        serious.append(f"the target lies {decades:.1f} decades beyond the data")
    elif decades > NEAR_DECADES:
        caution.append(f"the target lies {decades:.1f} decades beyond the data")
    if planning_width is None:
        caution.append("no planning interval (a rollout needs 4+ model sizes to measure extrapolation error)")
    elif planning_width > WIDE:
        serious.append(f"the planning interval is {100 * planning_width:.0f} % of the prediction wide")
    elif planning_width > MODERATE:
        caution.append(f"the planning interval is {100 * planning_width:.0f} % of the prediction wide")
    backtest = study.backtest
    if backtest is None:
        caution.append("no backtest on held-out sizes")
    else:
        if backtest.mean_abs_rel_error > BACKTEST_ERROR:
            caution.append(f"the backtest misses held-out sizes by {100 * backtest.mean_abs_rel_error:.1f} % "
                           "on average")
        nominal = result.level
        if backtest.coverage == backtest.coverage and backtest.coverage < nominal - 0.10:
            caution.append(f"the backtest's {100 * nominal:g} % intervals covered "
                           f"{100 * backtest.coverage:.0f} % of held-out runs")
    grade = "C" if serious else "B" if caution else "A"
    return TrustGrade(grade, tuple(serious + caution))
