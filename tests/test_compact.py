"""Compact frames: used between pizco_qt peers that advertise them, never shown to any other peer."""
from __future__ import annotations

import os
import pickle
import threading

import pytest
import zmq

from conftest import without_capability
from pizco_qt import Protocol, Proxy
from pizco_qt import answering
from pizco_qt.errors import ProtocolError
from pizco_qt.protocol import COMPACT, COMPACT_MAX, pack_compact, unpack_compact

BIG = os.urandom(COMPACT_MAX + 1000)


class Echo:
    value = 42

    def echo(self, x):
        return x


@pytest.fixture
def wire(monkeypatch):
    """Records every request a Server handles and every reply it sends: {'requests': [...], 'replies': [...]}."""
    seen = {"requests": [], "replies": []}
    routes = set()
    handle = answering.Answerer._handle
    send = answering.send_frames
    send_routed = answering.send_routed

    def spy_handle(self, router, frames):
        routes.add(frames[0])
        seen["requests"].append(list(frames))
        handle(self, router, frames)

    def spy_send(sock, frames, flags=0):
        if frames and frames[0] in routes:
            seen["replies"].append(list(frames))
        send(sock, frames, flags)

    def spy_send_routed(sock, route, frame):
        if route in routes:
            seen["replies"].append([route, frame])
        send_routed(sock, route, frame)

    monkeypatch.setattr(answering.Answerer, "_handle", spy_handle)
    monkeypatch.setattr(answering, "send_frames", spy_send)
    monkeypatch.setattr(answering, "send_routed", spy_send_routed)
    return seen


def is_compact(frames):
    """A message as a ROUTER sees it: the routing id, then one compact frame."""
    return len(frames) == 2 and bytes(frames[1][:4]) == COMPACT


# ---------------------------------------------------------------------------------------- the format
def test_pack_and_unpack_keep_the_five_frames():
    p = Protocol()
    frames = p.encode("urn:me", "topic", ("PSMessage", "return", [1, "two"]), "id-1")
    packed = pack_compact(frames)
    assert packed.startswith(COMPACT)
    assert unpack_compact(packed) == frames
    assert p.encode_compact("urn:me", "topic", ("PSMessage", "return", [1, "two"]), "id-1") == packed
    assert p.decode(unpack_compact(packed)).content == ("PSMessage", "return", [1, "two"])


def test_what_does_not_fit_a_compact_frame_keeps_the_frames():
    p = Protocol()
    big = p.encode("urn:me", "", BIG, "id-1", "pickle")
    assert pack_compact(big) is None  # content too large
    with_buffers = p.encode("urn:me", "", ("PSMessage", "return", BIG), "id-1", "pickle5oob")
    assert len(with_buffers) == 6 and pack_compact(with_buffers) is None  # out-of-band buffers
    assert pack_compact(p.encode("urn:me", "", 1, "x" * 300)) is None  # message id longer than its length byte
    out = p.encode_compact("urn:me", "", ("PSMessage", "return", BIG), "id-1", "pickle5oob")
    assert isinstance(out, list) and len(out) == 6 and p.decode(out).content[2] == BIG


@pytest.mark.parametrize("frame", [b"", COMPACT, COMPACT + b"\x05\x00\x01\x01\x00abc", b"PZC\x02" + bytes(5),
                                   b"junk" * 10])
def test_malformed_compact_frames_raise_protocol_error(frame):
    with pytest.raises(ProtocolError):
        unpack_compact(frame)


def test_a_compact_frame_carries_the_same_signature():
    p = Protocol(hmac_key="k")
    packed = p.encode_compact("urn:me", "", ("PSMessage", "return", 1), "id-1")
    frames = unpack_compact(packed)
    assert len(frames[4]) == 20
    assert frames == p.encode("urn:me", "", ("PSMessage", "return", 1), "id-1")
    tampered = packed[:-1] + bytes([packed[-1] ^ 1])
    with pytest.raises(ProtocolError, match="bad signature"):
        p.check(unpack_compact(tampered))
    with pytest.raises(ProtocolError, match="bad signature"):
        Protocol(hmac_key="other").check(frames)


# ---------------------------------------------------------------------------------------- on the wire
def test_a_proxy_and_a_server_talk_compact(served, wire):
    server, proxy = served(Echo())
    assert "compact" in proxy._proxy_core.caps
    wire["requests"].clear()
    wire["replies"].clear()
    assert proxy.echo(5) == 5
    assert proxy.value == 42
    assert [is_compact(f) for f in wire["requests"]] == [True, True]
    assert [is_compact(f) for f in wire["replies"]] == [True, True]
    # large payloads keep the frames (and their zero-copy buffers), both ways
    wire["requests"].clear()
    wire["replies"].clear()
    assert proxy.echo(BIG) == BIG
    (request,), (reply,) = wire["requests"], wire["replies"]
    assert request[1] == b"" and len(request) == 8  # id, delimiter, five frames, one buffer
    assert reply[1] == b"" and len(reply) == 8


def test_a_keyed_proxy_and_server_talk_compact(served, wire):
    key = Protocol(hmac_key="s3cret")
    server, proxy = served(Echo(), protocol=key)
    wire["requests"].clear()
    assert proxy.echo("signed") == "signed"
    assert is_compact(wire["requests"][0]) and len(unpack_compact(wire["requests"][0][1])[4]) == 20


def test_a_plain_req_client_still_gets_five_frames(served, wire):
    server, proxy = served(Echo())
    assert proxy.echo(1) == 1  # the proxy talks compact meanwhile
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(server.rep_endpoint)
    try:
        request = Protocol().encode("urn:req", "", ("PSMessage", "exec", {"name": "echo", "args": (7,)}), "req-1",
                                    "pickle")
        sock.send_multipart(request)
        reply = sock.recv_multipart()
    finally:
        sock.close()
    assert len(reply) == 5
    assert reply[0] == f"PZC00+{server.rep_endpoint}+".encode() and reply[1] == b"pickle" and reply[3] == b"req-1"
    assert pickle.loads(reply[2]) == ("PSMessage", "return", 7)
    assert proxy.echo(2) == 2


def test_a_server_that_does_not_advertise_compact_gets_five_frames(served, wire, monkeypatch):
    without_capability(monkeypatch, "compact")
    server, proxy = served(Echo())
    wire["requests"].clear()
    wire["replies"].clear()
    assert proxy.echo(3) == 3 and proxy.value == 42
    assert all(f[1] == b"" and len(f) == 7 for f in wire["requests"] + wire["replies"])
    assert len(wire["requests"]) == 2


class _OriginalServer:
    """A Pizco server as the original speaks it, with bare pyzmq: a REP socket that needs five frames."""

    def __init__(self):
        ctx = zmq.Context.instance()
        self.rep = ctx.socket(zmq.REP)
        self.rep.setsockopt(zmq.LINGER, 0)
        port = self.rep.bind_to_random_port("tcp://127.0.0.1")
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        pub_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.pub_endpoint = f"tcp://127.0.0.1:{pub_port}"
        self.frame_counts = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def answer(self, content):
        if content == "info":
            return {"rep_endpoint": self.endpoint, "pub_endpoint": self.pub_endpoint}
        _, action, options = content
        if action == "inspect":
            return ("PSMessage", "return", ({"echo"}, set()))
        if action == "exec":
            return ("PSMessage", "return", options["args"][0])
        return ("PSMessage", "return", 42)

    def run(self):
        while not self.stopping.is_set():
            if not self.rep.poll(50):
                continue
            frames = self.rep.recv_multipart()
            self.frame_counts.append(len(frames))
            reply = pickle.dumps(self.answer(pickle.loads(frames[2])))
            self.rep.send_multipart([f"PZC00+{self.endpoint}+".encode(), frames[1], reply, frames[3], b""])
        self.rep.close(0)
        self.pub.close(0)

    def stop(self):
        self.stopping.set()
        self.thread.join(5)


def test_a_proxy_speaks_five_frames_to_an_original_server(closing):
    original = _OriginalServer()
    try:
        proxy = closing(Proxy(original.endpoint, timeout=5))
        assert proxy.echo(11) == 11
        assert proxy.value == 42
    finally:
        original.stop()
    assert len(original.frame_counts) == 4 and set(original.frame_counts) == {5}  # info, inspect, exec, get


def test_bad_compact_requests_are_answered_and_never_loaded(served):
    loaded = []
    server, proxy = served(Echo(), protocol=Protocol(hmac_key="right"))

    class Trap:
        def __reduce__(self):
            return (loaded.append, ("loaded",))

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(server.rep_endpoint)
    wrong = Protocol(hmac_key="wrong")
    errors = []
    try:
        for frame in (wrong.encode_compact("urn:x", "", Trap(), "m-1", "pickle"),
                      COMPACT + b"\xff\xff\x01\x01\x00short"):
            sock.send(frame)
            reply = sock.recv_multipart()
            assert reply[0] == b"" and len(reply) == 6  # errors are answered with the five frames
            kind, action, (exc, tb) = pickle.loads(reply[3])
            assert action == "raise" and type(exc) is ValueError
            errors.append(str(exc))
    finally:
        sock.close()
    assert errors[0].startswith("bad signature")
    assert "truncated compact frame" in errors[1]
    assert loaded == []
    assert proxy.echo("still serving") == "still serving"


def test_a_proxy_drops_frames_that_trail_a_compact_reply(closing):
    """A server that sends more after a compact reply: the call gets its reply, the next call skips the rest."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    p = Protocol()
    stopping = threading.Event()

    def serve():
        while not stopping.is_set():
            if not router.poll(50):
                continue
            frames = router.recv_multipart()
            compact = len(frames) == 2
            body = unpack_compact(frames[1]) if compact else frames[2:]
            msg = p.decode(body)
            if msg.content == "info":
                answer = {"rep_endpoint": endpoint, "pub_endpoint": f"tcp://127.0.0.1:{pub_port}",
                          "capabilities": ["compact"]}
            elif msg.content[1] == "inspect":
                answer = ("PSMessage", "return", ({"echo"}, set()))
            else:
                answer = ("PSMessage", "return", msg.content[2]["args"][0])
            if compact:
                reply = p.encode_compact(endpoint, "", answer, msg.msgid, msg.serializer)
                router.send_multipart([frames[0], reply, b"trailing", b"frames"])
            else:
                router.send_multipart(frames[:2] + p.encode(endpoint, "", answer, msg.msgid, msg.serializer))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        proxy = closing(Proxy(endpoint, timeout=5))
        assert proxy._proxy_core.compact
        assert [proxy.echo(i) for i in range(5)] == [0, 1, 2, 3, 4]
    finally:
        stopping.set()
        thread.join(5)
        router.close(0)
        pub.close(0)
