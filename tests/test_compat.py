"""Drop-in compatibility with programs written for the original Pizco.

Each test follows the original's documented API: the raw protocol
(``Protocol.HEADER``, ``format``, ``parse``), the base agent's echo and its
``subscribers`` counter, ``(host, port)`` endpoints, slots written for three
values (value, old value, other), remote methods used as slots, temporary
proxies and the original's keyword arguments.
"""
from __future__ import annotations

import gc
import hashlib
import hmac
import pickle
import sys
import threading
import weakref

import pytest
import zmq

from conftest import wait_until_turning as wait_until
from objects import Stage
from pizco_qt import Agent, Protocol, ProtocolError, Proxy, Server, Signal
from pizco_qt.endpoints import normalize, normalize_optional
from pizco_qt.signals import fit_args, params_from_signature

LOCAL = "127.0.0.1"


def in_plain_thread(fn):
    """Run ``fn()`` in a new plain thread (no Qt loop: its slots run on the dispatcher)."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def io_users():
    from pizco_qt import iothread

    return iothread._users


def live_agents():
    from pizco_qt import agent

    return len(agent._live_agents)


# ====================================================================== 1, 2: Protocol
ran = []


class Tripwire:
    """Records in ``ran`` when unpickled: proves that a content was (not) deserialized."""

    def __reduce__(self):
        return (ran.append, ("unpickled",))


def test_protocol_header_and_just_header():
    assert Protocol.HEADER == "PZC00"
    assert Protocol().HEADER == "PZC00"
    assert Protocol().format("tcp://127.0.0.1:5000", "moved", just_header=True) == b"PZC00+tcp://127.0.0.1:5000+moved"


@pytest.mark.parametrize("serializer", ["pickle", "pickle2", "json"])
@pytest.mark.parametrize("key", ["", "s3cret"])
def test_format_parse_round_trip(key, serializer):
    proto = Protocol(key, serializer)
    content = {"value": [1, 2.5, "three"]}
    frames = proto.format("agent-a", "news", content)
    assert isinstance(frames, list) and len(frames) == 5 and all(isinstance(f, bytes) for f in frames)
    assert frames[0] == b"PZC00+agent-a+news"
    assert frames[1] == serializer.encode()
    if key:  # the raw HMAC-SHA1 of frames 0-3 concatenated, as the original documents it
        assert frames[4] == hmac.new(key.encode(), b"".join(frames[:4]), hashlib.sha1).digest()
    else:
        assert frames[4] == b""
    sender, topic, got, msgid = proto.parse(frames)
    assert (sender, topic, got) == ("agent-a", "news", content)
    assert msgid == frames[3].decode()
    assert proto.parse(frames, check_sender="agent-a", check_msgid=msgid)[2] == content
    # a new message id for every message; a given one is kept
    assert proto.format("agent-a", "news", content)[3] != frames[3]
    assert proto.parse(proto.format("a", "", "x", msgid="id-7"))[3] == "id-7"


def test_format_is_a_thin_wrapper_over_encode():
    proto = Protocol("k")
    assert proto.format("s", "t", (1, 2), "m-1") == proto.encode("s", "t", (1, 2), "m-1")
    assert proto.parse(proto.encode("s", "t", (1, 2), "m-1")) == tuple(proto.decode(
        proto.encode("s", "t", (1, 2), "m-1")))[:2] + ((1, 2), "m-1")
    # the defaults of the original: empty topic and content
    assert proto.parse(proto.format("s"))[:3] == ("s", "", "")


def _tampered(kind):
    key = Protocol("key")
    frames = key.format("sender", "topic", Tripwire(), "id-1")
    if kind == "too few frames":
        return key, frames[:4], {}
    if kind == "too many frames":
        return key, frames + [b"extra"], {}
    if kind == "content changed":
        frames[2] = frames[2][:-1] + bytes([frames[2][-1] ^ 1])
        return key, frames, {}
    if kind == "signed with another key":
        return key, Protocol("other").format("sender", "topic", Tripwire(), "id-1"), {}
    if kind == "unsigned":
        return key, Protocol("").format("sender", "topic", Tripwire(), "id-1"), {}
    if kind == "wrong header":
        plain = Protocol("")
        frames = plain.format("sender", "topic", 1)
        frames[0] = b"PZC01+sender+topic"
        return plain, frames, {}
    if kind == "undecodable content":
        plain = Protocol("")
        frames = plain.format("sender", "topic", 1)
        frames[2] = b"\x80\x05not a pickle"
        return plain, frames, {}
    if kind == "undecodable json":
        plain = Protocol("", "json")
        frames = plain.format("sender", "topic", 1)
        frames[2] = b"{not json"
        return plain, frames, {}
    if kind == "other sender":
        return key, frames, {"check_sender": "someone-else"}
    if kind == "other msgid":
        return key, frames, {"check_msgid": "id-2"}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["too few frames", "too many frames", "content changed", "signed with another key",
                                  "unsigned", "wrong header", "undecodable content", "undecodable json",
                                  "other sender", "other msgid"])
def test_parse_rejects_tampered_messages_with_value_error(kind):
    proto, frames, checks = _tampered(kind)
    ran.clear()
    with pytest.raises(ValueError) as info:
        proto.parse(frames, **checks)
    assert isinstance(info.value, ProtocolError)
    if kind not in ("other sender", "other msgid"):
        assert ran == [], "a rejected message's content was deserialized"


def test_format_refuses_what_it_cannot_build():
    proto = Protocol()
    with pytest.raises(ValueError, match=r"\+"):
        proto.format("a+b", "t", 1)
    with pytest.raises(ValueError, match=r"\+"):
        proto.format("a", "t+1", 1)
    with pytest.raises(ValueError, match="serialize"):
        proto.format("a", "t", threading.Lock())
    with pytest.raises(ValueError, match="serialize"):
        Protocol("", "json").format("a", "t", object())


def test_protocol_error_is_a_value_error():
    import pizco_qt

    assert issubclass(pizco_qt.ProtocolError, ValueError)
    try:  # the original's callers catch ValueError
        Protocol().parse([b"just one frame"])
    except ValueError as exc:
        assert isinstance(exc, pizco_qt.ProtocolError)
    else:
        raise AssertionError("parse accepted one frame")


# ====================================================================== 3: the base agent echoes
def test_base_agent_echoes_unknown_requests_and_answers_info(closing):
    server = closing(Agent())
    client = closing(Agent())
    assert client.request(server.rep_endpoint, {"any": [1, 2]}) == {"any": [1, 2]}
    assert client.request(server.rep_endpoint, ("PSMessage", "exec", {})) == ("PSMessage", "exec", {})
    assert client.request(server.rep_endpoint, None) is None
    info = client.request(server.rep_endpoint, "info")
    assert info["rep_endpoint"] == server.rep_endpoint and info["pub_endpoint"] == server.pub_endpoint


def test_agent_request_reply_over_a_raw_req_socket(closing):
    """An original peer talks to an agent with a REQ socket and Protocol.format/parse."""
    server = closing(Agent())
    proto = Protocol()
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        req.connect(server.rep_endpoint)
        frames = proto.format("raw-client", "", [3, "echo"])
        req.send_multipart(frames)
        sender, topic, content, msgid = proto.parse(req.recv_multipart(), check_sender=server.rep_endpoint,
                                                    check_msgid=frames[3].decode())
        assert content == [3, "echo"]
    finally:
        req.close()


def test_agent_stop_request_still_stops_it(closing):
    server = Agent()
    client = closing(Agent())
    assert client.request(server.rep_endpoint, "stop") == "stopping"
    wait_until(lambda: server.stopped)
    server.stop()


# ====================================================================== 4: agent.subscribers
class Counting(Agent):
    def __init__(self, *a, **kw):
        self.events = []
        super().__init__(*a, **kw)

    def on_subscribe(self, topic, count):
        self.events.append(("+", topic, count))

    def on_unsubscribe(self, topic, count):
        self.events.append(("-", topic, count))


def test_subscribers_counts_raw_sub_sockets_and_is_read_only(closing):
    agent = closing(Counting())
    proto = Protocol()
    ctx = zmq.Context.instance()
    subs = []
    try:
        for _ in range(2):
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVTIMEO, 5000)
            sub.connect(agent.pub_endpoint)
            sub.setsockopt(zmq.SUBSCRIBE, proto.format(agent.rep_endpoint, "level", just_header=True))
            subs.append(sub)
        view = agent.subscribers
        wait_until(lambda: view["level"] == 2)  # a live view: the same object follows the changes
        assert dict(agent.subscribers) == {"level": 2}
        assert agent.events == [("+", "level", 1), ("+", "level", 2)]
        assert agent.subscribers["nobody"] == 0 and "nobody" not in agent.subscribers
        with pytest.raises(TypeError):
            agent.subscribers["level"] = 5
        assert view["level"] == 2

        agent.publish("level", (1.5, None))
        sender, topic, content, _ = proto.parse(subs[0].recv_multipart(), check_sender=agent.rep_endpoint)
        assert (topic, content) == ("level", (1.5, None))

        subs[0].setsockopt(zmq.UNSUBSCRIBE, proto.format(agent.rep_endpoint, "level", just_header=True))
        wait_until(lambda: view["level"] == 1)
        subs[1].close()
        subs.pop()
        wait_until(lambda: "level" not in view)
        assert view["level"] == 0 and len(view) == 0
        assert agent.events[2:] == [("-", "level", 1), ("-", "level", 0)]
    finally:
        for sub in subs:
            sub.close()


def test_subscribers_of_a_server_leave_out_pizco_qt_topics(served):
    server, proxy = served(Stage())
    assert dict(server.subscribers) == {}  # the proxy's heartbeat and futures subscriptions are not listed
    proxy.moved.connect(print)
    wait_until(lambda: server.subscribers["moved"] == 1)
    assert dict(server.subscribers) == {"moved": 1}


# ====================================================================== 5: (host, port) endpoints
@pytest.mark.parametrize("given, expected", [
    (("127.0.0.1", 5555), "tcp://127.0.0.1:5555"),
    (["localhost", 0], "tcp://localhost:0"),
    (("::1", 7), "tcp://[::1]:7"),
    (("127.0.0.1", "8000"), "tcp://127.0.0.1:8000"),
    ("inproc://stage", "inproc://stage"),
    ("tcp://*:5555", "tcp://*:5555"),
])
def test_normalize(given, expected):
    assert normalize(given) == expected


@pytest.mark.parametrize("bad, error", [
    (("127.0.0.1",), ValueError), (("127.0.0.1", 1, 2), ValueError), (("", 80), ValueError),
    (("127.0.0.1", 70000), ValueError), (("127.0.0.1", -1), ValueError), (("127.0.0.1", 1.5), TypeError),
    (("127.0.0.1", True), TypeError), (5555, TypeError), (None, TypeError), (b"tcp://x:1", TypeError),
])
def test_normalize_refuses_what_is_not_an_endpoint(bad, error):
    with pytest.raises(error, match="endpoint|port|host"):
        normalize(bad)


def test_normalize_optional_defaults():
    assert normalize_optional(None, "tcp://127.0.0.1:0") == "tcp://127.0.0.1:0"
    assert normalize_optional("", "d") == "d"
    assert normalize_optional((LOCAL, 0), "d") == "tcp://127.0.0.1:0"


def test_tuple_endpoints_for_server_proxy_and_agent(closing):
    server = closing(Server(Stage(), (LOCAL, 0), [LOCAL, 0]))
    assert server.rep_endpoint.startswith("tcp://127.0.0.1:") and not server.rep_endpoint.endswith(":0")
    assert server.pub_endpoint.startswith("tcp://127.0.0.1:") and not server.pub_endpoint.endswith(":0")
    port = int(server.rep_endpoint.rsplit(":", 1)[1])
    proxy = closing(Proxy((LOCAL, port), timeout=5))
    assert proxy.position == 0.0 and proxy._proxy_endpoint == server.rep_endpoint

    agent = closing(Agent(rep_endpoint=(LOCAL, 0), pub_endpoint=(LOCAL, 0)))
    assert agent.rep_endpoint.startswith("tcp://127.0.0.1:")
    client = closing(Agent())
    assert client.request((LOCAL, int(agent.rep_endpoint.rsplit(":", 1)[1])), "hello") == "hello"

    got = []
    pub_port = int(agent.pub_endpoint.rsplit(":", 1)[1])
    rep_port = int(agent.rep_endpoint.rsplit(":", 1)[1])
    in_plain_thread(lambda: client.subscribe((LOCAL, rep_port), "t", lambda *a: got.append(a[1:3]),
                                             (LOCAL, pub_port)))
    wait_until(lambda: agent.subscribers["t"] == 1)
    agent.publish("t", 42)
    wait_until(lambda: got == [("t", 42)])
    client.unsubscribe((LOCAL, rep_port), "t", (LOCAL, pub_port))
    wait_until(lambda: agent.subscribers["t"] == 0)


def test_bad_endpoints_fail_clearly_and_leave_nothing(closing):
    before = live_agents()
    with pytest.raises(TypeError, match="endpoint"):
        Server(Stage(), 5555)
    with pytest.raises(ValueError, match="endpoint"):
        Agent(("127.0.0.1",))
    with pytest.raises(TypeError, match="endpoint"):
        Proxy(None)
    with pytest.raises(TypeError, match="endpoint"):
        Server.serve_in_process(Stage, (), {}, 8000)
    assert live_agents() == before


def test_tuple_endpoints_for_serve_in_thread_and_the_registry(reg_server):
    from pizco_qt import registry

    reg_port = int(reg_server.rep_endpoint.rsplit(":", 1)[1])
    proxy = Server.serve_in_thread(Stage, (4.0,), {}, (LOCAL, 0), (LOCAL, 0), name="compat-stage")
    try:
        assert proxy.position == 4.0
        entry = registry.lookup("compat-stage", (LOCAL, reg_port))
        assert entry["rep_endpoint"] == proxy._proxy_endpoint
        by_name = Proxy.from_name("compat-stage", registry=(LOCAL, reg_port), timeout=5)
        try:
            assert by_name.position == 4.0
        finally:
            by_name._proxy_stop_me()
    finally:
        proxy._proxy_stop_server()


def test_tuple_endpoint_for_a_registry_server():
    from pizco_qt import registry

    server = registry.serve_registry((LOCAL, 0))
    try:
        assert server.rep_endpoint.startswith("tcp://127.0.0.1:") and not server.rep_endpoint.endswith(":0")
        reg = registry.registry_proxy((LOCAL, int(server.rep_endpoint.rsplit(":", 1)[1])))
        try:
            assert reg.servers() == []
        finally:
            reg._proxy_stop_me()
    finally:
        server.stop()


# ====================================================================== 6: slots that want three values
def test_fit_args():
    assert fit_args((1,), 3, 3) == (1, None, None)
    assert fit_args((1, 2), 3, 3) == (1, 2, None)
    assert fit_args((1,), 2, 3) == (1, None)
    assert fit_args((1,), 1, 3) == (1,)  # parameters with defaults keep them
    assert fit_args((1, 2, 3, 4), 3, 3) == (1, 2, 3)  # never more than accepted
    assert fit_args((1, 2), 0, None) == (1, 2)  # *args: exactly what was emitted
    assert fit_args((), 5, 5) == (None, None, None)  # up to three in all
    assert fit_args((1, 2, 3), 4, 4) == (1, 2, 3)


class Watcher:
    """A callable object written the Pizco way."""

    def __init__(self):
        self.calls = []

    def __call__(self, value, old_value, other):
        self.calls.append((value, old_value, other))


def test_local_signal_pads_like_the_original():
    sig = Signal()
    got = []
    sig.connect(lambda value, old_value, other: got.append(("three", value, old_value, other)))
    sig.connect(lambda *args: got.append(("star",) + args))
    sig.connect(lambda value: got.append(("one", value)))
    sig.emit(7)
    assert got == [("three", 7, None, None), ("star", 7), ("one", 7)]


def test_three_parameter_slots_on_a_one_argument_emission_in_a_plain_thread(served):
    server, proxy = served(Stage())
    got = []

    def on_change(value, old_value, other):
        got.append(("function", value, old_value, other))

    def star(*args):
        got.append(("star",) + args)

    def two_required(value, old_value, other="default"):
        got.append(("two", value, old_value, other))

    watcher = Watcher()

    def connect_all():
        for slot in (on_change, star, two_required, watcher):
            proxy.many.connect(slot)

    in_plain_thread(connect_all)  # delivered on the dispatcher thread
    server.served_object.emit_many(1)  # many.emit(0): one argument
    wait_until(lambda: len(got) == 3 and watcher.calls)
    assert sorted(got) == sorted([("function", 0, None, None), ("star", 0), ("two", 0, None, "default")])
    assert watcher.calls == [(0, None, None)]


def test_original_example_client_slots_on_a_two_value_emission(served):
    """The seed's MultiplyBy emits (new, old); a slot written for (value, old_value, other) gets other=None."""
    sys.path.insert(0, _examples())
    try:
        from example import MultiplyBy
    finally:
        sys.path.remove(_examples())
    server, proxy = served(MultiplyBy(2))
    got = []

    def on_factor_changed(value, old_value, other):
        got.append((value, old_value, other))

    in_plain_thread(lambda: proxy.factor_changed.connect(on_factor_changed))
    for n in (3, 4):
        proxy.factor = n
    wait_until(lambda: len(got) == 2)
    assert got == [(3, 2, None), (4, 3, None)]
    assert proxy.calculate(8) == 32


def _examples():
    import os

    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def test_gui_thread_slots_and_qobject_methods_get_three_values(qtbot, served):
    from qtpy import QtCore

    class Panel(QtCore.QObject):
        def __init__(self):
            super().__init__()
            self.changes = []
            self.decorated_calls = []

        def on_change(self, value, old_value, other):
            self.changes.append((value, old_value, other, QtCore.QThread.currentThread()))

        @QtCore.Slot(object, object, object)
        def decorated(self, value, old_value, other):
            self.decorated_calls.append((value, old_value, other))

    server, proxy = served(Stage())
    panel = Panel()
    got = []
    proxy.many.connect(panel.on_change)
    proxy.many.connect(panel.decorated)
    proxy.many.connect(lambda value, old, other: got.append((value, old, other)))
    server.served_object.emit_many(1)
    qtbot.waitUntil(lambda: bool(panel.changes and panel.decorated_calls and got), timeout=10_000)
    gui = QtCore.QCoreApplication.instance().thread()
    value, old, other, thread = panel.changes[0]
    assert (value, old, other) == (0, None, None) and (thread is gui or thread == gui)
    assert panel.decorated_calls == [(0, None, None)]
    assert got == [(0, None, None)]


def test_fewer_parameters_still_get_the_leading_arguments(served):
    server, proxy = served(Stage())
    got = []
    in_plain_thread(lambda: proxy.position_changed.connect(lambda new: got.append(new)))
    proxy.position = 2
    wait_until(lambda: got == [2.0])


# ====================================================================== 7: remote methods as slots
class Display:
    """A second served object whose methods are used as slots of another server's signal."""

    def __init__(self):
        self.shown = []

    def refresh(self, value):
        self.shown.append(("refresh", value))

    def record(self, *args):
        self.shown.append(("record",) + args)

    def three(self, value, old_value, other):
        self.shown.append(("three", value, old_value, other))


def test_remote_method_as_slot_gets_what_its_signature_accepts(served):
    _, stage = served(Stage())
    display_server, display = served(Display())
    shown = display_server.served_object.shown
    in_plain_thread(lambda: (stage.position_changed.connect(display.refresh),
                             stage.position_changed.connect(display.record),
                             stage.many.connect(display.three)))
    stage.position = 3  # emits (3.0, 0.0)
    stage.emit_many(1)  # emits (0,)
    wait_until(lambda: len(shown) == 3)
    assert sorted(shown, key=str) == sorted([("refresh", 3.0), ("record", 3.0, 0.0), ("three", 0, None, None)],
                                            key=str)
    # a new attribute of the same method is the same slot
    stage.position_changed.disconnect(display.refresh)
    stage.position = 4
    wait_until(lambda: len(shown) == 4)
    assert shown[-1] == ("record", 4.0, 3.0)


class Instrument:
    """A served object whose property reads touch the hardware (counted)."""

    def __init__(self):
        self.reads = 0
        self.shown = []

    @property
    def voltage(self):
        self.reads += 1
        return 1.0

    def show(self, value):
        self.shown.append(value)


def test_learning_a_remote_slot_signature_reads_no_property(served):
    """``describe`` is asked about the slot's method only: no property of the served object runs."""
    _, stage = served(Stage())
    inst_server, inst = served(Instrument())
    obj = inst_server.served_object
    in_plain_thread(lambda: stage.position_changed.connect(inst.show))
    stage.position = 1
    wait_until(lambda: obj.shown == [1.0])
    assert obj.reads == 0
    everything = inst._proxy_describe()  # the full description does read it
    assert everything["voltage"]["kind"] == "attribute" and obj.reads == 1


class Undescribed(Server):
    """A server that advertises nothing beyond the original protocol (no ``describe``)."""

    def _info(self):
        info = super()._info()
        info["capabilities"] = []
        return info


def test_remote_method_without_a_known_signature_gets_all_arguments(closing, served):
    _, stage = served(Stage())
    display_server = closing(Undescribed(Display()))
    display = closing(Proxy(display_server.rep_endpoint, timeout=5))
    shown = display_server.served_object.shown
    in_plain_thread(lambda: stage.position_changed.connect(display.record))
    stage.position = 5
    wait_until(lambda: shown == [("record", 5.0, 0.0)])


@pytest.mark.parametrize("text, expected", [
    ("(value)", (1, 1)), ("(value, old=None, other=None)", (1, 3)), ("(*args, **kwargs)", (0, None)),
    ("(a, b, /, c=1, *, d)", (2, 3)), ("(x: int = 3) -> None", (0, 1)), ("()", (0, 0)),
    ("(x=<object object at 0x7f>)", (0, None)), ("(...)", (0, None)), (None, (0, None)),
    ("(x=__import__('os').system('false'))", (0, 1)),  # parsed, never evaluated
])
def test_params_from_signature(text, expected):
    assert params_from_signature(text) == expected


# ====================================================================== 8: temporary proxies
def test_temporary_proxy_calls_items_and_futures(served):
    server, _ = served(Stage())
    ep = server.rep_endpoint
    users = io_users()
    assert Proxy(ep, timeout=5).move_by(2) == 2.0
    assert Proxy(ep, timeout=5).settings["units"] == "mm"
    assert Proxy(ep, timeout=5).later.future(21).result(5) == 42
    assert Proxy(ep, timeout=5).echo.future("x").result(5) == (("x",), {})
    gc.collect()
    wait_until(lambda: io_users() == users)  # each closed itself once unused


def test_temporary_proxy_future_keeps_it_until_resolved(served):
    server, _ = served(Stage())
    users = io_users()
    fut = Proxy(server.rep_endpoint, timeout=5).pending_future.future()
    wait_until(lambda: hasattr(server.served_object, "last_future"))
    gc.collect()
    assert io_users() == users + 1 and not fut.done()
    server.served_object.last_future.set_result("late")
    assert fut.result(5) == "late"
    gc.collect()
    wait_until(lambda: io_users() == users)


def test_temporary_proxy_connection_lives_until_disconnected(served):
    server, _ = served(Stage())
    users, threads = io_users(), threading.active_count()
    got = []
    proxy = Proxy(server.rep_endpoint, timeout=5)
    ref = weakref.ref(proxy)
    in_plain_thread(lambda: Proxy(server.rep_endpoint, timeout=5).many.connect(got.append))
    del proxy
    gc.collect()
    assert ref() is None  # a proxy nothing uses is gone
    wait_until(lambda: server.subscribers["many"] == 1)
    server.served_object.emit_many(2)
    wait_until(lambda: got == [0, 1])
    assert io_users() == users + 1

    # find the temporary proxy again (only its connection holds it) and disconnect
    holders = [o for o in gc.get_objects() if isinstance(o, Proxy) and o._proxy_core.connection_count("many")]
    assert len(holders) == 1
    temp = weakref.ref(holders[0])
    del holders
    temp().many.disconnect(got.append)
    gc.collect()
    assert temp() is None
    wait_until(lambda: io_users() == users)
    wait_until(lambda: server.subscribers["many"] == 0)
    wait_until(lambda: threading.active_count() <= threads)


def test_temporary_proxy_connection_ends_when_stopped_explicitly(served):
    server, _ = served(Stage())
    users = io_users()
    got = []
    attr = Proxy(server.rep_endpoint, timeout=5).many
    in_plain_thread(lambda: attr.connect(got.append))
    temp = weakref.ref(attr._proxy)
    del attr
    gc.collect()
    assert temp() is not None
    temp()._proxy_stop_me()
    gc.collect()
    assert temp() is None
    wait_until(lambda: io_users() == users)
    wait_until(lambda: server.subscribers["many"] == 0)


def test_a_connection_through_a_qobject_method_ends_with_the_qobject(qtbot, served):
    from qtpy import QtCore

    class Panel(QtCore.QObject):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_many(self, value):
            self.calls.append(value)

    server, _ = served(Stage())
    users = io_users()
    panel = Panel()
    attr = Proxy(server.rep_endpoint, timeout=5).many
    attr.connect(panel.on_many)
    temp = weakref.ref(attr._proxy)
    del attr
    server.served_object.emit_many(1)
    qtbot.waitUntil(lambda: panel.calls == [0], timeout=10_000)
    panel.deleteLater()
    qtbot.waitUntil(lambda: (gc.collect(), temp() is None)[1], timeout=10_000)
    wait_until(lambda: io_users() == users)


# ====================================================================== 9: the original's keyword arguments
def test_original_keyword_arguments(closing):
    proto = Protocol(hmac_key="lab", serializer="json")
    agent = closing(Agent(rep_endpoint="tcp://127.0.0.1:0", pub_endpoint="tcp://127.0.0.1:0", protocol=proto))
    client = closing(Agent(protocol=Protocol(hmac_key="lab", serializer="json")))
    assert client.request(recipient=agent.rep_endpoint, content=[1]) == [1]
    got = []
    in_plain_thread(lambda: client.subscribe(rep_endpoint=agent.rep_endpoint, topic="t",
                                             callback=lambda sender, topic, content, msgid: got.append(content),
                                             pub_endpoint=agent.pub_endpoint))
    wait_until(lambda: agent.subscribers["t"] == 1)
    agent.publish(topic="t", content="x")
    wait_until(lambda: got == ["x"])
    client.unsubscribe(rep_endpoint=agent.rep_endpoint, topic="t", pub_endpoint=agent.pub_endpoint)

    server = closing(Server(served_object=Stage(), rep_endpoint="tcp://127.0.0.1:0",
                            pub_endpoint="tcp://127.0.0.1:0"))
    proxy = closing(Proxy(rep_endpoint=server.rep_endpoint))
    assert proxy.position == 0.0
    in_thread = Server.serve_in_thread(served_cls=Stage, args=(1.0,), kwargs={}, rep_endpoint="tcp://127.0.0.1:0",
                                       pub_endpoint="tcp://127.0.0.1:0")
    try:
        assert in_thread.position == 1.0
    finally:
        in_thread._proxy_stop_server()


def test_serve_in_process_with_the_original_keywords_and_a_tuple_endpoint():
    proxy = Server.serve_in_process(Stage, args=(2.5,), kwargs={}, rep_endpoint=(LOCAL, 0),
                                    pub_endpoint=None, verbose=False, gui=False)
    try:
        assert proxy.position == 2.5
        assert proxy._proxy_endpoint.startswith("tcp://127.0.0.1:")
        empty = Server(None)  # and the original's way to fill an empty server
        try:
            other = Proxy(empty.rep_endpoint, timeout=5)
            other._proxy_agent.instantiate(Stage, args=(6.0,), kwargs={})
            assert other.position == 6.0
            other._proxy_stop_me()
        finally:
            empty.stop()
    finally:
        proxy._proxy_stop_server()
