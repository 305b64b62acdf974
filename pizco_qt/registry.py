"""Discovery: a registry of live servers, and how servers join it.

A registry is an ordinary pizco_qt server whose served object is a
:class:`Registry`, at a well-known endpoint (``PZC_REGISTRY``, default
``tcp://127.0.0.1:5777``; start one with ``pizco-registry``). A server created
with a name reserves it before binding (0.5 s deadline), registers after
binding and re-sends its registration every 2 s; that is its heartbeat and it
re-registers it after a registry restart. Entries expire 6 s after their last
registration, and at once when a clean stop unregisters them. The registry
emits ``server_added(entry)`` and ``server_removed(name)``.

With no registry running a named server serves at once and keeps trying in
the background (a timer on the I/O thread, replies on the dispatcher thread),
so it never waits for the registry.

Thread affinity: ``Registry`` methods run on the registry server's worker
thread (expiry included); ``register_server``/``unregister_server`` run in the
thread that creates or stops the server; the refresh timer runs on the I/O
thread and never blocks it; ``lookup`` and ``registry_proxy`` run in the
calling thread.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import signal as _signal
import socket
import sys
import threading
import time
import uuid
import weakref
from typing import Any, Dict, List, Optional, Sequence

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import config, iothread
from .agent import new_msgid
from .errors import PizcoError, RemoteError, RemoteTimeout
from .protocol import Protocol
from .signals import Signal

logger = logging.getLogger(__name__)

__all__ = [
    "Registry", "serve_registry", "registry_proxy", "lookup", "register_server",
    "unregister_server", "RegistryUnavailable", "main",
    "EXPIRY", "REFRESH_PERIOD", "RESERVE_TIMEOUT", "ENTRY_KEYS",
]

#: Seconds after its last registration that an entry expires.
EXPIRY = 6.0
#: Seconds between a registered server's registrations (its heartbeat to the registry).
REFRESH_PERIOD = 2.0
#: Deadline of a name reservation (and of an unregistration) in seconds.
RESERVE_TIMEOUT = 0.5
#: Seconds between two expiry sweeps of a served registry.
SWEEP_PERIOD = 0.5
#: Default timeout of registry proxies and look-ups, in seconds.
REGISTRY_TIMEOUT = 3.0
#: The keys of every entry, in display order.
ENTRY_KEYS = ("name", "class", "rep_endpoint", "pub_endpoint", "host", "pid", "started")


class RegistryUnavailable(PizcoError, ConnectionError):
    """No registry answered at the endpoint that was asked."""


# ====================================================================== the registry object
def _process_place() -> str:
    """Where pids of this process are meaningful: the host name, plus the pid namespace on Linux."""
    place = socket.gethostname()
    try:
        place += f"/pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        pass
    return place


_HERE = _process_place()


def _pid_is_dead(pid: Any) -> bool:
    """True only if ``pid`` surely names no process of this machine (POSIX)."""
    if os.name != "posix" or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, owned by someone else
        return False
    return False


class _Record:
    """A registered server as the registry keeps it (the entry plus bookkeeping)."""

    __slots__ = ("entry", "token", "place", "seen")

    def __init__(self, entry: Dict[str, Any], token: str, place: str, seen: float) -> None:
        self.entry, self.token, self.place, self.seen = entry, token, place, seen


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

    def __init__(self, expiry: float = EXPIRY) -> None:
        if expiry <= 0:
            raise ValueError(f"expiry must be positive, not {expiry!r}")
        self.expiry = float(expiry)
        self._records: Dict[str, _Record] = {}
        self._reserved: Dict[str, _Record] = {}
        self._gone: Dict[str, float] = {}  # tokens unregistered recently: late refreshes are ignored
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- queries
    def servers(self) -> List[Dict[str, Any]]:
        """Every live server's entry (a list of dicts with the keys of ``ENTRY_KEYS``), sorted by name."""
        with self._lock:
            return [dict(self._records[name].entry) for name in sorted(self._records)]

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
    def reserve(self, name: str, token: str, host: str = "", pid: int = 0, place: str = "") -> Optional[Dict[str, Any]]:
        """Hold ``name`` for the server identified by ``token`` while it binds.

        Returns None when the name is held for it, else the entry of the live
        server (or reservation) that has the name.
        """
        _check_name(name)
        now = time.time()
        removed: List[str] = []
        with self._lock:
            holder = self._holder(name, token, now, removed)
            if holder is None:
                entry = {"name": name, "class": "", "rep_endpoint": "", "pub_endpoint": "",
                         "host": str(host), "pid": pid, "started": now}
                self._reserved[name] = _Record(entry, token, place, now)
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

    def register(self, entry: Dict[str, Any], token: str, place: str = "") -> Optional[Dict[str, Any]]:
        """Add or refresh the server ``entry`` describes; ``token`` identifies that server.

        Returns None when registered (or refreshed), else the entry of the live
        server that already has the name (nothing changes then).
        """
        if not isinstance(entry, dict):
            raise TypeError(f"a registry entry is a dict, not {type(entry).__name__}")
        name = entry.get("name")
        _check_name(name)
        clean = {key: entry.get(key) for key in ENTRY_KEYS}
        now = time.time()
        removed: List[str] = []
        added = None
        with self._lock:
            if token in self._gone:
                return None  # a refresh that crossed its own unregistration
            record = self._records.get(name)
            if record is not None and record.token == token:
                record.seen = now
                record.entry = clean
                return None
            holder = self._holder(name, token, now, removed)
            if holder is not None:
                return holder
            self._reserved.pop(name, None)
            self._records[name] = _Record(clean, token, place, now)
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
                    del self._reserved[name]
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
        return bool(record.place) and record.place == _HERE and _pid_is_dead(record.entry.get("pid"))

    def _holder(self, name: str, token: str, now: float, removed: List[str]) -> Optional[Dict[str, Any]]:
        """The live holder of ``name`` other than ``token`` (stale holders are dropped)."""
        record = self._records.get(name)
        if record is not None and record.token != token:
            if not self._is_stale(record, now):
                return dict(record.entry)
            del self._records[name]
            removed.append(name)
        record = self._reserved.get(name)
        if record is not None and record.token != token:
            if not self._is_stale(record, now):
                return dict(record.entry)
            del self._reserved[name]
        return None

    def __repr__(self) -> str:
        return f"<Registry of {len(self._records)} server(s)>"


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a server name is a non-empty string, not {name!r}")


# ====================================================================== talking to a registry
class _NoAnswer(Exception):
    """Internal: the registry did not answer (refused, or no reply before the deadline)."""


def _exec_message(method: str, args: Sequence[Any]) -> tuple:
    return ("PSMessage", "exec", {"name": method, "method": "__call__", "args": tuple(args), "kwargs": {}})


def _interpret(content: Any, endpoint: str) -> Any:
    """The value of a registry reply, or raise the registry's exception."""
    if isinstance(content, list):
        content = tuple(content)
    if not (isinstance(content, tuple) and len(content) == 3 and content[0] == "PSMessage"):
        raise PizcoError(f"{endpoint} is not a registry: it answered {content!r}")
    kind, value = content[1], content[2]
    if kind == "return":
        return value
    if kind == "raise":
        exc = value[0] if isinstance(value, (tuple, list)) and value else value
        if isinstance(exc, dict) and "__exception__" in exc:  # json
            args = exc.get("args") or []
            if exc["__exception__"] == "KeyError":
                raise KeyError(*args)
            raise RemoteError(str(exc["__exception__"]), " ".join(map(str, args)))
        if isinstance(exc, BaseException):
            raise exc
        raise RemoteError(type(exc).__name__, str(exc))
    raise PizcoError(f"{endpoint} is not a registry: it answered {kind!r}")


def _call(endpoint: str, method: str, args: Sequence[Any], protocol: Protocol, timeout: float) -> Any:
    """One request to the registry at ``endpoint`` from the calling thread.

    Fails fast (raises ``_NoAnswer`` within milliseconds) when the connection is
    refused, else after ``timeout`` seconds without a reply. The socket lives
    only for this call.
    """
    ctx = iothread.context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CLOSED)
    try:
        msgid = new_msgid()
        frames = protocol.encode(f"registry-client-{os.getpid()}", "", _exec_message(method, args), msgid)
        sock.connect(endpoint)
        sock.send_multipart([b""] + frames, zmq.NOBLOCK, copy=False)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _NoAnswer(f"no reply from {endpoint} within {timeout:g} s")
            events = dict(poller.poll(max(1, int(remaining * 1000))))
            if monitor in events:
                event = recv_monitor_message(monitor)
                if event["event"] in (zmq.EVENT_CONNECT_RETRIED, zmq.EVENT_CLOSED):
                    raise _NoAnswer(f"{endpoint} refused the connection")
            if sock in events:
                reply = sock.recv_multipart()
                if len(reply) >= 5 and reply[0] == b"" and reply[4] == frames[3]:
                    return _interpret(protocol.decode(reply[1:]).content, endpoint)
    except zmq.ZMQError as exc:
        raise _NoAnswer(f"cannot reach {endpoint}: {exc}") from None
    finally:
        try:
            sock.disable_monitor()
        except zmq.ZMQError:
            pass
        monitor.close(linger=0)
        sock.close(linger=0)


def _unavailable(endpoint: str, why: Any) -> RegistryUnavailable:
    return RegistryUnavailable(
        f"no registry answers at {endpoint} ({why}); start one with `pizco-registry {endpoint}` "
        "or point PZC_REGISTRY at the running one")


def lookup(name: str, registry: Optional[str] = None, *, protocol: Optional[Protocol] = None,
           timeout: float = REGISTRY_TIMEOUT) -> Dict[str, Any]:
    """The entry of the server registered as ``name`` (a dict with the keys of ``ENTRY_KEYS``).

    ``registry`` defaults to ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``.

    Raises
    ------
    KeyError
        If no live server has that name.
    RegistryUnavailable
        If no registry answers at that endpoint within ``timeout`` seconds.
    """
    endpoint = registry or config.registry_endpoint()
    protocol = protocol if protocol is not None else Protocol.from_environment()
    try:
        return _call(endpoint, "lookup", (name,), protocol, timeout)
    except _NoAnswer as exc:
        raise _unavailable(endpoint, exc) from None
    except KeyError:
        raise KeyError(f"no server named {name!r} is registered at {endpoint}") from None


def registry_proxy(registry: Optional[str] = None, timeout: float = REGISTRY_TIMEOUT,
                   protocol: Optional[Protocol] = None) -> Any:
    """A Proxy to the registry at ``registry`` (default ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``).

    Its ``servers()``, ``lookup(name)``, ``server_added`` and ``server_removed``
    work as on a :class:`Registry`; stop it with ``_proxy_stop_me()``.

    Raises
    ------
    RegistryUnavailable
        If no registry answers within ``timeout`` seconds.
    """
    from .proxy import Proxy

    endpoint = registry or config.registry_endpoint()
    try:
        return Proxy(endpoint, timeout=timeout, protocol=protocol)
    except RemoteTimeout as exc:
        raise _unavailable(endpoint, f"no reply within {timeout:g} s") from exc


# ====================================================================== the server side
def _advertised(endpoint: str, registry: str) -> str:
    """``endpoint`` as another machine can dial it: a wildcard host becomes this host's address."""
    if not endpoint.startswith("tcp://"):
        return endpoint
    host, port = endpoint[6:].rsplit(":", 1)
    if host not in ("*", "0.0.0.0", "[::]", "::", ""):
        return endpoint
    address = "127.0.0.1"
    if registry.startswith("tcp://"):
        reg_host = registry[6:].rsplit(":", 1)[0].strip("[]")
        if reg_host not in ("127.0.0.1", "localhost", "::1", "*", "0.0.0.0"):
            try:  # the local address that routes to the registry (a UDP connect sends nothing)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.connect((reg_host, 9))
                    address = probe.getsockname()[0]
            except OSError:
                address = socket.gethostname()
    return f"tcp://{address}:{port}"


class _Registration:
    """A named server's membership in the registry (created before the server binds)."""

    def __init__(self, name: str, protocol: Protocol, endpoint: str) -> None:
        self.name = name
        self.protocol = protocol
        self.endpoint = endpoint
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.answered = False        # the registry answered the reservation
        self.registered = False
        self.clash_logged = False
        self.absent_logged = False
        self.stopped = False
        self.pending: Optional[concurrent.futures.Future] = None
        self.pending_since = 0.0
        self.server_ref: "Optional[weakref.ref[Any]]" = None

    def entry(self, server: Any) -> Dict[str, Any]:
        obj = server.served_object
        cls = "" if obj is None else f"{type(obj).__module__}.{type(obj).__qualname__}"
        return {"name": self.name, "class": cls,
                "rep_endpoint": _advertised(server.rep_endpoint, self.endpoint),
                "pub_endpoint": _advertised(server.pub_endpoint, self.endpoint),
                "host": socket.gethostname(), "pid": os.getpid(), "started": float(server.started)}

    def clash_error(self, holder: Dict[str, Any]) -> PizcoError:
        return PizcoError(f"the name {self.name!r} is already used by a live server: {_describe(holder)} "
                          f"(registry {self.endpoint}); choose another name or stop that server")

    def outcome(self, result: Any) -> None:
        """Record a registration's answer: None = registered, a dict = the name's live holder."""
        if result is None:
            if not self.registered:
                logger.info("registered %r with the registry at %s", self.name, self.endpoint)
            self.registered = True
            self.clash_logged = False
            self.absent_logged = False
        elif isinstance(result, dict):
            self.registered = False
            if not self.clash_logged:
                self.clash_logged = True
                logger.warning("%s; this server keeps serving unregistered", self.clash_error(result))


def _describe(holder: Dict[str, Any]) -> str:
    where = f"pid {holder.get('pid')} on {holder.get('host')}"
    if holder.get("rep_endpoint"):
        return f"{holder.get('class') or 'a server'} at {holder.get('rep_endpoint')} ({where})"
    return f"a server starting in {where}"


def reserve_name(name: str, protocol: Protocol, registry: Optional[str] = None) -> _Registration:
    """Reserve ``name`` before a server binds (0.5 s deadline); returns its registration.

    Raises
    ------
    PizcoError
        If a live server already has the name.
    """
    _check_name(name)
    reg = _Registration(name, protocol, registry or config.registry_endpoint())
    try:
        holder = _call(reg.endpoint, "reserve", (name, reg.token, socket.gethostname(), os.getpid(), _HERE),
                       protocol, RESERVE_TIMEOUT)
    except _NoAnswer as exc:
        logger.info("no registry at %s (%s); %r registers in the background", reg.endpoint, exc, name)
        reg.absent_logged = True
        return reg
    except Exception as exc:  # a registry that cannot be used: serve anyway
        logger.warning("the registry at %s refused to reserve %r: %s", reg.endpoint, name, exc)
        return reg
    if holder is not None:
        raise reg.clash_error(holder)
    reg.answered = True
    return reg


def release_name(reg: _Registration) -> None:
    """Give back a reservation whose server failed to bind (best effort, bounded)."""
    reg.stopped = True
    if not reg.answered:
        return
    try:
        _call(reg.endpoint, "release", (reg.name, reg.token), reg.protocol, RESERVE_TIMEOUT)
    except Exception as exc:
        logger.debug("releasing %r: %s", reg.name, exc)


def register_server(server: Any, name: str) -> None:
    """Register ``server`` as ``name`` and keep it registered until it stops.

    Called by ``Server.__init__`` after binding. If the registry answered the
    reservation the first registration is made at once; otherwise (and for every
    refresh) it is sent without waiting, every 2 s, by a timer on the I/O thread.
    A clash found then is logged; the server keeps serving.
    """
    reg = server.__dict__.get("_registration")
    if reg is None or reg.name != name:
        reg = _Registration(name, server.protocol, config.registry_endpoint())
        server._registration = reg
    reg.server_ref = weakref.ref(server)
    first_delay = 0.0
    if reg.answered:
        try:
            reg.outcome(_call(reg.endpoint, "register", (reg.entry(server), reg.token, _HERE),
                              reg.protocol, RESERVE_TIMEOUT))
            first_delay = REFRESH_PERIOD
        except _NoAnswer:
            pass
        except Exception as exc:
            logger.warning("registering %r at %s failed: %s", name, reg.endpoint, exc)
    io = server._io
    io.call_later(first_delay, lambda: _refresh(reg))


def _refresh(reg: _Registration) -> None:
    """I/O thread: send one registration without waiting and schedule the next."""
    server = reg.server_ref() if reg.server_ref is not None else None
    if server is None or reg.stopped or server.stopped:
        return
    now = time.monotonic()
    pending = reg.pending
    if pending is not None and not pending.done():
        # no answer for a whole period: the registry is gone (or restarting). Drop the
        # request and its socket, so nothing piles up while it is away and the next
        # registration goes out on a fresh connection.
        server.forget_async(pending)
        sock = server._async_socks.pop(reg.endpoint, None)
        if sock is not None:
            server._io.unregister(sock)
    try:
        fut = server.request_async(reg.endpoint, _exec_message("register", (reg.entry(server), reg.token, _HERE)),
                                   lambda frames: _interpret(reg.protocol.decode(frames).content, reg.endpoint))
    except Exception:
        logger.debug("sending the registration of %r", reg.name, exc_info=True)
    else:
        reg.pending, reg.pending_since = fut, now
        fut.add_done_callback(lambda f: _refreshed(reg, f))
    server._io.call_later(REFRESH_PERIOD, lambda: _refresh(reg))


def _refreshed(reg: _Registration, fut: concurrent.futures.Future) -> None:
    """Dispatcher thread: the registry answered a registration."""
    if fut.cancelled() or reg.stopped:
        return
    exc = fut.exception()
    if exc is not None:
        logger.debug("registration of %r: %s", reg.name, exc)
        return
    reg.outcome(fut.result())


def unregister_server(server: Any) -> None:
    """Remove ``server`` from the registry at once (its clean stop); bounded by 0.5 s."""
    reg = server.__dict__.get("_registration")
    if reg is None or reg.stopped:
        return
    reg.stopped = True
    pending = reg.pending
    if pending is not None and not pending.done():
        server.forget_async(pending)
    if not (reg.answered or reg.registered or reg.pending is not None):
        return
    try:
        _call(reg.endpoint, "unregister", (reg.name, reg.token), reg.protocol, RESERVE_TIMEOUT)
    except _NoAnswer:
        logger.debug("no registry at %s to unregister %r", reg.endpoint, reg.name)
    except Exception as exc:
        logger.warning("unregistering %r at %s failed: %s", reg.name, reg.endpoint, exc)


# ====================================================================== serving a registry
def _default_pub(rep: str) -> str:
    if rep.startswith("tcp://"):
        return rep.rsplit(":", 1)[0] + ":0"
    return rep + "-pub"


def serve_registry(endpoint: Optional[str] = None, *, expiry: float = EXPIRY, **server_kwargs: Any) -> Any:
    """Start a registry in this process and return its Server (stop it with ``stop()``).

    ``endpoint`` defaults to ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``; the
    publish endpoint defaults to a free port on the same host. Other keyword
    arguments go to :class:`pizco_qt.Server` (``pub_endpoint``, ``protocol``,
    ``allow_insecure``...). The served :class:`Registry` is ``server.served_object``.
    """
    from .server import Server

    rep = endpoint or config.registry_endpoint()
    server_kwargs.setdefault("pub_endpoint", _default_pub(rep))
    if server_kwargs.get("name"):
        raise ValueError("a registry does not register itself: drop name=")
    registry = Registry(expiry)
    server = Server(registry, rep, **server_kwargs)
    ref = weakref.ref(server)

    def sweep() -> None:  # I/O thread: hand the sweep to the registry's worker thread
        srv = ref()
        if srv is None or srv.stopped:
            return
        srv._worker_submit(registry.expire)
        srv._io.call_later(SWEEP_PERIOD, sweep)

    server._io.call_later(SWEEP_PERIOD, sweep)
    return server


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pizco-registry",
        description="Serve the registry of pizco_qt servers: named servers register here, "
                    "Proxy.from_name() and pizco-monitor find them here.")
    parser.add_argument("endpoint", nargs="?", default=None,
                        help=f"REP endpoint to bind (default: PZC_REGISTRY, else {config.DEFAULT_REGISTRY})")
    parser.add_argument("--pub", metavar="ENDPOINT", default=None,
                        help="PUB endpoint to bind (default: a free port on the same host)")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="allow a non-loopback endpoint with pickle and no key (PZC_KEY)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log servers as they come and go")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``pizco-registry [endpoint]``: serve a registry until SIGINT or SIGTERM (exit status 0)."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    previous = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (_signal.SIGINT, _signal.SIGTERM):
        previous[sig] = _signal.signal(sig, on_signal)
    try:
        kwargs: Dict[str, Any] = {"allow_insecure": args.allow_insecure}
        if args.pub:
            kwargs["pub_endpoint"] = args.pub
        try:
            server = serve_registry(args.endpoint, **kwargs)
        except PizcoError as exc:
            print(f"pizco-registry: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"pizco-registry ready rep={server.rep_endpoint} pub={server.pub_endpoint}", flush=True)
            while not stop.wait(0.25):
                pass
        finally:
            server.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
