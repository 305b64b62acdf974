"""Security: signatures checked before deserializing, safe defaults for network binds, CURVE."""
from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import selectors
import shutil
import socket
import threading
import time

import pytest
import zmq
import zmq.auth

from childproc import spawn  # noqa: F401  (a fixture)
from objects import Stage
from pizco_qt import Agent, PizcoError, Protocol, ProtocolError, Proxy, RemoteTimeout, Server
from pizco_qt.errors import BindError, InsecureBind
from pizco_qt.security import CurveConfig, is_loopback_endpoint


class Evil:
    """Unpickling this creates the marker file: proof that a payload was deserialized."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def signed(parts, key: bytes) -> list:
    return parts + [hmac.new(key, b"".join(parts), hashlib.sha1).digest() if key else b""]


def request_parts(content, sender="urn:raw", msgid=b"raw-1"):
    return [f"PZC00+{sender}+".encode(), b"pickle", pickle.dumps(content), msgid]


@pytest.fixture
def dealer():
    socks = []

    def make(endpoint):
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append(s)
        return s

    yield make
    for s in socks:
        s.close(0)


def ask(sock, frames, timeout=5000):
    sock.send_multipart([b""] + frames)
    assert sock.poll(timeout), "no reply"
    return sock.recv_multipart()[1:]


# ---------------------------------------------------------------------- signing
@pytest.mark.parametrize("signature", ["missing", "wrong key", "tampered"])
def test_keyed_server_never_unpickles_a_badly_signed_request(tmp_path, closing, dealer, signature):
    marker = tmp_path / "server-ran-it"
    key = b"lab-key"
    stage = Stage()
    server = closing(Server(stage, protocol=Protocol(hmac_key=key)))
    sock = dealer(server.rep_endpoint)
    parts = request_parts(("PSMessage", "setattr", {"name": "speed", "value": Evil(marker)}))
    if signature == "missing":
        frames = signed(parts, b"")
    elif signature == "wrong key":
        frames = signed(parts, b"other-key")
    else:
        frames = signed(request_parts(("PSMessage", "get", {"name": "speed"})), key)
        frames[2] = parts[2]  # content swapped after signing
    reply = ask(sock, frames)
    content = Protocol(hmac_key=key).decode(reply).content  # the error reply itself is signed
    assert content[:2] == ("PSMessage", "raise")
    assert isinstance(content[2][0], ValueError) and str(content[2][0]) == "bad signature: check PZC_KEY"
    assert reply[3] == b"raw-1"
    assert not marker.exists()
    assert stage.speed == 1.5  # nothing applied
    # the server keeps serving correctly signed requests
    ok = ask(sock, signed(request_parts(("PSMessage", "get", {"name": "speed"}), msgid=b"raw-2"), key))
    assert Protocol(hmac_key=key).decode(ok).content == ("PSMessage", "return", 1.5)


def test_keyed_client_never_unpickles_a_badly_signed_reply(tmp_path, closing):
    """A rogue server answering with a badly signed pickle bomb: ProtocolError, nothing unpickled."""
    marker = tmp_path / "client-ran-it"
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    stop = threading.Event()

    def rogue():
        while not stop.is_set():
            if not router.poll(50):
                continue
            frames = router.recv_multipart()
            route, body = frames[:2], frames[2:]
            reply = signed([f"PZC00+{endpoint}+".encode(), b"pickle", pickle.dumps(Evil(marker)), body[3]],
                           b"not-the-key")
            router.send_multipart(route + reply)

    t = threading.Thread(target=rogue)
    t.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(ProtocolError, match="signature"):
            Proxy(endpoint, timeout=5, protocol=Protocol(hmac_key="the-key"))
        assert time.monotonic() - t0 < 2
        agent = closing(Agent(protocol=Protocol(hmac_key="the-key"), _bind=False))
        with pytest.raises(ProtocolError, match="signature"):
            agent.request(endpoint, "info", timeout=5)
        assert not marker.exists()
    finally:
        stop.set()
        t.join(5)
        router.close(0)


def test_keyed_subscriber_drops_badly_signed_notifications(tmp_path, closing, qtbot):
    """Notifications are checked on the I/O thread; a bad one is dropped, later good ones arrive."""
    marker = tmp_path / "subscriber-ran-it"
    key = "k"
    publisher = closing(Agent(protocol=Protocol(hmac_key=key)))
    rogue = closing(Agent(protocol=Protocol(hmac_key="wrong")))
    subscriber = closing(Agent(protocol=Protocol(hmac_key=key), _bind=False))
    got = []
    subscriber.subscribe(publisher.rep_endpoint, "topic", lambda s, t, c, m: got.append(c))
    # frames for the same sender and topic, published through the same PUB socket
    bad = rogue.protocol.encode(publisher.rep_endpoint, "topic", Evil(marker), "bad-1")
    publisher.publisher.publish_frames(bad)
    publisher.publish("topic", "good")
    qtbot.waitUntil(lambda: got == ["good"], timeout=10000)
    assert not marker.exists()


def test_wrong_key_client_gets_a_clear_error_quickly(closing):
    server = closing(Server(Stage(), protocol=Protocol(hmac_key="right")))
    t0 = time.monotonic()
    with pytest.raises(ProtocolError) as info:
        Proxy(server.rep_endpoint, timeout=10, protocol=Protocol(hmac_key="wrong"))
    assert time.monotonic() - t0 < 2
    assert "signature" in str(info.value) and ("PZC_KEY" in str(info.value) or "key" in str(info.value).lower())
    # an unkeyed client too
    with pytest.raises(ProtocolError):
        Proxy(server.rep_endpoint, timeout=10, protocol=Protocol(hmac_key=""))
    assert time.monotonic() - t0 < 4


def test_key_from_environment(monkeypatch, closing, dealer, tmp_path):
    monkeypatch.setenv("PZC_KEY", "from-env")
    server = closing(Server(Stage()))
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    assert proxy.move_by(2) == 2.0
    assert server.protocol.hmac_key == b"from-env" and proxy._proxy_core.protocol.hmac_key == b"from-env"
    marker = tmp_path / "env-ran-it"
    reply = ask(dealer(server.rep_endpoint),
                signed(request_parts(("PSMessage", "get", {"name": Evil(marker)})), b""))
    assert str(Protocol(hmac_key="from-env").decode(reply).content[2][0]).startswith("bad signature")
    assert not marker.exists()
    with pytest.raises(ProtocolError):
        Proxy(server.rep_endpoint, timeout=5, protocol=Protocol(hmac_key="not-env"))


# ---------------------------------------------------------------------- safe defaults
@pytest.mark.parametrize("rep,pub", [("tcp://0.0.0.0:0", None), ("tcp://*:0", None),
                                     ("tcp://127.0.0.1:0", "tcp://0.0.0.0:0")])
@pytest.mark.parametrize("ser", ["pickle", "json"])
def test_non_loopback_without_key_is_refused_whatever_the_serializer(monkeypatch, rep, pub, ser):
    monkeypatch.delenv("PZC_KEY", raising=False)
    monkeypatch.delenv("PZC_SER", raising=False)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(InsecureBind) as info:
        Server(Stage(), rep, pub or "tcp://127.0.0.1:0", Protocol(serializer=ser))
    assert isinstance(info.value, BindError) and isinstance(info.value, OSError)
    text = str(info.value)
    for way_out in ("PZC_KEY", "hmac_key", "CURVE", "allow_insecure=True"):
        assert way_out in text, way_out
    assert "drive the served object" in text  # names the risk
    assert ("run code" in text) == (ser == "pickle")
    assert not any(t.name.startswith("pizco-server") for t in threading.enumerate() if t.name not in before)


@pytest.mark.parametrize("ser", ["pickle", "json"])
def test_allow_insecure_warns_once_per_bind_naming_the_endpoint(monkeypatch, closing, caplog, ser):
    monkeypatch.delenv("PZC_KEY", raising=False)
    with caplog.at_level("WARNING", logger="pizco_qt"):
        server = closing(Server(Stage(), "tcp://0.0.0.0:0", protocol=Protocol(serializer=ser),
                                allow_insecure=True))
    warnings = [r for r in caplog.records if "no key and no CURVE" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert "tcp://0.0.0.0:0" in warnings[0].getMessage() and "drive the served object" in warnings[0].getMessage()
    port = server.rep_endpoint.rsplit(":", 1)[1]
    proxy = closing(Proxy(f"tcp://127.0.0.1:{port}", timeout=5, protocol=Protocol(serializer=ser)))
    assert proxy.move_by(1) == 1.0
    assert len([r for r in caplog.records if "no key and no CURVE" in r.getMessage()]) == 1


def _curve_keys(tmp_path):
    keys = tmp_path / "keys"
    clients = tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    zmq.auth.create_certificates(str(keys), "server")
    zmq.auth.create_certificates(str(keys), "alice")
    zmq.auth.create_certificates(str(keys), "mallory")
    shutil.copy(keys / "alice.key", clients / "alice.key")
    return keys, clients


@pytest.mark.parametrize("way", ["allow_insecure", "PZC_KEY", "hmac_key", "curve"])
def test_non_loopback_bind_allowed_by_each_way_out(monkeypatch, closing, tmp_path, way):
    monkeypatch.delenv("PZC_KEY", raising=False)
    monkeypatch.delenv("PZC_SER", raising=False)
    kwargs, pkw = {}, {}
    if way == "allow_insecure":
        kwargs["allow_insecure"] = True
    elif way == "PZC_KEY":
        monkeypatch.setenv("PZC_KEY", "k")
    elif way == "hmac_key":
        kwargs["protocol"] = pkw["protocol"] = Protocol(hmac_key="k")
    else:
        keys, clients = _curve_keys(tmp_path)
        kwargs["curve"] = CurveConfig(keys / "server.key_secret", clients)
        pkw["curve"] = CurveConfig(keys / "alice.key_secret", server_public_key_file=keys / "server.key")
    server = closing(Server(Stage(), "tcp://0.0.0.0:0", "tcp://0.0.0.0:0", **kwargs))
    port = server.rep_endpoint.rsplit(":", 1)[1]
    proxy = closing(Proxy(f"tcp://127.0.0.1:{port}", timeout=5, **pkw))
    assert proxy.move_by(1) == 1.0


def test_loopback_and_local_transports_need_nothing(monkeypatch, closing, tmp_path):
    monkeypatch.delenv("PZC_KEY", raising=False)
    for ep in ("tcp://127.0.0.1:5", "tcp://127.1.2.3:5", "tcp://localhost:5", "tcp://[::1]:5",
               "ipc:///tmp/x", "inproc://x"):
        assert is_loopback_endpoint(ep), ep
    for ep in ("tcp://0.0.0.0:5", "tcp://*:5", "tcp://192.168.1.2:5", "tcp://eth0:5", "tcp://[::]:5",
               "tcp://lab-pc.example:5"):
        assert not is_loopback_endpoint(ep), ep
    server = closing(Server(Stage(), f"ipc://{tmp_path}/rep", f"ipc://{tmp_path}/pub"))
    assert closing(Proxy(server.rep_endpoint, timeout=5)).move_by(3) == 3.0


# ---------------------------------------------------------------------- CURVE
class Relay:
    """A TCP relay that records every byte a client sends to a server (to look at the wire)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.captured = bytearray()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="test-relay")
        self.thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        peers = {}
        while not self.stopping:
            for key, _ in sel.select(0.05):
                s = key.fileobj
                if s is self.listener:
                    client, _ = s.accept()
                    upstream = socket.create_connection(("127.0.0.1", self.target))
                    peers[client], peers[upstream] = upstream, client
                    sel.register(client, selectors.EVENT_READ, "up")
                    sel.register(upstream, selectors.EVENT_READ, "down")
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                other = peers.get(s)
                if not data or other is None:
                    for x in (s, other):
                        if x is not None and x in peers:
                            sel.unregister(x)
                            peers.pop(x, None)
                            x.close()
                    continue
                if key.data == "up":
                    self.captured += data
                other.sendall(data)
        for s in list(peers):
            s.close()
        sel.close()
        self.listener.close()

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)


@pytest.mark.parametrize("encrypted", [True, False])
def test_curve_session_is_encrypted_on_the_wire(closing, tmp_path, qtbot, encrypted):
    keys, clients = _curve_keys(tmp_path)
    curve = CurveConfig(keys / "server.key_secret", clients) if encrypted else None
    client_curve = (CurveConfig(keys / "alice.key_secret", server_public_key_file=keys / "server.key")
                    if encrypted else None)
    stage = Stage()
    server = closing(Server(stage, curve=curve))
    relay = Relay(int(server.rep_endpoint.rsplit(":", 1)[1]))
    closing(relay)
    proxy = closing(Proxy(f"tcp://127.0.0.1:{relay.port}", timeout=5, curve=client_curve))
    got = []
    proxy.position_changed.connect(lambda new, old: got.append(new))
    secret = "the-sample-is-GOLD-7f3a"
    assert proxy.echo(secret) == ((secret,), {})
    proxy.position = 2.5
    qtbot.waitUntil(lambda: got == [2.5], timeout=5000)
    assert (secret.encode() in relay.captured) is (not encrypted)
    assert (b"PSMessage" in relay.captured) is (not encrypted)


def test_curve_unauthorised_client_is_refused_within_its_timeout(closing, tmp_path):
    keys, clients = _curve_keys(tmp_path)
    server = closing(Server(Stage(), curve=CurveConfig(keys / "server.key_secret", clients)))
    mallory = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "server.key")
    t0 = time.monotonic()
    with pytest.raises(ProtocolError) as info:
        Proxy(server.rep_endpoint, timeout=5, curve=mallory)
    assert str(info.value) == f"CURVE authentication refused by {server.rep_endpoint}"
    assert time.monotonic() - t0 < 5
    # same for a bare agent request; the server keeps serving allowed clients
    agent = closing(Agent(curve=mallory, _bind=False))
    with pytest.raises(ProtocolError, match="CURVE authentication refused"):
        agent.request(server.rep_endpoint, "info", timeout=5)
    alice = CurveConfig(keys / "alice.key_secret", server_public_key_file=keys / "server.key")
    assert closing(Proxy(server.rep_endpoint, timeout=5, curve=alice)).move_by(1) == 1.0
    # a client without CURVE cannot talk to it at all (no reply: the handshake never completes)
    with pytest.raises(RemoteTimeout):
        Proxy(server.rep_endpoint, timeout=0.5)
    # a key dropped into the directory is honoured without a restart
    shutil.copy(keys / "mallory.key", clients / "mallory.key")
    os.utime(clients, None)
    assert closing(Proxy(server.rep_endpoint, timeout=5, curve=mallory)).move_by(1) == 2.0


def test_curve_without_client_directory_admits_any_client_knowing_the_server_key(closing, tmp_path):
    keys, _ = _curve_keys(tmp_path)
    server = closing(Server(Stage(), curve=CurveConfig(keys / "server.key_secret")))
    anyone = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "server.key")
    assert closing(Proxy(server.rep_endpoint, timeout=5, curve=anyone)).echo(1) == ((1,), {})


def test_curve_serve_in_thread_and_two_servers_in_one_process(closing, tmp_path):
    """Two CURVE servers with different client policies share the process's one ZAP
    authenticator thread, which ends with the last of them."""
    from conftest import wait_until

    keys, clients = _curve_keys(tmp_path)
    proxy = Server.serve_in_thread(Stage, (4.0,), curve=CurveConfig(keys / "server.key_secret", clients))
    other = None
    try:
        assert proxy.position == 4.0
        other = Server(Stage(), curve=CurveConfig(keys / "alice.key_secret"))  # admits any client
        mallory = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "alice.key")
        assert closing(Proxy(other.rep_endpoint, timeout=5, curve=mallory)).echo(2) == ((2,), {})
        refused = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "server.key")
        with pytest.raises(ProtocolError):
            Proxy(proxy._proxy_endpoint, timeout=5, curve=refused)
        assert [t.name for t in threading.enumerate()].count("pizco-zap") == 1
    finally:
        proxy._proxy_stop_server()
        if other is not None:
            other.stop()
    wait_until(lambda: "pizco-zap" not in [t.name for t in threading.enumerate()])


def test_curve_client_with_the_wrong_server_key_is_told(closing, tmp_path):
    keys, _ = _curve_keys(tmp_path)
    server = closing(Server(Stage(), curve=CurveConfig(keys / "server.key_secret")))
    wrong = CurveConfig(keys / "alice.key_secret", server_public_key_file=keys / "mallory.key")
    t0 = time.monotonic()
    with pytest.raises(ProtocolError, match="CURVE authentication refused by .*server public key"):
        Proxy(server.rep_endpoint, timeout=5, curve=wrong)
    assert time.monotonic() - t0 < 5


def test_curve_config_errors(tmp_path):
    keys, clients = _curve_keys(tmp_path)
    with pytest.raises(PizcoError, match="no secret key"):
        CurveConfig(keys / "server.key")
    with pytest.raises(PizcoError, match="cannot read"):
        CurveConfig(tmp_path / "missing.key_secret")
    with pytest.raises(PizcoError, match="does not exist"):
        CurveConfig(keys / "server.key_secret", tmp_path / "nowhere")
    assert "server.key_secret" in repr(CurveConfig(keys / "server.key_secret"))


# ---------------------------------------------------------------------- CURVE from the command lines
def test_curve_options_of_pizco_server(spawn, tmp_path):
    """pizco-server --curve-secret/--curve-clients: allowed client served, others refused, bad options exit 2."""
    from childproc import HERE, server_argv

    keys, clients = _curve_keys(tmp_path)
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "objects:Stage", "--args", "(5.0,)", "-p", HERE,
                              "--curve-secret", str(keys / "server.key_secret"), "--curve-clients", str(clients)))
    rep, _ = child.ready()
    alice = CurveConfig(keys / "alice.key_secret", server_public_key_file=keys / "server.key")
    proxy = Proxy(rep, timeout=5, curve=alice)
    try:
        assert proxy.position == 5.0
    finally:
        proxy._proxy_stop_me()
    mallory = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "server.key")
    with pytest.raises(ProtocolError, match="CURVE authentication refused"):
        Proxy(rep, timeout=5, curve=mallory)
    for bad, message in (
            (("--curve-clients", str(clients)), "need --curve-secret"),
            (("--curve-secret", str(keys / "server.key")), "no secret key"),
            (("--curve-secret", str(keys / "server.key_secret"), "--curve-clients", str(tmp_path / "no")),
             "does not exist")):
        wrong = spawn(server_argv("tcp://127.0.0.1:0", *bad))
        assert wrong.wait(30) == 2
        assert message in "\n".join(wrong.stderr)


def test_curve_on_a_network_endpoint_needs_no_opt_in(spawn, tmp_path):
    from childproc import server_argv

    keys, clients = _curve_keys(tmp_path)
    child = spawn(server_argv("tcp://0.0.0.0:0", "--curve-secret", str(keys / "server.key_secret")))
    rep, _ = child.ready()
    port = rep.rsplit(":", 1)[1]
    anyone = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "server.key")
    agent = Agent(curve=anyone, _bind=False)
    try:
        assert agent.request(f"tcp://127.0.0.1:{port}", "info", timeout=5)["rep_endpoint"] == rep
    finally:
        agent.stop()


def test_curve_serve_in_process(tmp_path):
    keys, clients = _curve_keys(tmp_path)
    proxy = Server.serve_in_process(Stage, (6.0,), curve=CurveConfig(keys / "server.key_secret", clients))
    try:
        assert proxy.position == 6.0
        mallory = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "server.key")
        with pytest.raises(ProtocolError, match="CURVE authentication refused"):
            Proxy(proxy._proxy_endpoint, timeout=5, curve=mallory)
    finally:
        proxy._proxy_stop_server()


def test_curve_options_of_pizco_monitor(qtbot, closing, tmp_path, monkeypatch):
    """pizco-monitor's --curve-* options build the CurveConfig its proxies use; the window then
    shows a CURVE server that refuses every other client."""
    from qtpy import QtCore

    from pizco_qt import registry
    from pizco_qt.apps.monitor import MonitorWindow
    from pizco_qt.apps.monitor.__main__ import build_parser
    from pizco_qt.security import curve_from_args

    keys, clients = _curve_keys(tmp_path)
    parser = build_parser()
    args = parser.parse_args(["--curve-secret", str(keys / "alice.key_secret"),
                              "--curve-server", str(keys / "server.key")])
    curve = curve_from_args(parser, args, "client")
    assert curve.is_client and curve.secret_key_file == str(keys / "alice.key_secret")
    with pytest.raises(SystemExit):
        curve_from_args(parser, parser.parse_args(["--curve-secret", str(keys / "alice.key_secret")]), "client")

    settings = tmp_path / "settings"
    settings.mkdir()
    QtCore.QSettings.setPath(QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(settings))
    reg = closing(registry.serve_registry("tcp://127.0.0.1:0"))
    monkeypatch.setenv("PZC_REGISTRY", reg.rep_endpoint)
    stage = Stage(8.5)
    server = closing(Server(stage, curve=CurveConfig(keys / "server.key_secret", clients)))
    window = MonitorWindow(reg.rep_endpoint, timeout=5, proxy_kwargs={"curve": curve})
    qtbot.addWidget(window)
    try:
        window.add_endpoint(server.rep_endpoint, remember=False)
        qtbot.waitUntil(lambda: window.server_model.entry(server.rep_endpoint).state == "online", timeout=15000)
        window.select_server(server.rep_endpoint)
        qtbot.waitUntil(lambda: "position" in window.attribute_model.names(), timeout=15000)
    finally:
        window.close()


def test_curve_authenticator_restarted_right_after_the_last_one_stopped(tmp_path):
    """The ZAP endpoint of a stopped authenticator is released asynchronously: no 'address in use'."""
    from pizco_qt import iothread
    from pizco_qt.security import register_curve_server, unregister_curve_server

    keys, _ = _curve_keys(tmp_path)
    curve = CurveConfig(keys / "server.key_secret")
    for _ in range(50):  # each stop is the last one, each register starts a new authenticator
        unregister_curve_server(register_curve_server(curve, iothread.context()))
