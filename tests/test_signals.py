"""pizco_qt.Signal and remote signals without any Qt event loop (plain scripts)."""
from __future__ import annotations

import threading

import pytest

from conftest import wait_until
from objects import Stage
from pizco_qt import Proxy, Signal


def plain(connect, slot):
    """Connect from a thread without a Qt event loop, as a plain script does.

    (Once an earlier Qt test has created a QApplication, slots connected from the
    main thread are queued to it, which these tests do not run.)
    """
    errors = []

    def run():
        try:
            connect(slot)
        except BaseException as exc:  # re-raised in the test
            errors.append(exc)

    t = threading.Thread(target=run, name="plain-script")
    t.start()
    t.join(10)
    if errors:
        raise errors[0]


class Holder:
    changed = Signal(int)


def test_signal_is_per_instance_and_ordered():
    a, b = Holder(), Holder()
    assert a.changed is not b.changed and a.changed is a.changed
    calls = []
    a.changed.connect(lambda v: calls.append(("first", v)))
    a.changed.connect(lambda v: calls.append(("second", v)))
    a.changed.emit(1)
    b.changed.emit(2)
    assert calls == [("first", 1), ("second", 1)]


def test_signal_connect_twice_and_disconnect():
    s = Signal()
    calls = []

    def slot(*args):
        calls.append(args)

    s.connect(slot)
    s.connect(slot)
    s.emit(1, 2)
    assert calls == [(1, 2)]
    s.disconnect(slot)
    with pytest.raises(TypeError):
        s.disconnect(slot)
    s.emit(3)
    assert calls == [(1, 2)]
    s.connect(slot)
    s.connect(lambda: None)
    s.disconnect()
    assert s.slots == []


def test_signal_trims_arguments_for_smaller_slots():
    s = Signal()
    got = []
    s.connect(lambda: got.append("none"))
    s.connect(lambda a: got.append(("one", a)))
    s.connect(lambda a, b=0, *rest: got.append(("all", a, b, rest)))
    s.emit(1, 2, 3)
    assert got == ["none", ("one", 1), ("all", 1, 2, (3,))]


def test_signal_chaining_to_another_signal():
    a, b = Signal(), Signal()
    got = []
    b.connect(lambda *args: got.append(args))
    a.connect(b)
    a.emit(5, 6)
    assert got == [(5, 6)]


def test_signal_thread_safety():
    s = Signal()
    count = []
    lock = threading.Lock()

    def slot(i):
        with lock:
            count.append(i)

    def worker():
        for _ in range(200):
            s.connect(slot)
            s.emit(1)
            try:
                s.disconnect(slot)
            except TypeError:
                pass

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(count) > 0


def test_remote_signal_in_plain_script_runs_on_dispatcher(served):
    stage = Stage()
    _, proxy = served(stage)
    got, threads = [], []
    done = threading.Event()

    def on_change(new, old):
        got.append((new, old))
        threads.append(threading.current_thread().name)
        done.set()

    plain(proxy.position_changed.connect, on_change)
    stage.position = 3.0  # connect() returned after the server confirmed: never lost
    assert done.wait(5)
    assert got == [(3.0, 0.0)]
    assert threads == ["pizco-dispatcher"]


def test_remote_signal_arguments_fewer_parameters_and_order(served):
    stage = Stage()
    _, proxy = served(stage)
    full, first, none_, many = [], [], [], []
    plain(proxy.position_changed.connect, lambda new, old: full.append((new, old)))
    plain(proxy.position_changed.connect, lambda new: first.append(new))
    plain(proxy.position_changed.connect, lambda: none_.append(1))
    plain(proxy.many.connect, many.append)
    stage.position = 1
    stage.position = 2
    stage.emit_many(500)
    wait_until(lambda: len(many) == 500 and len(none_) == 2)
    assert full == [(1.0, 0.0), (2.0, 1.0)]
    assert first == [1.0, 2.0]
    assert many == list(range(500))


def test_one_server_connection_per_signal_and_cleanup(served, closing):
    stage = Stage()
    server, proxy = served(stage)
    proxy2 = closing(Proxy(server.rep_endpoint, timeout=5))
    a, b, c = [], [], []
    plain(proxy.position_changed.connect, a.append)
    plain(proxy.position_changed.connect, b.append)
    plain(proxy2.position_changed.connect, c.append)
    assert server.subscriber_count("position_changed") == 2  # two proxies
    assert len(stage.position_changed.slots) == 1  # one server-side connection
    proxy.position_changed.disconnect(a.append)
    stage.position = 1
    wait_until(lambda: b and c)
    assert a == []
    proxy2.position_changed.disconnect()  # all of proxy2; proxy is unaffected
    stage.position = 2
    wait_until(lambda: len(b) == 2)
    assert c == [1.0]
    proxy.position_changed.disconnect(b.append)
    wait_until(lambda: server.subscriber_count("position_changed") == 0)
    wait_until(lambda: len(stage.position_changed.slots) == 0)
    with pytest.raises(TypeError):
        proxy.position_changed.disconnect(b.append)


def test_connect_twice_delivers_once(served):
    stage = Stage()
    _, proxy = served(stage)
    got = []

    def slot(new, old):
        got.append(new)

    plain(proxy.position_changed.connect, slot)
    plain(proxy.position_changed.connect, slot)
    stage.position = 5
    wait_until(lambda: got)
    stage.position = 6
    wait_until(lambda: len(got) >= 2)
    assert got == [5.0, 6.0]


def test_remote_emit(served):
    stage = Stage()
    _, proxy = served(stage)
    local = []
    stage.moved.connect(lambda *a: local.append(a))
    proxy.moved.emit(1, "two")
    assert local == [(1, "two")]


def test_served_signal_of_any_look_alike(served):
    class LookAlike:
        def __init__(self):
            self.slots = []

        def connect(self, slot):
            self.slots.append(slot)

        def disconnect(self, slot=None):
            self.slots.remove(slot)

        def emit(self, *args):
            for s in list(self.slots):
                s(*args)

    class Obj:
        def __init__(self):
            self.ticked = LookAlike()

    obj = Obj()
    _, proxy = served(obj)
    got = []
    plain(proxy.ticked.connect, lambda *a: got.append(a))
    obj.ticked.emit(1, 2, 3, 4)
    wait_until(lambda: got)
    assert got == [(1, 2, 3, 4)]
