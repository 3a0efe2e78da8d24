"""The report's document model (sections of paragraphs, warnings, tables and figures) and its rendering as
markdown and as one self-contained HTML page. Nothing here analyses anything."""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.io import dumps, json_safe

REPORT_SCHEMA_VERSION = 1
SECTION_TITLES = {
    "answer": "The answer first",
    "data": "Data",
    "fit": "Joint-law fit",
    "frontier": "Compute-optimal frontier and allocation",
    "extrapolations": "Extrapolations",
    "hparams": "Learning rate and batch size",
    "rl": "RL post-training",
}
#: Sections shown only when the table holds their data (no "not shown" line otherwise), e.g. task metrics.
OPTIONAL_SECTION_TITLES = {"tasks": "Downstream tasks"}


def section_title(key: str) -> str:
    """The heading of section ``key``."""
    return SECTION_TITLES.get(key) or OPTIONAL_SECTION_TITLES[key]


@dataclass(frozen=True)
class Table:
    """A table of a report: ``key`` (its HTML id), a caption, and the numbers (formatted when rendered)."""

    key: str
    caption: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    """A rendered plot: ``key`` (its PNG file stem), a caption and the PNG bytes."""

    key: str
    caption: str
    png: bytes = field(repr=False)


@dataclass(frozen=True)
class Section:
    """One section: paragraphs, warnings (what, why it matters, what to do), tables and figures."""

    key: str
    paragraphs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()

    @property
    def title(self) -> str:
        return section_title(self.key)


@dataclass(frozen=True)
class Report:
    """Everything ``scalefit report`` found in a runs table.

    Attributes
    ----------
    source
        The runs table (and RL table) the report was made from.
    sections
        The sections present, in :data:`SECTION_TITLES` order.
    absent
        Section key → why that section is not in the report.
    results
        The ``results.json`` document: every number of every section.
    """

    source: str
    sections: tuple[Section, ...]
    absent: dict[str, str]
    results: dict = field(repr=False)

    def section(self, key: str) -> Section:
        """The section ``key`` (see :data:`SECTION_TITLES`, :data:`OPTIONAL_SECTION_TITLES`); KeyError with the reason when it is absent."""
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(f"no {key!r} section: {self.absent.get(key, 'no such section')}")

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by key, as numbers (for a notebook)."""
        return {table.key: table.frame for section in self.sections for table in section.tables}

    def to_markdown(self) -> str:
        """The report in markdown; figures refer to ``<key>.png`` beside it."""
        contents = [f"{n}. [{s.title}](#{n}-{s.title.lower().replace(' ', '-')})"
                    for n, s in enumerate(self.sections, 1)]
        parts = [f"# scalefit report: {_md(self.source)}", "\n".join(contents)]
        for number, section in enumerate(self.sections, 1):
            parts.append(f"## {number}. {section.title}")
            parts += [_md(paragraph) for paragraph in section.paragraphs]
            parts += [f"> **Warning.** {_md(warning)}" for warning in section.warnings]
            for table in section.tables:
                parts += [f"**{_md(table.caption)}**", _markdown_table(_display(table.frame))]
            parts += [f"![{_md(f.caption)}]({f.key}.png)\n\n*{_md(f.caption)}*" for f in section.figures]
        if self.absent:
            parts.append("## Sections not shown")
            parts += [f"- **{section_title(key)}**: {_md(why)}" for key, why in self.absent.items()]
        return "\n\n".join(parts) + "\n"

    def to_html(self) -> str:
        """The report as one self-contained HTML page (images as data URIs, no external resources)."""
        contents = "".join(f"<li><a href='#{s.key}'>{_esc(s.title)}</a></li>" for s in self.sections)
        body = [(f"<header><h1>scalefit report</h1><p class='source'>{_esc(self.source)}</p>"
                f"<nav><ol>{contents}</ol></nav></header>")]
        sections = [_section_html(number, section) for number, section in enumerate(self.sections, 1)]
        first = 1 if self.sections and self.sections[0].key == "answer" else 0  # the answer stays on top
        body += sections[:first]
        if self.absent:
            items = "".join(f"<li><strong>{_esc(section_title(key))}</strong>: {_esc(why)}</li>"
                            for key, why in self.absent.items())
            body.append(f"<aside id='absent'><h2>Sections not shown</h2><ul>{items}</ul></aside>")
        body += sections[first:]
        return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>scalefit report: {_esc(self.source)}</title><style>{_CSS}</style></head>"
                f"<body>{''.join(body)}</body></html>\n")

    def _repr_html_(self) -> str:
        return self.to_html()

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write ``report.html``, ``report.md``, ``results.json``, the PNGs and, with a fit, the ``fit.json``
        that ``scalefit fit --out`` writes (same name, same schema: ``predict``/``allocate`` read it), into
        the folder ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for section in self.sections:
            for figure in section.figures:
                paths[f"{figure.key}.png"] = out / f"{figure.key}.png"
                paths[f"{figure.key}.png"].write_bytes(figure.png)
        documents = {"report.html": self.to_html(), "report.md": self.to_markdown(),
                     "results.json": dumps(self.results)}
        if "fit" in self.results:
            documents["fit.json"] = dumps(self.results["fit"])
        for name, text in documents.items():
            paths[name] = out / name
            paths[name].write_text(text, encoding="utf-8")
        return paths


# --- rendering ------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1150px;margin:0 auto;
padding:1.5em;color:#1a1a1a;background:#fff;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
.source{color:#555;font-family:ui-monospace,monospace}
nav ol{columns:2;padding-left:1.4em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.86em;display:block;overflow-x:auto;
max-width:100%}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;white-space:nowrap}
th{background:#eef4f9}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.9em}
.warning{border-left:4px solid #D55E00;background:#fdf1e9;padding:.5em .8em;margin:.6em 0}
#absent{border-left:4px solid #E69F00;background:#fdf7e6;padding:.2em 1em;margin-top:1em}
"""


def _esc(text) -> str:
    return html.escape(str(text))


def _section_html(number: int, section: Section) -> str:
    parts = [f"<section id='{section.key}'><h2>{number}. {_esc(section.title)}</h2>"]
    parts += [f"<p>{_esc(paragraph)}</p>" for paragraph in section.paragraphs]
    parts += [f"<div class='warning'><strong>Warning.</strong> {_esc(w)}</div>" for w in section.warnings]
    for table in section.tables:
        shown = _display(table.frame)
        head = "".join(f"<th scope='col'>{_esc(c)}</th>" for c in shown.columns)
        rows = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>"
                       for row in shown.itertuples(index=False))
        parts.append(f"<table id='{table.key}'><caption>{_esc(table.caption)}</caption>"
                     f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    for figure in section.figures:
        data = base64.b64encode(figure.png).decode("ascii")
        parts.append(f"<figure id='fig-{figure.key}'><img alt='{_esc(figure.caption)}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{_esc(figure.caption)}</figcaption>"
                     "</figure>")
    return "".join(parts) + "</section>"


def _cell(value) -> str:
    """One table cell: 4 significant digits for floats, '–' for missing numbers."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}" if math.isfinite(value) else "–"
    if value is None or value is pd.NA:
        return "–"
    return str(value)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.map(_cell) if len(frame) else frame.astype(str)


def _md(text) -> str:
    """Text from the data (run ids, file names, messages) made inert in markdown: markdown renderers pass raw
    HTML through, so ``<``, ``>`` and ``&`` become entities."""
    return html.escape(str(text), quote=False)


def _md_cell(text) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _markdown_table(frame, float_format: str = "{:.4g}") -> str:
    header = "| " + " | ".join(map(_md_cell, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(float_format.format(v) if isinstance(v, float) else _md_cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _png(figure, dpi: int = 120) -> bytes:
    from scalefit.plots import save_and_close

    buffer = io.BytesIO()
    save_and_close(figure, buffer, dpi=dpi)
    return buffer.getvalue()


def _records(frame: pd.DataFrame) -> list[dict]:
    return json_safe(frame.to_dict(orient="records"))


def _sentence(text: str) -> str:
    """A note as a sentence: capitalised, ending in a full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _g(value: float) -> str:
    return f"{value:.3g}"


def _bounds(interval, k: int) -> float:
    return math.nan if interval is None or interval[k] is None else float(interval[k])
