"""Watching remote attributes that have no change signal: ``watch(proxy, name)``.

A ``Watch`` polls one attribute and emits ``changed(value)`` when the value
differs from the last one it saw (and once with the first value). Polling is
scheduled by pizco_qt, not by a QTimer in the caller's thread: one poller per
server runs its timer on the I/O thread, and at each tick sends one
non-blocking ``getmany`` request for every watch that is due, so a hundred
watches of one server cost one round trip per interval. While the server is
offline the poller sends nothing; it resumes at the first tick after the
server is back.

Thread affinity: create a Watch in the thread that should receive ``changed``
(normally the GUI thread). Poller ticks run on the I/O thread and only send
requests; replies are decoded on the dispatcher thread; comparisons and
``changed`` run in the creating thread's Qt loop (else on the dispatcher thread).
"""
from __future__ import annotations

import concurrent.futures
import itertools
import logging
import math
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import config, forking, iothread
from ._qt import QObject, Signal, is_deleted, on_destroyed
from .delivery import Target, current_target
from .errors import ConnectionLost, ProxyClosed, RemoteTimeout

logger = logging.getLogger(__name__)

__all__ = ["Watch", "watch", "same_value"]

_ids = itertools.count(1)


def same_value(a: Any, b: Any) -> bool:
    """Whether two values count as equal for change detection (arrays included)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        result = a == b
        if isinstance(result, bool):
            return result
        if hasattr(result, "all"):  # numpy arrays and friends
            return getattr(a, "shape", None) == getattr(b, "shape", None) and bool(result.all())
        return bool(result)
    except Exception:
        return False


class Remote:
    """A proxy as watches and bindings see it: held weakly, used through its documented
    ``_proxy_*`` names only (the non-blocking API, the connection state, ``dir()``).

    A watch or a binding does not keep its proxy alive: once the proxy is
    stopped or garbage-collected, ``closed`` is True.
    """

    def __init__(self, proxy: Any) -> None:
        from .proxy import Proxy  # a function-level import of the client side only

        if not isinstance(proxy, Proxy):
            raise TypeError(f"expected a pizco_qt Proxy, got {type(proxy).__name__}")
        if proxy._proxy_closed:
            raise ProxyClosed(f"this proxy to {proxy._proxy_endpoint} is stopped")
        self._ref = weakref.ref(proxy)
        self.endpoint: str = proxy._proxy_endpoint
        self.timeout: float = proxy._proxy_timeout
        self.connection = proxy._proxy_connection

    def proxy(self) -> Any:
        """The proxy, or None once it was garbage-collected."""
        return self._ref()

    @property
    def closed(self) -> bool:
        proxy = self._ref()
        return proxy is None or proxy._proxy_closed

    @property
    def alive(self) -> bool:
        return self.connection.alive()

    def names(self) -> List[str]:
        """The served object's remote names (methods, signals...), as ``dir(proxy)`` lists them."""
        proxy = self._ref()
        return [n for n in dir(proxy) if not n.startswith("_proxy_")] if proxy is not None else []

    def get_many(self, names: List[str]) -> concurrent.futures.Future:
        proxy = self._ref()
        return proxy._proxy_get_many_future(names) if proxy is not None else _failed(ProxyClosed(f"this proxy to {self.endpoint} is stopped"))

    def set(self, name: str, value: Any) -> concurrent.futures.Future:
        proxy = self._ref()
        return proxy._proxy_set_future(name, value) if proxy is not None else _failed(ProxyClosed(f"this proxy to {self.endpoint} is stopped"))

    def lock_changed(self) -> Any:
        """The proxy's ``_proxy_lock_changed`` signal (holder dict or None at each change of the lock)."""
        return self._ref()._proxy_lock_changed

    def write_blocked(self) -> Optional[str]:
        """Why this client may not write now, or None (known locally, no round trip)."""
        proxy = self._ref()
        return proxy._proxy_write_blocked() if proxy is not None else None

    def connect(self, signal: str, slot: Any) -> None:
        """Connect ``slot`` to the remote signal, coalesced, without waiting for the server."""
        proxy = self._ref()
        if proxy is not None:
            getattr(proxy, signal).connect(slot, coalesce=True, wait=False)

    def disconnect(self, signal: str, slot: Any) -> None:
        proxy = self._ref()
        if proxy is not None and not proxy._proxy_closed:
            getattr(proxy, signal).disconnect(slot)


def _failed(exc: BaseException) -> concurrent.futures.Future:
    fut: concurrent.futures.Future = concurrent.futures.Future()
    fut.set_exception(exc)
    return fut


class _Entry:
    """What the poller knows of one Watch (touched on the I/O thread only, except ``dead``)."""

    __slots__ = ("id", "remote", "name", "interval", "due", "sink", "dead")

    def __init__(self, remote: Remote, name: str, interval: float, sink: "_Sink") -> None:
        self.id = next(_ids)
        self.remote = remote
        self.name = name
        self.interval = interval
        self.due = 0.0
        self.sink = sink
        self.dead = False


class _Sink:
    """Receives poll results on the dispatcher thread and hands the latest to the watch's thread."""

    def __init__(self, target: Target, receive: Callable[[str, Any], None]) -> None:
        self.target = target
        self.receive_ref = weakref.WeakMethod(receive)
        self.lock = threading.Lock()
        self.latest: Optional[Tuple[str, Any]] = None
        self.queued = False

    def offer(self, kind: str, value: Any) -> None:
        with self.lock:
            self.latest = (kind, value)
            if self.queued:
                return
            self.queued = True
        self.target.post(self.flush)

    def flush(self) -> None:
        with self.lock:
            item, self.latest = self.latest, None
            self.queued = False
        receive = self.receive_ref()
        if item is None or receive is None or is_deleted(receive.__self__):
            return
        receive(*item)


class _Poller:
    """One server's watches: one timer on the I/O thread and one request per tick."""

    def __init__(self, key: Tuple[str, int], io: Any) -> None:
        self.key = key
        self.io = io
        self.entries: Dict[int, _Entry] = {}
        self.epoch = time.monotonic()
        self.next_tick: Optional[float] = None
        self.inflight_since: Optional[float] = None
        self.inflight: Any = None
        #: Requests sent, and due turns skipped because the server was offline.
        self.sent = 0
        self.skipped = 0

    # all methods below run on the I/O thread
    def add(self, entry: _Entry) -> None:
        entry.due = time.monotonic()
        self.entries[entry.id] = entry
        self.schedule(entry.due)

    def remove(self, entry: _Entry) -> None:
        self.entries.pop(entry.id, None)
        if not self.entries:
            self.forget()

    def forget(self) -> None:
        with _pollers_lock:
            if _pollers.get(self.key) is self:
                del _pollers[self.key]

    def schedule(self, when: float) -> None:
        if self.next_tick is not None and self.next_tick <= when:
            return
        self.next_tick = when
        self.io.call_later(max(0.0, when - time.monotonic()), lambda: self.tick(when))

    def next_due(self, entry: _Entry, now: float) -> float:
        # on a grid shared by every watch of the same interval, so they batch together
        steps = math.floor((now - self.epoch) / entry.interval) + 1
        return self.epoch + steps * entry.interval

    def tick(self, when: float) -> None:
        if self.next_tick != when:
            return  # superseded by an earlier tick
        self.next_tick = None
        now = time.monotonic()
        for entry in list(self.entries.values()):
            if entry.dead or entry.remote.closed:
                del self.entries[entry.id]
        if not self.entries:
            self.forget()
            return
        if self.inflight is not None:
            remote = self.inflight[0]
            if now - (self.inflight_since or now) < max(remote.timeout, config.DEFAULTS.poll_resend_floor):
                return  # the reply will schedule the next tick
            self.inflight[1].cancel()  # its reply, if it comes, is discarded
            logger.debug("poll of %s took longer than %g s; sending again", remote.endpoint, remote.timeout)
            self.inflight = None
        due = [e for e in self.entries.values() if e.due <= now + config.DEFAULTS.poll_slack]
        if due:
            remotes = [e.remote for e in due if e.remote.alive and not e.remote.closed]
            for entry in due:
                entry.due = self.next_due(entry, now)
            if remotes:
                self.send(remotes[0], due, now)
            else:  # the server is offline: skip this turn, nothing is sent
                self.skipped += 1
        if self.inflight is None:
            self.schedule(min(e.due for e in self.entries.values()))

    def send(self, remote: Remote, due: List[_Entry], now: float) -> None:
        names = sorted({e.name for e in due})
        self.sent += 1
        fut = remote.get_many(names)
        self.inflight = (remote, fut)
        self.inflight_since = now
        fut.add_done_callback(lambda f: self.replied(f, due))

    def replied(self, fut: Any, due: List[_Entry]) -> None:
        """Dispatcher thread: hand each watch its value, then let the I/O thread tick again."""
        self.io.submit(self.settle)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            logger.debug("poll failed: %r", exc)
            return
        values = fut.result()
        if not isinstance(values, dict):
            return
        for entry in due:
            if entry.dead:
                continue
            outcome = values.get(entry.name)
            if outcome is None:
                continue
            kind, value = outcome
            if kind == "raise" and isinstance(value, (ConnectionLost, RemoteTimeout)):
                continue  # not an outcome of the attribute: the next poll tells
            entry.sink.offer(kind, value)

    def settle(self) -> None:
        self.inflight = None
        self.inflight_since = None
        if self.entries:
            self.schedule(min(e.due for e in self.entries.values()))


_pollers: Dict[Tuple[str, int], _Poller] = {}
_pollers_lock = threading.Lock()


def _reset_after_fork() -> None:
    """In a forked child: the parent's pollers run on its I/O thread, which is gone."""
    global _pollers, _pollers_lock
    _pollers, _pollers_lock = {}, threading.Lock()


forking.on_fork_child(_reset_after_fork)


def _poller_for(remote: Remote) -> _Poller:
    io = iothread.io_thread()
    key = (remote.endpoint, id(io))
    with _pollers_lock:
        poller = _pollers.get(key)
        if poller is None:
            poller = _pollers[key] = _Poller(key, io)
        return poller


class Watch(QObject):
    """Polls one remote attribute and emits ``changed`` when its value changes.

    Made by :func:`watch`. It keeps polling until ``stop()`` is called, the
    Watch is destroyed (with its Qt parent, or garbage-collected when nothing
    refers to it), or its proxy is closed.

    Thread affinity: lives in the thread that created it; its signals are
    emitted there (through the pizco_qt delivery path).
    """

    #: Signal(object) -- the new value (emitted once with the first value, then on each change).
    changed = Signal(object)
    #: Signal(object) -- reading the attribute raised this exception on the server.
    failed = Signal(object)

    def __init__(self, proxy: Any, name: str, interval: float = config.DEFAULTS.watch_interval, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        remote = Remote(proxy)
        if not isinstance(name, str) or not name:
            raise TypeError(f"the attribute name must be a non-empty str, not {name!r}")
        interval = _check_interval(interval)
        self.name = name
        self.interval = interval
        self._proxy_endpoint = remote.endpoint
        self._has_value = False
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._sink = _Sink(current_target(), self._receive)
        self._entry = _Entry(remote, name, interval, self._sink)
        self._poller = _poller_for(remote)
        poller, entry = self._poller, self._entry
        self._hook = on_destroyed(self, lambda: _stop_entry(poller, entry))
        poller.io.submit(lambda: poller.add(entry))

    def value(self) -> Any:
        """The last value seen (None before the first reply)."""
        return self._value

    def active(self) -> bool:
        """Whether it is still polling (not stopped, proxy not closed)."""
        return not self._entry.dead and not self._entry.remote.closed

    def stop(self) -> None:
        """Stop polling (idempotent); no ``changed`` is emitted afterwards."""
        _stop_entry(self._poller, self._entry)
        self._hook.cancel()

    def _receive(self, kind: str, value: Any) -> None:
        if self._entry.dead:
            return
        if kind == "raise":
            if self._error is None or type(self._error) is not type(value) or str(self._error) != str(value):
                self._error = value
                logger.info("watching %r of %s: %s: %s", self.name, self._proxy_endpoint,
                            type(value).__name__, value)
                self.failed.emit(value)
            return
        self._error = None
        if self._has_value and same_value(self._value, value):
            return
        self._has_value = True
        self._value = value
        self.changed.emit(value)

    def __repr__(self) -> str:
        return f"<Watch {self.name!r} of {self._proxy_endpoint} every {self.interval:g} s>"

    def __del__(self) -> None:
        try:
            _stop_entry(self._poller, self._entry)
        except Exception:
            pass


def _stop_entry(poller: _Poller, entry: _Entry) -> None:
    if entry.dead:
        return
    entry.dead = True
    try:
        poller.io.submit(lambda: poller.remove(entry))
    except Exception:  # the I/O thread is gone: nothing is scheduled anyway
        pass


def _check_interval(interval: Any) -> float:
    try:
        value = float(interval)
    except (TypeError, ValueError):
        raise TypeError(f"interval must be a number of seconds, not {interval!r}") from None
    if not value > 0 or math.isinf(value):
        raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
    return value


def watch(proxy: Any, name: str, interval: float = config.DEFAULTS.watch_interval, parent: Optional[QObject] = None) -> Watch:
    """Poll ``proxy``'s attribute ``name`` every ``interval`` seconds; emit ``changed`` on change.

    Parameters
    ----------
    proxy : Proxy
        The proxy of the server to poll.
    name : str
        The attribute to read.
    interval : float
        Seconds between polls (watches of one server share one timer and one
        request per interval).
    parent : QObject, optional
        A Qt parent; the watch stops when its parent is destroyed.

    Returns
    -------
    Watch
        A QObject with ``changed(object)``, ``failed(object)`` and ``stop()``.
        Keep a reference (or pass ``parent``): a Watch that is garbage-collected
        stops polling.
    """
    return Watch(proxy, name, interval, parent)
