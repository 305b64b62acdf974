"""A lab GUI built only with bindings: python examples/bound_gui.py [--quit-after S] [--screenshot PNG]

A simulated cryostat is served in this process (a Proxy to a server in another
process or on another machine works the same way). Every widget of the window
is connected to it with one ``bind()`` call: readings follow the instrument's
change signals, controls write the user's edits back, and the pressure, which
has no change signal, is watched (polled in the background).
"""
import argparse
import math
import sys
import threading

from qtpy import QtCore, QtWidgets

from pizco_qt import Proxy, Server, Signal, bind


class Cryostat:
    """A simulated temperature stage: a heater drives the temperature toward a setpoint."""

    temperature_changed = Signal()
    power_changed = Signal()
    setpoint_changed = Signal()
    heater_changed = Signal()
    mode_changed = Signal()
    ramp_rate_changed = Signal()
    sample_changed = Signal()

    MODES = ("ramp", "hold", "cool down")

    def __init__(self):
        self._temperature = 295.0
        self._power = 0.0
        self._setpoint = 77.0
        self._heater = True
        self._mode = "ramp"
        self._ramp_rate = 20
        self._sample = "YBCO film #12"
        self._time = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._simulate, name="cryostat", daemon=True)
        self._thread.start()

    # readings (read-only)
    @property
    def temperature(self):
        return self._temperature

    @property
    def power(self):
        return self._power

    @property
    def pressure(self):
        """Chamber pressure in mbar; it has no change signal, so the GUI watches it."""
        return 2.0e-6 * (1 + 0.3 * math.sin(self._time / 3)) * (self._temperature / 100)

    # controls (read-write)
    @property
    def setpoint(self):
        return self._setpoint

    @setpoint.setter
    def setpoint(self, value):
        if not 4.0 <= value <= 400.0:
            raise ValueError(f"setpoint {value} K is outside 4-400 K")
        self._setpoint = float(value)
        self.setpoint_changed.emit(self._setpoint)

    @property
    def heater(self):
        return self._heater

    @heater.setter
    def heater(self, on):
        self._heater = bool(on)
        self.heater_changed.emit(self._heater)

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, mode):
        if mode not in self.MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(self.MODES)}")
        self._mode = mode
        self.mode_changed.emit(mode)

    @property
    def ramp_rate(self):
        return self._ramp_rate

    @ramp_rate.setter
    def ramp_rate(self, rate):
        self._ramp_rate = int(rate)
        self.ramp_rate_changed.emit(self._ramp_rate)

    @property
    def sample(self):
        return self._sample

    @sample.setter
    def sample(self, name):
        self._sample = str(name)
        self.sample_changed.emit(self._sample)

    def _simulate(self):
        dt = 0.05
        while not self._stop.wait(dt):
            self._time += dt
            target = self._setpoint if self._mode != "cool down" else 4.0
            error = target - self._temperature
            drive = 0.0
            if self._heater and self._mode != "hold":
                drive = max(-1.0, min(1.0, error / 10))
            self._temperature += drive * self._ramp_rate * dt * 0.2 + 0.02 * math.sin(self._time * 7)
            power = round(abs(drive) * 100 if self._heater else 0.0, 1)
            self.temperature_changed.emit(self._temperature)
            if power != self._power:
                self._power = power
                self.power_changed.emit(power)

    def stop(self):
        """Stop the simulation."""
        self._stop.set()
        self._thread.join(2)


def build_window(proxy):
    """The window: every value widget is bound to ``proxy`` with one call."""
    window = QtWidgets.QWidget()
    window.setWindowTitle("Cryostat - bound widgets")
    outer = QtWidgets.QHBoxLayout(window)

    readings = QtWidgets.QGroupBox("Readings")
    form = QtWidgets.QFormLayout(readings)
    temperature = QtWidgets.QLabel()
    temperature.setStyleSheet("font-size: 22px; font-weight: bold;")
    power = QtWidgets.QProgressBar()
    pressure = QtWidgets.QLCDNumber()
    pressure.setDigitCount(9)
    pressure.setSegmentStyle(QtWidgets.QLCDNumber.Flat)
    pressure.setMinimumHeight(36)
    sample_shown = QtWidgets.QLineEdit()
    sample_shown.setReadOnly(True)
    sample_shown.setFocusPolicy(QtCore.Qt.NoFocus)
    form.addRow("Temperature", temperature)
    form.addRow("Heater power", power)
    form.addRow("Pressure (mbar)", pressure)
    form.addRow("Sample", sample_shown)

    controls = QtWidgets.QGroupBox("Controls")
    form2 = QtWidgets.QFormLayout(controls)
    setpoint = QtWidgets.QDoubleSpinBox()
    setpoint.setRange(0.0, 500.0)  # the instrument refuses values outside 4-400 K
    setpoint.setDecimals(1)
    setpoint.setSuffix(" K")
    heater = QtWidgets.QCheckBox("on")
    mode = QtWidgets.QComboBox()
    mode.addItems(Cryostat.MODES)
    ramp = QtWidgets.QSlider(QtCore.Qt.Horizontal)
    ramp.setRange(1, 50)
    sample = QtWidgets.QLineEdit()
    form2.addRow("Setpoint", setpoint)
    form2.addRow("Heater", heater)
    form2.addRow("Mode", mode)
    form2.addRow("Ramp rate", ramp)
    form2.addRow("Sample name", sample)

    outer.addWidget(readings)
    outer.addWidget(controls)

    # the whole connection to the instrument:
    bind(temperature, proxy, "temperature", signal="temperature_changed", fmt="{:.2f} K")
    bind(power, proxy, "power", signal="power_changed", fmt="{:.0f} %")
    bind(pressure, proxy, "pressure", interval=0.5, fmt="{:.2e}")
    bind(sample_shown, proxy, "sample", signal="sample_changed")
    bind(setpoint, proxy, "setpoint", signal="setpoint_changed")
    bind(heater, proxy, "heater", signal="heater_changed")
    bind(mode, proxy, "mode", signal="mode_changed")
    bind(ramp, proxy, "ramp_rate", signal="ramp_rate_changed")
    bind(sample, proxy, "sample", signal="sample_changed")
    window.resize(640, 220)
    return window


def main(argv=None):
    parser = argparse.ArgumentParser(description="A lab GUI built only with pizco_qt bindings.")
    parser.add_argument("--quit-after", type=float, metavar="S", help="quit after S seconds")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window as PNG before quitting")
    args = parser.parse_args(argv)

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    cryostat = Cryostat()
    server = Server(cryostat)
    proxy = Proxy(server.rep_endpoint)
    window = build_window(proxy)
    window.show()
    print(f"bound_gui ready rep={server.rep_endpoint}", flush=True)

    def finish():
        if args.screenshot:
            window.grab().save(args.screenshot)
        app.quit()

    if args.quit_after is not None:
        QtCore.QTimer.singleShot(int(args.quit_after * 1000), finish)
    try:
        app.exec_()
    finally:
        window.close()
        proxy._proxy_stop_me()
        server.stop()
        cryostat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
