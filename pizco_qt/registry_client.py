"""How servers join a registry, and how clients ask it (the registry itself is in registry.py).

A server created with a name reserves it before binding (0.5 s deadline: a
clash with a live server raises ``PizcoError`` and nothing is bound), registers
after binding, and re-sends its registration every 2 s; that is its heartbeat
to the registry, and it re-registers it after a registry restart. With no
registry running the server serves at once and keeps trying in the background;
a clash found then is logged. A clean stop unregisters at once.

The background registration is one timer per server on the I/O thread that
sends without waiting (``Agent.request_async``); replies are handled on the
dispatcher thread. There is no thread per server.

Thread affinity: ``reserve_name``, ``register_server``, ``unregister_server``,
and ``lookup`` run in the calling thread (each with a
bounded wait); the refresh timer runs on the I/O thread and never blocks it.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import socket
import time
import uuid
import weakref
from typing import Any, Dict, Optional, Sequence

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import config, iothread, replies
from .agent import new_msgid
from .endpoints import host_of, is_wildcard, normalize_optional, split_tcp
from .errors import AccessDenied, AuthenticationError, NameTaken, PizcoError, ProtocolError, RemoteError
from .protocol import Protocol
from .security import CurveConfig

logger = logging.getLogger(__name__)

__all__ = [
    "lookup", "reserve_name", "release_name", "register_server", "unregister_server",
    "RegistryUnavailable", "EXPIRY", "REFRESH_PERIOD", "RESERVE_TIMEOUT", "REGISTRY_TIMEOUT", "ENTRY_KEYS",
    "OPTIONAL_KEYS",
]

#: Seconds after its last registration that an entry expires.
EXPIRY = config.DEFAULTS.registry_expiry
#: Seconds between a registered server's registrations (its heartbeat to the registry).
REFRESH_PERIOD = config.DEFAULTS.registry_refresh
#: Deadline of a name reservation (and of an unregistration) in seconds.
RESERVE_TIMEOUT = config.DEFAULTS.registry_reserve_timeout
#: Seconds between two expiry sweeps of a served registry.
SWEEP_PERIOD = config.DEFAULTS.registry_sweep
#: Default timeout of registry proxies and look-ups, in seconds.
REGISTRY_TIMEOUT = config.DEFAULTS.registry_timeout
#: The keys of every entry, in display order.
ENTRY_KEYS = ("name", "class", "rep_endpoint", "pub_endpoint", "host", "pid", "started")
#: Keys an entry carries only when the server has them ('station': the station it belongs to).
OPTIONAL_KEYS = ("station",)


class RegistryUnavailable(PizcoError, ConnectionError):
    """No registry answered at the endpoint that was asked."""



def _process_place() -> str:
    """Where this process's pids and ports mean something: its host, plus its namespaces on Linux."""
    place = socket.gethostname()
    for kind in ("pid", "net"):
        try:
            place += f"/{kind}:{os.stat(f'/proc/self/ns/{kind}').st_ino}"
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



def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a server name is a non-empty string, not {name!r}")



# ====================================================================== talking to a registry
class _NoAnswer(Exception):
    """Internal: the registry did not answer (refused, or no reply before the deadline)."""


def _exec_message(method: str, args: Sequence[Any]) -> tuple:
    return ("PSMessage", "exec", {"name": method, "method": "__call__", "args": tuple(args), "kwargs": {}})


#: Registry traffic is json: an impostor registry cannot make a server or client unpickle anything.
REGISTRY_SERIALIZER = "json"


#: How a malformed reply names the peer that sent it.
_PEER = "pizco_qt registry"


def _malformed(endpoint: str, what: Any) -> ProtocolError:
    return replies.malformed(endpoint, what, _PEER)


def _read_reply(frames: Sequence[Any], protocol: Protocol, endpoint: str) -> Any:
    """The value of a registry reply, or raise the registry's exception; ProtocolError if malformed.

    Signature checked first, json only (nothing is ever unpickled), strict: a
    reply that is no PSMessage 'return' or 'raise' is a ProtocolError naming
    ``endpoint``, never an AttributeError.
    """
    content = replies.decode(protocol, frames, (REGISTRY_SERIALIZER,), endpoint=endpoint, peer=_PEER)
    kind, value = replies.classify(content, endpoint, strict=True, peer=_PEER)
    if kind == replies.RETURN:
        return value
    if kind == replies.RAISE:
        raise _registry_error(value, endpoint)
    raise _malformed(endpoint, f"a {kind!r} reply")


def _registry_error(value: Any, endpoint: str) -> Exception:
    """The exception a registry's 'raise' stands for, decided on the exception's name alone (no
    class named by the peer is instantiated): KeyError (no such name), AccessDenied (refused),
    ProtocolError (a bad request), RemoteError (anything else)."""
    exc, _ = replies.split_raise(value)
    parts = replies.json_exception(exc)
    if parts is None:
        return _malformed(endpoint, f"an error that is not one: {exc!r}")
    name, args = parts.name, parts.args
    if name == "KeyError":
        return KeyError(*args[:1])
    if name == "PermissionError":
        return AccessDenied(" ".join(map(str, args)))
    if name in ("ValueError", "TypeError"):
        return ProtocolError(f"{endpoint} refused the request: {name}: {' '.join(map(str, args))}")
    return RemoteError(name[:80], " ".join(map(str, args))[:1000])


def _entry_or_none(value: Any, endpoint: str) -> Optional[Dict[str, Any]]:
    """A reserve/register answer: None (granted) or the holder's entry (a dict)."""
    if value is None:
        return None
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return value
    raise _malformed(endpoint, f"{value!r} where None or an entry was expected")


def _entry(value: Any, endpoint: str) -> Dict[str, Any]:
    """A lookup answer: an entry with a rep_endpoint."""
    if isinstance(value, dict) and isinstance(value.get("rep_endpoint"), str) and value["rep_endpoint"]:
        return value
    raise _malformed(endpoint, f"{value!r} where an entry was expected")


_REFUSALS = zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CLOSED
_HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                       | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def _call(endpoint: str, method: str, args: Sequence[Any], protocol: Protocol, timeout: float,
          curve: Optional[CurveConfig] = None) -> Any:
    """One request to the registry at ``endpoint`` from the calling thread.

    Fails fast (raises ``_NoAnswer`` within milliseconds) when the connection is
    refused, else after ``timeout`` seconds without a reply; a refused CURVE
    handshake raises ProtocolError. The socket lives only for this call.
    """
    ctx = iothread.context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, config.max_message_size())
    if curve is not None:
        curve.configure_client(sock)
    monitor = sock.get_monitor_socket(_REFUSALS | _HANDSHAKE_FAILURES)
    try:
        msgid = new_msgid()
        frames = protocol.encode(f"registry-client-{os.getpid()}", "", _exec_message(method, args), msgid,
                                 REGISTRY_SERIALIZER)
        sock.connect(endpoint)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        sent = False
        while True:
            if not sent:  # the connection may be between two attempts (a refused handshake drops it)
                try:
                    sock.send_multipart([b""] + frames, zmq.NOBLOCK, copy=False)
                    sent = True
                except zmq.Again:
                    pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _NoAnswer(f"no reply from {endpoint} within {timeout:g} s")
            wait = remaining if sent else min(remaining, config.DEFAULTS.retry_interval)
            events = dict(poller.poll(max(1, int(wait * 1000))))
            if monitor in events:
                event = recv_monitor_message(monitor)["event"]
                if event & _HANDSHAKE_FAILURES:
                    raise AuthenticationError(f"CURVE authentication refused by {endpoint} (check the CURVE keys: "
                                        "the registry's public key and its allowed clients)")
                if event & _REFUSALS:
                    raise _NoAnswer(f"{endpoint} refused the connection")
            if sock in events:
                reply = sock.recv_multipart()
                if len(reply) >= 5 and reply[0] == b"" and reply[4] == frames[3]:
                    return _read_reply(reply[1:], protocol, endpoint)
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
           curve: Optional[CurveConfig] = None, timeout: float = REGISTRY_TIMEOUT) -> Dict[str, Any]:
    """The entry of the server registered as ``name`` (a dict with the keys of ``ENTRY_KEYS``).

    ``registry`` defaults to ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``;
    ``protocol`` and ``curve`` (a client CurveConfig naming the registry's public
    key) are those of the registry.

    Raises
    ------
    KeyError
        If no live server has that name.
    RegistryUnavailable
        If no registry answers at that endpoint within ``timeout`` seconds.
    """
    endpoint = normalize_optional(registry) or config.registry_endpoint()
    protocol = protocol if protocol is not None else Protocol.from_environment()
    try:
        return _entry(_call(endpoint, "lookup", (name,), protocol, timeout, curve), endpoint)
    except _NoAnswer as exc:
        raise _unavailable(endpoint, exc) from None
    except KeyError:
        raise KeyError(f"no server named {name!r} is registered at {endpoint}") from None


def identity(token: str) -> str:
    """What a registered server's 'info' reply carries to prove it holds ``token`` (never the token)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


# ====================================================================== the server side
def _advertised(endpoint: str, registry: str) -> str:
    """``endpoint`` as another machine can dial it: a wildcard host becomes this host's address."""
    parts = split_tcp(endpoint)
    if parts is None or not is_wildcard(parts[0]):
        return endpoint
    port = parts[1]
    address = "127.0.0.1"
    reg_host = host_of(registry)
    if reg_host is not None:
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

    def __init__(self, name: str, protocol: Protocol, endpoint: str, curve: Optional[CurveConfig],
                 settings: config.Settings) -> None:
        self.name = name
        self.settings = settings
        self.protocol = protocol
        self.endpoint = endpoint
        self.curve = curve if curve is not None and curve.is_client else None
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.answered = False        # the registry answered the reservation
        self.registered = False
        self.clash_logged = False
        self.refused = False         # the registry rejected our key or CURVE keys
        self.stopped = False
        self.pending: Optional[concurrent.futures.Future] = None
        self.server_ref: "Optional[weakref.ref[Any]]" = None

    def entry(self, server: Any) -> Dict[str, Any]:
        obj = server.served_object
        cls = "" if obj is None else f"{type(obj).__module__}.{type(obj).__qualname__}"
        return {"name": self.name, "class": cls,
                "rep_endpoint": _advertised(server.rep_endpoint, self.endpoint),
                "pub_endpoint": _advertised(server.pub_endpoint, self.endpoint),
                "host": socket.gethostname(), "pid": os.getpid(), "started": float(server.started),
                **_station_key(self.settings)}

    def register_args(self, server: Any) -> tuple:
        """The arguments of 'register': the entry, the token, a place (ignored by the registry) and
        the server's CURVE public key (z85, '' without CURVE) so the registry can probe it."""
        curve_key = ""
        curve = getattr(server, "curve", None)
        if curve is not None and len(getattr(curve, "public_key", b"")) in (32, 40):
            import zmq.utils.z85

            key = curve.public_key
            curve_key = (zmq.utils.z85.encode(key) if len(key) == 32 else key).decode("ascii")
        return (self.entry(server), self.token, _HERE, curve_key)

    def clash_error(self, holder: Dict[str, Any]) -> NameTaken:
        return NameTaken(f"the name {self.name!r} is already used by a live server: {_describe(holder)} "
                          f"(registry {self.endpoint}); choose another name or stop that server")

    def outcome(self, result: Any) -> None:
        """Record a registration's answer: None = registered, a dict = the name's live holder."""
        if result is None:
            if not self.registered:
                logger.info("registered %r with the registry at %s", self.name, self.endpoint)
            self.registered = True
            self.clash_logged = False
        elif isinstance(result, dict):
            self.registered = False
            if not self.clash_logged:
                self.clash_logged = True
                logger.warning("%s; this server keeps serving unregistered", self.clash_error(result))


def _station_key(settings: config.Settings) -> Dict[str, str]:
    """``{'station': name}`` for a server started by a station (``PZC_STATION``), else nothing."""
    station = settings.station
    return {"station": station} if station else {}


def _describe(holder: Dict[str, Any]) -> str:
    where = f"pid {holder.get('pid')} on {holder.get('host')}"
    if holder.get("pub_endpoint"):  # registered (a reservation has no PUB endpoint yet)
        return f"{holder.get('class') or 'an empty server'} at {holder.get('rep_endpoint')} ({where})"
    return f"a server starting in {where}"


def reserve_name(name: str, protocol: Protocol, registry: Optional[str] = None,
                 rep_endpoint: Optional[str] = None, curve: Optional[CurveConfig] = None,
                 settings: Optional[config.Settings] = None) -> _Registration:
    """Reserve ``name`` before a server binds ``rep_endpoint`` (0.5 s deadline); returns its registration.

    A ``curve`` config that names a server public key (the registry's) makes
    every exchange with the registry a CURVE client connection.

    Raises
    ------
    PizcoError
        If a live server already has the name.
    """
    _check_name(name)
    settings = settings if settings is not None else config.Settings.from_environment()
    reg = _Registration(name, protocol, normalize_optional(registry) or settings.registry, curve, settings)
    try:
        requested = _advertised(rep_endpoint or "", reg.endpoint)
        holder = _entry_or_none(_call(reg.endpoint, "reserve", (name, reg.token, socket.gethostname(), os.getpid(),
                                                                _HERE, requested), protocol,
                                      settings.registry_reserve_timeout, reg.curve), reg.endpoint)
    except _NoAnswer as exc:
        logger.info("no registry at %s (%s); %r registers in the background", reg.endpoint, exc, name)
        return reg
    except ProtocolError as exc:  # wrong key, CURVE keys or not a registry: do not insist, never trust it
        logger.warning("the registry at %s refused %r or cannot be trusted (%s); this server serves "
                       "unregistered", reg.endpoint, name, exc)
        reg.refused = True
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
        _call(reg.endpoint, "release", (reg.name, reg.token), reg.protocol, reg.settings.registry_reserve_timeout,
              reg.curve)
    except Exception as exc:
        logger.debug("releasing %r: %s", reg.name, exc)


def register_server(server: Any, name: str) -> None:
    """Register ``server`` as ``name`` and keep it registered until it stops.

    Called by ``Server.__init__`` after binding. If the registry answered the
    reservation the first registration is made at once; otherwise (and for every
    refresh) it is sent without waiting, every 2 s, by a timer on the I/O thread.
    A clash found then is logged; the server keeps serving.
    """
    reg = server.registration
    if reg is None or reg.name != name:
        settings = server.settings
        reg = _Registration(name, server.protocol, settings.registry, getattr(server, "curve", None), settings)
        server.registration = reg
    reg.server_ref = weakref.ref(server)
    server.name = name
    if reg.refused:
        return
    first_delay = 0.0
    if reg.answered:
        try:
            reg.outcome(_entry_or_none(_call(reg.endpoint, "register", reg.register_args(server),
                                             reg.protocol, reg.settings.registry_timeout, reg.curve), reg.endpoint))
            first_delay = reg.settings.registry_refresh
        except _NoAnswer:
            pass
        except Exception as exc:
            logger.warning("registering %r at %s failed: %s", name, reg.endpoint, exc)
    server.io.call_later(first_delay, lambda: _refresh(reg))


def _refresh(reg: _Registration) -> None:
    """I/O thread: send one registration without waiting and schedule the next."""
    server = reg.server_ref() if reg.server_ref is not None else None
    if server is None or reg.stopped or server.stopped:
        return
    pending = reg.pending
    if pending is not None and not pending.done():
        # no answer for a whole period: the registry is gone (or restarting). Drop the
        # request and its socket, so nothing piles up while it is away and the next
        # registration goes out on a fresh connection.
        server.forget_async(pending)
        server.requester.drop_socket(reg.endpoint)
    try:
        fut = server.request_async(
            reg.endpoint, _exec_message("register", reg.register_args(server)),
            lambda frames: _entry_or_none(_read_reply(frames, reg.protocol, reg.endpoint), reg.endpoint),
            serializer=REGISTRY_SERIALIZER)
    except Exception:
        logger.debug("sending the registration of %r", reg.name, exc_info=True)
    else:
        reg.pending = fut
        fut.add_done_callback(lambda f: _refreshed(reg, f))
    server.io.call_later(reg.settings.registry_refresh, lambda: _refresh(reg))


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
    reg = server.registration
    if reg is None or reg.stopped:
        return
    reg.stopped = True
    pending = reg.pending
    if pending is not None and not pending.done():
        server.forget_async(pending)
    if not (reg.answered or reg.registered or reg.pending is not None):
        return
    try:
        _call(reg.endpoint, "unregister", (reg.name, reg.token), reg.protocol,
              reg.settings.registry_reserve_timeout, reg.curve)
    except _NoAnswer:
        logger.debug("no registry at %s to unregister %r", reg.endpoint, reg.name)
    except Exception as exc:
        logger.warning("unregistering %r at %s failed: %s", reg.name, reg.endpoint, exc)
