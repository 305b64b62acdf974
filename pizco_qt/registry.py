"""Discovery: the registry of live servers, and the ``pizco-registry`` command.

A registry is an ordinary pizco_qt server whose served object is a
:class:`Registry`, at a well-known endpoint (``PZC_REGISTRY``, default
``tcp://127.0.0.1:5777``; start one with ``pizco-registry`` or
:func:`serve_registry`). Servers created with a name join it (see
:mod:`pizco_qt.registry_client`, whose public functions are re-exported here):
they reserve the name before binding, register after binding and re-send
their registration every 2 s. Entries expire 6 s after their last
registration, at once on a clean stop, and 6 s after their server last
answered the registry's own 'info' probe (a served registry probes every
registered server each second). The registry emits ``server_added(entry)``
and ``server_removed(name)``.

A served registry trusts only what it finds out itself: it answers only its
own operations (``RegistryServer``), identifies a server by the digest of its
registration token that the server's 'info' carries (``identity``), and never
lets a refresh move an entry.

Thread affinity: ``Registry`` methods may be called from any thread; served,
they run on the registry server's worker thread, and so does the expiry sweep
(a timer on the I/O thread hands it over, so the I/O thread never blocks).
``main`` runs on the main thread.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import config
from ._foreground import stop_on_signals
from .access import readonly
from .endpoints import fixed_port, normalize_optional, with_port
from .errors import PizcoError, RemoteTimeout
from .protocol import Protocol
from .registry_client import (ENTRY_KEYS, EXPIRY, OPTIONAL_KEYS, REFRESH_PERIOD, REGISTRY_TIMEOUT, RESERVE_TIMEOUT,
                           SWEEP_PERIOD,
                           RegistryUnavailable, _HERE, _check_name, _pid_is_dead, lookup, register_server,
                           release_name, reserve_name, unregister_server, _unavailable, identity)
from .security import CurveConfig
from .signals import Signal

logger = logging.getLogger(__name__)

__all__ = [
    "Registry", "serve_registry", "registry_proxy", "lookup", "register_server",
    "unregister_server", "reserve_name", "release_name", "RegistryUnavailable", "main",
    "EXPIRY", "REFRESH_PERIOD", "RESERVE_TIMEOUT", "REGISTRY_TIMEOUT", "SWEEP_PERIOD", "ENTRY_KEYS",
]


# ====================================================================== the registry object
class _Record:
    """A registered server as the registry keeps it (the entry plus bookkeeping).

    ``seen`` is its last registration; ``answered`` the last time the registry's
    own probe of its endpoint was answered by it (see ``identity``), ``curve_key``
    its CURVE public key (z85) when it serves with CURVE; ``verified`` whether a
    probe has ever been answered by it (an entry never verified does not keep
    its name from a newcomer unless it answers when the registry asks).
    """

    __slots__ = ("entry", "token", "seen", "answered", "curve_key", "since", "verified")

    def __init__(self, entry: Dict[str, Any], token: str, seen: float, curve_key: str = "") -> None:
        self.entry, self.token, self.seen, self.curve_key = entry, token, seen, curve_key
        self.answered = self.since = seen
        self.verified = False  # the registry's probe has seen its server answer as the token's holder


#: What the registry answers: 'info', and through 'exec' only these operations (plus 'inspect',
#: 'describe' so proxies work). Everything else is refused (``PermissionError``, reason 'registry').
REGISTRY_OPERATIONS = frozenset({"servers", "lookup", "reserve", "release", "register", "unregister"})


class Registry:
    """The object a registry server serves: who is serving what, where.

    Queried with ``servers()`` and ``lookup(name)``; servers call ``reserve``,
    ``register`` (also their periodic refresh) and ``unregister``. Entries expire
    ``expiry`` seconds after their last registration (``expire()`` applies it;
    a served registry runs it every 0.5 s on its worker thread).

    Signals: ``server_added(entry)`` when a server appears, ``server_removed(name)``
    when it is unregistered, expires or is found dead.

    Thread affinity: any thread (an internal lock guards the table); served, its
    methods run on the registry server's worker thread.
    """

    #: Signal(dict) -- a server registered; the argument is its entry.
    server_added = Signal(dict)
    #: Signal(str) -- a server left (clean stop, expiry or death); the argument is its name.
    server_removed = Signal(str)

    def __init__(self, expiry: float = EXPIRY, settings: Optional[config.Settings] = None) -> None:
        if expiry <= 0:
            raise ValueError(f"expiry must be positive, not {expiry!r}")
        self.expiry = float(expiry)
        self.settings = settings if settings is not None else config.DEFAULTS
        self._records: Dict[str, _Record] = {}
        self._reserved: Dict[str, _Record] = {}
        self._gone: Dict[str, float] = {}  # tokens unregistered recently: late refreshes are ignored
        self._lock = threading.RLock()
        #: ``probe(endpoint, curve_key) -> identity or None`` (the registry asks a server itself);
        #: set by ``serve_registry``. Without it, entries live by their registrations alone.
        self.probe: Optional[Callable[[str, str], Optional[str]]] = None
        self._probe_cache: Dict[str, Any] = {}  # {endpoint: (time, identity or None)}
        self._lapsed: Dict[Any, Any] = {}  # {(name, token): (time, entry)} of expired reservations

    # ---------------------------------------------------------------- queries (reads: observers may ask)
    @readonly
    def servers(self) -> List[Dict[str, Any]]:
        """Every live server's entry (a list of dicts with the keys of ``ENTRY_KEYS``, plus ``'station'``
        for a server started by a station), sorted by name."""
        with self._lock:
            return [dict(self._records[name].entry) for name in sorted(self._records)]

    @readonly
    def lookup(self, name: str) -> Dict[str, Any]:
        """The entry of the server registered as ``name``.

        Raises
        ------
        KeyError
            If no live server has that name.
        """
        with self._lock:
            record = self._records.get(name)
            if record is None:
                raise KeyError(name)
            return dict(record.entry)

    # ---------------------------------------------------------------- what servers call
    def reserve(self, name: str, token: str, host: str = "", pid: int = 0, place: str = "",
                rep_endpoint: str = "") -> Optional[Dict[str, Any]]:
        """Hold ``name`` for the server identified by ``token`` while it binds.

        ``rep_endpoint`` is the endpoint it is about to bind. Returns None when
        the name is held for it, else the entry of the live server (or
        reservation) that has the name. A server about to bind the fixed TCP
        endpoint of the holder gets the reservation (the holder is dead if that
        bind succeeds); its registration replaces the holder only once the
        registry has seen that endpoint answer as the newcomer. Reserving again
        with the same token does not extend the reservation (it lapses
        ``expiry`` seconds after it was made). ``place`` is ignored: the
        registry trusts only what it finds out itself.
        """
        _check_name(name)
        _check_token(token, self.settings.registry_token_chars)
        now = time.time()
        removed: List[str] = []
        with self._lock:
            lapsed = self._lapsed.get((name, token))
            mine = self._reserved.get(name)
            if mine is not None and mine.token == token and self._is_stale(mine, now):
                lapsed = self._lapse(name, mine, now)
            if lapsed is not None:  # a reservation is made once: renewing it would hold the name forever
                return dict(lapsed[1])
            holder = self._holder(name, token, now, removed, rep_endpoint, replace=False)
            if holder is None:
                if mine is None or mine.token != token:  # re-reserving never extends a reservation
                    entry = {"name": name, "class": "", "rep_endpoint": str(rep_endpoint), "pub_endpoint": "",
                             "host": str(host), "pid": pid, "started": now}
                    self._reserved[name] = _Record(entry, token, now)
        for gone in removed:
            self.server_removed.emit(gone)
        return holder

    def release(self, name: str, token: str) -> bool:
        """Drop a reservation ``token`` holds (its server failed to start); True if there was one."""
        with self._lock:
            record = self._reserved.get(name)
            if record is not None and record.token == token:
                del self._reserved[name]
                return True
            return False

    def register(self, entry: Dict[str, Any], token: str, place: str = "",
                 curve_key: str = "") -> Optional[Dict[str, Any]]:
        """Add or refresh the server ``entry`` describes; ``token`` identifies that server.

        Returns None when registered (or refreshed), else the entry of the live
        server that already has the name (nothing changes then). A refresh
        cannot change the entry's endpoints. ``place`` is ignored; ``curve_key``
        is the server's CURVE public key (z85) if it serves with CURVE, so the
        registry can probe it.
        """
        if not isinstance(entry, dict):
            raise TypeError(f"a registry entry is a dict, not {type(entry).__name__}")
        name = entry.get("name")
        _check_name(name)
        _check_token(token, self.settings.registry_token_chars)
        clean = {key: entry.get(key) for key in ENTRY_KEYS}
        clean.update((key, entry[key]) for key in OPTIONAL_KEYS if isinstance(entry.get(key), str))
        if not isinstance(clean["rep_endpoint"], str) or not clean["rep_endpoint"]:
            raise ValueError(f"a registry entry needs a rep_endpoint, not {clean['rep_endpoint']!r}")
        curve_key = curve_key if isinstance(curve_key, str) else ""
        now = time.time()
        removed: List[str] = []
        added = None
        with self._lock:
            if token in self._gone:
                return None  # a refresh that crossed its own unregistration
            record = self._records.get(name)
            if record is not None and record.token == token:
                record.seen = now
                for key in ("rep_endpoint", "pub_endpoint"):  # a server's endpoints never change
                    clean[key] = record.entry[key]
                record.entry = clean
                return None
            holder = self._holder(name, token, now, removed, clean["rep_endpoint"], replace=True)
            if holder is not None:
                return holder
            self._reserved.pop(name, None)
            self._records[name] = _Record(clean, token, now, curve_key)
            added = dict(clean)
        for gone in removed:
            self.server_removed.emit(gone)
        logger.info("registered %s: %s at %s", name, clean.get("class"), clean.get("rep_endpoint"))
        self.server_added.emit(added)
        return None

    def unregister(self, name: str, token: str) -> bool:
        """Remove ``name`` if ``token``'s server holds it (a clean stop); True if removed."""
        now = time.time()
        with self._lock:
            self._gone[token] = now
            record = self._reserved.get(name)
            if record is not None and record.token == token:
                del self._reserved[name]
            record = self._records.get(name)
            if record is None or record.token != token:
                return False
            del self._records[name]
        logger.info("unregistered %s", name)
        self.server_removed.emit(name)
        return True

    # ---------------------------------------------------------------- expiry
    def expire(self, now: Optional[float] = None) -> List[str]:
        """Remove entries not refreshed for ``expiry`` seconds, and those of dead local processes.

        Returns the names removed (``server_removed`` is emitted for each).
        """
        now = time.time() if now is None else now
        removed: List[str] = []
        with self._lock:
            for name, record in list(self._records.items()):
                if self._is_stale(record, now):
                    del self._records[name]
                    removed.append(name)
            for name, record in list(self._reserved.items()):
                if self._is_stale(record, now):
                    self._lapse(name, record, now)
            for key, (when, _) in list(self._lapsed.items()):
                if now - when > self.settings.registry_lapsed_memory:
                    del self._lapsed[key]
            for token, when in list(self._gone.items()):
                if now - when > self.expiry:
                    del self._gone[token]
        for name in removed:
            logger.info("%s expired (no registration for %g s, or its process is gone)", name, self.expiry)
            self.server_removed.emit(name)
        return removed

    def _is_stale(self, record: _Record, now: float) -> bool:
        if now - record.seen > self.expiry:
            return True
        # a registry that probes drops an entry its server has not answered for ``expiry`` seconds,
        # whatever refreshes say (so a name can be neither squatted nor kept by a dead server)
        return self.probe is not None and now - record.answered > self.expiry

    def answered(self, endpoint: str, ident: Any, now: Optional[float] = None) -> None:
        """Record the registry's own probe of ``endpoint`` answering with ``ident`` (any thread).

        The entries at that endpoint whose token it proves are alive; the others
        (the endpoint now belongs to another server) are made stale.
        """
        now = time.time() if now is None else now
        with self._lock:
            for record in list(self._records.values()):
                if record.entry.get("rep_endpoint") != endpoint:
                    continue
                if ident == identity(record.token):
                    record.answered = now
                    record.verified = True
                else:
                    record.answered = record.seen = float("-inf")

    def probe_targets(self) -> Dict[str, str]:
        """{rep_endpoint: CURVE public key or ''} of every registered server (for the prober)."""
        with self._lock:
            return {str(r.entry.get("rep_endpoint")): r.curve_key for r in self._records.values()}

    def _holds(self, record: _Record, now: float) -> bool:
        """Whether a live entry keeps its name from a newcomer: its server has answered the
        registry's own probe as the token's holder (asked now if it never has; the answer is
        remembered for a second). Without a prober every live entry does."""
        if self.probe is None or record.verified:
            return True
        endpoint = str(record.entry.get("rep_endpoint"))
        cached = self._probe_cache.get(endpoint)
        if cached is not None and now - cached[0] < self.settings.registry_probe_period:
            ident = cached[1]
        else:
            ident = self._probe(endpoint, record.curve_key, now)
        if ident is not None and ident == identity(record.token):
            record.verified, record.answered = True, now
            return True
        return False

    def _probe(self, endpoint: str, curve_key: str, now: float) -> Optional[str]:
        """Ask ``endpoint`` for its identity now (bounded; worker thread) and remember the answer."""
        try:
            ident = self.probe(endpoint, curve_key) if self.probe is not None else None
        except Exception:  # a failed probe proves nothing
            logger.debug("probing %s", endpoint, exc_info=True)
            ident = None
        if len(self._probe_cache) > self.settings.registry_probe_cache:
            self._probe_cache.clear()
        self._probe_cache[endpoint] = (now, ident)
        return ident

    def _proven(self, record: _Record, token: str, rep_endpoint: Any, now: float) -> bool:
        """Whether the registry itself sees ``token``'s server at ``record``'s endpoint now (so the
        holder is gone: a restart on the same fixed endpoint)."""
        if self.probe is None or rep_endpoint != record.entry.get("rep_endpoint"):
            return False
        ident = self._probe(str(rep_endpoint), record.curve_key, now)
        return ident is not None and ident == identity(token)

    def _holder(self, name: str, token: str, now: float, removed: List[str], rep_endpoint: Any,
                replace: bool) -> Optional[Dict[str, Any]]:
        """The live holder of ``name`` other than ``token`` (stale holders are dropped).

        A newcomer about to bind the holder's fixed TCP endpoint may reserve
        (``replace`` False); to register it (``replace`` True) the registry must
        see that endpoint answer as the newcomer, which proves the holder gone.
        """
        record = self._records.get(name)
        if record is not None and record.token != token:
            stale = self._is_stale(record, now)
            blocks = not stale and self._holds(record, now)
            if blocks:
                if replace:
                    blocks = not self._proven(record, token, rep_endpoint, now)
                else:
                    blocks = not _same_fixed_endpoint(record, rep_endpoint)
            if blocks:
                return dict(record.entry)
            if replace or stale:
                del self._records[name]
                removed.append(name)
        record = self._reserved.get(name)
        if record is not None and record.token != token:
            if not self._is_stale(record, now):
                return dict(record.entry)
            self._lapse(name, record, now)
        return None

    def _lapse(self, name: str, record: _Record, now: float) -> Any:
        """Drop an expired reservation and remember it (bounded): its token cannot reserve the name again."""
        self._reserved.pop(name, None)
        if len(self._lapsed) >= self.settings.registry_lapsed_entries:
            self._lapsed.pop(next(iter(self._lapsed)))
        lapsed = self._lapsed[(name, record.token)] = (now, dict(record.entry))
        return lapsed

    def __repr__(self) -> str:
        return f"<Registry of {len(self._records)} server(s)>"


def _same_fixed_endpoint(record: _Record, rep_endpoint: Any) -> bool:
    """True if ``rep_endpoint`` is the fixed TCP endpoint ``record``'s server registered.

    Two live servers cannot bind one TCP port, so a newcomer about to bind it
    expects the holder to be dead (a restart after a crash); whether it is, the
    registry finds out itself when the newcomer registers.
    """
    if not isinstance(rep_endpoint, str) or not fixed_port(rep_endpoint):
        return False
    return rep_endpoint == record.entry.get("rep_endpoint")


def _check_token(token: Any, longest: int) -> None:
    if not isinstance(token, str) or not token or len(token) > longest:
        raise ValueError(f"a registration token is a non-empty string of at most {longest} characters")


def registry_proxy(registry: Optional[str] = None, timeout: float = REGISTRY_TIMEOUT,
                   protocol: Optional[Protocol] = None, curve: Optional[CurveConfig] = None) -> Any:
    """A Proxy to the registry at ``registry`` (default ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``).

    Its ``servers()``, ``lookup(name)``, ``server_added`` and ``server_removed``
    work as on a :class:`Registry`; stop it with ``_proxy_stop_me()``.

    Raises
    ------
    RegistryUnavailable
        If no registry answers within ``timeout`` seconds.
    """
    from .proxy import Proxy

    endpoint = normalize_optional(registry) or config.registry_endpoint()
    try:
        return Proxy(endpoint, timeout=timeout, protocol=protocol, curve=curve)
    except RemoteTimeout as exc:
        raise _unavailable(endpoint, f"no reply within {timeout:g} s") from exc


# ====================================================================== serving a registry
def _default_pub(rep: str) -> str:
    return with_port(rep, 0) or rep + "-pub"


def _registry_server_class() -> type:
    """The Server subclass that serves a Registry (built lazily: server.py imports Qt)."""
    global _RegistryServer
    if _RegistryServer is not None:
        return _RegistryServer
    from .errors import refusal
    from .server import Server

    class RegistryServer(Server):
        """A Server that answers only what a registry is for.

        'info'; 'inspect' and 'describe' (so proxies work); and through 'exec' the
        registry's own operations (``REGISTRY_OPERATIONS``, called directly). Any
        other request -- another name, a signal's ``emit``, a get or set, 'stop'
        -- is refused with ``PermissionError`` (reason 'registry') and nothing runs.
        """

        #: The probe of the registered servers (kept alive with the server).
        prober: Any = None

        def check_request(self, action: Any, options: Dict[str, Any]) -> None:
            super().check_request(action, options)
            if action in ("inspect", "describe"):
                return
            if action == "exec" and options.get("name") in REGISTRY_OPERATIONS \
                    and options.get("method", "__call__") == "__call__":
                return
            what = f"{action} {options.get('name', '')!r}".strip() if isinstance(options, dict) else str(action)
            raise refusal("registry", f"a registry answers only its own operations "
                                      f"({', '.join(sorted(REGISTRY_OPERATIONS))}); refused: {what}")

        def on_request(self, sender: str, topic: str, content: Any, msgid: str, serializer: str = "pickle") -> Any:
            if isinstance(content, str) and content != "info":
                from .dispatch import encode_exception

                exc = refusal("registry", f"a registry does not answer {content[:40]!r} requests "
                                          "(stop it where it runs)")
                return ("PSMessage", "raise", encode_exception(exc, serializer, []))
            return super().on_request(sender, topic, content, msgid, serializer)

    _RegistryServer = RegistryServer
    return RegistryServer


_RegistryServer: Optional[type] = None


class _Prober:
    """A served registry asking every registered server for its 'info' itself (I/O thread).

    One DEALER per registered endpoint, owned by the I/O thread; each period an
    'info' request (json, signed with the registry's key) goes to each; an answer
    carrying the identity of the registered token keeps the entry alive
    (``Registry.answered``). CURVE servers are probed with the registry's own key
    pair (they admit the key of the registry they register with).
    """

    def __init__(self, server: Any, registry: Registry) -> None:
        self.server_ref = weakref.ref(server)
        self.registry = registry
        self.settings = server.settings
        self.protocol = server.protocol
        self.curve = server.curve
        self.socks: Dict[str, Any] = {}
        self.sender = f"registry-probe-{server.rep_endpoint}"

    # -- sockets ---------------------------------------------------------
    def _client_curve(self, curve_key: str) -> Any:
        if self.curve is None or not curve_key:
            return None
        import copy

        import zmq.utils.z85

        try:
            key = zmq.utils.z85.decode(curve_key.encode("ascii"))
        except Exception:
            return None
        client = copy.copy(self.curve)
        client.server_key = key
        return client

    def open_socket(self, endpoint: str, curve_key: str) -> Any:
        import zmq

        from . import iothread

        sock = iothread.context().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, self.settings.registry_probe_hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, self.settings.registry_probe_max_message)
        client = self._client_curve(curve_key)
        if client is not None:
            client.configure_client(sock)
        sock.connect(endpoint)
        return sock

    def request_frames(self) -> List[Any]:
        from .protocol import new_msgid

        return self.protocol.encode(self.sender, "", "info", new_msgid(), "json")

    def identity_of(self, frames: List[Any]) -> Optional[str]:
        """The identity an 'info' reply carries, or None (bad signature, not json, malformed)."""
        try:
            env = self.protocol.check(frames)
            if env.serializer != "json":
                return None
            info = self.protocol.loads("json", frames[2])
        except Exception:
            return None
        ident = info.get("registration") if isinstance(info, dict) else None
        return ident if isinstance(ident, str) else None

    # -- periodic probes (I/O thread) -------------------------------------
    def start(self) -> None:
        server = self.server_ref()
        if server is not None:
            server.io.call_later(0, self.tick)

    def tick(self) -> None:
        """I/O thread: ask the worker (which owns the table) for the targets, then send."""
        server = self.server_ref()
        if server is None or server.stopped:
            self.close()
            return
        io = server.io
        registry = self.registry
        server.answerer.submit(lambda: io.submit(lambda t=registry.probe_targets(): self.send(t)))
        io.call_later(self.settings.registry_probe_period, self.tick)

    def send(self, targets: Dict[str, str]) -> None:
        """I/O thread: one 'info' request to each registered endpoint."""
        server = self.server_ref()
        if server is None or server.stopped:
            self.close()
            return
        import zmq

        for endpoint in [e for e in self.socks if e not in targets]:
            self._drop(endpoint)
        for endpoint, curve_key in targets.items():
            entry = self.socks.get(endpoint)
            if entry is None or entry[1] != curve_key:
                if entry is not None:
                    self._drop(endpoint)
                try:
                    sock = self.open_socket(endpoint, curve_key)
                except zmq.ZMQError as exc:
                    logger.debug("cannot probe %s: %s", endpoint, exc)
                    continue
                self.socks[endpoint] = (sock, curve_key)
                server.io.register(sock, lambda s, e=endpoint: self.on_readable(s, e))
            try:
                self.socks[endpoint][0].send_multipart([b""] + self.request_frames(), zmq.NOBLOCK, copy=False)
            except zmq.ZMQError:
                pass  # not connected yet, or its queue is full: the next period tries again

    def on_readable(self, sock: Any, endpoint: str) -> None:
        import zmq

        for _ in range(self.settings.registry_probe_reads):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 6 or frames[0] != b"":
                continue
            ident = self.identity_of(frames[1:])
            server = self.server_ref()
            if ident is not None and server is not None and not server.stopped:
                # the worker thread owns the table (and may be probing synchronously)
                server.answerer.submit(lambda e=endpoint, i=ident: self.registry.answered(e, i))

    def _drop(self, endpoint: str) -> None:
        entry = self.socks.pop(endpoint, None)
        server = self.server_ref()
        if entry is not None:
            if server is not None and not server.stopped:
                server.io.unregister(entry[0])
            else:
                entry[0].close(linger=0)

    def close(self) -> None:
        for endpoint in list(self.socks):
            self._drop(endpoint)

    # -- one synchronous probe (the registry's worker thread) --------------
    def probe_now(self, endpoint: str, curve_key: str) -> Optional[str]:
        """The identity ``endpoint`` answers with within ``settings.registry_probe_timeout``, or None."""
        import zmq

        sock = self.open_socket(endpoint, curve_key)
        try:
            frames = self.request_frames()
            sock.send_multipart([b""] + frames, zmq.NOBLOCK, copy=False)
            deadline = time.monotonic() + self.settings.registry_probe_timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sock.poll(max(1, int(remaining * 1000))):
                    return None
                reply = sock.recv_multipart()
                if len(reply) >= 6 and reply[0] == b"" and reply[4] == frames[3]:
                    return self.identity_of(reply[1:])
        except zmq.ZMQError:
            return None
        finally:
            sock.close(linger=0)


def serve_registry(endpoint: Optional[str] = None, *, expiry: float = EXPIRY, **server_kwargs: Any) -> Any:
    """Start a registry in this process and return its Server (stop it with ``stop()``).

    ``endpoint`` defaults to ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``; the
    publish endpoint defaults to a free port on the same host. Other keyword
    arguments go to :class:`pizco_qt.Server` (``pub_endpoint``, ``protocol``,
    ``allow_insecure``...). The served :class:`Registry` is ``server.served_object``.

    The server answers only the registry's own operations (see
    ``REGISTRY_OPERATIONS``), and probes every registered server itself: an
    entry whose server has not answered for ``expiry`` seconds is dropped.
    """
    rep = normalize_optional(endpoint) or config.registry_endpoint()
    server_kwargs.setdefault("pub_endpoint", _default_pub(rep))
    if server_kwargs.get("name"):
        raise ValueError("a registry does not register itself: drop name=")
    settings = server_kwargs.setdefault("settings", config.Settings.from_environment())
    registry = Registry(expiry, settings)
    server = _registry_server_class()(registry, rep, **server_kwargs)
    prober = _Prober(server, registry)
    registry.probe = prober.probe_now
    server.prober = prober
    server.access.write_log_level = logging.DEBUG  # registrations are refreshed every 2 s
    ref = weakref.ref(server)

    def sweep() -> None:  # I/O thread: hand the sweep to the registry's worker thread
        srv = ref()
        if srv is None or srv.stopped:
            return
        srv.answerer.submit(registry.expire)
        srv.io.call_later(srv.settings.registry_sweep, sweep)

    server.io.call_later(server.settings.registry_sweep, sweep)
    prober.start()
    return server


_EXAMPLES = """examples:
  pizco-registry                                  this machine only, tcp://127.0.0.1:5777
  pizco-registry tcp://127.0.0.1:0                a free port (printed on the ready line)
  PZC_KEY=secret pizco-registry tcp://0.0.0.0:5777   for a lab network, with a shared key
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pizco-registry",
        description="Serve the registry of pizco_qt servers: named servers register here,\n"
                    "Proxy.from_name() and pizco-monitor find them here.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoint", nargs="?", default=None,
                        help=f"REP endpoint to bind (default: PZC_REGISTRY, else {config.DEFAULTS.registry})")
    parser.add_argument("--pub", metavar="ENDPOINT", default=None,
                        help="PUB endpoint to bind (default: a free port on the same host)")
    parser.add_argument("--curve-secret", metavar="FILE", default=None,
                        help="serve with CURVE encryption using this key pair (.key_secret)")
    parser.add_argument("--curve-clients", metavar="DIR", default=None,
                        help="with --curve-secret: admit only the clients whose public keys (*.key) are here")
    parser.add_argument("--curve-observers", metavar="DIR", default=None,
                        help="with --curve-clients: also admit the clients whose public keys are here, as "
                             "observers (they may list and look up servers, not register)")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="allow a non-loopback endpoint with no key (PZC_KEY) and no CURVE")
    parser.add_argument("-v", "--verbose", action="store_true", help="log servers as they come and go")
    parser.add_argument("--watch-stdin", action="store_true",
                        help="stop when standard input is closed (pizco-station uses this so the registry "
                             "it starts ends with it)")
    return parser


def _watch_stdin(stop: threading.Event) -> None:
    """Set ``stop`` when standard input reaches end-of-file (the parent is gone)."""
    import os

    def run() -> None:
        try:
            fd = sys.stdin.fileno()
            while os.read(fd, 4096):
                pass
        except (AttributeError, OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=run, name="pizco-stdin-watch", daemon=True).start()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``pizco-registry [endpoint]``: serve a registry until SIGINT or SIGTERM (exit status 0)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    from .limits import raise_open_files_limit

    raise_open_files_limit()  # one connection per registered server and client
    for endpoint in (args.endpoint, args.pub):
        if endpoint is not None and ("://" not in endpoint or not endpoint.split("://", 1)[1]):
            parser.error(f"{endpoint!r} is not a ZMQ endpoint (e.g. tcp://127.0.0.1:5777)")
    if args.curve_clients and not args.curve_secret:
        parser.error("--curve-clients needs --curve-secret (the registry's own key pair)")
    if args.curve_observers and not args.curve_clients:
        parser.error("--curve-observers needs --curve-clients (else every client would be a controller)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with stop_on_signals() as stop:
        if args.watch_stdin:
            _watch_stdin(stop)
        kwargs: Dict[str, Any] = {"allow_insecure": args.allow_insecure}
        if args.pub:
            kwargs["pub_endpoint"] = args.pub
        try:
            if args.curve_secret:
                from .security import CurveConfig

                kwargs["curve"] = CurveConfig(args.curve_secret, args.curve_clients,
                                              observers_dir=args.curve_observers)
            server = serve_registry(args.endpoint, **kwargs)
        except PizcoError as exc:
            print(f"pizco-registry: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"pizco-registry ready rep={server.rep_endpoint} pub={server.pub_endpoint}", flush=True)
            while not stop.wait(server.settings.interrupt_check_interval):
                pass
        finally:
            server.stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())

