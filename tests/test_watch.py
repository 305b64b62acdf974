"""watch(): polling attributes without a change signal, batched per server, paused while offline."""
from __future__ import annotations

import threading

import pytest

from pizco_qt import Proxy, Server


class Sensor:
    """Attributes without signals; counts the reads of each one."""

    def __init__(self) -> None:
        self._temperature = 20.0
        self._pressure = 1.0
        self.reads = {"temperature": 0, "pressure": 0}
        self.lock = threading.Lock()

    @property
    def temperature(self) -> float:
        with self.lock:
            self.reads["temperature"] += 1
        return self._temperature

    @property
    def pressure(self) -> float:
        with self.lock:
            self.reads["pressure"] += 1
        return self._pressure

    @property
    def broken(self) -> float:
        raise RuntimeError("sensor unplugged")


def test_watch_emits_first_value_then_only_changes(qtbot, served):
    sensor = Sensor()
    server, proxy = served(sensor)
    w = pizco_watch(proxy, "temperature", 0.05)
    seen = []
    w.changed.connect(seen.append)
    qtbot.waitUntil(lambda: seen == [20.0], timeout=5000)
    # several polls of an unchanged value emit nothing more
    start = sensor.reads["temperature"]
    qtbot.waitUntil(lambda: sensor.reads["temperature"] >= start + 3, timeout=5000)
    assert seen == [20.0]
    with qtbot.waitSignal(w.changed, timeout=5000) as blocker:
        sensor._temperature = 21.5
    assert blocker.args == [21.5]
    assert w.value() == 21.5
    start = sensor.reads["temperature"]
    qtbot.waitUntil(lambda: sensor.reads["temperature"] >= start + 3, timeout=5000)
    assert seen == [20.0, 21.5]
    w.stop()
    assert not w.active()


def test_watches_of_one_server_share_one_request(qtbot, served):
    sensor = Sensor()
    server, proxy = served(sensor)
    watches = [pizco_watch(proxy, name, 0.1) for name in ["temperature", "pressure"] * 50]
    got = []
    for w in watches:
        w.changed.connect(lambda v, w=w: got.append(w))
    qtbot.waitUntil(lambda: len(got) == 100, timeout=10000)
    before = server.requests_served
    reads = dict(sensor.reads)
    qtbot.waitUntil(lambda: sensor.reads["temperature"] >= reads["temperature"] + 5, timeout=10000)
    polls = sensor.reads["temperature"] - reads["temperature"]
    # 100 watches read each attribute once per poll, in one request per poll (not 100)
    assert sensor.reads["pressure"] - reads["pressure"] in (polls - 1, polls, polls + 1)
    assert server.requests_served - before <= polls + 2
    for w in watches:
        w.stop()


def test_watch_reports_a_failing_attribute_once(qtbot, served):
    server, proxy = served(Sensor())
    w = pizco_watch(proxy, "broken", 0.05)
    errors = []
    w.failed.connect(errors.append)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=5000)
    assert isinstance(errors[0], RuntimeError) and "unplugged" in str(errors[0])
    start = server.requests_served
    qtbot.waitUntil(lambda: server.requests_served >= start + 3, timeout=5000)
    assert len(errors) == 1  # the same failure is not repeated at every poll
    w.stop()


def test_watch_stops_with_its_parent(qtbot, served):
    from qtpy import QtCore

    sensor = Sensor()
    server, proxy = served(sensor)
    parent = QtCore.QObject()
    w = pizco_watch(proxy, "temperature", 0.05, parent=parent)
    qtbot.waitUntil(lambda: w.value() == 20.0, timeout=5000)
    entry, poller = w._entry, w._poller
    with qtbot.waitSignal(parent.destroyed, timeout=5000):
        parent.deleteLater()
    assert entry.dead
    qtbot.waitUntil(lambda: entry.id not in poller.entries, timeout=5000)


def test_watch_pauses_while_the_server_is_down_and_resumes(qtbot, monkeypatch, closing):
    monkeypatch.setenv("PZC_HEARTBEAT", "0.1")
    sensor = Sensor()
    server = Server(sensor)
    endpoint = server.rep_endpoint
    proxy = closing(Proxy(endpoint, timeout=2))
    w = pizco_watch(proxy, "temperature", 0.05)
    seen = []
    w.changed.connect(seen.append)
    qtbot.waitUntil(lambda: seen == [20.0], timeout=5000)
    conn = proxy._proxy_connection
    poller = w._poller
    with qtbot.waitSignal(conn.lost, timeout=10000):
        server.stop()
    qtbot.waitUntil(lambda: poller.inflight is None, timeout=5000)
    sent, skipped = poller.sent, poller.skipped
    qtbot.waitUntil(lambda: poller.skipped >= skipped + 3, timeout=5000)  # still ticking...
    assert poller.sent == sent  # ...but sending nothing while the server is down
    sensor2 = Sensor()
    sensor2._temperature = 30.0
    with qtbot.waitSignal(conn.regained, timeout=10000):
        closing(Server(sensor2, rep_endpoint=endpoint))
    qtbot.waitUntil(lambda: seen == [20.0, 30.0], timeout=10000)
    assert poller.sent > sent and sensor2.reads["temperature"] >= 1
    w.stop()


def test_watch_rejects_bad_arguments(served):
    server, proxy = served(Sensor())
    with pytest.raises(TypeError):
        pizco_watch(object(), "temperature")
    with pytest.raises(ValueError):
        pizco_watch(proxy, "temperature", 0)
    with pytest.raises(TypeError):
        pizco_watch(proxy, "temperature", "fast")
    with pytest.raises(TypeError):
        pizco_watch(proxy, "")


def pizco_watch(*args, **kwargs):
    from pizco_qt import watch

    return watch(*args, **kwargs)


def test_watch_and_bind_without_the_getmany_capability(qtbot, served):
    """Against a server that does not advertise 'getmany' (an original Pizco), one 'get' per name."""
    from qtpy import QtWidgets

    from pizco_qt import bind

    sensor = Sensor()
    server, proxy = served(sensor)
    core = proxy._proxy_core
    core.caps = frozenset(core.caps - {"getmany"})
    w = pizco_watch(proxy, "temperature", 0.05)
    seen = []
    w.changed.connect(seen.append)
    label = QtWidgets.QLabel()
    qtbot.addWidget(label)
    binding = bind(label, proxy, "pressure")
    qtbot.waitUntil(lambda: seen == [20.0] and label.text() == "1.0", timeout=5000)
    sensor._temperature = 25.0
    qtbot.waitUntil(lambda: seen == [20.0, 25.0], timeout=5000)
    errors = []
    broken = pizco_watch(proxy, "broken", 0.05)
    broken.failed.connect(errors.append)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=5000)
    assert isinstance(errors[0], RuntimeError)
    w.stop()
    broken.stop()
    binding.unbind()
