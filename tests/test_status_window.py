"""StatusWindow in-process with qtbot: what it shows, live updates, closing stops the server."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from objects import Stage
from pizco_qt import Proxy, Server

QtWidgets = pytest.importorskip("qtpy.QtWidgets")
from qtpy import QtCore  # noqa: E402

from pizco_qt.apps.status import LogPaneHandler, StatusWindow  # noqa: E402
from pizco_qt.apps.status.window import declared_signals, format_duration, icon_path  # noqa: E402


@pytest.fixture
def window(qtbot, closing):
    """``window(obj) -> (StatusWindow, server, proxy)``; closed (and the server stopped) after the test."""
    made = []

    def _make(obj, **kwargs):
        server = Server(obj, **kwargs)
        made.append(server)
        proxy = closing(Proxy(server.rep_endpoint, timeout=5))
        win = StatusWindow(server)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        return win, server, proxy

    yield _make
    for server in made:
        server.stop()


def _texts(win):
    return ([e.text() for e in win.findChildren(QtWidgets.QLineEdit)]
            + [lab.text() for lab in win.findChildren(QtWidgets.QLabel)])


def _cell(table, row_name, col):
    for row in range(table.rowCount()):
        if table.item(row, 0).text() == row_name:
            return table.item(row, col).text()
    return None


def test_shows_class_endpoints_and_live_figures(window, qtbot, tmp_path):
    win, server, proxy = window(Stage(1.0), name=None)
    texts = _texts(win)
    assert "Stage" in texts
    assert server.rep_endpoint in texts and server.pub_endpoint in texts
    assert win.findChild(QtWidgets.QLineEdit, "repEndpoint").isReadOnly()
    assert server.rep_endpoint in win.windowTitle()
    assert win.state_label.text() == "Serving"
    assert not win.windowIcon().isNull()

    got = threading.Event()
    proxy.position_changed.connect(lambda *a: got.set())
    for _ in range(25):
        proxy.move_by(1)
    with pytest.raises(Exception, match="bad thing"):
        proxy.fail("bad thing")
    logging.getLogger("lab.stage").warning("motor temperature high")

    table = win.signals_table
    qtbot.waitUntil(lambda: _cell(table, "position_changed", 1) == "1", timeout=5000)
    qtbot.waitUntil(lambda: _cell(table, "position_changed", 2) == "25", timeout=5000)
    assert _cell(table, "moved", 1) == "0"  # declared signals are listed before anyone subscribes
    qtbot.waitUntil(lambda: win.errors_table.rowCount() == 1, timeout=5000)
    assert "CustomError('bad thing')" in win.errors_table.item(0, 3).text()
    assert win.errors_table.item(0, 1).text() == "exec" and win.errors_table.item(0, 2).text() == "fail"
    qtbot.waitUntil(lambda: "motor temperature high" in win.log_view.toPlainText(), timeout=5000)
    qtbot.waitUntil(lambda: int(win.requests_card.value.text().replace("\u2009", "")) >= 27, timeout=5000)
    assert win.errors_card.value.text() == "1"
    assert win.subscribers_card.value.text() == "1"

    shot = tmp_path / "status-window.png"
    assert win.grab().save(str(shot))
    assert shot.stat().st_size > 10000


def test_closing_the_window_stops_the_server(window, qtbot):
    win, server, proxy = window(Stage())
    with qtbot.waitSignal(win.closed, timeout=5000):
        win.close()
    assert server.stopped
    assert win.log_handler not in logging.getLogger().handlers


def test_stop_button_stops_the_server(window, qtbot):
    win, server, proxy = window(Stage())
    with qtbot.waitSignal(win.closed, timeout=5000):
        qtbot.mouseClick(win.stop_button, QtCore.Qt.LeftButton)
    assert server.stopped


def test_a_server_stopped_elsewhere_shows_stopped(window, qtbot):
    win, server, proxy = window(Stage())
    server.stop()
    qtbot.waitUntil(lambda: win.state_label.text() == "Stopped", timeout=5000)
    assert "(stopped)" in win.windowTitle()
    assert not win.stop_button.isEnabled()


def test_empty_server_then_instantiate_updates_the_window(window, qtbot):
    win, server, proxy = window(None)
    assert "Empty server" in _texts(win)
    proxy._proxy_agent.instantiate(Stage, (4.0,))
    qtbot.waitUntil(lambda: win.class_label.text() == "Stage", timeout=5000)
    assert {"position_changed", "moved", "many"} <= {win.signals_table.item(r, 0).text()
                                                     for r in range(win.signals_table.rowCount())}


def test_stays_responsive_under_a_flood(window, qtbot):
    win, server, proxy = window(Stage())
    got = []
    done = threading.Event()
    proxy.many.connect(lambda i: got.append(i))
    log = logging.getLogger("lab.flood")

    def hammer():
        for _ in range(20):
            proxy.emit_many(500)
            for i in range(200):
                log.warning("flood line %d", i)
        done.set()

    ticks = []
    timer = QtCore.QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    t = threading.Thread(target=hammer)
    started = time.perf_counter()
    t.start()
    try:
        qtbot.waitUntil(done.is_set, timeout=30000)
        qtbot.waitUntil(lambda: _cell(win.signals_table, "many", 2) == "10\u2009000", timeout=10000)
    finally:
        t.join(30)
        timer.stop()
    # the flood's start and end bound the first and last gap, so a flood shorter
    # than two timer intervals still measures the loop instead of nothing
    points = [started] + ticks + [time.perf_counter()]
    gaps = [b - a for a, b in zip(points, points[1:])]
    assert max(gaps) < 1.0, (len(ticks), max(gaps))  # generous: the event loop kept turning
    assert win.log_view.document().blockCount() <= 5000


def test_helpers():
    assert format_duration(3725) == "01:02:05"
    assert format_duration(2 * 86400 + 5) == "2 d 00:00:05"
    assert declared_signals(Stage()) == ["many", "moved", "position_changed"]
    assert declared_signals(None) == []
    assert icon_path("pizco-server.svg").endswith("pizco-server.svg")
    handler = LogPaneHandler(capacity=3)
    for i in range(5):
        handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "line %d", (i,), None))
    lines, skipped = handler.drain(2)
    assert [t.split()[-1] for _, t in lines] == ["2", "3"] and skipped == 3


def test_rates_count_only_what_happens_while_the_window_is_open(qtbot, closing):
    """Emissions and requests made before the window opened do not show up as a rate."""
    stage = Stage()
    server = closing(Server(stage))
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    proxy.many.connect(lambda *args: None)
    assert proxy.emit_many(300) == 300
    for _ in range(30):
        assert proxy.speed == 1.5
    qtbot.waitUntil(lambda: server.emissions["many"] == 300, timeout=5000)
    win = StatusWindow(server)
    qtbot.addWidget(win)
    opened = win._rate_sample[0]
    win.show()
    qtbot.waitUntil(lambda: win._rate_sample[0] > opened, timeout=5000)  # a rate was measured
    assert win.emissions_card.detail.text() == "0 / s"
    assert win.requests_card.detail.text() == "0 / s"
    assert win.emissions_card.value.text().replace("\u2009", "") == "300"


def test_shows_the_lock_holder_and_the_recent_writes(window, qtbot, closing, tmp_path):
    win, server, proxy = window(Stage(1.0))
    assert win.control_card.value.text() == "free"
    gui = closing(Proxy(server.rep_endpoint, timeout=5, label="alignment GUI"))
    gui._proxy_lock()
    gui.move_by(2.5)
    gui.position = 7.0
    qtbot.waitUntil(lambda: win.control_card.value.text() == "alignment GUI", timeout=5000)
    assert "since" in win.control_card.detail.text() and str(gui._proxy_lock_holder()["pid"]) in \
        win.control_card.detail.text()
    table = win.findChild(QtWidgets.QTableWidget, "writes")
    qtbot.waitUntil(lambda: table.rowCount() == 2, timeout=5000)
    rows = [[table.item(r, c).text() for c in range(4)] for r in range(2)]
    assert [row[1:] for row in rows] == [["alignment GUI", "setattr", "position"],
                                         ["alignment GUI", "exec", "move_by"]]  # newest first
    assert all(":" in row[0] for row in rows)
    assert not any("7.0" in cell or "2.5" in cell for row in rows for cell in row)  # never values
    assert win.grab().save(str(tmp_path / "status-locked.png"))
    gui._proxy_unlock()
    qtbot.waitUntil(lambda: win.control_card.value.text() == "free", timeout=5000)
