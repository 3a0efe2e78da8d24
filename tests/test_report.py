"""``scalefit report``: every section the data supports, numbers that agree between the HTML tables and
results.json and recover the synthetic truth, sections left out with a reason, a self-contained page that a
headless browser renders, and ``scalefit fit --out`` still writing its outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from synthetic_runs import RL_TRUTH, TRUTH, ladder_table, rl_table

from scalefit.cli import EXIT_INPUT_ERROR, main
from scalefit.laws import Chinchilla
from scalefit.report import SECTION_TITLES, build_report
from scalefit.runs import write_runs

SECTIONS = list(SECTION_TITLES)


class Page(HTMLParser):
    """The parts of a report page the tests read: sections, headings, tables (by id), images, links."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.h2, self.images, self.links = [], [], [], []
        self.tables: dict[str, dict] = {}
        self._table = self._row = self._cell = None
        self._in_h2 = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag in ("link", "script", "iframe") or attrs.get("href", "").startswith(("http", "//")):
            self.links.append((tag, attrs))  # anything the page would fetch
        elif tag == "table":
            self._table = self.tables.setdefault(attrs["id"], {"header": [], "rows": []})
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._table["header"]:
                self._table["rows"].append(self._row)
            else:
                self._table["header"] = self._row
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_h2:
            self.h2[-1] += data

    def column(self, table: str, name: str) -> list[str]:
        t = self.tables[table]
        return [row[t["header"].index(name)] for row in t["rows"]]

    def value(self, table: str, key_column: str, key: str, column: str) -> float:
        t = self.tables[table]
        row = next(r for r in t["rows"] if r[t["header"].index(key_column)] == key)
        return float(row[t["header"].index(column)])


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tables")
    paths = {"runs": folder / "runs.parquet", "rl": folder / "rl.parquet"}
    write_runs(ladder_table(), paths["runs"])
    write_runs(rl_table(), paths["rl"])
    no_sweep = ladder_table()
    default_lr = no_sweep.groupby(["params", "token_budget"])["lr"].transform("min") == no_sweep["lr"]
    paths["no_sweep"] = folder / "no_sweep.parquet"
    write_runs(no_sweep[default_lr & (no_sweep["batch_size"] == 2048)], paths["no_sweep"])
    return paths


@pytest.fixture(scope="module")
def written(tables, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    code = main(["--quiet", "report", str(tables["runs"]), "--rl", str(tables["rl"]), "--out", str(out),
                 "--bootstrap", "200", "--hparam-bootstrap", "200", "--rl-bootstrap", "40",
                 "--target", "1e6", "--target", "3e6:1e8"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def page(written) -> Page:
    return Page((written / "report.html").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def results(written) -> dict:
    def no_nan(token):
        raise ValueError(f"results.json holds {token}, which is not JSON")

    return json.loads((written / "results.json").read_text(), parse_constant=no_nan)


# --- what is written ------------------------------------------------------------------------------------


def test_report_writes_html_markdown_json_and_every_png_it_mentions(written):
    names = {p.name for p in written.iterdir()}
    assert {"report.html", "report.md", "results.json", "fit.json"} <= names
    # the same file names as `scalefit fit --out` for what both write
    assert {"fit.png", "residuals.png", "allocation.png"} <= names
    markdown = (written / "report.md").read_text()
    referenced = {line.split("](")[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")}
    assert referenced and referenced == {n for n in names if n.endswith(".png")}
    for number, key in enumerate(SECTIONS, 1):
        assert f"## {number}. {SECTION_TITLES[key]}" in markdown


def test_html_is_self_contained_with_every_section(page, written):
    assert page.sections == SECTIONS
    assert [h.split(". ", 1)[1] for h in page.h2] == [SECTION_TITLES[k] for k in SECTIONS]
    assert page.links == []  # no stylesheet, script, frame or web link to fetch
    n_png = len(list(written.glob("*.png")))
    assert len(page.images) == n_png and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert "http://" not in (written / "report.html").read_text() and "https://" not in (
        written / "report.html").read_text()


# --- the numbers ----------------------------------------------------------------------------------------


def test_fit_table_matches_results_json_and_recovers_the_truth(page, results):
    fit = results["fit"]
    for name in ("A", "B", "E", "alpha", "beta"):
        shown = page.value("fit-params", "parameter", name, "estimate")
        assert shown == pytest.approx(fit["params"][name], rel=5e-4)
        lo, hi = (page.value("fit-params", "parameter", name, f"95% {side}") for side in ("lo", "hi"))
        assert (lo, hi) == pytest.approx(tuple(fit["intervals"][name]), rel=5e-4)
    for name in ("alpha", "beta", "E"):
        lo, hi = fit["intervals"][name]
        assert lo <= TRUTH[name] <= hi, name
        assert fit["params"][name] == pytest.approx(TRUTH[name], rel=0.1), name
    backtest = page.column("fit-backtest", "rel_error")
    assert len(backtest) == len(fit["backtest"]) == 5
    assert max(abs(float(v)) for v in backtest) < 0.02  # the law extrapolates a known truth to 2%


def test_allocation_and_exponent_tables(page, results):
    allocation = results["fit"]["allocation"]
    budgets = allocation["budgets"]
    shown = [float(v) for v in page.column("frontier-allocation", "N_opt")]
    np.testing.assert_allclose(shown, [b["params"] for b in budgets], rtol=5e-4)
    a = page.value("frontier-exponents", "approach", "approach 3 (joint law)", "a (N_opt ∝ C^a)")
    truth = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])
    assert a == pytest.approx(allocation["params_exponent"], rel=5e-4)
    assert a == pytest.approx(truth, abs=0.05)
    approaches = page.column("frontier-exponents", "approach")
    assert approaches[0] == "approach 3 (joint law)" and len(approaches) == 3


def test_extrapolation_table_has_the_asked_targets_with_nested_intervals(page, results):
    rows = results["extrapolations"]
    assert [(r["params"], r["tokens"]) for r in rows][1] == (3e6, 1e8)
    assert [float(v) for v in page.column("extrapolations-table", "N")] == [1e6, 3e6]
    for row in rows:
        assert row["mean_lo"] < row["loss"] < row["mean_hi"] and row["run_lo"] < row["loss"] < row["run_hi"]
        assert row["run_hi"] - row["run_lo"] > row["mean_hi"] - row["mean_lo"]  # a run scatters around the mean
        truth = (TRUTH["E"] + TRUTH["A"] / row["params"] ** TRUTH["alpha"]
                 + TRUTH["B"] / row["tokens"] ** TRUTH["beta"])
        assert row["loss"] == pytest.approx(truth, rel=0.03)
    # A target given as N alone gets the D that makes it compute-optimal: N_opt(6ND) = N.
    first = rows[0]
    optimal = Chinchilla.optimal_allocation(results["fit"]["params"], first["flops"])
    assert optimal["params"].iloc[0] == pytest.approx(1e6, rel=1e-9)
    assert first["N_beyond_decades"] == pytest.approx(np.log10(1e6 / 3e5), abs=1e-9)


def test_the_answer_comes_first_and_agrees_with_the_sections_below(page, results):
    answer, first = results["answer"], results["extrapolations"][0]
    assert page.sections[0] == "answer"
    assert (answer["target"]["params"], answer["target"]["tokens"]) == (first["params"], first["tokens"])
    assert answer["loss"]["mean"] == pytest.approx(first["loss"], rel=1e-12)
    truth = TRUTH["E"] + TRUTH["A"] / first["params"] ** TRUTH["alpha"] + TRUTH["B"] / first["tokens"] ** TRUTH["beta"]
    assert answer["loss"]["mean_lo"] <= answer["loss"]["mean"] <= answer["loss"]["mean_hi"]
    assert answer["loss"]["mean"] == pytest.approx(truth, rel=0.03)
    assert answer["decades_beyond"] == pytest.approx(max(first["N_beyond_decades"], first["D_beyond_decades"]), abs=1e-9)
    assert answer["trust"]["grade"] in ("A", "B", "C") and answer["trust"]["meaning"]
    quantities = page.column("answer-table", "quantity")
    assert quantities[0] == "target run" and quantities[-1] == "trust grade" and "peak learning rate" in quantities


def test_lr_section_recovers_the_lr_exponent_and_recommends_for_each_target(page, results):
    law = results["hparams"]["laws"]["lr_vs_N_D"]
    lo, hi = law["intervals"]["a"]
    assert lo <= -0.4 <= hi  # lr* = 0.3 N^-0.4 D^0.1
    assert len(page.column("hparams-groups", "group")) == 5
    recommended = [float(v) for v in page.column("hparams-recommendations", "peak LR")]
    np.testing.assert_allclose(recommended, [r["lr"] for r in results["hparams"]["recommendations"]], rtol=5e-4)
    assert len(recommended) == 2


def test_rl_section_recovers_k_max(page, results):
    fit = results["rl"]["fit"]
    assert fit["params"]["K_max"] == pytest.approx(RL_TRUTH["K_max"], rel=0.1)
    assert fit["params"]["N0"] == pytest.approx(RL_TRUTH["N0"], rel=0.25)
    k = [float(v) for v in page.column("rl-sizes", "k")]
    assert k == sorted(k)  # efficiency rises with size
    assert set(page.column("rl-backtest", "variant")) == {"slope-only", "full"}


# --- graceful degradation and errors --------------------------------------------------------------------


def test_sections_without_data_are_left_out_with_a_reason(tables, tmp_path, capsys):
    report = build_report(tables["no_sweep"], bootstrap=0)  # no bootstrap either: point values only
    assert [s.key for s in report.sections] == ["answer", "data", "fit", "frontier", "extrapolations"]
    assert all(row["mean_lo"] is None and row["loss"] > 0 for row in report.results["extrapolations"])
    assert "group(s) tried 3 or more learning rates" in report.absent["hparams"]
    assert "--rl" in report.absent["rl"]
    page = Page(report.to_html())
    assert page.sections == ["answer", "data", "fit", "frontier", "extrapolations"]
    assert report.results["absent"] == report.absent
    assert list(report.tables()["fit-params"]["parameter"]) == ["A", "B", "E", "alpha", "beta"]
    with pytest.raises(KeyError, match="learning rates"):
        report.section("hparams")
    code = main(["--quiet", "report", str(tables["no_sweep"]), "--out", str(tmp_path / "r"), "--bootstrap", "30"])
    assert code == 0
    assert "warning: no Learning rate and batch size section" in capsys.readouterr().err


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "missing.parquet"), "--out", str(out)]) == EXIT_INPUT_ERROR
    assert "missing.parquet" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit) as exit_:
        main(["report", "runs.parquet", "--target", "big"])
    assert exit_.value.code == 2


def test_fit_out_still_writes_fit_json_report_and_plots(tables, tmp_path):
    out = tmp_path / "fit"
    assert main(["--quiet", "fit", str(tables["runs"]), "--out", str(out), "--bootstrap", "30"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"fit.json", "report.md", "fit.png", "fit_params.png", "residuals.png", "bootstrap.png",
            "backtest.png", "allocation.png"} <= names
    assert "![allocation](allocation.png)" in (out / "report.md").read_text()


# --- in a browser ---------------------------------------------------------------------------------------


def _browser() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on this machine (.ci/run installs Debian's "
                                               "chromium as root; elsewhere: apt-get install chromium)")
def test_headless_chromium_renders_a_non_blank_page_with_every_section(written, tmp_path):
    from matplotlib.image import imread

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (written / "report.html").resolve().as_uri()
    shot = tmp_path / "page.png"
    subprocess.run([_browser(), *flags, f"--screenshot={shot}", "--window-size=1280,2400", url],
                   check=True, capture_output=True, timeout=120)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    ink = (pixels.mean(axis=2) < 0.9).mean()
    assert 0.02 < ink < 0.9, f"{ink:.1%} of the screenshot is ink: blank or broken page"
    colourful = (pixels.max(axis=2) - pixels.min(axis=2) > 0.3).mean()
    assert colourful > 0.002  # the embedded plots decoded and were drawn
    dom = subprocess.run([_browser(), *flags, "--dump-dom", url], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    rendered = Page(dom)
    assert rendered.sections == SECTIONS
    assert len(rendered.tables) == len(Page((written / "report.html").read_text()).tables)


# --- the downstream-tasks section ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory):
    """A ladder with one task ``qa`` (tests/test_tasks.py's truth: Chinchilla's law to bpb, a sigmoid to
    accuracy), loaded as a runs table."""
    from test_tasks import ladder

    path = tmp_path_factory.mktemp("tasks") / "runs.csv"
    ladder(truth="chinchilla").to_csv(path, index=False)
    from scalefit.runs import load_runs

    return load_runs(path)


def test_task_section_shows_each_tasks_prediction_interval_and_verdict_at_the_target(task_runs):
    from test_tasks import TARGET, true_accuracy, true_bpb

    from scalefit.report import has_task_metrics, task_scaling
    from scalefit.report.tasks import tasks_section

    assert has_task_metrics(task_runs) and not has_task_metrics(task_runs.drop(columns=["task/qa/acc"]))
    result = task_scaling(task_runs, (1e9, 2e10), bootstrap=40, seed=0)
    section, saved = tasks_section(result)

    assert section.key == "tasks" and section.title == "Downstream tasks"
    (table,) = section.tables
    row = table.frame.set_index("task").loc["qa"]
    truth = float(true_accuracy(true_bpb(TARGET, "chinchilla"))[0])
    assert row["mean (any verdict)"] == pytest.approx(truth, abs=0.08)
    assert row["mean 95 % lo"] <= row["mean (any verdict)"] <= row["mean 95 % hi"]
    answer = result.table().set_index("task").loc["qa"]  # the section shows the result's own numbers
    assert (row["run 95 % lo"], row["run 95 % hi"]) == (answer["obs_lo"], answer["obs_hi"])
    assert row["run 95 % lo"] < row["run 95 % hi"]
    assert row["intermediate"] == "bpb" and row["chance"] == 0.25
    assert row["predictability"] in ("predictable", "not predictable at this ladder")
    assert (row["predictability"] == "predictable") == np.isfinite(row["predicted accuracy"])
    assert [f.key for f in section.figures] == ["task_qa"] and section.figures[0].png[:4] == b"\x89PNG"
    assert saved["kind"] == "task-scaling" and saved["prediction"][0]["task"] == "qa"


def test_report_of_a_table_with_task_metrics_has_a_tasks_section(task_runs):
    report = build_report(task_runs, targets=[(1e9, 2e10)], bootstrap=0, hparam_bootstrap=0, task_bootstrap=20)
    keys = [s.key for s in report.sections]
    assert "tasks" in keys and "tasks" not in report.absent
    assert keys.index("tasks") == keys.index("data") + 1 + sum(k in keys for k in ("fit", "frontier",
                                                                                   "extrapolations"))
    target = report.results["tasks"]["targets"]
    planned = report.results.get("extrapolations") or [{"params": report.results["data"]["params_range"][1],
                                                         "tokens": report.results["data"]["tokens_range"][1]}]
    assert target["params"] == [planned[0]["params"]] and target["tokens"] == [planned[0]["tokens"]]
    page = Page(report.to_html())
    assert "tasks" in page.sections and "tasks-table" in page.tables
