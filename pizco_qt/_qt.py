"""The only place pizco_qt imports Qt (through qtpy), and small helpers around it.

Only QtCore is imported here: importing pizco_qt needs no display and creates no
Q(Core)Application.

Thread affinity: helpers may be called from any thread.
"""
from __future__ import annotations

import inspect
import re
import threading
from typing import Any, Callable, Optional

from qtpy import QtCore

__all__ = ["QtCore", "Signal", "Slot", "on_destroyed", "QObject", "QThread", "app_instance", "runs_event_loop",
           "is_qt_signal", "is_deleted", "slot_arity", "slot_params", "API_NAME"]

Signal = QtCore.Signal
Slot = QtCore.Slot
QObject = QtCore.QObject
QThread = QtCore.QThread

try:
    from qtpy import API_NAME
except ImportError:  # pragma: no cover - very old qtpy
    API_NAME = "unknown"

_BOUND_SIGNAL_TYPES: tuple = ()
for _name in ("SignalInstance", "pyqtBoundSignal"):
    _t = getattr(QtCore, _name, None)
    if isinstance(_t, type):
        _BOUND_SIGNAL_TYPES += (_t,)


def app_instance() -> Optional[Any]:
    """The Q(Core)Application, or None. Never creates one."""
    return QtCore.QCoreApplication.instance()


def runs_event_loop(qthread: Any) -> bool:
    """Whether events posted to ``qthread`` will be processed.

    True for the main thread of an existing Q(Core)Application (whether or not
    ``exec()`` runs right now) and for a QThread whose event loop is running
    (``loopLevel() > 0``). A wrapper of a thread that has ended counts as False.
    """
    if qthread is None:
        return False
    try:
        app = QtCore.QCoreApplication.instance()
        if app is not None and qthread is app.thread():
            return True
        if app is not None and qthread == app.thread():
            return True
        return qthread.loopLevel() > 0
    except RuntimeError:  # the C++ thread object is gone
        return False


def is_qt_signal(obj: Any) -> bool:
    """True for a bound Qt signal (pyqtBoundSignal / SignalInstance)."""
    return bool(_BOUND_SIGNAL_TYPES) and isinstance(obj, _BOUND_SIGNAL_TYPES)


def is_deleted(obj: Any) -> bool:
    """True if ``obj`` is a QObject whose C++ part has been destroyed."""
    try:
        obj.objectName()
    except RuntimeError:
        return True
    except Exception:
        return False
    return False


_SIG_RE = re.compile(r"\((.*)\)")
_SIGNAL_REPR_RE = re.compile(r"SignalInstance\s+(\w+\(.*?\))")


def _count_params(signature: str) -> int:
    m = _SIG_RE.search(signature)
    if not m or not m.group(1).strip():
        return 0
    depth, n = 0, 1
    for ch in m.group(1):  # commas inside template types (QMap<QString,int>) do not count
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            n += 1
    return n


def slot_arity(slot: Callable) -> Optional[int]:
    """How many positional arguments ``slot`` accepts; None means "all of them"."""
    return slot_params(slot)[1]


def slot_params(slot: Callable) -> "tuple[int, Optional[int]]":
    """``(required, accepted)``: the positional parameters ``slot`` needs and takes.

    ``accepted`` is None when the slot takes ``*args`` or cannot be inspected
    (then it gets all the arguments). From the slot type's own
    ``_pizco_slot_params`` when it has one (remote methods), else
    ``inspect.signature``, else the Qt meta-method's parameter counts (the
    overloads' smallest and largest), else ``(0, None)``. A Qt signal used as a
    slot requires and takes its parameter count.
    """
    own = getattr(type(slot), "_pizco_slot_params", None)
    if own is not None:
        return own(slot)
    if is_qt_signal(slot):
        sig = getattr(slot, "signal", None)  # PyQt: '2name(int,QString)'
        if isinstance(sig, str):
            n = _count_params(sig)
            return n, n
        m = _SIGNAL_REPR_RE.search(repr(slot))  # PySide: '<... SignalInstance name(int) at 0x...>'
        if m:
            n = _count_params(m.group(1))
            return n, n
        return 0, None
    try:
        params = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        params = None
    if params is not None:
        required = accepted = 0
        for p in params:
            if p.kind == p.VAR_POSITIONAL:
                return required, None
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                accepted += 1
                if p.default is p.empty:
                    required = accepted
        return required, accepted
    owner = getattr(slot, "__self__", None)
    name = getattr(slot, "__name__", None)
    if isinstance(owner, QtCore.QObject) and name:
        try:
            meta = owner.metaObject()
            counts = []
            for i in range(meta.methodCount()):
                method = meta.method(i)
                sig = bytes(method.methodSignature()).decode()
                if sig.split("(", 1)[0] == name:
                    counts.append(method.parameterCount())
            if counts:
                return min(counts), max(counts)
        except Exception:
            return 0, None
    return 0, None


class _Tripwire(QtCore.QObject):
    """Calls a Python callback when the QObject it watches is destroyed.

    Connecting a lambda directly to ``obj.destroyed`` is unsafe with PyQt: when
    ``obj`` is deleted by its Qt parent, PyQt may already have released the
    lambda's proxy and the call crashes. A real Qt slot of this separate,
    independently kept object is invoked by Qt itself and stays valid.
    """

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self._callback: Optional[Callable[[], None]] = callback

    @QtCore.Slot()
    def fire(self) -> None:
        callback, self._callback = self._callback, None
        with _WIRES_LOCK:
            _WIRES.discard(self)
        if callback is not None:
            callback()

    def cancel(self) -> None:
        """Forget the callback (it will not be called)."""
        self._callback = None
        with _WIRES_LOCK:
            _WIRES.discard(self)


_WIRES: set = set()
_WIRES_LOCK = threading.Lock()


def on_destroyed(obj: Any, callback: Callable[[], None]) -> Any:
    """Call ``callback()`` (in the deleting thread) when QObject ``obj`` is destroyed.

    Safe where ``obj.destroyed.connect(lambda ...)`` is not (see _Tripwire). The
    returned handle has ``cancel()``. Thread affinity: any thread.
    """
    wire = _Tripwire(callback)
    with _WIRES_LOCK:
        _WIRES.add(wire)
    obj.destroyed.connect(wire.fire, QtCore.Qt.DirectConnection)
    return wire
