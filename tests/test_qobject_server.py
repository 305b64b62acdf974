"""Serving a QObject: its Qt signals reach remote subscribers, and it is only
touched in the thread it lives in (when that thread runs an event loop)."""
from __future__ import annotations

import threading

from qtpy import QtCore

from conftest import wait_until
from qt_objects import QtMeter

GUI_WAIT = 10_000


def is_gui(qthread) -> bool:
    app_thread = QtCore.QCoreApplication.instance().thread()
    return qthread is app_thread or qthread == app_thread


def in_plain_thread(fn):
    """Run ``fn`` in a fresh plain thread and return its result (or raise its exception)."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised below
            box["error"] = exc

    t = threading.Thread(target=run, name="plain-client")
    t.start()
    t.join(20)
    assert not t.is_alive()
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_remote_subscriber_receives_qt_signals(qtbot, served):
    meter = QtMeter()
    _, proxy = served(meter)
    got = []
    proxy.value_changed.connect(lambda v: got.append((v, QtCore.QThread.currentThread())))
    meter.value_changed.emit("local emission")  # emitted by the object itself, in its thread
    qtbot.waitUntil(lambda: len(got) == 1, timeout=GUI_WAIT)
    assert got[0][0] == "local emission" and is_gui(got[0][1])
    proxy.count.connect(got.append)
    fut = proxy.emit_counts.future(3)
    qtbot.waitUntil(lambda: fut.done() and len(got) == 4, timeout=GUI_WAIT)
    assert got[1:] == [0, 1, 2]


def _run_while_waiting(qtbot, start):
    """Call ``start()`` from inside one continuous GUI event loop and wait for its Future.

    The loop runs (loop level > 0) from before the request is sent until the
    reply arrives, so the server sees a GUI thread that runs its event loop.
    """
    import concurrent.futures

    from pizco_qt import FutureWatcher

    relay = concurrent.futures.Future()
    watcher = FutureWatcher(relay)

    def begin():
        fut = start()
        fut.add_done_callback(lambda f: relay.set_result(f.result()) if f.exception() is None
                              else relay.set_exception(f.exception()))

    with qtbot.waitSignal(watcher.done, timeout=GUI_WAIT):
        QtCore.QTimer.singleShot(0, begin)
    return relay.result(0)


def test_methods_and_properties_run_in_the_gui_thread_during_qt_waits(qtbot, served):
    meter = QtMeter()
    _, proxy = served(meter)
    # a non-blocking call while the GUI thread runs its loop: served in the GUI thread
    assert _run_while_waiting(qtbot, lambda: proxy.set_value.future("3.3 V")) == "3.3 V"
    assert meter.threads and all(is_gui(t) for t in meter.threads)
    # calls from another thread of this process, answered by the GUI thread's loop
    meter.threads.clear()
    value, _name = _run_while_waiting(qtbot, lambda: _start(lambda: (proxy.value, proxy.where())))
    assert value == "3.3 V"
    assert meter.threads and all(is_gui(t) for t in meter.threads)


def _start(fn):
    """Run ``fn`` in a plain thread; returns a Future of its result."""
    import concurrent.futures

    fut = concurrent.futures.Future()

    def run():
        try:
            fut.set_result(fn())
        except BaseException as exc:
            fut.set_exception(exc)

    threading.Thread(target=run, name="plain-client", daemon=True).start()
    return fut


def test_sync_call_from_the_objects_own_thread_does_not_deadlock(qtbot, served):
    meter = QtMeter()
    _, proxy = served(meter)
    # the proxy is used from the very thread the object lives in: it runs inline
    assert proxy.set_value("inline") == "inline"
    assert proxy.value == "inline"
    proxy.value = "set"
    assert meter._value == "set"
    assert len(meter.threads) >= 3 and all(is_gui(t) for t in meter.threads)


def test_object_in_a_qthread_with_a_loop_is_called_there(qtbot, served):
    thread = QtCore.QThread()
    thread.setObjectName("meter-thread")
    meter = QtMeter()
    meter.moveToThread(thread)
    thread.start()
    try:
        qtbot.waitUntil(lambda: thread.loopLevel() > 0, timeout=GUI_WAIT)
        _, proxy = served(meter)
        got = []
        proxy.value_changed.connect(lambda v: got.append((v, QtCore.QThread.currentThread())))
        # from the GUI thread (plain blocking call) and from a plain thread
        assert proxy.where() == "meter-thread"
        assert in_plain_thread(lambda: proxy.set_value("from plain")) == "from plain"
        assert meter.threads and all(t is thread or t == thread for t in meter.threads)
        # the emission happened in meter-thread; the slot connected here runs here
        qtbot.waitUntil(lambda: len(got) == 1, timeout=GUI_WAIT)
        assert got[0][0] == "from plain" and is_gui(got[0][1])
    finally:
        thread.quit()
        assert thread.wait(10_000)


def test_object_whose_thread_has_no_loop_is_called_on_the_worker(served):
    box = {}

    def make():  # a QObject living in a plain thread that never runs a Qt loop
        box["meter"] = QtMeter()

    t = threading.Thread(target=make)
    t.start()
    t.join(10)
    meter = box["meter"]
    _, proxy = served(meter)
    assert proxy.set_value("w") == "w"
    assert proxy.where().startswith("pizco-server ")
    assert meter._value == "w"


def test_worker_takes_over_when_the_objects_loop_stops(qtbot, served):
    """A call queued to a thread whose loop then stops is withdrawn and run by the worker."""
    thread = QtCore.QThread()
    meter = QtMeter()
    meter.moveToThread(thread)
    thread.start()
    qtbot.waitUntil(lambda: thread.loopLevel() > 0, timeout=GUI_WAIT)
    _, proxy = served(meter)
    assert proxy.emit_counts(1) == 1
    thread.quit()
    assert thread.wait(10_000)
    # the thread has ended: calls now run on the server's worker thread
    assert proxy.where().startswith("pizco-server ")


def test_stop_with_a_call_waiting_for_a_busy_thread(qtbot, served):
    """Stopping returns promptly while the object's thread is too busy to take a call,
    and the withdrawn call never runs afterwards."""
    import time

    from pizco_qt import ConnectionLost, RemoteTimeout

    meter = QtMeter()
    server, proxy = served(meter, proxy_timeout=1.0)
    gate = threading.Event()
    state = {}

    served_before = server.requests_served

    def busy():  # holds the GUI thread inside its event loop (loop level > 0)
        state["fut"] = _start(lambda: proxy.where())
        gate.wait(10)

    QtCore.QTimer.singleShot(0, busy)

    def stop_when_queued():
        wait_until(lambda: server.requests_served > served_before, timeout=10)
        t0 = time.monotonic()
        server.stop()
        state["stop_took"] = time.monotonic() - t0
        gate.set()

    stopper = threading.Thread(target=stop_when_queued)
    stopper.start()
    qtbot.waitUntil(lambda: not stopper.is_alive(), timeout=GUI_WAIT)
    assert state["stop_took"] < 2.5
    fut = state["fut"]
    qtbot.waitUntil(fut.done, timeout=GUI_WAIT)
    # the withdrawn call is answered with ConnectionLost (best effort while the
    # server closes its socket; else the client times out)
    assert isinstance(fut.exception(), (ConnectionLost, RemoteTimeout)), fut.result()
    assert meter.threads == []  # the withdrawn call was never run
