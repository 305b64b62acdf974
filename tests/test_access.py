"""Who may control a server: reads and writes, observers and controllers, exclusive control."""
from __future__ import annotations

import gc
import getpass
import inspect
import logging
import os
import pickle
import shutil
import signal
import socket
import sys
import time
import uuid

import pytest
import zmq
import zmq.auth

from childproc import spawn  # noqa: F401  (a fixture)
from conftest import wait_until
from pizco_qt import AccessDenied, Locked, Protocol, Proxy, Server, Signal, readonly
from pizco_qt.security import CurveConfig
from qtpy import QtWidgets


class Instrument:
    """A served object that counts every call that changes it: refused requests must not run."""

    changed = Signal()

    def __init__(self):
        self.value = 1
        self.table = {"a": 1}
        self.writes = 0
        self.reads = 0

    def set_value(self, v):
        """Change the value."""
        self.writes += 1
        self.value = v
        self.changed.emit(v)

    @readonly
    def measure(self, scale: float = 1.0) -> float:
        """Read the value (a read: observers may call it)."""
        self.reads += 1
        return self.value * scale

    def state(self):
        return (self.value, dict(self.table), self.writes)


def refused_writes(proxy):
    """Every kind of write a proxy can send, each as a thunk."""
    return {
        "setattr": lambda: setattr(proxy, "value", 99),
        "call": lambda: proxy.set_value(99),
        "future": lambda: proxy.set_value.future(99).result(5),
        "setitem": lambda: proxy.table.__setitem__("a", 99),
        "delitem": lambda: proxy.table.__delitem__("a"),
        "emit": lambda: proxy.changed.emit(99),
        "other method": lambda: proxy.table.clear(),
    }


def assert_all_refused(proxy, obj, error=AccessDenied, reason=None):
    before = (obj.value, dict(obj.table), obj.writes)
    for what, thunk in refused_writes(proxy).items():
        with pytest.raises(error) as info:
            thunk()
        assert isinstance(info.value, PermissionError), what
        if reason is not None:
            assert info.value.reason == reason, what
        assert (obj.value, dict(obj.table), obj.writes) == before, f"{what} ran"


# ---------------------------------------------------------------------- @readonly
def test_readonly_changes_nothing_else_about_the_method():
    def measure(self, scale: float = 1.0) -> float:
        """Doc."""

    marked = readonly(measure)
    assert marked is measure
    assert marked.__name__ == "measure" and marked.__doc__ == "Doc."
    assert list(inspect.signature(marked).parameters) == ["self", "scale"]
    assert inspect.signature(marked).parameters["scale"].default == 1.0
    assert Instrument.measure.__name__ == "measure" and Instrument.measure.__doc__.startswith("Read")
    with pytest.raises(TypeError):
        readonly(42)


def test_readonly_works_on_qt_slots_in_either_order(qapp):
    from qtpy import QtCore

    from pizco_qt.access import is_readonly

    class Meter(QtCore.QObject):
        @readonly
        @QtCore.Slot(result=int)
        def first(self):
            return 1

        @QtCore.Slot(result=int)
        @readonly
        def second(self):
            return 2

        @QtCore.Slot()
        def plain(self):
            pass

        @staticmethod
        @readonly
        def static():
            return 3

    m = Meter()
    assert is_readonly(m, "first") and is_readonly(m, "second") and is_readonly(m, "static")
    assert not is_readonly(m, "plain") and not is_readonly(m, "missing")
    assert m.metaObject().indexOfMethod("first()") >= 0 and m.metaObject().indexOfMethod("second()") >= 0


def test_requests_are_classified_as_reads_or_writes():
    from pizco_qt.access import is_write

    obj = Instrument()
    reads = ["info", ("PSMessage", "get", {"name": "value"}), ("PSMessage", "getattr", {"name": "value"}),
             ("PSMessage", "getmany", {"names": ["value"]}), ("PSMessage", "describe", {}),
             ("PSMessage", "inspect", {}), ("PSMessage", "lock_holder", {}),
             ("PSMessage", "exec", {"name": "table", "method": "__getitem__", "args": ("a",)}),
             ("PSMessage", "exec", {"name": "table", "method": "__contains__", "args": ("a",)}),
             ("PSMessage", "exec", {"name": "table", "method": "__len__"}),
             ("PSMessage", "exec", {"name": "measure", "method": "__call__"}),
             ("PSMessage", "cancel", {"msgid": "mine"})]
    writes = ["stop", ("PSMessage", "setattr", {"name": "value", "value": 2}),
              ("PSMessage", "exec", {"name": "set_value", "method": "__call__", "args": (2,)}),
              ("PSMessage", "exec", {"name": "table", "method": "__setitem__", "args": ("a", 2)}),
              ("PSMessage", "exec", {"name": "table", "method": "__delitem__", "args": ("a",)}),
              ("PSMessage", "exec", {"name": "changed", "method": "emit", "args": (2,)}),
              ("PSMessage", "exec", {"name": "measure", "method": "__getattribute__", "args": ("x",)}),
              ("PSMessage", "instantiate", {"class": "x.Y"}), ("PSMessage", "cancel", {"msgid": "theirs"}),
              ("PSMessage", "lock", {}), ("PSMessage", "unlock", {})]
    mine = lambda msgid: msgid == "mine"  # noqa: E731
    assert [c for c in reads if is_write(obj, c, mine)] == []
    assert [c for c in writes if not is_write(obj, c, mine) and c[1] not in ("lock", "unlock")] == []


# ---------------------------------------------------------------------- client identity and logs
def test_label_defaults_to_user_host_pid_and_travels_with_every_request(served, caplog):
    obj = Instrument()
    server, proxy = served(obj)
    assert proxy._proxy_label == f"{getpass.getuser()}@{socket.gethostname()}:{os.getpid()}"
    with pytest.raises(ValueError):
        Proxy(server.rep_endpoint, label="")
    named = Proxy(server.rep_endpoint, timeout=5, label="stage GUI: a+b")
    try:
        with caplog.at_level(logging.INFO, logger="pizco_qt"):
            named.set_value(12345)
            named.value = 777
            named.table["secret-key"] = 4242
            assert named.measure() == 777  # a read: not logged as a write
        with named._proxy_lock():
            assert named._proxy_lock_holder()["label"] == "stage GUI: a+b"
    finally:
        named._proxy_stop_me()
    writes = [r.getMessage() for r in caplog.records if r.name.startswith("pizco_qt") and "write by" in r.getMessage()]
    assert writes == ["write by stage GUI: a+b: exec set_value", "write by stage GUI: a+b: setattr value",
                      "write by stage GUI: a+b: exec table.__setitem__"]
    assert all(r.levelno == logging.INFO for r in caplog.records if "write by" in r.getMessage())
    assert not any("12345" in r.getMessage() or "777" in r.getMessage() or "4242" in r.getMessage()
                   for r in caplog.records)
    assert [(w.label, w.action, w.name) for w in server.recent_writes] == [
        ("stage GUI: a+b", "exec", "set_value"), ("stage GUI: a+b", "setattr", "value"),
        ("stage GUI: a+b", "exec", "table.__setitem__")]


def test_original_clients_show_as_pizco_client_and_refusals_are_logged(closing, caplog):
    server = closing(Server(Instrument()))
    holder = closing(Proxy(server.rep_endpoint, timeout=5, label="holder"))
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.rep_endpoint)
    try:
        def request(content):
            sock.send_multipart([b"PZC00+urn:my-client+", b"pickle", pickle.dumps(content),
                                 uuid.uuid4().hex.encode(), b""])
            assert sock.poll(5000), "no reply"
            return pickle.loads(sock.recv_multipart()[2])

        assert request(("PSMessage", "exec", {"name": "set_value", "args": (5,)})) == ("PSMessage", "return", None)
        assert server.recent_writes[-1].label == "pizco client"
        with caplog.at_level(logging.INFO, logger="pizco_qt"):
            holder._proxy_lock()
            reply = request(("PSMessage", "exec", {"name": "set_value", "args": (6,)}))
            assert reply[:2] == ("PSMessage", "raise")
            exc = reply[2][0]
            assert type(exc) is PermissionError and "holder holds exclusive control" in str(exc)
            assert request(("PSMessage", "setattr", {"name": "value", "value": 7}))[1] == "raise"
            assert request("stop")[1] == "raise"
            assert server.served_object.value == 5 and server.served_object.writes == 1
            # reads go on for the original client
            assert request(("PSMessage", "get", {"name": "value"})) == ("PSMessage", "return", 5)
            assert request(("PSMessage", "exec", {"name": "measure"})) == ("PSMessage", "return", 5)
    finally:
        sock.close(0)
    refusals = [r for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.getMessage()]
    assert len(refusals) == 3 and all("pizco client" in r.getMessage() and "locked" in r.getMessage()
                                      for r in refusals)
    assert not server.stopped


# ---------------------------------------------------------------------- HMAC roles
def test_observer_key_without_main_key_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="main key"):
        Server(Instrument(), observer_key="watch")
    monkeypatch.setenv("PZC_OBSERVER_KEY", "watch")
    with pytest.raises(ValueError, match="main key"):
        Server(Instrument())
    with pytest.raises(ValueError, match="differ"):
        Server(Instrument(), protocol=Protocol("watch"))


@pytest.mark.parametrize("from_env", [False, True])
def test_hmac_observer_reads_and_cannot_write(closing, qtbot, monkeypatch, from_env):
    obj = Instrument()
    if from_env:
        monkeypatch.setenv("PZC_OBSERVER_KEY", "watch-key")
        server = closing(Server(obj, protocol=Protocol("main-key")))
    else:
        server = closing(Server(obj, protocol=Protocol("main-key"), observer_key="watch-key"))
    observer = closing(Proxy(server.rep_endpoint, timeout=5, protocol=Protocol("watch-key"), label="student"))
    controller = closing(Proxy(server.rep_endpoint, timeout=5, protocol=Protocol("main-key"), label="script"))
    assert observer._proxy_role == "observer" and controller._proxy_role == "controller"
    # reads
    assert observer.value == 1 and observer.table["a"] == 1 and "a" in observer.table and len(observer.table) == 1
    assert observer.measure(2) == 2 and obj.reads == 1
    assert observer._proxy_get_many(["value"])["value"] == ("return", 1)
    assert observer._proxy_lock_holder() is None
    # writes: refused, nothing ran
    assert_all_refused(observer, obj, reason="observer")
    with pytest.raises(AccessDenied):
        observer._proxy_lock(timeout=0)
    with pytest.raises(AccessDenied):
        observer._proxy_stop_server()
    assert not server.stopped and observer.value == 1
    # both roles verify the publications (signed with the observer key)
    seen_o, seen_c = [], []
    observer.changed.connect(seen_o.append)
    controller.changed.connect(seen_c.append)
    controller.set_value(5)
    qtbot.waitUntil(lambda: seen_o == [5] and seen_c == [5], timeout=5000)
    assert obj.value == 5 and obj.writes == 1


def test_a_request_is_answered_with_its_own_key(closing):
    server = closing(Server(Instrument(), protocol=Protocol("main-key"), observer_key="watch-key"))
    agent_o = closing(__import__("pizco_qt").Agent(protocol=Protocol("watch-key"), _bind=False))
    agent_c = closing(__import__("pizco_qt").Agent(protocol=Protocol("main-key"), _bind=False))
    info_o = agent_o.request(server.rep_endpoint, "info")  # a reply signed otherwise would not verify
    info_c = agent_c.request(server.rep_endpoint, "info")
    assert info_o["role"] == "observer" and "observer_key" not in info_o
    assert info_c["role"] == "controller" and info_c["observer_key"]
    stranger = closing(__import__("pizco_qt").Agent(protocol=Protocol("other"), _bind=False))
    reply = stranger.request_frames(server.rep_endpoint, "info", 5)
    assert Protocol("main-key").decode(reply).content[1] == "raise"  # bad signature, as before


def test_without_roles_every_client_is_a_controller(served):
    obj = Instrument()
    server, proxy = served(obj)
    assert proxy._proxy_role == "controller"
    proxy.set_value(3)
    assert obj.value == 3


# ---------------------------------------------------------------------- CURVE roles
def _curve_dirs(tmp_path):
    keys, controllers, observers = tmp_path / "keys", tmp_path / "controllers", tmp_path / "observers"
    for d in (keys, controllers, observers):
        d.mkdir()
    for name in ("server", "alice", "olga", "both"):
        zmq.auth.create_certificates(str(keys), name)
    shutil.copy(keys / "alice.key", controllers / "alice.key")
    shutil.copy(keys / "olga.key", observers / "olga.key")
    shutil.copy(keys / "both.key", controllers / "both.key")
    shutil.copy(keys / "both.key", observers / "both.key")
    return keys, controllers, observers


def test_curve_observers_directory_needs_the_controllers_directory(tmp_path):
    keys, controllers, observers = _curve_dirs(tmp_path)
    with pytest.raises(ValueError, match="public_keys_dir"):
        CurveConfig(keys / "server.key_secret", observers_dir=observers)


def test_curve_observers_and_controllers(closing, tmp_path, qtbot):
    keys, controllers, observers = _curve_dirs(tmp_path)
    obj = Instrument()
    server = closing(Server(obj, curve=CurveConfig(keys / "server.key_secret", controllers,
                                                   observers_dir=observers)))

    def proxy(name):
        return closing(Proxy(server.rep_endpoint, timeout=5, label=name, curve=CurveConfig(
            keys / f"{name}.key_secret", server_public_key_file=keys / "server.key")))

    olga, alice, both = proxy("olga"), proxy("alice"), proxy("both")
    assert (olga._proxy_role, alice._proxy_role, both._proxy_role) == ("observer", "controller", "controller")
    assert olga.value == 1 and olga.measure() == 1
    assert_all_refused(olga, obj, reason="observer")
    seen = []
    olga.changed.connect(seen.append)
    alice.set_value(4)
    both.value = 6
    qtbot.waitUntil(lambda: seen == [4], timeout=5000)
    assert obj.value == 6 and obj.writes == 1
    # the directories are re-read: olga promoted to controller without a restart
    shutil.copy(keys / "olga.key", controllers / "olga.key")
    os.utime(controllers, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    olga.set_value(8)
    assert obj.value == 8


# ---------------------------------------------------------------------- exclusive control
def test_lock_contention_and_release_in_one_process(served, qtbot):
    obj = Instrument()
    server, a = served(obj)
    b = Proxy(server.rep_endpoint, timeout=5, label="bob")
    try:
        changes = []
        b._proxy_lock_changed.connect(changes.append)
        handle = a._proxy_lock()
        holder = b._proxy_lock_holder()
        assert set(holder) >= {"label", "host", "pid", "since"}
        assert holder["label"] == a._proxy_label and holder["pid"] == os.getpid()
        assert holder["host"] == socket.gethostname() and abs(holder["since"] - time.time()) < 5
        assert a._proxy_lock() is not None and a._proxy_unlock() is True  # no nesting count
        a._proxy_lock()
        # the holder writes; everybody else's writes are refused, reads go on
        a.set_value(2)
        assert_all_refused(b, obj, Locked, reason="locked")
        with pytest.raises(Locked, match=a._proxy_label.replace("(", r"\(")):
            b.set_value(3)
        assert b.value == 2 and b.measure() == 2 and b.table["a"] == 1
        started = time.monotonic()
        with pytest.raises(Locked):
            b._proxy_lock(timeout=0)  # tries once
        with pytest.raises(Locked):
            b._proxy_lock(timeout=0.3)
        assert time.monotonic() - started < 2
        assert b._proxy_unlock() is False
        assert handle.release() is True and b._proxy_lock_holder() is None
        qtbot.waitUntil(lambda: len(changes) == 4, timeout=5000)
        assert changes[0]["label"] == a._proxy_label and changes[1] is None and changes[3] is None
        # a waiting lock gets it once the holder releases
        a._proxy_lock()
        qtbot.waitUntil(lambda: len(changes) == 5, timeout=5000)
        import threading
        threading.Timer(0.2, a._proxy_unlock).start()
        with b._proxy_lock(timeout=5):
            assert b._proxy_lock_holder()["label"] == "bob"
            b.set_value(9)
        assert obj.value == 9
    finally:
        b._proxy_stop_me()


def test_context_manager_releases_also_when_the_block_raises(served):
    obj = Instrument()
    server, a = served(obj)
    with pytest.raises(RuntimeError):
        with a._proxy_lock() as handle:
            assert handle.held
            raise RuntimeError("boom")
    assert a._proxy_lock_holder() is None and not handle.held
    with a._proxy_lock():
        pass
    assert server.lock_holder() is None


def test_dropping_the_handle_keeps_the_lock_and_stopping_the_proxy_ends_it(served):
    server, a = served(Instrument())
    b = Proxy(server.rep_endpoint, timeout=5, label="bob")
    try:
        b._proxy_lock()
        gc.collect()
        assert server.lock_holder()["label"] == "bob"
        b._proxy_stop_me()
        assert server.lock_holder() is None
        b = Proxy(server.rep_endpoint, timeout=5, label="carol")
        b._proxy_lock()
        del b
        gc.collect()
        assert server.lock_holder() is None  # garbage-collected: released at once
        a.set_value(2)
    finally:
        if isinstance(locals().get("b"), Proxy):
            b._proxy_stop_me()


def test_the_holder_may_stop_the_server_others_may_not(closing):
    server = closing(Server(Instrument()))
    a = closing(Proxy(server.rep_endpoint, timeout=5, label="alice"))
    b = closing(Proxy(server.rep_endpoint, timeout=5, label="bob"))
    a._proxy_lock()
    with pytest.raises(Locked):
        b._proxy_stop_server()
    assert not server.stopped and b.value == 1
    a._proxy_stop_server()
    wait_until(lambda: server.stopped, timeout=5)


def test_lease_is_renewed_while_held(served):
    from pizco_qt.config import Settings

    server, a = served(Instrument())
    server.access.lease.duration = 1.3  # only renewals every second keep it
    a._proxy_lock()
    started = time.monotonic()
    wait_until(lambda: server.lock_holder() is None or time.monotonic() - started > 2.8, timeout=5)
    assert server.lock_holder() is not None and a._proxy_holds_lock()
    assert a._proxy_core.settings.lock_renew == 1.0 and Settings().lock_lease == 3.0


LOCKER = r"""
import sys, threading
from pizco_qt import Proxy
p = Proxy(sys.argv[1], timeout=5, label="experiment")
p._proxy_lock()
p.set_value(42)
print("locked", flush=True)
threading.Event().wait()  # hold the lock until the test kills this process
"""


def test_lock_held_by_another_process_and_freed_after_sigkill(closing, spawn, tmp_path):
    obj = Instrument()
    server = closing(Server(obj))
    script = tmp_path / "locker.py"
    script.write_text(LOCKER)
    child = spawn([sys.executable, str(script), server.rep_endpoint])
    assert child.line(30) == "locked"
    gui = closing(Proxy(server.rep_endpoint, timeout=5, label="gui"))
    assert gui._proxy_lock_holder()["label"] == "experiment" and gui._proxy_lock_holder()["pid"] == child.pid
    with pytest.raises(Locked, match="experiment"):
        gui.set_value(1)
    with pytest.raises(Locked, match="experiment"):
        gui._proxy_lock(timeout=0.5)
    assert obj.value == 42 and obj.writes == 1
    child.signal(signal.SIGKILL)
    killed = time.monotonic()
    child.wait(10)
    with gui._proxy_lock(timeout=6):
        freed = time.monotonic() - killed
        gui.set_value(7)
    assert freed <= 3.0 + 1.0 + 0.5, f"the lock was freed {freed:.2f} s after the holder was killed"
    assert obj.value == 7


# ---------------------------------------------------------------------- command lines
def test_curve_observers_option_of_pizco_server(spawn, tmp_path):
    from childproc import HERE, server_argv

    keys, controllers, observers = _curve_dirs(tmp_path)
    child = spawn(server_argv("tcp://127.0.0.1:0", "--serve", "objects:Stage", "--args", "(5.0,)", "-p", HERE,
                              "--curve-secret", str(keys / "server.key_secret"), "--curve-clients", str(controllers),
                              "--curve-observers", str(observers)))
    rep, _ = child.ready()

    def proxy(name):
        return Proxy(rep, timeout=5, curve=CurveConfig(keys / f"{name}.key_secret",
                                                       server_public_key_file=keys / "server.key"))

    olga, alice = proxy("olga"), proxy("alice")
    try:
        assert olga._proxy_role == "observer" and olga.position == 5.0
        with pytest.raises(AccessDenied):
            olga.position = 1.0
        assert alice._proxy_role == "controller" and olga.position == 5.0
        alice.position = 2.0
        assert olga.position == 2.0
    finally:
        olga._proxy_stop_me()
        alice._proxy_stop_me()
    wrong = spawn(server_argv("tcp://127.0.0.1:0", "--curve-secret", str(keys / "server.key_secret"),
                              "--curve-observers", str(observers)))
    assert wrong.wait(30) == 2 and "--curve-observers needs --curve-clients" in "\n".join(wrong.stderr)


def test_curve_observers_of_the_registry_may_list_and_look_up_but_not_register(spawn, tmp_path):
    keys, controllers, observers = _curve_dirs(tmp_path)
    child = spawn([sys.executable, "-u", "-m", "pizco_qt.registry", "tcp://127.0.0.1:0",
                   "--curve-secret", str(keys / "server.key_secret"), "--curve-clients", str(controllers),
                   "--curve-observers", str(observers)])
    line = child.line(30)
    assert line.startswith("pizco-registry ready rep="), line
    rep = line.split("rep=")[1].split()[0]

    def proxy(name):
        return Proxy(rep, timeout=5, curve=CurveConfig(keys / f"{name}.key_secret",
                                                       server_public_key_file=keys / "server.key"))

    olga, alice = proxy("olga"), proxy("alice")
    entry = {"name": "stage", "class": "Stage", "rep_endpoint": "tcp://127.0.0.1:1", "pub_endpoint": "tcp://127.0.0.1:2",
             "host": "h", "pid": 1, "started": 0.0}
    try:
        with pytest.raises(AccessDenied):
            olga.register(dict(entry), "token-o")
        assert olga.servers() == []
        alice.register(dict(entry), "token-a")
        assert [e["name"] for e in olga.servers()] == ["stage"]
        assert olga.lookup("stage")["rep_endpoint"] == "tcp://127.0.0.1:1"
    finally:
        olga._proxy_stop_me()
        alice._proxy_stop_me()


# ---------------------------------------------------------------------- bind() and who may write
def _bound_widgets(qtbot, proxy):
    from pizco_qt import bind

    spin = QtWidgets.QSpinBox()
    spin.setRange(0, 1000)
    spin.setToolTip("the set point")
    edit = QtWidgets.QLineEdit()
    check = QtWidgets.QCheckBox()
    check.setToolTip("output on")
    label = QtWidgets.QLabel()
    for w in (spin, edit, check, label):
        qtbot.addWidget(w)
    bindings = [bind(spin, proxy, "value"), bind(edit, proxy, "name"), bind(check, proxy, "enabled"),
                bind(label, proxy, "value")]
    qtbot.waitUntil(lambda: spin.value() == 1 and edit.text() == "probe" and label.text() == "1", timeout=5000)
    return spin, edit, check, label, bindings


class Settable(Instrument):
    def __init__(self):
        super().__init__()
        self.name = "probe"
        self.enabled = True


def test_bound_widgets_are_read_only_while_another_client_holds_the_lock(qtbot, closing):
    obj = Settable()
    server = closing(Server(obj))
    gui = closing(Proxy(server.rep_endpoint, timeout=5, label="gui"))
    script = closing(Proxy(server.rep_endpoint, timeout=5, label="scan script"))
    spin, edit, check, label, bindings = _bound_widgets(qtbot, gui)
    assert not spin.isReadOnly() and not edit.isReadOnly() and check.isEnabled()
    assert spin.toolTip() == "the set point"

    script._proxy_lock()
    qtbot.waitUntil(lambda: spin.isReadOnly() and edit.isReadOnly() and not check.isEnabled(), timeout=5000)
    assert spin.isEnabled() and edit.isEnabled() and label.isEnabled()  # read-only, not disabled
    assert spin.toolTip() == "the set point\nread-only: scan script holds exclusive control of this server"
    assert edit.toolTip() == "read-only: scan script holds exclusive control of this server"
    assert check.toolTip().startswith("output on\nread-only: scan script")
    assert label.toolTip() == ""  # a display widget is not concerned
    spin.setValue(500)  # no write is sent for these edits
    check.setChecked(False)
    script.value = 7
    qtbot.waitUntil(lambda: obj.value == 7, timeout=5000)
    assert not any(b.writing() for b in bindings) and all(b.error() is None for b in bindings)
    assert [w.label for w in server.recent_writes] == ["scan script"] and obj.enabled is True

    script._proxy_unlock()
    qtbot.waitUntil(lambda: not spin.isReadOnly() and not edit.isReadOnly() and check.isEnabled(), timeout=5000)
    assert spin.toolTip() == "the set point" and check.toolTip() == "output on" and edit.toolTip() == ""

    # this client's own lock leaves its widgets editable
    with gui._proxy_lock():
        spin.setValue(42)
        qtbot.waitUntil(lambda: obj.value == 42, timeout=5000)
        assert not spin.isReadOnly()


def test_bound_widgets_of_an_observer_are_read_only_and_follow_the_offline_rule(qtbot, closing, monkeypatch):
    monkeypatch.setenv("PZC_HEARTBEAT", "0.1")
    obj = Settable()
    server = Server(obj, protocol=Protocol("main"), observer_key="watch")
    endpoint = server.rep_endpoint
    student = closing(Proxy(endpoint, timeout=2, protocol=Protocol("watch")))
    spin, edit, check, label, bindings = _bound_widgets(qtbot, student)
    assert spin.isReadOnly() and edit.isReadOnly() and not check.isEnabled() and spin.isEnabled()
    assert spin.toolTip().endswith("read-only: you are an observer of this server")
    spin.setValue(300)
    assert obj.value == 1
    with qtbot.waitSignal(student._proxy_connection.lost, timeout=10000):
        server.stop()
    assert not spin.isEnabled() and not check.isEnabled() and not label.isEnabled()  # offline: disabled
    with qtbot.waitSignal(student._proxy_connection.regained, timeout=10000):
        closing(Server(Settable(), rep_endpoint=endpoint, protocol=Protocol("main"), observer_key="watch"))
    assert spin.isEnabled() and spin.isReadOnly() and not check.isEnabled() and label.isEnabled()
    for b in bindings:
        b.unbind()
    assert not spin.isReadOnly() and check.isEnabled() and spin.toolTip() == "the set point"
