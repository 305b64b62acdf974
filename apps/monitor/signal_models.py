"""Item models of the monitor's signal panes: the subscribed signals and the time-stamped log.

No networking here: the window feeds them with what the signal sinks counted.

Thread affinity: GUI thread only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from qtpy import QtCore, QtGui

from .models import TOOLTIP_CHARS, RowTableModel, _checked, format_value

Qt = QtCore.Qt

__all__ = ["SignalRow", "SignalModel", "SignalLogModel"]


# ---------------------------------------------------------------------------- signals
@dataclass
class SignalRow:
    """One signal of the selected server and what was received from it."""

    name: str
    subscribed: bool = False
    count: int = 0
    last_args: Optional[tuple] = None
    last_time: Optional[float] = None
    rate: float = 0.0


class SignalModel(RowTableModel):
    """Signals of the selected server: subscribe checkbox, count, rate, last arguments."""

    COLUMNS = ("Signal", "Count", "Rate", "Last at", "Last arguments")
    NAME, COUNT, RATE, TIME, ARGS = range(5)
    TOOLTIPS = {NAME: "Tick a signal (or press Space) to subscribe to it"}

    #: Signal(str, bool) -- the user ticked or unticked a signal's checkbox.
    subscribe_toggled = QtCore.Signal(str, bool)

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._rows: List[SignalRow] = []

    def data(self, index: QtCore.QModelIndex, role: int = Qt.DisplayRole) -> Any:
        """Cells; the name column carries the subscription checkbox."""
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        col = index.column()
        if role == Qt.DisplayRole:
            if col == self.NAME:
                return r.name
            if col == self.COUNT:
                return str(r.count) if r.subscribed or r.count else ""
            if col == self.RATE:
                return f"{r.rate:.1f}/s" if r.subscribed else ""
            if col == self.ARGS:
                return format_value(r.last_args) if r.last_args is not None else ""
            if col == self.TIME:
                return time.strftime("%H:%M:%S", time.localtime(r.last_time)) + \
                    f".{int((r.last_time % 1) * 1000):03d}" if r.last_time else ""
        if role == Qt.CheckStateRole and col == self.NAME:
            return Qt.Checked if r.subscribed else Qt.Unchecked
        if role == Qt.ToolTipRole and col == self.ARGS and r.last_args is not None:
            return format_value(r.last_args, TOOLTIP_CHARS)
        if role == Qt.TextAlignmentRole and col in (self.COUNT, self.RATE):
            return Qt.AlignRight | Qt.AlignVCenter
        if role == Qt.FontRole and col == self.ARGS:
            return QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
        return None

    def flags(self, index: QtCore.QModelIndex) -> Any:
        """The name column is checkable."""
        if not index.isValid():
            return Qt.NoItemFlags
        flags = Qt.ItemIsEnabled | Qt.ItemIsSelectable
        if index.column() == self.NAME:
            flags |= Qt.ItemIsUserCheckable
        return flags

    def setData(self, index: QtCore.QModelIndex, value: Any, role: int = Qt.EditRole) -> bool:  # noqa: N802
        """Ticking a signal asks to subscribe; unticking to unsubscribe."""
        if index.isValid() and role == Qt.CheckStateRole and index.column() == self.NAME:
            r = self._rows[index.row()]
            want = _checked(value)
            if want != r.subscribed:
                self.subscribe_toggled.emit(r.name, want)
            return True
        return False

    def set_signals(self, names: List[str], subscribed: Optional[set] = None) -> None:
        """Replace the rows."""
        subscribed = subscribed or set()
        self.beginResetModel()
        self._rows = [SignalRow(name=n, subscribed=n in subscribed) for n in names]
        self.endResetModel()

    def names(self) -> List[str]:
        """Signal names in row order."""
        return [r.name for r in self._rows]

    def row(self, name: str) -> Optional[SignalRow]:
        """The row of signal ``name``."""
        for r in self._rows:
            if r.name == name:
                return r
        return None

    def set_subscribed(self, name: str, on: bool) -> None:
        """Show a signal as subscribed or not."""
        for i, r in enumerate(self._rows):
            if r.name == name:
                r.subscribed = on
                if not on:
                    r.rate = 0.0
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))

    def update(self, name: str, count: int, last_args: Optional[tuple], last_time: Optional[float],
               rate: float) -> None:
        """New totals for a signal."""
        for i, r in enumerate(self._rows):
            if r.name == name:
                r.count, r.rate = count, rate
                if last_args is not None:
                    r.last_args, r.last_time = last_args, last_time
                self.dataChanged.emit(self.index(i, self.COUNT), self.index(i, len(self.COLUMNS) - 1))


class SignalLogModel(RowTableModel):
    """A time-stamped log of received emissions, newest last, at most ``limit`` rows."""

    COLUMNS = ("Time", "Server", "Signal", "Arguments")

    def __init__(self, limit: int = 2000, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self.limit = limit
        self._rows: List[Tuple[float, str, str, str]] = []

    def data(self, index: QtCore.QModelIndex, role: int = Qt.DisplayRole) -> Any:
        """Time (ms), server, signal and the arguments' text."""
        if not index.isValid():
            return None
        t, server, signal, args = self._rows[index.row()]
        if role == Qt.DisplayRole:
            if index.column() == 0:
                return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"
            return (None, server, signal, args)[index.column()]
        if role == Qt.FontRole and index.column() in (0, 3):
            return QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
        if role == Qt.ForegroundRole and index.column() == 0:
            return QtGui.QBrush(QtGui.QColor("#6b7280"))
        return None

    def append(self, items: List[Tuple[float, str, str, Any]]) -> None:
        """Add emissions (time, server, signal, args), dropping the oldest beyond the limit."""
        if not items:
            return
        items = items[-self.limit:]
        overflow = len(self._rows) + len(items) - self.limit
        if overflow > 0:
            self.beginRemoveRows(QtCore.QModelIndex(), 0, overflow - 1)
            del self._rows[:overflow]
            self.endRemoveRows()
        start = len(self._rows)
        self.beginInsertRows(QtCore.QModelIndex(), start, start + len(items) - 1)
        self._rows.extend((t, server, signal, format_value(args)) for t, server, signal, args in items)
        self.endInsertRows()

    def clear(self) -> None:
        """Empty the log."""
        self.beginResetModel()
        self._rows = []
        self.endResetModel()

    def texts(self) -> List[str]:
        """Each line as 'signal args' (for tests and copying)."""
        return [f"{signal} {args}" for _, _, signal, args in self._rows]
