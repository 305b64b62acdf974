"""Remote signals as Qt deliveries: the thread each slot runs on, chaining, order, coalescing.

Everything here waits with qtbot.waitSignal / qtbot.waitUntil (the GUI thread's
event loop runs meanwhile); nothing calls processEvents by hand.
"""
from __future__ import annotations

import threading

import pytest
from qtpy import QtCore, QtWidgets

from conftest import wait_until
from qt_objects import Meter, Receiver

GUI_WAIT = 10_000  # ms


def gui_thread():
    return QtCore.QCoreApplication.instance().thread()


def is_gui(qthread) -> bool:
    app_thread = gui_thread()
    return qthread is app_thread or qthread == app_thread


def io_ident():
    from pizco_qt import iothread

    return iothread.io_thread().ident


# ------------------------------------------------------------------ the GUI thread
def test_lambda_runs_on_gui_thread(qtbot, served):
    _, proxy = served(Meter())
    got = []
    proxy.value_changed.connect(lambda v: got.append((v, QtCore.QThread.currentThread())))
    proxy.set_value("1.5 V")
    qtbot.waitUntil(lambda: len(got) == 1, timeout=GUI_WAIT)
    value, thread = got[0]
    assert value == "1.5 V"
    assert is_gui(thread)


def test_bound_method_and_qobject_slot_run_on_gui_thread(qtbot, served):
    _, proxy = served(Meter())
    rec = Receiver()

    class Plain:
        def __init__(self):
            self.calls = []

        def method(self, v):
            self.calls.append((v, QtCore.QThread.currentThread()))

    plain = Plain()
    proxy.value_changed.connect(plain.method)
    proxy.value_changed.connect(rec.on_value)
    proxy.value_changed.connect(rec.plain_method)
    proxy.set_value("x")
    qtbot.waitUntil(lambda: len(plain.calls) == 1 and len(rec.calls) == 2, timeout=GUI_WAIT)
    for value, thread in plain.calls + rec.calls:
        assert value == "x"
        assert is_gui(thread)


def test_chaining_into_a_label_and_into_a_qt_signal(qtbot, served):
    _, proxy = served(Meter())
    label = QtWidgets.QLabel("none")
    qtbot.addWidget(label)
    rec = Receiver()
    relayed = []
    rec.relay.connect(lambda v: relayed.append((v, QtCore.QThread.currentThread())))
    proxy.value_changed.connect(label.setText)
    proxy.value_changed.connect(rec.relay)
    with qtbot.waitSignal(rec.relay, timeout=GUI_WAIT) as blocker:
        proxy.set_value("42.0 mV")
    assert blocker.args == ["42.0 mV"]
    qtbot.waitUntil(lambda: label.text() == "42.0 mV", timeout=GUI_WAIT)
    assert relayed and is_gui(relayed[0][1])


def test_slots_taking_fewer_parameters(qtbot, served):
    _, proxy = served(Meter())
    label = QtWidgets.QLabel()
    qtbot.addWidget(label)
    got = []

    class Single(QtCore.QObject):
        one = QtCore.Signal(int)

    single = Single()
    single.one.connect(lambda a: got.append(("chained", a)))
    proxy.pair.connect(lambda: got.append(("none",)))
    proxy.pair.connect(lambda a: got.append(("one", a)))
    proxy.pair.connect(lambda a, b: got.append(("two", a, b)))
    proxy.pair.connect(label.setNum)  # Qt meta-method with one parameter
    proxy.pair.connect(single.one)  # a Qt signal with one parameter
    proxy.emit_pair(7, 9)
    qtbot.waitUntil(lambda: len(got) == 4 and label.text() == "7", timeout=GUI_WAIT)
    assert sorted(got) == sorted([("none",), ("one", 7), ("two", 7, 9), ("chained", 7)])


def test_disconnect_every_kind_of_slot(qtbot, served):
    server, proxy = served(Meter())
    label = QtWidgets.QLabel("start")
    qtbot.addWidget(label)
    rec = Receiver()
    relayed, lam, sentinel = [], [], []
    rec.relay.connect(relayed.append)

    def lam_slot(v):
        lam.append(v)

    proxy.value_changed.connect(lam_slot)
    proxy.value_changed.connect(label.setText)
    proxy.value_changed.connect(rec.on_value)
    proxy.value_changed.connect(rec.plain_method)
    proxy.value_changed.connect(rec.relay)
    proxy.value_changed.connect(sentinel.append)
    proxy.set_value("a")
    qtbot.waitUntil(lambda: sentinel == ["a"], timeout=GUI_WAIT)
    assert lam == ["a"] and label.text() == "a" and len(rec.calls) == 2 and relayed == ["a"]

    for slot in (lam_slot, label.setText, rec.on_value, rec.plain_method, rec.relay):
        proxy.value_changed.disconnect(slot)
        with pytest.raises(TypeError):
            proxy.value_changed.disconnect(slot)
    proxy.set_value("b")
    qtbot.waitUntil(lambda: sentinel == ["a", "b"], timeout=GUI_WAIT)
    assert lam == ["a"] and label.text() == "a" and len(rec.calls) == 2 and relayed == ["a"]

    # disconnect() with no argument drops the rest; the server then unsubscribes
    proxy.value_changed.connect(lam_slot)
    assert server.subscribers.get("value_changed") == 1
    proxy.value_changed.disconnect()
    assert proxy._proxy_core.connection_count("value_changed") == 0
    qtbot.waitUntil(lambda: "value_changed" not in server.subscribers, timeout=GUI_WAIT)


def test_deleted_qobject_slot_is_dropped(qtbot, served):
    _, proxy = served(Meter())
    rec = Receiver()
    sentinel = []
    proxy.value_changed.connect(rec.plain_method)
    proxy.value_changed.connect(sentinel.append)
    assert proxy._proxy_core.connection_count("value_changed") == 2
    with qtbot.waitSignal(rec.destroyed, timeout=GUI_WAIT):
        rec.deleteLater()
    qtbot.waitUntil(lambda: proxy._proxy_core.connection_count("value_changed") == 1, timeout=GUI_WAIT)
    proxy.set_value("after")
    qtbot.waitUntil(lambda: sentinel == ["after"], timeout=GUI_WAIT)


# ------------------------------------------------------------------ order and volume
def test_2000_emissions_arrive_in_order_on_the_gui_thread(qtbot, served):
    _, proxy = served(Meter())
    got, threads = [], set()

    def slot(i):
        got.append(i)
        if not is_gui(QtCore.QThread.currentThread()):
            threads.add(threading.current_thread().name)

    proxy.count.connect(slot)
    assert proxy.emit_counts(2000) == 2000
    qtbot.waitUntil(lambda: len(got) >= 2000, timeout=GUI_WAIT)
    assert got == list(range(2000))
    assert not threads


def test_coalescing_delivers_the_latest_value_once_per_turn(qtbot, served):
    """A GUI busy while 5,000 emissions arrive gets one coalesced call with the last value."""
    _, proxy = served(Meter())
    every, latest, arrived = [], [], []
    proxy.count.connect(every.append)
    proxy.count.connect(lambda i: latest.append((i, QtCore.QThread.currentThread())), coalesce=True)
    ready = threading.Event()

    def count_on_dispatcher():
        proxy.count.connect(arrived.append)
        ready.set()

    threading.Thread(target=count_on_dispatcher).start()
    assert ready.wait(10)
    proxy.emit_counts(5000)
    # the GUI thread stays busy (no event loop turn) until all have reached this process
    wait_until(lambda: len(arrived) == 5000, timeout=20)
    qtbot.waitUntil(lambda: len(every) == 5000 and latest and latest[-1][0] == 4999, timeout=GUI_WAIT)
    assert every == list(range(5000)) and arrived == list(range(5000))
    assert [v for v, _ in latest] == [4999]
    assert is_gui(latest[0][1])
    # a later single emission is still delivered
    proxy.emit_counts(1, start=5000)
    qtbot.waitUntil(lambda: latest[-1][0] == 5000, timeout=GUI_WAIT)
    assert len(latest) == 2


def test_coalescing_with_a_running_event_loop(qtbot, served):
    """Free-running GUI: fewer calls than emissions, increasing, ending with the latest value."""
    _, proxy = served(Meter())
    every, latest = [], []

    def slow_slot(i):  # a slot that costs like a redraw
        latest.append(i)
        threading.Event().wait(0.002)

    proxy.count.connect(every.append)
    proxy.count.connect(slow_slot, coalesce=True)
    proxy.emit_counts.future(5000)
    qtbot.waitUntil(lambda: len(every) == 5000 and latest and latest[-1] == 4999, timeout=GUI_WAIT)
    assert latest == sorted(set(latest))
    assert len(latest) < len(every) // 2, f"{len(latest)} coalesced calls for 5000 emissions"


# ------------------------------------------------------------------ other threads
def test_slot_from_a_plain_thread_runs_on_the_dispatcher(qtbot, served):
    _, proxy = served(Meter())
    got = []
    connected = threading.Event()

    def connect_from_thread():
        proxy.value_changed.connect(lambda v: got.append(
            (v, threading.current_thread().name, threading.get_ident(), QtCore.QThread.currentThread())))
        connected.set()

    t = threading.Thread(target=connect_from_thread, name="plain-connector")
    t.start()
    assert connected.wait(10)
    t.join(10)  # the connecting thread has ended: deliveries still arrive
    proxy.set_value("v")
    qtbot.waitUntil(lambda: len(got) == 1, timeout=GUI_WAIT)
    value, name, ident, qthread = got[0]
    assert value == "v"
    assert name == "pizco-dispatcher"
    assert ident != io_ident()
    assert not is_gui(qthread)


def test_slot_from_a_living_plain_thread_runs_on_the_dispatcher(served):
    _, proxy = served(Meter())
    got = []
    connected, finish = threading.Event(), threading.Event()

    def worker():
        proxy.value_changed.connect(lambda v: got.append((v, threading.current_thread().name)))
        connected.set()
        finish.wait(10)

    t = threading.Thread(target=worker, name="plain-living")
    t.start()
    try:
        assert connected.wait(10)
        proxy.set_value("w")
        wait_until(lambda: got, timeout=10)
        assert got == [("w", "pizco-dispatcher")]
    finally:
        finish.set()
        t.join(10)


class _LoopWorker(QtCore.QObject):
    """Connects a slot from inside a QThread whose event loop runs."""

    start_request = QtCore.Signal()

    def __init__(self, proxy):
        super().__init__()
        self.proxy = proxy
        self.got = []
        self.own_thread = None
        self.ready = threading.Event()
        self.start_request.connect(self.setup)

    @QtCore.Slot()
    def setup(self):
        self.own_thread = QtCore.QThread.currentThread()
        self.proxy.value_changed.connect(
            lambda v: self.got.append((v, QtCore.QThread.currentThread())))
        self.ready.set()


def test_slot_from_a_qthread_with_an_event_loop_runs_in_that_qthread(qtbot, served):
    _, proxy = served(Meter())
    thread = QtCore.QThread()
    worker = _LoopWorker(proxy)
    worker.moveToThread(thread)
    thread.start()
    try:
        worker.start_request.emit()  # queued into the QThread's loop
        qtbot.waitUntil(worker.ready.is_set, timeout=GUI_WAIT)
        proxy.set_value("in-thread")
        qtbot.waitUntil(lambda: len(worker.got) == 1, timeout=GUI_WAIT)
        value, qthread = worker.got[0]
        assert value == "in-thread"
        assert qthread is worker.own_thread or qthread == worker.own_thread
        assert qthread is thread or qthread == thread
        assert not is_gui(qthread)
    finally:
        proxy.value_changed.disconnect()
        thread.quit()
        assert thread.wait(10_000)


def test_slot_exception_goes_to_excepthook_and_delivery_continues(qtbot, served, monkeypatch):
    _, proxy = served(Meter())
    hooked, got = [], []
    monkeypatch.setattr("sys.excepthook", lambda *exc: hooked.append(exc[1]))

    def bad(v):
        raise ValueError(f"bad {v}")

    proxy.value_changed.connect(bad)
    proxy.value_changed.connect(got.append)
    proxy.set_value("1")
    proxy.set_value("2")
    qtbot.waitUntil(lambda: got == ["1", "2"] and len(hooked) == 2, timeout=GUI_WAIT)
    assert [str(e) for e in hooked] == ["bad 1", "bad 2"]


# ------------------------------------------------------------------ future helpers
def test_future_watcher_reports_on_the_gui_thread_without_freezing(qtbot, served):
    from pizco_qt import FutureWatcher
    from objects import CustomError

    _, proxy = served(Meter())
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    try:
        watcher = FutureWatcher(proxy.slow.future(0.3))
        results = []
        watcher.finished.connect(lambda r: results.append((r, QtCore.QThread.currentThread())))
        with qtbot.waitSignal(watcher.finished, timeout=GUI_WAIT) as blocker:
            pass
        assert blocker.args == ["slept 0.3"]
        assert results and is_gui(results[0][1])
        assert len(ticks) >= 5  # the event loop kept running during the slow call
    finally:
        timer.stop()

    failing = FutureWatcher(proxy.set_value.future())  # missing argument: TypeError remotely
    with qtbot.waitSignal(failing.failed, timeout=GUI_WAIT) as blocker:
        pass
    assert isinstance(blocker.args[0], TypeError)
    assert not isinstance(blocker.args[0], CustomError)


def test_future_watcher_in_a_plain_thread_emits_on_the_dispatcher(served):
    from pizco_qt import FutureWatcher

    _, proxy = served(Meter())
    got = []
    box = {}

    def make():
        box["w"] = FutureWatcher(proxy.slow.future(0.2))
        box["w"].finished.connect(lambda r: got.append((r, threading.current_thread().name)),
                                  QtCore.Qt.DirectConnection)

    t = threading.Thread(target=make)
    t.start()
    t.join(10)
    wait_until(lambda: got, timeout=10)
    assert got == [("slept 0.2", "pizco-dispatcher")]


def test_future_watcher_of_a_finished_future_emits_after_connecting(qtbot):
    import concurrent.futures

    from pizco_qt import FutureWatcher

    fut = concurrent.futures.Future()
    fut.set_result(7)
    watcher = FutureWatcher(fut)  # already done: the signal must still reach slots connected now
    got = []
    watcher.finished.connect(got.append)
    with qtbot.waitSignal(watcher.done, timeout=GUI_WAIT):
        pass
    assert got == [7]


def test_slot_connected_when_a_qthread_starts_runs_there_once_its_loop_runs(qtbot, served):
    """Connected from QThread.started (before its loop runs): later deliveries go to that thread."""
    _, proxy = served(Meter())
    thread = QtCore.QThread()
    worker = _LoopWorker(proxy)
    worker.moveToThread(thread)
    thread.started.connect(worker.setup)
    thread.start()
    try:
        qtbot.waitUntil(lambda: worker.ready.is_set() and thread.loopLevel() > 0, timeout=GUI_WAIT)
        proxy.set_value("started")
        qtbot.waitUntil(lambda: len(worker.got) == 1, timeout=GUI_WAIT)
        assert worker.got[0][1] is thread or worker.got[0][1] == thread
    finally:
        proxy.value_changed.disconnect()
        thread.quit()
        assert thread.wait(10_000)


def test_disconnecting_a_qobject_slot_stops_watching_the_qobject(qtbot, served):
    from pizco_qt import _qt

    _, proxy = served(Meter())
    rec = Receiver()
    before = len(_qt._WIRES)
    proxy.value_changed.connect(rec.plain_method)
    proxy.value_changed.connect(rec.on_value)
    assert len(_qt._WIRES) == before + 2
    proxy.value_changed.disconnect(rec.plain_method)
    assert len(_qt._WIRES) == before + 1
    proxy.value_changed.disconnect()
    assert len(_qt._WIRES) == before
