"""StationWindow: the live list of a station's servers (``pizco-station FILE --gui``).

One row per server: its state, pid, REP and PUB endpoints, uptime, automatic
restarts and last error, read from ``station.status()`` twice a second by an
owned QTimer (the status is a snapshot taken under the station's lock, so the
window never waits on a child). The buttons stop, start and restart the
selected server (in a short-lived worker thread, since a clean stop or a start
takes up to seconds) and open the monitor on it. Closing the window asks for
confirmation, then stops the station.

Thread affinity: GUI thread; the actions' worker threads only call the
station and hand their outcome back through a deque the timer drains.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from qtpy import QtCore, QtGui, QtWidgets

from ..monitor.layout import row_list
from ..monitor.models import RowTableModel
from ..status.window import _icon, format_duration

__all__ = ["StationWindow", "StationModel", "REFRESH_MS"]

Qt = QtCore.Qt

#: Refresh period of the server list (ms).
REFRESH_MS = 500

_STATE_COLORS = {"running": "#23915a", "starting": "#d99a1e", "restarting": "#d99a1e",
                 "failed": "#c0392b", "stopped": "#8a8f98"}

_STYLE = """
QWidget#header { background: palette(base); border-bottom: 1px solid palette(mid); }
QLabel#stationName { font-size: 17pt; font-weight: 600; }
QLabel#summary { color: palette(dark); }
"""


def _state_icon(state: str, size: int = 12) -> QtGui.QIcon:
    pixmap = QtGui.QPixmap(size, size)
    pixmap.fill(Qt.transparent)
    painter = QtGui.QPainter(pixmap)
    painter.setRenderHint(QtGui.QPainter.Antialiasing)
    painter.setPen(Qt.NoPen)
    painter.setBrush(QtGui.QColor(_STATE_COLORS.get(state, "#8a8f98")))
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QtGui.QIcon(pixmap)


class StationModel(RowTableModel):
    """The station's servers, one row each (refreshed from ``station.status()``)."""

    COLUMNS = ("Name", "State", "PID", "REP endpoint", "PUB endpoint", "Uptime", "Restarts", "Last error")
    NAME, STATE, PID, REP, PUB, UPTIME, RESTARTS, ERROR = range(8)
    TOOLTIPS = {STATE: "starting, running, restarting (waiting for its backoff), failed or stopped",
                RESTARTS: "automatic restarts by the station's supervisor",
                ERROR: "why it last failed (with the last lines of its stderr in the tooltip)"}

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._rows: List[Dict[str, Any]] = []

    def text(self, row: int, col: int) -> str:
        """The text shown in a cell."""
        s = self._rows[row]
        if col == self.NAME:
            return s["name"]
        if col == self.STATE:
            return s["state"]
        if col == self.PID:
            return "" if s["pid"] is None else str(s["pid"])
        if col == self.REP:
            return s.get("rep_endpoint") or ""
        if col == self.PUB:
            return s.get("pub_endpoint") or ""
        if col == self.UPTIME:
            return "" if s["uptime"] is None else format_duration(s["uptime"])
        if col == self.RESTARTS:
            return str(s["restarts"])
        error = s.get("last_error") or ""
        return error.splitlines()[0] if error else ""

    def data(self, index: QtCore.QModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        s = self._rows[row]
        if role == Qt.DisplayRole:
            return self.text(row, col)
        if role == Qt.DecorationRole and col == self.STATE:
            return _state_icon(s["state"])
        if role == Qt.ForegroundRole and col == self.STATE:
            return QtGui.QBrush(QtGui.QColor(_STATE_COLORS.get(s["state"], "#8a8f98")))
        if role == Qt.FontRole and col in (self.NAME, self.STATE):
            font = QtGui.QFont()
            font.setBold(True)
            return font
        if role == Qt.FontRole and col in (self.REP, self.PUB, self.PID):
            return QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
        if role == Qt.ToolTipRole:
            lines = [f"{s['name']}: {s.get('class', '')}", f"state: {s['state']}",
                     f"restart policy: {s.get('restart', '')}"]
            if s.get("last_error"):
                lines += ["", "last error:", s["last_error"]]
            return "\n".join(lines)
        if role == Qt.TextAlignmentRole and col in (self.PID, self.UPTIME, self.RESTARTS):
            return Qt.AlignRight | Qt.AlignVCenter
        if role == Qt.UserRole:
            return s["name"]
        return None

    def set_status(self, rows: List[Dict[str, Any]]) -> None:
        """Show ``rows`` (a ``station.status()`` list); the rows are the station's fixed servers."""
        if [r["name"] for r in rows] != [r["name"] for r in self._rows]:
            self.beginResetModel()
            self._rows = list(rows)
            self.endResetModel()
            return
        self._rows = list(rows)
        if rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(self.COLUMNS) - 1))

    def row(self, name: str) -> Dict[str, Any]:
        """The status dict of server ``name`` (KeyError if absent)."""
        for r in self._rows:
            if r["name"] == name:
                return r
        raise KeyError(name)

    def name_at(self, row: int) -> Optional[str]:
        return self._rows[row]["name"] if 0 <= row < len(self._rows) else None


class StationWindow(QtWidgets.QMainWindow):
    """The live list of ``station``'s servers, with stop/start/restart/monitor buttons.

    Closing it asks for confirmation, then stops the station (``closed`` is
    emitted afterwards). The server list is an item view with objectName
    ``servers``.

    Thread affinity: GUI thread.
    """

    #: Signal() -- the window closed and stopped the station.
    closed = QtCore.Signal()

    def __init__(self, station: Any, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.station = station
        self._outcomes: Deque[Tuple[str, Optional[BaseException]]] = collections.deque()
        self._busy: Dict[str, str] = {}   # server name -> what is being done to it
        self._workers: List[threading.Thread] = []
        self._closing = False
        self._ask = True
        self.monitor: Optional[Any] = None
        self._monitor_target: Optional[str] = None
        self.setWindowTitle(f"{station.name} \u2014 pizco-station")
        self.setWindowIcon(_icon("pizco-server.svg"))
        self.setStyleSheet(_STYLE)
        self.resize(1040, 400)

        header = QtWidgets.QWidget()
        header.setObjectName("header")
        hl = QtWidgets.QHBoxLayout(header)
        logo = QtWidgets.QLabel()
        logo.setPixmap(_icon("pizco-server.svg").pixmap(40, 40))
        hl.addWidget(logo)
        titles = QtWidgets.QVBoxLayout()
        self.name_label = QtWidgets.QLabel(f"Station {station.name}")
        self.name_label.setObjectName("stationName")
        self.summary_label = QtWidgets.QLabel()
        self.summary_label.setObjectName("summary")
        self.summary_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        titles.addWidget(self.name_label)
        titles.addWidget(self.summary_label)
        hl.addLayout(titles, 1)

        self.model = StationModel(self)
        self.servers = row_list("servers", self.model)
        head = self.servers.header()
        head.setStretchLastSection(True)
        head.setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)
        head.setMinimumSectionSize(48)

        self.stop_button = QtWidgets.QPushButton(_icon("stop.svg"), "&Stop")
        self.stop_button.setObjectName("stop_button")
        self.start_button = QtWidgets.QPushButton("S&tart")
        self.start_button.setObjectName("start_button")
        self.restart_button = QtWidgets.QPushButton(_icon("refresh.svg"), "&Restart")
        self.restart_button.setObjectName("restart_button")
        self.monitor_button = QtWidgets.QPushButton(_icon("pizco-monitor.svg"), "Open &monitor")
        self.monitor_button.setObjectName("monitor_button")
        self.stop_button.setToolTip("Stop the selected server cleanly; the station leaves it stopped")
        self.start_button.setToolTip("Start the selected server again (a fresh failure count)")
        self.restart_button.setToolTip("Stop the selected server cleanly and start it on the same endpoints")
        self.monitor_button.setToolTip("Open pizco-monitor on the selected server")
        self.stop_button.clicked.connect(lambda: self._act("stopping", self.station.stop_server))
        self.start_button.clicked.connect(lambda: self._act("starting", self.station.start_server))
        self.restart_button.clicked.connect(lambda: self._act("restarting", self.station.restart))
        self.monitor_button.clicked.connect(lambda: self.open_monitor())
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.stop_button, self.start_button, self.restart_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.monitor_button)

        self.error_view = QtWidgets.QPlainTextEdit()
        self.error_view.setObjectName("last_error")
        self.error_view.setReadOnly(True)
        self.error_view.setMaximumHeight(96)
        self.error_view.setPlaceholderText("The last error of the selected server appears here.")
        self.error_view.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont))

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 6)
        layout.addWidget(header)
        body = QtWidgets.QVBoxLayout()
        body.setContentsMargins(8, 4, 8, 0)
        body.addWidget(self.servers, 1)
        body.addLayout(buttons)
        body.addWidget(self.error_view)
        layout.addLayout(body, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage(f"Registry {station.registry}")

        self.servers.selectionModel().currentRowChanged.connect(lambda *_: self._update_buttons())
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(REFRESH_MS)
        self.refresh()
        if self.model.rowCount():
            self.servers.setCurrentIndex(self.model.index(0, 0))

    # ---------------------------------------------------------------- live state
    def refresh(self) -> None:
        """Read the station's status now and show it (the timer calls this twice a second)."""
        while self._outcomes:
            what, exc = self._outcomes.popleft()
            if exc is None:
                self.statusBar().showMessage(what, 6000)
            else:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.statusBar().showMessage(f"{what} failed: {first}", 15000)
        self._workers = [t for t in self._workers if t.is_alive()]
        rows = self.station.status()
        self.model.set_status(rows)
        counts = collections.Counter(r["state"] for r in rows)
        parts = [f"{counts[s]} {s}" for s in ("running", "starting", "restarting", "failed", "stopped") if counts[s]]
        restarts = sum(r["restarts"] for r in rows)
        self.summary_label.setText(f"{len(rows)} server(s): {', '.join(parts) or 'none'}  \u00b7  "
                                   f"{restarts} automatic restart(s)  \u00b7  registry {self.station.registry}")
        self._update_buttons()

    def selected_name(self) -> Optional[str]:
        """The name of the selected server, or None."""
        index = self.servers.currentIndex()
        return self.model.name_at(index.row()) if index.isValid() else None

    def select(self, name: str) -> None:
        """Select the row of server ``name``."""
        for row in range(self.model.rowCount()):
            if self.model.name_at(row) == name:
                self.servers.setCurrentIndex(self.model.index(row, 0))
                return
        raise KeyError(name)

    def _update_buttons(self) -> None:
        name = self.selected_name()
        state = None
        if name is not None:
            row = self.model.row(name)
            state = row["state"]
            error = row.get("last_error")
            text = f"{name} ({row['state']}, restart = {row.get('restart')}): {error}" if error else ""
            if self.error_view.toPlainText() != text:
                self.error_view.setPlainText(text)
        idle = name is not None and name not in self._busy and not self._closing
        self.stop_button.setEnabled(idle and state in ("starting", "running", "restarting"))
        self.start_button.setEnabled(idle and state in ("stopped", "failed", "restarting"))
        self.restart_button.setEnabled(idle and state in ("running", "failed", "stopped", "restarting"))
        self.monitor_button.setEnabled(name is not None)

    # ---------------------------------------------------------------- actions
    def _act(self, doing: str, action: Callable[[str], None], name: Optional[str] = None) -> Optional[threading.Thread]:
        name = name or self.selected_name()
        if name is None or name in self._busy:
            return None
        self._busy[name] = doing
        self.statusBar().showMessage(f"{doing.capitalize()} {name}\u2026")

        def run() -> None:
            exc: Optional[BaseException] = None
            try:
                action(name)
            except BaseException as e:  # shown in the status bar
                exc = e
            self._busy.pop(name, None)
            self._outcomes.append((f"{doing.capitalize()} {name}" + (": done" if exc is None else ""), exc))

        worker = threading.Thread(target=run, name=f"pizco-station-window {doing} {name}", daemon=True)
        self._workers.append(worker)
        worker.start()
        self._update_buttons()
        return worker

    def stop_selected(self) -> Optional[threading.Thread]:
        """Stop the selected server (in a worker thread, returned)."""
        return self._act("stopping", self.station.stop_server)

    def start_selected(self) -> Optional[threading.Thread]:
        """Start the selected server (in a worker thread, returned)."""
        return self._act("starting", self.station.start_server)

    def restart_selected(self) -> Optional[threading.Thread]:
        """Restart the selected server (in a worker thread, returned)."""
        return self._act("restarting", self.station.restart)

    def open_monitor(self, name: Optional[str] = None) -> Any:
        """Show a monitor window on the station's registry with server ``name`` (default: the selected one)."""
        from ..monitor import MonitorWindow

        name = name or self.selected_name()
        if self.monitor is None:
            self.monitor = MonitorWindow(self.station.registry)
            self.monitor.setAttribute(Qt.WA_DeleteOnClose, False)
        self.monitor.show()
        if QtGui.QGuiApplication.platformName() != "offscreen":  # it has no window stacking
            self.monitor.raise_()
        self._monitor_target = name
        if name is not None:
            self._select_in_monitor(name, 50)
        return self.monitor

    def _select_in_monitor(self, name: str, tries: int) -> None:
        monitor = self.monitor
        if monitor is None or self._monitor_target != name:
            return
        if monitor.server_model.entry(name) is not None:
            monitor.select_server(name)
        elif tries > 0:  # the monitor has not heard from the registry yet
            QtCore.QTimer.singleShot(100, lambda: self._select_in_monitor(name, tries - 1))

    # ---------------------------------------------------------------- closing
    def _confirm_close(self) -> bool:
        running = sum(1 for r in self.station.status() if r["state"] in ("starting", "running", "restarting"))
        answer = QtWidgets.QMessageBox.question(
            self, "Stop the station?",
            f"Closing this window stops the station {self.station.name} and its {running} running server(s).",
            QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.Cancel, QtWidgets.QMessageBox.Cancel)
        return answer == QtWidgets.QMessageBox.Yes

    def close_without_asking(self) -> bool:
        """Close the window and stop the station without the confirmation (SIGTERM, Ctrl+C)."""
        self._ask = False
        return self.close()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Ask for confirmation, then stop the station (the servers' clean stops take up to seconds)."""
        if self._closing:
            event.accept()
            return
        if self._ask and not self._confirm_close():
            event.ignore()
            return
        self._closing = True
        self._timer.stop()
        self._update_buttons()
        self.statusBar().showMessage(f"Stopping the station {self.station.name}\u2026")
        QtWidgets.QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            self.station.stop()  # a start in progress in a worker fails at once, a stop finishes
            for worker in self._workers:
                worker.join(self.station.settings.child_stop_timeout + self.station.settings.stop_timeout)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        super().closeEvent(event)
        self.closed.emit()
