"""Hostile and broken input at every socket a server binds (ROUTER and XPUB), with real sockets,
plus property-based tests of the message parser and the request dispatcher."""
from __future__ import annotations

import os
import pickle
import random
import socket
import subprocess
import sys
import threading
import time

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zmq.utils.monitor import recv_monitor_message

from conftest import HERE, wait_until
from objects import Stage
from pizco_qt import Protocol, Proxy, Server
from pizco_qt.dispatch import dispatch
from pizco_qt.errors import ProtocolError

CTX = zmq.Context.instance()


@pytest.fixture
def raw():
    """Factory for raw pyzmq sockets, closed after the test."""
    socks = []

    def make(kind, endpoint, **opts):
        s = CTX.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        for name, value in opts.items():
            s.setsockopt(getattr(zmq, name), value)
        s.connect(endpoint)
        socks.append(s)
        return s

    yield make
    for s in socks:
        s.close(0)


def reply_of(sock, frames, timeout=5000):
    sock.send_multipart([b""] + list(frames))
    assert sock.poll(timeout), f"no reply to {frames!r}"
    got = sock.recv_multipart()
    assert got[0] == b""
    return got[1:]


def good_frames(content, msgid=b"m-1", ser=b"pickle"):
    payload = pickle.dumps(content) if ser.startswith(b"pickle") else __import__("json").dumps(content).encode()
    return [b"PZC00+urn:raw+", ser, payload, msgid, b""]


def still_serving(server, times=3):
    proxy = Proxy(server.rep_endpoint, timeout=5)
    try:
        for i in range(times):
            assert proxy.echo(i) == ((i,), {})
    finally:
        proxy._proxy_stop_me()


# ---------------------------------------------------------------------- ROUTER
BROKEN = [
    # (frames, words expected in the error reply)
    ([b"PZC00+a+b"], "expected 5 frames, got 1"),
    ([b"PZC00+a+b", b"pickle", pickle.dumps(1)], "expected 5 frames, got 3"),
    (good_frames(1)[:4], "expected 5 frames, got 4"),
    (good_frames(1) + [b"extra"], "expected 5 frames, got 6"),
    ([b"XYZ00+a+b", b"pickle", pickle.dumps(1), b"m", b""], "wrong header"),
    ([b"PZC01+a+b", b"pickle", pickle.dumps(1), b"m", b""], "wrong header"),
    ([b"PZC00+a", b"pickle", pickle.dumps(1), b"m", b""], "three '+'-separated parts"),
    ([b"PZC00+\xff\xfe+t", b"pickle", pickle.dumps(1), b"m", b""], "undecodable"),
    ([b"PZC00+a+b", b"pickle", pickle.dumps(1), b"\xc3\x28", b""], "undecodable"),
    ([b"PZC00+a+b", b"yaml", b"a: 1", b"m", b""], "unknown serializer"),
    ([b"PZC00+a+b", b"pickle99", pickle.dumps(1), b"m", b""], "unknown serializer"),
    ([b"PZC00+a+b", b"json", b"{not json", b"m", b""], "cannot decode json"),
    ([b"PZC00+a+b", b"json", b"\xff\xfe", b"m", b""], "cannot decode json"),
    ([b"PZC00+a+b", b"pickle", b"\x80\x05garbage", b"m", b""], "cannot decode pickle"),
    ([b"PZC00+a+b", b"pickle", b"cno_such_module_here\nThing\n.", b"m", b""], "No module named"),
    ([b"PZC00+a+b", b"pickle", pickle.dumps(("PSMessage", "exec", {"name": "echo"}))[:-3], b"m", b""],
     "cannot decode pickle"),
    ([b"PZC00+a+b", b"pickle5oob", pickle.dumps(1, 5), b"m", b"", b"buffer-without-use"], "not a PSMessage request"),
]


def test_broken_requests_get_an_error_reply_and_the_server_keeps_serving(closing, raw, caplog):
    server = closing(Server(Stage()))
    sock = raw(zmq.DEALER, server.rep_endpoint)
    for frames, expected in BROKEN:
        reply = reply_of(sock, frames)
        content = Protocol().decode(reply).content
        assert tuple(content[:2]) == ("PSMessage", "raise"), (frames, content)
        exc = content[2][0]
        if isinstance(exc, dict):  # a json request gets a json reply
            assert exc["__exception__"] == "ValueError" and expected in exc["args"][0], (frames, exc)
        else:
            assert isinstance(exc, ValueError) and expected in str(exc), (frames, exc)
    # content that decodes but is not a request: answered with an error, never a crash
    for content in (None, 42, "no-such-plain-request", ("PSMessage",), ("PSMessage", "nope", {}),
                    ("PSMessage", "exec", "not-a-dict"), ("PSMessage", "exec", {"name": "missing"}),
                    ["PSMessage", "getattr", {}], {"a": 1}, b"\x00" * 10):
        reply = Protocol().decode(reply_of(sock, good_frames(content))).content
        # an unknown plain request is echoed back, as the original agent did
        assert reply is None or reply == content or reply[1] in ("raise", "return"), (content, reply)
    still_serving(server)
    assert any("rejected a request" in r.getMessage() for r in caplog.records)


def test_requests_without_envelope_and_random_bytes(closing, raw):
    """Frames with no delimiter (a DEALER that skips it), random frames, raw TCP garbage."""
    server = closing(Server(Stage()))
    rng = random.Random(1234)
    sock = raw(zmq.DEALER, server.rep_endpoint)
    sock.send_multipart([b"no", b"delimiter"])
    sock.send_multipart([b"PZC00+a+b", b"pickle", pickle.dumps(1), b"m", b"sig"])  # no delimiter either
    sent = 0
    for _ in range(300):
        frames = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40))) for _ in range(rng.randrange(1, 8))]
        sock.send_multipart(frames)
        sent += 1
    # plain TCP peers speaking garbage to both ports: the ZMTP handshake fails, the peer is dropped
    for endpoint in (server.rep_endpoint, server.pub_endpoint):
        host, port = endpoint[6:].rsplit(":", 1)
        for _ in range(5):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 2000))))
    assert sent == 300
    still_serving(server)


def test_hostile_subscriptions_at_the_xpub(closing, raw, qtbot):
    """Garbage sent upstream by XSUB peers: ignored; real subscriptions still work and counts stay right."""
    stage = Stage()
    server = closing(Server(stage))
    sender = server.rep_endpoint
    xsub = raw(zmq.XSUB, server.pub_endpoint)
    hostile = [
        b"", b"\x02", b"\x07junk", b"\x01", b"\x00",
        b"\x01PZC00+" + sender.encode() + b"+\xff\xfe",          # bad utf-8 topic
        b"\x01PZC00+" + sender.encode() + b"+a+b",               # '+' in topic
        b"\x01PZC00+someone-else+moved",                        # someone else's sender
        b"\x00PZC00+" + sender.encode() + b"+never_subscribed",  # unsubscribe first
        b"\x01" + bytes(range(256)) * 40,                        # long junk
    ]
    for msg in hostile:
        xsub.send(msg)
    xsub.send_multipart([b"\x01PZC00+" + sender.encode() + b"+moved", b"extra-part"])
    got = []
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    proxy.position_changed.connect(lambda new, old: got.append(new))
    stage.position = 7
    qtbot.waitUntil(lambda: got == [7.0], timeout=10000)
    assert server.subscribers.get("position_changed") == 1
    assert all(count >= 0 for count in server.publisher.counts().values())
    still_serving(server)


def _vm(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _wait_event(mon, event, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mon.poll(100):
            if recv_monitor_message(mon)["event"] == event:
                return True
    return False


@pytest.mark.parametrize("target", ["rep", "pub"])
def test_oversized_frame_drops_the_connection_and_memory_stays_bounded(raw, target, monkeypatch):
    """A 100 MB frame against PZC_MAX_MESSAGE=1 MB: that peer is disconnected, the server (a real
    process) keeps serving, and its peak memory does not grow by the frame's size."""
    monkeypatch.setenv("PZC_MAX_MESSAGE", str(1024 * 1024))
    proc = subprocess.Popen([sys.executable, "-u", os.path.join(HERE, "stage_server.py"), "tcp://127.0.0.1:0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("pizco-server ready"), proc.stderr.read()
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        proxy = Proxy(fields["rep"], timeout=10)
        try:
            assert proxy.record("warm-up") == "warm-up"
            peak_before = _vm(proc.pid, "VmHWM")
            kind = zmq.DEALER if target == "rep" else zmq.XSUB
            sock = CTX.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            mon = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
            try:
                sock.connect(fields[target])
                assert _wait_event(mon, zmq.EVENT_CONNECTED)
                big = b"\0" * (100 * 1024 * 1024)
                if target == "rep":
                    sock.send_multipart([b"", b"PZC00+a+", b"pickle", big, b"m", b""], copy=False)
                else:
                    # not b"\x01": an XSUB would file a subscription that long in its own trie
                    sock.send(b"\x02" + big, copy=False)
                del big
                assert _wait_event(mon, zmq.EVENT_DISCONNECTED), "the server did not drop the connection"
            finally:
                sock.disable_monitor()
                mon.close(0)
                sock.close(0)
            for i in range(3):
                assert proxy.record(f"after-{i}") == f"after-{i}"
            grown = _vm(proc.pid, "VmHWM") - peak_before
            assert grown < 30 * 1024 * 1024, f"peak memory grew by {grown / 2**20:.1f} MiB"
            print(f"\n100 MB frame at {target}: dropped, server peak memory grew {grown / 2**20:.1f} MiB")
            assert proc.poll() is None
        finally:
            proxy._proxy_stop_me()
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_request_flood_and_clients_that_vanish(closing, raw):
    """20,000 requests from a client that never reads its replies, then vanishes; clients that send
    a slow request and vanish before the answer. Others are served meanwhile (ZMQ queues fairly
    between clients) and after."""
    stage = Stage()
    server = closing(Server(stage))
    before = server.requests_served
    flooder = raw(zmq.DEALER, server.rep_endpoint, SNDHWM=0)
    frames = [b""] + good_frames(("PSMessage", "exec", {"name": "echo", "args": (1,)}))
    for i in range(20_000):
        frames[4] = b"f-%d" % i
        flooder.send_multipart(frames)
    proxy = closing(Proxy(server.rep_endpoint, timeout=20))
    t0 = time.monotonic()
    assert proxy.echo("me") == (("me",), {})  # not stuck behind the flood
    latency = time.monotonic() - t0
    wait_until(lambda: server.requests_served >= before + 20_000 + 3, timeout=60)  # info, inspect, echo
    flooder.close(0)  # vanishes, its unread replies with it
    ghosts_before = server.requests_served
    for i in range(5):
        ghost = CTX.socket(zmq.DEALER)
        ghost.connect(server.rep_endpoint)
        ghost.send_multipart([b""] + good_frames(("PSMessage", "exec", {"name": "slow", "args": (0.05,)}),
                                                 msgid=b"ghost-%d" % i))
        ghost.close(linger=2000)  # the request leaves; nobody is there for the answer
    wait_until(lambda: server.requests_served >= ghosts_before + 5, timeout=30)
    for i in range(3):
        assert proxy.echo(i) == ((i,), {})
    assert latency < 20
    print(f"flood: 20000 requests served, a concurrent call took {latency * 1000:.0f} ms")


# ---------------------------------------------------------------------- property-based
frame = st.binary(max_size=48)
header_frame = st.one_of(frame, st.builds(lambda s, t: b"PZC00+" + s + b"+" + t, frame, frame))
ser_frame = st.sampled_from([b"pickle", b"pickle2", b"pickle5", b"json", b"pickle5oob", b"yaml", b"", b"\xff"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header_frame, ser_frame, frame, frame, frame, st.lists(frame, max_size=3))
def test_decode_raises_only_protocol_error(head, ser, content, msgid, sig, extra):
    frames = [head, ser, content, msgid, sig, *extra]
    for protocol in (Protocol(), Protocol(hmac_key="k"), Protocol(serializer="json")):
        try:
            msg = protocol.decode(frames)
        except ProtocolError:
            continue
        assert isinstance(msg.sender, str) and isinstance(msg.topic, str) and isinstance(msg.msgid, str)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_signed_decode_never_loads_unsigned_content(payload):
    """With a key, content with a wrong signature is rejected before loads() ever runs."""
    frames = [b"PZC00+a+b", b"pickle", payload, b"m", b"x" * 20]
    with pytest.raises(ProtocolError, match="bad signature"):
        Protocol(hmac_key="k").decode(frames)


class FakeServer:
    """The surface dispatch() needs, recording what it was asked to do."""

    def __init__(self):
        self.served_object = Stage()
        self.futures = {}

    def return_as_remote(self, value):
        return callable(value)

    def force_as_object(self, value):
        return isinstance(value, (int, float, str))

    def inspect(self):
        return {"echo"}, set()

    def register_future(self, msgid, fut):
        self.futures[msgid] = fut

    def cancel_future(self, msgid):
        return False

    def set_served_object(self, obj):
        raise AssertionError("instantiate must not replace a served object")


names = st.one_of(st.sampled_from(["echo", "position", "speed", "settings", "move_by", "fail", "fail_key",
                                   "numbers", "name", "missing", "", "__class__"]), st.text(max_size=12))
values = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10),
                   st.binary(max_size=10), st.lists(st.integers(), max_size=3))
options = st.one_of(
    st.fixed_dictionaries({"name": names}),
    st.fixed_dictionaries({"name": names, "value": values}),
    st.fixed_dictionaries({"name": names, "method": st.sampled_from(["__call__", "__getitem__", "keys", "nope"]),
                           "args": st.lists(values, max_size=3).map(tuple),
                           "kwargs": st.dictionaries(st.sampled_from(["speed", "x"]), values, max_size=2)}),
    st.fixed_dictionaries({"names": st.lists(names, max_size=4)}),
    st.fixed_dictionaries({"class": st.text(max_size=20)}),
    st.dictionaries(st.text(max_size=5), values, max_size=3),
    values,
)
actions = st.one_of(st.sampled_from(["exec", "getattr", "setattr", "get", "inspect", "instantiate", "cancel",
                                     "describe", "getmany"]), st.text(max_size=8), st.none(), st.integers())
requests = st.one_of(st.tuples(st.just("PSMessage"), actions, options),
                     st.tuples(st.text(max_size=9), actions, options),
                     st.lists(st.one_of(st.just("PSMessage"), actions, options), max_size=4),
                     values)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, st.sampled_from(["pickle", "json"]))
def test_dispatch_always_answers_with_a_reply(request, serializer):
    server = FakeServer()
    reply = dispatch(server, request, "msg-1", serializer)
    assert isinstance(reply, tuple) and len(reply) == 3 and reply[0] == "PSMessage"
    assert reply[1] in ("return", "remote", "raise", "future_register")
    if reply[1] == "raise":
        exc, tb = reply[2]
        assert isinstance(tb, list) and all(isinstance(line, str) for line in tb)
        assert isinstance(exc, BaseException) or (serializer == "json" and "__exception__" in exc)
    Protocol(serializer=serializer if serializer == "json" else "pickle")  # still a valid choice
