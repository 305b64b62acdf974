"""The demo: a simulated lab instrument served the way a lab would serve a real one.

``TemperatureController`` is a small driver of the TC-1 temperature controller.
It talks to the instrument through PyVISA; here the instrument is simulated by
pyvisa-sim from the device file shipped as ``pizco_qt.resources/tc1.yaml`` (a
real VISA stack, a simulated device). The simulated device stores the setpoint
and the heater range, checks their limits and answers with sensor noise; the
driver adds the slow thermal response of a sample stage on top, so the
temperature drifts towards a new setpoint as a real one would.

``start_demo()`` reuses a running registry or starts one in this process, then
serves a driver under a name, so it registers and the monitor lists it.
``pizco-monitor --demo`` uses it; ``python -m pizco_qt.apps.demo`` serves the
demo headless until Ctrl+C.

Requires the ``demo`` extra (pyvisa, pyvisa-sim; pyqtgraph for the plots).

Thread affinity: the driver's public methods may be called from any thread (a
lock serialises instrument access); its reading thread emits
``temperature_changed`` several times a second.
"""
import argparse
import contextlib
import logging
import math
import os
import sys
import threading
import time
from typing import Any, Dict, Optional

from pizco_qt import Signal

logger = logging.getLogger(__name__)

__all__ = ["TemperatureController", "Demo", "start_demo", "device_file", "main", "RESOURCE"]

#: The VISA resource name of the simulated instrument.
RESOURCE = "TCPIP0::192.168.0.42::INSTR"
#: Name the demo server registers under.
DEMO_NAME = "tc1-demo"


@contextlib.contextmanager
def device_file():
    """The path of the simulated device definition (a context manager, for zipped installs)."""
    from importlib.resources import as_file, files

    with as_file(files("pizco_qt.resources") / "tc1.yaml") as path:
        yield str(path)


class TemperatureController:
    """Driver of a TC-1 temperature controller reached through PyVISA.

    Parameters
    ----------
    resource : str
        VISA resource name.
    interval : float
        Seconds between two readings (each emits ``temperature_changed``).
    visa_library : str, optional
        PyVISA backend; default: pyvisa-sim with the shipped device file.
    """

    #: Signal(temperature, setpoint) -- a new reading, in kelvin, several times a second.
    temperature_changed = Signal()
    #: Signal(new, old) -- the setpoint was changed.
    setpoint_changed = Signal()

    def __init__(self, resource: str = RESOURCE, interval: float = 0.2,
                 visa_library: Optional[str] = None) -> None:
        import pyvisa

        self._lock = threading.RLock()
        if visa_library is None:
            with device_file() as path:
                self._rm = pyvisa.ResourceManager(f"{path}@sim")
        else:
            self._rm = pyvisa.ResourceManager(visa_library)
        try:
            self._inst = self._rm.open_resource(resource, read_termination="\n", write_termination="\n",
                                                timeout=2000)
        except Exception:
            self._rm.close()
            raise
        self._resource = resource
        self._idn = self._query("*IDN?")
        #: Seconds the stage takes to cover 63 % of a setpoint step (heater on); writable.
        self.response_time = 4.0
        self._readings = 0
        self._interval = float(interval)
        self._heater = int(self._query("HTR:RANG?"))
        self._setpoint = float(self._query("SOUR:TEMP?"))
        self._temperature = self._setpoint
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tc1-readings", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ instrument access
    def _query(self, command: str) -> str:
        with self._lock:
            return self._inst.query(command).strip()

    def _command(self, command: str) -> None:
        answer = self._query(command)
        if answer != "OK":
            raise ValueError(f"the instrument refused {command!r} (answered {answer!r})")

    # ------------------------------------------------------------------ attributes
    @property
    def idn(self) -> str:
        """The instrument's identification string (asked once, at connection)."""
        return self._idn

    @property
    def resource(self) -> str:
        """The VISA resource name."""
        return self._resource

    @property
    def readings(self) -> int:
        """How many readings were taken since the start."""
        return self._readings

    @property
    def setpoint(self) -> float:
        """Target temperature in kelvin (4 to 400); writing it starts a ramp."""
        return self._setpoint

    @setpoint.setter
    def setpoint(self, value: float) -> None:
        value = float(value)
        try:
            self._command(f"SOUR:TEMP {value:.3f}")
        except ValueError:
            raise ValueError(f"setpoint {value:g} K is out of range: the TC-1 accepts 4 to 400 K") from None
        old, self._setpoint = self._setpoint, value
        if old != value:
            self.setpoint_changed.emit(value, old)

    @property
    def temperature(self) -> float:
        """The last temperature reading in kelvin."""
        return round(self._temperature, 4)

    @property
    def heater_range(self) -> int:
        """Heater range 0 (off) to 3 (high), stored by the instrument."""
        return int(self._query("HTR:RANG?"))

    @property
    def heater_output(self) -> float:
        """Heater output in percent (0 with the heater off)."""
        if self.heater_range == 0:
            return 0.0
        error = self._setpoint - self._temperature
        return round(max(0.0, min(100.0, 20.0 + 8.0 * error)), 1)

    @property
    def interval(self) -> float:
        """Seconds between readings."""
        return self._interval

    # ------------------------------------------------------------------ methods
    def measure(self) -> float:
        """Take one reading now and return it (kelvin)."""
        return self._step()

    def calibrate(self, seconds: float = 3.0) -> Dict[str, Any]:
        """Zero the sensor: a slow operation that takes ``seconds`` (0 to 60)."""
        seconds = float(seconds)
        if not 0 <= seconds <= 60:
            raise ValueError(f"calibration time {seconds:g} s is out of range (0 to 60 s)")
        self._command("CAL:ZERO")
        self._stop.wait(seconds)
        noise = [float(self._query("MEAS:NOIS?")) for _ in range(10)]
        offset = sum(noise) / len(noise) - 0.03
        return {"offset_K": round(offset, 5), "samples": len(noise), "took_s": seconds}

    def set_heater_range(self, value: int) -> int:
        """Select heater range 0 (off) to 3; returns the range now in force."""
        self._command(f"HTR:RANG {int(value)}")
        self._heater = self.heater_range
        return self._heater

    def identify(self) -> str:
        """Ask the instrument who it is."""
        return self._query("*IDN?")

    def _release(self) -> None:
        """Stop reading and release the instrument (not served: the name is private)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        with self._lock:
            try:
                self._inst.close()
            finally:
                self._rm.close()

    # ------------------------------------------------------------------ readings
    def _step(self) -> float:
        noise = float(self._query("MEAS:NOIS?")) - 0.03
        with self._lock:
            now = time.monotonic()
            dt, self._last = now - self._last, now
            gain = 1.0 if self._heater > 0 else 0.05
            tau = max(0.1, self.response_time) / gain
            self._temperature += (self._setpoint - self._temperature) * (1.0 - math.exp(-dt / tau))
            self._temperature += noise
            self._readings += 1
            value = self._temperature
        return round(value, 4)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._heater = int(self._query("HTR:RANG?"))
                value = self._step()
                self.temperature_changed.emit(value, self._setpoint)
            except Exception:  # an instrument error must not end the readings
                logger.exception("reading the TC-1 failed")


def _registry_answers(endpoint: str, timeout: float = 0.5) -> bool:
    from pizco_qt import Proxy

    try:
        proxy = Proxy(endpoint, timeout=timeout)
    except Exception:
        return False
    proxy._proxy_stop_me()
    return True


class Demo:
    """A registry (reused or started here) and the served demo instrument; ``stop()`` ends both.

    Attributes: ``registry_endpoint``, ``endpoint`` (the instrument server's REP
    endpoint), ``name`` (its registered name), ``server``, ``instrument``,
    ``registry_server`` (None when an existing registry was reused).
    """

    def __init__(self, registry: Optional[str] = None, name: str = DEMO_NAME, interval: float = 0.2) -> None:
        from pizco_qt import NameTaken, Server, config

        if registry:
            os.environ["PZC_REGISTRY"] = registry  # named servers of this process register there
        self.registry_endpoint = registry or config.registry_endpoint()
        self.registry_server: Any = None
        self.server: Any = None
        self.instrument: Optional[TemperatureController] = None
        try:
            self.has_registry = self._ensure_registry()
            self.instrument = TemperatureController(interval=interval)
            try:
                self.server = Server(self.instrument, name=name if self.has_registry else None)
            except NameTaken:
                name = f"{name}-{os.getpid()}"
                self.server = Server(self.instrument, name=name)
        except BaseException:
            self.stop()
            raise
        self.name = name
        self.endpoint = self.server.rep_endpoint

    def _ensure_registry(self) -> bool:
        try:
            from pizco_qt import registry as registry_module
        except ImportError:
            logger.warning("this pizco_qt has no registry; the demo server is not registered")
            return False
        if _registry_answers(self.registry_endpoint):
            logger.info("reusing the registry at %s", self.registry_endpoint)
            return True
        self.registry_server = registry_module.serve_registry(self.registry_endpoint)
        self.registry_endpoint = self.registry_server.rep_endpoint
        os.environ["PZC_REGISTRY"] = self.registry_endpoint
        logger.info("started a registry at %s", self.registry_endpoint)
        return True

    def stop(self) -> None:
        """Stop the instrument server, the instrument and the registry started here."""
        for thing, how in ((self.server, "stop"), (self.instrument, "_release"), (self.registry_server, "stop")):
            if thing is not None:
                try:
                    getattr(thing, how)()
                except Exception:
                    logger.exception("stopping the demo")
        self.server = self.instrument = self.registry_server = None

    def __enter__(self) -> "Demo":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_demo(registry: Optional[str] = None, name: str = DEMO_NAME, interval: float = 0.2) -> Demo:
    """Start the demo (see ``Demo``); call ``stop()`` on the result when done."""
    return Demo(registry, name, interval)


def main(argv: Optional[list] = None) -> int:
    """``python -m pizco_qt.apps.demo [registry]``: serve the demo instrument until Ctrl+C."""
    parser = argparse.ArgumentParser(prog="python -m pizco_qt.apps.demo",
                                     description="Serve the simulated TC-1 temperature controller "
                                                 "(pyvisa-sim) and register it.")
    parser.add_argument("registry", nargs="?", help="registry endpoint (default: PZC_REGISTRY or "
                                                    "tcp://127.0.0.1:5777; started here if none runs)")
    parser.add_argument("--name", default=DEMO_NAME, help="registered name (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    demo = start_demo(args.registry, args.name)
    print(f"demo instrument {demo.name!r} at {demo.endpoint}; registry {demo.registry_endpoint}", flush=True)
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
