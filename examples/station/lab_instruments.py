"""The driver of the PS-1 DC power supply of examples/station/lab.toml (simulated by pyvisa-sim).

The station serves it with ``class = "lab_instruments:PowerSupply"`` and
``path = "."`` (this directory goes in front of the server process's sys.path).
The simulated instrument is described by ``ps1.yaml`` next to this file.
"""
import os
import threading

import pyvisa

from pizco_qt import Signal

HERE = os.path.dirname(os.path.abspath(__file__))


class PowerSupply:
    """A PS-1 power supply: voltage, current limit and output, reached through PyVISA.

    Parameters
    ----------
    resource : str
        VISA resource name.
    visa_library : str, optional
        PyVISA backend; default: pyvisa-sim with ps1.yaml.
    """

    #: Signal(on) -- the output was switched on or off.
    output_changed = Signal()
    #: Signal(new, old) -- the voltage setpoint changed.
    voltage_changed = Signal()

    #: Ohms of the simulated load.
    LOAD = 12.0

    def __init__(self, resource: str = "ASRL2::INSTR", visa_library: str = "") -> None:
        self._lock = threading.Lock()
        self._rm = pyvisa.ResourceManager(visa_library or os.path.join(HERE, "ps1.yaml") + "@sim")
        self._inst = self._rm.open_resource(resource, read_termination="\n", write_termination="\n")
        self.idn = self._query("*IDN?")

    def _query(self, command: str) -> str:
        with self._lock:
            return self._inst.query(command).strip()

    def _command(self, command: str, what: str) -> None:
        if self._query(command) != "OK":
            raise ValueError(f"the PS-1 refused {what}")

    @property
    def voltage(self) -> float:
        """Output voltage setpoint in volts (0 to 30)."""
        return float(self._query("VOLT?"))

    @voltage.setter
    def voltage(self, value: float) -> None:
        old = self.voltage
        self._command(f"VOLT {float(value):.3f}", f"{value} V (0 to 30 V)")
        self.voltage_changed.emit(float(value), old)

    @property
    def current_limit(self) -> float:
        """Current limit in amperes (0 to 3)."""
        return float(self._query("CURR:LIM?"))

    @current_limit.setter
    def current_limit(self, value: float) -> None:
        self._command(f"CURR:LIM {float(value):.3f}", f"a limit of {value} A (0 to 3 A)")

    @property
    def output(self) -> bool:
        """Whether the output is on."""
        return self._query("OUTP?") == "1"

    @output.setter
    def output(self, on: bool) -> None:
        self._command(f"OUTP {int(bool(on))}", "switching the output")
        self.output_changed.emit(bool(on))

    def measure_current(self) -> float:
        """The current drawn by the load in amperes (0 with the output off), limited by the current limit."""
        if not self.output:
            return 0.0
        current = min(self.voltage / self.LOAD, self.current_limit)
        return round(current + float(self._query("MEAS:NOIS?")), 4)
