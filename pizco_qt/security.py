"""Security: the non-loopback bind refusal and ZMQ CURVE (pyzmq's zmq.auth).

``check_bind_allowed`` refuses to expose a server on the network without a key,
CURVE or an explicit opt-in (whatever the serializer). ``CurveConfig`` holds the key files;
``register_curve_server`` runs one ZAP authenticator thread per process for every
CURVE server in it; ``CurveChannel`` is a synchronous request socket that turns a
refused handshake into an AuthenticationError (a ProtocolError).

Thread affinity: checks are pure; CURVE sockets are configured on their owner
thread; the ZAP callback runs on the authenticator thread.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

from . import config, forking
from .endpoints import host_of
from .zmq_io import close_owned
from .errors import AuthenticationError, InsecureBind, PizcoError, ProtocolError, RemoteTimeout
from .protocol import Protocol

logger = logging.getLogger(__name__)

__all__ = ["is_loopback_endpoint", "check_bind_allowed", "ReplayCache", "CurveConfig", "CurveChannel",
           "register_curve_server", "unregister_curve_server", "curve_role", "add_curve_arguments", "curve_from_args"]


def _host(endpoint: str) -> Optional[str]:
    return host_of(endpoint)  # None for ipc:// and inproc://, which never leave the machine


def is_loopback_endpoint(endpoint: str) -> bool:
    """True if binding ``endpoint`` only accepts peers of this machine."""
    host = _host(endpoint)
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name


def check_bind_allowed(endpoint: str, protocol: Protocol, secured: bool = False, allow_insecure: bool = False) -> None:
    """Refuse to bind a non-loopback address with no key and no CURVE, whatever the serializer.

    With ``allow_insecure`` the bind goes ahead and a WARNING naming the
    endpoint and the risk is logged (once per bind: call this once per endpoint).

    Raises
    ------
    InsecureBind
        Naming the risk and the ways out.
    """
    if secured or protocol.hmac_key or is_loopback_endpoint(endpoint):
        return
    risk = (f"any peer that can reach {endpoint} can drive the served object "
            f"(call methods, change attributes, stop the server)")
    if protocol.serializer != "json":
        risk += f", and with the {protocol.serializer!r} serializer run code in this process"
    if allow_insecure:
        logger.warning("serving %s with no key and no CURVE (allow_insecure=True): %s", endpoint, risk)
        return
    raise InsecureBind(
        f"refusing to bind {endpoint} with no key and no CURVE: {risk}; even the json serializer "
        "does not prevent that. Set a shared key (PZC_KEY or Protocol(hmac_key=...)), use CURVE "
        "encryption (curve=CurveConfig(...), --curve-secret), bind 127.0.0.1, or pass "
        "allow_insecure=True (--allow-insecure) if every host that can reach this port is trusted."
    )


# ---------------------------------------------------------------------- replays
class ReplayCache:
    """The signed requests a keyed server has answered recently (worker thread only).

    A request is a replay when its message id, or its signature, was seen within
    ``window`` seconds (10 minutes). The signature catches a captured request
    whose message id was altered by moving bytes across Pizco's frame
    boundaries, which the five-frame signature cannot see. At most ``size``
    requests are remembered (two 64-bit keys each, about 20 MiB for 100,000);
    past that rate the oldest are forgotten early.
    """

    def __init__(self, window: float = config.DEFAULTS.replay_window, size: int = config.DEFAULTS.replay_cache_size,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import collections

        self.window = float(window)
        self.size = int(size)
        self._clock = clock
        self._keys_seen: "set[int]" = set()
        self._order: "collections.deque[tuple[float, int, int]]" = collections.deque()  # the oldest first

    def __len__(self) -> int:
        return len(self._order)

    @staticmethod
    def _keys(signature: Any, msgid: str) -> "tuple[int, int]":
        sig = int.from_bytes(bytes(signature)[:8], "little") << 1  # even: a signature
        mid = (hash(msgid) << 1) | 1                                  # odd: a message id
        return sig, mid

    def _forget_oldest(self) -> None:
        _, sig, mid = self._order.popleft()
        self._keys_seen.discard(sig)
        self._keys_seen.discard(mid)

    def check_and_add(self, signature: Any, msgid: str) -> bool:
        """Record a request; True if it is a replay (nothing of it may run then)."""
        now = self._clock()
        order = self._order
        while order and now - order[0][0] >= self.window:
            self._forget_oldest()
        sig, mid = self._keys(signature, msgid)
        seen = self._keys_seen
        if sig in seen or mid in seen:
            return True
        seen.add(sig)
        seen.add(mid)
        order.append((now, sig, mid))
        while len(order) > self.size:
            self._forget_oldest()
        return False


# ---------------------------------------------------------------------- CURVE
class CurveConfig:
    """ZMQ CURVE encryption and client authentication, configured with key files.

    Key files are those of ``zmq.auth.create_certificates`` (``NAME.key`` holds a
    public key, ``NAME.key_secret`` the key pair).

    Parameters
    ----------
    secret_key_file : str or path
        This side's key pair (``.key_secret``): the server's on a server, the
        client's on a proxy.
    public_keys_dir : str or path, optional
        Server side: a directory of the public keys (``*.key``) of the clients
        allowed in. None admits any client that knows the server's public key
        (encryption without client authentication). The holder of the server's
        own key pair is always admitted.
    server_public_key_file : str or path, optional
        Client side: the server's public key (``.key``; a ``.key_secret`` works too).
    observers_dir : str or path, optional
        Server side: a directory of the public keys of clients admitted as
        observers (they may read, not write). Keys in ``public_keys_dir`` (and the
        server's own) are controllers'; a key in both directories is a controller's.
        Both directories are re-read when they change.

    Raises
    ------
    PizcoError
        If a key file cannot be read, holds no secret key, or a directory is missing.
    ValueError
        If ``observers_dir`` is given without ``public_keys_dir``.

    Thread affinity: immutable once built; any thread.
    """

    def __init__(self, secret_key_file: "str | os.PathLike[str]", public_keys_dir: "str | os.PathLike[str] | None" = None,
                 server_public_key_file: "str | os.PathLike[str] | None" = None,
                 observers_dir: "str | os.PathLike[str] | None" = None) -> None:
        import zmq.auth

        if observers_dir is not None and public_keys_dir is None:
            raise ValueError("observers_dir needs public_keys_dir: without a list of controllers every "
                             "client would be admitted as a controller")

        if not zmq.has("curve"):
            raise PizcoError("this libzmq was built without CURVE support")
        self.secret_key_file = os.fspath(secret_key_file)
        self.public_keys_dir = os.fspath(public_keys_dir) if public_keys_dir is not None else None
        self.server_public_key_file = (os.fspath(server_public_key_file)
                                       if server_public_key_file is not None else None)
        self.observers_dir = os.fspath(observers_dir) if observers_dir is not None else None
        try:
            public, secret = zmq.auth.load_certificate(self.secret_key_file)
        except (OSError, ValueError) as exc:
            raise PizcoError(f"cannot read the CURVE key pair {self.secret_key_file}: {exc}") from None
        if not secret:
            raise PizcoError(f"{self.secret_key_file} holds no secret key: give the .key_secret file "
                             "(zmq.auth.create_certificates makes both)")
        self.public_key: bytes = public
        self.secret_key: bytes = secret
        self.server_key: Optional[bytes] = None
        if self.server_public_key_file is not None:
            try:
                self.server_key = zmq.auth.load_certificate(self.server_public_key_file)[0]
            except (OSError, ValueError) as exc:
                raise PizcoError(f"cannot read the server's CURVE public key "
                                 f"{self.server_public_key_file}: {exc}") from None
        if self.public_keys_dir is not None and not os.path.isdir(self.public_keys_dir):
            raise PizcoError(f"the CURVE client key directory {self.public_keys_dir} does not exist")
        if self.observers_dir is not None and not os.path.isdir(self.observers_dir):
            raise PizcoError(f"the CURVE observer key directory {self.observers_dir} does not exist")

    def __repr__(self) -> str:
        return (f"CurveConfig({self.secret_key_file!r}, public_keys_dir={self.public_keys_dir!r}, "
                f"server_public_key_file={self.server_public_key_file!r}, observers_dir={self.observers_dir!r})")

    @property
    def is_client(self) -> bool:
        """Whether outgoing connections use CURVE (a server public key is known)."""
        return self.server_key is not None

    def for_own_client(self) -> "CurveConfig":
        """A client configuration that reaches the server of this key pair with the same keys."""
        return CurveConfig(self.secret_key_file, server_public_key_file=self.secret_key_file)

    # -- sockets (called on the socket's owner thread) ---------------------
    def configure_server(self, sock: Any, domain: str) -> None:
        """Make ``sock`` (before bind) a CURVE server authenticated in ZAP ``domain``."""
        import zmq

        sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode("utf-8"))
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.CURVE_SERVER, 1)

    def configure_client(self, sock: Any) -> None:
        """Make ``sock`` (before connect) a CURVE client of the configured server."""
        import zmq

        if self.server_key is None:
            return
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret_key)


class _KeyDir:
    """The public keys in one directory, re-read when the directory changes."""

    def __init__(self, path: Optional[str], what: str) -> None:
        self.path, self.what = path, what
        self._stamp: Any = None
        self._keys: frozenset = frozenset()
        self._lock = threading.Lock()

    def keys(self) -> frozenset:
        import zmq.auth

        path = self.path
        if path is None:
            return frozenset()
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return frozenset()
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._keys = frozenset(zmq.auth.load_certificates(path))
                except Exception as exc:  # a broken key file must not stop the server
                    logger.warning("cannot read the CURVE %s keys in %s: %s", self.what, path, exc)
                self._stamp = stamp
            return self._keys


class _KeyRing:
    """The ZAP credentials check of one server: its controllers' and observers' keys, re-read
    when their directories change (so a key dropped in is honoured without a restart)."""

    def __init__(self, curve: CurveConfig) -> None:
        import zmq.utils.z85

        self.curve = curve
        self.own = zmq.utils.z85.encode(curve.public_key) if len(curve.public_key) == 32 else curve.public_key
        # the registry this server registers with probes it with its own key pair
        reg = curve.server_key
        self.registry = (zmq.utils.z85.encode(reg) if reg is not None and len(reg) == 32 else reg)
        self.controllers = _KeyDir(curve.public_keys_dir, "client")
        self.observers = _KeyDir(getattr(curve, "observers_dir", None), "observer")

    def _allowed(self) -> frozenset:
        return self.controllers.keys()

    def role(self, key: bytes) -> str:
        """'controller' or 'observer' for an admitted client's z85 key (a key since removed: observer)."""
        if self.curve.public_keys_dir is None or key == self.own or key in self.controllers.keys():
            return "controller"
        return "observer"

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP hook (authenticator thread): is the client's z85 public key allowed?"""
        if self.curve.public_keys_dir is None or key == self.own or (self.registry and key == self.registry):
            return True
        allowed = key in self._allowed() or key in self.observers.keys()
        if not allowed:
            logger.warning("refused a CURVE client with an unknown public key %s", key.decode("ascii", "replace"))
        return allowed


_auth: Any = None
_auth_domains: Dict[str, _KeyRing] = {}
_auth_lock = threading.Lock()


def _reset_after_fork() -> None:
    """In a forked child: the parent's authenticator thread is gone; the next CURVE server starts one."""
    global _auth, _auth_domains, _auth_lock
    if _auth is not None:
        _inherited_auth.append(_auth)
    _auth, _auth_domains, _auth_lock = None, {}, threading.Lock()


_inherited_auth: List[Any] = []
forking.on_fork_child(_reset_after_fork)


def _start_authenticator(factory: Any, context: Any) -> Any:
    """Start a ZAP authenticator, waiting (up to ``Settings.zap_start_timeout``) for a stopped one's endpoint to be released.

    libzmq closes a socket asynchronously, so the ``inproc://zeromq.zap.01``
    endpoint of an authenticator stopped just before may still be bound.
    """
    import zmq

    deadline = time.monotonic() + config.DEFAULTS.zap_start_timeout
    pause = threading.Event()
    while True:
        auth = factory(context, log=logging.getLogger("pizco_qt.zap"))
        try:
            auth.start()
            return auth
        except zmq.ZMQError as exc:
            try:
                auth.stop()
            except Exception:  # pragma: no cover - a half-started authenticator
                pass
            if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise
        pause.wait(config.DEFAULTS.retry_interval)


def register_curve_server(curve: CurveConfig, context: Any) -> str:
    """Admit clients of one CURVE server: returns the ZAP domain its sockets must use.

    One ``zmq.auth`` authenticator thread serves every CURVE server of the process
    (ZAP is per context); it starts with the first and stops with the last.
    """
    from zmq.auth.thread import ThreadAuthenticator

    global _auth
    with _auth_lock:
        if _auth is None:
            auth = _start_authenticator(ThreadAuthenticator, context)
            auth.thread.name = "pizco-zap"
            _auth = auth
        domain = f"pizco-{uuid.uuid4().hex[:12]}"
        ring = _KeyRing(curve)
        _auth_domains[domain] = ring
        _auth.configure_curve_callback(domain, ring)
        return domain


def curve_role(domain: str, user_id: str) -> str:
    """The role ('controller' or 'observer') of the client whose z85 key is ``user_id``,
    on the CURVE server of ZAP ``domain``."""
    ring = _auth_domains.get(domain)
    if ring is None:
        return "observer"
    return ring.role(user_id.encode("ascii", "replace"))


def unregister_curve_server(domain: str) -> None:
    """Forget a CURVE server's domain; the last one stops the authenticator."""
    global _auth
    with _auth_lock:
        if _auth_domains.pop(domain, None) is None:
            return
        if _auth is not None:
            _auth.credentials_providers.pop(domain, None)
        if _auth_domains or _auth is None:
            return
        auth, _auth = _auth, None
        # stopped under the lock: a server registering meanwhile starts a new authenticator
        # only once this one has released the ZAP endpoint
        try:
            auth.stop()
        except Exception:  # pragma: no cover - a failed stop must not break a server stop
            logger.debug("stopping the ZAP authenticator", exc_info=True)


_REFUSED = ("EVENT_HANDSHAKE_FAILED_AUTH", "EVENT_HANDSHAKE_FAILED_PROTOCOL", "EVENT_HANDSHAKE_FAILED_NO_DETAIL")


class CurveChannel:
    """A DEALER for synchronous requests to a CURVE server, owned by one thread.

    Same contract as the plain channel, plus: it watches its socket's handshake
    events, so a server that refuses this client's key turns the pending call
    into ``AuthenticationError('CURVE authentication refused by <endpoint>')`` instead
    of a timeout.

    Thread affinity: the thread that created it.
    """

    __slots__ = ("sock", "mon", "lock", "endpoint", "closed", "__weakref__")

    #: Requests always travel as the five standard frames.
    compact = False

    def __init__(self, endpoint: str, curve: CurveConfig, context: Any, max_message: int) -> None:
        import zmq

        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, max_message)
        curve.configure_client(sock)
        events = zmq.EVENT_HANDSHAKE_SUCCEEDED
        for name in _REFUSED:
            events |= getattr(zmq, name)
        self.mon = sock.get_monitor_socket(events)
        sock.connect(endpoint)
        self.sock = sock
        self.lock = threading.Lock()
        self.endpoint = endpoint
        self.closed = False

    def _check_monitor(self) -> None:
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        refused = {getattr(zmq, name) for name in _REFUSED}
        while True:
            try:
                event = recv_monitor_message(self.mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise AuthenticationError(f"CURVE authentication refused by {self.endpoint}")
            if event["event"] in refused:  # the server could not read our handshake at all
                raise AuthenticationError(f"CURVE authentication refused by {self.endpoint} (the handshake "
                                    "failed: is the server public key right, and does it use CURVE?)")

    def roundtrip(self, frames: List[Any], msgid: bytes, timeout: float, action: str) -> List[bytes]:
        """Send one request and wait for its reply (RemoteTimeout, or AuthenticationError if refused)."""
        import zmq

        sock, mon = self.sock, self.mon
        with self.lock:
            if self.closed:
                raise PizcoError(f"the connection to {self.endpoint} is closed")
            deadline = time.monotonic() + timeout
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLOUT)
            poller.register(mon, zmq.POLLIN)

            def ready() -> bool:
                """Poll until the deadline; whether the socket is ready (a refused handshake raises)."""
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RemoteTimeout(action, self.endpoint, timeout)
                events = dict(poller.poll(max(1, int(remaining * 1000))))
                if mon in events:
                    self._check_monitor()
                return sock in events

            while True:  # until the handshake is done and the request is queued
                if ready():
                    try:
                        sock.send_multipart([b""] + frames, zmq.NOBLOCK, copy=False)
                        break
                    except zmq.Again:
                        continue
            poller.modify(sock, zmq.POLLIN)
            while True:
                if ready():
                    reply = sock.recv_multipart()
                    if len(reply) >= 5 and reply[0] == b"" and reply[4] == msgid:
                        return reply[1:]
                    logger.debug("dropping a stale reply from %s", self.endpoint)

    def close(self) -> None:
        """Close the socket and its monitor (waits briefly for a call in progress)."""
        close_owned(self, self._release)

    def _release(self) -> None:
        try:
            self.sock.disable_monitor()
        except Exception:
            pass
        self.mon.close(linger=0)
        self.sock.close(linger=0)


# ---------------------------------------------------------------------- command lines
def add_curve_arguments(parser: Any, role: str = "server") -> None:
    """Add ``--curve-secret FILE``, ``--curve-clients DIR`` and ``--curve-server FILE`` to an
    argparse parser (``role`` 'server' or 'client' only changes the help texts)."""
    group = parser.add_argument_group(
        "CURVE encryption (key files from zmq.auth.create_certificates; the HMAC key comes from PZC_KEY)")
    if role == "server":
        group.add_argument("--curve-secret", metavar="FILE", default=None,
                           help="this server's key pair (.key_secret): encrypt and authenticate with CURVE")
        group.add_argument("--curve-clients", metavar="DIR", default=None,
                           help="directory of the public keys (.key) of the clients allowed in "
                                "(default: any client that knows the server's public key)")
        group.add_argument("--curve-observers", metavar="DIR", default=None,
                           help="with --curve-clients: directory of the public keys of clients admitted as "
                                "observers (they may read, not write)")
        group.add_argument("--curve-server", metavar="FILE", default=None,
                           help="public key (.key) of the CURVE registry this server registers with")
    else:
        group.add_argument("--curve-secret", metavar="FILE", default=None,
                           help="this client's key pair (.key_secret), to reach CURVE servers")
        group.add_argument("--curve-clients", metavar="DIR", default=None,
                           help="accepted as pizco-server does (a client has no clients to admit)")
        group.add_argument("--curve-server", metavar="FILE", default=None,
                           help="the servers' public key (.key)")


def curve_from_args(parser: Any, ns: Any, role: str = "server") -> Optional[CurveConfig]:
    """The CurveConfig the parsed options ask for, or None; bad options exit with status 2."""
    secret, clients, server = ns.curve_secret, ns.curve_clients, ns.curve_server
    observers = getattr(ns, "curve_observers", None)
    if secret is None:
        if clients is not None or server is not None or observers is not None:
            parser.error("--curve-clients, --curve-observers and --curve-server need --curve-secret FILE")
        return None
    if observers is not None and clients is None:
        parser.error("--curve-observers needs --curve-clients DIR (else every client would be a controller)")
    if role == "client" and server is None:
        parser.error("--curve-secret needs --curve-server FILE (the servers' public key)")
    try:
        return CurveConfig(os.path.expanduser(secret), os.path.expanduser(clients) if clients else None,
                           os.path.expanduser(server) if server else None,
                           os.path.expanduser(observers) if observers else None)
    except PizcoError as exc:
        parser.error(str(exc))
    return None  # pragma: no cover - parser.error exits
