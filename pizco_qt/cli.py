"""The ``pizco-server`` command line (also ``python -m pizco_qt``).

Serves one object (``--serve module:Class``) or an empty server that a client
fills with ``proxy._proxy_agent.instantiate(...)``. The served object is created
first and the endpoints are bound only afterwards; the bound endpoints are then
printed on stdout as one parseable line::

    pizco-server ready rep=tcp://127.0.0.1:41235 pub=tcp://127.0.0.1:40211

Once the object exists, SIGINT and SIGTERM only set a flag and wake the main
loop (``select`` on a socket pair headless, a QSocketNotifier under Qt, both fed
by ``signal.set_wakeup_fd``); the loop then unregisters, stops and exits 0.
Before that, Ctrl+C interrupts a slow import or constructor (exit status 130). With
``--watch-stdin`` the server also stops when its standard input reaches
end-of-file (``serve_in_process`` uses this so a child dies with its parent).

Thread affinity: ``main()`` runs on the main thread of its process; two small
daemon threads watch stdin and the server's end.
"""
from __future__ import annotations

import argparse
import ast
import logging
import os
import select
import signal
import socket
import sys
import threading
import traceback
from typing import Any, List, Optional, Sequence, Tuple

from .config import DEFAULTS
from .endpoints import with_port
from .security import add_curve_arguments, curve_from_args

logger = logging.getLogger(__name__)

__all__ = ["main", "build_parser", "READY_FORMAT"]

#: The ready line printed on stdout once the endpoints are bound.
READY_FORMAT = "pizco-server ready rep={rep} pub={pub}"

_EXAMPLES = """\
examples:
  pizco-server tcp://127.0.0.1:8000 --serve instruments:Lamp -p ~/lab
  pizco-server tcp://127.0.0.1:0 --serve mylab.stage:Stage --args "('COM3',)" --kwargs "{'speed': 2}" -g
  pizco-server tcp://127.0.0.1:8000            (empty: a client calls proxy._proxy_agent.instantiate)

Once bound it prints "pizco-server ready rep=<endpoint> pub=<endpoint>" on stdout.
Ctrl+C or SIGTERM stops it cleanly (exit status 0). The HMAC key comes from PZC_KEY,
the serializer from PZC_SER.
"""


# ------------------------------------------------------------------ arguments
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pizco-server``."""
    parser = argparse.ArgumentParser(
        prog="pizco-server",
        description="Serve a Python object over ZeroMQ so pizco_qt proxies (or Pizco clients) can use it.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rep_endpoint", help="endpoint answering requests, e.g. tcp://127.0.0.1:8000 "
                                             "(port 0 picks a free port)")
    parser.add_argument("pub_endpoint", nargs="?", default=None,
                        help="endpoint publishing signals (default: same host, a free port)")
    parser.add_argument("--serve", metavar="MODULE:CLASS",
                        help="class to instantiate and serve, e.g. mylab.stage:Stage (default: start empty)")
    parser.add_argument("--args", metavar="LITERAL", default=None,
                        help="constructor arguments as a Python literal: a tuple such as \"(1, 'a')\", "
                             "or any other literal for one argument")
    parser.add_argument("--kwargs", metavar="LITERAL", default=None,
                        help="constructor keyword arguments as a Python dict literal, e.g. \"{'port': 'COM3'}\"")
    parser.add_argument("-p", "--path", metavar="DIR", action="append", default=[],
                        help="directory to put in front of sys.path (repeatable)")
    parser.add_argument("--name", help="register the server under this name with the registry")
    parser.add_argument("-g", "--gui", action="store_true", help="show the status window")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="allow binding a non-loopback address with no key (PZC_KEY) and no CURVE "
                             "(any peer that reaches the port can then drive the server)")
    parser.add_argument("--instantiable", metavar="MODULE:CLASS", action="append", default=None,
                        help="with no --serve: a class that remote 'instantiate' may create (repeatable); "
                             "default: any class for pickle, none for json")
    add_curve_arguments(parser, "server")
    parser.add_argument("--watch-stdin", action="store_true",
                        help="stop when standard input is closed (used by serve_in_process so the "
                             "server ends with its parent)")
    return parser


def _default_pub(rep: str) -> str:
    return with_port(rep, 0) or rep + "-pub"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the arguments; exits with status 2 and the usage line on bad input."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    for attr in ("rep_endpoint", "pub_endpoint"):
        ep = getattr(ns, attr)
        if ep is not None and ("://" not in ep or not ep.split("://", 1)[1]):
            parser.error(f"{attr.replace('_', ' ')} {ep!r} is not a ZMQ endpoint (e.g. tcp://127.0.0.1:8000)")
    if ns.pub_endpoint is None:
        ns.pub_endpoint = _default_pub(ns.rep_endpoint)
    ns.curve = curve_from_args(parser, ns, "server")
    if ns.serve is None and (ns.args is not None or ns.kwargs is not None):
        parser.error("--args and --kwargs need --serve MODULE:CLASS")
    if ns.serve is not None:
        mod, sep, qual = ns.serve.replace(":", ".").rpartition(".")
        if not mod or not qual or not all(p.isidentifier() for p in ns.serve.replace(":", ".").split(".")):
            parser.error(f"--serve {ns.serve!r}: expected MODULE:CLASS, e.g. mylab.stage:Stage")
    for spec in ns.instantiable or ():
        mod, sep, qual = spec.replace(":", ".").rpartition(".")
        if not mod or not all(p.isidentifier() for p in spec.replace(":", ".").split(".")):
            parser.error(f"--instantiable {spec!r}: expected MODULE:CLASS, e.g. mylab.stage:Stage")
    ctor_args: Tuple[Any, ...] = ()
    if ns.args is not None:
        try:
            value = ast.literal_eval(ns.args)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parser.error(f"--args {ns.args!r} is not a Python literal (quote strings: \"('COM3',)\")")
        ctor_args = value if isinstance(value, tuple) else (value,)
    ctor_kwargs: dict = {}
    if ns.kwargs is not None:
        try:
            value = ast.literal_eval(ns.kwargs)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            parser.error(f"--kwargs {ns.kwargs!r} is not a dict literal with str keys (e.g. \"{{'speed': 2}}\")")
        ctor_kwargs = value
    ns.ctor_args, ns.ctor_kwargs = ctor_args, ctor_kwargs
    for d in ns.path:
        if not os.path.exists(d):
            parser.error(f"--path {d!r}: no such directory")
    return ns


# ------------------------------------------------------------------ stopping
class _StopControl:
    """A stop flag plus a wake-up socket pair that signal handlers and threads may poke."""

    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._old_handlers: List[Tuple[int, Any]] = []
        self._old_wakeup: Optional[int] = None

    def fileno(self) -> int:
        return self._r.fileno()

    def request(self, reason: str) -> None:
        """Ask the main loop to stop (any thread)."""
        if self.reason is None:
            self.reason = reason
        try:
            self._w.send(b"\0")
        except OSError:  # full (a wake-up is pending) or closed
            pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        # only a flag: the wake-up fd already woke the loop
        if self.reason is None:
            self.reason = signal.Signals(signum).name

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers.append((sig, signal.signal(sig, self._on_signal)))
        self._old_wakeup = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)

    def drain(self) -> None:
        try:
            while self._r.recv(4096):
                pass
        except OSError:
            pass

    def wait(self) -> str:
        """Block (headless) until a stop is requested; returns the reason."""
        while self.reason is None:
            try:
                select.select([self._r], [], [], DEFAULTS.interrupt_check_interval)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                pass
            self.drain()
        return self.reason

    def close(self) -> None:
        if self._old_wakeup is not None:
            signal.set_wakeup_fd(self._old_wakeup)
        for sig, old in self._old_handlers:
            signal.signal(sig, old)
        self._old_handlers.clear()
        self._r.close()
        self._w.close()


def _watch_stdin(control: _StopControl) -> None:
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        control.request("no standard input to watch")
        return

    def run() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        control.request("standard input closed (parent gone)")

    threading.Thread(target=run, name="pizco-stdin-watch", daemon=True).start()


def _watch_server(server: Any, control: _StopControl) -> threading.Thread:
    # The thread holds the server's stop event, never the server: a daemon thread
    # that drops the last reference to Qt objects while the interpreter exits
    # aborts the process.
    done = server.stopped_event

    def run() -> None:
        done.wait()
        control.request("server stopped")

    watcher = threading.Thread(target=run, name="pizco-server-watch", daemon=True)
    watcher.start()
    return watcher


# ------------------------------------------------------------------ serving
def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.addHandler(handler)
    # INFO still reaches the status window's log pane
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _fail(message: str, status: int = 1) -> int:
    sys.stderr.write(f"pizco-server: error: {message}\n")
    sys.stderr.flush()
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pizco-server``; returns the exit status (0 after a clean stop, 1 if it cannot start)."""
    ns = parse_args(argv)
    from .limits import raise_open_files_limit

    raise_open_files_limit()  # a server with many clients needs descriptors
    _configure_logging(ns.verbose)
    for d in reversed(ns.path):
        sys.path.insert(0, os.path.abspath(os.path.expanduser(d)))
    control = _StopControl()
    try:
        return _run(ns, control)
    finally:
        control.close()


def _run(ns: argparse.Namespace, control: _StopControl) -> int:
    from .dispatch import import_class
    from .server import Server

    if ns.watch_stdin:
        _watch_stdin(control)
    cls = None
    if ns.serve:
        try:
            cls = import_class(ns.serve)
        except KeyboardInterrupt:
            return _fail("interrupted", 130)
        except BaseException as exc:
            traceback.print_exc()
            return _fail(f"cannot import {ns.serve}: {type(exc).__name__}: {exc}")
    app = _make_app(ns.gui, cls)
    obj = None
    if cls is not None:
        try:
            obj = cls(*ns.ctor_args, **ns.ctor_kwargs)
        except KeyboardInterrupt:
            return _fail("interrupted", 130)
        except BaseException as exc:
            traceback.print_exc()
            return _fail(f"constructing {ns.serve} failed: {type(exc).__name__}: {exc}")
    # Until here Ctrl+C interrupts a slow import or constructor; from now on SIGINT
    # and SIGTERM only set the flag, and the loop below stops cleanly.
    control.install()
    if control.reason is not None:
        return 0  # the parent went away while the object was being built
    try:
        server = Server(obj, ns.rep_endpoint, ns.pub_endpoint, name=ns.name, allow_insecure=ns.allow_insecure,
                        curve=ns.curve, instantiable=ns.instantiable)
    except BaseException as exc:
        return _fail(str(exc))
    what = type(obj).__name__ if obj is not None else "an empty server"
    window = None
    watcher = None
    try:
        if ns.gui:
            from .apps.status import StatusWindow

            window = StatusWindow(server)
            window.show()

        def announce() -> None:
            logger.info("serving %s at %s (publishing at %s)", what, server.rep_endpoint, server.pub_endpoint)
            sys.stdout.write(READY_FORMAT.format(rep=server.rep_endpoint, pub=server.pub_endpoint) + "\n")
            sys.stdout.flush()

        watcher = _watch_server(server, control)
        if app is not None:
            # ready only once the event loop runs: a served QObject is then called in its thread
            _qt_loop(app, control, window, announce)
        else:
            announce()
            control.wait()
        logger.info("stopping: %s", control.reason or "window closed")
    finally:
        if window is not None:
            window.close()
        server.stop()  # also waits for a remote 'stop' being carried out
        if watcher is not None:
            watcher.join(server.settings.stop_timeout)
    return 0


def _make_app(gui: bool, cls: Any) -> Any:
    """The program's Q(Core)Application: QApplication with -g, QCoreApplication for a served QObject."""
    from qtpy import QtCore

    if gui:
        from qtpy import QtWidgets

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0] or "pizco-server"])
        app.setApplicationName("pizco-server")
        return app
    if isinstance(cls, type) and issubclass(cls, QtCore.QObject):
        # a served QObject gets an event loop in its thread, as it would in a Qt program
        return QtCore.QCoreApplication.instance() or QtCore.QCoreApplication([sys.argv[0] or "pizco-server"])
    return None


def _qt_loop(app: Any, control: _StopControl, window: Any, announce: Any) -> None:
    from qtpy import QtCore

    start = QtCore.QTimer()
    start.setSingleShot(True)
    start.timeout.connect(announce)
    start.start(0)
    notifier = QtCore.QSocketNotifier(control.fileno(), QtCore.QSocketNotifier.Read)

    def woken() -> None:
        control.drain()
        if control.reason is not None:
            app.quit()

    notifier.activated.connect(woken)
    if window is not None:
        window.closed.connect(lambda: control.request("status window closed"))
    if control.reason is None:
        run = getattr(app, "exec_", None) or app.exec
        run()
    notifier.setEnabled(False)
    notifier.deleteLater()
