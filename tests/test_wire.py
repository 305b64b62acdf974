"""Compatibility with original Pizco peers, proven with bare pyzmq sockets speaking the raw wire."""
from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import uuid

import pytest
import zmq

from conftest import wait_until
from objects import CustomError, Stage
from pizco_qt import Protocol, Server


def frames_for(content, serializer="pickle", key=b"", sender="urn:client", topic=""):
    header = f"PZC00+{sender}+{topic}".encode()
    if serializer == "json":
        payload = json.dumps(content).encode()
    elif serializer == "pickle":
        payload = pickle.dumps(content)
    else:
        payload = pickle.dumps(content, int(serializer[6:]))
    msgid = str(uuid.uuid4()).encode()
    parts = [header, serializer.encode(), payload, msgid]
    sig = hmac.new(key, b"".join(parts), hashlib.sha1).digest() if key else b""
    return parts + [sig]


@pytest.fixture
def raw_req():
    ctx = zmq.Context.instance()
    socks = []

    def make(endpoint):
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append(s)
        return s

    yield make
    for s in socks:
        s.close(0)


def roundtrip(sock, frames, timeout=5000):
    sock.send_multipart(frames)
    assert sock.poll(timeout), "no reply"
    return sock.recv_multipart()


@pytest.mark.parametrize("serializer", ["pickle", "pickle2", "pickle4", "json"])
def test_raw_req_exec_get_setattr(closing, raw_req, serializer):
    stage = Stage()
    server = closing(Server(stage))
    req = raw_req(server.rep_endpoint)
    sent = frames_for(("PSMessage", "exec", {"name": "move_by", "method": "__call__", "args": (2,), "kwargs": {}}),
                      serializer)
    reply = roundtrip(req, sent)
    assert len(reply) == 5
    assert reply[0] == f"PZC00+{server.rep_endpoint}+".encode()
    assert reply[1] == serializer.encode()  # a reply uses its request's serializer
    assert reply[3] == sent[3]
    assert reply[4] == b""
    content = json.loads(reply[2]) if serializer == "json" else pickle.loads(reply[2])
    assert list(content) == ["PSMessage", "return", 2.0]
    # getattr / get / setattr without args and kwargs keys
    reply = roundtrip(req, frames_for(("PSMessage", "setattr", {"name": "speed", "value": 7}), serializer))
    assert stage.speed == 7
    reply = roundtrip(req, frames_for(("PSMessage", "get", {"name": "speed"}), serializer))
    content = json.loads(reply[2]) if serializer == "json" else pickle.loads(reply[2])
    assert list(content) == ["PSMessage", "return", 7]
    reply = roundtrip(req, frames_for(("PSMessage", "exec", {"name": "echo", "method": "__call__"}), serializer))
    content = json.loads(reply[2]) if serializer == "json" else pickle.loads(reply[2])
    assert content[1] == "return"


def test_raw_get_remote_and_inspect_and_info(closing, raw_req):
    server = closing(Server(Stage()))
    req = raw_req(server.rep_endpoint)
    content = pickle.loads(roundtrip(req, frames_for(("PSMessage", "get", {"name": "move_by"})))[2])
    assert content == ("PSMessage", "remote", None)
    content = pickle.loads(roundtrip(req, frames_for(("PSMessage", "getattr", {"name": "settings"})))[2])
    assert content == ("PSMessage", "return", {"units": "mm", "limit": 10})
    content = pickle.loads(roundtrip(req, frames_for(("PSMessage", "inspect", {})))[2])
    assert content[1] == "return" and "move_by" in content[2][0]
    info = pickle.loads(roundtrip(req, frames_for("info"))[2])
    assert info["rep_endpoint"] == server.rep_endpoint and info["pub_endpoint"] == server.pub_endpoint
    assert pickle.loads(roundtrip(req, frames_for(("PSMessage", "get", {"name": "speed", "force_as_object": True})))[2]) \
        == ("PSMessage", "return", 1.5)


def test_raw_raise_reply(closing, raw_req):
    server = closing(Server(Stage()))
    req = raw_req(server.rep_endpoint)
    kind, action, (exc, tb) = pickle.loads(roundtrip(req, frames_for(
        ("PSMessage", "exec", {"name": "fail", "method": "__call__", "args": ("x",)})))[2])
    assert action == "raise" and isinstance(exc, CustomError) and str(exc) == "x"
    assert isinstance(tb, list) and all(isinstance(line, str) for line in tb)
    kind, action, (exc, tb) = pickle.loads(roundtrip(req, frames_for(("PSMessage", "get", {"name": "nope"})))[2])
    assert isinstance(exc, AttributeError)


def test_raw_sub_receives_signal_with_header_subscription(closing, raw_req):
    stage = Stage()
    server = closing(Server(stage))
    sub = zmq.Context.instance().socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(server.pub_endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, f"PZC00+{server.rep_endpoint}+position_changed".encode())
        wait_until(lambda: server.subscriber_count("position_changed") == 1)  # the XPUB saw it
        wait_until(lambda: "position_changed" in server._forwarders)
        req = raw_req(server.rep_endpoint)
        roundtrip(req, frames_for(("PSMessage", "setattr", {"name": "position", "value": 3})))
        assert sub.poll(5000)
        frames = sub.recv_multipart()
        assert len(frames) == 5
        assert frames[0] == f"PZC00+{server.rep_endpoint}+position_changed".encode()
        assert pickle.loads(frames[2]) == (3.0, 0.0)
    finally:
        sub.close(0)
    wait_until(lambda: server.subscriber_count("position_changed") == 0)
    wait_until(lambda: "position_changed" not in server._forwarders)


def test_raw_future_published_on_future_topic(closing, raw_req):
    server = closing(Server(Stage()))
    sub = zmq.Context.instance().socket(zmq.SUB)
    try:
        sub.connect(server.pub_endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, f"PZC00+{server.rep_endpoint}+__future__".encode())
        wait_until(lambda: server.subscriber_count("__future__") == 1)
        req = raw_req(server.rep_endpoint)
        sent = frames_for(("PSMessage", "exec", {"name": "later", "method": "__call__", "args": (5,)}))
        content = pickle.loads(roundtrip(req, sent)[2])
        assert content == ("PSMessage", "future_register", sent[3].decode())
        assert sub.poll(5000)
        note = pickle.loads(sub.recv_multipart()[2])
        assert note == {"msgid": sent[3].decode(), "result": 10, "exception": None}
    finally:
        sub.close(0)


def test_signed_requests(closing, raw_req):
    key = b"s3cret"
    stage = Stage()
    server = closing(Server(stage, protocol=Protocol(hmac_key="s3cret")))
    req = raw_req(server.rep_endpoint)
    reply = roundtrip(req, frames_for(("PSMessage", "get", {"name": "speed"}), key=key))
    assert reply[4] == hmac.new(key, b"".join(reply[:4]), hashlib.sha1).digest()
    assert pickle.loads(reply[2]) == ("PSMessage", "return", 1.5)
    reply = roundtrip(req, frames_for(("PSMessage", "setattr", {"name": "speed", "value": 99}), key=b"wrong"))
    kind, action, (exc, tb) = pickle.loads(reply[2])
    assert action == "raise" and isinstance(exc, ValueError) and "bad signature" in str(exc)
    assert stage.speed == 1.5  # never applied


def test_server_survives_garbage(closing, raw_req):
    server = closing(Server(Stage()))
    req = raw_req(server.rep_endpoint)
    for bad in ([b"only one frame"], [b"PZC00+a+", b"pickle", b"\x80garbage", b"id", b""],
                [b"XXX00+a+", b"pickle", pickle.dumps("info"), b"id", b""],
                [b"PZC00+a+", b"nope", pickle.dumps("info"), b"id", b""],
                [b"\xff\xfe", b"pickle", pickle.dumps("info"), b"id", b""]):
        reply = roundtrip(req, bad)
        content = pickle.loads(reply[2])
        assert content[1] == "raise" and isinstance(content[2][0], ValueError)
    info = pickle.loads(roundtrip(req, frames_for("info"))[2])
    assert info["rep_endpoint"] == server.rep_endpoint


def test_pizco_qt_proxy_with_json_serializer(closing):
    from pizco_qt import Proxy
    server = closing(Server(Stage(), protocol=Protocol(serializer="json")))
    proxy = closing(Proxy(server.rep_endpoint, timeout=5, protocol=Protocol(serializer="json")))
    assert proxy.move_by(2) == 2.0
    with pytest.raises(KeyError):
        proxy.fail_key()
