"""Every examples/*.py runs as a subprocess, prints one ready line and exits cleanly by itself.

GUI examples (those that accept ``--quit-after``) run headless with a quit timer.
The seed scenario (example.py, server.py, client.py) needs a server and a client
at once and is exercised in tests/test_seed.py.
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = os.path.join(ROOT, "examples")
SEED = {"example.py", "server.py", "client.py"}  # see tests/test_seed.py
ALL = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.py")))
STANDALONE = [name for name in ALL if name not in SEED]
READY = re.compile(r"^[\w.-]+ ready( \w+=\S+)*$")


def _source(name: str) -> str:
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return f.read()


def test_the_seed_examples_are_covered_elsewhere():
    assert SEED <= set(ALL)
    with open(os.path.join(ROOT, "tests", "test_seed.py"), encoding="utf-8") as f:
        seed_test = f.read()
    assert "server.py" in seed_test and "client.py" in seed_test


def test_every_example_says_how_to_run_it():
    for name in ALL:
        assert f"examples/{name}" in _source(name).split("\n\n", 1)[0] or name == "example.py", (
            f"examples/{name} should start with a docstring saying `python examples/{name}`")


@pytest.mark.parametrize("name", STANDALONE)
def test_example_runs_and_exits_cleanly(name, tmp_path):
    argv = [sys.executable, "-u", os.path.join(EXAMPLES, name)]
    if "--quit-after" in _source(name):
        argv += ["--quit-after", "1"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(argv, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"examples/{name} did not exit within 90 s\nstdout:\n{out}\nstderr:\n{err}")
    assert proc.returncode == 0, f"examples/{name} exited with {proc.returncode}\nstderr:\n{err}"
    assert "Traceback" not in err, f"examples/{name} printed a traceback:\n{err}"
    ready = [line for line in out.splitlines() if READY.match(line)]
    assert len(ready) == 1, f"examples/{name} should print one ready line ('NAME ready key=value ...'):\n{out}"
