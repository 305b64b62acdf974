"""The guide in docs/: its snippets run and print what the pages say, its links resolve."""
from __future__ import annotations

import doctest
import glob
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from doc_snippets import RUN_MARKER, blocks, expected_outputs, runnable, shown_file

DOCS = os.path.join(ROOT, "docs")
PAGES = sorted(glob.glob(os.path.join(DOCS, "*.md")))
_checker = doctest.OutputChecker()


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


RUN_PAGES = [p for p in PAGES if _read(p).startswith(RUN_MARKER)]


def _rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def test_the_guide_has_its_chapters():
    names = {os.path.basename(p) for p in PAGES}
    assert {"index.md", "api.md", "basics.md", "exceptions.md", "futures.md", "signals.md",
            "protocol.md"} <= names
    assert len(RUN_PAGES) >= 5, "the guide's own chapters must run their snippets"


@pytest.mark.parametrize("page", RUN_PAGES, ids=[os.path.basename(p) for p in RUN_PAGES])
def test_chapter_snippets_run_and_print_what_the_page_shows(page, tmp_path):
    """Every ```python block of the chapter runs, in order, and prints its ```text output block."""
    text = _read(page)
    code_blocks = [b for b in blocks(text) if runnable(b)]
    expected = expected_outputs(text)
    assert code_blocks, f"{_rel(page)} is marked to run but has no python block"
    out = tmp_path / "results.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=os.path.join(ROOT, "examples"))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "doc_snippets.py"), page, str(out)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{_rel(page)}: the snippet runner failed:\n{proc.stderr}"
    results = json.loads(out.read_text())
    for block, result, want in zip(code_blocks, results, expected):
        where = f"{_rel(page)}:{block.line}"
        assert result["error"] is None, f"the snippet at {where} raised:\n{result['error']}"
        if want is not None:
            assert _checker.check_output(want, result["stdout"], doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), (
                f"the snippet at {where} printed\n{result['stdout']}\nbut the page shows\n{want}")
    assert len(results) == len(code_blocks)
    assert "Traceback" not in proc.stderr, f"{_rel(page)} printed a traceback:\n{proc.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=[os.path.basename(p) for p in PAGES])
def test_files_shown_in_the_guide_are_verbatim(page):
    for block in blocks(_read(page)):
        path = shown_file(block)
        if path is None:
            continue
        body = block.code.split("\n", 1)[1]
        assert body == _read(os.path.join(ROOT, path)), f"{_rel(page)}:{block.line} does not show {path} as it is"


_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES + [os.path.join(ROOT, "README.md")],
                         ids=[os.path.basename(p) for p in PAGES] + ["README.md"])
def test_relative_links_resolve(page):
    text = _read(page)
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code are not links
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        if target.startswith("#"):
            assert target[1:] in _anchors(text), f"{_rel(page)} links to {target}: no such heading"
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
        assert os.path.exists(resolved), f"{_rel(page)} links to {target}, which does not exist"
        if anchor and resolved.endswith(".md"):
            assert anchor in _anchors(_read(resolved)), f"{_rel(page)} links to {target}: no such heading"


def _anchors(text: str) -> set:
    """GitHub's anchors of a page's headings."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    found = set()
    for title in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found
