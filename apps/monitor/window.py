"""The pizco-monitor main window: live servers on the left, the selected one on the right.

Constructing ``MonitorWindow`` connects to the registry (``registry``, else
``PZC_REGISTRY``, else tcp://127.0.0.1:5777) and to the endpoints added by hand
(remembered with QSettings), and starts live updates. Nothing here waits for
the network: see controller.py.

Thread affinity: GUI thread.
"""
from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Dict, List, Optional

from qtpy import QtCore, QtGui, QtWidgets

from pizco_qt import config
from pizco_qt._qt import on_destroyed

from .controller import RegistryClient, ServerSession, describe_error
from .dialogs import CallDialog
from .layout import STYLE, WindowLayout, icon
from .models import AttributeModel, MethodModel, ServerListModel, _plain_annotations, is_number
from .servers import ServerListMixin
from .signal_models import SignalLogModel, SignalModel

Qt = QtCore.Qt

__all__ = ["MonitorWindow", "icon"]

#: Milliseconds between two updates of counters, log and plots.
TICK_MS = 100


class MonitorWindow(WindowLayout, ServerListMixin, QtWidgets.QMainWindow):
    """Lists live servers and shows the selected one's attributes, methods and signals.

    Parameters
    ----------
    registry : str, optional
        The registry endpoint (default ``PZC_REGISTRY``, else tcp://127.0.0.1:5777).
    parent : QWidget, optional
        Parent widget.
    timeout : float, optional
        Seconds to wait for a server's answer (default: ``PZC_TIMEOUT`` capped at 5).
    proxy_kwargs : dict, optional
        Extra keyword arguments for every Proxy (``protocol``, ``curve``...).
    """

    #: Signal(str) -- a server's row was selected (its key: registry name or endpoint).
    server_selected = QtCore.Signal(str)
    #: Signal() -- the window closed and stopped its connections.
    closed = QtCore.Signal()

    def __init__(self, registry: Optional[str] = None, parent: Optional[QtWidgets.QWidget] = None, *,
                 timeout: Optional[float] = None, proxy_kwargs: Optional[Dict[str, Any]] = None,
                 settings: Optional[config.Settings] = None) -> None:
        super().__init__(parent)
        #: What the environment sets (``PZC_*``) and the monitor's timings (``monitor_*``).
        self.settings = settings if settings is not None else config.Settings.from_environment()
        self.registry_endpoint = registry or self.settings.registry
        self.timeout = float(timeout) if timeout is not None else min(self.settings.timeout,
                                                                      self.settings.monitor_timeout)
        self.setWindowTitle("pizco-monitor")
        self.setWindowIcon(icon("pizco-monitor"))
        self.setObjectName("pizco_monitor")
        self.setStyleSheet(STYLE)
        self._proxy_kwargs = dict(proxy_kwargs or {})
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pizco-monitor")
        self.sessions: Dict[str, ServerSession] = {}
        self.current: Optional[ServerSession] = None
        self.call_dialog: Optional[CallDialog] = None
        self._shut = False
        self._header_at = 0.0  # when the header (and its uptime) was last written

        self.server_model = ServerListModel(self)
        self.attribute_model = AttributeModel(self)
        self.method_model = MethodModel(self)
        self.signal_model = SignalModel(self)
        self.log_model = SignalLogModel(parent=self)
        self._build()
        self._restore_settings()

        self.attribute_model.edit_requested.connect(self._write)
        self.attribute_model.edit_rejected.connect(lambda text: self.status(text, error=True))
        self.attribute_model.watch_toggled.connect(self._watch_toggled)
        self.signal_model.subscribe_toggled.connect(self._subscribe_toggled)

        self._tick = QtCore.QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._poll = QtCore.QTimer(self)
        self._poll.timeout.connect(self._on_poll)
        self._set_poll_interval()
        self._prune = QtCore.QTimer(self)
        self._prune.setInterval(2000)
        self._prune.timeout.connect(self._prune_stopped)
        self._prune.start()

        self.registry = RegistryClient(self.registry_endpoint, self._executor, settings=self.settings,
                                       timeout=min(self.timeout, self.settings.monitor_registry_timeout),
                                       proxy_kwargs=self._proxy_kwargs, parent=self)
        self.registry.state_changed.connect(self._registry_state)
        self.registry.listed.connect(self._registry_listed)
        self.registry.added.connect(self._registry_added)
        self.registry.removed.connect(self._registry_removed)
        self.registry.start()
        for endpoint in self._saved_endpoints():
            self.add_endpoint(endpoint, remember=False)
        self._show_server(None)
        self.servers.setFocus()

    # ================================================================== describing and reading
    def _described(self, session: ServerSession, desc: Dict[str, Dict[str, Any]]) -> None:
        if session is self.current:
            self._fill(session, desc)
            self.refresh()

    def _fill(self, session: ServerSession, desc: Dict[str, Dict[str, Any]]) -> None:
        attrs = [(n, str(d.get("type", "")), bool(d.get("writable"))) for n, d in desc.items()
                 if d.get("kind") == "attribute"]
        methods = [(n, str(d.get("signature", "(...)")), str(d.get("doc", ""))) for n, d in desc.items()
                   if d.get("kind") == "method"]
        signals = [n for n, d in desc.items() if d.get("kind") == "signal" or d.get("maybe_signal")]
        old_values = {n: self.attribute_model.row(n) for n in self.attribute_model.names()}
        if [a[0] for a in attrs] != self.attribute_model.names():
            self.attribute_model.set_attributes(attrs, session.watched)
        else:
            for name, _t, _w in attrs:
                row = old_values.get(name)
                if row is not None:
                    row.type, row.writable = _t, _w
        shown = [self.method_model.method(i) for i in range(self.method_model.rowCount())]
        if [(n, _plain_annotations(sig), doc) for n, sig, doc in methods] != shown:
            self.method_model.set_methods(methods)
        if signals != self.signal_model.names():
            self.signal_model.set_signals(signals, set(session.sinks))
            for name, sink in session.sinks.items():
                self.signal_model.update(name, sink.count, None, None, sink.rate)
        self._fit_columns()
        self.attributes_pane.title.setText(
            f"&Attributes <span style='color:#8a8f98;font-weight:400'>{len(attrs)}</span>")
        self.methods_pane.title.setText(
            f"&Methods <span style='color:#8a8f98;font-weight:400'>{len(methods)}</span>")
        self.signals_pane.title.setText(
            f"Si&gnals <span style='color:#8a8f98;font-weight:400'>{len(signals)}</span>")

    def _fit_columns(self) -> None:
        """Size the small columns to their contents; the wide ones (values, arguments) stretch."""
        limit = self.fontMetrics().averageCharWidth() * 28
        for view, cols in ((self.attributes, (0, 2, 3, 4)), (self.methods, (0, 1)), (self.signals, (0,))):
            for col in cols:
                view.resizeColumnToContents(col)
                if view.columnWidth(col) > limit:
                    view.setColumnWidth(col, limit)

    def refresh(self) -> None:
        """Read the selected server's attribute values again (without waiting)."""
        session = self.current
        if session is None:
            return
        if not session.online:
            self.status(f"{session.label} is {session.state}; nothing to read", error=True)
            return
        names = self.attribute_model.readable()
        if names:
            session.read(names)

    def _values_read(self, session: ServerSession, values: Dict[str, Any], took: float) -> None:
        now = time.time()
        for name in session.watched:
            if name in values and values[name][0] == "return" and is_number(values[name][1]):
                self.plot.add(f"{session.label}.{name}", [(now, values[name][1])])
        if session is self.current:
            self.attribute_model.set_values(values)
            errors = sum(1 for kind, _ in values.values() if kind != "return")
            if len(values) > 1:
                text = f"{session.label}: read {len(values)} attribute(s) in {took * 1000:.0f} ms"
                if errors:
                    text += f", {errors} failed"
                self.status(text, error=bool(errors) and errors == len(values), timeout_ms=3000)

    def _set_poll_interval(self, *_: Any) -> None:
        self._poll.setInterval(int(self.interval.value() * 1000))
        watching = any(s.watched for s in self.sessions.values()) if hasattr(self, "sessions") else False
        if self.auto_refresh.isChecked() or watching:
            self._poll.start()
        else:
            self._poll.stop()

    def _on_poll(self) -> None:
        for session in list(self.sessions.values()):
            if session is self.current and self.auto_refresh.isChecked():
                self.refresh()
            elif session.watched and session.online:
                session.read(sorted(session.watched))

    def _watch_toggled(self, name: str, on: bool) -> None:
        session = self.current
        if session is None:
            return
        if on:
            session.watched.add(name)
            row = self.attribute_model.row(name)
            if row is not None and row.loaded and not is_number(row.value):
                self.status(f"{name} is a {row.type}, not a number: it cannot be plotted", error=True)
            else:
                self.status(f"Plotting {session.label}.{name} every {self.interval.value():g} s")
        else:
            session.watched.discard(name)
            self.plot.remove(f"{session.label}.{name}")
        self._set_poll_interval()

    # ================================================================== writing and calling
    def _write(self, name: str, value: Any) -> None:
        session = self.current
        if session is None:
            return
        blocked = session.blocked_reason()
        if blocked is not None:  # say who holds it rather than sending a write that will be refused
            self.status(f"Cannot set {session.label}.{name}: {blocked}", error=True)
            session.read([name])
            return
        self.status(f"Setting {session.label}.{name} = {value!r}\u2026")

        def done(exc: Optional[BaseException], session: ServerSession = session) -> None:
            if exc is None:
                self.status(f"Set {session.label}.{name} = {value!r}")
            else:
                self.status(f"Could not set {session.label}.{name}: {describe_error(exc)}", error=True)
            session.read([name])

        session.write(name, value, done)

    def _call_selected(self) -> None:
        index = self.methods.currentIndex()
        self.open_call_dialog(index.row() if index.isValid() else 0)

    def open_call_dialog(self, row: int) -> Optional[CallDialog]:
        """Open the call dialog of the method in ``row`` of the method list."""
        session = self.current
        method = self.method_model.method(row)
        if session is None or method is None:
            self.status("Select a server and one of its methods first", error=True)
            return None
        name, signature, doc = method
        blocked = session.blocked_reason()
        if blocked is not None and not (session.description or {}).get(name, {}).get("readonly"):
            self.status(f"Cannot call {session.label}.{name}(): {blocked}", error=True)
            return None
        if self.call_dialog is not None:
            try:
                self.call_dialog.close()
            except RuntimeError:
                pass
        dialog = CallDialog(session.label, name, signature, doc,
                            lambda args, kwargs: session.call(name, args, kwargs), session.watch_future, self)
        dialog.succeeded.connect(lambda result: self.status(f"{session.label}.{name}() returned"))
        dialog.failed.connect(lambda exc: self.status(f"{session.label}.{name}() raised {type(exc).__name__}",
                                                      error=True))
        on_destroyed(dialog, lambda: setattr(self, "call_dialog", None))  # not a lambda on destroyed: PyQt crash
        self.call_dialog = dialog
        dialog.show()
        return dialog

    # ================================================================== signals
    def _subscribe_toggled(self, name: str, on: bool) -> None:
        session = self.current
        if session is None:
            return
        if on:
            self.status(f"Subscribing to {session.label}.{name}\u2026")
            session.subscribe(name)
        else:
            session.unsubscribe(name)
            self.plot.remove(f"{session.label}.{name}")
            self.status(f"Unsubscribed from {session.label}.{name}")

    def _subscription_changed(self, session: ServerSession, name: str, on: bool, error: str) -> None:
        if session is self.current:
            self.signal_model.set_subscribed(name, on)
        if error:
            self.status(f"Could not subscribe to {session.label}.{name}: {error}", error=True)

    def _log_scrolled(self, value: int) -> None:
        self._follow_log = value >= self.log.verticalScrollBar().maximum() - 2

    def _on_tick(self) -> None:
        log_items = []
        for session in list(self.sessions.values()):
            for name, sink in list(session.sinks.items()):
                count, items = sink.drain()
                if session is self.current:
                    last = items[-1] if items else (None, None)
                    self.signal_model.update(name, count, last[1], last[0], sink.rate)
                if not items:
                    continue
                log_items.extend((t, session.label, name, args) for t, args in items)
                self._plot_emissions(session.label, name, items)
        if log_items:
            log_items.sort(key=lambda item: item[0])
            self.log_model.append(log_items)
            if not self._log_fitted:
                self._log_fitted = True
                for col in (1, 2):
                    self.log.resizeColumnToContents(col)
            if self._follow_log:
                self.log.scrollToBottom()
        if self.plot.available:
            self.plot.redraw()
        now = time.monotonic()
        if now - self._header_at >= 1.0:  # keep the selected server's uptime current
            self._update_header()
        self.attribute_model.fade()

    def _plot_emissions(self, server: str, name: str, items: List[Any]) -> None:
        if not self.plot.available:
            return
        series: Dict[int, List[Any]] = {}
        width = 0
        for t, args in items:
            width = max(width, len(args))
            for i, arg in enumerate(args):
                if is_number(arg):
                    series.setdefault(i, []).append((t, arg))
        for i, samples in series.items():
            label = f"{server}.{name}" if width == 1 else f"{server}.{name}[{i}]"
            self.plot.add(label, samples)

    # ================================================================== closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        """Closing stops every connection of the window (the servers keep running)."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop timers, proxies and worker threads (idempotent)."""
        if self._shut:
            return
        self._shut = True
        try:
            self._store_settings()
        except Exception:  # settings are a convenience
            pass
        for timer in (self._tick, self._poll, self._prune):
            timer.stop()
        if self.call_dialog is not None:
            try:
                self.call_dialog.close()
            except RuntimeError:
                pass
        self.registry.close()
        for session in list(self.sessions.values()):
            session.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.closed.emit()
