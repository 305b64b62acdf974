"""pizco-server / python -m pizco_qt as real processes: ready line, serving, signals, errors."""
from __future__ import annotations

import os
import signal
import sys

import pytest

from childproc import HERE, server_argv, spawn  # noqa: F401  (spawn is a fixture)
from pizco_qt import Proxy

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_help_exits_0_and_starts_nothing(spawn):
    child = spawn(server_argv("--help"))
    assert child.wait(30) == 0, child.describe()
    out = "\n".join(child.stdout)
    assert out.startswith("usage: pizco-server")
    for option in ("--serve", "--args", "--kwargs", "--path", "--gui", "--verbose", "--name", "--allow-insecure"):
        assert option in out
    assert "ready" not in child.stdout[0]


def test_console_script_answers_help(spawn):
    script = os.path.join(os.path.dirname(sys.executable), "pizco-server")
    assert os.path.exists(script), "pizco-server is not installed next to this Python"
    child = spawn([script, "--help"])
    assert child.wait(30) == 0, child.describe()
    assert child.stdout[0].startswith("usage: pizco-server")


@pytest.mark.parametrize("args, message", [
    ((), "the following arguments are required: rep_endpoint"),
    (("tcp://127.0.0.1:0", "--bogus"), "unrecognized arguments: --bogus"),
    (("not-an-endpoint",), "is not a ZMQ endpoint"),
    (("tcp://127.0.0.1:0", "--serve", "objects:Stage", "--args", "(1, oops)"), "is not a Python literal"),
    (("tcp://127.0.0.1:0", "--serve", "objects:Stage", "--kwargs", "[1]"), "is not a dict literal"),
    (("tcp://127.0.0.1:0", "--args", "(1,)"), "--args and --kwargs need --serve"),
    (("tcp://127.0.0.1:0", "--serve", "no class here"), "expected MODULE:CLASS"),
])
def test_bad_arguments_exit_2_with_usage(spawn, args, message):
    child = spawn(server_argv(*args))
    assert child.wait(30) == 2, child.describe()
    err = "\n".join(child.stderr)
    assert err.startswith("usage: pizco-server"), err
    assert message in err
    assert child.stdout == []


def _serve_stage(spawn, *extra: str):
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "objects:Stage", "--args", "(3.0,)",
                              "-p", HERE, *extra))
    rep, pub = child.ready()
    return child, rep, pub


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_then_stops_on_signal_with_status_0(spawn, signum):
    child, rep, pub = _serve_stage(spawn)
    assert rep.startswith("tcp://127.0.0.1:") and pub.startswith("tcp://127.0.0.1:")
    assert not rep.endswith(":0") and rep != pub
    proxy = Proxy(rep, timeout=10)
    try:
        assert proxy.position == 3.0
        assert proxy.move_by(2) == 5.0
        assert proxy._proxy_agent.request(rep, "info")["pid"] == child.pid
    finally:
        proxy._proxy_stop_me()
    child.signal(signum)
    assert child.wait(5) == 0, child.describe()
    assert "Traceback" not in "\n".join(child.stderr)


def test_stop_request_ends_the_process(spawn):
    child, rep, _ = _serve_stage(spawn)
    proxy = Proxy(rep, timeout=10)
    proxy._proxy_stop_server()
    assert child.wait(5) == 0, child.describe()


def test_closing_stdin_stops_a_watching_server(spawn):
    child, rep, _ = _serve_stage(spawn, "--watch-stdin")
    child.popen.stdin.close()
    assert child.wait(5) == 0, child.describe()


def test_separate_pub_endpoint_and_verbose_logging(spawn):
    child = spawn(server_argv("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "--serve", "probes:Counter",
                              "--kwargs", "{'start': 10, 'step': 5}", "-p", HERE, "-v"))
    rep, pub = child.ready()
    proxy = Proxy(rep, timeout=10)
    try:
        assert proxy.bump() == 15
        assert proxy._proxy_agent.request(rep, "info")["pub_endpoint"] == pub
    finally:
        proxy._proxy_stop_me()
    child.signal(signal.SIGTERM)
    assert child.wait(5) == 0, child.describe()
    err = "\n".join(child.stderr)
    assert "INFO" in err and "serving Counter at " + rep in err
    assert "stopping: SIGTERM" in err


def test_empty_server_then_instantiate(spawn):
    child = spawn(server_argv("tcp://127.0.0.1:0", "-p", HERE))
    rep, _ = child.ready()
    proxy = Proxy(rep, timeout=10)
    try:
        proxy._proxy_agent.instantiate("probes.Counter", (7,), {"step": 3})
        assert proxy.value == 7
        assert proxy.bump() == 10
        assert proxy.pid() == child.pid
    finally:
        proxy._proxy_stop_me()
    child.signal(signal.SIGTERM)
    assert child.wait(5) == 0, child.describe()


@pytest.mark.parametrize("args, expected", [
    (("--serve", "no_such_module_xyz:Thing"), "No module named 'no_such_module_xyz'"),
    (("--serve", "probes:Nope"), "has no attribute 'Nope'"),
    (("--serve", "probes:Crashy", "--args", "(7,)"), "crash in __init__ 7"),
])
def test_start_failures_exit_1_with_the_reason(spawn, args, expected):
    child = spawn(server_argv("tcp://127.0.0.1:0", "-p", HERE, *args))
    assert child.wait(30) == 1, child.describe()
    err = "\n".join(child.stderr)
    assert "Traceback" in err and expected in err
    assert "pizco-server: error:" in err
    assert child.stdout == []


def test_port_taken_exits_1_naming_the_endpoint(spawn, closing):
    from pizco_qt import Server

    taken = closing(Server(None)).rep_endpoint
    child = spawn(server_argv(taken, "--serve", "probes:Counter", "-p", HERE))
    assert child.wait(30) == 1, child.describe()
    err = "\n".join(child.stderr)
    assert "pizco-server: error: cannot bind " + taken in err


def test_non_loopback_refused_without_allow_insecure(spawn):
    child = spawn(server_argv("tcp://0.0.0.0:0", "--serve", "probes:Counter", "-p", HERE),
                  env={"PZC_KEY": "", "PZC_SER": ""})
    assert child.wait(30) == 1, child.describe()
    assert "allow_insecure" in "\n".join(child.stderr)
    child2 = spawn(server_argv("tcp://0.0.0.0:0", "--serve", "probes:Counter", "-p", HERE, "--allow-insecure"),
                   env={"PZC_KEY": "", "PZC_SER": ""})
    rep, _ = child2.ready()
    assert rep.startswith("tcp://0.0.0.0:")
    child2.signal(signal.SIGTERM)
    assert child2.wait(5) == 0, child2.describe()


def test_gui_opens_the_status_window(spawn, tmp_path):
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "probes:WindowProbe", "-p", HERE, "-g"),
                  env={"QT_QPA_PLATFORM": "offscreen"})
    rep, pub = child.ready()
    proxy = Proxy(rep, timeout=10)
    try:
        windows = proxy.windows()
        status = [w for w in windows if w["class"] == "StatusWindow"]
        assert len(status) == 1, windows
        assert "WindowProbe" in status[0]["texts"]
        assert rep in status[0]["texts"] and pub in status[0]["texts"]
        assert rep in status[0]["title"]
        shot = tmp_path / "status-window-cli.png"
        assert proxy.screenshot(str(shot))
        assert shot.stat().st_size > 5000
    finally:
        proxy._proxy_stop_me()
    child.signal(signal.SIGTERM)
    assert child.wait(5) == 0, child.describe()


def test_gui_server_ends_when_stopped_remotely(spawn):
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "probes:Counter", "-p", HERE, "-g"),
                  env={"QT_QPA_PLATFORM": "offscreen"})
    rep, _ = child.ready()
    Proxy(rep, timeout=10)._proxy_stop_server()
    assert child.wait(5) == 0, child.describe()


def test_closing_the_status_window_ends_the_program(spawn):
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "probes:WindowProbe", "-p", HERE, "-g"),
                  env={"QT_QPA_PLATFORM": "offscreen"})
    rep, _ = child.ready()
    proxy = Proxy(rep, timeout=10)
    try:
        assert proxy.close_status_window()
    finally:
        proxy._proxy_stop_me()
    assert child.wait(5) == 0, child.describe()


def test_gui_server_watching_stdin_ends_on_eof(spawn):
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "probes:Counter", "-p", HERE, "-g",
                              "--watch-stdin"), env={"QT_QPA_PLATFORM": "offscreen"})
    child.ready()
    child.popen.stdin.close()
    assert child.wait(5) == 0, child.describe()


def test_headless_server_needs_no_display_and_no_widgets(spawn):
    # a QApplication would abort here: the xcb platform with no display
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "probes:Counter", "-p", HERE),
                  env={"QT_QPA_PLATFORM": "xcb", "DISPLAY": "", "WAYLAND_DISPLAY": ""})
    rep, _ = child.ready()
    proxy = Proxy(rep, timeout=10)
    try:
        assert proxy.qt_state() == {"widgets": [], "app": False}
    finally:
        proxy._proxy_stop_me()
    child.signal(signal.SIGTERM)
    assert child.wait(5) == 0, child.describe()


def test_a_served_qobject_gets_an_event_loop_in_its_thread(spawn):
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "probes:LoopProbe", "-p", HERE),
                  env={"QT_QPA_PLATFORM": "xcb", "DISPLAY": ""})
    rep, _ = child.ready()
    proxy = Proxy(rep, timeout=10)
    try:
        assert proxy.runs_in_main_thread_with_a_loop()
        assert proxy.qt_state() == {"widgets": [], "app": True}
    finally:
        proxy._proxy_stop_me()
    child.signal(signal.SIGTERM)
    assert child.wait(5) == 0, child.describe()
