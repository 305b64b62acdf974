"""proxy._proxy_connection: lost() and regained() when the server process stops and
comes back on the same REP endpoint; subscriptions are restored without user action."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from qtpy import QtCore

from conftest import HERE, wait_until

SCRIPT = os.path.join(HERE, "qt_server_script.py")
GUI_WAIT = 15_000


def is_gui(qthread) -> bool:
    app_thread = QtCore.QCoreApplication.instance().thread()
    return qthread is app_thread or qthread == app_thread


class ServerProcess:
    """A Meter served by a child process; ``kill()`` ends it abruptly."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:0") -> None:
        self.proc = subprocess.Popen([sys.executable, SCRIPT, endpoint], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ))
        line = self._read_line(20)
        assert line.startswith("ready "), f"server did not start: {line!r} {self.proc.stderr.read()}"
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.rep, self.pub = fields["rep"], fields["pub"]

    def _read_line(self, timeout: float) -> str:
        box = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box:
            self.kill()
            raise AssertionError(f"no ready line from the server within {timeout} s")
        return box[0].strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def fast_heartbeat(monkeypatch):
    monkeypatch.setenv("PZC_HEARTBEAT", "0.2")  # read by this process and the children


@pytest.fixture
def processes():
    made = []
    yield lambda endpoint="tcp://127.0.0.1:0": made.append(ServerProcess(endpoint)) or made[-1]
    for p in made:
        p.kill()


def test_lost_and_regained_when_the_server_process_restarts(qtbot, closing, fast_heartbeat, processes):
    from pizco_qt import ConnectionLost, Proxy

    first = processes()
    proxy = closing(Proxy(first.rep, timeout=2))
    state = proxy._proxy_connection
    assert state.alive()
    events, values = [], []
    state.lost.connect(lambda: events.append(("lost", QtCore.QThread.currentThread())))
    state.regained.connect(lambda: events.append(("regained", QtCore.QThread.currentThread())))
    proxy.value_changed.connect(values.append)
    proxy.set_value("before")
    qtbot.waitUntil(lambda: values == ["before"], timeout=GUI_WAIT)

    with qtbot.waitSignal(state.lost, timeout=GUI_WAIT):
        first.kill()
    assert not state.alive()
    with pytest.raises(ConnectionLost):
        proxy.set_value("while down")

    second = processes(first.rep)  # same REP endpoint, a new random PUB port
    assert second.rep == first.rep
    with qtbot.waitSignal(state.regained, timeout=GUI_WAIT):
        pass
    assert state.alive()
    assert [name for name, _ in events] == ["lost", "regained"]
    assert all(is_gui(thread) for _, thread in events)

    # the subscription comes back by itself: emissions of the new server arrive
    # (the new server may see the re-sent subscription a moment after regained)
    n = iter(range(1000))

    def emitted_and_received():
        proxy.set_value(f"after {next(n)}")
        return any(v.startswith("after") for v in values)

    qtbot.waitUntil(emitted_and_received, timeout=GUI_WAIT)
    assert proxy.value.startswith("after")


def test_lost_in_a_plain_thread_proxy_reaches_a_lambda_on_the_dispatcher(closing, fast_heartbeat, processes):
    """No Qt loop in the creating thread: lost/regained are emitted on the dispatcher
    (a plain function connected with DirectConnection runs there)."""
    from pizco_qt import Proxy

    server = processes()
    box, events = {}, []

    def make():  # the proxy and its state object are created in a plain thread
        box["proxy"] = Proxy(server.rep, timeout=2)

    t = threading.Thread(target=make)
    t.start()
    t.join(20)
    proxy = closing(box["proxy"])
    state = proxy._proxy_connection
    state.lost.connect(lambda: events.append(("lost", threading.current_thread().name)),
                       QtCore.Qt.DirectConnection)
    server.kill()
    wait_until(lambda: events, timeout=15)
    assert events == [("lost", "pizco-dispatcher")]
    assert not state.alive()
