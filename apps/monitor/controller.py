"""Between proxies and the monitor's models: connections, reads, writes, calls, subscriptions.

Nothing here blocks the GUI thread on the network. Proxies are created (a few
round trips) and signals subscribed (the subscription is acknowledged by the
server) on a small pool of worker threads; every other remote call is sent with
``.future()``-style non-blocking requests whose outcome comes back on the GUI
thread through ``pizco_qt.FutureWatcher``, with a deadline of the proxy timeout.
Emissions of subscribed signals are counted by a cheap sink on the pizco_qt
dispatcher thread; the window drains the sinks a few times per second, so a
server flooding signals costs the GUI thread one small update per tick.

Thread affinity: the QObjects here live in the GUI thread; the functions given to
the executor run on its worker threads; ``SignalSink.__call__`` runs on the
pizco_qt dispatcher thread.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from qtpy import QtCore

from pizco_qt import FutureWatcher, Proxy, RemoteTimeout, config
from pizco_qt.endpoints import is_wildcard, split_tcp
from pizco_qt.errors import ConnectionLost
from pizco_qt.futures import copy_outcome

logger = logging.getLogger(__name__)

__all__ = ["ServerSession", "RegistryClient", "SignalSink", "describe_error", "connectable_endpoint"]


def describe_error(exc: BaseException) -> str:
    """A one-line, readable account of an exception."""
    if isinstance(exc, concurrent.futures.CancelledError):
        return "cancelled"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def connectable_endpoint(endpoint: str, host: str = "") -> str:
    """An endpoint a client can dial: a wildcard bind address becomes ``host`` (else loopback)."""
    parts = split_tcp(endpoint)
    if parts is None:
        return endpoint
    address, port = parts
    if is_wildcard(address):
        import socket

        local = host in ("", socket.gethostname(), "localhost")
        address = "127.0.0.1" if local else host
    return f"tcp://{address}:{port}"


class SignalSink:
    """Counts and keeps the latest emissions of one signal (called on the dispatcher thread).

    Thread affinity: ``__call__`` on the dispatcher thread, ``drain`` on the GUI thread.
    """

    def __init__(self, server: str, name: str, keep: int = 500) -> None:
        self.server = server
        self.name = name
        self.count = 0
        self._lock = threading.Lock()
        self._recent: Deque[Tuple[float, tuple]] = collections.deque(maxlen=keep)
        self._drained = 0
        self._rate_mark = (time.monotonic(), 0)
        self.rate = 0.0

    def __call__(self, *args: Any) -> None:
        now = time.time()
        with self._lock:
            self.count += 1
            self._recent.append((now, args))

    def drain(self) -> Tuple[int, List[Tuple[float, tuple]]]:
        """(total count, emissions kept since the last drain); also updates ``rate``."""
        with self._lock:
            count = self.count
            new = count - self._drained
            items = list(self._recent)[-new:] if new > 0 else []
            self._recent.clear()
            self._drained = count
        mono = time.monotonic()
        t0, c0 = self._rate_mark
        if mono - t0 >= 1.0:
            self.rate = (count - c0) / (mono - t0)
            self._rate_mark = (mono, count)
        return count, items


class _Calls(QtCore.QObject):
    """Non-blocking requests with a deadline, answered on the GUI thread."""

    def __init__(self, endpoint: str, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self.endpoint = endpoint
        self._watchers: set = set()

    def watch(self, fut: concurrent.futures.Future, on_ok: Callable[[Any], None],
              on_err: Callable[[BaseException], None], deadline: Optional[float],
              action: str = "request") -> FutureWatcher:
        """Call ``on_ok(result)`` or ``on_err(exc)`` on the GUI thread; a timeout cancels the request
        and reports ``RemoteTimeout(action, endpoint, deadline)``."""
        # The watcher follows a relay that is completed only after the slots are
        # connected: a future already finished here would otherwise be reported
        # inline, before anyone listens.
        relay: concurrent.futures.Future = concurrent.futures.Future()
        watcher = FutureWatcher(relay, self)
        expired = []

        def failed(exc: BaseException) -> None:
            if expired and isinstance(exc, concurrent.futures.CancelledError):
                exc = RemoteTimeout(action, self.endpoint, deadline or 0.0)
            on_err(exc)

        def done() -> None:
            self._watchers.discard(watcher)
            watcher.deleteLater()

        watcher.finished.connect(on_ok)
        watcher.failed.connect(failed)
        watcher.done.connect(done)
        self._watchers.add(watcher)
        fut.add_done_callback(lambda src: copy_outcome(src, relay))
        if deadline:
            def expire() -> None:
                if not fut.done():
                    expired.append(True)
                    fut.cancel()

            timer = QtCore.QTimer(watcher)
            timer.setSingleShot(True)
            timer.timeout.connect(expire)
            timer.start(int(deadline * 1000))
        return watcher


class _Connection(QtCore.QObject):
    """A proxy made on an executor thread, retried every few seconds until it works, closed once.

    Subclasses say what to prepare on the new proxy (``_prepare``, executor thread),
    what to do once it exists (``_on_proxy``) and how a failure shows (``_on_failed``).

    Thread affinity: GUI thread; the proxy is created on an executor thread.
    """

    #: Signal(str, str) -- new state ('connecting', 'online', 'offline') and a detail.
    state_changed = QtCore.Signal(str, str)

    def __init__(self, endpoint: str, executor: concurrent.futures.Executor, timeout: float,
                 proxy_kwargs: Optional[Dict[str, Any]], parent: Optional[QtCore.QObject],
                 settings: Optional[config.Settings] = None) -> None:
        super().__init__(parent)
        self.endpoint = endpoint
        #: Its timings: ``monitor_retry`` between attempts to reach a peer that did not answer.
        self.settings = settings if settings is not None else config.DEFAULTS
        self.timeout = timeout if timeout is not None else self.settings.monitor_timeout
        self.state = "connecting"
        self._executor = executor
        self._proxy_kwargs = dict(proxy_kwargs or {})
        self._proxy: Optional[Proxy] = None
        self._lock = threading.Lock()
        self._closed = False
        self._connecting = False
        self._calls = _Calls(endpoint, self)
        self._retry = QtCore.QTimer(self)
        self._retry.setSingleShot(True)

    def _make_proxy(self, detail: str) -> None:
        if self._closed or self._connecting or self._proxy is not None:
            return
        self._connecting = True
        self._set_state("connecting", detail)

        def make() -> Optional[Proxy]:
            proxy = Proxy(self.endpoint, timeout=self.timeout, **self._proxy_kwargs)
            try:
                self._prepare(proxy)
            except BaseException:
                proxy._proxy_stop_me()
                raise
            with self._lock:
                if not self._closed:
                    self._proxy = proxy
                    return proxy
            proxy._proxy_stop_me()
            return None

        try:
            fut = self._executor.submit(make)
        except RuntimeError:  # executor shut down
            return
        self._calls.watch(fut, self._proxy_made, self._proxy_failed, None)

    def _prepare(self, proxy: Proxy) -> None:
        """Hook (executor thread): set up a new proxy before it is kept."""

    def _proxy_made(self, proxy: Optional[Proxy]) -> None:
        self._connecting = False
        if proxy is not None and not self._closed:
            self._on_proxy(proxy)

    def _proxy_failed(self, exc: BaseException) -> None:
        self._connecting = False
        if self._closed:
            return
        self._on_failed(exc)
        self._retry.start(round(self.settings.monitor_retry * 1000))

    def _on_proxy(self, proxy: Proxy) -> None:
        raise NotImplementedError

    def _on_failed(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _set_state(self, state: str, detail: str) -> None:
        self.state = state
        self.state_changed.emit(state, detail)

    def _close_proxy(self) -> None:
        with self._lock:
            self._closed = True
            proxy, self._proxy = self._proxy, None
        self._retry.stop()
        if proxy is not None:
            try:
                proxy._proxy_stop_me()
            except Exception:  # pragma: no cover - closing must not fail
                logger.debug("closing the proxy to %s", self.endpoint, exc_info=True)


class ServerSession(_Connection):
    """The monitor's connection to one server: its proxy, state, and requests.

    Thread affinity: GUI thread; the proxy is created on an executor thread.
    """

    #: Signal(object) -- the server described itself: {name: {'kind', 'type', 'writable', ...}}.
    described = QtCore.Signal(object)
    #: Signal(object, float) -- attribute values {name: ('return', v) | ('raise', text)}, seconds taken.
    values_read = QtCore.Signal(object, float)
    #: Signal(str) -- something worth a line in the status bar.
    message = QtCore.Signal(str)
    #: Signal(str, bool, str) -- a subscription changed: signal name, now subscribed, error text.
    subscription_changed = QtCore.Signal(str, bool, str)
    #: Signal(str) -- the server confirmed a subscription: every later emission arrives.
    subscription_active = QtCore.Signal(str)
    #: Signal() -- who holds exclusive control, or this client's role, changed (``control_text``).
    control_changed = QtCore.Signal()

    def __init__(self, key: str, endpoint: str, executor: concurrent.futures.Executor,
                 timeout: Optional[float] = None, proxy_kwargs: Optional[Dict[str, Any]] = None,
                 parent: Optional[QtCore.QObject] = None, settings: Optional[config.Settings] = None) -> None:
        super().__init__(endpoint, executor, timeout, proxy_kwargs, parent, settings)
        self.key = key
        self.description: Optional[Dict[str, Dict[str, Any]]] = None
        self.sinks: Dict[str, SignalSink] = {}
        self.watched: set = set()
        self.label = key
        #: This client's role on the server: 'controller' or 'observer'.
        self.role = "controller"
        #: Who holds exclusive control (the holder dict), or None.
        self.holder: Optional[Dict[str, Any]] = None
        #: Whether the server offers exclusive control.
        self.lockable = False
        self._reading = False
        self._retry.timeout.connect(self.connect_proxy)

    # ------------------------------------------------------------------ connection
    @property
    def proxy(self) -> Optional[Proxy]:
        """The proxy, once connected."""
        return self._proxy

    @property
    def online(self) -> bool:
        """Whether the server is connected and alive."""
        return self.state == "online"

    def connect_proxy(self) -> None:
        """Create the proxy on a worker thread (retried every few seconds until it works)."""
        self._make_proxy(f"connecting to {self.endpoint}")

    def _on_proxy(self, proxy: Proxy) -> None:
        conn = proxy._proxy_connection
        conn.lost.connect(self._on_lost)
        conn.regained.connect(self._on_regained)
        self.role = proxy._proxy_role
        self.lockable = "lock" in proxy._proxy_capabilities
        if self.lockable:
            proxy._proxy_lock_changed.connect(self._on_lock_changed)
            self._ask_holder()
        self.control_changed.emit()
        if conn.alive():
            self._set_state("online", "")
            self.describe()
        else:
            self._set_state("offline", "not answering")

    def _on_failed(self, exc: BaseException) -> None:
        self._set_state("offline", describe_error(exc))

    def _on_lost(self) -> None:
        if not self._closed:
            self._set_state("offline", "lost: missed heartbeats")
            self.message.emit(f"{self.label} went offline")

    def _on_regained(self) -> None:
        if not self._closed:
            self._set_state("online", "")
            self.message.emit(f"{self.label} is back online")
            self.describe()
            self._ask_holder()

    # ------------------------------------------------------------------ exclusive control
    def _ask_holder(self) -> None:
        proxy = self._proxy
        if proxy is None or not self.lockable:
            return
        self._calls.watch(proxy._proxy_lock_holder_future(), self._on_lock_changed,
                          lambda exc: logger.debug("asking %s for its lock holder: %s", self.label, exc),
                          self.timeout)

    def _on_lock_changed(self, holder: Any) -> None:
        holder = holder if isinstance(holder, dict) else None
        if holder != self.holder:
            self.holder = holder
            self.control_changed.emit()

    @property
    def holds_control(self) -> bool:
        """Whether this monitor holds exclusive control of the server."""
        proxy = self._proxy
        return bool(proxy is not None and self.holder is not None and proxy._proxy_holds_lock())

    def blocked_reason(self) -> Optional[str]:
        """Why this monitor may not write to the server now (None if it may)."""
        if self.role == "observer":
            return f"you are an observer of {self.label}: you may read, not write"
        holder = self.holder
        if holder is not None and not self.holds_control:
            since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
            return f"{holder.get('label', 'another client')} holds exclusive control of {self.label} since {since}"
        return None

    def control_text(self) -> str:
        """The header's line: this client's role and who holds exclusive control."""
        bits = [f"you are {'an observer' if self.role == 'observer' else 'a controller'}"]
        if self.lockable:
            holder = self.holder
            if holder is None:
                bits.append("control: free")
            else:
                since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
                who = "you" if self.holds_control else (
                    f"{holder.get('label', '?')} ({holder.get('host', '?')} pid {holder.get('pid', '?')})")
                bits.append(f"control: {who} since {since}")
        return "   \u00b7   ".join(bits)

    def take_control(self) -> None:
        """Take exclusive control without waiting for a holder to release it (reports in ``message``)."""
        proxy = self._proxy
        if proxy is None or self._closed:
            return

        def take() -> Any:
            proxy._proxy_lock(timeout=0)
            return proxy._proxy_lock_holder()

        def failed(exc: BaseException) -> None:
            self.message.emit(f"Could not take control of {self.label}: {describe_error(exc)}")
            self._ask_holder()

        def ok(holder: Any) -> None:
            self._on_lock_changed(holder)
            self.message.emit(f"You have exclusive control of {self.label}")

        self._calls.watch(self._executor.submit(take), ok, failed, None)

    def release_control(self) -> None:
        """Release exclusive control (reports in ``message``)."""
        proxy = self._proxy
        if proxy is None or self._closed:
            return

        def ok(released: Any) -> None:
            self._on_lock_changed(None)
            self.message.emit(f"Released control of {self.label}" if released
                              else f"You did not hold control of {self.label}")

        self._calls.watch(self._executor.submit(proxy._proxy_unlock), ok,
                          lambda exc: self.message.emit(f"Could not release {self.label}: {describe_error(exc)}"),
                          None)

    # ------------------------------------------------------------------ reading
    def describe(self) -> None:
        """Ask the server for its names and kinds (emits ``described``)."""
        proxy = self._proxy
        if proxy is None:
            return
        if "describe" not in proxy._proxy_capabilities:
            # a server that cannot describe itself: what 'inspect' said is all we know
            desc = {name: {"kind": "method", "type": "?", "writable": False, "signature": "(...)",
                           "doc": "kind unknown: the server does not describe itself",
                           "maybe_signal": True}
                    for name in sorted(n for n in dir(proxy) if not n.startswith("_proxy_"))}
            self._on_described(desc)
            return
        started = time.perf_counter()
        self.message.emit(f"Describing {self.label}\u2026")

        def ok(desc: Any) -> None:
            self.message.emit(f"{self.label}: {len(desc)} names described in "
                              f"{(time.perf_counter() - started) * 1000:.0f} ms")
            self._on_described(desc)

        self._calls.watch(proxy._proxy_describe_future(), ok,
                          lambda exc: self.message.emit(f"{self.label}: describe failed: {describe_error(exc)}"),
                          self.timeout, "describe")

    def _on_described(self, desc: Dict[str, Dict[str, Any]]) -> None:
        if self._closed:
            return
        self.description = desc
        self.described.emit(desc)

    def attribute_names(self) -> List[str]:
        """Names described as attributes."""
        return [n for n, d in (self.description or {}).items() if d.get("kind") == "attribute"]

    def read(self, names: Optional[List[str]] = None) -> bool:
        """Read attribute values without blocking (emits ``values_read``); False if one is in flight."""
        proxy = self._proxy
        if proxy is None or self._closed or not self.online:
            return False
        names = self.attribute_names() if names is None else list(names)
        if not names or self._reading:
            return False
        self._reading = True
        started = time.perf_counter()

        def ok(values: Any) -> None:
            self._reading = False
            out = {}
            for name, (kind, payload) in dict(values).items():
                out[name] = (kind, payload if kind == "return" else describe_error(payload))
            self.values_read.emit(out, time.perf_counter() - started)

        def failed(exc: BaseException) -> None:
            self._reading = False
            if len(names) > 1 and not isinstance(exc, (RemoteTimeout, ConnectionLost,
                                                       concurrent.futures.CancelledError)):
                for name in names:  # one bad value must not hide the others
                    self._read_one(proxy, name)
                return
            self.message.emit(f"{self.label}: reading {len(names)} attribute(s) failed: {describe_error(exc)}")
            self.values_read.emit({n: ("raise", describe_error(exc)) for n in names},
                                  time.perf_counter() - started)

        self._calls.watch(proxy._proxy_get_many_future(names), ok, failed, self.timeout, "getmany")
        return True

    def _read_one(self, proxy: Any, name: str) -> None:
        def ok(values: Any) -> None:
            kind, payload = dict(values)[name]
            self.values_read.emit({name: (kind, payload if kind == "return" else describe_error(payload))}, 0.0)

        self._calls.watch(proxy._proxy_get_many_future([name]), ok,
                          lambda exc: self.values_read.emit({name: ("raise", describe_error(exc))}, 0.0),
                          self.timeout, "getmany")

    # ------------------------------------------------------------------ writing and calling
    def write(self, name: str, value: Any, done: Callable[[Optional[BaseException]], None]) -> None:
        """Set attribute ``name`` to ``value``; ``done(None | exception)`` on the GUI thread."""
        proxy = self._proxy
        if proxy is None or self._closed:
            done(ConnectionLost(f"{self.label} is not connected"))
            return
        fut = proxy._proxy_set_future(name, value)
        self._calls.watch(fut, lambda _: done(None), done, self.timeout, "setattr")

    def call(self, name: str, args: tuple, kwargs: Dict[str, Any]) -> concurrent.futures.Future:
        """Call method ``name`` without waiting (no deadline: the caller shows the elapsed time)."""
        proxy = self._proxy
        if proxy is None or self._closed:
            fut: concurrent.futures.Future = concurrent.futures.Future()
            fut.set_exception(ConnectionLost(f"{self.label} is not connected"))
            return fut
        return getattr(proxy, name).future(*args, **kwargs)

    def watch_future(self, fut: concurrent.futures.Future, on_ok: Callable[[Any], None],
                     on_err: Callable[[BaseException], None]) -> FutureWatcher:
        """Outcome of ``fut`` on the GUI thread (no deadline)."""
        return self._calls.watch(fut, on_ok, on_err, None)

    # ------------------------------------------------------------------ signals
    def subscribe(self, name: str) -> None:
        """Subscribe to signal ``name`` on a worker thread (waits for the server's acknowledgement)."""
        proxy = self._proxy
        if proxy is None or self._closed:
            self.subscription_changed.emit(name, False, "not connected")
            return
        sink = self.sinks.get(name)
        if sink is None:
            sink = self.sinks[name] = SignalSink(self.label, name)
        fut = self._executor.submit(lambda: getattr(proxy, name).connect(sink))
        self.subscription_changed.emit(name, True, "")

        def failed(exc: BaseException) -> None:
            self.sinks.pop(name, None)
            self.subscription_changed.emit(name, False, describe_error(exc))

        def ok(_: Any) -> None:
            self.message.emit(f"Subscribed to {self.label}.{name}")
            self.subscription_active.emit(name)

        self._calls.watch(fut, ok, failed, None)

    def unsubscribe(self, name: str) -> None:
        """Stop receiving signal ``name`` (does not wait for the server)."""
        sink = self.sinks.pop(name, None)
        proxy = self._proxy
        if sink is not None and proxy is not None:
            try:
                getattr(proxy, name).disconnect(sink)
            except TypeError:
                pass  # the subscription had not been made yet; the worker's connect is undone below
            except Exception as exc:  # a closed proxy
                logger.debug("unsubscribe %s: %s", name, exc)
        self.subscription_changed.emit(name, False, "")

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Stop the proxy (its subscriptions go with it); the server keeps running."""
        self.sinks.clear()
        self._close_proxy()


class RegistryClient(_Connection):
    """Follows a registry: its list of servers and its added/removed signals.

    Thread affinity: GUI thread; the registry proxy is created and subscribed on an executor thread.
    """

    #: Signal(object) -- the full list of entries (dicts), after connecting and periodically.
    listed = QtCore.Signal(object)
    #: Signal(object) -- one entry added.
    added = QtCore.Signal(object)
    #: Signal(str) -- the name of a server that left.
    removed = QtCore.Signal(str)

    def __init__(self, endpoint: str, executor: concurrent.futures.Executor, timeout: Optional[float] = None,
                 resync_seconds: Optional[float] = None, proxy_kwargs: Optional[Dict[str, Any]] = None,
                 parent: Optional[QtCore.QObject] = None, settings: Optional[config.Settings] = None) -> None:
        settings = settings if settings is not None else config.DEFAULTS
        super().__init__(endpoint, executor, settings.monitor_registry_timeout if timeout is None else timeout,
                         proxy_kwargs, parent, settings)
        self._listing = False
        self._retry.timeout.connect(self.start)
        self._resync = QtCore.QTimer(self)
        resync = settings.monitor_resync if resync_seconds is None else resync_seconds
        self._resync.setInterval(round(resync * 1000))
        self._resync.timeout.connect(self.refresh)

    def start(self) -> None:
        """Connect (on a worker thread) and subscribe to the registry's signals."""
        self._make_proxy(f"connecting to the registry at {self.endpoint}")

    def _prepare(self, proxy: Proxy) -> None:
        # emitted from the dispatcher thread, queued to this object's GUI thread
        proxy.server_added.connect(self.added.emit)
        proxy.server_removed.connect(self.removed.emit)

    def _on_proxy(self, proxy: Proxy) -> None:
        proxy._proxy_connection.lost.connect(
            lambda: self._set_state("offline", f"the registry at {self.endpoint} stopped answering"))
        proxy._proxy_connection.regained.connect(self._on_regained)
        self._set_state("online", f"registry {self.endpoint}")
        self.refresh()
        self._resync.start()

    def _on_regained(self) -> None:
        self._set_state("online", f"registry {self.endpoint}")
        self.refresh()

    def _on_failed(self, exc: BaseException) -> None:
        self._set_state("offline", f"no registry at {self.endpoint} ({describe_error(exc)}); "
                                   f"retrying every {self.settings.monitor_retry:g} s")

    def refresh(self) -> None:
        """Ask for the full list again (emits ``listed``)."""
        proxy = self._proxy
        if proxy is None or self._closed or self._listing or not proxy._proxy_connection.alive():
            return
        self._listing = True

        def ok(entries: Any) -> None:
            self._listing = False
            self.listed.emit(list(entries or []))

        def failed(exc: BaseException) -> None:
            self._listing = False
            logger.debug("registry servers(): %s", exc)

        self._calls.watch(proxy.servers.future(), ok, failed, self.timeout, "exec")

    def close(self) -> None:
        """Stop following the registry."""
        self._resync.stop()
        self._close_proxy()
