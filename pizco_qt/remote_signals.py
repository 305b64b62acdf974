"""Remote signal connections of a proxy: slots, their targets, coalescing.

One ``_SignalSub`` per proxy and remote signal holds the connected slots; its
sink runs on the I/O thread and only queues work: each notification is decoded
at most once, on the thread that receives it (the connecting thread's Qt loop,
or the dispatcher), and each slot gets the arguments it accepts (the leading
ones, or padded with None up to three when it requires more: ``fit_args``).

Thread affinity: sinks on the I/O thread; deliveries on the target threads.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

from ._qt import QObject, is_deleted, is_qt_signal, on_destroyed, slot_params
from .delivery import Target
from .protocol import Envelope
from .signals import as_callable, fit_args

if TYPE_CHECKING:  # pragma: no cover
    from .proxy import _ProxyCore

_UNSET = object()

logger = logging.getLogger(__name__)


class _Incoming:
    """One received notification, decoded at most once (on a delivery thread)."""

    __slots__ = ("env", "frames", "loads", "_args")

    def __init__(self, env: Envelope, frames: List[bytes], loads: Callable[..., Any], args: Any = None) -> None:
        self.env, self.frames, self.loads = env, frames, loads
        self._args: Any = _UNSET if args is None else tuple(args)  # args: already decoded

    @property
    def args(self) -> tuple:
        args = self._args
        if args is _UNSET:
            content = self.loads(self.env.serializer, self.frames[2], self.frames[5:])
            if isinstance(content, tuple):
                args = content
            elif isinstance(content, list):
                args = tuple(content)
            else:
                args = (content,)
            self._args = args
        return args


class _Connection:
    """One slot connected to one remote signal in one proxy."""

    __slots__ = ("slot", "call", "required", "accepted", "target", "coalesce", "latest", "queued", "dead", "sub",
                 "weak_self", "latest_lock", "wire", "__weakref__")

    def __init__(self, slot: Any, target: Target, coalesce: bool, sub: "_SignalSub") -> None:
        self.slot = slot
        self.call = as_callable(slot)
        self.required, self.accepted = slot_params(slot)
        self.target = target
        self.coalesce = coalesce
        self.latest: Optional[_Incoming] = None
        self.latest_lock = threading.Lock() if coalesce else None
        self.queued = False
        self.dead = False
        self.sub = sub
        self.weak_self = None
        self.wire: Any = None
        owner = getattr(slot, "__self__", None)
        if isinstance(owner, QObject) and not is_qt_signal(slot):
            # like Qt: a QObject's method does not keep it alive, and dies with it
            self.slot = self.weak_self = _WeakSlotKey(slot)
            self.call = None
            ref = weakref.ref(self)
            try:
                self.wire = on_destroyed(owner, lambda: _drop_connection(ref))
            except Exception:
                pass

    def kill(self) -> None:
        """Never deliver again (and stop watching the slot's QObject)."""
        self.dead = True
        if self.wire is not None:
            self.wire.cancel()

    def push(self, inc: _Incoming) -> None:
        if self.coalesce:
            with self.latest_lock:
                self.latest = inc
                if self.queued:
                    return
                self.queued = True
            self.target.post(self.flush)
        else:
            self.target.post(lambda: self.deliver(inc))

    def flush(self) -> None:
        with self.latest_lock:  # I/O thread vs delivery thread: the latest value is never lost
            self.queued = False
            inc, self.latest = self.latest, None
        if inc is not None:
            self.deliver(inc)

    def deliver(self, inc: _Incoming) -> None:
        if self.dead:
            return
        call = self.call
        if call is None:
            method = self.weak_self.resolve() if self.weak_self is not None else None
            if method is None or is_deleted(method.__self__):
                _drop_connection(weakref.ref(self))
                return
            call = method
        args = inc.args
        accepted = self.accepted
        if accepted is not None and not self.required <= len(args) <= accepted:
            args = fit_args(args, self.required, accepted)
        call(*args)


class _WeakSlotKey:
    """Compares equal to the bound method it stands for, without keeping its object alive.

    Works for Python methods and for a Qt class's own (builtin) methods such as
    ``label.setText``, which have no ``__func__``.
    """

    __slots__ = ("func", "name", "obj_ref", "__weakref__")

    def __init__(self, method: Any) -> None:
        self.func = getattr(method, "__func__", None)
        self.name = getattr(method, "__name__", None)
        self.obj_ref = weakref.ref(method.__self__)

    def resolve(self) -> Any:
        """The bound method again, or None once its object is gone."""
        obj = self.obj_ref()
        if obj is None:
            return None
        if self.func is not None:
            return self.func.__get__(obj, type(obj))
        return getattr(obj, self.name)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, _WeakSlotKey):
            return self.func is other.func and self.name == other.name and self.obj_ref() is other.obj_ref()
        if getattr(other, "__self__", None) is not self.obj_ref():
            return False
        if self.func is not None:
            return getattr(other, "__func__", None) is self.func
        return getattr(other, "__func__", None) is None and getattr(other, "__name__", None) == self.name

    __hash__ = None  # type: ignore[assignment]


def _drop_connection(ref: "weakref.ref[_Connection]") -> None:
    conn = ref()
    if conn is None or conn.dead:
        return
    conn.dead = True
    sub = conn.sub
    sub.remove(conn)


class _SignalSub:
    """The connections of one proxy to one remote signal (the sink runs on the I/O thread)."""

    def __init__(self, core: "_ProxyCore", topic: str) -> None:
        self.core = core
        self.topic = topic
        self.connections: Tuple[_Connection, ...] = ()
        self.lock = threading.Lock()
        self.active = False

    def sink(self, env: Envelope, frames: List[bytes]) -> None:
        conns = self.connections
        if conns:
            inc = _Incoming(env, frames, self.core.protocol.loads)
            for conn in conns:
                conn.push(inc)

    def remove(self, conn: _Connection) -> None:
        conn.kill()
        with self.lock:
            self.connections = tuple(c for c in self.connections if c is not conn)
            empty = not self.connections
        if empty:
            self.core.unsubscribe(self)
