"""Server: serve any Python object (or QObject) to proxies over ZMQ.

Constructing a Server binds its endpoints and starts serving at once in
background threads; ``serve_forever()`` only blocks the caller until ``stop()``.
A plain object is called from the server's worker thread; a served QObject is
called in its own thread when that thread runs a Qt event loop. The server
connects to a served signal when the first remote subscriber appears (a Qt
signal with ``Qt.DirectConnection``) and disconnects when the last one leaves.

Thread affinity: construct and stop from any thread.
"""
from __future__ import annotations

import base64
import collections
import concurrent.futures
import logging
import threading
import time
import warnings
import weakref
from typing import Any, Callable, Deque, Dict, Optional, Set, Tuple

from . import config, replies
from . import dispatch as _dispatch, forking, inline
from . import gate as _gate
from .access import CONTROLLER, LOCK_TOPIC, OBSERVER, AccessControl, client_from_sender
from ._qt import QObject, QtCore, is_qt_signal
from .agent import FUTURE_TOPIC, Agent, new_msgid
from .delivery import WITHDRAWN, QThreadCaller
from .endpoints import normalize_optional
from .errors import ConnectionLost, PizcoError
from .config import Settings
from .protocol import Envelope, Protocol
from .security import CurveConfig
from .signals import is_signal_like

logger = logging.getLogger(__name__)

__all__ = ["Server"]


class Server(Agent):
    """Serves ``served_object`` on a REP (ROUTER) endpoint and publishes its signals.

    Parameters
    ----------
    served_object : object or None
        The object to serve; None starts empty (fill it with ``instantiate``).
    rep_endpoint, pub_endpoint : str or (host, port)
        Endpoints to bind (port 0 = a free port). ``tcp://``, ``ipc://``, ``inproc://``;
        a ``(host, port)`` tuple means ``tcp://host:port``.
    protocol : Protocol, optional
        HMAC key and serializer (default ``PZC_KEY`` / ``PZC_SER``).
    name : str, optional
        Register under this name with the registry (``PZC_REGISTRY``): the name is
        reserved before binding (0.5 s deadline), so a clash with a live server
        raises NameTaken and binds nothing; with no registry running the server
        serves at once and registers in the background.
    allow_insecure : bool
        Allow a non-loopback bind with no key and no CURVE (logged as a WARNING).
    curve : CurveConfig, optional
        CURVE encryption and client authentication (``pizco_qt.security.CurveConfig``):
        the server's key pair, the directory of allowed client public keys
        (controllers) and, optionally, a directory of observers' keys.
    private : bool
        Serve private names too (names, dotted-name components, methods and
        signal topics starting with ``_``). By default they are refused with a
        ``PermissionError`` (``AccessDenied`` on a pizco_qt proxy) and nothing runs.
    instantiable : iterable of classes or 'module:Class' names, optional
        What ``instantiate`` may create on an empty server. None (the default):
        any class for a pickle server, none for a json server. Functions and
        other callables are never created.
    observer_key : str or bytes, optional
        A second HMAC key (default ``PZC_OBSERVER_KEY``): requests signed with it
        are an observer's (reads only), those signed with the main key a
        controller's. Everything published is signed with it.
    settings : Settings, optional
        Every tunable (default ``Settings.from_environment()``), handed to the parts.

    Raises
    ------
    InsecureBind
        For a non-loopback endpoint with no key and no CURVE (unless ``allow_insecure``).
    BindError
        If an endpoint cannot be bound.
    NameTaken
        If a live server is registered under ``name``.
    ValueError
        If an observer key is given without a main key, or equals it.

    Thread affinity: any thread.
    """

    def __init__(
        self,
        served_object: Any = None,
        rep_endpoint: Optional[str] = "tcp://127.0.0.1:0",
        pub_endpoint: Optional[str] = "tcp://127.0.0.1:0",
        protocol: Optional[Protocol] = None,
        *,
        name: Optional[str] = None,
        allow_insecure: bool = False,
        curve: Optional[CurveConfig] = None,
        private: bool = False,
        instantiable: Any = None,
        observer_key: "str | bytes | None" = None,
        settings: Optional[Settings] = None,
    ) -> None:
        rep_endpoint = normalize_optional(rep_endpoint, "tcp://127.0.0.1:0")
        pub_endpoint = normalize_optional(pub_endpoint, "tcp://127.0.0.1:0")
        settings = settings if settings is not None else Settings.from_environment()
        protocol = protocol if protocol is not None else Protocol.from_settings(settings)
        self._observer_protocol = _observer_protocol(protocol, observer_key)
        self._curve_roles = curve is not None and getattr(curve, "observers_dir", None) is not None
        #: Roles, exclusive control and the log of executed writes.
        self.access = AccessControl(_publisher(self._publish_lock), settings)
        self._lease_ticking = False
        self.served_object = served_object
        #: Whether private names are served (``private=True``).
        self.private = bool(private)
        #: What 'instantiate' may create (a ``gate.InstantiablePolicy``).
        self.instantiable = _gate.InstantiablePolicy(instantiable)
        self.name = name
        self.started = time.time()
        self._futures: Dict[str, concurrent.futures.Future] = {}
        self._forwarders: Dict[str, Tuple[Any, Callable[..., None]]] = {}
        self._done = threading.Event()
        self._stats_lock = threading.Lock()
        #: Requests answered so far.
        self.requests_served = 0
        #: Emissions published per signal name.
        self.emissions: Dict[str, int] = collections.defaultdict(int)
        #: The last errors raised by served code: (time, action, name, text); ``settings.recent_errors`` of them.
        self.recent_errors: Deque[Tuple[float, str, str, str]] = collections.deque(maxlen=settings.recent_errors)
        #: Errors raised by served code since the server started.
        self.errors_total = 0
        self._affinity: Any = None
        #: The registry reservation and registration of ``name`` (None without a name).
        self.registration: Any = None
        self._caller = QThreadCaller()
        if name is not None:
            # reserve the name before binding: a clash raises here and nothing is bound
            from . import registry_client as registry

            self.registration = registry.reserve_name(name, protocol, rep_endpoint=rep_endpoint, curve=curve,
                                                      settings=settings)
        try:
            super().__init__(rep_endpoint, pub_endpoint, protocol, allow_insecure=allow_insecure, curve=curve,
                             settings=settings)
        except BaseException:
            if self.registration is not None:
                registry.release_name(self.registration)
            raise
        self._track_affinity()
        if name is not None:
            registry.register_server(self, name)

    # ------------------------------------------------------------------ policy hooks
    def return_as_remote(self, attr: Any) -> bool:
        """Whether a 'get' of this value answers 'remote' (the proxy then calls through)."""
        return _dispatch.default_return_as_remote(attr)

    def force_as_object(self, attr: Any) -> bool:
        """Whether this value is always returned by value (wins over return_as_remote)."""
        return _dispatch.default_force_as_object(attr)

    def inspect(self) -> Tuple[Set[str], Set[str]]:
        """``(remote_names, object_names)`` of the served object; proxies use it to skip round trips.

        Private names are left out unless the server serves them (``private=True``).
        """
        remote, plain = _dispatch.inspect_object(self.served_object)
        if not self.private:
            remote = {n for n in remote if not n.startswith("_")}
            plain = {n for n in plain if not n.startswith("_")}
        return remote, plain

    def check_request(self, action: Any, options: Dict[str, Any]) -> None:
        """The gate every request passes before anything of it runs (worker or object thread).

        Raises the refusal ``PermissionError`` (``errors.refusal``) for a request
        that may not run; see ``pizco_qt.gate``. Subclasses refuse more by
        extending it (call ``super().check_request`` first).
        """
        _gate.check_request(self, action, options)

    def _info(self) -> Dict[str, Any]:
        info = super()._info()
        reg = self.registration
        if reg is not None:  # lets the registry check, itself, that this server holds its name
            from .registry_client import identity

            info["registration"] = identity(reg.token)
        return info

    def _topic_wanted(self, topic: str) -> bool:
        """Whether a subscription to ``topic`` counts (I/O thread): a signal of the served object,
        found without running a getter, or a reserved topic (see ``pizco_qt.gate``)."""
        return _gate.topic_allowed(self, topic)

    # ------------------------------------------------------------------ serving
    def set_served_object(self, obj: Any) -> None:
        """Serve ``obj`` (used by 'instantiate' on an empty server)."""
        self.served_object = obj
        self._track_affinity()
        for topic, count in self.publisher.counts().items():
            if count > 0 and not topic.startswith("__"):
                self.on_subscribe(topic, count)

    def _track_affinity(self) -> None:
        obj = self.served_object
        inline.discard(self.rep_endpoint)
        self._affinity = None
        if isinstance(obj, QObject):
            self._affinity = obj
            inline.add(self.rep_endpoint, self)

    def in_object_thread(self) -> bool:
        """Whether the calling thread is the served QObject's thread (False for a plain object)."""
        obj = self._affinity
        try:
            return obj is not None and obj.thread() is QtCore.QThread.currentThread()
        except RuntimeError:
            return False

    def _object_thread(self) -> Any:
        """The QThread the served QObject must be called in, or None for the worker thread."""
        obj = self._affinity
        if obj is None:
            return None
        try:
            thread = obj.thread()
        except RuntimeError:
            return None
        try:
            return thread if thread.loopLevel() > 0 else None
        except RuntimeError:
            return None

    # ------------------------------------------------------------------ access
    def _role_of_key(self, user: Optional[str]) -> Optional[str]:
        if not self._curve_roles:
            return None
        if user is None or self._zap_domain is None:
            return OBSERVER  # a client whose key is unknown is never a controller
        from .security import curve_role

        return curve_role(self._zap_domain, user)

    def lock_holder(self) -> Optional[Dict[str, Any]]:
        """Who holds exclusive control: ``{'label', 'host', 'pid', 'since', 'id'}``, or None."""
        return self.access.holder()

    @property
    def recent_writes(self) -> Any:
        """The last 100 executed writes: ``(time, label, action, name)`` records, oldest first."""
        return self.access.writes

    def _publish_lock(self, holder: Optional[Dict[str, Any]]) -> None:
        """Publish a change of the lock holder on LOCK_TOPIC (any thread)."""
        if self.stopped:
            return
        self.publish(LOCK_TOPIC, (holder,))
        if holder is not None and not self._lease_ticking:
            self._lease_ticking = True
            self._io.call_later(self.settings.lease_check_interval, self._lease_tick)

    def _lease_tick(self) -> None:
        """I/O thread: end a lease that ran out (not while the worker is busy: renewals wait)."""
        if self._stopped:
            self._lease_ticking = False
            return
        if self.answerer is None or not self.answerer.busy:
            self.access.expire()
        if self.access.lease.holder() is None:
            self._lease_ticking = False
            return
        self._io.call_later(self.settings.lease_check_interval, self._lease_tick)

    def _info_for(self, info: Dict[str, Any], role: str) -> Dict[str, Any]:
        """The 'info' reply for a client of ``role``: its role, and the observer key for controllers."""
        info = dict(info, role=role, capabilities=list(info.get("capabilities", ())) + ["lock"],
                    lock_holder=self.access.holder())
        observer = self._observer_protocol
        if observer is not None and role == CONTROLLER:
            info["observer_key"] = base64.b64encode(observer.hmac_key).decode("ascii")
        return info

    def _publishing_protocol(self) -> Protocol:
        """Publications are signed with the observer key, if any, so observers can verify them."""
        return self._observer_protocol or self.protocol

    def _serve_request(self, env: Envelope, content: Any) -> Any:
        role = self.answerer.request_role if self.answerer is not None else None
        with self._stats_lock:
            self.requests_served += 1
        if type(content) is list and env.serializer == "json":
            content = tuple(content)
        client = client_from_sender(env.sender, role or CONTROLLER)
        refused, write = self.access.gate(self.served_object, client, content, env.serializer)
        if refused is not None:
            return refused
        if content == "info":
            reply = self.on_request(env.sender, env.topic, content, env.msgid, env.serializer)
            return self._info_for(reply, client.role) if isinstance(reply, dict) else reply
        started = time.monotonic()
        reply = self._run_request(env, content)
        self.access.executed(client, content, reply, write)
        busy = time.monotonic() - started
        if busy > self.settings.lease_credit_after:
            self.access.lease.credit(busy)
        return reply

    def _run_request(self, env: Envelope, content: Any) -> Any:
        thread = self._object_thread() if self._affinity is not None and isinstance(content, tuple) else None
        if thread is None or thread is QtCore.QThread.currentThread():
            reply = self.on_request(env.sender, env.topic, content, env.msgid, env.serializer)
        else:
            reply = self._call_in_thread(thread, lambda: self.on_request(
                env.sender, env.topic, content, env.msgid, env.serializer))
        if replies.kind_of(reply) == replies.RAISE:
            exc = replies.split_raise(reply[2])[0]
            action = content[1] if isinstance(content, tuple) and len(content) == 3 else "?"
            name = content[2].get("name", "") if action != "?" and isinstance(content[2], dict) else ""
            self.recent_errors.append((time.time(), str(action), str(name), repr(exc)))
            self.errors_total += 1
        return reply

    def _call_in_thread(self, thread: Any, fn: Callable[[], Any]) -> Any:
        reply = self._caller.call(thread, fn, lambda: self.answerer.running)
        if reply is WITHDRAWN:
            exc = ConnectionLost(f"the server at {self.rep_endpoint} stopped before the call could run "
                                 "in its object's thread")
            return ("PSMessage", "raise", _dispatch.encode_exception(exc, self.protocol.serializer))
        return reply

    def on_request(self, sender: str, topic: str, content: Any, msgid: str, serializer: str = "pickle") -> Any:
        """Answer 'info', 'stop' and every PSMessage action."""
        if isinstance(content, str):
            return super().on_request(sender, topic, content, msgid)
        if isinstance(content, list) and serializer == "json":
            content = tuple(content)
        return _dispatch.dispatch(self, content, msgid, serializer)

    def handle_inline(self, content: Any, msgid: str, serializer: str, sender: Optional[str] = None,
                      key: Optional[bytes] = None) -> Any:
        """Answer a request in the calling thread (a proxy in the served QObject's own thread).

        ``sender`` and ``key`` (the proxy's HMAC key) tell who asks, as a request's header and
        signature would.
        """
        observer = self._observer_protocol
        role = OBSERVER if observer is not None and key == observer.hmac_key else CONTROLLER
        client = client_from_sender(sender or self.rep_endpoint, role)
        refused, write = self.access.gate(self.served_object, client, content, serializer)
        with self._stats_lock:
            self.requests_served += 1
        if refused is not None:
            return refused
        reply = self.on_request(self.rep_endpoint, "", content, msgid, serializer)
        self.access.executed(client, content, reply, write)
        return reply

    # ------------------------------------------------------------------ futures
    def register_future(self, msgid: str, fut: concurrent.futures.Future) -> None:
        """Publish ``fut``'s outcome on ``__future__`` when it is done."""
        self._futures[msgid] = fut
        fut.add_done_callback(lambda f, m=msgid: self._publish_future(m, f))

    def cancel_future(self, msgid: str) -> bool:
        """Cancel a registered server-side future."""
        fut = self._futures.get(msgid)
        return bool(fut is not None and fut.cancel())

    def _publish_future(self, msgid: str, fut: concurrent.futures.Future) -> None:
        self._futures.pop(msgid, None)
        ser = self.protocol.serializer
        if fut.cancelled():
            content = {"msgid": msgid, "result": None,
                       "exception": _dispatch.encode_exception(concurrent.futures.CancelledError(), ser)[0]}
        else:
            exc = fut.exception()
            if exc is not None:
                content = {"msgid": msgid, "result": None,
                           "exception": _dispatch.encode_exception(exc, ser)[0]}
            else:
                content = {"msgid": msgid, "result": fut.result(), "exception": None}
        if self.stopped:
            return
        try:
            self.publish(FUTURE_TOPIC, content)
        except Exception as exc:  # an unserializable result
            self.publish(FUTURE_TOPIC, {"msgid": msgid, "result": None,
                                        "exception": TypeError(f"cannot serialize the future's result: {exc}")})

    # ------------------------------------------------------------------ signals
    def on_subscribe(self, topic: str, count: int) -> None:
        """Connect to the served signal named ``topic`` for its first remote subscriber."""
        if topic in self._forwarders or self.served_object is None:
            return
        if not _gate.topic_allowed(self, topic):
            return  # private, or not a signal: no getter runs
        try:
            sig = getattr(self.served_object, topic)
        except Exception:
            return
        if not is_signal_like(sig):
            return
        forward = self._make_forwarder(topic)
        try:
            if is_qt_signal(sig):
                sig.connect(forward, QtCore.Qt.DirectConnection)
            else:
                sig.connect(forward)
        except Exception:
            logger.exception("cannot connect to signal %r of the served object", topic)
            return
        self._forwarders[topic] = (sig, forward)
        logger.debug("subscribed to %s (%d subscriber(s))", topic, count)

    def on_unsubscribe(self, topic: str, count: int) -> None:
        """Disconnect from the served signal when its last remote subscriber leaves."""
        if count > 0:
            return
        entry = self._forwarders.pop(topic, None)
        if entry is not None:
            sig, forward = entry
            try:
                sig.disconnect(forward)
            except Exception:
                logger.debug("disconnecting %s", topic, exc_info=True)

    def _make_forwarder(self, topic: str) -> Callable[..., None]:
        encode = self.publisher.protocol.encode
        sender = self.sender
        publish = self.publisher.publish_frames
        emissions = self.emissions

        def forward(*args: Any) -> None:
            emissions[topic] += 1
            try:
                frames = encode(sender, topic, args, new_msgid())
            except Exception:
                logger.exception("cannot serialize an emission of %s", topic)
                return
            publish(frames)

        return forward

    # ------------------------------------------------------------------ lifecycle
    @property
    def stopped_event(self) -> threading.Event:
        """A ``threading.Event`` set once ``stop()`` has finished (wait on it without holding the server)."""
        return self._done

    def serve_forever(self) -> None:
        """Block until the server is stopped; Ctrl+C stops it cleanly."""
        self._check_process()
        try:
            while not self._done.wait(self.settings.interrupt_check_interval):
                pass
        except KeyboardInterrupt:
            self.stop()

    def _before_stop(self) -> None:
        if self.registration is not None:
            try:
                from . import registry_client as registry
                registry.unregister_server(self)
            except Exception:
                logger.debug("unregistering %s", self.name, exc_info=True)
        for topic in list(self._forwarders):
            self.on_unsubscribe(topic, 0)
        for fut in list(self._futures.values()):
            fut.cancel()
        inline.discard(self.rep_endpoint)

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop serving, close the sockets and join the threads (within ``timeout``,
        default ``settings.stop_timeout``, 2 s).

        In a process that inherited this server through ``os.fork()`` this does
        nothing (the server and its threads belong to the parent).
        """
        if forking.inherited(self._owner_pid):
            self._stopped = True
            return
        try:
            super().stop(timeout)
        finally:
            self._caller.close()
            self._done.set()

    def __del__(self) -> None:
        if getattr(self, "_stopped", True):
            return
        warnings.warn(f"Server {getattr(self, 'rep_endpoint', '?')} was garbage-collected while serving; "
                      "call stop()", ResourceWarning, stacklevel=2)
        try:
            self.stop(self.settings.exit_stop_timeout)
        except Exception:
            pass

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        cls = type(self.served_object).__name__ if self.served_object is not None else "nothing"
        return f"<Server of {cls} at {self.rep_endpoint}>"

    # ------------------------------------------------------------------ helpers
    @classmethod
    def serve_in_thread(cls, served_cls: Any, args: tuple = (), kwargs: Optional[dict] = None,
                        rep_endpoint: Optional[str] = None, pub_endpoint: Optional[str] = None, *,
                        name: Optional[str] = None, protocol: Optional[Protocol] = None,
                        curve: Optional[CurveConfig] = None) -> Any:
        """Instantiate ``served_cls`` and serve it from background threads of this process.

        Returns a Proxy; ``proxy._proxy_stop_server()`` stops the server.
        """
        from .proxy import Proxy

        rep_endpoint = normalize_optional(rep_endpoint, "tcp://127.0.0.1:0")
        pub_endpoint = normalize_optional(pub_endpoint, "tcp://127.0.0.1:0")
        obj = served_cls(*args, **(kwargs or {}))
        server = cls(obj, rep_endpoint, pub_endpoint, protocol, name=name, curve=curve)
        try:
            proxy = Proxy(server.rep_endpoint, protocol=protocol,
                          curve=curve.for_own_client() if curve is not None else None)
        except BaseException:
            server.stop()
            raise
        object.__setattr__(proxy, "_proxy_local_server", server)
        return proxy

    @classmethod
    def serve_in_process(cls, served_cls: Any, args: tuple = (), kwargs: Optional[dict] = None,
                         rep_endpoint: Optional[str] = None, pub_endpoint: Optional[str] = None, *,
                         name: Optional[str] = None, protocol: Optional[Protocol] = None,
                         gui: bool = False, verbose: bool = False, timeout: Optional[float] = None,
                         curve: Optional[CurveConfig] = None, settings: Optional[Settings] = None) -> Any:
        """Serve a new ``served_cls(*args, **kwargs)`` in a child process; returns a Proxy."""
        from .process import serve_in_process

        return serve_in_process(served_cls, args, kwargs, rep_endpoint, pub_endpoint, name=name,
                                protocol=protocol, gui=gui, verbose=verbose, timeout=timeout, curve=curve,
                                settings=settings)


def _publisher(method: Callable[[Optional[Dict[str, Any]]], None]) -> Callable[[Optional[Dict[str, Any]]], None]:
    """A server's lock publishing ``method`` without a reference to the server (no cycle keeps it alive)."""
    ref = weakref.WeakMethod(method)

    def publish(holder: Optional[Dict[str, Any]]) -> None:
        publish_lock = ref()
        if publish_lock is not None:
            publish_lock(holder)
    return publish


def _observer_protocol(protocol: Protocol, observer_key: "str | bytes | None") -> Optional[Protocol]:
    """The protocol of the observer key (argument, else ``PZC_OBSERVER_KEY``), or None."""
    if observer_key is None:
        observer_key = config.observer_key()
    if not observer_key:
        return None
    observer = Protocol(observer_key, protocol.serializer)
    if not protocol.hmac_key:
        raise ValueError("an observer key needs a main key (PZC_KEY or Protocol(hmac_key=...)): without "
                         "one, unsigned clients would be controllers")
    if observer.hmac_key == protocol.hmac_key:
        raise ValueError("the observer key must differ from the main key")
    return observer
