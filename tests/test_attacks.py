"""Attacks on a server, tried the way a hostile peer would: raw ZMQ sockets speaking the wire
protocol. Every refused request must leave the served object unchanged, run nothing, and the
server must keep serving."""
from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import threading

import pytest
import zmq

from childproc import spawn, server_argv  # noqa: F401  (a fixture)
from conftest import HERE, wait_until
from pizco_qt import Protocol, Proxy, Server, Signal
from pizco_qt.errors import AccessDenied, RemoteError
from pizco_qt.protocol import unpack_compact

CTX = zmq.Context.instance()


class Safe:
    """A served instrument with private state an attacker wants."""

    changed = Signal(int)
    _hidden = Signal(int)

    def __init__(self) -> None:
        self._password = "hunter2"
        self.value = 1
        self.calls = []
        self.settings = {"gain": 2}

    def bump(self) -> int:
        self.calls.append("bump")
        self.value += 1
        self.changed.emit(self.value)
        return self.value

    def _secret(self) -> str:
        self.calls.append("_secret")
        return "secret"

    def echo(self, *args, **kwargs):
        return args, kwargs

    def fire_hidden(self) -> None:
        self._hidden.emit(7)

    @property
    def slow(self) -> int:
        self.calls.append("slow getter")
        return 0


class Raw:
    """A raw DEALER speaking the wire protocol to a server."""

    def __init__(self, endpoint: str, ser: str = "pickle", key: str = "") -> None:
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.protocol = Protocol(hmac_key=key, serializer=ser)
        self.n = 0

    def frames(self, content, msgid=None):
        self.n += 1
        return self.protocol.encode("urn:attacker", "", content, msgid or f"atk-{self.n}")

    def send_frames(self, frames, timeout=5000):
        self.sock.send_multipart([b""] + list(frames))
        assert self.sock.poll(timeout), "no reply"
        reply = self.sock.recv_multipart()[1:]
        return self.protocol.decode(reply).content

    def ask(self, action, options, msgid=None):
        return self.send_frames(self.frames(("PSMessage", action, options), msgid))

    def close(self):
        self.sock.close(0)


def raw_sockets(default_ser):
    """Body of a ``raw`` fixture: ``make(endpoint, ser=default_ser, key='') -> Raw``, all closed afterwards."""
    made = []

    def make(endpoint, ser=default_ser, key=""):
        r = Raw(endpoint, ser, key)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def raw():
    yield from raw_sockets("pickle")


def refused(reply, reason="private"):
    """Whether ``reply`` is a 'raise' reply carrying a refusal PermissionError with ``reason``."""
    kind, action, value = reply
    assert action == "raise", reply
    exc = value[0]
    if isinstance(exc, dict):  # json
        assert exc["__exception__"] == "PermissionError" and exc.get("reason") == reason, exc
    else:
        assert type(exc) is PermissionError and getattr(exc, "pizco_reason", None) == reason, exc
    return True


def still_serving(server, **kw):
    with Proxy(server.rep_endpoint, timeout=5, **kw) as proxy:
        assert list(proxy.echo(1)[0]) == [1]


# ---------------------------------------------------------------------- private names
PRIVATE_REQUESTS = [
    ("getattr", {"name": "_password"}),
    ("get", {"name": "_password"}),
    ("get", {"name": "__dict__"}),
    ("get", {"name": "__class__"}),
    ("setattr", {"name": "_password", "value": "pwned"}),
    ("setattr", {"name": "__dict__", "value": {}}),
    ("get", {"name": "settings._x"}),
    ("getattr", {"name": "bump.__globals__"}),
    ("exec", {"name": "_secret", "method": "__call__", "args": (), "kwargs": {}}),
    ("exec", {"name": "bump", "method": "__globals__"}),
    ("exec", {"name": "settings", "method": "__class__"}),
    ("exec", {"name": "settings", "method": "__init__", "args": ()}),
    ("exec", {"name": "settings", "method": "_private"}),
]


@pytest.mark.parametrize("ser", ["pickle", "json"])
def test_private_names_are_refused_and_nothing_runs(closing, raw, ser):
    safe = Safe()
    server = closing(Server(safe, protocol=Protocol(serializer=ser)))
    r = raw(server.rep_endpoint, ser)
    for action, options in PRIVATE_REQUESTS:
        assert refused(r.ask(action, options)), (action, options)
    assert safe._password == "hunter2" and safe.calls == [] and safe.settings == {"gain": 2}
    assert "_password" in safe.__dict__
    # getmany refuses the private names one by one
    values = r.ask("getmany", {"names": ["value", "_password", "__dict__"]})[2]
    assert values["value"][0] == "return" and values["value"][1] == 1
    for name in ("_password", "__dict__"):
        assert values[name][0] == "raise"
        exc = values[name][1][0]
        assert (exc["reason"] if isinstance(exc, dict) else exc.pizco_reason) == "private"
    # public names and the listed dunders still work
    assert r.ask("exec", {"name": "settings", "method": "__getitem__", "args": ["gain"]})[2] == 2
    assert r.ask("exec", {"name": "settings", "method": "__contains__", "args": ["gain"]})[2] is True
    assert r.ask("exec", {"name": "settings", "method": "__len__"})[2] == 1
    assert r.ask("exec", {"name": "settings", "method": "keys"})[1] in ("return", "raise")  # public
    still_serving(server, protocol=Protocol(serializer=ser))


def test_a_proxy_gets_access_denied_for_private_names(served):
    safe = Safe()
    server, proxy = served(safe)
    with pytest.raises(AccessDenied) as info:
        proxy._password
    assert isinstance(info.value, PermissionError) and info.value.reason == "private"
    with pytest.raises(AccessDenied):
        proxy._secret()
    with pytest.raises(AccessDenied):
        proxy._proxy_core.call("exec", {"name": "settings", "method": "__class__"})
    assert "_secret" not in dir(proxy)
    assert safe.calls == [] and proxy.bump() == 2


def test_private_true_serves_private_names(served):
    safe = Safe()
    server, proxy = served(safe, private=True)
    assert proxy._password == "hunter2"
    assert proxy._secret() == "secret"
    proxy._password = "changed"
    assert safe._password == "changed"


def sub_socket(server, topic):
    sub = CTX.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(server.pub_endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, f"PZC00+{server.sender}+{topic}".encode())
    return sub


@pytest.mark.parametrize("private", [False, True])
def test_private_signal_subscription(closing, private):
    """A raw SUB subscribing to a private signal is ignored (no counter, no forwarder) unless private=True."""
    safe = Safe()
    server = closing(Server(safe, private=private))
    hidden = sub_socket(server, "_hidden")
    public = sub_socket(server, "changed")  # subscribed after: once it counts, the hidden one was seen
    try:
        wait_until(lambda: server.subscriber_count("changed") == 1)
        assert ("_hidden" in server._forwarders) is private
        assert (server.subscriber_count("_hidden") == 1) is private
        assert ("_hidden" in server.publisher.counts()) is private
        with Proxy(server.rep_endpoint, timeout=5) as proxy:
            proxy.bump()
            proxy.fire_hidden()
        assert public.poll(5000)
        if private:
            assert hidden.poll(5000)
    finally:
        hidden.close(0)
        public.close(0)


def test_reserved_topics_keep_working(served, qtbot, monkeypatch):
    """__heartbeat__ and __future__ are pizco_qt's, not names of the served object: they keep working."""
    import concurrent.futures

    class Slow(Safe):
        def later(self):
            fut = concurrent.futures.Future()
            threading.Timer(0.05, lambda: fut.set_result(42)).start()
            return fut

    monkeypatch.setenv("PZC_HEARTBEAT", "0.1")
    server, proxy = served(Slow())
    assert proxy.later().result(5) == 42
    wait_until(lambda: server.subscriber_count("__heartbeat__") >= 1)
    core = proxy._proxy_core
    start = core.liveness.last_seen
    wait_until(lambda: core.liveness.last_seen > start)  # heartbeats arrive
    assert proxy._proxy_connection.alive()


# ---------------------------------------------------------------------- instantiate
def test_instantiate_refuses_functions_and_callables(closing, raw, tmp_path):
    marker = tmp_path / "pwned"
    server = closing(Server(None))
    r = raw(server.rep_endpoint)
    for spec in ("os.system", "os:system", "subprocess:check_call", "builtins.eval", "functools:partial.__call__"):
        reply = r.ask("instantiate", {"class": spec, "args": (f"touch {marker}",), "kwargs": {}})
        assert refused(reply, "instantiate") if spec != "functools:partial.__call__" else reply[1] == "raise"
    reply = r.ask("instantiate", {"class": os.system, "args": (f"touch {marker}",)})  # a pickled function
    assert refused(reply, "instantiate")
    assert not marker.exists()
    assert server.served_object is None
    # a class is still created (pickle servers admit any class by default)
    assert r.ask("instantiate", {"class": "objects.Stage", "args": (3.0,)})[1] == "return"
    assert type(server.served_object).__name__ == "Stage" and server.served_object.position == 3.0


def test_instantiate_on_a_json_server_admits_no_class_by_default(closing, raw):
    server = closing(Server(None, protocol=Protocol(serializer="json")))
    r = raw(server.rep_endpoint, "json")
    assert refused(r.ask("instantiate", {"class": "objects.Stage", "args": [1.0]}), "instantiate")
    assert "objects" not in sys.modules or server.served_object is None
    assert server.served_object is None


@pytest.mark.parametrize("ser", ["pickle", "json"])
def test_instantiable_admits_exactly_the_listed_classes(closing, raw, ser):
    from objects import Stage

    server = closing(Server(None, protocol=Protocol(serializer=ser), instantiable=["objects:Stage", "probes:Counter"]))
    r = raw(server.rep_endpoint, ser)
    for spec in ("objects.Other", "collections:OrderedDict", "os.system", "objectsXStage", ""):
        assert refused(r.ask("instantiate", {"class": spec, "args": []}), "instantiate"), spec
    assert server.served_object is None
    assert r.ask("instantiate", {"class": "objects.Stage", "args": [2.0]})[1] == "return"
    assert isinstance(server.served_object, Stage) and server.served_object.position == 2.0
    with pytest.raises(TypeError):
        Server(None, instantiable=[os.system])


def test_instantiable_class_objects(closing):
    from objects import Stage

    server = closing(Server(None, instantiable=[Stage]))
    with Proxy(server.rep_endpoint, timeout=5) as proxy:
        with pytest.raises(AccessDenied):
            proxy._proxy_agent.instantiate("probes.Counter")
        proxy._proxy_agent.instantiate(Stage, (4.0,))
        assert proxy.position == 4.0


def test_cli_instantiable(spawn):
    child = spawn(server_argv("tcp://127.0.0.1:0", "-p", HERE, "--instantiable", "probes:Counter",
                              "--instantiable", "objects:Stage"))
    rep, _ = child.ready()
    proxy = Proxy(rep, timeout=10)
    try:
        with pytest.raises(AccessDenied):
            proxy._proxy_agent.instantiate("probes.Crashy")
        proxy._proxy_agent.instantiate("probes.Counter", (7,), {"step": 3})
        assert proxy.bump() == 10
    finally:
        proxy._proxy_stop_me()
    child.signal(signal.SIGTERM)
    assert child.wait(5) == 0, child.describe()


# ---------------------------------------------------------------------- BaseException in served code
class Exiting:
    def __init__(self):
        self.n = 0

    def exit(self):
        raise SystemExit(3)

    def interrupt(self):
        raise KeyboardInterrupt("from served code")

    def generator_exit(self):
        raise GeneratorExit()

    @property
    def exiting_property(self):
        raise SystemExit("property")

    def echo(self, *args, **kwargs):
        return args, kwargs

    def count(self):
        self.n += 1
        return self.n


@pytest.mark.parametrize("ser", ["pickle", "json"])
def test_base_exceptions_in_served_code_are_answered_and_the_server_keeps_serving(served, raw, ser):
    server, proxy = served(Exiting(), protocol=Protocol(serializer=ser))
    for name, kind in (("exit", "SystemExit"), ("interrupt", "KeyboardInterrupt"),
                       ("generator_exit", "GeneratorExit")):
        with pytest.raises(RemoteError) as info:
            getattr(proxy, name)()
        assert info.value.type_name == kind
    with pytest.raises(RemoteError, match="SystemExit"):
        proxy.exiting_property
    outcome = proxy._proxy_get_many(["exiting_property"])["exiting_property"]
    assert outcome[0] == "raise"
    reply = raw(server.rep_endpoint, ser).ask("exec", {"name": "exit"})
    assert reply[1] == "raise"
    assert server.answerer.alive()
    assert [proxy.count() for _ in range(3)] == [1, 2, 3]


def test_a_served_qobject_slot_raising_system_exit(closing):
    from qtpy import QtCore

    class Device(QtCore.QObject):
        @QtCore.Slot()
        def quit_now(self):
            raise SystemExit(1)

        def ok(self):
            return "ok"

    server = closing(Server(Device()))
    with Proxy(server.rep_endpoint, timeout=5) as proxy:
        with pytest.raises(RemoteError, match="SystemExit"):
            proxy.quit_now()
        assert proxy.ok() == "ok"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_heartbeats_stop_when_the_worker_thread_dies(closing, monkeypatch, qtbot):
    monkeypatch.setenv("PZC_HEARTBEAT", "0.1")
    server = closing(Server(Exiting()))
    proxy = closing(Proxy(server.rep_endpoint, timeout=1))
    wait_until(lambda: proxy._proxy_core.tracking)

    def die(router, frames):
        raise SystemExit("the worker ends")  # outside served code: nothing catches it

    monkeypatch.setattr(server.answerer, "_handle", die)
    raw = Raw(server.rep_endpoint)
    try:
        raw.sock.send_multipart([b""] + raw.frames(("PSMessage", "exec", {"name": "count"})))
        wait_until(lambda: not server.answerer.alive(), timeout=5)
    finally:
        raw.close()
    with qtbot.waitSignal(proxy._proxy_connection.lost, timeout=3000):
        pass
    assert not proxy._proxy_connection.alive()


# ---------------------------------------------------------------------- the PUB port
def test_subscriptions_that_are_not_signals_run_nothing_and_leave_no_counters(closing):
    safe = Safe()
    server = closing(Server(safe))
    junk = [f"junk{i}" for i in range(300)] + ["slow", "value", "bump", "settings", "x" * 300, "__dict__",
                                                "__junk__", "_password"]
    sub = CTX.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(server.pub_endpoint)
    try:
        for topic in junk + ["changed"]:  # a real signal last: once it counts, the rest was seen
            sub.setsockopt(zmq.SUBSCRIBE, f"PZC00+{server.sender}+{topic}".encode())
        wait_until(lambda: server.subscriber_count("changed") == 1)
        assert safe.calls == []  # no getter ran (the 'slow' property appends to calls)
        assert set(server.publisher.counts()) <= {"changed", "__heartbeat__", "__future__"}
        assert set(server._forwarders) == {"changed"}
        for topic in junk:
            assert server.subscriber_count(topic) == 0
    finally:
        sub.close(0)
    # the subscriber left: its counters are deleted, not kept at zero
    wait_until(lambda: "changed" not in server.publisher.counts() and "changed" not in server.publisher.handled_counts())
    assert not server._forwarders
    with Proxy(server.rep_endpoint, timeout=5) as proxy:
        assert proxy.bump() == 2


def test_server_queue_lengths_are_bounded_and_configurable(closing, monkeypatch):
    from pizco_qt import config

    assert config.send_hwm() == 100_000 and config.receive_hwm() == 1_000
    server = closing(Server(Safe()))
    assert server.io.call(lambda: server.publisher._sock.getsockopt(zmq.SNDHWM)) == 100_000
    monkeypatch.setenv("PZC_SNDHWM", "50")
    monkeypatch.setenv("PZC_RCVHWM", "20")
    small = closing(Server(Safe()))
    assert small.io.call(lambda: small.publisher._sock.getsockopt(zmq.SNDHWM)) == 50
    assert config.receive_hwm() == 20
    monkeypatch.setenv("PZC_SNDHWM", "lots")
    with pytest.raises(ValueError, match="PZC_SNDHWM"):
        config.send_hwm()


# ---------------------------------------------------------------------- replays and buffer boundaries
KEY = "lab-key"


def test_a_captured_signed_request_is_answered_at_most_once(closing, raw):
    safe = Safe()
    server = closing(Server(safe, protocol=Protocol(hmac_key=KEY)))
    r = raw(server.rep_endpoint, key=KEY)
    captured = r.frames(("PSMessage", "exec", {"name": "bump"}), "captured-1")
    assert r.send_frames(captured) == ("PSMessage", "return", 2)
    for _ in range(3):
        assert refused(r.send_frames(captured), "replay")
    # the same signed bytes with the frame boundary moved: a new message id, the same signature
    shifted = list(captured)
    shifted[2] = captured[2] + captured[3][:1]
    shifted[3] = captured[3][1:]
    Protocol(hmac_key=KEY).check(shifted)  # still correctly signed
    assert refused(r.send_frames(shifted), "replay")
    assert safe.value == 2 and safe.calls == ["bump"]
    # the compact single-frame form too
    compact = Protocol(hmac_key=KEY).encode_compact("urn:attacker", "", ("PSMessage", "exec", {"name": "bump"}),
                                                    "compact-1")
    for expected in ("return", "replay"):
        r.sock.send(compact)
        assert r.sock.poll(5000)
        reply = Protocol(hmac_key=KEY).decode(unpack_compact(r.sock.recv()))
        if expected == "return":
            assert reply.content == ("PSMessage", "return", 3)
        else:
            assert refused(reply.content, "replay")
    assert safe.value == 3
    with Proxy(server.rep_endpoint, timeout=5, protocol=Protocol(hmac_key=KEY)) as proxy:
        assert [proxy.bump() for _ in range(3)] == [4, 5, 6]  # fresh ids are served


def test_the_replay_cache_is_bounded_and_forgets_after_ten_minutes():
    from pizco_qt import security

    now = [1000.0]
    cache = security.ReplayCache(size=3, clock=lambda: now[0])
    assert cache.window == 600.0
    assert not cache.check_and_add(b"s1", "m1")
    assert cache.check_and_add(b"s1", "m-other") and cache.check_and_add(b"s-other", "m1")
    for i in range(2, 10):
        assert not cache.check_and_add(f"s{i}".encode(), f"m{i}")
    assert len(cache) == 3  # bounded: the oldest were forgotten
    now[0] += 599
    assert cache.check_and_add(b"s9", "m9")
    now[0] += 2
    assert not cache.check_and_add(b"s9", "m9") and len(cache) == 1


def test_resplit_out_of_band_buffers_break_the_signature(closing, raw):
    class Sink:
        def __init__(self):
            self.got = []

        def take(self, data):
            self.got.append(len(data))
            return len(data)

    sink = Sink()
    server = closing(Server(sink, protocol=Protocol(hmac_key=KEY)))
    r = raw(server.rep_endpoint, key=KEY)
    r.protocol = Protocol(hmac_key=KEY, serializer="pickle5oob")
    data = bytes(200_000)
    frames = r.frames(("PSMessage", "exec", {"name": "take", "args": (data,)}), "oob-1")
    assert len(frames) == 6 and len(frames[5]) == 200_000
    resplit = frames[:5] + [frames[5][:10], frames[5][10:]]  # the same bytes, arriving as 10 bytes
    r.sock.send_multipart([b""] + resplit)
    assert r.sock.poll(5000)
    reply = Protocol(hmac_key=KEY).decode(r.sock.recv_multipart()[1:]).content
    assert reply[1] == "raise" and str(reply[2][0]) == "bad signature: check PZC_KEY"
    assert sink.got == []
    assert r.send_frames(frames)[2] == 200_000 and sink.got == [200_000]
    # a five-frame message is signed exactly as Pizco signs it: HMAC-SHA1 of frames 0-3
    import hashlib
    import hmac

    five = Protocol(hmac_key=KEY).encode("urn:x", "", ("PSMessage", "inspect", {}), "five-1")
    assert five[4] == hmac.new(KEY.encode(), b"".join(five[:4]), hashlib.sha1).digest()


# ---------------------------------------------------------------------- fork
@pytest.mark.parametrize("mode", ["fork", "mp"])
def test_objects_inherited_across_fork_refuse_at_once_and_new_ones_work(mode):
    import subprocess

    proc = subprocess.run([sys.executable, os.path.join(HERE, "fork_child.py"), mode], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for attempt in result["inherited"]:
        assert attempt["error"] == "ProxyClosed", attempt
        assert attempt["seconds"] < 0.5, attempt  # at once, never a hang or a timeout
        assert f"created by process {result['parent']}" in attempt["text"], attempt
    assert result["new_proxy_to_parent"] == 1.0
    assert result["new_server_in_child"] == 8.0
    assert result["status"] == 0 and result["exit_seconds"] < 2.0, result
    assert result["parent_still_works"] == 2.0


# ---------------------------------------------------------------------- serve_in_process and the working directory
def test_serve_in_process_never_imports_from_the_callers_working_directory(tmp_path, monkeypatch):
    from objects import Stage

    marker = tmp_path / "planted-module-ran"
    for planted in ("zmq", "qtpy", "pizco_qt", "objects", "runpy", "argparse"):
        (tmp_path / f"{planted}.py").write_text(
            f"open({str(marker)!r}, 'a').write({planted!r} + '\\n')\nraise SystemExit('planted {planted}')\n")
    monkeypatch.chdir(tmp_path)
    proxy = Server.serve_in_process(Stage, (2.0,), timeout=30)
    try:
        assert proxy.position == 2.0
        assert proxy.move_by(1) == 3.0
    finally:
        proxy._proxy_stop_server()
    assert not marker.exists(), marker.read_text()


# ---------------------------------------------------------------------- hostile servers and message size
def test_client_sockets_enforce_the_maximum_message_size(closing, monkeypatch):
    from pizco_qt import Agent
    from pizco_qt.errors import RemoteTimeout

    monkeypatch.setenv("PZC_MAX_MESSAGE", "65536")
    router = CTX.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    stop = threading.Event()
    answered = []

    def hostile():  # answers every request with 4 MB, then with a small valid reply
        while not stop.is_set():
            if not router.poll(50):
                continue
            frames = router.recv_multipart()
            route, body = frames[:2], frames[2:]
            payload = b"x" * (4 << 20) if not answered else pickle.dumps("small")
            router.send_multipart(route + [f"PZC00+{endpoint}+".encode(), b"pickle", payload, body[3], b""])
            answered.append(len(payload))

    t = threading.Thread(target=hostile)
    t.start()
    try:
        agent = closing(Agent(_bind=False))
        with pytest.raises(RemoteTimeout):
            agent.request(endpoint, "info", timeout=1)  # the 4 MB reply is dropped by ZMQ, never buffered
        assert answered and answered[0] == 4 << 20
        channel = agent.requester._channel(endpoint)
        assert channel.sock.getsockopt(zmq.MAXMSGSIZE) == 65536
        fut = agent.request_async(endpoint, "info")
        assert fut.result(5) == "small"  # the connection is made again; small replies still arrive
        requester, subscriber = agent.requester, agent.subscriber
        assert agent.io.call(lambda: requester._async_socks[endpoint].getsockopt(zmq.MAXMSGSIZE)) == 65536
        assert agent.io.call(lambda: subscriber._ensure_sock().getsockopt(zmq.MAXMSGSIZE)) == 65536
    finally:
        stop.set()
        t.join(5)
        router.close(0)


# ---------------------------------------------------------------------- file descriptors
def test_out_of_file_descriptors_is_a_clear_error_within_a_second():
    import subprocess

    proc = subprocess.run([sys.executable, os.path.join(HERE, "fd_child.py"), "128"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stderr  # never a libzmq abort
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    whats = [e["what"] for e in result["errors"]]
    assert whats == ["server", "proxy", "proxy when nearly out", "server when nearly out", "call"], result
    for error in result["errors"]:
        assert error["type"] == "TooManyOpenFiles" and error["pizco"] and error["oserror"], error
        assert "too many open files" in error["text"] and "limit of 128" in error["text"], error
        assert error["seconds"] < 1.0, error
    assert result["call_from_new_thread"] is None
    assert result["existing_call"] == 1.0  # connections already made keep working


def _soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return line.split()[3:5]
    raise AssertionError("no 'Max open files' line")


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="reads /proc/<pid>/limits")
@pytest.mark.parametrize("module, ready", [("pizco_qt", "pizco-server ready"),
                                           ("pizco_qt.registry", "pizco-registry ready")])
def test_console_scripts_raise_the_soft_descriptor_limit_to_the_hard_one(spawn, module, ready):
    import resource
    import shlex

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit is too low to lower the soft one below it")
    command = f"ulimit -Sn 256 && exec {shlex.quote(sys.executable)} -m {module} tcp://127.0.0.1:0"
    child = spawn(["sh", "-c", command])
    line = child.line()
    assert line.startswith(ready), child.describe()
    soft_now, hard_now = _soft_nofile(child.pid)
    assert soft_now == hard_now and soft_now != "256", (soft_now, hard_now)
    child.signal(signal.SIGTERM)
    assert child.wait(5) == 0, child.describe()
