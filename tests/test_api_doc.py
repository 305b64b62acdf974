"""docs/api.md documents the whole public surface: pizco_qt.__all__ and the console scripts."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pizco_qt
from conftest import ROOT

API = os.path.join(ROOT, "docs", "api.md")
HINT = "regenerate it with `python docs/gen_api.py`"


def _api() -> str:
    with open(API, encoding="utf-8") as f:
        return f.read()


def _scripts() -> list:
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"^\[project\.scripts\]\n(.*?)(?:^\[|\Z)", text, re.M | re.S).group(1)
    return re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', block, re.M)


def test_every_public_name_has_a_section():
    text = _api()
    for name in pizco_qt.__all__:
        try:
            getattr(pizco_qt, name)
        except Exception:  # announced in __all__ but its module is not there: nothing to document
            assert f"`{name}`" in text, f"docs/api.md should say that {name} is not available; {HINT}"
            continue
        assert f"## `pizco_qt.{name}`" in text, f"docs/api.md has no section for pizco_qt.{name}; {HINT}"


def test_every_installed_console_script_has_a_section():
    text = _api()
    for script, target in _scripts():
        module = target.split(":")[0]
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, cwd=ROOT,
                               env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), timeout=60)
        if probe.returncode == 0:
            assert f"## `{script}`" in text, f"docs/api.md has no section for {script}; {HINT}"


def test_the_generator_documents_what_exists(tmp_path):
    """gen_api.py runs, and what it writes covers the same names as docs/api.md."""
    code = ("import sys; sys.path.insert(0, 'docs'); import gen_api; "
            "open(sys.argv[1], 'w', encoding='utf-8').write(gen_api.generate())")
    out = tmp_path / "api.md"
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stderr
    heads = lambda text: set(re.findall(r"^## `([^`]+)`", text, re.M))  # noqa: E731
    assert heads(out.read_text(encoding="utf-8")) == heads(_api()), HINT
