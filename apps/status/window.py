"""StatusWindow: the live status of one running Server (``pizco-server -g``, ``gui=True``).

It shows the served class, the REP/PUB endpoints (selectable, monospace, with
copy buttons), uptime, requests served and their rate, subscribers and
emissions per signal, who holds exclusive control, the recent errors of served
code, the last executed writes (time, client, action, name; never values) and a
log pane.
Closing the window stops the server.

The window never touches the served object: it reads the server's counters
(plain integers, snapshots of dicts and deques) and the served object's class,
four times a second from an owned QTimer. Log records may come from any
thread: the pane's handler only appends them to a bounded deque that the timer
drains, so a flood of records or requests never floods the event loop.

Thread affinity: GUI thread (the handler's ``emit`` runs on any thread).
"""
from __future__ import annotations

import collections
import logging
import os
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from qtpy import QtCore, QtGui, QtWidgets

__all__ = ["StatusWindow", "LogPaneHandler", "icon_path"]

#: Refresh period of the live figures (ms): 4 Hz.
REFRESH_MS = 250
#: Most log lines appended to the pane per refresh; the rest are counted as skipped.
LOG_LINES_PER_TICK = 200

_QT_MODULE_PREFIXES = ("PyQt5", "PyQt6", "PySide2", "PySide6", "qtpy", "shiboken", "builtins", "sip")

_STYLE = """
QWidget#header { background: palette(base); border-bottom: 1px solid palette(mid); }
QLabel#className { font-size: 17pt; font-weight: 600; }
QLabel#subtitle { color: palette(dark); }
QLabel#state { border-radius: 10px; padding: 2px 12px; min-height: 18px; font-weight: 600; color: white; }
QLabel#state[serving="true"] { background: #23915a; }
QLabel#state[serving="false"] { background: #c0392b; }
QFrame.card { background: palette(base); border: 1px solid palette(midlight); border-radius: 8px; }
QLabel.cardCaption { color: palette(dark); font-size: 8pt; font-weight: 600; letter-spacing: 1px; }
QLabel.cardValue { font-size: 16pt; font-weight: 600; }
QLabel.cardDetail { color: palette(dark); }
QLabel.endpointKind { font-weight: 600; color: palette(dark); }
QGroupBox { font-weight: 600; }
"""


def icon_path(name: str) -> str:
    """The file of the icon ``name`` (e.g. ``'pizco-server.svg'``) in pizco_qt.resources."""
    try:
        from importlib.resources import files

        return str(files("pizco_qt.resources") / "icons" / name)
    except (ImportError, ModuleNotFoundError):  # pragma: no cover - run from a bare checkout
        here = os.path.dirname(os.path.abspath(__file__))
        return os.path.join(here, "..", "..", "resources", "icons", name)


def _icon(name: str) -> QtGui.QIcon:
    return QtGui.QIcon(icon_path(name))


def format_duration(seconds: float) -> str:
    """``'3 d 04:05:06'`` / ``'04:05:06'`` for an uptime."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    text = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days} d {text}" if days else text


def _level_key(level: int) -> int:
    if level < 0:
        return -1
    if level >= logging.ERROR:
        return logging.ERROR
    if level >= logging.WARNING:
        return logging.WARNING
    return logging.DEBUG if level < logging.INFO else 0


def _char_format(color: Optional[str], italic: bool = False) -> QtGui.QTextCharFormat:
    fmt = QtGui.QTextCharFormat()
    if color:
        fmt.setForeground(QtGui.QBrush(QtGui.QColor(color)))
    fmt.setFontItalic(italic)
    return fmt


def _thousands(n: int) -> str:
    return f"{n:,}".replace(",", "\u2009")  # thin space


def declared_signals(obj: Any) -> List[str]:
    """Public signal names declared by the class of ``obj`` and its user-defined bases.

    Only the class is inspected (statically), never the instance: the served
    object belongs to the server's thread.
    """
    from pizco_qt.signals import is_signal_like

    if obj is None:
        return []
    names = set()
    for klass in type(obj).__mro__:
        if (getattr(klass, "__module__", "") or "").startswith(_QT_MODULE_PREFIXES):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, QtCore.Signal) or is_signal_like(value):
                names.add(name)
    return sorted(names)


class LogPaneHandler(logging.Handler):
    """Keeps formatted records in a bounded deque for the GUI thread to drain.

    Thread affinity: ``emit`` from any thread; ``drain`` on the GUI thread.
    """

    def __init__(self, capacity: int = 5000, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
        self._records: Deque[Tuple[int, str]] = collections.deque(maxlen=capacity)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Format and queue one record (never touches a widget)."""
        try:
            if len(self._records) == self._records.maxlen:
                self.dropped += 1
            self._records.append((record.levelno, self.format(record)))
        except Exception:
            self.handleError(record)

    def drain(self, limit: int) -> Tuple[List[Tuple[int, str]], int]:
        """Up to ``limit`` queued lines (oldest first) and how many more were skipped."""
        lines: List[Tuple[int, str]] = []
        records = self._records
        while records and len(lines) < limit:
            lines.append(records.popleft())
        skipped = len(records) + self.dropped
        records.clear()
        self.dropped = 0
        return lines, skipped


class _Card(QtWidgets.QFrame):
    """A figure with a caption (UPTIME, REQUESTS...) and a detail line."""

    def __init__(self, caption: str, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setProperty("class", "card")
        self.setObjectName(f"card_{caption.lower()}")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(2)
        self.caption = QtWidgets.QLabel(caption.upper())
        self.caption.setProperty("class", "cardCaption")
        self.value = QtWidgets.QLabel("–")
        self.value.setProperty("class", "cardValue")
        self.value.setObjectName(f"value_{caption.lower()}")
        self.detail = QtWidgets.QLabel(" ")
        self.detail.setProperty("class", "cardDetail")
        for w in (self.caption, self.value, self.detail):
            layout.addWidget(w)
        self.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Fixed)

    def set(self, value: str, detail: str = " ") -> None:
        if self.value.text() != value:
            self.value.setText(value)
        if self.detail.text() != detail:
            self.detail.setText(detail)


class StatusWindow(QtWidgets.QMainWindow):
    """The status window of a running ``Server``; closing it stops the server.

    Parameters
    ----------
    server : pizco_qt.Server
        The server to show (running in this process).
    parent : QWidget, optional

    Thread affinity: GUI thread.
    """

    #: Signal() -- emitted once the window has closed and stopped its server.
    closed = QtCore.Signal()

    def __init__(self, server: Any, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.server = server
        self._served_id: Optional[int] = None
        self._signal_names: List[str] = []
        # rates count only what happens while the window is open
        self._rate_sample: Tuple[float, int, int] = (time.monotonic(), server.requests_served,
                                                     sum(dict(server.emissions).values()))
        self._rates = (0.0, 0.0)
        self._errors_shown = -1
        self._was_serving: Optional[bool] = None
        self.setObjectName("pizcoStatusWindow")
        self.setWindowIcon(_icon("pizco-server.svg"))
        self.setStyleSheet(_STYLE)
        self.resize(900, 640)
        self._build()
        self.log_handler = LogPaneHandler()
        logging.getLogger().addHandler(self.log_handler)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)

        header = QtWidgets.QWidget(objectName="header")
        header.setAttribute(QtCore.Qt.WA_StyledBackground, True)
        hl = QtWidgets.QHBoxLayout(header)
        hl.setContentsMargins(18, 14, 18, 14)
        hl.setSpacing(14)
        logo = QtWidgets.QLabel()
        logo.setPixmap(_icon("pizco-server.svg").pixmap(48, 48))
        hl.addWidget(logo)
        titles = QtWidgets.QVBoxLayout()
        titles.setSpacing(2)
        self.class_label = QtWidgets.QLabel(objectName="className")
        self.class_label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.subtitle = QtWidgets.QLabel(objectName="subtitle")
        self.subtitle.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        titles.addWidget(self.class_label)
        titles.addWidget(self.subtitle)
        hl.addLayout(titles, 1)
        self.state_label = QtWidgets.QLabel(objectName="state")
        hl.addWidget(self.state_label, 0, QtCore.Qt.AlignTop)
        outer.addWidget(header)

        body = QtWidgets.QWidget()
        bl = QtWidgets.QVBoxLayout(body)
        bl.setContentsMargins(16, 14, 16, 10)
        bl.setSpacing(12)

        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(6)
        mono = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
        self.endpoint_edits: Dict[str, QtWidgets.QLineEdit] = {}
        for row, (kind, tip) in enumerate((("REP", "requests: connect a Proxy here"),
                                           ("PUB", "signals and heartbeats are published here"))):
            label = QtWidgets.QLabel(kind)
            label.setProperty("class", "endpointKind")
            label.setToolTip(tip)
            edit = QtWidgets.QLineEdit(objectName=f"{kind.lower()}Endpoint")
            edit.setReadOnly(True)
            edit.setFont(mono)
            edit.setToolTip(tip)
            copy = QtWidgets.QToolButton()
            copy.setIcon(_icon("copy.svg"))
            copy.setToolTip(f"Copy the {kind} endpoint")
            copy.setAutoRaise(True)
            copy.clicked.connect(lambda _=False, e=edit: QtWidgets.QApplication.clipboard().setText(e.text()))
            grid.addWidget(label, row, 0)
            grid.addWidget(edit, row, 1)
            grid.addWidget(copy, row, 2)
            self.endpoint_edits[kind] = edit
        bl.addLayout(grid)

        cards = QtWidgets.QHBoxLayout()
        cards.setSpacing(10)
        self.uptime_card = _Card("Uptime")
        self.requests_card = _Card("Requests")
        self.subscribers_card = _Card("Subscribers")
        self.emissions_card = _Card("Emissions")
        self.errors_card = _Card("Errors")
        self.control_card = _Card("Control")
        self.control_card.setToolTip("Who holds exclusive control: while a client holds it, the writes of "
                                     "every other client are refused")
        for card in (self.uptime_card, self.requests_card, self.subscribers_card,
                     self.emissions_card, self.errors_card, self.control_card):
            cards.addWidget(card)
        bl.addLayout(cards)

        self.signals_table = QtWidgets.QTableWidget(0, 3, objectName="signals")
        self.signals_table.setHorizontalHeaderLabels(["Signal", "Subscribers", "Emissions"])
        self._setup_table(self.signals_table, stretch=0)
        self.errors_table = QtWidgets.QTableWidget(0, 4, objectName="errors")
        self.errors_table.setHorizontalHeaderLabels(["Time", "Action", "Name", "Error"])
        self._setup_table(self.errors_table, stretch=3)
        self.writes_table = QtWidgets.QTableWidget(0, 4, objectName="writes")
        self.writes_table.setHorizontalHeaderLabels(["Time", "Client", "Action", "Name"])
        self._setup_table(self.writes_table, stretch=3)
        self.writes_table.setToolTip("The last 100 writes the server ran, newest first (values are never shown)")
        self._writes_shown: Any = None
        self.log_view = QtWidgets.QPlainTextEdit(objectName="log")
        self.log_view.setReadOnly(True)
        self.log_view.setFont(mono)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setLineWrapMode(QtWidgets.QPlainTextEdit.NoWrap)
        self.log_view.setPlaceholderText("Log messages of this process appear here.")
        self._log_formats = {0: _char_format(None), logging.DEBUG: _char_format("#718096"),
                             logging.WARNING: _char_format("#b7791f"), logging.ERROR: _char_format("#c0392b"),
                             -1: _char_format("#718096", italic=True)}

        self.activity_tabs = QtWidgets.QTabWidget(objectName="activity")
        self.activity_tabs.addTab(self.writes_table, "Recent writes")
        self.activity_tabs.addTab(self.errors_table, "Recent errors")
        top = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        top.addWidget(self._group("Signals", self.signals_table))
        top.addWidget(self.activity_tabs)
        top.setStretchFactor(0, 1)
        top.setStretchFactor(1, 1)
        top.setSizes([420, 460])
        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        split.addWidget(top)
        split.addWidget(self._group("Log", self.log_view))
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        bl.addWidget(split, 1)

        # a footer row rather than a QStatusBar (which asks some platforms, e.g. offscreen,
        # for size-hint propagation they do not support)
        footer = QtWidgets.QHBoxLayout()
        self.status_text = QtWidgets.QLabel("Closing this window stops the server.")
        self.status_text.setObjectName("subtitle")
        footer.addWidget(self.status_text, 1)
        self.stop_button = QtWidgets.QPushButton(_icon("stop.svg"), "Stop server")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop serving and close this window")
        self.stop_button.clicked.connect(self.close)
        footer.addWidget(self.stop_button)
        bl.addLayout(footer)
        outer.addWidget(body, 1)
        self.setCentralWidget(central)
        central.setFocusPolicy(QtCore.Qt.ClickFocus)
        central.setFocus()  # no widget shows a focus frame at first

    @staticmethod
    def _group(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox(title)
        layout = QtWidgets.QVBoxLayout(box)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(widget)
        return box

    @staticmethod
    def _setup_table(table: QtWidgets.QTableWidget, stretch: int) -> None:
        table.verticalHeader().hide()
        table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
        header = table.horizontalHeader()
        header.setHighlightSections(False)
        for col in range(table.columnCount()):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.Stretch if col == stretch
                                        else QtWidgets.QHeaderView.ResizeToContents)

    # ------------------------------------------------------------------ live figures
    def refresh(self) -> None:
        """Update every figure from the server's counters (the timer calls it at 4 Hz)."""
        server = self.server
        serving = not server.stopped
        self._refresh_identity(serving)
        now = time.monotonic()
        requests = int(server.requests_served)
        emissions = dict(server.emissions)
        subscribers = server.subscribers
        total_emissions = sum(emissions.values())
        t0, r0, e0 = self._rate_sample
        if now - t0 >= 1.0:
            self._rates = ((requests - r0) / (now - t0), (total_emissions - e0) / (now - t0))
            self._rate_sample = (now, requests, total_emissions)
        req_rate, emit_rate = self._rates if serving else (0.0, 0.0)
        self.uptime_card.set(format_duration(time.time() - server.started),
                             "since " + time.strftime("%H:%M:%S", time.localtime(server.started)))
        self.requests_card.set(_thousands(requests), f"{req_rate:,.0f} / s")
        self.subscribers_card.set(_thousands(sum(subscribers.values())),
                                  f"on {len(subscribers)} signal{'s' if len(subscribers) != 1 else ''}")
        self.emissions_card.set(_thousands(total_emissions), f"{emit_rate:,.0f} / s")
        self._refresh_signals(subscribers, emissions)
        self._refresh_errors()
        self._refresh_control()
        self._refresh_log()

    def _refresh_identity(self, serving: bool) -> None:
        server = self.server
        obj = server.served_object
        if id(obj) != self._served_id or self._was_serving != serving:
            self._served_id = id(obj)
            if obj is None:
                self.class_label.setText("Empty server")
                detail = "waiting for a client to instantiate a class"
            else:
                cls = type(obj)
                self.class_label.setText(cls.__name__)
                detail = f"{cls.__module__}.{cls.__qualname__}"
            detail += f"  ·  pid {os.getpid()}"
            name = getattr(server, "name", None)
            if name:
                detail += f"  ·  registered as \u201c{name}\u201d"
            self.subtitle.setText(detail)
            self._signal_names = declared_signals(obj)
            self.endpoint_edits["REP"].setText(server.rep_endpoint)
            self.endpoint_edits["PUB"].setText(server.pub_endpoint)
            title = f"{self.class_label.text()} \u2014 {server.rep_endpoint}"
            self.setWindowTitle(f"{title} \u2014 pizco-server" if serving else f"{title} (stopped)")
            self.state_label.setText("Serving" if serving else "Stopped")
            self.state_label.setProperty("serving", "true" if serving else "false")
            self.state_label.style().unpolish(self.state_label)
            self.state_label.style().polish(self.state_label)
            self.stop_button.setEnabled(serving)
            if not serving:
                self.status_text.setText("The server has stopped.")
            self._was_serving = serving

    def _refresh_signals(self, subscribers: Dict[str, int], emissions: Dict[str, int]) -> None:
        names = sorted(set(self._signal_names) | set(subscribers) | set(emissions))
        table = self.signals_table
        if table.rowCount() != len(names) or any(
                table.item(i, 0) is None or table.item(i, 0).text() != n for i, n in enumerate(names)):
            table.setRowCount(len(names))
            for i, n in enumerate(names):
                item = QtWidgets.QTableWidgetItem(n)
                table.setItem(i, 0, item)
                for col in (1, 2):
                    num = QtWidgets.QTableWidgetItem()
                    num.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                    table.setItem(i, col, num)
        for i, n in enumerate(names):
            for col, value in ((1, subscribers.get(n, 0)), (2, emissions.get(n, 0))):
                text = _thousands(value)
                item = table.item(i, col)
                if item.text() != text:
                    item.setText(text)

    def _refresh_errors(self) -> None:
        total = int(getattr(self.server, "errors_total", len(self.server.recent_errors)))
        if total == self._errors_shown:
            return
        self._errors_shown = total
        errors = list(self.server.recent_errors)[::-1]  # newest first
        self.errors_card.set(_thousands(total), "in served code" if total else "none so far")
        self.errors_card.value.setStyleSheet("color: #c0392b;" if total else "")
        self.activity_tabs.setTabText(1, f"Recent errors ({total})" if total else "Recent errors")
        table = self.errors_table
        table.setRowCount(len(errors))
        for i, (when, action, name, text) in enumerate(errors):
            cells = (time.strftime("%H:%M:%S", time.localtime(when)), action, name, text)
            for col, cell in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(cell)
                item.setToolTip(text)
                table.setItem(i, col, item)

    def _refresh_control(self) -> None:
        """The lock holder card and the table of recent writes."""
        server = self.server
        holder = server.lock_holder() if hasattr(server, "lock_holder") else None
        if holder is None:
            self.control_card.set("free", "any controller may write")
            self.control_card.setToolTip("")
        else:
            since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
            label, host, pid = str(holder.get("label", "?")), holder.get("host", ""), holder.get("pid", "")
            # the card is narrow: the host goes in the tooltip, with the whole story
            self.control_card.set(label, f"pid {pid} since {since}")
            self.control_card.setToolTip(f"Exclusive control: {label} on {host}, pid {pid}, since {since}")
        writes = list(getattr(server, "recent_writes", ()))
        key = (len(writes), writes[-1] if writes else None)
        if key == self._writes_shown:
            return
        self._writes_shown = key
        table = self.writes_table
        table.setRowCount(len(writes))
        for i, record in enumerate(reversed(writes)):  # newest first
            cells = (time.strftime("%H:%M:%S", time.localtime(record.time)), record.label, record.action,
                     record.name)
            for col, cell in enumerate(cells):
                table.setItem(i, col, QtWidgets.QTableWidgetItem(cell))

    def _refresh_log(self) -> None:
        lines, skipped = self.log_handler.drain(LOG_LINES_PER_TICK)
        if not lines and not skipped:
            return
        view = self.log_view
        bar = view.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        cursor = QtGui.QTextCursor(view.document())
        cursor.movePosition(QtGui.QTextCursor.End)
        cursor.beginEditBlock()
        if skipped:
            lines.append((-1, f"\u2026 {skipped} more log lines skipped to keep up"))
        for level, text in lines:
            if not view.document().isEmpty():
                cursor.insertBlock()
            cursor.insertText(text, self._log_formats.get(_level_key(level), self._log_formats[0]))
        cursor.endEditBlock()
        if at_end:
            bar.setValue(bar.maximum())

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Stop the refresh timer, detach the log handler and stop the server."""
        self._timer.stop()
        logging.getLogger().removeHandler(self.log_handler)
        try:
            self.server.stop()
        finally:
            super().closeEvent(event)
            self.closed.emit()
