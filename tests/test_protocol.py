"""The sans-IO protocol: encoding, signatures, and fuzzing of the decoder."""
from __future__ import annotations

import pickle
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pizco_qt import Protocol
from pizco_qt.errors import ProtocolError


@pytest.mark.parametrize("ser", ["pickle", "pickle2", "pickle3", "pickle4", "pickle5", "json"])
def test_roundtrip(ser):
    p = Protocol(serializer=ser)
    frames = p.encode("tcp://127.0.0.1:1", "topic", {"a": [1, 2]}, "id-1")
    assert len(frames) == 5 and frames[1] == ser.encode()
    msg = p.decode(frames)
    assert (msg.sender, msg.topic, msg.content, msg.msgid) == ("tcp://127.0.0.1:1", "topic", {"a": [1, 2]}, "id-1")


def test_signature_checked_before_loading(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    good = Protocol(hmac_key="k")
    frames = Protocol(hmac_key="other").encode("s", "t", Evil(), "1")
    with pytest.raises(ProtocolError, match="bad signature"):
        good.decode(frames)
    frames[4] = b""
    with pytest.raises(ProtocolError, match="bad signature"):
        good.decode(frames)
    assert not marker.exists()
    assert good.decode(good.encode("s", "t", 1, "1")).content == 1


def test_oob_buffers_are_extra_frames_and_signed():
    p = Protocol(hmac_key="k")
    data = bytearray(b"x" * 100_000)
    frames = p.encode("s", "t", pickle.PickleBuffer(data), "1", "pickle5oob")
    assert len(frames) == 6
    assert bytes(p.decode(frames).content) == bytes(data)
    frames[5] = b"y" * 100_000
    with pytest.raises(ProtocolError, match="bad signature"):
        p.decode(frames)


def test_unknown_serializer_rejected():
    with pytest.raises(ValueError):
        Protocol(serializer="yaml")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=7))
def test_decode_never_crashes(frames):
    for p in (Protocol(), Protocol(hmac_key="key"), Protocol(serializer="json")):
        try:
            p.decode(frames)
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"pickle", b"json", b"pickle2", b"pickle5oob"]))
@example(b"\x96Tt\xa1\xe7\xb3\x01lE\xcd", b"pickle5oob")  # a bytearray of about 5 EB
def test_decode_hostile_payload(payload, ser):
    # CPython's unpickler, given a BYTEARRAY8 opcode whose length cannot be allocated, frees the
    # bytearray while a view of it is still counted and reports that through sys.excepthook
    # (nothing is raised): that report, and only it, is tolerated here.
    reports = []
    hook, sys.excepthook = sys.excepthook, lambda *exc: reports.append(exc)
    try:
        try:
            Protocol().decode([b"PZC00+a+b", ser, payload, b"id", b""])
        except ProtocolError:
            pass
    finally:
        sys.excepthook = hook
    for kind, value, _ in reports:
        assert kind is SystemError and "exported buffers" in str(value) and b"\x96" in payload, (payload, value)
