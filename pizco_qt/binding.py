"""Bind Qt widgets to remote attributes in one call: ``bind(widget, proxy, name)``.

The widget shows the remote value and keeps it current: from the served
object's change signal (``signal=``, coalesced to the latest value per turn of
the event loop, so floods never freeze the window), by polling (``interval=``,
through :func:`watch`), or, with neither, read once and again after each
reconnect. Editable widgets write the user's edits back with non-blocking
calls; values arriving from the server never trigger a write (no echo loops).
A failed read or write shows on the widget (a tooltip and a red frame, cleared
by the next success) and is logged. A widget is disabled while its server is
offline and enabled again when it returns. An editable widget bound to a server
this client may not write (it is an observer, or another client holds
exclusive control) becomes read-only (``setReadOnly(True)`` where the widget has
it, else disabled), with a line appended to its tooltip that says why, until
that changes. ``unbind()`` or destroying the widget disconnects everything.

bind() never waits for the server: the first value arrives with the next
turns of the event loop (the reads of widgets bound in one turn share one
request).

QtWidgets is imported only inside the function that receives a widget
(``widget_adapters.adapter_for``), so ``import pizco_qt`` stays free of it.

Thread affinity: call ``bind`` in the widget's thread (the GUI thread); every
update and slot of a binding runs there.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._qt import QObject, QtCore, QThread, Signal, is_deleted
from .widget_adapters import adapter_for
from .delivery import current_target
from ._qt import on_destroyed
from .errors import ConnectionLost
from .polling import Remote, Watch, _check_interval, watch

logger = logging.getLogger(__name__)

__all__ = ["bind", "watch", "Binding", "Watch"]

_ERROR_STYLE = "{cls} {{ border: 2px solid #d32f2f; border-radius: 3px; }}"


class _Sink:
    """The plain-callable slot a binding connects to the remote signal (no Qt lifetime ties)."""

    __slots__ = ("ref", "__weakref__")

    def __init__(self, incoming: Callable[[Any], None]) -> None:
        self.ref = weakref.WeakMethod(incoming)

    def __call__(self, value: Any = None, *rest: Any) -> None:
        incoming = self.ref()
        if incoming is not None and not is_deleted(incoming.__self__):
            incoming(value)


class _State:
    """What must be released when a binding ends (touches no Qt object of the binding)."""

    def __init__(self, remote: Remote, signal: Optional[str]) -> None:
        self.remote = remote
        self.signal = signal
        self.sink: Optional[_Sink] = None
        self.watch: Optional[Watch] = None
        self.ended = False

    def release(self) -> None:
        if self.ended:
            return
        self.ended = True
        sink, self.sink = self.sink, None
        if sink is not None and not self.remote.closed:
            try:
                self.remote.disconnect(self.signal, sink)
            except TypeError:
                pass  # already gone (the proxy dropped it)
        w, self.watch = self.watch, None
        if w is not None:
            try:
                w.stop()
            except RuntimeError:
                pass


# -------------------------------------------------------------------- batched first reads
#: One read a binding asks for: its state, its attribute name, and what takes the Future.
_Read = Tuple["_State", str, Callable[[Any], None]]


class _ReadBatch:
    """Reads requested during one turn of a thread's loop, sent as one 'getmany' per proxy."""

    def __init__(self) -> None:
        self.pending: Dict[int, Tuple[Remote, List[_Read]]] = {}
        self.scheduled = False


_batches = threading.local()


def _request_read(state: "_State", name: str, read_sent: Callable[[Any], None]) -> None:
    batch = getattr(_batches, "batch", None)
    if batch is None:
        batch = _batches.batch = _ReadBatch()
    remote = state.remote
    key = id(remote.proxy())  # one request per proxy, whichever binding's view of it
    batch.pending.setdefault(key, (remote, []))[1].append((state, name, read_sent))
    if not batch.scheduled:
        batch.scheduled = True
        # at the next turn of this thread's event loop (a post to our own target would run now)
        QtCore.QTimer.singleShot(0, lambda: _flush_reads(batch))


def _flush_reads(batch: _ReadBatch) -> None:
    pending, batch.pending = batch.pending, {}
    batch.scheduled = False
    for remote, reads in pending.values():
        live = [(name, read_sent) for state, name, read_sent in reads
                if not state.ended and not is_deleted(read_sent.__self__)]
        if not live or remote.closed:
            continue
        fut = remote.get_many(sorted({name for name, _ in live}))
        for _, read_sent in live:
            read_sent(fut)


# -------------------------------------------------------------------- the binding
class Binding(QObject):
    """The live link between one widget and one remote attribute (made by :func:`bind`).

    A child of its widget: it lives as long as the widget, or until ``unbind()``.

    Thread affinity: the widget's thread.
    """

    #: Signal(object) -- a value from the server is now shown.
    updated = Signal(object)
    #: Signal(object) -- the user's edit reached the server.
    written = Signal(object)
    #: Signal(object) -- reading or writing failed with this exception.
    failed = Signal(object)

    def __init__(self, widget: Any, proxy: Any, name: str, signal: Optional[str],
                 interval: Optional[float], fmt: Any) -> None:
        remote = Remote(proxy)
        adapter = adapter_for(widget, fmt)
        super().__init__(widget)
        self.widget = widget
        self.name = name
        self.signal = signal
        self.interval = interval
        self._adapter = adapter
        self._state = _State(remote, signal)
        self._value: Any = None
        self._has_value = False
        self._held: Any = None
        self._holding = False
        self._applying = False
        self._write_future: Any = None
        self._write_next: Any = None
        self._write_more = False
        self._read_generation = 0
        self._error: Optional[BaseException] = None
        self._error_on_write = False
        self._own_tooltip: Optional[str] = None  # the widget's own, while the binding changes it
        self._error_tip: Optional[str] = None
        self._access_tip: Optional[str] = None
        self._saved_style: Optional[str] = None
        self._offline = False
        self._blocked = False
        self._set_read_only = False  # the binding made the widget read-only
        self._disabled = False  # the binding disabled the widget
        self._enable_after = True
        self._hook = on_destroyed(self, self._state.release)
        conn = remote.connection
        links = [(conn.lost, self._on_lost), (conn.regained, self._on_regained)]
        if adapter.editable:
            links.append((adapter.edited_signal(), self._on_edited))
        if adapter.released_signal() is not None:
            links.append((adapter.released_signal(), self._apply_held))
        for sig, slot in links:
            sig.connect(slot)
        self._links = links
        if adapter.editable:
            lock_changed = remote.lock_changed()
            lock_changed.connect(self._on_lock_changed)
            self._links.append((lock_changed, self._on_lock_changed))
            self._update_access()
        if not remote.alive:
            self._on_lost()
        if signal is not None:
            self._state.sink = _Sink(self._incoming)
            remote.connect(signal, self._state.sink)
        if interval is not None:
            w = watch(proxy, name, interval, parent=self)
            w.changed.connect(self._incoming)
            w.failed.connect(self._on_read_failed)
            self._state.watch = w
        else:
            _request_read(self._state, self.name, self._read_sent)

    # -- public --------------------------------------------------------------
    def value(self) -> Any:
        """The last value received from the server (None before the first)."""
        return self._value

    def error(self) -> Optional[BaseException]:
        """The exception shown on the widget, or None."""
        return self._error

    def writing(self) -> bool:
        """Whether a write to the server is in flight or waiting."""
        return self._write_future is not None or self._write_more

    def bound(self) -> bool:
        """Whether the binding is still active."""
        return not self._state.ended

    def refresh(self) -> None:
        """Read the value again now (without waiting)."""
        if not self._state.ended:
            _request_read(self._state, self.name, self._read_sent)

    def unbind(self) -> None:
        """Disconnect from the server and the widget; the widget keeps its last value.

        Idempotent. After it the server has no subscription left for this widget.
        """
        if self._state.ended:
            return
        self._state.release()
        for sig, slot in self._links:
            try:
                sig.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        self._links = []
        if not is_deleted(self.widget):
            self._clear_error()
            self._offline = self._blocked = False
            self._access_tip = None
            self._show_tooltip()
            self._update_widget_state()
        self._offline = False
        self._hook.cancel()
        self.setParent(None)

    # -- values from the server ---------------------------------------------
    def _read_sent(self, fut: Any) -> None:
        self._read_generation += 1
        generation = self._read_generation
        target = current_target()
        fut.add_done_callback(lambda f: target.post(lambda: self._read_done(f, generation)))

    def _read_done(self, fut: Any, generation: int) -> None:
        if self._state.ended or is_deleted(self) or generation != self._read_generation:
            return  # a newer read or a signal value superseded it
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self._on_read_failed(exc)
            return
        values = fut.result()
        outcome = values.get(self.name) if isinstance(values, dict) else None
        if outcome is None:
            return
        kind, value = outcome
        if kind == "raise":
            self._on_read_failed(value)
            return
        self._incoming(value)

    def _incoming(self, value: Any) -> None:
        if self._state.ended:
            return
        self._read_generation += 1  # a read sent before this value is older than it
        if self.writing() or self._user_busy():
            self._held, self._holding = value, True
            return
        self._apply(value)

    def _user_busy(self) -> bool:
        down = getattr(self.widget, "isSliderDown", None)
        return bool(down is not None and down())

    def _apply(self, value: Any) -> None:
        self._value, self._has_value = value, True
        self._applying = True
        try:
            self._adapter.show(value)
        except Exception as exc:
            self._show_error(exc, f"cannot show {value!r}")
            return
        finally:
            self._applying = False
        if self._error is not None and not self._error_on_write:
            self._clear_error()  # a failed write stays shown until a write succeeds
        self.updated.emit(value)

    def _apply_held(self) -> None:
        if self._holding and not self.writing() and not self._state.ended:
            held, self._held, self._holding = self._held, None, False
            self._apply(held)

    def _on_read_failed(self, exc: Any) -> None:
        if isinstance(exc, ConnectionLost):
            return  # shown as a disabled widget; read again when the server returns
        self._show_error(exc, f"cannot read {self.name!r}")

    # -- the user's edits ------------------------------------------------------
    def _on_edited(self, *args: Any) -> None:
        if self._applying or self._state.ended or self._blocked or self._adapter.read_only():
            return
        if self._adapter.unchanged():
            return  # e.g. focus left a line edit without a change
        try:
            value = self._adapter.current()
        except (ValueError, TypeError) as exc:
            self._show_error(exc, f"cannot write {self.name!r}", on_write=True)
            return
        if self._write_future is not None:
            self._write_next, self._write_more = value, True  # latest edit wins
            return
        self._send(value)

    def _send(self, value: Any) -> None:
        fut = self._state.remote.set(self.name, value)
        self._write_future = fut
        target = current_target()
        fut.add_done_callback(lambda f: target.post(lambda: self._write_done(f, value)))

    def _write_done(self, fut: Any, value: Any) -> None:
        if fut is not self._write_future or is_deleted(self):
            return
        self._write_future = None
        if self._state.ended:
            return
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            logger.warning("writing %r = %r to %s failed: %s: %s", self.name, value,
                           self._state.remote.endpoint, type(exc).__name__, exc)
            self._show_error(exc, f"cannot write {self.name!r}", on_write=True)
        else:
            self._value, self._has_value = value, True
            self._clear_error()
            self.written.emit(value)
        if self._write_more:
            nxt, self._write_next, self._write_more = self._write_next, None, False
            self._send(nxt)
            return
        if self._holding:
            held, self._held, self._holding = self._held, None, False
            self._apply(held)
        elif exc is not None:
            self.refresh()  # show the server's value again, not the rejected one

    # -- failures and connection state -------------------------------------------
    def _show_error(self, exc: Any, what: str, on_write: bool = False) -> None:
        self._error = exc
        self._error_on_write = on_write
        widget = self.widget
        if is_deleted(widget):
            return
        if self._saved_style is None:
            self._saved_style = widget.styleSheet()
        self._error_tip = f"{what}: {type(exc).__name__}: {exc}"
        self._show_tooltip()
        cls = widget.metaObject().className()
        widget.setStyleSheet((self._saved_style or "") + "\n" + _ERROR_STYLE.format(cls=cls))
        self.failed.emit(exc)

    def _clear_error(self) -> None:
        self._error = None
        if self._saved_style is None:
            return
        self._error_tip = None
        self._show_tooltip()
        self.widget.setStyleSheet(self._saved_style or "")
        self._saved_style = None

    def _show_tooltip(self) -> None:
        """The widget's tooltip: its own (or the error shown), then why it is read-only."""
        widget = self.widget
        if is_deleted(widget):
            return
        if self._error_tip is None and self._access_tip is None:
            if self._own_tooltip is not None:
                widget.setToolTip(self._own_tooltip)
                self._own_tooltip = None
            return
        if self._own_tooltip is None:
            self._own_tooltip = widget.toolTip()
        text = self._error_tip if self._error_tip is not None else self._own_tooltip
        if self._access_tip is not None:
            text = f"{text}\n{self._access_tip}" if text else self._access_tip
        widget.setToolTip(text)

    # -- who may write -----------------------------------------------------------
    def _on_lock_changed(self, holder: Any = None) -> None:
        if not self._state.ended:
            self._update_access()

    def _update_access(self) -> None:
        """Read-only while this client may not write (observer, or locked by another client)."""
        if self._state.ended or is_deleted(self.widget):
            return
        reason = self._state.remote.write_blocked()
        self._blocked = reason is not None
        if reason != self._access_tip:
            self._access_tip = reason
            self._show_tooltip()
        self._update_widget_state()

    def _update_widget_state(self) -> None:
        """Apply the offline rule (disabled) and the access rule (read-only, else disabled)."""
        widget = self.widget
        if is_deleted(widget):
            return
        can_read_only = callable(getattr(widget, "setReadOnly", None))
        read_only = self._blocked and can_read_only
        if read_only != self._set_read_only:
            if read_only and widget.isReadOnly():
                read_only = False  # already read-only by its owner: nothing to restore later
            else:
                widget.setReadOnly(read_only)
            self._set_read_only = read_only
        disable = self._offline or (self._blocked and not can_read_only)
        if disable and not self._disabled:
            # a widget its owner disabled stays disabled when the binding lets it go
            self._enable_after = not widget.testAttribute(QtCore.Qt.WA_ForceDisabled)
            widget.setEnabled(False)
            self._disabled = True
        elif not disable and self._disabled:
            widget.setEnabled(self._enable_after)
            self._disabled = False

    def _on_lost(self) -> None:
        if self._state.ended or self._offline or is_deleted(self.widget):
            return
        self._offline = True
        self._update_widget_state()

    def _on_regained(self) -> None:
        if self._state.ended or is_deleted(self.widget):
            return
        if self._offline:
            self._offline = False
            self._update_widget_state()
        if self.interval is None:
            self.refresh()  # values may have changed while it was away

    def __repr__(self) -> str:
        how = f"signal {self.signal!r}" if self.signal else (
            f"every {self.interval:g} s" if self.interval else "read on connect")
        return f"<Binding {self.name!r} of {self._state.remote.endpoint} ({how})>"


def bind(widget: Any, proxy: Any, name: str, *, signal: Optional[str] = None,
         interval: Optional[float] = None,
         fmt: Union[str, Callable[[Any], Any], None] = None) -> Binding:
    """Show the remote attribute ``name`` in ``widget`` and keep it current.

    Parameters
    ----------
    widget : QWidget
        QLabel, QLCDNumber, QProgressBar or a read-only QLineEdit show the value;
        QSpinBox, QDoubleSpinBox, QCheckBox, QComboBox, QLineEdit and QSlider
        also write the user's edits back (non-blocking, never echoing values that
        came from the server).
    proxy : Proxy
        The proxy of the served object.
    name : str
        The attribute to show.
    signal : str, optional
        A signal of the served object emitted with the new value as its first
        argument; the widget follows it (latest value per event-loop turn).
    interval : float, optional
        Poll every ``interval`` seconds instead (see :func:`watch`).
    fmt : str or callable, optional
        For widgets that show text: ``"{:.2f} K"``, ``"%.1f"`` or ``f(value) -> str``.

    Returns
    -------
    Binding
        Call ``unbind()`` to stop; destroying the widget does the same.

    Raises
    ------
    TypeError
        For an unsupported widget, a bad ``fmt`` or something that is not a Proxy.
    ValueError
        For both ``signal`` and ``interval``, or a non-positive interval.

    With neither ``signal`` nor ``interval`` the value is read once and again
    after each reconnect. bind() never waits for the server. Call it in the
    widget's thread.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"the attribute name must be a non-empty str, not {name!r}")
    if signal is not None and interval is not None:
        raise ValueError("give signal= (follow a change signal) or interval= (poll), not both")
    if signal is not None and (not isinstance(signal, str) or not signal):
        raise TypeError(f"signal must be the name of a signal of the served object, not {signal!r}")
    if interval is not None:
        interval = _check_interval(interval)
    remote = Remote(proxy)
    names = remote.names()
    if signal is not None and names and signal not in names:
        raise ValueError(f"{signal!r} is not a signal of the object served at {remote.endpoint}")
    try:
        same_thread = widget.thread() is QThread.currentThread() or widget.thread() == QThread.currentThread()
    except (AttributeError, RuntimeError):
        raise TypeError(f"bind() needs a live QWidget, not {widget!r}") from None
    if not same_thread:
        raise RuntimeError("call bind() in the widget's thread (the GUI thread)")
    return Binding(widget, proxy, name, signal, interval, fmt)
