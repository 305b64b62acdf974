"""Server.serve_in_process with real child processes."""
from __future__ import annotations

import os
import signal
import statistics
import sys
import textwrap
import time
import uuid

import pytest

from childproc import HERE, pid_alive, spawn  # noqa: F401  (spawn is a fixture)
from conftest import wait_until
from objects import Stage
from pizco_qt import PizcoError, Protocol, Server
from pizco_qt.process import ProcessStartError, class_path_root, live_children
from probes import Counter, Crashy, WindowProbe

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process checks")


@pytest.fixture
def stop_later():
    """Proxies given to it get ``_proxy_stop_server()`` after the test."""
    proxies = []
    yield proxies.append
    for proxy in proxies:
        proxy._proxy_stop_server()


def test_serve_in_process_returns_a_working_proxy(stop_later, qtbot):
    proxy = Server.serve_in_process(Stage, (2.0,), {})
    stop_later(proxy)
    child = proxy._proxy_process
    assert child.alive() and child.pid != os.getpid()
    assert proxy.position == 2.0
    assert proxy.move_by(1.5, speed=2) == 5.0
    received = []
    proxy.position_changed.connect(lambda new, old: received.append((new, old)))
    proxy.position = 7
    qtbot.waitUntil(lambda: received == [(7.0, 5.0)], timeout=10000)
    assert proxy._proxy_endpoint.startswith("tcp://127.0.0.1:")


def test_startup_is_quick_and_stop_ends_the_child():
    durations = []
    for _ in range(3):
        t0 = time.perf_counter()
        proxy = Server.serve_in_process(Counter, (1,), {"step": 2})
        durations.append(time.perf_counter() - t0)
        child = proxy._proxy_process
        assert proxy.bump() == 3
        t1 = time.perf_counter()
        proxy._proxy_stop_server()
        stop_time = time.perf_counter() - t1
        assert child.returncode == 0
        assert not pid_alive(child.pid)
        assert stop_time < 5.5
    # generous sanity bound only; benchmarks/bench_process.py measures start-up
    assert statistics.median(durations) < 15, durations
    assert not [c for c in live_children() if c.alive()]


def test_stop_server_kills_a_child_that_does_not_stop():
    proxy = Server.serve_in_process(Counter)
    child = proxy._proxy_process
    os.kill(child.pid, signal.SIGSTOP)  # frozen: neither 'stop' nor EOF can end it
    try:
        t0 = time.perf_counter()
        proxy._proxy_core.timeout = 0.5
        child.stop_timeout = 0.5
        proxy._proxy_stop_server()
        assert time.perf_counter() - t0 < 5
    finally:
        if child.alive():
            os.kill(child.pid, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    assert not pid_alive(child.pid)


def test_stopped_by_another_proxy_the_child_exits_and_is_reaped():
    from pizco_qt import Proxy

    proxy = Server.serve_in_process(Counter)
    child = proxy._proxy_process
    other = Proxy(proxy._proxy_endpoint, timeout=10)
    other._proxy_stop_server()
    wait_until(lambda: child.returncode is not None, timeout=10)
    assert child.returncode == 0
    proxy._proxy_stop_server()  # still fine afterwards
    assert not pid_alive(child.pid)


def test_protocol_key_and_serializer_reach_the_child(stop_later, monkeypatch):
    monkeypatch.delenv("PZC_KEY", raising=False)
    proxy = Server.serve_in_process(Counter, protocol=Protocol("s3cret", "pickle4"))
    stop_later(proxy)
    assert proxy.environment("PZC_KEY") == "s3cret"
    assert proxy.environment("PZC_SER") == "pickle4"
    assert proxy.bump() == 1


def test_gui_child_opens_the_status_window(stop_later, tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    proxy = Server.serve_in_process(WindowProbe, gui=True)
    stop_later(proxy)
    status = [w for w in proxy.windows() if w["class"] == "StatusWindow"]
    assert len(status) == 1
    assert "WindowProbe" in status[0]["texts"]
    assert proxy._proxy_process.rep_endpoint in status[0]["texts"]
    shot = tmp_path / "status-window-gui-child.png"
    assert proxy.screenshot(str(shot))
    assert shot.stat().st_size > 5000


# ---------------------------------------------------------------- failures
def _assert_fast_failure(exc_info, t0, *needles):
    assert time.perf_counter() - t0 < 20
    text = str(exc_info.value)
    assert isinstance(exc_info.value, PizcoError)
    for needle in needles:
        assert needle in text, text
    assert "stderr" in text
    assert not [c for c in live_children() if c.alive()]


def test_crash_in_init_reports_the_childs_stderr():
    t0 = time.perf_counter()
    with pytest.raises(ProcessStartError) as info:
        Server.serve_in_process(Crashy, (99,))
    _assert_fast_failure(info, t0, "exited with status 1", "RuntimeError: crash in __init__ 99", "Traceback")
    assert info.value.returncode == 1


def test_import_error_in_the_child_reports_its_stderr(tmp_path, monkeypatch):
    name = f"flaky_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import os
        if os.environ.get("PZC_TEST_BREAK_IMPORT"):
            raise ImportError("deliberately broken module for this test")

        class Thing:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    assert class_path_root(module.Thing) == str(tmp_path)
    monkeypatch.setenv("PZC_TEST_BREAK_IMPORT", "1")
    t0 = time.perf_counter()
    with pytest.raises(ProcessStartError) as info:
        Server.serve_in_process(module.Thing)
    _assert_fast_failure(info, t0, "ImportError: deliberately broken module for this test",
                         f"cannot import {name}:Thing")


def test_port_taken_reports_the_childs_stderr(closing):
    taken = closing(Server(None)).rep_endpoint
    t0 = time.perf_counter()
    with pytest.raises(ProcessStartError) as info:
        Server.serve_in_process(Counter, rep_endpoint=taken)
    _assert_fast_failure(info, t0, "cannot bind " + taken)


def test_not_ready_in_time_kills_the_child():
    t0 = time.perf_counter()
    with pytest.raises(ProcessStartError) as info:
        Server.serve_in_process(Counter, timeout=0.05)
    assert "not ready within 0.05 s" in str(info.value)
    assert time.perf_counter() - t0 < 10
    assert not [c for c in live_children() if c.alive()]


class Local:
    """Pretends to be defined in __main__."""


def test_classes_the_child_cannot_import_are_refused():
    class Inner:
        pass

    with pytest.raises(ValueError, match="inside a function"):
        Server.serve_in_process(Inner)
    Local.__module__ = "__main__"
    try:
        with pytest.raises(ValueError, match="defined in __main__"):
            Server.serve_in_process(Local)
    finally:
        Local.__module__ = __name__
    with pytest.raises(TypeError, match="needs a class"):
        Server.serve_in_process("objects.Stage")
    with pytest.raises(TypeError, match="not one"):
        Server.serve_in_process(Counter, (object(),))
    assert not live_children()


def test_class_path_root_of_packages_and_modules():
    import pizco_qt.agent

    root = class_path_root(pizco_qt.agent.Agent)
    assert os.path.isdir(os.path.join(root, "pizco_qt"))
    assert class_path_root(Stage) == HERE
    assert class_path_root(int) is None


# ---------------------------------------------------------------- orphans
PARENT = """
import sys
sys.path.insert(0, {here!r})
from pizco_qt import Server
from probes import Counter
proxy = Server.serve_in_process(Counter)
print(proxy._proxy_process.pid, flush=True)
sys.stdin.read()
"""


def test_child_exits_when_its_parent_is_sigkilled(spawn):
    parent = spawn([sys.executable, "-c", PARENT.format(here=HERE)])
    child_pid = int(parent.line(60))
    assert pid_alive(child_pid)
    os.kill(parent.pid, signal.SIGKILL)
    assert parent.wait(10) == -signal.SIGKILL
    t0 = time.perf_counter()
    try:
        wait_until(lambda: not pid_alive(child_pid), timeout=10)
    finally:
        if pid_alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)
    assert time.perf_counter() - t0 < 10


def test_verbose_relays_the_childs_log(stop_later, capsys):
    proxy = Server.serve_in_process(Counter, verbose=True)
    stop_later(proxy)
    pid = proxy._proxy_process.pid
    assert proxy.bump() == 1
    seen = []

    def relayed():
        seen.append(capsys.readouterr().err)
        return f"[probes.Counter {pid}]" in "".join(seen) and "serving Counter at" in "".join(seen)

    wait_until(relayed, timeout=10)
