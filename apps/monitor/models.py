"""Item models of the monitor: servers, attributes and methods (signals: signal_models.py).

No networking here: the controller feeds these models with what it learns and
listens to their requests (an edited value, a subscription checkbox).

Thread affinity: GUI thread only.
"""
from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from qtpy import QtCore, QtGui

Qt = QtCore.Qt

__all__ = ["ServerEntry", "ServerListModel", "AttributeModel", "MethodModel",
           "format_value", "parse_literal", "parse_call_arguments", "is_number"]

#: How many characters of a value are shown in a cell (the tooltip shows more).
CELL_CHARS = 160
TOOLTIP_CHARS = 2000

ONLINE, OFFLINE, CONNECTING, STOPPED = "online", "offline", "connecting", "stopped"

_STATE_COLORS = {ONLINE: "#2e9d4f", OFFLINE: "#c8372d", CONNECTING: "#d99a1e", STOPPED: "#8a8f98"}


def format_value(value: Any, limit: int = CELL_CHARS) -> str:
    """The text of a value in a cell: its ``repr``, shortened to ``limit`` characters."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the table
        text = f"<unprintable {type(value).__name__}: {exc}>"
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


def parse_literal(text: str, type_name: str = "") -> Any:
    """A value typed by the user: a Python literal; a ``str`` attribute also takes bare text.

    Raises ValueError with a readable message when the text is not a literal.
    """
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        if type_name == "str":
            return text
        raise ValueError(f"{text!r} is not a Python literal ({type(exc).__name__}: {exc}); "
                         "quote strings, e.g. 'abc'") from None


def parse_call_arguments(text: str) -> Tuple[tuple, Dict[str, Any]]:
    """Parse ``1, 'a', speed=2.0`` into ``((1, 'a'), {'speed': 2.0})`` (literals only)."""
    text = text.strip()
    if not text:
        return (), {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"cannot read the arguments: {exc.msg}") from None
    if not isinstance(call, ast.Call):  # pragma: no cover - f(...) always parses as a call
        raise ValueError("cannot read the arguments")
    args = []
    for node in call.args:
        if isinstance(node, ast.Starred):
            raise ValueError("*args is not supported; type the arguments one by one")
        args.append(_literal(node))
    kwargs = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise ValueError("**kwargs is not supported; type name=value pairs")
        kwargs[kw.arg] = _literal(kw.value)
    return tuple(args), kwargs


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"{ast.unparse(node)!r} is not a Python literal; quote strings, e.g. 'abc'") from None


def is_number(value: Any) -> bool:
    """Whether ``value`` can be plotted (a real number, bools excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:  # numpy scalars and friends
        import numbers

        return isinstance(value, numbers.Real)
    except Exception:  # pragma: no cover
        return False


def state_icon(state: str, size: int = 12) -> QtGui.QIcon:
    """A small filled circle in the colour of a server state."""
    cache = state_icon.__dict__.setdefault("cache", {})
    icon = cache.get((state, size))
    if icon is None:
        pix = QtGui.QPixmap(size, size)
        pix.fill(Qt.transparent)
        painter = QtGui.QPainter(pix)
        painter.setRenderHint(QtGui.QPainter.Antialiasing)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QtGui.QColor(_STATE_COLORS.get(state, "#8a8f98")))
        painter.drawEllipse(1, 1, size - 2, size - 2)
        painter.end()
        icon = cache[(state, size)] = QtGui.QIcon(pix)
    return icon


class RowTableModel(QtCore.QAbstractTableModel):
    """A flat table over ``self._rows`` with the column titles in ``COLUMNS``
    and their header tooltips in ``TOOLTIPS`` (column: text)."""

    COLUMNS: Tuple[str, ...] = ()
    TOOLTIPS: Dict[int, str] = {}
    _rows: List[Any]

    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802
        """Number of rows."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802
        """Number of columns."""
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Any, role: int = Qt.DisplayRole) -> Any:  # noqa: N802
        """Column titles and tooltips."""
        if orientation == Qt.Horizontal:
            if role == Qt.DisplayRole:
                return self.COLUMNS[section]
            if role == Qt.ToolTipRole:
                return self.TOOLTIPS.get(section)
        return None


# ---------------------------------------------------------------------------- servers
@dataclass
class ServerEntry:
    """One row of the server list."""

    key: str                     # registry name, or the endpoint of a row added by hand
    name: str
    rep_endpoint: str
    manual: bool = False
    cls: str = ""
    pub_endpoint: str = ""
    host: str = ""
    pid: Any = ""
    started: Optional[float] = None
    station: str = ""            # the pizco-station it belongs to (registry key 'station')
    state: str = CONNECTING
    detail: str = ""
    gone_since: Optional[float] = None


class ServerListModel(RowTableModel):
    """The live servers: registry entries and endpoints added by hand, one row each."""

    COLUMNS = ("Name", "Class", "Endpoint", "Host", "PID", "State", "Station")
    TOOLTIPS = {6: "The pizco-station that runs and supervises the server"}

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._rows: List[ServerEntry] = []

    # -- queries
    def data(self, index: QtCore.QModelIndex, role: int = Qt.DisplayRole) -> Any:
        """Cell text, state icon, tooltip and grey text for servers not online."""
        if not index.isValid():
            return None
        e = self._rows[index.row()]
        col = index.column()
        if role == Qt.DisplayRole:
            cls = e.cls.rsplit(".", 1)[-1]
            return (e.name, cls, e.rep_endpoint, e.host, str(e.pid or ""), e.state, e.station)[col]
        if role == Qt.DecorationRole and col == 0:
            return state_icon(e.state)
        if role == Qt.ToolTipRole:
            lines = [f"{e.name} ({'added by hand' if e.manual else 'from the registry'})",
                     f"class: {e.cls or '?'}", f"REP {e.rep_endpoint}"]
            if e.pub_endpoint:
                lines.append(f"PUB {e.pub_endpoint}")
            if e.host or e.pid:
                lines.append(f"host {e.host or '?'}, pid {e.pid or '?'}")
            if e.station:
                lines.append(f"station {e.station}")
            if e.started:
                lines.append("started " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.started)))
            lines.append(f"state: {e.state}" + (f" ({e.detail})" if e.detail else ""))
            return "\n".join(lines)
        if role == Qt.ForegroundRole and e.state in (OFFLINE, STOPPED):
            return QtGui.QBrush(QtGui.QColor("#8a8f98"))
        if role == Qt.FontRole and col == 0:
            font = QtGui.QFont()
            font.setBold(e.state == ONLINE)
            font.setItalic(e.manual)
            return font
        if role == Qt.UserRole:
            return e.key
        return None

    # -- access
    def entries(self) -> List[ServerEntry]:
        """All rows (do not modify the list)."""
        return self._rows

    def row_of(self, key: str) -> int:
        """Row of the server with ``key``, or -1."""
        for i, e in enumerate(self._rows):
            if e.key == key:
                return i
        return -1

    def entry(self, key: str) -> Optional[ServerEntry]:
        """The entry with ``key``, or None."""
        row = self.row_of(key)
        return self._rows[row] if row >= 0 else None

    def entry_at(self, row: int) -> Optional[ServerEntry]:
        """The entry of ``row``, or None."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    # -- changes
    def upsert(self, entry: ServerEntry) -> bool:
        """Add ``entry`` or update the row with its key; True when a row was added."""
        row = self.row_of(entry.key)
        if row < 0:
            self.beginInsertRows(QtCore.QModelIndex(), len(self._rows), len(self._rows))
            self._rows.append(entry)
            self.endInsertRows()
            return True
        self._rows[row] = entry
        self._changed(row)
        return False

    def set_state(self, key: str, state: str, detail: str = "") -> None:
        """Change the state shown for a server."""
        row = self.row_of(key)
        if row >= 0:
            e = self._rows[row]
            e.state, e.detail = state, detail
            e.gone_since = time.monotonic() if state == STOPPED else None
            self._changed(row)

    def remove(self, key: str) -> None:
        """Remove the row of ``key`` (if any)."""
        row = self.row_of(key)
        if row >= 0:
            self.beginRemoveRows(QtCore.QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()

    def _changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))


# ---------------------------------------------------------------------------- attributes
@dataclass
class AttributeRow:
    """One attribute of the selected server."""

    name: str
    type: str = ""
    writable: bool = False
    value: Any = None
    text: str = ""
    error: str = ""
    watched: bool = False
    loaded: bool = False
    changed_at: float = field(default_factory=lambda: 0.0)


class AttributeModel(RowTableModel):
    """Attributes of the selected server: name, value, type, writable, watch (plot) checkbox.

    Editing a writable value emits ``edit_requested(name, value)``; the value shown
    changes only when the server confirms it (the controller re-reads it).
    """

    COLUMNS = ("Name", "Value", "Type", "Writable", "Plot")
    NAME, VALUE, TYPE, WRITABLE, WATCH = range(5)
    TOOLTIPS = {WATCH: "Tick to plot a numeric attribute over time (read at each refresh)",
                VALUE: "Double-click or F2 on a writable value to edit it (a Python literal)"}

    #: Signal(str, object) -- the user typed a new value for an attribute.
    edit_requested = QtCore.Signal(str, object)
    #: Signal(str) -- the user typed text that is not a Python literal (the message).
    edit_rejected = QtCore.Signal(str)
    #: Signal(str, bool) -- the user ticked or unticked "Plot" of an attribute.
    watch_toggled = QtCore.Signal(str, bool)

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._rows: List[AttributeRow] = []

    def data(self, index: QtCore.QModelIndex, role: int = Qt.DisplayRole) -> Any:
        """Cell contents; the value column is editable text for writable attributes."""
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        col = index.column()
        if role == Qt.DisplayRole:
            if col == self.NAME:
                return r.name
            if col == self.VALUE:
                if r.type == "write-only":
                    return "(write-only)"
                if r.error:
                    return f"\u26a0 {r.error}"
                return r.text if r.loaded else "\u2026"
            if col == self.TYPE:
                return r.type
            if col == self.WRITABLE:
                return "yes" if r.writable else "no"
            return None
        if role == Qt.EditRole and col == self.VALUE:
            return format_value(r.value, 1_000_000) if r.loaded and not r.error else ""
        if role == Qt.CheckStateRole and col == self.WATCH:
            return Qt.Checked if r.watched else Qt.Unchecked
        if role == Qt.ToolTipRole:
            if col == self.VALUE:
                tip = r.error or format_value(r.value, TOOLTIP_CHARS)
                return tip + ("\n(double-click to edit)" if r.writable else "")
            if col == self.NAME:
                return f"{r.name}: {r.type}, {'writable' if r.writable else 'read-only'}"
        if role == Qt.ForegroundRole:
            if col == self.VALUE and r.type == "write-only":
                return QtGui.QBrush(QtGui.QColor("#8a8f98"))
            if col == self.VALUE and r.error:
                return QtGui.QBrush(QtGui.QColor("#c8372d"))
            if col in (self.TYPE, self.WRITABLE):
                return QtGui.QBrush(QtGui.QColor("#6b7280"))
        if role == Qt.BackgroundRole and col == self.VALUE and r.changed_at:
            age = time.monotonic() - r.changed_at
            if age < 1.0:
                color = QtGui.QColor("#fff3bf")
                color.setAlphaF(max(0.0, 1.0 - age))
                return QtGui.QBrush(color)
        if role == Qt.FontRole and col == self.VALUE:
            font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
            return font
        return None

    def flags(self, index: QtCore.QModelIndex) -> Any:
        """Writable values are editable; the plot column is checkable."""
        if not index.isValid():
            return Qt.NoItemFlags
        flags = Qt.ItemIsEnabled | Qt.ItemIsSelectable
        r = self._rows[index.row()]
        if index.column() == self.VALUE and r.writable:
            flags |= Qt.ItemIsEditable
        if index.column() == self.WATCH:
            flags |= Qt.ItemIsUserCheckable
        return flags

    def setData(self, index: QtCore.QModelIndex, value: Any, role: int = Qt.EditRole) -> bool:  # noqa: N802
        """Turn an edit into ``edit_requested`` (or ``edit_rejected``); toggle watching."""
        if not index.isValid():
            return False
        r = self._rows[index.row()]
        if role == Qt.CheckStateRole and index.column() == self.WATCH:
            r.watched = _checked(value)
            self.dataChanged.emit(index, index)
            self.watch_toggled.emit(r.name, r.watched)
            return True
        if role == Qt.EditRole and index.column() == self.VALUE and r.writable:
            text = str(value)
            if r.loaded and text == format_value(r.value, 1_000_000):
                return False  # unchanged
            try:
                parsed = parse_literal(text, r.type)
            except ValueError as exc:
                self.edit_rejected.emit(f"{r.name}: {exc}")
                return False
            self.edit_requested.emit(r.name, parsed)
            return False
        return False

    # -- feeding
    def set_attributes(self, described: List[Tuple[str, str, bool]], watched: Optional[set] = None) -> None:
        """Replace the rows: a list of (name, type name, writable)."""
        watched = watched or set()
        self.beginResetModel()
        self._rows = [AttributeRow(name=n, type=t, writable=w, watched=n in watched) for n, t, w in described]
        self.endResetModel()

    def clear(self) -> None:
        """No server selected."""
        self.set_attributes([])

    def names(self) -> List[str]:
        """Attribute names, in row order."""
        return [r.name for r in self._rows]

    def row(self, name: str) -> Optional[AttributeRow]:
        """The row of attribute ``name``."""
        for r in self._rows:
            if r.name == name:
                return r
        return None

    def readable(self) -> List[str]:
        """Names of the attributes whose value can be read."""
        return [r.name for r in self._rows if r.type != "write-only"]

    def watched(self) -> List[str]:
        """Names of the attributes ticked for plotting."""
        return [r.name for r in self._rows if r.watched]

    def set_values(self, values: Dict[str, Tuple[str, Any]]) -> List[str]:
        """Apply ``{name: ('return', value) | ('raise', message)}``; returns names whose value changed."""
        changed = []
        now = time.monotonic()
        for i, r in enumerate(self._rows):
            if r.name not in values:
                continue
            kind, payload = values[r.name]
            if kind == "return":
                text = format_value(payload)
                if r.loaded and (r.error or text != r.text):
                    r.changed_at = now
                    changed.append(r.name)
                r.value, r.text, r.error, r.loaded = payload, text, "", True
                if r.type in ("", "?"):
                    r.type = type(payload).__name__
            else:
                r.error, r.loaded = str(payload), True
            self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))
        return changed

    def fade(self) -> None:
        """Repaint values whose change highlight is still fading."""
        now = time.monotonic()
        rows = [i for i, r in enumerate(self._rows) if r.changed_at and now - r.changed_at < 1.2]
        if rows:
            # a range, never a single cell: a view would reset an open editor of that cell
            self.dataChanged.emit(self.index(min(rows), self.NAME), self.index(max(rows), self.VALUE),
                                  [Qt.BackgroundRole])


def _checked(value: Any) -> bool:
    """Whether a check-state value (an int or a Qt enum, whatever the binding) means checked."""
    value = getattr(value, "value", value)
    checked = getattr(Qt.Checked, "value", Qt.Checked)
    try:
        return int(value) == int(checked)
    except TypeError:
        return value == checked


# ---------------------------------------------------------------------------- methods
def _plain_annotations(signature: str) -> str:
    """``(x: 'float') -> 'int'`` (postponed annotations) shown as ``(x: float) -> int``."""
    return re.sub(r"(:\s|->\s)'([^']*)'", r"\1\2", signature)


class MethodModel(RowTableModel):
    """Methods of the selected server: name, signature, first line of the docstring."""

    COLUMNS = ("Method", "Signature", "Description")

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._rows: List[Tuple[str, str, str]] = []

    def data(self, index: QtCore.QModelIndex, role: int = Qt.DisplayRole) -> Any:
        """Name, signature and description; the tooltip says how to call."""
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if role == Qt.DisplayRole:
            return row[index.column()]
        if role == Qt.ToolTipRole:
            return f"{row[0]}{row[1]}\n{row[2]}\n(Enter or double-click to call)".replace("\n\n", "\n")
        if role == Qt.ForegroundRole and index.column() == 2:
            return QtGui.QBrush(QtGui.QColor("#6b7280"))
        if role == Qt.FontRole and index.column() == 1:
            return QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)
        return None

    def set_methods(self, methods: List[Tuple[str, str, str]]) -> None:
        """Replace the rows: (name, signature, description)."""
        self.beginResetModel()
        self._rows = [(n, _plain_annotations(sig), doc) for n, sig, doc in methods]
        self.endResetModel()

    def method(self, row: int) -> Optional[Tuple[str, str, str]]:
        """(name, signature, description) of ``row``."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def names(self) -> List[str]:
        """Method names in row order."""
        return [r[0] for r in self._rows]
