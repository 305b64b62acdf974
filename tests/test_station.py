"""pizco-station and pizco_qt.Station: servers from a TOML file, supervised, restarted when they die.

Real child processes throughout. One station of two servers (``lab``) is shared
by the tests that leave it as they found it; tests that break a station make
their own. The registry is always on a free port (never the default 5777).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import textwrap
import time

import pytest

from childproc import HERE, pid_alive, spawn  # noqa: F401  (spawn is a fixture)
from conftest import ROOT, wait_until
from pizco_qt import Proxy
from pizco_qt.config import Settings
from pizco_qt.process import ProcessStartError
from pizco_qt.registry_client import lookup
from pizco_qt.station import Backoff, Station, StationFileError, load_file, main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process checks")

STATION_ARGV = [sys.executable, "-m", "pizco_qt.station"]


def _free_tcp_endpoint() -> str:
    """An endpoint nobody listens on (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def _children_of(pid: int) -> list:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


def _state(station: Station, name: str) -> dict:
    return next(s for s in station.status() if s["name"] == name)


LAB = """\
    [station]
    name = "lab-t"
    registry = "{registry}"

    [[server]]
    name = "ticker"
    class = "station_objects:Ticker"
    kwargs = {{ period = 0.05 }}
    path = "{tests}"

    [[server]]
    name = "plain"
    class = "station_objects:Plain"
    args = [5]
    kwargs = {{ label = "bench" }}
    path = "{tests}"
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A started station of two servers (and the registry it started) from a TOML file."""
    registry = _free_tcp_endpoint()
    path = _write(tmp_path_factory.mktemp("station") / "lab.toml", LAB.format(registry=registry, tests=HERE))
    station = Station.from_file(path)
    station.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PZC_REGISTRY", registry)
        yield station
    station.stop()


# ---------------------------------------------------------------------------- the shared station
def test_every_server_is_running_and_reachable_by_name(lab):
    status = {s["name"]: s for s in lab.status()}
    assert list(status) == ["ticker", "plain"] and lab.name == "lab-t"
    assert lab._registry_child is not None and lab._registry_child.alive()
    for name, s in status.items():
        assert s["state"] == "running" and s["restarts"] == 0 and s["last_error"] is None
        assert pid_alive(s["pid"]) and s["uptime"] >= 0
        assert s["rep_endpoint"].startswith("tcp://127.0.0.1:") and not s["rep_endpoint"].endswith(":0")
        entry = wait_until(lambda: _entry_or_none(name), timeout=10)
        assert entry["station"] == "lab-t"
        assert entry["rep_endpoint"] == s["rep_endpoint"] and entry["pid"] == s["pid"]
    plain = Proxy.from_name("plain", timeout=5)
    try:
        assert plain.add(1, 2) == 8 and plain.label == "bench"
        assert plain.pid() == status["plain"]["pid"]
    finally:
        plain._proxy_stop_me()


def _entry_or_none(name: str):
    try:
        return lookup(name, timeout=2)
    except KeyError:
        return None


def test_a_killed_server_is_back_within_5_s_with_its_name_endpoints_and_subscriptions(lab, qtbot):
    before = _state(lab, "ticker")
    wait_until(lambda: _entry_or_none("ticker"), timeout=10)
    proxy = Proxy.from_name("ticker", timeout=5)
    got = []
    try:
        proxy.tick.connect(lambda n, pid: got.append((time.monotonic(), pid)))
        qtbot.waitUntil(lambda: len(got) >= 2, timeout=5000)
        old_pid = before["pid"]
        killed = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        back = wait_until(lambda: (lambda s: s if s["state"] == "running" and s["pid"] != old_pid else None)(
            _state(lab, "ticker")), timeout=5, interval=0.005)
        running_after = time.monotonic() - killed
        qtbot.waitUntil(lambda: any(pid == back["pid"] for _, pid in got), timeout=5000)
        first = min(t for t, pid in got if pid == back["pid"])
        signal_after = first - killed
        print(f"\nstation restart: kill -> running again {running_after:.3f} s, "
              f"kill -> first signal on the existing proxy {signal_after:.3f} s")
        assert not pid_alive(old_pid)
        assert back["rep_endpoint"] == before["rep_endpoint"] and back["pub_endpoint"] == before["pub_endpoint"]
        assert back["restarts"] == before["restarts"] + 1
        assert signal_after < 5.0
        assert proxy.pid() == back["pid"]  # the existing proxy calls the new process
        entry = wait_until(lambda: (lambda e: e if e and e["pid"] == back["pid"] else None)(
            _entry_or_none("ticker")), timeout=5)
        assert entry["rep_endpoint"] == before["rep_endpoint"] and entry["station"] == "lab-t"
        fresh = Proxy.from_name("ticker", timeout=5)
        try:
            assert fresh.pid() == back["pid"]
        finally:
            fresh._proxy_stop_me()
    finally:
        proxy._proxy_stop_me()


def test_stop_server_stays_stopped_and_start_server_restart_bring_it_back(lab):
    before = _state(lab, "plain")
    lab.stop_server("plain")
    after = _state(lab, "plain")
    assert after["state"] == "stopped" and after["pid"] is None and after["uptime"] is None
    assert not pid_alive(before["pid"])
    wait_until(lambda: _entry_or_none("plain") is None, timeout=5)  # a clean stop unregisters at once
    sweeps = lab._sweeps
    # the supervisor looks many times over longer than its first backoff and leaves it down
    looks = int(2 * lab.settings.restart_delay / lab.settings.supervise_interval) + 5
    wait_until(lambda: lab._sweeps >= sweeps + looks, timeout=10)
    assert _state(lab, "plain")["state"] == "stopped"
    lab.start_server("plain")
    started = _state(lab, "plain")
    assert started["state"] == "running" and pid_alive(started["pid"]) and started["pid"] != before["pid"]
    assert started["rep_endpoint"] == before["rep_endpoint"] and started["pub_endpoint"] == before["pub_endpoint"]
    lab.restart("plain")
    again = _state(lab, "plain")
    assert again["state"] == "running" and again["pid"] != started["pid"] and not pid_alive(started["pid"])
    assert again["rep_endpoint"] == before["rep_endpoint"]
    assert again["restarts"] == before["restarts"]  # restarts by hand are not counted
    proxy = Proxy(again["rep_endpoint"], timeout=5)
    try:
        assert proxy.pid() == again["pid"]
    finally:
        proxy._proxy_stop_me()
    with pytest.raises(KeyError, match="no server named 'nope'"):
        lab.stop_server("nope")


# ---------------------------------------------------------------------------- supervision rules
def test_backoff_doubles_to_30_s_resets_after_60_s_healthy_and_fails_at_5_exits_in_60_s():
    b = Backoff()
    assert [b.exited(t, 1.0) for t in (0, 1, 2, 3)] == [0.5, 1.0, 2.0, 4.0]
    assert b.exited(4, 1.0) is None  # the 5th unexpected exit within 60 s
    b = Backoff()
    delays = [b.exited(t * 61.0, 1.0) for t in range(10)]  # never 5 within 60 s: never failed
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    b = Backoff()
    b.exited(0, None), b.exited(1, None)  # exits before ready count too
    assert b.exited(200, 60.0) == 0.5  # a healthy minute resets the delay and the count
    assert len(b.exits) == 1


def test_five_unexpected_exits_in_60_s_mark_it_failed_until_started_by_hand(tmp_path):
    quick = dataclasses.replace(Settings.from_environment(), restart_delay=0.05)  # the rule, not the waiting
    marker = tmp_path / "started-once"
    station = Station([{"name": "fragile", "class": "station_objects:DiesOnRestart",
                        "args": [str(marker)], "path": HERE}],
                      name="lab-f", registry=_free_tcp_endpoint(), start_registry=False, settings=quick)
    with station:
        first = _state(station, "fragile")
        assert first["state"] == "running" and station._registry_child is None
        os.kill(first["pid"], signal.SIGKILL)  # exit 1; the 4 restarts die before they are ready
        failed = wait_until(lambda: (lambda s: s if s["state"] == "failed" else None)(_state(station, "fragile")),
                            timeout=15)
        assert failed["pid"] is None and failed["restarts"] == 4
        assert "5 times within 60 s" in failed["last_error"]
        assert "dying on purpose" in failed["last_error"]  # its last stderr lines are kept
        sweeps = station._sweeps
        wait_until(lambda: station._sweeps >= sweeps + 10, timeout=5)
        assert _state(station, "fragile")["state"] == "failed"  # left down
        marker.unlink()
        station.start_server("fragile")  # a fresh count
        again = _state(station, "fragile")
        assert again["state"] == "running" and pid_alive(again["pid"])
    assert _state(station, "fragile")["state"] == "stopped" and not pid_alive(again["pid"])


def test_restart_policies_and_registering_once_a_registry_appears(tmp_path, monkeypatch):
    from pizco_qt.registry import serve_registry

    registry = _free_tcp_endpoint()
    station = Station([{"name": "once", "class": "station_objects:Plain", "path": HERE, "restart": "never"},
                       {"name": "keen", "class": "station_objects:Plain", "path": HERE, "restart": "always"},
                       {"name": "calm", "class": "station_objects:Plain", "path": HERE}],
                      name="lab-p", registry=registry, start_registry=False)
    with station:  # start_registry = false and no registry answers: the servers start all the same
        once, keen, calm = (_state(station, n) for n in ("once", "keen", "calm"))
        os.kill(once["pid"], signal.SIGKILL)  # "never": a death by a signal leaves it failed
        os.kill(calm["pid"], signal.SIGTERM)  # "on-failure": a clean exit (status 0) leaves it stopped
        os.kill(keen["pid"], signal.SIGTERM)  # "always": a clean exit is restarted
        wait_until(lambda: _state(station, "once")["state"] == "failed", timeout=5)
        assert "SIGKILL" in _state(station, "once")["last_error"]
        back = wait_until(lambda: (lambda s: s if s["state"] == "running" and s["pid"] != keen["pid"] else None)(
            _state(station, "keen")), timeout=5)
        assert back["restarts"] == 1 and back["last_error"] is None
        wait_until(lambda: _state(station, "calm")["state"] == "stopped", timeout=5)
        assert _state(station, "calm")["last_error"] is None and _state(station, "calm")["restarts"] == 0
        assert _state(station, "once")["state"] == "failed" and _state(station, "once")["restarts"] == 0
        assert not pid_alive(once["pid"]) and not pid_alive(calm["pid"])
        # a registry appears: the running server registers with the station's name
        reg = serve_registry(registry)
        try:
            monkeypatch.setenv("PZC_REGISTRY", registry)
            entry = wait_until(lambda: _entry_or_none("keen"), timeout=8)
            assert entry["station"] == "lab-p" and entry["pid"] == back["pid"]
        finally:
            reg.stop()


def test_a_server_that_cannot_start_stops_the_others_and_is_named_with_its_stderr(tmp_path):
    station = Station([{"name": "good", "class": "station_objects:Plain", "path": HERE},
                       {"name": "broken", "class": "station_objects:BrokenAtStart", "path": HERE}],
                      name="lab-b", registry=_free_tcp_endpoint(), start_registry=False)
    with pytest.raises(ProcessStartError) as info:
        station.start()
    text = str(info.value)
    assert "'broken'" in text and text.rstrip().endswith("RuntimeError: the instrument is not connected")
    good = _state(station, "good")
    assert good["state"] == "stopped" and good["pid"] is None
    assert _state(station, "broken")["state"] == "failed"


# ---------------------------------------------------------------------------- the command line
CLEAN = """\
    [station]
    name = "lab-c"
    registry = "{registry}"
    [[server]]
    name = "one"
    class = "station_objects:Plain"
    kwargs = {{ cleanup_marker = "{tmp}/one.cleaned" }}
    path = "{tests}"
    [[server]]
    name = "two"
    class = "station_objects:Plain"
    kwargs = {{ cleanup_marker = "{tmp}/two.cleaned" }}
    path = "{tests}"
"""


@pytest.mark.parametrize("gui", [False, True], ids=["headless", "gui"])
def test_pizco_station_sigterm_stops_every_child_cleanly_and_exits_0(tmp_path, spawn, gui):
    registry = _free_tcp_endpoint()
    path = _write(tmp_path / "lab.toml", CLEAN.format(registry=registry, tests=HERE, tmp=tmp_path))
    child = spawn(STATION_ARGV + [path] + (["--gui"] if gui else []), env={"QT_QPA_PLATFORM": "offscreen"})
    assert child.line(30) == "pizco-station ready lab-c servers=2", child.describe()
    pids = _children_of(child.pid)
    assert len(pids) == 3  # the registry it started and the two servers
    entry = lookup("one", registry, timeout=5)
    assert entry["pid"] in pids and entry["station"] == "lab-c"
    child.signal(signal.SIGTERM)
    assert child.wait(15) == 0, child.describe()
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=5)
    # each server ran its own cleanup (its process ended normally, not killed)
    assert (tmp_path / "one.cleaned").exists() and (tmp_path / "two.cleaned").exists()


def test_no_child_outlives_a_killed_station(tmp_path, spawn):
    path = _write(tmp_path / "lab.toml", LAB.format(registry=_free_tcp_endpoint(), tests=HERE))
    child = spawn(STATION_ARGV + [path])
    assert child.line(30).startswith("pizco-station ready"), child.describe()
    pids = _children_of(child.pid)
    assert len(pids) == 3
    child.signal(signal.SIGKILL)
    child.wait(10)
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=10)


def test_a_server_that_cannot_start_exits_1_naming_it(tmp_path, spawn):
    path = _write(tmp_path / "bad.toml", f"""\
        [[server]]
        name = "broken"
        class = "station_objects:BrokenAtStart"
        path = "{HERE}"
    """)
    child = spawn(STATION_ARGV + [path], env={"PZC_REGISTRY": _free_tcp_endpoint()})
    assert child.wait(30) == 1, child.describe()
    err = "\n".join(child.stderr)
    assert child.stderr[0].startswith("pizco-station: error:") and "'broken'" in child.stderr[0]
    assert err.rstrip().endswith("RuntimeError: the instrument is not connected")
    assert child.stdout == []


GOOD_SERVER = '[[server]]\nname = "a"\nclass = "m:C"\n'
BAD_FILES = [
    # (file text or None for a missing file, what the error line must name, line number or None)
    (None, "cannot read the station file", None),
    ('[[server]]\nname = "a"\nclass = \n', "bad TOML", 3),
    (GOOD_SERVER + 'speed = 2\n', "unknown key 'speed'", 4),
    ('[station]\nnmae = "x"\n' + GOOD_SERVER, "unknown key 'nmae'", 2),
    ('[[server]]\nclass = "m:C"\n', "missing key 'name'", 1),
    ('[[server]]\nname = "a"\n', "missing key 'class'", 1),
    (GOOD_SERVER + '\n[[server]]\nname = "a"\nclass = "m:D"\n', "duplicate name 'a'", 6),
    (GOOD_SERVER + 'restart = "sometimes"\n', "'restart' must be one of", 4),
    ('[server]\nname = "a"\nclass = "m:C"\n', "write [[server]], not [server]", None),
    ('[[server]]\nname = "a"\nclass = "no class here"\n', "'class' must be \"module:Class\"", 3),
    ('[station]\nstart_registry = "yes"\n' + GOOD_SERVER, "'start_registry' must be true or false", 2),
    ('extra = 1\n' + GOOD_SERVER, "unknown key 'extra'", 1),
    ('[station]\nregistry = "tcp://127.0.0.1:0"\n' + GOOD_SERVER, "'registry' needs a fixed port", 2),
]


@pytest.mark.parametrize("text, named, line", BAD_FILES,
                         ids=["missing", "toml", "unknown", "station-key", "no-name", "no-class", "duplicate",
                              "restart", "single-table", "class", "start-registry", "top-level", "registry-port-0"])
def test_bad_files_exit_2_with_one_line_naming_the_key(tmp_path, capsys, text, named, line):
    path = tmp_path / "lab.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert main([str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("pizco-station: error: ") and named in err
    if line is not None:
        assert f"{path}:{line}:" in err
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(")):
        Station.from_file(str(path))


def test_bad_file_exit_status_and_help_as_processes(tmp_path, spawn):
    path = _write(tmp_path / "lab.toml", GOOD_SERVER + 'restart = "sometimes"\n')
    child = spawn(STATION_ARGV + [path])
    assert child.wait(30) == 2 and len(child.stderr) == 1 and "restart" in child.stderr[0], child.describe()
    script = os.path.join(os.path.dirname(sys.executable), "pizco-station")
    assert os.path.exists(script), "pizco-station is not installed next to this Python"
    child = spawn([script, "--help"])
    assert child.wait(30) == 0, child.describe()
    assert child.stdout[0].startswith("usage: pizco-station") and "--dry-run" in "\n".join(child.stdout)


def test_dry_run_imports_nothing_and_binds_nothing(tmp_path, spawn):
    marker = tmp_path / "imported"
    (tmp_path / "boom.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Boom: pass\n")
    registry = _free_tcp_endpoint()
    path = _write(tmp_path / "lab.toml", f"""\
        [station]
        registry = "{registry}"
        [[server]]
        name = "boom"
        class = "boom:Boom"
        path = "."
        [[server]]
        name = "ghost"
        class = "no_such_module.anywhere:Ghost"
    """)
    child = spawn(STATION_ARGV + [path, "--dry-run"])
    assert child.wait(30) == 0, child.describe()
    assert child.stdout == ["boom boom:Boom", "ghost no_such_module.anywhere:Ghost"]
    assert not marker.exists()
    port = int(registry.rsplit(":", 1)[1])
    with socket.socket() as s:  # no registry was started: the port is still free
        s.bind(("127.0.0.1", port))


def test_the_file_format(tmp_path):
    path = _write(tmp_path / "my-lab.toml", """\
        [[server]]
        name = "stage"
        class = "mylab.stage:Stage"
        args = ["COM3"]
        kwargs = { speed = 2.0 }
        path = "drivers"
        [[server]]
        name = "cam"
        class = "mylab.cam:Camera"
        path = "~/lab"
        restart = "always"
        rep = "tcp://127.0.0.1:0"
        pub = "tcp://127.0.0.1:0"
    """)
    station, servers = load_file(path)
    assert station == {"name": "my-lab", "registry": None, "start_registry": True}  # [station] omitted
    assert servers[0] == {"name": "stage", "class": "mylab.stage:Stage", "args": ["COM3"], "kwargs": {"speed": 2.0},
                          "rep": None, "pub": None, "path": str(tmp_path / "drivers"), "restart": "on-failure"}
    assert servers[1]["path"] == os.path.expanduser("~/lab") and servers[1]["restart"] == "always"
    built = Station.from_file(path)
    assert built.name == "my-lab" and built.names == ["stage", "cam"]
    assert [s["state"] for s in built.status()] == ["stopped", "stopped"]
    with pytest.raises(StationFileError, match="unknown key 'sped'"):
        Station([{"name": "a", "class": "m:C", "sped": 1}])
    with pytest.raises(ValueError, match="duplicate name 'a'"):
        Station([{"name": "a", "class": "m:C"}, {"name": "a", "class": "m:D"}])


# ---------------------------------------------------------------------------- the example
def test_the_example_station_serves_both_simulated_instruments(spawn, monkeypatch):
    pytest.importorskip("pyvisa_sim")
    registry = _free_tcp_endpoint()
    monkeypatch.setenv("PZC_REGISTRY", registry)
    child = spawn(STATION_ARGV + [os.path.join(ROOT, "examples", "station", "lab.toml")])
    assert child.line(60) == "pizco-station ready lab-demo servers=2", child.describe()
    tc1 = Proxy.from_name("tc1", timeout=5)
    psu = Proxy.from_name("psu", timeout=5)
    try:
        assert "TC-1" in tc1.idn and 4 <= tc1.temperature <= 400
        psu.voltage = 6.0
        psu.output = True
        assert 0.45 < psu.measure_current() < 0.56
        assert lookup("psu", timeout=5)["station"] == "lab-demo"
    finally:
        tc1._proxy_stop_me()
        psu._proxy_stop_me()
    child.signal(signal.SIGINT)
    assert child.wait(15) == 0, child.describe()


# ---------------------------------------------------------------------------- the window
def test_the_station_window_shows_states_and_restarts_and_acts(qtbot, tmp_path, monkeypatch, reg_server):
    from qtpy import QtWidgets

    from pizco_qt.apps.station import StationWindow

    station = Station([{"name": "alpha", "class": "station_objects:Plain", "path": HERE},
                       {"name": "beta", "class": "station_objects:Ticker", "path": HERE}],
                      name="lab-w", registry=reg_server.rep_endpoint)
    station.start()
    window = None
    try:
        window = StationWindow(station)
        qtbot.addWidget(window)
        window.show()
        model = window.model
        assert [model.text(r, model.NAME) for r in range(2)] == ["alpha", "beta"]
        assert [model.text(r, model.STATE) for r in range(2)] == ["running", "running"]
        beta = _state(station, "beta")
        assert model.text(1, model.PID) == str(beta["pid"]) and model.text(1, model.REP) == beta["rep_endpoint"]
        os.kill(beta["pid"], signal.SIGKILL)
        qtbot.waitUntil(lambda: model.text(1, model.RESTARTS) == "1" and model.text(1, model.STATE) == "running",
                        timeout=10000)
        assert "SIGKILL" in model.text(1, model.ERROR)
        window.select("beta")
        assert "SIGKILL" in window.error_view.toPlainText()
        window.select("alpha")
        window.stop_selected()
        qtbot.waitUntil(lambda: model.text(0, model.STATE) == "stopped" and window.start_button.isEnabled(),
                        timeout=10000)
        assert model.text(0, model.PID) == "" and not window.stop_button.isEnabled()
        shot = tmp_path / "station-window.png"
        assert window.grab().save(str(shot)) and shot.stat().st_size > 0
        window.start_selected()
        qtbot.waitUntil(lambda: model.text(0, model.STATE) == "running", timeout=10000)
        monitor = window.open_monitor("beta")  # the monitor, on the station's registry, with beta selected
        qtbot.waitUntil(lambda: monitor.current is not None and monitor.current.key == "beta", timeout=10000)
        assert monitor.isVisible()
        # its attributes are read (so no read is still under way when the window closes it)
        qtbot.waitUntil(lambda: monitor.attribute_model.rowCount() > 0, timeout=10000)
        # closing asks first: refused, nothing stops; accepted, the station stops
        monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *a, **k: QtWidgets.QMessageBox.Cancel)
        assert not window.close()
        assert all(s["state"] == "running" for s in station.status())
        monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *a, **k: QtWidgets.QMessageBox.Yes)
        pids = [s["pid"] for s in station.status()]
        with qtbot.waitSignal(window.closed, timeout=10000):
            assert window.close()
        assert all(s["state"] == "stopped" for s in station.status())
        assert not any(pid_alive(p) for p in pids)
        assert window.monitor is None and not monitor.isVisible()
    finally:
        station.stop()


def test_the_monitor_shows_the_station_of_a_server(qtbot, reg_server, monkeypatch):
    from pizco_qt import Server
    from pizco_qt.apps.monitor import MonitorWindow
    from pizco_qt.apps.monitor.models import ServerListModel
    from station_objects import Plain

    monkeypatch.setenv("PZC_STATION", "lab-3")  # what a station sets for its children
    server = Server(Plain(), "tcp://127.0.0.1:0", name="stage")
    window = None
    try:
        entry = wait_until(lambda: _entry_or_none("stage"), timeout=5)
        assert entry["station"] == "lab-3"
        window = MonitorWindow(reg_server.rep_endpoint)
        qtbot.addWidget(window)
        col = ServerListModel.COLUMNS.index("Station")
        model = window.server_model
        state = ServerListModel.COLUMNS.index("State")
        # online: the monitor's connection job is over, so closing leaves no worker behind
        qtbot.waitUntil(lambda: model.rowCount() == 1 and model.index(0, state).data() == "online", timeout=10000)
        assert model.index(0, 0).data() == "stage" and model.index(0, col).data() == "lab-3"
        assert "station lab-3" in model.index(0, 0).data(3)  # Qt.ToolTipRole
    finally:
        if window is not None:
            window.shutdown()
            window.close()
        server.stop()
