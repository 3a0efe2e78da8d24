"""The docs hold together: the CLI reference is the parsers' current --help, the command outputs quoted in
README and docs are what the code prints now, links resolve, the index lists every page, and the quickstart runs
the README's own commands."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def test_cli_reference_is_generated_from_the_current_help():
    spec = importlib.util.spec_from_file_location("make_cli_reference", DOCS / "make_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "cli.md").read_text() == module.reference(), (
        "docs/cli.md is stale: run .venv/bin/python docs/make_cli_reference.py")


def test_quoted_outputs_are_what_the_code_prints_now():
    """Every ``<!-- example: CMD -->`` block (README's main job, the quickstart, plan --check) is regenerated."""
    spec = importlib.util.spec_from_file_location("make_examples", DOCS / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    quoted = [page for page in module.pages() if "<!-- example: " in page.read_text()]
    assert {p.name for p in quoted} >= {"README.md", "quickstart.md", "planning.md"}
    stale = module.regenerate(check=True)
    assert not stale, f"stale quoted outputs {stale}: run .venv/bin/python docs/make_examples.py"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_index_lists_every_page():
    index = (DOCS / "index.md").read_text()
    listed = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    assert listed == {p.name for p in PAGES} - {"index.md"}


def test_quickstart_runs_the_readmes_two_commands():
    readme, quickstart = (REPO / "README.md").read_text(), (DOCS / "quickstart.md").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme, flags=re.DOTALL)
    assert len(commands) >= 2
    for command in commands[:2]:
        assert command.strip() in quickstart
