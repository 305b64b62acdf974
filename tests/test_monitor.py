"""pizco-monitor driven for real: a registry on port 0, real servers, the real window offscreen.

Each test isolates QSettings in its tmp_path and points PZC_REGISTRY at a port-0
registry (never the default 5777). Screenshots are saved in tmp_path and their
paths printed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import pytest
from qtpy import QtCore, QtWidgets

from conftest import HERE, ROOT
from objects import Stage
from pizco_qt import Server, Signal

Qt = QtCore.Qt
# the offscreen platform says this about every top-level window it shows
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support (propagateSizeHints|setParent)")
WAIT = 15_000  # ms: generous, the machine is shared


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path):
    """Every window of a test reads and writes its settings under tmp_path."""
    path = tmp_path / "settings"
    path.mkdir()
    QtCore.QSettings.setPath(QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(path))
    yield path


@pytest.fixture
def monitor(qtbot):
    """Factory: ``monitor(**kwargs)`` shows a MonitorWindow; every window is closed after the test."""
    from pizco_qt.apps.monitor import MonitorWindow

    windows = []

    def make(*args, **kwargs):
        window = MonitorWindow(*args, **kwargs)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def screenshot(widget, tmp_path, name: str) -> str:
    path = str(tmp_path / f"{name}.png")
    assert widget.grab().save(path)
    print(f"screenshot: {path}")
    return path


def row_names(window) -> list:
    model = window.servers.model()
    return [model.index(r, 0).data() for r in range(model.rowCount())]


def click_server(qtbot, window, name: str) -> None:
    model = window.servers.model()
    row = row_names(window).index(name)
    rect = window.servers.visualRect(model.index(row, 0))
    qtbot.mouseClick(window.servers.viewport(), Qt.LeftButton, pos=rect.center())


def attr_text(window, name: str) -> str:
    model = window.attribute_model
    row = model.names().index(name)
    return model.index(row, model.VALUE).data()


def wait_attributes(qtbot, window, names) -> None:
    def shown():
        have = window.attribute_model.names()
        assert all(n in have for n in names), have
        for n in names:
            assert attr_text(window, n) != "\u2026", n
    qtbot.waitUntil(shown, timeout=WAIT)


# ---------------------------------------------------------------------- listing and selecting
def test_registered_server_appears_and_selection_fills_every_pane(qtbot, monitor, reg_server, closing, tmp_path):
    stage = Stage(position=1.25)
    closing(Server(stage, name="stage-a"))
    window = monitor()
    qtbot.waitUntil(lambda: "stage-a" in row_names(window), timeout=WAIT)
    assert window.servers.objectName() == "servers"
    qtbot.waitUntil(lambda: window.server_model.entry("stage-a").state == "online", timeout=WAIT)

    click_server(qtbot, window, "stage-a")
    wait_attributes(qtbot, window, ["position", "speed", "name", "read_only"])
    assert attr_text(window, "position") == "1.25"
    assert attr_text(window, "speed") == "1.5"
    assert attr_text(window, "name") == "'stage-1'"
    assert attr_text(window, "read_only") == "'fixed'"
    assert {"move_by", "echo", "fail", "slow"} <= set(window.method_model.names())
    assert {"position_changed", "moved"} <= set(window.signal_model.names())
    row = window.attribute_model.row("read_only")
    assert row.writable is False and window.attribute_model.row("position").writable is True
    assert "online" in window.server_detail.text()
    screenshot(window, tmp_path, "monitor-stage")


def test_header_uptime_keeps_counting(qtbot, monitor, reg_server, closing):
    closing(Server(Stage(), name="stage-up"))
    window = monitor()
    qtbot.waitUntil(lambda: "stage-up" in row_names(window), timeout=WAIT)
    window.select_server("stage-up")

    def uptime():
        found = re.search(r"up (\d+) s", window.server_detail.text())
        return int(found.group(1)) if found else None

    qtbot.waitUntil(lambda: uptime() is not None, timeout=WAIT)
    first = uptime()
    qtbot.waitUntil(lambda: uptime() >= first + 2, timeout=WAIT)  # without reselecting


def test_keyboard_selects_servers_and_panes_follow(qtbot, monitor, reg_server, closing):
    closing(Server(Stage(), name="kb-1"))

    class Counter:
        count = 7

        def bump(self):
            """Add one."""
            self.count += 1
            return self.count

    closing(Server(Counter(), name="kb-2"))
    window = monitor()
    qtbot.waitUntil(lambda: {"kb-1", "kb-2"} <= set(row_names(window)), timeout=WAIT)
    window.servers.setFocus()
    qtbot.keyClick(window.servers, Qt.Key_Home)
    first = row_names(window)[window.servers.currentIndex().row()]
    qtbot.keyClick(window.servers, Qt.Key_Down)
    second = row_names(window)[window.servers.currentIndex().row()]
    assert {first, second} == {"kb-1", "kb-2"}
    if second == "kb-2":
        qtbot.waitUntil(lambda: window.attribute_model.names() == ["count"], timeout=WAIT)
        qtbot.waitUntil(lambda: attr_text(window, "count") == "7", timeout=WAIT)
        assert window.method_model.names() == ["bump"]
    else:
        wait_attributes(qtbot, window, ["position"])


def test_added_endpoint_is_listed_by_endpoint_and_remembered(qtbot, monitor, closing, monkeypatch, reg_server):
    server = closing(Server(Stage()))
    window = monitor()
    window.add_endpoint(server.rep_endpoint)
    qtbot.waitUntil(lambda: window.server_model.entry(server.rep_endpoint).state == "online", timeout=WAIT)
    assert row_names(window) == [server.rep_endpoint]
    window.close()

    again = monitor()
    assert row_names(again) == [server.rep_endpoint]
    qtbot.waitUntil(lambda: again.server_model.entry(server.rep_endpoint).state == "online", timeout=WAIT)
    again.select_server(server.rep_endpoint)
    again.remove_action.trigger()
    assert row_names(again) == []
    again.close()
    assert row_names(monitor()) == []


def test_bad_endpoint_is_refused_with_a_message(qtbot, monitor, reg_server):
    window = monitor()
    assert window.add_endpoint("localhost:8000") is None
    assert "not an endpoint" in window.statusBar().currentMessage()
    assert row_names(window) == []


# ---------------------------------------------------------------------- editing, calling, signals
def test_editing_a_writable_value_sets_it_on_the_server(qtbot, monitor, reg_server, closing, tmp_path):
    stage = Stage()
    closing(Server(stage, name="stage-edit"))
    window = monitor()
    qtbot.waitUntil(lambda: "stage-edit" in row_names(window), timeout=WAIT)
    window.select_server("stage-edit")
    wait_attributes(qtbot, window, ["position", "speed"])

    model = window.attribute_model
    index = model.index(model.names().index("position"), model.VALUE)
    window.attributes.setFocus()
    window.attributes.setCurrentIndex(index)
    qtbot.keyClick(window.attributes, Qt.Key_F2)
    editor = window.attributes.indexWidget(index)  # the open editor of that cell
    assert isinstance(editor, QtWidgets.QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "2.5")
    assert editor.text() == "2.5"
    qtbot.keyClick(editor, Qt.Key_Return)
    qtbot.waitUntil(lambda: "stage-edit.position = 2.5" in window.statusBar().currentMessage(), timeout=WAIT)
    qtbot.waitUntil(lambda: stage.position == 2.5, timeout=WAIT)
    qtbot.waitUntil(lambda: attr_text(window, "position") == "2.5", timeout=WAIT)

    # text that is not a literal is refused and the server keeps its value
    assert model.setData(model.index(model.names().index("speed"), model.VALUE), "fast") is False
    assert "not a Python literal" in window.statusBar().currentMessage()
    assert stage.speed == 1.5

    # the server refusing a value shows its error, the value stays
    index = model.index(model.names().index("position"), model.VALUE)
    model.setData(index, "'not a number'")
    qtbot.waitUntil(lambda: "Could not set" in window.statusBar().currentMessage(), timeout=WAIT)
    assert stage.position == 2.5
    screenshot(window, tmp_path, "monitor-edited")


def test_calling_a_method_shows_its_result_and_remote_errors(qtbot, monitor, reg_server, closing, tmp_path):
    stage = Stage()
    closing(Server(stage, name="stage-call"))
    window = monitor()
    qtbot.waitUntil(lambda: "stage-call" in row_names(window), timeout=WAIT)
    window.select_server("stage-call")
    qtbot.waitUntil(lambda: "move_by" in window.method_model.names(), timeout=WAIT)

    window.methods.setFocus()
    window.methods.setCurrentIndex(window.method_model.index(window.method_model.names().index("move_by"), 0))
    qtbot.keyClick(window.methods, Qt.Key_Return)
    dialog = window.call_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.keyClicks(dialog.arguments, "1.5, speed=2.0")
    with qtbot.waitSignal(dialog.succeeded, timeout=WAIT) as blocker:
        qtbot.keyClick(dialog.arguments, Qt.Key_Return)
    assert blocker.args == [3.0]
    assert dialog.result_text() == "3.0"
    assert stage.position == 3.0
    screenshot(dialog, tmp_path, "call-result")

    dialog = window.open_call_dialog(window.method_model.names().index("fail"))
    dialog.arguments.setText("'broken wire'")
    with qtbot.waitSignal(dialog.failed, timeout=WAIT):
        dialog.call_button.click()
    text = dialog.result_text()
    assert text.startswith("CustomError: broken wire")
    assert "Remote traceback" in text and "raise CustomError(message)" in text
    screenshot(dialog, tmp_path, "call-exception")

    dialog.arguments.setText("1, 2, 3 +")
    dialog.call_button.click()
    assert "cannot read the arguments" in dialog.result_text()


def test_a_slow_method_keeps_the_window_responsive(qtbot, monitor, reg_server, closing):
    stage = Stage()
    closing(Server(stage, name="stage-slow"))
    window = monitor()
    qtbot.waitUntil(lambda: "stage-slow" in row_names(window), timeout=WAIT)
    window.select_server("stage-slow")
    qtbot.waitUntil(lambda: "blocked" in window.method_model.names(), timeout=WAIT)
    dialog = window.open_call_dialog(window.method_model.names().index("blocked"))
    dialog.call_button.click()
    qtbot.waitUntil(lambda: "Waiting for the server" in dialog.state.text(), timeout=WAIT)
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    qtbot.waitUntil(lambda: len(ticks) > 20, timeout=WAIT)  # the event loop turns while the call hangs
    timer.stop()
    with qtbot.waitSignal(dialog.succeeded, timeout=WAIT):
        stage.release.set()
    assert dialog.result_text() == "'released'"


def test_subscribing_shows_counts_arguments_and_a_log(qtbot, monitor, reg_server, closing, tmp_path):
    stage = Stage()
    closing(Server(stage, name="stage-sig"))
    window = monitor()
    qtbot.waitUntil(lambda: "stage-sig" in row_names(window), timeout=WAIT)
    window.select_server("stage-sig")
    qtbot.waitUntil(lambda: "position_changed" in window.signal_model.names(), timeout=WAIT)
    session = window.current

    model = window.signal_model
    row = model.names().index("position_changed")
    window.signals.setFocus()
    window.signals.setCurrentIndex(model.index(row, 0))
    with qtbot.waitSignal(session.subscription_active, timeout=WAIT):
        qtbot.keyClick(window.signals, Qt.Key_Space)
    assert model.row("position_changed").subscribed
    for value in (1.0, 2.0, 3.0):
        stage.position = value
    qtbot.waitUntil(lambda: model.row("position_changed").count == 3, timeout=WAIT)
    assert model.row("position_changed").last_args == (3.0, 2.0)
    assert model.index(row, model.ARGS).data() == "(3.0, 2.0)"
    qtbot.waitUntil(lambda: len(window.log_model.texts()) == 3, timeout=WAIT)
    assert window.log_model.texts()[-1] == "position_changed (3.0, 2.0)"
    if window.plot.available:
        qtbot.waitUntil(lambda: window.plot.points("stage-sig.position_changed[0]") == 3, timeout=WAIT)
    screenshot(window, tmp_path, "monitor-signals")

    qtbot.keyClick(window.signals, Qt.Key_Space)
    assert not model.row("position_changed").subscribed
    assert "position_changed" not in session.sinks
    assert all(not c.startswith("stage-sig.position_changed") for c in window.plot.curves())


def test_watched_attribute_is_plotted(qtbot, monitor, reg_server, closing):
    stage = Stage(position=4.0)
    closing(Server(stage, name="stage-watch"))
    window = monitor()
    window.interval.setValue(0.1)
    qtbot.waitUntil(lambda: "stage-watch" in row_names(window), timeout=WAIT)
    window.select_server("stage-watch")
    wait_attributes(qtbot, window, ["position"])
    model = window.attribute_model
    model.setData(model.index(model.names().index("position"), model.WATCH), Qt.Checked, Qt.CheckStateRole)
    qtbot.waitUntil(lambda: window.plot.points("stage-watch.position") >= 3, timeout=WAIT)


def test_auto_refresh_follows_changes_without_pressing_refresh(qtbot, monitor, reg_server, closing):
    stage = Stage()
    closing(Server(stage, name="stage-auto"))
    window = monitor()
    window.interval.setValue(0.2)
    qtbot.waitUntil(lambda: "stage-auto" in row_names(window), timeout=WAIT)
    window.select_server("stage-auto")
    wait_attributes(qtbot, window, ["speed"])
    window.auto_refresh.setChecked(True)
    stage.speed = 9.75
    qtbot.waitUntil(lambda: attr_text(window, "speed") == "9.75", timeout=WAIT)
    window.auto_refresh.setChecked(False)
    stage.speed = 1.0
    window.refresh_action.trigger()
    qtbot.waitUntil(lambda: attr_text(window, "speed") == "1.0", timeout=WAIT)


def test_a_hung_server_times_out_reads_and_the_window_stays_usable(qtbot, monitor, reg_server, closing):
    stage = Stage()
    closing(Server(stage, name="stage-hang"))
    window = monitor(timeout=1.0)
    qtbot.waitUntil(lambda: "stage-hang" in row_names(window), timeout=WAIT)
    window.select_server("stage-hang")
    wait_attributes(qtbot, window, ["position"])
    dialog = window.open_call_dialog(window.method_model.names().index("blocked"))
    dialog.call_button.click()  # the served object is now busy in blocked()
    qtbot.waitUntil(lambda: "Waiting for the server" in dialog.state.text(), timeout=WAIT)
    window.refresh_action.trigger()
    qtbot.waitUntil(lambda: "no reply within 1 s" in attr_text(window, "position"), timeout=WAIT)
    assert "RemoteTimeout: 'getmany' to tcp://127.0.0.1:" in attr_text(window, "position")  # names the call and server
    assert "failed" in window.statusBar().currentMessage()
    assert window.server_model.entry("stage-hang").state == "online"  # busy is not dead
    with qtbot.waitSignal(dialog.succeeded, timeout=WAIT):
        stage.release.set()
    window.refresh_action.trigger()
    qtbot.waitUntil(lambda: attr_text(window, "position") == "0.0", timeout=WAIT)


# ---------------------------------------------------------------------- liveness and floods
CHILD = r"""
import sys
sys.path.insert(0, sys.argv[2])
from objects import Stage
from pizco_qt import Server
server = Server(Stage(), sys.argv[1])
print(server.rep_endpoint, flush=True)
sys.stdin.read()  # until the parent closes the pipe or kills us
"""


def _spawn(endpoint: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-u", "-c", CHILD, endpoint, HERE], env=env, cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ready(proc: subprocess.Popen) -> str:
    box = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline().strip()), daemon=True)
    reader.start()
    reader.join(30)
    assert box and box[0].startswith("tcp://"), (box, proc.poll())
    return box[0]


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def test_killed_server_turns_offline_and_comes_back(qtbot, monitor, reg_server, tmp_path):
    proc = _spawn("tcp://127.0.0.1:0")
    try:
        endpoint = _ready(proc)
        window = monitor()
        window.add_endpoint(endpoint, remember=False)
        window.select_server(endpoint)
        wait_attributes(qtbot, window, ["position"])
        proc.kill()
        proc.communicate(timeout=10)
        killed = time.monotonic()
        qtbot.waitUntil(lambda: window.server_model.entry(endpoint).state == "offline", timeout=WAIT)
        took = time.monotonic() - killed
        print(f"offline {took:.2f} s after the kill")
        assert took < 10
        assert "offline" in window.server_detail.text()
        assert not window.attributes.isEnabled()
        screenshot(window, tmp_path, "monitor-offline")

        proc = _spawn(endpoint)  # the same endpoint again
        assert _ready(proc) == endpoint
        qtbot.waitUntil(lambda: window.server_model.entry(endpoint).state == "online", timeout=WAIT)
        qtbot.waitUntil(lambda: window.attributes.isEnabled(), timeout=WAIT)
        wait_attributes(qtbot, window, ["position"])
    finally:
        _reap(proc)


class Flood:
    """Emits as fast as it can when asked."""

    tick = Signal()

    def flood(self, n: int) -> int:
        for i in range(n):
            self.tick.emit(i)
        return n


def test_a_flooding_server_leaves_the_window_responsive(qtbot, monitor, reg_server, closing):
    flood = Flood()
    closing(Server(flood, name="flood"))
    window = monitor()
    qtbot.waitUntil(lambda: "flood" in row_names(window), timeout=WAIT)
    window.select_server("flood")
    qtbot.waitUntil(lambda: "tick" in window.signal_model.names(), timeout=WAIT)
    session = window.current
    model = window.signal_model
    with qtbot.waitSignal(session.subscription_active, timeout=WAIT):
        model.setData(model.index(model.names().index("tick"), 0), Qt.Checked, Qt.CheckStateRole)

    n = 20_000
    gaps = []
    last = [time.monotonic()]

    def beat():
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QtCore.QTimer()
    timer.timeout.connect(beat)
    timer.start(10)
    worker = threading.Thread(target=flood.flood, args=(n,))
    worker.start()
    qtbot.waitUntil(lambda: model.row("tick").count == n, timeout=60_000)
    timer.stop()
    worker.join(10)
    assert model.row("tick").last_args == (n - 1,)
    assert len(window.log_model.texts()) <= window.log_model.limit
    print(f"{n} emissions; longest event-loop gap {max(gaps) * 1000:.0f} ms over {len(gaps)} ticks")
    assert max(gaps) < 1.0  # generous: a frozen window would show seconds


# ---------------------------------------------------------------------- optional parts and the command line
def test_monitor_works_without_pyqtgraph(qtbot, monitor, reg_server, closing, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyqtgraph", None)  # import pyqtgraph now fails
    stage = Stage()
    closing(Server(stage, name="stage-noplot"))
    window = monitor()
    assert window.plot.available is False
    assert window.plot_pane.isHidden()
    qtbot.waitUntil(lambda: "stage-noplot" in row_names(window), timeout=WAIT)
    window.select_server("stage-noplot")
    qtbot.waitUntil(lambda: "position_changed" in window.signal_model.names(), timeout=WAIT)
    model = window.signal_model
    with qtbot.waitSignal(window.current.subscription_active, timeout=WAIT):
        model.setData(model.index(model.names().index("position_changed"), 0), Qt.Checked, Qt.CheckStateRole)
    stage.position = 5.0
    qtbot.waitUntil(lambda: model.row("position_changed").count == 1, timeout=WAIT)


def test_no_registry_is_reported_and_hand_added_servers_still_work(qtbot, monitor, closing, tmp_path):
    server = closing(Server(Stage()))
    window = monitor(f"ipc://{tmp_path}/no-registry", timeout=1.0)
    window.add_endpoint(server.rep_endpoint, remember=False)
    qtbot.waitUntil(lambda: window.registry.state == "offline", timeout=WAIT)
    assert "not reachable" in window.registry_label.text()
    window.select_server(server.rep_endpoint)
    wait_attributes(qtbot, window, ["position"])


def test_command_line_help_starts_nothing(capsys):
    from pizco_qt.apps.monitor.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pizco-monitor") and "--demo" in out


def test_command_line_shows_the_window(qtbot, reg_server, closing):
    from pizco_qt.apps.monitor.__main__ import main

    server = closing(Server(Stage(), name="cli-stage"))
    seen = []
    deadline = time.monotonic() + 30

    def close_when_listed():
        for widget in QtWidgets.QApplication.topLevelWidgets():
            if widget.objectName() == "pizco_monitor" and widget.isVisible():
                names = row_names(widget)
                if "cli-stage" in names or time.monotonic() > deadline:
                    seen.append(names)
                    widget.close()
                    return
        QtCore.QTimer.singleShot(50, close_when_listed)

    QtCore.QTimer.singleShot(50, close_when_listed)
    assert main([reg_server.rep_endpoint, "--timeout", "3"]) == 0
    assert seen and "cli-stage" in seen[0]
    assert server.rep_endpoint


# ---------------------------------------------------------------------- roles and exclusive control
def test_header_shows_role_and_lock_holder_take_control_and_release(qtbot, monitor, reg_server, closing,
                                                                      tmp_path):
    from pizco_qt import Proxy

    stage = Stage()
    server = closing(Server(stage, name="stage-lock"))
    window = monitor()
    qtbot.waitUntil(lambda: "stage-lock" in row_names(window), timeout=WAIT)
    window.select_server("stage-lock")
    wait_attributes(qtbot, window, ["position"])
    control = window.findChild(QtWidgets.QLabel, "server_control")
    qtbot.waitUntil(lambda: "control: free" in control.text(), timeout=WAIT)
    assert "you are a controller" in control.text()
    take, release = window.take_control_action, window.release_control_action
    assert take.isEnabled() and not release.isEnabled()

    # another client takes control: the header names it, edits and calls say who holds it
    script = closing(Proxy(server.rep_endpoint, timeout=5, label="scan script"))
    script._proxy_lock()
    qtbot.waitUntil(lambda: "control: scan script" in control.text(), timeout=WAIT)
    assert f"pid {os.getpid()}" in control.text()
    assert "scan script holds exclusive control" in control.toolTip()
    screenshot(window, tmp_path, "monitor-locked")
    model = window.attribute_model
    model.setData(model.index(model.names().index("position"), model.VALUE), "4.0")
    qtbot.waitUntil(lambda: "scan script holds exclusive control" in window.statusBar().currentMessage(),
                    timeout=WAIT)
    assert "Cannot set stage-lock.position" in window.statusBar().currentMessage()
    assert window.open_call_dialog(window.method_model.names().index("move_by")) is None
    assert "Cannot call stage-lock.move_by()" in window.statusBar().currentMessage()
    assert stage.position == 0.0
    take.trigger()  # refused: the holder is named in the status bar
    qtbot.waitUntil(lambda: "Could not take control" in window.statusBar().currentMessage(), timeout=WAIT)
    assert "scan script" in window.statusBar().currentMessage()

    # released: the monitor takes control itself, writes, releases
    script._proxy_unlock()
    qtbot.waitUntil(lambda: "control: free" in control.text(), timeout=WAIT)
    take.trigger()
    qtbot.waitUntil(lambda: "control: you since" in control.text(), timeout=WAIT)
    assert release.isEnabled() and not take.isEnabled()
    assert server.lock_holder()["label"] == script._proxy_lock_holder()["label"] != "scan script"
    model.setData(model.index(model.names().index("position"), model.VALUE), "4.0")
    qtbot.waitUntil(lambda: stage.position == 4.0, timeout=WAIT)
    release.trigger()
    qtbot.waitUntil(lambda: "control: free" in control.text() and server.lock_holder() is None, timeout=WAIT)


def test_an_observer_monitor_says_so_and_cannot_take_control(qtbot, monitor, closing, monkeypatch):
    from pizco_qt import Protocol
    from pizco_qt.registry import serve_registry

    monkeypatch.setenv("PZC_KEY", "main")
    registry = closing(serve_registry("tcp://127.0.0.1:0", protocol=Protocol("main"), observer_key="watch"))
    monkeypatch.setenv("PZC_REGISTRY", registry.rep_endpoint)
    stage = Stage()
    closing(Server(stage, name="stage-obs", protocol=Protocol("main"), observer_key="watch"))
    window = monitor(proxy_kwargs={"protocol": Protocol("watch")})
    qtbot.waitUntil(lambda: "stage-obs" in row_names(window), timeout=WAIT)
    window.select_server("stage-obs")
    wait_attributes(qtbot, window, ["position"])
    control = window.findChild(QtWidgets.QLabel, "server_control")
    qtbot.waitUntil(lambda: "you are an observer" in control.text(), timeout=WAIT)
    assert not window.take_control_action.isEnabled()
    model = window.attribute_model
    model.setData(model.index(model.names().index("position"), model.VALUE), "4.0")
    qtbot.waitUntil(lambda: "you are an observer" in window.statusBar().currentMessage(), timeout=WAIT)
    assert stage.position == 0.0
