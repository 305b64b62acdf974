"""The performance paths keep their behaviour: large buffers out of band, 5 frames for plain peers."""
from __future__ import annotations

import io
import os
import pickle

import pytest
import zmq

from pizco_qt import Protocol
from pizco_qt.errors import ProtocolError
from pizco_qt.protocol import OOB_BYTES

BIG = os.urandom(OOB_BYTES + 1000)


class Echo:
    def echo(self, x):
        return x


def test_large_bytes_travel_out_of_band_without_a_copy():
    p = Protocol()
    content = ("PSMessage", "exec", {"name": "echo", "args": (BIG, b"small"), "kwargs": {}})
    frames = p.encode("s", "", content, "1", "pickle5oob")
    assert len(frames) == 6
    assert isinstance(frames[5], memoryview) and frames[5].obj is BIG  # no copy on the way out
    assert len(frames[2]) < 1000  # the payload frame no longer carries the bytes
    received = [bytes(f) for f in frames[:5]] + [memoryview(bytes(frames[5]))]
    back = p.decode(received).content
    assert type(back[2]["args"][0]) is bytes and back[2]["args"][0] == BIG
    assert back[2]["args"][1] == b"small"


def test_small_content_and_plain_pickle_keep_five_frames():
    p = Protocol()
    assert len(p.encode("s", "", ("PSMessage", "return", b"x" * 100), "1", "pickle5oob")) == 5
    assert len(p.encode("s", "", ("PSMessage", "return", BIG), "1", "pickle")) == 5


def test_signature_covers_out_of_band_bytes():
    p = Protocol(hmac_key="k")
    frames = p.encode("s", "", ("PSMessage", "return", BIG), "1", "pickle5oob")
    received = [bytes(f) for f in frames]
    assert p.decode(received).content[2] == BIG
    # flip every bit of the first byte: the buffer is random, so any fixed byte may already be there
    tampered = received[:5] + [bytes([received[5][0] ^ 0xFF]) + received[5][1:]]
    with pytest.raises(ProtocolError, match="bad signature"):
        p.decode(tampered)


def test_a_hostile_persistent_id_is_refused():
    class Hostile(pickle.Pickler):
        def persistent_id(self, obj):
            return 10 ** 9 if obj == "boom" else None

    out = io.BytesIO()
    Hostile(out, 5).dump(("PSMessage", "return", "boom"))
    frames = [b"PZC00+s+", b"pickle5oob", out.getvalue(), b"1", b"", b"extra buffer"]
    with pytest.raises(ProtocolError):
        Protocol().decode(frames)


def test_large_bytes_round_trip_through_a_proxy(served):
    server, proxy = served(Echo())
    back = proxy.echo(BIG)
    assert type(back) is bytes and back == BIG
    big = os.urandom(3 * 1024 * 1024)
    assert proxy.echo(big) == big


def test_a_plain_pickle_peer_gets_five_frames_for_large_bytes(served):
    server, proxy = served(Echo())
    p = Protocol()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(server.rep_endpoint)
    try:
        request = p.encode("tcp://peer", "", ("PSMessage", "exec", {"name": "echo", "args": (BIG,)}), "7", "pickle")
        sock.send_multipart([b""] + request)
        reply = sock.recv_multipart()
    finally:
        sock.close()
    assert reply[0] == b"" and len(reply) == 6  # delimiter + exactly five frames
    assert reply[2] == b"pickle" and reply[4] == b"7"
    assert pickle.loads(reply[3]) == ("PSMessage", "return", BIG)
