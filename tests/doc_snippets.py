"""Read the code blocks of a Markdown page, and run a guide chapter's snippets.

Conventions of the pages in docs/ (and README.md):

* A ```python block whose first line is ``# examples/NAME.py`` shows that file
  verbatim (the rest of the block must equal the file).
* A guide chapter that starts with the line ``<!-- snippets: run -->`` is run by
  tests/test_docs.py: its other ```python blocks run in order, in one process and
  one namespace, like a script read from top to bottom. A ```python norun block
  is only shown.
* A ```text output block right after a python block is that block's expected
  standard output; ``...`` matches anything (doctest's ELLIPSIS).

Run as a script (``python doc_snippets.py PAGE.md OUT.json``), it executes the
page's runnable blocks and writes each block's output (or traceback) to OUT.json.
This runs on the main thread of its own process.
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import traceback
from typing import List, NamedTuple, Optional

RUN_MARKER = "<!-- snippets: run -->"
_FENCE = re.compile(r"^(`{3,})(.*)$")


class Block(NamedTuple):
    """One fenced code block of a Markdown page."""

    info: str        # the info string, e.g. "python", "python norun", "text output"
    code: str        # the block's text, ending with a newline
    line: int        # 1-based line number of the opening fence
    after: int       # 1-based line number of the closing fence


def blocks(text: str) -> List[Block]:
    """Every fenced code block of ``text``, in order."""
    out: List[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group(1), m.group(2).strip(), i
        body: List[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        out.append(Block(info, "\n".join(body) + "\n", start + 1, i + 1))
        i += 1
    return out


def language(block: Block) -> str:
    """The block's language (the first word of its info string)."""
    return block.info.split()[0] if block.info else ""


def shown_file(block: Block) -> Optional[str]:
    """The repository path a python block shows verbatim (``# examples/NAME.py``), else None."""
    first = block.code.split("\n", 1)[0]
    m = re.match(r"^# ((?:examples|docs|benchmarks)/[\w./-]+\.py)\s*$", first)
    return m.group(1) if m else None


def runnable(block: Block) -> bool:
    """Whether a guide chapter's block is executed."""
    words = block.info.split()
    return bool(words) and words[0] == "python" and "norun" not in words[1:] and shown_file(block) is None


def expected_outputs(text: str) -> List[Optional[str]]:
    """For each runnable block of ``text``, the ```text output block that follows it, or None."""
    found = blocks(text)
    lines = text.splitlines()
    result: List[Optional[str]] = []
    for n, block in enumerate(found):
        if not runnable(block):
            continue
        expected = None
        if n + 1 < len(found):
            nxt = found[n + 1]
            between = lines[block.after:nxt.line - 1]
            if nxt.info.split()[:2] == ["text", "output"] and not any(s.strip() for s in between):
                expected = nxt.code
        result.append(expected)
    return result


def run_page(path: str) -> List[dict]:
    """Execute the runnable blocks of ``path`` in one namespace; stop at the first failure."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    shown_name = "/".join(os.path.abspath(path).split(os.sep)[-2:])  # e.g. docs/signals.md
    namespace: dict = {"__name__": "__main__"}
    results: List[dict] = []
    real_stdout = sys.stdout
    for block in filter(runnable, blocks(text)):
        captured = io.StringIO()
        sys.stdout = captured
        error = None
        try:
            exec(compile(block.code, f"{shown_name}:{block.line}", "exec"), namespace)
        except BaseException:  # reported to the test, which fails with it
            error = traceback.format_exc()
        finally:
            sys.stdout = real_stdout
        results.append({"line": block.line, "stdout": captured.getvalue(), "error": error})
        if error is not None:
            break
    return results


if __name__ == "__main__":
    page, out = sys.argv[1], sys.argv[2]
    results = run_page(page)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f)
