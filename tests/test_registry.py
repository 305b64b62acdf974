"""The registry: registration, look-up, signals, expiry, restarts, clashes and its command line.

Every registry binds port 0 and PZC_REGISTRY points at it; no test uses 5777.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, wait_until
from objects import Stage
from pizco_qt import PizcoError, Proxy, Server, registry
from pizco_qt.registry import ENTRY_KEYS, Registry, RegistryUnavailable

CHILD = r"""
import sys, threading
from pizco_qt import Server
server = Server({}, name=sys.argv[1])
print("child ready", server.rep_endpoint, flush=True)
threading.Event().wait()
"""


def _free_tcp_endpoint() -> str:
    """An endpoint nobody listens on (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _names(proxy) -> list:
    return [entry["name"] for entry in proxy.servers()]


def _read_line(stream, timeout: float) -> str:
    """One line from a child's pipe, waiting at most ``timeout`` seconds."""
    box: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line from the child within {timeout} s") from None


def _spawn_named(name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-u", "-c", CHILD, name], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _connect_off_main(signal_attr, slot) -> None:
    """Connect from a plain thread, so the slot runs on the dispatcher thread (no Qt loop needed)."""
    worker = threading.Thread(target=signal_attr.connect, args=(slot,))
    worker.start()
    worker.join(10)
    assert not worker.is_alive()


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


# ---------------------------------------------------------------------- registration and queries
def test_named_server_registers_with_every_field(reg_server, closing):
    before = time.time()
    server = closing(Server(Stage(), name="stage"))
    rp = closing(registry.registry_proxy())
    entries = rp.servers()
    assert [e["name"] for e in entries] == ["stage"]
    entry = entries[0]
    assert tuple(sorted(entry)) == tuple(sorted(ENTRY_KEYS))
    assert entry["class"] == "objects.Stage"
    assert entry["rep_endpoint"] == server.rep_endpoint
    assert entry["pub_endpoint"] == server.pub_endpoint
    assert entry["host"] == socket.gethostname()
    assert entry["pid"] == os.getpid()
    assert isinstance(entry["started"], float) and before - 1 <= entry["started"] <= time.time()
    assert rp.lookup("stage") == entry
    assert registry.lookup("stage") == entry


def test_from_name_resolves_and_unknown_names_raise_key_error(reg_server, closing):
    closing(Server(Stage(position=4.0), name="stage"))
    proxy = closing(Proxy.from_name("stage", timeout=5))
    assert proxy.position == 4.0
    with pytest.raises(KeyError, match="nowhere"):
        Proxy.from_name("nowhere")
    with pytest.raises(KeyError, match="nowhere"):
        registry.lookup("nowhere")
    rp = closing(registry.registry_proxy())
    with pytest.raises(KeyError):
        rp.lookup("nowhere")


class HasFromName:
    from_name = "served value"


def test_from_name_never_shadows_a_served_attribute(served):
    _, proxy = served(HasFromName())
    assert proxy.from_name == "served value"
    assert callable(Proxy.from_name)


def test_added_and_removed_signals_reach_a_registry_proxy(reg_server, closing):
    rp = closing(registry.registry_proxy())
    added, removed = [], []
    _connect_off_main(rp.server_added, added.append)
    _connect_off_main(rp.server_removed, removed.append)
    server = Server(Stage(), name="stage")
    try:
        wait_until(lambda: [e["name"] for e in added] == ["stage"], timeout=5)
        assert added[0]["rep_endpoint"] == server.rep_endpoint
    finally:
        server.stop()
    wait_until(lambda: removed == ["stage"], timeout=5)


def test_clean_stop_removes_the_entry_at_once(reg_server, closing):
    rp = closing(registry.registry_proxy())
    server = Server(Stage(), name="stage")
    assert _names(rp) == ["stage"]
    server.stop()
    assert _names(rp) == []
    with pytest.raises(KeyError):
        registry.lookup("stage")


def test_name_clash_raises_and_binds_nothing(reg_server, closing, tmp_path):
    first = closing(Server(Stage(), name="stage"))
    path = tmp_path / "second.sock"
    threads = {t.name for t in threading.enumerate()}
    with pytest.raises(PizcoError) as info:
        Server(Stage(), f"ipc://{path}", name="stage")
    message = str(info.value)
    assert "'stage'" in message and first.rep_endpoint in message
    assert not path.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("pizco-server ipc")]
    assert {t.name for t in threading.enumerate()} <= threads | {"pizco-dispatch"}
    assert registry.lookup("stage")["rep_endpoint"] == first.rep_endpoint
    # the name is free again once its holder stops
    first.stop()
    closing(Server(Stage(), name="stage"))


def test_bind_failure_releases_the_reservation(reg_server, closing):
    first = closing(Server(Stage()))
    with pytest.raises(PizcoError):
        Server(Stage(), first.rep_endpoint, name="busy")  # the endpoint is taken
    closing(Server(Stage(), name="busy"))
    assert registry.lookup("busy")["name"] == "busy"


# ---------------------------------------------------------------------- without a registry
def test_server_without_registry_starts_at_once_and_registers_later(monkeypatch, closing):
    endpoint = _free_tcp_endpoint()
    monkeypatch.setenv("PZC_REGISTRY", endpoint)
    start = time.monotonic()
    server = closing(Server(Stage(position=2.0), name="early"))
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, f"a named server waited {elapsed:.2f} s for a missing registry"
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    assert proxy.position == 2.0
    with pytest.raises(RegistryUnavailable, match="pizco-registry"):
        registry.lookup("early")
    # a registry started later receives the background registration
    reg = closing(registry.serve_registry(endpoint))
    wait_until(lambda: "early" in [e["name"] for e in reg.served_object.servers()], timeout=10)
    server.stop()
    assert reg.served_object.servers() == []


def test_a_clash_found_later_is_logged_and_the_server_keeps_serving(monkeypatch, closing, caplog):
    endpoint = _free_tcp_endpoint()
    monkeypatch.setenv("PZC_REGISTRY", endpoint)
    a = closing(Server(Stage(), name="twin"))
    b = closing(Server(Stage(), name="twin"))
    with caplog.at_level(logging.WARNING, logger="pizco_qt.registry_client"):
        reg = closing(registry.serve_registry(endpoint))
        wait_until(lambda: any("already used" in r.getMessage() for r in caplog.records), timeout=10)
    holder = reg.served_object.lookup("twin")["rep_endpoint"]
    assert holder in (a.rep_endpoint, b.rep_endpoint)
    for server in (a, b):
        proxy = closing(Proxy(server.rep_endpoint, timeout=5))
        assert proxy.name == "stage-1"


def test_registry_proxy_without_registry_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PZC_REGISTRY", _free_tcp_endpoint())
    with pytest.raises(RegistryUnavailable, match="no registry answers"):
        registry.registry_proxy(timeout=0.5)


# ---------------------------------------------------------------------- expiry and restarts
def test_entries_expire_six_seconds_after_the_last_registration():
    reg = Registry()
    assert reg.expiry == 6.0
    entry = {"name": "far", "class": "x.Y", "rep_endpoint": "tcp://10.0.0.9:1", "pub_endpoint": "tcp://10.0.0.9:2",
             "host": "elsewhere", "pid": 1, "started": 0.0}
    removed = []
    reg.server_removed.connect(removed.append)
    assert reg.register(entry, "token-1", "elsewhere") is None
    t0 = time.time()
    assert reg.expire(t0 + 5.5) == [] and reg.lookup("far") == entry
    assert reg.register(entry, "token-1", "elsewhere") is None  # a refresh
    assert reg.expire(time.time() + 5.5) == []
    assert reg.expire(time.time() + 6.5) == ["far"]
    assert removed == ["far"] and reg.servers() == []


def test_registry_protocol_rules():
    reg = Registry()
    entry = {"name": "n", "class": "", "rep_endpoint": "inproc://a", "pub_endpoint": "inproc://b",
             "host": "h", "pid": 1, "started": 1.0}
    assert reg.reserve("n", "a") is None
    assert reg.reserve("n", "b")["name"] == "n"          # reserved by another server
    assert reg.register(dict(entry), "b")["name"] == "n"  # so is registering it
    assert reg.register(dict(entry, extra=1), "a") is None
    assert "extra" not in reg.lookup("n")
    assert reg.unregister("n", "b") is False and reg.unregister("n", "a") is True
    assert reg.register(dict(entry), "a") is None and reg.servers() == []  # a late refresh is ignored
    with pytest.raises(ValueError):
        reg.reserve("", "c")
    with pytest.raises(TypeError):
        reg.register(["not", "a", "dict"], "c")


def test_a_killed_server_expires_within_ten_seconds(reg_server, closing):
    rp = closing(registry.registry_proxy())
    removed = []
    _connect_off_main(rp.server_removed, removed.append)
    child = _spawn_named("victim")
    try:
        line = _read_line(child.stdout, 30)
        assert line.startswith("child ready"), line + child.stderr.read()
        wait_until(lambda: "victim" in _names(rp), timeout=10)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed = time.monotonic()
        wait_until(lambda: removed == ["victim"], timeout=12)
        assert time.monotonic() - killed < 10
        assert "victim" not in _names(rp)
    finally:
        _reap(child)


def _serve_again(endpoint: str):
    """A registry on ``endpoint`` again (ZMQ releases a closed port asynchronously: retry briefly)."""
    made = []

    def attempt() -> bool:
        try:
            made.append(registry.serve_registry(endpoint))
        except PizcoError as exc:
            assert "in use" in str(exc)
            return False
        return True

    wait_until(attempt, timeout=10, interval=0.05)
    return made[0]


def test_a_live_server_registers_again_after_a_registry_restart(monkeypatch, closing):
    first = registry.serve_registry("tcp://127.0.0.1:0")
    endpoint = first.rep_endpoint
    monkeypatch.setenv("PZC_REGISTRY", endpoint)
    try:
        server = closing(Server(Stage(), name="survivor"))
        assert first.served_object.lookup("survivor")["rep_endpoint"] == server.rep_endpoint
    finally:
        first.stop()
    second = closing(_serve_again(endpoint))
    start = time.monotonic()
    wait_until(lambda: "survivor" in [e["name"] for e in second.served_object.servers()], timeout=10)
    assert time.monotonic() - start < 10
    assert registry.lookup("survivor")["rep_endpoint"] == server.rep_endpoint


# ---------------------------------------------------------------------- command line
def _script(name: str) -> str:
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else ""


def test_help_exits_zero_and_starts_nothing():
    for cmd in ([sys.executable, "-m", "pizco_qt.registry", "--help"], [_script("pizco-registry"), "--help"]):
        if not cmd[0]:
            continue
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage:") and "pizco-registry" in done.stdout
        assert "pizco-registry ready" not in done.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_line_serves_until_a_signal(sig, closing):
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pizco_qt.registry", "tcp://127.0.0.1:0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc.stdout, 30).strip()
        assert line.startswith("pizco-registry ready rep=tcp://127.0.0.1:"), line + proc.stderr.read()
        rep = line.split("rep=")[1].split()[0]
        rp = closing(registry.registry_proxy(rep, timeout=5))
        assert rp.servers() == []
        rp._proxy_stop_me()
        proc.send_signal(sig)
        assert proc.wait(5) == 0
    finally:
        _reap(proc)


def _start_cli_registry(endpoint: str) -> "tuple[subprocess.Popen, str]":
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pizco_qt.registry", endpoint], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = _read_line(proc.stdout, 30).strip()
    if not line.startswith("pizco-registry ready rep="):
        _reap(proc)
        raise AssertionError(f"the registry did not start: {line!r} {proc.stderr.read()}")
    return proc, line.split("rep=")[1].split()[0]


def test_servers_register_again_after_the_registry_process_is_killed(monkeypatch, closing):
    first, endpoint = _start_cli_registry("tcp://127.0.0.1:0")
    monkeypatch.setenv("PZC_REGISTRY", endpoint)
    second = None
    try:
        server = closing(Server(Stage(), name="survivor"))
        assert registry.lookup("survivor")["rep_endpoint"] == server.rep_endpoint
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        with pytest.raises(RegistryUnavailable):
            registry.lookup("survivor")
        second, again = _start_cli_registry(endpoint)
        assert again == endpoint
        start = time.monotonic()

        def registered() -> bool:
            try:
                return registry.lookup("survivor")["rep_endpoint"] == server.rep_endpoint
            except KeyError:
                return False

        wait_until(registered, timeout=10)
        assert time.monotonic() - start < 10
        second.send_signal(signal.SIGTERM)
        assert second.wait(5) == 0
    finally:
        _reap(first)
        if second is not None:
            _reap(second)


def test_command_line_reports_a_busy_endpoint(reg_server):
    done = subprocess.run([sys.executable, "-m", "pizco_qt.registry", reg_server.rep_endpoint],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 1
    assert "pizco-registry:" in done.stderr and reg_server.rep_endpoint in done.stderr
    assert "ready" not in done.stdout


def test_a_served_registry_sweeps_silent_entries_on_its_own(closing):
    reg = closing(registry.serve_registry("tcp://127.0.0.1:0", expiry=1.0))
    rp = closing(registry.registry_proxy(reg.rep_endpoint))
    removed = []
    _connect_off_main(rp.server_removed, removed.append)
    entry = {"name": "far", "class": "x.Y", "rep_endpoint": "tcp://192.0.2.1:1", "pub_endpoint": "tcp://192.0.2.1:2",
             "host": "elsewhere", "pid": 1, "started": time.time()}
    assert rp.register(entry, "token-far", "elsewhere") is None
    registered = time.monotonic()
    assert rp.lookup("far") == entry
    wait_until(lambda: removed == ["far"], timeout=10)
    assert time.monotonic() - registered >= 0.9
    assert rp.servers() == []


def test_a_server_restarted_on_its_fixed_endpoint_takes_its_name_back(reg_server, closing):
    """A crashed server's entry (still fresh) does not block its restart on the same TCP endpoint."""
    endpoint = _free_tcp_endpoint()
    rp = closing(registry.registry_proxy())
    removed, added = [], []
    _connect_off_main(rp.server_removed, removed.append)
    _connect_off_main(rp.server_added, added.append)
    here = registry._HERE
    crashed = {"name": "stage", "class": "objects.Stage", "rep_endpoint": endpoint,
               "pub_endpoint": "tcp://127.0.0.1:1", "host": socket.gethostname(), "pid": os.getpid(),
               "started": time.time() - 60}
    assert rp.register(crashed, "token-of-the-crashed-one", here) is None  # as if it had died just now
    server = closing(Server(Stage(), endpoint, name="stage"))
    assert registry.lookup("stage")["rep_endpoint"] == endpoint
    assert registry.lookup("stage")["started"] == server.started
    wait_until(lambda: removed == ["stage"] and [e["name"] for e in added] == ["stage", "stage"], timeout=5)


def _start_cli_server(name: str) -> "tuple[subprocess.Popen, str]":
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pizco_qt", "tcp://127.0.0.1:0", "--serve", "objects:Stage",
                             "-p", os.path.join(ROOT, "tests"), "--name", name], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = _read_line(proc.stdout, 30).strip()
    if not line.startswith("pizco-server ready rep="):
        _reap(proc)
        raise AssertionError(f"pizco-server did not start: {line!r} {proc.stderr.read()}")
    return proc, line.split("rep=")[1].split()[0]


def test_pizco_server_name_registers_and_sigterm_unregisters(reg_server):
    proc, rep = _start_cli_server("cli-stage")
    try:
        entry = registry.lookup("cli-stage")  # registered before the ready line
        assert entry["rep_endpoint"] == rep and entry["pid"] == proc.pid and entry["class"] == "objects.Stage"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        with pytest.raises(KeyError):
            registry.lookup("cli-stage")
    finally:
        _reap(proc)


def test_a_killed_server_expires_by_its_silence_within_ten_seconds(reg_server, closing):
    """Without the local process check (the killed child is left a zombie), expiry alone removes it."""
    rp = closing(registry.registry_proxy())
    removed = []
    _connect_off_main(rp.server_removed, removed.append)
    proc, _ = _start_cli_server("silent")
    try:
        assert "silent" in _names(rp)
        os.kill(proc.pid, signal.SIGKILL)  # not reaped: its pid stays taken until _reap
        killed = time.monotonic()
        wait_until(lambda: removed == ["silent"], timeout=12, interval=0.05)
        elapsed = time.monotonic() - killed
        assert 3.0 < elapsed < 10, f"expired after {elapsed:.1f} s"  # at least 6 s after its last refresh
    finally:
        _reap(proc)


def test_a_curve_registry_admits_only_servers_and_clients_with_its_keys(monkeypatch, closing, tmp_path, caplog):
    import shutil

    import zmq.auth

    from pizco_qt.errors import ProtocolError
    from pizco_qt.security import CurveConfig

    keys, clients = tmp_path / "keys", tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    for who in ("registry", "lab", "mallory"):
        zmq.auth.create_certificates(str(keys), who)
    shutil.copy(keys / "lab.key", clients / "lab.key")
    reg = closing(registry.serve_registry("tcp://127.0.0.1:0", curve=CurveConfig(keys / "registry.key_secret", clients)))
    monkeypatch.setenv("PZC_REGISTRY", reg.rep_endpoint)
    to_registry = CurveConfig(keys / "lab.key_secret", server_public_key_file=keys / "registry.key")

    # a CURVE server whose config names the registry's public key registers over CURVE
    server = closing(Server(Stage(), curve=CurveConfig(keys / "lab.key_secret", clients, keys / "registry.key"),
                            name="secure"))
    entry = registry.lookup("secure", curve=to_registry)
    assert entry["rep_endpoint"] == server.rep_endpoint
    rp = closing(registry.registry_proxy(curve=to_registry))
    assert [e["name"] for e in rp.servers()] == ["secure"]
    proxy = closing(Proxy(entry["rep_endpoint"], timeout=5,
                          curve=CurveConfig(keys / "lab.key_secret", server_public_key_file=keys / "lab.key")))
    assert proxy.move_by(2) == 2.0

    # clients without the right keys are refused with a clear error
    with pytest.raises(ProtocolError, match="CURVE"):
        registry.lookup("secure")
    mallory = CurveConfig(keys / "mallory.key_secret", server_public_key_file=keys / "registry.key")
    with pytest.raises(ProtocolError, match="CURVE"):
        registry.lookup("secure", curve=mallory)

    # a server the registry refuses still serves, unregistered, and says why
    with caplog.at_level(logging.WARNING, logger="pizco_qt.registry_client"):
        outsider = closing(Server(Stage(position=5.0), name="outsider"))
    assert any("CURVE" in r.getMessage() and "outsider" in r.getMessage() for r in caplog.records)
    assert closing(Proxy(outsider.rep_endpoint, timeout=5)).position == 5.0
    assert [e["name"] for e in rp.servers()] == ["secure"]


def test_registrations_do_not_pile_up_while_the_registry_is_away(monkeypatch, closing):
    import dataclasses

    from pizco_qt.config import Settings

    endpoint = _free_tcp_endpoint()
    monkeypatch.setenv("PZC_REGISTRY", endpoint)
    settings = dataclasses.replace(Settings.from_environment(), registry_refresh=0.05)  # many periods, short test
    server = closing(Server(Stage(), name="patient", settings=settings))
    sent = []
    original = server.request_async

    def counting(*args, **kwargs):
        sent.append(args[0])
        return original(*args, **kwargs)

    server.request_async = counting
    wait_until(lambda: len(sent) >= 10, timeout=10)
    assert set(sent) == {endpoint}
    assert server.requester.pending_count() <= 1  # each unanswered registration is dropped before the next
    assert server.requester.socket_endpoints() in ([], [endpoint])
    reg = closing(registry.serve_registry(endpoint))
    wait_until(lambda: [e["name"] for e in reg.served_object.servers()] == ["patient"], timeout=10)


def test_registry_signals_arrive_on_the_gui_thread(reg_server, closing, qtbot):
    rp = closing(registry.registry_proxy())
    events = []
    rp.server_added.connect(lambda entry: events.append(("added", entry["name"], threading.current_thread())))
    rp.server_removed.connect(lambda name: events.append(("removed", name, threading.current_thread())))
    server = Server(Stage(), name="gui-stage")
    try:
        qtbot.waitUntil(lambda: len(events) == 1, timeout=5000)
    finally:
        server.stop()
    qtbot.waitUntil(lambda: len(events) == 2, timeout=5000)
    main = threading.main_thread()
    assert events == [("added", "gui-stage", main), ("removed", "gui-stage", main)]


def test_register_server_names_a_running_server(reg_server, closing):
    server = Server(Stage())
    try:
        registry.register_server(server, "late")
        assert server.name == "late"

        def found() -> bool:
            try:
                return registry.lookup("late")["rep_endpoint"] == server.rep_endpoint
            except KeyError:
                return False

        wait_until(found, timeout=10)
    finally:
        server.stop()
    with pytest.raises(KeyError):
        registry.lookup("late")


def test_a_name_reserved_by_a_starting_server_is_taken(reg_server, closing):
    rp = closing(registry.registry_proxy())
    assert rp.reserve("held", "token-of-a-starting-server", "lab-pc", 4242, "elsewhere", "") is None
    with pytest.raises(PizcoError, match=r"'held' is already used .*a server starting in pid 4242 on lab-pc"):
        Server(Stage(), name="held")
    assert rp.servers() == []
    assert rp.release("held", "token-of-a-starting-server") is True
    closing(Server(Stage(), name="held"))
    assert [e["name"] for e in rp.servers()] == ["held"]
