"""Tables as JSON records and back, for the saved hparams results (NaN ↔ null, text columns kept as text)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from scalefit.io import json_safe


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows of ``frame`` as plain-Python dicts, NaN as None."""
    return json_safe(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


def frame_from_records(rows: list[dict], text: Iterable[str] = ()) -> pd.DataFrame:
    """The frame :func:`records` was made from: ``text`` columns as strings, None elsewhere as NaN."""
    frame = pd.DataFrame.from_records(rows)
    for column in frame.columns:
        if column in text:
            frame[column] = frame[column].fillna("").astype(str)
        elif frame[column].map(lambda v: v is None or isinstance(v, int | float) and not isinstance(v, bool)).all():
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame
