"""examples/qt_gui.py: a live reading, an offline indicator, and a slow call that
does not freeze the window. Runs headless in a subprocess and in-process (with
screenshots of the window)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from qtpy import QtCore

from conftest import ROOT

EXAMPLE = os.path.join(ROOT, "examples", "qt_gui.py")
GUI_WAIT = 15_000


def load_example():
    spec = importlib.util.spec_from_file_location("qt_gui_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(*args, timeout=60):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-u", EXAMPLE, *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_headless_run_shows_live_readings():
    proc = run_example("--quit-after", "2")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"qt_gui ready rep=tcp://127\.0\.0\.1:\d+", lines[0])
    shown = int(re.fullmatch(r"qt_gui showed (\d+) readings", lines[-1]).group(1))
    assert shown >= 3  # ten readings a second arrive while the window is open


def test_headless_run_against_a_server_process(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    server = subprocess.Popen([sys.executable, "-m", "pizco_qt", "tcp://127.0.0.1:0", "--serve",
                               "qt_gui:Voltmeter", "-p", os.path.dirname(EXAMPLE), "--watch-stdin"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=str(tmp_path))
    try:
        ready = server.stdout.readline()
        match = re.match(r"pizco-server ready rep=(\S+) pub=\S+", ready)
        assert match, f"{ready!r} {server.stderr.read() if server.poll() is not None else ''}"
        proc = run_example(match.group(1), "--quit-after", "1.5")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == f"qt_gui ready rep={match.group(1)}"
        assert int(proc.stdout.split("showed ")[1].split()[0]) >= 2
    finally:
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        server.stdout.close()
        server.stderr.close()


@pytest.fixture
def example_window(qtbot, closing, monkeypatch):
    monkeypatch.setenv("PZC_HEARTBEAT", "0.2")
    module = load_example()
    from pizco_qt import Proxy, Server

    instrument = module.Voltmeter(period=0.05)
    server = closing(Server(instrument))
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    window = module.MeterWindow(proxy, measure_seconds=0.6)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window, server, instrument
    instrument.close()


def test_window_updates_live_and_measures_without_freezing(qtbot, example_window, tmp_path):
    window, server, instrument = example_window
    qtbot.waitUntil(lambda: window.readings >= 3 and window.value.text().endswith(" V"), timeout=GUI_WAIT)
    assert window.status.text().endswith("online")

    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(window.readings))
    timer.start(20)
    try:
        qtbot.mouseClick(window.button, QtCore.Qt.LeftButton)
        assert not window.button.isEnabled() and window.busy.isVisible()
        assert window.result.text() == "Measuring..."
        qtbot.waitUntil(lambda: window.busy.isVisible() and window.readings >= ticks[0] + 2 if ticks else False,
                        timeout=GUI_WAIT)
        window.grab().save(str(tmp_path / "qt_gui_measuring.png"))
        with qtbot.waitSignal(window.watcher.finished, timeout=GUI_WAIT):
            pass
    finally:
        timer.stop()
    # the event loop kept running during the 0.6 s call: timer ticks and new readings
    assert len(ticks) >= 10
    assert ticks[-1] > ticks[0]
    assert re.fullmatch(r"Averaged over 0\.6 s: \d\.\d{4} V", window.result.text())
    qtbot.waitUntil(lambda: window.button.isEnabled() and not window.busy.isVisible(), timeout=GUI_WAIT)
    path = tmp_path / "qt_gui.png"
    assert window.grab().save(str(path)) and path.stat().st_size > 1000
    _keep_screenshot(path)
    _keep_screenshot(tmp_path / "qt_gui_measuring.png")


def test_window_shows_offline_when_the_server_stops(qtbot, example_window, tmp_path):
    window, server, instrument = example_window
    qtbot.waitUntil(lambda: window.readings >= 1, timeout=GUI_WAIT)
    with qtbot.waitSignal(window.proxy._proxy_connection.lost, timeout=GUI_WAIT):
        server.stop()
    assert window.status.text().endswith("offline") and not window.button.isEnabled()
    path = tmp_path / "qt_gui_offline.png"
    assert window.grab().save(str(path))
    _keep_screenshot(path)


def _keep_screenshot(path) -> None:
    """Copy a screenshot where a person can look at it after the run (PZC_SCREENSHOTS=dir)."""
    target = os.environ.get("PZC_SCREENSHOTS")
    if target:
        import shutil

        os.makedirs(target, exist_ok=True)
        shutil.copy(str(path), os.path.join(target, os.path.basename(str(path))))
