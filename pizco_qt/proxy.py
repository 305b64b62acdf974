"""Proxy: a local stand-in that behaves like the served object.

``proxy.attr``, ``proxy.attr = v``, ``proxy.method(*a, **kw)``,
``proxy.method.future(...)``, ``proxy.d[k]``, ``proxy.sig.connect(slot)``.
Synchronous calls go through a DEALER owned by the calling thread (any thread,
concurrently). Notifications arrive on the I/O thread and are delivered to the
thread that connected the slot (its Qt loop) or to the dispatcher thread.

Names that tools probe (IPython, pickle, copy, numpy) are answered locally and
never reach the server. Proxy internals live under the ``_proxy_`` prefix.

Thread affinity: a Proxy may be shared by every thread.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import logging
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import forking, inline, iothread, limits, replies
from .config import Settings
from .delivery import current_target
from .access import CONTROLLER, LOCK_TOPIC, client_sender, default_label
from .endpoints import connectable, normalize
from .errors import AccessDenied, ConnectionLost, PizcoError, ProtocolError, ProxyClosed, RemoteTimeout
from .protocol import OOB, Protocol, new_msgid
from .requesting import Requester
from .security import CurveConfig
from .futures import RemoteFuture, copy_outcome, settle
from .heartbeat import ConnectionState, Liveness
from .locking import LockClient
from .remote_futures import FutureTable
from .remote_signals import _Connection, _SignalSub
from .subscribing import Subscriber
from .signals import params_from_signature

logger = logging.getLogger(__name__)

__all__ = ["Proxy", "RemoteAttribute", "RemoteFuture", "ConnectionState", "LockHandle"]

_PROBE_NAMES = frozenset({
    "__getstate__", "__setstate__", "__reduce__", "__reduce_ex__", "__copy__", "__deepcopy__",
    "__getnewargs__", "__getnewargs_ex__", "__array__", "__array_interface__", "__array_struct__",
    "__array_priority__", "__array_ufunc__", "__array_function__", "__array_wrap__",
    "__length_hint__", "__fspath__", "__dataclass_fields__", "__wrapped__", "__signature__",
    "_ipython_canary_method_should_not_exist_", "_ipython_display_", "_fields", "__html__",
    "__iter__", "__len__", "__await__", "__aiter__", "__enter__", "__exit__",
})


def _is_local_name(name: str) -> bool:
    if name[:1] != "_":
        return name in _PROBE_NAMES
    return (name in _PROBE_NAMES or name.startswith("_proxy_") or name.startswith("_repr_")
            or name.startswith("_ipython_") or (name.startswith("__") and name.endswith("__")))


#: Proxy cores not yet closed (a forked child starts with none: see ``forking.live_set``).
_live_cores: "weakref.WeakSet[_ProxyCore]" = forking.live_set()


class _ProxyCore:
    """Everything a Proxy knows and does; holds no reference to the Proxy itself.

    Its parts: a ``requester`` (calls), a ``subscriber`` (signals, futures,
    heartbeats), a ``liveness`` (lost/regained, reconnection), ``locking``
    (exclusive control, locking.py) and ``remote_futures`` (server-side Futures,
    remote_futures.py), all working on the I/O thread ``io``.
    """

    def __init__(self, endpoint: str, timeout: Optional[float], protocol: Optional[Protocol],
                 curve: Optional[CurveConfig] = None, label: Optional[str] = None,
                 settings: Optional[Settings] = None) -> None:
        self.endpoint = endpoint
        self.settings = settings = settings if settings is not None else Settings.from_environment()
        self.timeout = settings.timeout if timeout is None else float(timeout)
        self.label = default_label() if label is None else label
        sender = client_sender(self.label)  # a bad label raises before anything starts
        self.protocol = protocol if protocol is not None else Protocol.from_settings(settings)
        self.curve = curve
        #: The process that created this proxy (see ``pizco_qt.forking``).
        self.owner_pid = forking.pid
        limits.check_headroom(self.settings.fd_per_proxy, f"create a proxy to {endpoint}")
        self.io = iothread.acquire()
        self.requester = Requester(self.protocol, self.io, curve, sender, settings)
        self.requester.owner = f"this Proxy to {endpoint}"
        self.subscriber = Subscriber(self.protocol, self.io, curve, settings)
        self.liveness = Liveness(self)
        _live_cores.add(self)
        self.closed = False
        self.lock = threading.Lock()
        self.target = current_target()
        self.connection = ConnectionState()
        self.signals: Dict[str, _SignalSub] = {}
        self.remote_futures = FutureTable(endpoint, self.protocol, settings, self.cancel_remote)
        #: What a 'future_register' reply is handed to (bound once: the call path allocates nothing for it).
        self.on_future_reply = self.remote_futures.register
        self.remote_names: frozenset = frozenset()
        self.object_names: frozenset = frozenset()
        self.slot_param_cache: Dict[str, Tuple[int, Optional[int]]] = {}
        #: The Proxy, held while a slot is connected through it (so a temporary
        #: proxy's connections live on); released when the last one goes or on close.
        self.keeper: Any = None
        self.tracking = False
        self.role = CONTROLLER
        self.locking = LockClient(self)
        try:
            info = self.requester.request(endpoint, "info", self.timeout)
            refused = replies.failure(info, endpoint)
            if refused is not None:
                raise refused  # e.g. our request's signature was refused
            if not isinstance(info, dict) or "pub_endpoint" not in info:
                raise ProtocolError(f"{endpoint} answered 'info' with {info!r}")
        except BaseException:
            self._close_parts()
            raise
        self.apply_info(info)
        try:
            futures = self.remote_futures
            self.io.call(lambda: self.liveness.subscribe_internal(futures.on_frames), timeout=self.timeout)
            if "lock" in self.caps:
                subscriber, sender, locking = self.subscriber, self.sender, self.locking
                self.io.call(lambda: subscriber.add(sender, LOCK_TOPIC, locking.on_frames), timeout=self.timeout)
            if "ack" in self.caps:
                self.subscriber.request_ack(self.sender, self.timeout)
            remote, plain = self.call("inspect", {})
            self.remote_names = frozenset(remote or ())
            self.object_names = frozenset(plain or ())
        except BaseException:
            self.close()
            raise
        if self.tracking:
            self.io.submit(self.liveness.start_checking)

    @property
    def alive(self) -> bool:
        """Whether the server is believed to be alive."""
        return self.liveness.alive

    def apply_info(self, info: Dict[str, Any]) -> None:
        """Take in the server's 'info': endpoints, heartbeat and what the requests may use."""
        self.sender = info.get("rep_endpoint", self.endpoint)
        self.pub = connectable(info["pub_endpoint"], self.endpoint)
        self.caps = frozenset(info.get("capabilities", ()))
        self.period = float(info.get("heartbeat", self.settings.heartbeat))
        self.tracking = "heartbeat" in self.caps
        ser = self.protocol.serializer
        self.req_serializer = OOB if ("oob" in self.caps and ser == "pickle") else ser
        self.compact = "compact" in self.caps
        self.role = str(info.get("role", CONTROLLER))
        holder = info.get("lock_holder")
        self.locking.note_holder(holder if isinstance(holder, dict) else None, notify=True)
        key = info.get("observer_key")
        if isinstance(key, str):  # publications are signed with the observer key
            import base64

            self.subscriber.protocol = Protocol(base64.b64decode(key), ser)

    # ---------------------------------------------------------------- calls
    def cancel_remote(self, msgid: str) -> None:
        """Ask the server to cancel its Future ``msgid`` (its Future here was cancelled), if it can."""
        if "cancel" in self.caps and not self.closed:
            self.requester.request_async(self.endpoint, ("PSMessage", "cancel", {"msgid": msgid}),
                                         serializer=self.protocol.serializer)

    def read_reply(self, frames: List[bytes]) -> Any:
        """What a reply's frames stand for (see ``replies.value``); raises the server's exception."""
        return replies.read_value(self.protocol, frames, self.endpoint, self.on_future_reply)

    def check_process(self) -> None:
        """ProxyClosed at once if this proxy was inherited across os.fork()."""
        forking.check_owner(self.owner_pid, f"this Proxy to {self.endpoint}")

    def call(self, action: str, options: Dict[str, Any], timeout: Optional[float] = None) -> Any:
        if self.owner_pid != forking.pid:
            self.check_process()
        if self.closed:
            raise ProxyClosed(f"this proxy to {self.endpoint} is stopped")
        liveness = self.liveness
        if not liveness.alive:
            raise ConnectionLost(f"the server at {self.endpoint} is not answering (lost); "
                                 "the call was not sent")
        content = ("PSMessage", action, options)
        local = inline.server_for(self.endpoint)
        if local is not None:
            return replies.value(local.handle_inline(content, new_msgid(), self.protocol.serializer,
                                                     self.requester.sender, self.protocol.hmac_key),
                                 self.endpoint, self.on_future_reply)
        try:
            frames = self.requester.request_frames(self.endpoint, content,
                                                   self.timeout if timeout is None else timeout,
                                                   action, self.req_serializer, self.compact)
        except RemoteTimeout:
            liveness.call_timed_out()
            raise
        if not liveness.alive:  # the common case skips the call
            liveness.call_answered()
        return replies.read_value(self.protocol, frames, self.endpoint, self.on_future_reply)

    def call_async(self, action: str, options: Dict[str, Any]) -> RemoteFuture:
        self.check_process()
        fut = RemoteFuture()
        if self.closed:
            settle(fut, exc=ProxyClosed(f"this proxy to {self.endpoint} is stopped"))
            return fut
        if not self.alive:
            settle(fut, exc=ConnectionLost(f"the server at {self.endpoint} is not answering"))
            return fut

        def convert(frames: List[bytes]) -> Any:
            value = self.read_reply(frames)
            if isinstance(value, RemoteFuture):
                fut.on_cancel(value.cancel)
            return value

        requester = self.requester
        inner = requester.request_async(self.endpoint, ("PSMessage", action, options), convert,
                                        self.req_serializer)
        fut.on_cancel(lambda: requester.forget(inner))
        inner.add_done_callback(lambda src: copy_outcome(src, fut))
        return fut

    def get_many_async(self, names: List[str]) -> RemoteFuture:
        """A Future of ``{name: ('return', value) | ('raise', exception)}`` (see ``_proxy_get_many_future``)."""
        if "getmany" in self.caps:
            raw = self.call_async("getmany", {"names": names})
            out = RemoteFuture()
            out.on_cancel(raw.cancel)
            endpoint = self.endpoint

            def done(src: concurrent.futures.Future) -> None:
                if src.cancelled() or src.exception() is not None:
                    copy_outcome(src, out)
                    return
                values = src.result()
                settle(out, replies.outcomes(values, endpoint))

            raw.add_done_callback(done)
            return out
        return self._get_each_async(names)

    def _get_each_async(self, names: List[str]) -> RemoteFuture:
        """'getmany' for a server without it: one non-blocking 'get' per name."""
        out = RemoteFuture()
        if not names:
            settle(out, {})
            return out
        futures = {name: self.call_async("get", {"name": name, "force_as_object": True}) for name in names}
        out.on_cancel(lambda: [f.cancel() for f in futures.values()])
        lock = threading.Lock()
        left = [len(futures)]

        def one_done(_: concurrent.futures.Future) -> None:
            with lock:
                left[0] -= 1
                if left[0]:
                    return
            if any(f.cancelled() for f in futures.values()):
                out.cancel()
                return
            settle(out, {name: ("return", f.result()) if f.exception() is None else ("raise", f.exception())
                         for name, f in futures.items()})

        for f in futures.values():
            f.add_done_callback(one_done)
        return out

    def forget(self, fut: concurrent.futures.Future) -> None:
        """Stop waiting for the reply of a non-blocking call (it will be discarded)."""
        self.requester.forget(fut)

    # ---------------------------------------------------------------- signals
    def connect(self, topic: str, slot: Any, coalesce: bool = False, wait: bool = True, keeper: Any = None) -> None:
        """Connect ``slot`` to remote signal ``topic``; ``keeper`` (the Proxy) is held while connected."""
        self.check_process()
        if self.closed:
            raise ProxyClosed(f"this proxy to {self.endpoint} is stopped")
        with self.lock:
            sub = self.signals.get(topic)
            if sub is None:
                sub = self.signals[topic] = _SignalSub(self, topic)
            if keeper is not None:
                self.keeper = keeper
        with sub.lock:
            if any(c.slot == slot for c in sub.connections):
                return
            conn = _Connection(slot, current_target(), coalesce, sub)
            sub.connections = sub.connections + (conn,)
            first = not sub.active
            sub.active = True
        if first:
            subscriber, sender = self.subscriber, self.sender
            self.io.call(lambda: subscriber.add(sender, topic, sub.sink), timeout=self.timeout)
            if wait and "ack" in self.caps and self.alive:
                if not subscriber.request_ack(sender, self.timeout):
                    logger.warning("%s did not confirm the subscription to %r within %g s; "
                                   "it stays registered", self.endpoint, topic, self.timeout)

    def disconnect(self, topic: str, slot: Any = None) -> None:
        sub = self.signals.get(topic)
        if slot is None:
            if sub is not None:
                with sub.lock:
                    for c in sub.connections:
                        c.kill()
                    sub.connections = ()
                self.unsubscribe(sub)
            return
        with sub.lock if sub is not None else threading.Lock():
            found = [c for c in (sub.connections if sub is not None else ()) if c.slot == slot]
            if not found:
                raise TypeError(f"{slot!r} is not connected to {topic!r} of {self.endpoint}")
            found[0].dead = True
        sub.remove(found[0])

    def unsubscribe(self, sub: _SignalSub) -> None:
        with sub.lock:
            if sub.connections or not sub.active:
                return
            sub.active = False
        if not self.closed:
            subscriber, sender = self.subscriber, self.sender
            self.io.submit(lambda: subscriber.remove(sender, sub.topic))
        self._release_keeper_if_unused()

    def _release_keeper_if_unused(self) -> None:
        """Let go of the Proxy once no slot is connected through it (it may then be collected and close)."""
        with self.lock:
            if any(s.active for s in self.signals.values()):
                return
            keeper, self.keeper = self.keeper, None
        del keeper  # outside the lock: dropping the last reference closes the proxy

    def slot_params(self, name: str) -> Tuple[int, Optional[int]]:
        """``(required, accepted)`` positional parameters of remote method ``name`` (from ``describe``).

        ``(0, None)`` (all arguments) when the server does not describe it.
        """
        cached = self.slot_param_cache.get(name)
        if cached is not None:
            return cached
        params: Tuple[int, Optional[int]] = (0, None)
        if "describe" in self.caps and not self.closed:
            try:
                entry = self.call("describe", {"names": [name]})
                entry = entry.get(name) if isinstance(entry, dict) else None
                if isinstance(entry, dict) and entry.get("kind") == "method":
                    params = params_from_signature(entry.get("signature"))
            except Exception:
                logger.debug("describing %s of %s", name, self.endpoint, exc_info=True)
        self.slot_param_cache[name] = params
        return params

    def connection_count(self, topic: str) -> int:
        sub = self.signals.get(topic)
        return len(sub.connections) if sub is not None else 0

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        if self.closed:
            return
        self.locking.release_on_close()  # exclusive control ends with the proxy that took it
        self.closed = True
        if forking.inherited(self.owner_pid):
            return  # inherited across fork: its threads and sockets are the parent's
        for sub in list(self.signals.values()):
            for c in sub.connections:
                c.kill()
            sub.connections = ()
        self.remote_futures.cancel_all()  # locally only: the server is not told
        with self.lock:
            keeper, self.keeper = self.keeper, None
        self._close_parts()
        del keeper  # after closing: the Proxy's own __del__ then finds the core closed

    def _close_parts(self) -> None:
        """Close the requester's and the subscriber's sockets and release the I/O thread (once)."""
        if self not in _live_cores:
            return
        _live_cores.discard(self)
        subscriber, requester = self.subscriber, self.requester
        try:
            self.io.call(lambda: (subscriber.close(), requester.close_sockets()), timeout=self.settings.stop_timeout)
        except Exception:
            logger.debug("closing the sockets of a proxy to %s", self.endpoint, exc_info=True)
        requester.close()
        iothread.release()


def close_all_proxies() -> None:
    """Close every live proxy's sockets (exit hook: before the I/O thread's own hook)."""
    for core in list(_live_cores):
        try:
            core.close()
        except Exception:
            logger.debug("closing a proxy at exit", exc_info=True)


atexit.register(close_all_proxies)


_getattribute = object.__getattribute__


def _remote(core: _ProxyCore, name: str, proxy: Any = None) -> Any:
    """``proxy.name``: a RemoteAttribute for methods and signals, else the value read from the server.

    The RemoteAttribute holds ``proxy``, so a temporary proxy (``Proxy(ep).method()``)
    lives for as long as its attribute is used.
    """
    if name in core.remote_names:
        return RemoteAttribute(name, core, proxy)
    value = core.call("get", {"name": name, "force_as_object": name in core.object_names})
    if value is replies.REMOTE_VALUE:
        return RemoteAttribute(name, core, proxy)
    return value


class RemoteAttribute:
    """A remote method, signal, dict or other object reached through a proxy.

    Calling it executes the remote method; ``[k]`` reads and writes items;
    ``connect``/``disconnect`` subscribe a slot to a remote signal; ``emit`` emits
    it on the server; ``future(...)`` calls without waiting.

    It keeps its Proxy (``proxy``) alive while it is used: a Future it returned
    keeps it until resolved, a slot it connected until disconnected (or until
    the proxy is stopped explicitly). Two attributes of the same name and proxy
    compare equal, so ``disconnect(proxy.method)`` finds ``connect(proxy.method)``.
    Used as a slot, a remote method gets the arguments its remote signature
    accepts (asked once with ``describe``).
    """

    __slots__ = ("_name", "_core", "_proxy")

    def __init__(self, name: str, core: _ProxyCore, proxy: Any = None) -> None:
        self._name = name
        self._core = core
        self._proxy = proxy

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, RemoteAttribute):
            return NotImplemented
        return other._core is self._core and other._name == self._name

    def __hash__(self) -> int:
        return hash((id(self._core), self._name))

    def _pizco_slot_params(self) -> Tuple[int, Optional[int]]:
        """The remote method's ``(required, accepted)`` positional parameters (see ``slot_params``)."""
        return self._core.slot_params(self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._core.call("exec", {"name": self._name, "method": "__call__", "args": args, "kwargs": kwargs})

    def future(self, *args: Any, **kwargs: Any) -> RemoteFuture:
        """Call without waiting; returns a Future of the result (or of the remote Future's result)."""
        fut = self._core.call_async("exec", {"name": self._name, "method": "__call__",
                                             "args": args, "kwargs": kwargs})
        if self._proxy is not None and not fut.done():
            keep = [self._proxy]  # a temporary proxy lives until the Future is resolved
            fut.add_done_callback(lambda _f: keep.clear())
        return fut

    def __getitem__(self, key: Any) -> Any:
        return self._core.call("exec", {"name": self._name, "method": "__getitem__", "args": (key,)})

    def __setitem__(self, key: Any, value: Any) -> None:
        self._core.call("exec", {"name": self._name, "method": "__setitem__", "args": (key, value)})

    def __delitem__(self, key: Any) -> None:
        self._core.call("exec", {"name": self._name, "method": "__delitem__", "args": (key,)})

    def __len__(self) -> int:
        return self._core.call("exec", {"name": self._name, "method": "__len__"})

    def __contains__(self, key: Any) -> bool:
        return self._core.call("exec", {"name": self._name, "method": "__contains__", "args": (key,)})

    def connect(self, slot: Any, coalesce: bool = False, wait: bool = True) -> None:
        """Call ``slot`` for each emission of the remote signal.

        Returns once the server has the subscription, so every later emission is
        delivered (``wait=False``: returns at once, without that promise).
        ``coalesce=True`` delivers only the latest emission per turn of the
        receiving thread's loop.
        """
        self._core.connect(self._name, slot, coalesce, wait, keeper=self._proxy)

    def disconnect(self, slot: Any = None) -> None:
        """Disconnect ``slot`` (TypeError if not connected), or every slot of this proxy."""
        self._core.disconnect(self._name, slot)

    def emit(self, *args: Any) -> None:
        """Emit the signal on the server (its local and remote slots run)."""
        self._core.call("exec", {"name": self._name, "method": "emit", "args": args})

    @property
    def signal(self) -> str:
        """The signal's name (what pytest-qt and Qt tools read)."""
        return self._name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if _is_local_name(method):
            raise AttributeError(method)
        core, name = self._core, self._name

        def call(*args: Any, **kwargs: Any) -> Any:
            return core.call("exec", {"name": name, "method": method, "args": args, "kwargs": kwargs})

        call.__name__ = method
        return call

    def __repr__(self) -> str:
        return f"<RemoteAttribute {self._name!r} of {self._core.endpoint}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"cannot pickle a remote attribute of {self._core.endpoint}")


class _ClassOnly:
    """A class-level constructor that never shadows a served attribute of the same name."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.name = func.__name__

    def __get__(self, obj: Any, cls: type) -> Any:
        if obj is None:
            return self.func.__get__(cls, type(cls))
        return _remote(obj.__dict__["_proxy_core"], self.name, obj)


class Proxy:
    """Behaves like the object served at ``rep_endpoint``.

    Parameters
    ----------
    rep_endpoint : str or (host, port)
        The server's REP endpoint (a ``(host, port)`` tuple means ``tcp://host:port``).
    timeout : float, optional
        Seconds to wait for each synchronous reply (default ``PZC_TIMEOUT`` or 10).
    protocol : Protocol, optional
        Key and serializer (default ``PZC_KEY`` / ``PZC_SER``).
    curve : CurveConfig, optional
        CURVE encryption: this client's key pair and the server's public key
        (``CurveConfig(secret_key_file, server_public_key_file=...)``).
    label : str, optional
        How this client is shown to the server and to other clients (the lock
        holder, the write log); default ``'<user>@<host>:<pid>'``.
    settings : Settings, optional
        Timeout, heartbeat, queue lengths... (default ``Settings.from_environment()``);
        ``timeout`` and ``protocol`` win over it.

    Raises
    ------
    RemoteTimeout
        If the server does not answer within ``timeout``.
    ValueError
        If ``label`` is empty.

    Thread affinity: any thread; slots run in the connecting thread's Qt loop,
    else on the dispatcher thread.
    """

    def __init__(self, rep_endpoint: str, timeout: Optional[float] = None,
                 protocol: Optional[Protocol] = None, curve: Optional[CurveConfig] = None,
                 label: Optional[str] = None, settings: Optional[Settings] = None) -> None:
        object.__setattr__(self, "_proxy_core",
                           _ProxyCore(normalize(rep_endpoint), timeout, protocol, curve, label, settings))
        object.__setattr__(self, "_proxy_local_server", None)
        object.__setattr__(self, "_proxy_process", None)

    # -- internals (never forwarded) ----------------------------------------
    @property
    def _proxy_agent(self) -> "_ProxyAgentView":
        """The proxy's Agent (with Pizco's ``instantiate``)."""
        return _ProxyAgentView(self._proxy_core)

    @property
    def _proxy_connection(self) -> ConnectionState:
        """The server's liveness: a QObject with ``lost()``/``regained()`` signals and ``alive()``."""
        return self._proxy_core.connection

    @property
    def _proxy_endpoint(self) -> str:
        """The REP endpoint this proxy talks to."""
        return self._proxy_core.endpoint

    @property
    def _proxy_timeout(self) -> float:
        """Seconds each synchronous call waits for its reply."""
        return self._proxy_core.timeout

    @property
    def _proxy_label(self) -> str:
        """How this client is shown to the server and other clients."""
        return self._proxy_core.label

    @property
    def _proxy_role(self) -> str:
        """``'observer'`` (reads only) or ``'controller'``, as the server told this proxy."""
        return self._proxy_core.role

    def _proxy_lock(self, timeout: Optional[float] = None) -> "LockHandle":
        """Take exclusive control of the server: other clients' writes are refused until released.

        Waits up to ``timeout`` seconds (None: the proxy's timeout; 0: try once)
        while another client holds it. The lease is renewed in the background
        and ends when released, when this proxy is stopped or collected, or 3 s
        after its process died. Taking it again while holding it does nothing.

        Returns a handle; ``with proxy._proxy_lock(): ...`` releases on exit.

        Raises
        ------
        Locked
            Another client still holds it after ``timeout`` (the message names it).
        AccessDenied
            This client is an observer.
        """
        self._proxy_core.locking.take(timeout)
        return LockHandle(self._proxy_core)

    def _proxy_unlock(self) -> bool:
        """Release exclusive control; False if this proxy did not hold it."""
        return self._proxy_core.locking.release()

    def _proxy_lock_holder(self) -> Optional[Dict[str, Any]]:
        """Who holds exclusive control: ``{'label', 'host', 'pid', 'since', 'id'}`` or None."""
        core = self._proxy_core
        if "lock" not in core.caps:
            return None
        return core.call("lock_holder", {})

    def _proxy_holds_lock(self) -> bool:
        """Whether this proxy holds exclusive control (as far as it knows)."""
        return self._proxy_core.locking.held

    def _proxy_lock_holder_future(self) -> concurrent.futures.Future:
        """``_proxy_lock_holder()`` without waiting: a Future of the holder dict, or None."""
        core = self._proxy_core
        if "lock" not in core.caps:
            fut: concurrent.futures.Future = concurrent.futures.Future()
            fut.set_result(None)
            return fut
        return core.call_async("lock_holder", {})

    def _proxy_write_blocked(self) -> Optional[str]:
        """Why this client may not write now (an observer, or another client holds exclusive control),
        or None; what the proxy knows, without a round trip."""
        return self._proxy_core.locking.write_blocked()

    @property
    def _proxy_lock_changed(self) -> "_LockChanged":
        """A signal: its slots receive the new holder dict, or None, at each change of the lock."""
        return _LockChanged(self._proxy_core)

    def _proxy_stop_me(self) -> None:
        """Close this proxy (its subscriptions and sockets, and its lock); the server keeps running."""
        self._proxy_core.close()

    def _proxy_stop_server(self) -> None:
        """Stop the server (and its process, if this proxy started one), then this proxy.

        Raises
        ------
        AccessDenied
            The server refused (this client is an observer, or another holds the
            lock); then nothing is stopped or closed.
        """
        core = self._proxy_core
        local = self.__dict__.get("_proxy_local_server")
        process = self.__dict__.get("_proxy_process")
        refused: Optional[BaseException] = None
        try:
            child_gone = process is not None and not process.alive()
            if not core.closed and core.alive and not child_gone:
                reply = core.requester.request(core.endpoint, "stop", min(core.timeout, core.settings.stop_request_timeout))
                exc = replies.failure(reply, core.endpoint)
                if isinstance(exc, AccessDenied):
                    refused = exc
        except (RemoteTimeout, ProtocolError, PizcoError):
            logger.debug("stop request to %s", core.endpoint, exc_info=True)
        finally:
            if refused is None:
                core.locking.forget()  # the server ends with its lock
                core.close()
                if local is not None:
                    local.stop()
                if process is not None:
                    process.stop()
        if refused is not None:
            raise refused

    def _proxy_describe(self) -> Dict[str, Dict[str, Any]]:
        """Each public name's kind, type and writability (pizco_qt servers only)."""
        return self._proxy_core.call("describe", {})

    def _proxy_get_many(self, names: List[str]) -> Dict[str, Any]:
        """Read several attributes in one round trip: {name: ('return', v) | ('raise', (exc, tb))}."""
        return self._proxy_core.call("getmany", {"names": list(names)})

    @property
    def _proxy_closed(self) -> bool:
        """Whether this proxy was stopped (``_proxy_stop_me``); its calls then raise ``ProxyClosed``."""
        return self._proxy_core.closed

    @property
    def _proxy_capabilities(self) -> frozenset:
        """What the server announced it supports (``'getmany'``, ``'describe'``...; empty for original Pizco)."""
        return self._proxy_core.caps

    # -- the non-blocking API: each returns a concurrent.futures.Future ----------
    def _proxy_get_future(self, name: str) -> concurrent.futures.Future:
        """Read attribute ``name`` without waiting: a Future of its value (by value, never a remote object)."""
        return self._proxy_core.call_async("get", {"name": name, "force_as_object": True})

    def _proxy_set_future(self, name: str, value: Any) -> concurrent.futures.Future:
        """Set attribute ``name`` to ``value`` without waiting: a Future of None once it is set."""
        return self._proxy_core.call_async("setattr", {"name": name, "value": value})

    def _proxy_get_many_future(self, names: List[str]) -> concurrent.futures.Future:
        """Read several attributes without waiting, in one round trip when the server can.

        The Future's result is a dict ``{name: ('return', value) | ('raise', exception)}``: one
        name failing does not fail the others. With a server that has no 'getmany' (an
        original Pizco), one 'get' per name is sent and the Future ends when all have.
        """
        return self._proxy_core.get_many_async(list(names))

    def _proxy_describe_future(self) -> concurrent.futures.Future:
        """``_proxy_describe()`` without waiting: a Future of each public name's description."""
        return self._proxy_core.call_async("describe", {})

    @_ClassOnly
    def from_name(cls, name: str, registry: Optional[str] = None, **kwargs: Any) -> "Proxy":  # noqa: N805
        """A proxy to the server registered as ``name`` with the registry.

        ``registry`` defaults to ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``;
        other keyword arguments (``timeout``, ``protocol``) go to ``Proxy``. Called
        on a proxy instance, ``from_name`` is the served object's attribute.

        Raises
        ------
        KeyError
            If no live server has that name.
        pizco_qt.registry.RegistryUnavailable
            If no registry answers.
        """
        from .registry_client import lookup

        entry = lookup(name, registry, protocol=kwargs.get("protocol"), curve=kwargs.get("curve"))
        return cls(entry["rep_endpoint"], **kwargs)

    # -- the served object's surface -----------------------------------------
    def __getattribute__(self, name: str) -> Any:
        # Public names are the served object's, reached without the failed normal
        # lookup (and its AttributeError) that a __getattr__ fallback costs.
        if name[:1] == "_":
            try:
                return _getattribute(self, name)
            except AttributeError:
                if _is_local_name(name):
                    raise
        return _remote(_getattribute(self, "__dict__")["_proxy_core"], name, self)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_proxy_"):
            object.__setattr__(self, name, value)
            return
        self._proxy_core.call("setattr", {"name": name, "value": value})

    def __dir__(self) -> List[str]:
        return sorted(set(self._proxy_core.remote_names) | {"_proxy_stop_me", "_proxy_stop_server", "_proxy_lock",
                                                            "_proxy_unlock", "_proxy_lock_holder"})

    def __repr__(self) -> str:
        return f"<Proxy to {self._proxy_core.endpoint}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"a Proxy to {self._proxy_core.endpoint} cannot be pickled; "
                        "send the endpoint and make a new Proxy")

    def __copy__(self) -> Any:
        raise TypeError(f"a Proxy to {self._proxy_core.endpoint} cannot be copied; make a new Proxy")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError(f"a Proxy to {self._proxy_core.endpoint} cannot be copied; make a new Proxy")

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._proxy_stop_me()

    def __del__(self) -> None:
        core = self.__dict__.get("_proxy_core")
        if core is not None and not core.closed:
            try:
                core.close()
            except Exception:
                pass


class LockHandle:
    """Exclusive control taken by ``proxy._proxy_lock()``; a context manager that releases it.

    Dropping the handle does not release the lock.
    """

    def __init__(self, core: _ProxyCore) -> None:
        self._core = core

    def release(self) -> bool:
        """Release exclusive control; False if it was not held any more."""
        return self._core.locking.release()

    @property
    def held(self) -> bool:
        """Whether the proxy still holds it (as far as it knows)."""
        return self._core.locking.held

    def __enter__(self) -> "LockHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._core.closed:
            self.release()

    def __repr__(self) -> str:
        return f"<LockHandle of {self._core.endpoint} ({'held' if self.held else 'released'})>"


class _LockChanged:
    """``proxy._proxy_lock_changed``: connect slots to changes of the lock holder (one argument,
    the holder dict or None), delivered as every remote signal is."""

    __slots__ = ("_core",)

    def __init__(self, core: _ProxyCore) -> None:
        self._core = core

    def connect(self, slot: Any) -> None:
        """Call ``slot(holder)`` at each change (connecting the same slot twice does nothing)."""
        self._core.locking.connect(slot)

    def disconnect(self, slot: Any = None) -> None:
        """Disconnect ``slot`` (TypeError if not connected), or every slot."""
        self._core.locking.disconnect(slot)

    @property
    def signal(self) -> str:
        return LOCK_TOPIC


class _ProxyAgentView:
    """``proxy._proxy_agent``: the proxy's requests (``request``, ``request_async``), with Pizco's ``instantiate``."""

    def __init__(self, core: _ProxyCore) -> None:
        self._core = core

    def instantiate(self, cls: Any, args: tuple = (), kwargs: Optional[dict] = None) -> None:
        """Make an empty server serve ``cls(*args, **kwargs)`` (a class or 'module.Class')."""
        name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        self._core.call("instantiate", {"class": name, "args": tuple(args), "kwargs": dict(kwargs or {})})
        remote, plain = self._core.call("inspect", {})
        self._core.remote_names = frozenset(remote or ())
        self._core.object_names = frozenset(plain or ())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core.requester, name)
