"""Attacks on the registry, tried the way a hostile peer would: raw sockets calling its
operations, a name hijack, squatting, and a fake registry answering servers and clients."""
from __future__ import annotations

import json
import os
import pickle
import socket
import threading
import time

import pytest
import zmq

from conftest import wait_until
from objects import Stage
from pizco_qt import Protocol, Proxy, Server, registry
from pizco_qt.errors import NameTaken, ProtocolError
from test_attacks import raw_sockets, refused

CTX = zmq.Context.instance()


@pytest.fixture
def raw():
    yield from raw_sockets("json")  # the registry speaks json


def call(r, method, *args):
    return r.ask("exec", {"name": method, "method": "__call__", "args": list(args), "kwargs": {}})


REFUSED = [
    ("get", {"name": "_records"}),
    ("getattr", {"name": "_records"}),
    ("exec", {"name": "_records", "method": "pop", "args": ["stage"]}),
    ("exec", {"name": "_reserved", "method": "clear"}),
    ("exec", {"name": "server_added", "method": "emit", "args": [{"name": "evil"}]}),
    ("exec", {"name": "server_removed", "method": "emit", "args": ["stage"]}),
    ("exec", {"name": "expire", "method": "__call__", "args": [1e12]}),
    ("exec", {"name": "answered", "method": "__call__", "args": ["tcp://127.0.0.1:1", "x"]}),
    ("exec", {"name": "lookup", "method": "__self__"}),
    ("get", {"name": "servers"}),
    ("get", {"name": "expiry"}),
    ("setattr", {"name": "expiry", "value": 0.001}),
    ("setattr", {"name": "probe", "value": None}),
    ("getmany", {"names": ["expiry"]}),
    ("instantiate", {"class": "objects.Stage"}),
    ("cancel", {"msgid": "x"}),
]


@pytest.mark.parametrize("ser", ["pickle", "json"])
def test_the_registry_answers_only_its_own_operations(reg_server, closing, raw, ser):
    table = reg_server.served_object
    closing(Server(Stage(), name="stage"))
    before = table.servers()
    emitted = []
    table.server_added.connect(emitted.append)
    table.server_removed.connect(emitted.append)
    r = raw(reg_server.rep_endpoint, ser)
    for action, options in REFUSED:
        reply = r.ask(action, options)
        exc = reply[2][0]
        reason = exc.get("reason") if isinstance(exc, dict) else getattr(exc, "pizco_reason", None)
        assert reply[1] == "raise" and reason in ("registry", "private"), (action, options, reply)
    assert refused(r.send_frames(r.frames("stop")), "registry")  # nobody stops a registry remotely
    assert table.servers() == before and table.expiry == registry.EXPIRY and table.probe is not None
    assert emitted == []
    # what proxies and servers need still works
    assert r.send_frames(r.frames("info"))["rep_endpoint"] == reg_server.rep_endpoint
    assert call(r, "lookup", "stage")[2]["name"] == "stage"
    assert [e["name"] for e in call(r, "servers")[2]] == ["stage"]
    assert r.ask("inspect", {})[1] == "return" and r.ask("describe", {})[1] == "return"
    with registry.registry_proxy() as rp:
        assert [e["name"] for e in rp.servers()] == ["stage"]


def test_a_registered_name_cannot_be_hijacked(reg_server, closing, raw):
    victim_stage = Stage()
    victim = closing(Server(victim_stage, name="stage"))
    table = reg_server.served_object
    wait_until(lambda: table._records["stage"].verified)  # the registry's own probe answered
    attacker = closing(Server(Stage()))  # where the attacker wants clients of 'stage' to go
    r = raw(reg_server.rep_endpoint)
    genuine = registry.lookup("stage")
    forged = dict(genuine, rep_endpoint=attacker.rep_endpoint, pub_endpoint=attacker.pub_endpoint)
    # claiming the victim's machine and fixed endpoint ('place' was trusted before)
    call(r, "reserve", "stage", "atk-token", socket.gethostname(), os.getpid(), registry._HERE,
         victim.rep_endpoint)
    for entry in (forged, genuine):
        reply = call(r, "register", entry, "atk-token", registry._HERE)
        assert reply[1] == "return" and reply[2]["rep_endpoint"] == victim.rep_endpoint, reply  # a clash
    assert call(r, "unregister", "stage", "atk-token")[2] is False
    assert call(r, "release", "stage", "atk-token")[2] in (True, False)
    # a refresh cannot move an entry to another endpoint
    assert call(r, "register", dict(forged, name="mine", rep_endpoint="tcp://127.0.0.1:9"), "atk-2")[2] is None
    assert call(r, "register", dict(forged, name="mine", rep_endpoint=victim.rep_endpoint), "atk-2")[2] is None
    assert table._records["mine"].entry["rep_endpoint"] == "tcp://127.0.0.1:9"
    # clients of 'stage' still drive the victim
    assert registry.lookup("stage")["rep_endpoint"] == victim.rep_endpoint
    with Proxy.from_name("stage", timeout=5) as proxy:
        proxy.move_by(1)
    assert victim_stage.position == 1.0


@pytest.fixture
def quick_registry(monkeypatch, closing):
    reg = closing(registry.serve_registry("tcp://127.0.0.1:0", expiry=1.0))
    monkeypatch.setenv("PZC_REGISTRY", reg.rep_endpoint)
    return reg


def test_a_dead_or_fake_server_can_neither_squat_nor_keep_a_name(quick_registry, closing, raw):
    table = quick_registry.served_object
    removed = []
    table.server_removed.connect(removed.append)
    r = raw(quick_registry.rep_endpoint)
    ghost = {"name": "ghost", "class": "x.Y", "rep_endpoint": "tcp://127.0.0.1:9", "pub_endpoint": "tcp://127.0.0.1:9",
             "host": "h", "pid": 1, "started": time.time()}
    assert call(r, "register", ghost, "squatter")[2] is None
    t0 = time.monotonic()

    def refreshed_but_dropped():
        call(r, "register", ghost, "squatter")  # the squatter keeps refreshing
        return "ghost" in removed

    wait_until(refreshed_but_dropped, timeout=10, interval=0.1)
    assert time.monotonic() - t0 >= 0.9  # dropped for its silence, not at once
    # the squatter registers again at once; a real server still gets the name
    assert call(r, "register", ghost, "squatter")[2] is None
    server = closing(Server(Stage(), name="ghost"))
    assert registry.lookup("ghost")["rep_endpoint"] == server.rep_endpoint
    holder = call(r, "register", ghost, "squatter")[2]
    assert holder["rep_endpoint"] == server.rep_endpoint  # now the squatter is the one refused
    # a live server that answers keeps its name against newcomers
    with pytest.raises(NameTaken):
        Server(Stage(), name="ghost")


def test_re_reserving_never_holds_a_name_forever(quick_registry, raw):
    r = raw(quick_registry.rep_endpoint)
    assert call(r, "reserve", "held", "holder", "h", 1, "", "")[2] is None
    assert call(r, "reserve", "held", "other", "h", 2, "", "")[2]["name"] == "held"
    t0 = time.monotonic()

    def free():
        call(r, "reserve", "held", "holder", "h", 1, "", "")  # the holder keeps re-reserving
        return call(r, "reserve", "held", "other", "h", 2, "", "")[2] is None

    wait_until(free, timeout=10, interval=0.1)
    assert time.monotonic() - t0 >= 0.5


# ---------------------------------------------------------------------- a fake registry
class FakeRegistry:
    """A ROUTER answering every request with ``reply(frames) -> reply frames``."""

    def __init__(self, reply):
        self.sock = CTX.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.reply = reply
        self.asked = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            route, body = frames[:2], frames[2:]
            self.asked.append(body)
            self.sock.send_multipart(route + self.reply(body))

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close(0)


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def answering(content, ser=b"json", key=b""):
    import hashlib
    import hmac

    def reply(body):
        payload = json.dumps(content).encode() if ser == b"json" else pickle.dumps(content)
        parts = [b"PZC00+fake+", ser, payload, body[3]]
        sig = hmac.new(key, b"".join(parts), hashlib.sha1).digest() if key else b""
        return parts + [sig]
    return reply


def malformed_replies(marker):
    return [
        answering(5), answering("a string"), answering(["PSMessage", "return", 5]),
        answering(["PSMessage", "return", "not an entry"]), answering(["PSMessage", "raise", 5]),
        answering(["PSMessage", "raise", [{"__exception__": 7}, []]]), answering(["PSMessage", "what", None]),
        answering(["PSMessage", "return", None], ser=b"pickle"),
        answering(("PSMessage", "raise", (Evil(marker), [])), ser=b"pickle"),
        lambda body: [b"garbage"],
    ]


def test_malformed_registry_replies_are_protocol_errors_never_crashes(monkeypatch, closing, tmp_path, caplog):
    marker = tmp_path / "client-ran-it"
    monkeypatch.delenv("PZC_KEY", raising=False)
    for i, reply in enumerate(malformed_replies(marker)):
        fake = FakeRegistry(reply)
        try:
            monkeypatch.setenv("PZC_REGISTRY", fake.endpoint)
            with pytest.raises((ProtocolError, registry.RegistryUnavailable)) as info:
                registry.lookup("stage", timeout=0.5)
            assert isinstance(info.value, (ProtocolError, registry.RegistryUnavailable)), i
            with caplog.at_level("WARNING", logger="pizco_qt.registration"):
                server = closing(Server(Stage(), name="stage"))  # never an AttributeError: serves
            with Proxy(server.rep_endpoint, timeout=5) as proxy:
                assert proxy.move_by(1) == 1.0
        finally:
            fake.stop()
    assert not marker.exists()


def test_an_impostor_registry_without_the_key_is_rejected(monkeypatch, closing, tmp_path, caplog):
    marker = tmp_path / "impostor-ran-it"
    monkeypatch.setenv("PZC_KEY", "lab-key")
    for reply in (answering(["PSMessage", "return", None]),                         # unsigned
                  answering(["PSMessage", "return", None], key=b"other-key"),       # another key
                  answering(("PSMessage", "return", Evil(marker)), ser=b"pickle", key=b"other-key")):
        fake = FakeRegistry(reply)
        try:
            monkeypatch.setenv("PZC_REGISTRY", fake.endpoint)
            with pytest.raises(ProtocolError):
                registry.lookup("stage", timeout=2)
            caplog.clear()
            with caplog.at_level("WARNING", logger="pizco_qt.registration"):
                server = closing(Server(Stage(), name="stage"))
            assert any("cannot be trusted" in r.getMessage() or "refused" in r.getMessage()
                       for r in caplog.records), [r.getMessage() for r in caplog.records]
            assert fake.asked and all(len(frames[4]) == 20 for frames in fake.asked)  # we sign our requests
            assert server.registration.refused and not server.registration.registered
        finally:
            fake.stop()
    assert not marker.exists()
