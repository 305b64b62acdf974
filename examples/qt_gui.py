"""A small Qt window on a remote instrument: python examples/qt_gui.py [endpoint] [--quit-after S]

The window shows the instrument's reading live (a remote signal connected to a
slot, coalesced to the latest value per event-loop turn), an online/offline
indicator driven by the server's heartbeat, and a button that starts a slow
measurement with ``.future()`` + ``FutureWatcher``: the window keeps painting
and updating while the instrument works.

Without an endpoint it serves its own simulated voltmeter from a thread of this
process. To use one served elsewhere::

    python -m pizco_qt tcp://127.0.0.1:8000 --serve qt_gui:Voltmeter -p examples
    python examples/qt_gui.py tcp://127.0.0.1:8000
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import threading

from qtpy import QtCore, QtGui, QtWidgets

from pizco_qt import FutureWatcher, Proxy, Server, Signal


class Voltmeter:
    """A simulated voltmeter: a drifting reading published ten times a second."""

    reading_changed = Signal(float)

    def __init__(self, period: float = 0.1) -> None:
        self._reading = 1.0
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voltmeter", daemon=True)
        self._thread.start()

    @property
    def reading(self) -> float:
        """The latest reading in volts."""
        return self._reading

    def measure(self, seconds: float = 2.0) -> float:
        """A slow, averaged measurement (blocks for ``seconds``)."""
        samples = []
        pause = threading.Event()
        for _ in range(max(1, int(seconds / 0.05))):
            samples.append(self._reading)
            pause.wait(0.05)
        return sum(samples) / len(samples)

    def close(self) -> None:
        """Stop publishing."""
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        rng, t = random.Random(7), 0.0
        while not self._stop.wait(self._period):
            t += self._period
            self._reading = 1.2 + 0.3 * math.sin(t / 2) + rng.gauss(0, 0.005)
            self.reading_changed.emit(self._reading)


class MeterWindow(QtWidgets.QWidget):
    """Shows a proxy's live reading and runs slow measurements without freezing."""

    def __init__(self, proxy: Proxy, measure_seconds: float = 2.0, parent=None) -> None:
        super().__init__(parent)
        self.proxy = proxy
        self.measure_seconds = measure_seconds
        self.readings = 0
        self.watcher = None
        self.setWindowTitle("pizco_qt: remote voltmeter")

        self.value = QtWidgets.QLabel("--.---- V")
        self.value.setObjectName("value")
        font = self.value.font()
        font.setPointSize(32)
        font.setBold(True)
        self.value.setFont(font)
        self.value.setAlignment(QtCore.Qt.AlignCenter)
        self.value.setMinimumWidth(300)

        self.status = QtWidgets.QLabel()
        self.status.setObjectName("status")
        self.endpoint = QtWidgets.QLabel(proxy._proxy_endpoint)
        self.endpoint.setStyleSheet("color: gray")

        self.button = QtWidgets.QPushButton(f"Measure ({measure_seconds:g} s)")
        self.button.setObjectName("measure")
        self.button.setSizePolicy(QtWidgets.QSizePolicy.Fixed, QtWidgets.QSizePolicy.Fixed)
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)  # an animated "working" bar
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)
        self.result = QtWidgets.QLabel("No measurement yet")
        self.result.setObjectName("result")

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.status)
        top.addStretch(1)
        top.addWidget(self.endpoint)
        actions = QtWidgets.QHBoxLayout()
        actions.addWidget(self.button)
        actions.addWidget(self.busy, 1)
        actions.addStretch(0)
        box = QtWidgets.QGroupBox("Reading")
        inner = QtWidgets.QVBoxLayout(box)
        inner.addWidget(self.value)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(box)
        layout.addLayout(actions)
        layout.addWidget(self.result)

        self.button.clicked.connect(self.start_measurement)
        state = proxy._proxy_connection
        state.lost.connect(self.show_offline)
        state.regained.connect(self.show_online)
        self.show_online() if state.alive() else self.show_offline()
        # slots run on this (GUI) thread; coalesce: at most one update per event-loop turn
        proxy.reading_changed.connect(self.show_reading, coalesce=True)

    def show_reading(self, volts: float) -> None:
        self.readings += 1
        self.value.setText(f"{volts:.4f} V")

    def show_online(self) -> None:
        self.status.setText("\u25cf online")
        self.status.setStyleSheet("color: #2e7d32; font-weight: bold")
        self.value.setStyleSheet("")
        self.button.setEnabled(self.watcher is None)

    def show_offline(self) -> None:
        self.status.setText("\u25cf offline")
        self.status.setStyleSheet("color: #c62828; font-weight: bold")
        self.value.setStyleSheet("color: #9e9e9e")  # the last reading, now stale
        self.button.setEnabled(False)

    def start_measurement(self) -> None:
        """Start the slow call without waiting; the result arrives as a signal."""
        self.button.setEnabled(False)
        self.busy.setVisible(True)
        self.result.setText("Measuring...")
        self.watcher = FutureWatcher(self.proxy.measure.future(self.measure_seconds), self)
        self.watcher.finished.connect(self.measurement_done)
        self.watcher.failed.connect(self.measurement_failed)
        self.watcher.done.connect(self._idle)

    def measurement_done(self, volts: float) -> None:
        self.result.setText(f"Averaged over {self.measure_seconds:g} s: {volts:.4f} V")

    def measurement_failed(self, exc: BaseException) -> None:
        self.result.setText(f"Measurement failed: {type(exc).__name__}: {exc}")

    def _idle(self) -> None:
        self.watcher = None
        self.busy.setVisible(False)
        self.button.setEnabled(self.proxy._proxy_connection.alive())

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        try:
            self.proxy.reading_changed.disconnect(self.show_reading)
        except TypeError:
            pass
        super().closeEvent(event)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A Qt window on a remote voltmeter.")
    parser.add_argument("endpoint", nargs="?", help="REP endpoint of a served Voltmeter "
                        "(default: serve one in this process)")
    parser.add_argument("--quit-after", type=float, metavar="S", help="close the window after S seconds")
    parser.add_argument("--measure-seconds", type=float, default=2.0, help="duration of a measurement")
    args = parser.parse_args(argv)

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    instrument = server = None
    if args.endpoint is None:
        instrument = Voltmeter()
        server = Server(instrument)
        endpoint = server.rep_endpoint
    else:
        endpoint = args.endpoint
    proxy = Proxy(endpoint)
    try:
        window = MeterWindow(proxy, args.measure_seconds)
        window.show()
        if args.quit_after is not None:
            QtCore.QTimer.singleShot(int(args.quit_after * 1000), window.close)
        print(f"qt_gui ready rep={endpoint}", flush=True)
        app.exec_() if hasattr(app, "exec_") else app.exec()
        print(f"qt_gui showed {window.readings} readings", flush=True)
    finally:
        proxy._proxy_stop_me()
        if server is not None:
            server.stop()
            instrument.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
