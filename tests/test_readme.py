"""README.md shows the example files verbatim, and only them.

Every ```python block of README.md starts with a comment line naming the file it
shows (``# examples/NAME.py``); the rest of the block must equal that file, so
the README's code is the code that tests/test_examples.py and tests/test_seed.py
run.
"""
from __future__ import annotations

import os

from conftest import ROOT
from doc_snippets import blocks, language, shown_file


def _readme_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return blocks(f.read())


def test_readme_python_blocks_are_the_example_files():
    python = [b for b in _readme_blocks() if language(b) == "python"]
    assert python, "README.md should show example code"
    for block in python:
        path = shown_file(block)
        assert path is not None, (
            f"README.md:{block.line}: a python block must start with '# examples/NAME.py' and show that file")
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            assert block.code.split("\n", 1)[1] == f.read(), f"README.md:{block.line} differs from {path}"


def test_readme_shows_the_quick_start_and_the_seed():
    shown = {shown_file(b) for b in _readme_blocks()}
    assert "examples/quickstart.py" in shown
