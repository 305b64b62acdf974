"""Reliability: heartbeats, loss detection, reconnection after a restart, timeouts,
at-most-once execution, concurrency and clean shutdown, with real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import HERE, wait_until
from pizco_qt import ConnectionLost, Proxy, RemoteTimeout

SCRIPT = os.path.join(HERE, "stage_server.py")


class Child:
    """A server process (tests/stage_server.py), killed or closed at the end of the test."""

    def __init__(self, rep: str, pub: str = "tcp://127.0.0.1:0", log: str = "") -> None:
        self.proc = subprocess.Popen([sys.executable, "-u", SCRIPT, rep, pub, log], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("pizco-server ready"):
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.proc.communicate()[1]}")
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        self.rep, self.pub = fields["rep"], fields["pub"]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()


@pytest.fixture
def children():
    made = []

    def start(*args, **kwargs):
        child = Child(*args, **kwargs)
        made.append(child)
        return child

    yield start
    for child in made:
        child.close()


def executions(log) -> dict:
    counts: dict = {}
    if os.path.exists(log):
        with open(log) as f:
            for line in f.read().split():
                counts[line] = counts.get(line, 0) + 1
    return counts


def test_kill_detect_restart_reconnect(qtbot, monkeypatch, tmp_path, children, closing):
    monkeypatch.setenv("PZC_HEARTBEAT", "0.2")
    log = str(tmp_path / "exec.log")
    first = children("tcp://127.0.0.1:0", log=log)
    proxy = closing(Proxy(first.rep, timeout=2))
    state = proxy._proxy_connection
    got = []
    proxy.ticked.connect(got.append)
    assert proxy.record("before") == "before"
    proxy.tick(1)
    qtbot.waitUntil(lambda: got == [1], timeout=5000)
    assert state.alive()

    lost, regained = [], []
    state.lost.connect(lambda: lost.append(time.monotonic()))
    state.regained.connect(lambda: regained.append(time.monotonic()))
    killed = time.monotonic()
    first.kill()
    # sent into the dying connection, before the loss is known: they fail, and are never replayed
    racing = proxy.record.future("race-async")
    race = {}

    def race_sync():
        t0 = time.monotonic()
        try:
            race["value"] = proxy.record("race-sync")
        except Exception as exc:  # noqa: BLE001
            race["error"] = exc
        race["elapsed"] = time.monotonic() - t0

    racer = threading.Thread(target=race_sync)
    racer.start()
    qtbot.waitUntil(lambda: bool(lost), timeout=5000)
    detect = lost[0] - killed
    assert detect < 3 * 0.2 + 1.0, detect  # three missed heartbeats, plus scheduling slack
    print(f"\nkilled server detected lost after {detect:.2f} s (heartbeat 0.2 s)")
    assert not state.alive()
    racer.join(10)
    assert isinstance(race.get("error"), (RemoteTimeout, ConnectionLost)), race
    assert race["elapsed"] < 2 + 1.0
    with pytest.raises(ConnectionLost):
        racing.result(5)

    # while down: calls fail fast and are never sent
    t0 = time.monotonic()
    with pytest.raises(ConnectionLost):
        proxy.record("while-down")
    fut = proxy.record.future("while-down-async")
    with pytest.raises(ConnectionLost):
        fut.result(5)
    assert time.monotonic() - t0 < 0.5

    # restart on the same REP endpoint; the PUB endpoint is a new random port
    second = children(first.rep, log=log)
    assert second.pub != first.pub
    qtbot.waitUntil(lambda: bool(regained), timeout=10000)
    assert state.alive() and len(lost) == 1 and len(regained) == 1
    assert proxy.record("after") == "after"
    proxy.tick(2)  # the signal connection is restored without user action
    qtbot.waitUntil(lambda: got == [1, 2], timeout=5000)
    counts = executions(log)
    assert counts == {"before": 1, "after": 1}, counts


def test_restart_in_process_same_endpoints(qtbot, monkeypatch, closing):
    """Same REP and PUB endpoints: the SUB socket reconnects by itself; one lost, one regained."""
    from objects import Stage
    from pizco_qt import Server

    monkeypatch.setenv("PZC_HEARTBEAT", "0.2")
    stage = Stage()
    server = Server(stage)
    rep, pub = server.rep_endpoint, server.pub_endpoint
    try:
        proxy = closing(Proxy(rep, timeout=2))
        state = proxy._proxy_connection
        got, lost, regained = [], [], []
        state.lost.connect(lambda: lost.append(1))
        state.regained.connect(lambda: regained.append(1))
        proxy.position_changed.connect(lambda new, old: got.append(new))
        proxy.position = 1
        qtbot.waitUntil(lambda: got == [1.0], timeout=5000)
        server.stop()
        qtbot.waitUntil(lambda: bool(lost), timeout=5000)
        with pytest.raises(ConnectionLost):
            proxy.position = 2
        server = Server(stage, rep, pub)
        qtbot.waitUntil(lambda: bool(regained), timeout=10000)
        proxy.position = 3  # delivered at once: 'regained' means the subscription is back
        qtbot.waitUntil(lambda: got == [1.0, 3.0], timeout=5000)
        assert (len(lost), len(regained)) == (1, 1)
        assert stage.position == 3.0
    finally:
        server.stop()


def test_call_in_flight_when_server_dies_times_out(qtbot, monkeypatch, children, closing):
    """A synchronous call already sent when the server stops answering raises RemoteTimeout
    within its timeout; once the loss is known, calls raise ConnectionLost at once."""
    monkeypatch.setenv("PZC_HEARTBEAT", "0.2")
    child = children("tcp://127.0.0.1:0")
    proxy = closing(Proxy(child.rep, timeout=1.5))
    assert proxy.pid() == child.proc.pid
    os.kill(child.proc.pid, signal.SIGSTOP)  # frozen: connected, but never answers

    def stopped():
        with open(f"/proc/{child.proc.pid}/status") as f:
            return "\nState:\tT" in f.read()

    wait_until(stopped, timeout=10)  # the signal takes effect asynchronously
    t0 = time.monotonic()
    with pytest.raises(RemoteTimeout):
        proxy.pid()
    elapsed = time.monotonic() - t0
    assert 1.4 <= elapsed < 1.5 + 2.0, elapsed
    qtbot.waitUntil(lambda: not proxy._proxy_connection.alive(), timeout=5000)
    t0 = time.monotonic()
    with pytest.raises(ConnectionLost):
        proxy.pid()
    assert time.monotonic() - t0 < 1.0
    child.kill()


def test_eight_threads_share_one_proxy(served):
    """8 threads x 500 synchronous calls through one proxy: every result is the right one."""
    from objects import Stage

    server, proxy = served(Stage(), proxy_timeout=30)
    errors, done = [], []

    def worker(t):
        try:
            for i in range(500):
                assert proxy.echo(t, i) == ((t, i), {})
            done.append(t)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert sorted(done) == list(range(8))
    assert server.requests_served >= 8 * 500


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_hundred_proxies_leave_nothing_behind(served):
    """Proxies that are created, used and dropped (closed or garbage-collected) leave no fds,
    threads or sockets behind."""
    import gc

    from objects import Stage
    from pizco_qt import agent as agent_mod

    server, first = served(Stage())
    got = []
    first.moved.connect(lambda: got.append(1))
    gc.collect()
    base_fds, base_threads = _fds(), threading.active_count()
    base_agents = len(agent_mod._live_agents)
    for i in range(100):
        p = Proxy(server.rep_endpoint, timeout=5)
        assert p.echo(i) == ((i,), {})
        p.many.connect(lambda *a: None)
        if i % 2:
            p._proxy_stop_me()
        else:  # a connected slot keeps its proxy alive: disconnected, the proxy is unused
            p.many.disconnect()
        del p  # the other half is closed by garbage collection
    gc.collect()
    wait_until(lambda: len(agent_mod._live_agents) == base_agents, timeout=10)
    wait_until(lambda: _fds() <= base_fds, timeout=10)
    wait_until(lambda: threading.active_count() <= base_threads, timeout=10)
    assert server.subscribers.get("many", 0) == 0 or wait_until(lambda: "many" not in server.subscribers)
    assert first.echo("still") == (("still",), {})


EXIT_SCRIPT = r"""
import sys, time
sys.path.insert(0, {here!r})
from objects import Stage
from pizco_qt import Proxy, Server
server = Server(Stage())
proxy = Proxy(server.rep_endpoint, timeout=5)
proxy.moved.connect(lambda: None)
assert proxy.echo(1) == ((1,), {{}})
fut = proxy.slow.future(30)           # still running on the server at exit
assert fut.running() or not fut.done()
print("ready", flush=True)
{ending}
"""


@pytest.mark.parametrize("ending", ["pass", "del proxy", "server.stop()", "sys.exit(3)",
                                    "import os; proxy._proxy_stop_me(); server.stop(); print('stopped')"])
def test_interpreter_exit_never_hangs(ending):
    """A process that exits with a live server and proxy (and a call in progress) exits promptly."""
    code = EXIT_SCRIPT.format(here=HERE, ending=ending)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - t0
    assert proc.stdout.startswith("ready"), proc.stderr
    assert proc.returncode == (3 if "exit(3)" in ending else 0), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert elapsed < 10, elapsed


def test_a_stopped_server_freed_on_a_daemon_thread_frees_no_qt_object():
    """Stopped agents point at the I/O QThread; the package keeps that thread's Python object,
    so freeing a stopped server on some daemon thread (possibly while the interpreter exits,
    which aborts the process when a Qt object is freed there) never frees a Qt object."""
    import weakref

    from objects import Stage
    from pizco_qt import Server, iothread

    server = Server(Stage())
    qthread = weakref.ref(server.io)
    server.stop()
    assert iothread._io is None, "another agent keeps the I/O thread running: the check would prove nothing"
    holder = [server]
    del server
    dropper = threading.Thread(target=holder.clear, daemon=True)
    dropper.start()
    dropper.join(5)
    assert not holder
    assert qthread() is not None and qthread().isFinished()
    # the next I/O thread frees it, on the thread that starts the new one
    again = Server(Stage())
    try:
        assert again.io is not qthread()
        assert wait_until(lambda: qthread() is None, timeout=5)
    finally:
        again.stop()


def test_stop_waits_for_a_remote_stop_in_progress(closing):
    """A remote 'stop' runs in a thread of its own; a later local stop() returns only once it ended,
    so a program exiting right after holds no half-stopped server in a daemon thread."""
    from objects import Stage
    from pizco_qt import Server

    server = Server(Stage())
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    proxy._proxy_stop_server()
    assert wait_until(lambda: server._stopper is not None, timeout=5)
    server.stop()
    assert not server._stopper.is_alive()
    assert server._done.is_set()


def test_stop_with_a_call_stuck_in_user_code_is_bounded(closing, caplog):
    """server.stop() returns within its 2 s deadline while a served method is stuck; it warns,
    the caller gets RemoteTimeout, and _proxy_stop_me() during a call in progress is prompt."""
    from objects import Stage
    from pizco_qt import Server

    stage = Stage()
    server = Server(stage)
    proxy = Proxy(server.rep_endpoint, timeout=3)
    outcome = {}

    def stuck_call():
        try:
            outcome["value"] = proxy.blocked()
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    caller = threading.Thread(target=stuck_call)
    caller.start()
    wait_until(lambda: server.answerer.busy, timeout=5)
    channels = proxy._proxy_core.requester.channels()
    assert channels
    t0 = time.monotonic()
    server.stop()
    stopped_in = time.monotonic() - t0
    assert stopped_in < 2.5, stopped_in
    assert any("still inside user code" in r.getMessage() for r in caplog.records)
    t0 = time.monotonic()
    proxy._proxy_stop_me()  # while its other thread still waits for the stuck call
    assert time.monotonic() - t0 < 1.5
    caller.join(10)
    # the stuck caller's socket is closed once its call ended, not left to the garbage collector
    wait_until(lambda: all(ch.sock.closed for ch in channels), timeout=5)
    # the call already sent when the server stopped answering: RemoteTimeout within its timeout
    assert isinstance(outcome.get("error"), RemoteTimeout) and "value" not in outcome, outcome
    stage.release.set()  # let the daemon worker finish; its late reply goes nowhere
    wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("pizco-server ")], timeout=10)
