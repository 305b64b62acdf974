"""The pytest plugin shipped with pizco_qt, used by a user's own test suite (run with pytester)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

pytest_plugins = ["pytester"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROCESS_TESTS = """
from pizco_qt import Signal


class Counter:
    value_changed = Signal()

    def __init__(self, start=0):
        self._value = start

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        self._value = v
        self.value_changed.emit(v)


CHILDREN = []


def test_gui_with_a_process_server(qtbot, pizco_serve_process):
    proxy = pizco_serve_process(Counter, args=(3,))
    CHILDREN.append(proxy._proxy_process.popen)
    assert proxy.value == 3
    with qtbot.waitSignal(proxy.value_changed, timeout=10000) as blocker:
        proxy.value = 4
    assert blocker.args == [4]


def test_after_it_the_child_is_gone():
    assert len(CHILDREN) == 1
    assert CHILDREN[0].poll() is not None  # stopped and reaped by the fixture
"""


def _documented_test() -> str:
    """The example test shown in docs/binding.md."""
    with open(os.path.join(ROOT, "docs", "binding.md"), encoding="utf-8") as f:
        text = f.read()
    block = text.split("```python\n# test_counter_panel.py\n", 1)[1].split("```", 1)[0]
    return block


def _run(pytester, name, source):
    pytester.makepyfile(**{name: source})
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=120)


def test_the_documented_user_test_passes_with_the_thread_fixture(pytester):
    result = _run(pytester, "test_counter_panel", _documented_test())
    result.assert_outcomes(passed=2)


def test_the_thread_fixture_takes_instances_and_cleans_up(pytester):
    source = _documented_test() + textwrap.dedent("""

        import threading


        def test_an_instance_and_a_timeout(pizco_serve_thread):
            counter = Counter(1)
            proxy = pizco_serve_thread(counter, timeout=3)
            proxy.value = 2
            assert counter.value == 2 and proxy._proxy_timeout == 3


        def test_args_need_a_class(pizco_serve_thread):
            import pytest

            with pytest.raises(TypeError, match="class"):
                pizco_serve_thread(Counter(), args=(1,))


        def test_zz_nothing_is_left_after_them():
            names = [t.name for t in threading.enumerate()]
            assert not [n for n in names if n.startswith("pizco-server ")], names
    """)
    result = _run(pytester, "test_more", source)
    result.assert_outcomes(passed=5)


def test_the_process_fixture_serves_in_a_child_and_stops_it(pytester):
    result = _run(pytester, "test_process_fixture", PROCESS_TESTS)
    result.assert_outcomes(passed=2)


def test_the_plugin_is_registered_and_imports_nothing_heavy():
    code = textwrap.dedent("""
        import sys
        from importlib.metadata import entry_points
        eps = entry_points()
        group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
        assert [ep.value for ep in group if ep.name == "pizco_qt"] == ["pizco_qt.pytest_plugin"]
        import pizco_qt.pytest_plugin  # imports the package __init__ ...
        sys.modules.pop("pizco_qt.pytest_plugin")
        for name in [m for m in sys.modules if m.startswith(("pizco_qt", "qtpy", "PyQt", "PySide"))]:
            del sys.modules[name]
        import importlib.util
        spec = importlib.util.find_spec("pizco_qt.pytest_plugin")
        # ... so load the module file alone and check what it pulled in
        before = set(sys.modules)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        heavy = [m for m in set(sys.modules) - before if m.startswith(("pizco_qt", "qtpy", "PyQt", "PySide", "zmq"))]
        assert not heavy, heavy
        assert hasattr(module, "pizco_serve_thread") and hasattr(module, "pizco_serve_process")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
