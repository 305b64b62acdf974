"""The demo: a driver of a PyVISA instrument simulated by pyvisa-sim, served, registered, monitored.

Registries bind port 0 (or an ipc:// path in tmp_path) and PZC_REGISTRY points at
them; no test uses 5777.
"""
from __future__ import annotations

import threading
import time

import pytest
from qtpy import QtCore, QtWidgets

from conftest import wait_until
from pizco_qt import Proxy, registry

Qt = QtCore.Qt
WAIT = 15_000
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support (propagateSizeHints|setParent)")


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path):
    path = tmp_path / "settings"
    path.mkdir()
    QtCore.QSettings.setPath(QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(path))


def test_the_device_file_ships_with_the_package():
    from importlib.resources import files

    from pizco_qt.apps.demo import device_file

    assert (files("pizco_qt.resources") / "tc1.yaml").is_file()
    with device_file() as path:
        assert path.endswith("tc1.yaml")


def test_driver_talks_to_the_simulated_instrument():
    from pizco_qt.apps.demo import TemperatureController

    tc = TemperatureController(interval=0.05)
    try:
        assert "TC-1" in tc.idn and tc.identify() == tc.idn
        assert tc.setpoint == 295.0
        tc.setpoint = 300.0
        assert tc._query("SOUR:TEMP?") == "300.000"  # the simulated instrument stores it
        with pytest.raises(ValueError, match="out of range"):
            tc.setpoint = 1000
        assert tc.setpoint == 300.0 and tc._query("SOUR:TEMP?") == "300.000"

        readings = []
        got = threading.Event()

        def on_reading(temperature, setpoint):
            readings.append((temperature, setpoint))
            if len(readings) >= 3:
                got.set()

        tc.temperature_changed.connect(on_reading)
        assert got.wait(10), readings
        assert all(sp == 300.0 and 290 < t < 305 for t, sp in readings[:3])
        assert len({t for t, _ in readings}) > 1  # it changes

        assert tc.set_heater_range(0) == 0 and tc.heater_output == 0.0
        with pytest.raises(ValueError, match="refused"):
            tc.set_heater_range(7)
        result = tc.calibrate(0.05)
        assert result["samples"] == 10 and abs(result["offset_K"]) < 0.05
        with pytest.raises(ValueError, match="out of range"):
            tc.calibrate(100)
    finally:
        tc._release()


def test_demo_reuses_a_running_registry_and_works_in_the_monitor(qtbot, reg_server, tmp_path):
    from pizco_qt.apps.demo import start_demo
    from pizco_qt.apps.monitor import MonitorWindow

    demo = start_demo(interval=0.1)
    window = None
    try:
        assert demo.registry_server is None  # reused
        window = MonitorWindow()
        qtbot.addWidget(window)
        window.show()
        model = window.server_model
        qtbot.waitUntil(lambda: model.entry(demo.name) is not None and model.entry(demo.name).state == "online",
                        timeout=WAIT)
        window.select_server(demo.name)

        attrs = window.attribute_model
        qtbot.waitUntil(lambda: {"idn", "setpoint", "temperature", "heater_output"} <= set(attrs.names())
                        and attrs.row("idn").loaded, timeout=WAIT)
        assert "TC-1" in attrs.row("idn").text
        assert attrs.row("setpoint").writable and not attrs.row("temperature").writable

        signals = window.signal_model
        with qtbot.waitSignal(window.current.subscription_active, timeout=WAIT):
            signals.setData(signals.index(signals.names().index("temperature_changed"), 0), Qt.Checked,
                            Qt.CheckStateRole)
        qtbot.waitUntil(lambda: signals.row("temperature_changed").count >= 5, timeout=WAIT)
        assert window.plot.points("tc1-demo.temperature_changed[0]") >= 5

        attrs.setData(attrs.index(attrs.names().index("setpoint"), attrs.VALUE), "310", Qt.EditRole)
        qtbot.waitUntil(lambda: demo.instrument.setpoint == 310.0, timeout=WAIT)
        qtbot.waitUntil(lambda: attrs.row("setpoint").text == "310.0", timeout=WAIT)
        qtbot.waitUntil(lambda: signals.row("temperature_changed").last_args[1] == 310.0, timeout=WAIT)

        dialog = window.open_call_dialog(window.method_model.names().index("calibrate"))
        dialog.arguments.setText("0.3")
        with qtbot.waitSignal(dialog.succeeded, timeout=WAIT) as blocker:
            dialog.call_button.click()
            count = signals.row("temperature_changed").count
            # readings keep arriving while the slow method runs
            qtbot.waitUntil(lambda: signals.row("temperature_changed").count > count, timeout=WAIT)
        assert blocker.args[0]["samples"] == 10 and "offset_K" in dialog.result_text()
        dialog.close()
        qtbot.waitUntil(lambda: window.plot.points("tc1-demo.temperature_changed[0]") >= 15, timeout=WAIT)
        path = str(tmp_path / "monitor-demo.png")
        assert window.grab().save(path)
        print(f"screenshot: {path}")
    finally:
        if window is not None:
            window.close()
        demo.stop()
    wait_until(lambda: demo.name not in [e["name"] for e in _servers(reg_server.rep_endpoint)], timeout=10)


def _servers(endpoint: str) -> list:
    with Proxy(endpoint, timeout=5) as proxy:
        return proxy.servers()


def test_demo_starts_a_registry_when_none_answers(monkeypatch, tmp_path):
    from pizco_qt.apps.demo import start_demo

    monkeypatch.setenv("PZC_REGISTRY", f"ipc://{tmp_path}/registry")
    with start_demo(interval=0.5) as demo:
        assert demo.registry_server is not None
        assert demo.registry_endpoint == f"ipc://{tmp_path}/registry"
        entry = wait_until(lambda: _lookup(demo.name), timeout=10)
        assert entry["rep_endpoint"] == demo.endpoint
        assert entry["class"].endswith("TemperatureController")
    assert demo.registry_server is None and demo.server is None


def _lookup(name: str):
    try:
        return registry.lookup(name)
    except KeyError:
        return None


def test_pizco_monitor_demo_shows_the_instrument_and_stops_it(qtbot, reg_server):
    from pizco_qt.apps.monitor.__main__ import main

    seen = []
    deadline = time.monotonic() + 30

    def close_when_online():
        for widget in QtWidgets.QApplication.topLevelWidgets():
            if widget.objectName() == "pizco_monitor" and widget.isVisible():
                entry = widget.server_model.entry("tc1-demo")
                if (entry is not None and entry.state == "online") or time.monotonic() > deadline:
                    seen.append(entry.state if entry is not None else None)
                    widget.close()
                    return
        QtCore.QTimer.singleShot(50, close_when_online)

    QtCore.QTimer.singleShot(50, close_when_online)
    assert main(["--demo", "--timeout", "3"]) == 0
    assert seen == ["online"]
    assert "tc1-demo" not in [e["name"] for e in _servers(reg_server.rep_endpoint)]  # stopped with the window
