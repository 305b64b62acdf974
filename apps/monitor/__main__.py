"""``pizco-monitor`` (``python -m pizco_qt.apps.monitor``): parse arguments and show the window.

Thread affinity: the main thread (it creates the QApplication and runs its loop).
"""
from __future__ import annotations

import argparse
import signal
import sys
from typing import List, Optional

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The command line of pizco-monitor."""
    parser = argparse.ArgumentParser(
        prog="pizco-monitor",
        description="Watch live pizco_qt servers: their attributes, methods and signals.")
    parser.add_argument("registry", nargs="?", default=None,
                        help="registry endpoint (default: PZC_REGISTRY, else tcp://127.0.0.1:5777)")
    parser.add_argument("--add", action="append", default=[], metavar="ENDPOINT",
                        help="also show the server at ENDPOINT (repeatable; remembered)")
    parser.add_argument("--demo", action="store_true",
                        help="start a registry (unless one runs) and a simulated instrument "
                             "server (needs the 'demo' extra), and show them")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="seconds to wait for a server's answer (default: PZC_TIMEOUT, at most 5)")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="accepted as pizco-server does; the monitor binds nothing itself and "
                             "the --demo servers bind 127.0.0.1, which needs no opt-in")
    from pizco_qt.security import add_curve_arguments

    add_curve_arguments(parser, "client")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the monitor; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from pizco_qt.limits import raise_open_files_limit
    from pizco_qt.security import curve_from_args

    raise_open_files_limit()  # one proxy per server shown

    curve = curve_from_args(parser, args, "client")
    from qtpy import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("pizco-monitor")
    app.setOrganizationName("pizco_qt")
    if "Fusion" in QtWidgets.QStyleFactory.keys():
        app.setStyle("Fusion")
    demo = None
    registry = args.registry
    if args.demo:
        try:
            from pizco_qt.apps.demo import start_demo

            demo = start_demo(registry)
        except ImportError as exc:
            print(f"pizco-monitor: the demo needs its extra: pip install \"pizco-qt[demo]\" ({exc})",
                  file=sys.stderr)
            return 1
        registry = demo.registry_endpoint
    from pizco_qt.apps.monitor.window import MonitorWindow

    try:
        window = MonitorWindow(registry, timeout=args.timeout,
                               proxy_kwargs={"curve": curve} if curve is not None else None)
        for endpoint in args.add:
            window.add_endpoint(endpoint)
        if demo is not None:
            if not demo.has_registry:
                window.add_endpoint(demo.endpoint, remember=False)
            window.status(f"Demo: {demo.name} serves a simulated TC-1 temperature controller at "
                          f"{demo.endpoint}", timeout_ms=15000)
        window.show()
        # Ctrl+C in the terminal closes the window: a timer lets Python see the signal
        signal.signal(signal.SIGINT, lambda *_: window.close())
        tick = QtCore.QTimer()
        tick.start(250)
        tick.timeout.connect(lambda: None)
        return app.exec_()
    finally:
        if demo is not None:
            demo.stop()


if __name__ == "__main__":
    sys.exit(main())
