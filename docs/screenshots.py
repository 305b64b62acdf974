"""Make the README's screenshots of the monitor and of the status window.

    python docs/screenshots.py [--quick] [OUTDIR]        (default: docs/images)

Needs the ``demo`` extra (``pip install -e ".[demo]"``): it serves the demo's
simulated TC-1 temperature controller and a MultiplyBy from examples/, both
registered with a registry of its own on a free port, then shows
``pizco_qt.apps.monitor.MonitorWindow`` with the instrument selected, its
temperature signal subscribed and plotted, and
``pizco_qt.apps.status.StatusWindow`` of the instrument's server after some
traffic. Each window is saved with ``widget.grab()``. It runs headless
(``QT_QPA_PLATFORM=offscreen`` unless set), leaves the user's monitor settings
alone, and stops everything it started. ``--quick`` waits less for the live
figures (tests/test_screenshots.py uses it to check that the script works).

Runs on the main thread, which owns the QApplication.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any, Callable, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MONITOR_SIZE = (1440, 860)
STATUS_SIZE = (960, 640)


def wait_for(app: Any, condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Run the Qt event loop until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"screenshots: timed out waiting for {what}")
        app.processEvents()
        threading.Event().wait(0.02)


def settle(app: Any, seconds: float) -> None:
    """Let the windows update for ``seconds`` (live figures, plots)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        threading.Event().wait(0.02)


def save(widget: Any, path: str) -> str:
    """Grab ``widget`` into the PNG file ``path``."""
    if not widget.grab().save(path):
        raise RuntimeError(f"screenshots: could not write {path}")
    return path


def main(argv: List[str]) -> int:
    """Write monitor.png and status-window.png into the output folder; returns the exit status."""
    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    outdir = os.path.abspath(argv[0] if argv else os.path.join(ROOT, "docs", "images"))
    os.makedirs(outdir, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, os.path.join(ROOT, "examples"))

    from qtpy import QtCore, QtWidgets
    from qtpy.QtTest import QTest

    from example import MultiplyBy
    from pizco_qt import Proxy, Server
    from pizco_qt.apps.demo import start_demo
    from pizco_qt.apps.monitor import MonitorWindow
    from pizco_qt.apps.status import StatusWindow
    from pizco_qt.registry import serve_registry

    logging.getLogger().setLevel(logging.INFO)  # the status window's log pane shows INFO and above
    settings_dir = tempfile.TemporaryDirectory(prefix="pizco-screenshots-")
    QtCore.QSettings.setPath(QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, settings_dir.name)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["pizco-monitor"])
    if "Fusion" in QtWidgets.QStyleFactory.keys():
        app.setStyle("Fusion")

    started: List[Any] = []
    try:
        registry = serve_registry("tcp://127.0.0.1:0")
        started.append(registry)
        os.environ["PZC_REGISTRY"] = registry.rep_endpoint
        demo = start_demo(registry.rep_endpoint)
        started.append(demo)
        multiplier = Server(MultiplyBy(2), name="multiplier")
        started.append(multiplier)

        # -- the monitor: instrument selected, temperature subscribed and plotted
        window = MonitorWindow(registry.rep_endpoint)
        started.append(window)
        window.resize(*MONITOR_SIZE)
        window.show()
        listed = lambda: {window.servers.model().index(r, 0).data()  # noqa: E731
                          for r in range(window.servers.model().rowCount())}
        wait_for(app, lambda: {demo.name, "multiplier"} <= listed(), 20, "the servers to be listed")
        window.select_server(demo.name)
        wait_for(app, lambda: "temperature_changed" in window.signal_model.names(), 20, "the signal pane")
        wait_for(app, lambda: "setpoint" in window.attribute_model.names(), 20, "the attribute pane")
        wait_for(app, lambda: all(window.attribute_model.row(n).loaded for n in window.attribute_model.names()),
                 20, "the attribute values")
        model = window.signal_model
        window.signals.setFocus()
        window.signals.setCurrentIndex(model.index(model.names().index("temperature_changed"), 0))
        QTest.keyClick(window.signals, QtCore.Qt.Key_Space)
        wait_for(app, lambda: model.row("temperature_changed").subscribed, 20, "the subscription")
        client = Proxy(demo.endpoint)
        started.append(client)
        client.setpoint = 310.0  # the plot shows the temperature climbing towards it
        settle(app, 1.0 if quick else 20.0)
        monitor_png = save(window, os.path.join(outdir, "monitor.png"))

        # -- the status window of the instrument's server, after some traffic
        status = StatusWindow(demo.server)
        started.append(status)
        status.resize(*STATUS_SIZE)
        status.show()
        camera = Server(MultiplyBy(3), name="camera")  # its registration shows in the log pane
        started.append(camera)
        for _ in range(25):
            client.measure()  # requests the window counts
        try:
            client.setpoint = -5.0  # refused by the instrument: shown under recent errors
        except Exception:
            pass
        settle(app, 0.5 if quick else 1.5)
        status_png = save(status, os.path.join(outdir, "status-window.png"))
    finally:
        for thing in reversed(started):
            try:
                if hasattr(thing, "_proxy_stop_me"):
                    thing._proxy_stop_me()
                elif isinstance(thing, QtWidgets.QWidget):
                    thing.close()
                else:
                    thing.stop()
            except Exception as exc:  # report, and keep stopping the rest
                print(f"screenshots: stopping {thing!r}: {exc}", file=sys.stderr)
        os.environ.pop("PZC_REGISTRY", None)
        app.processEvents()
        settings_dir.cleanup()
    for path in (monitor_png, status_png):
        print(f"wrote {os.path.relpath(path, os.getcwd())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
