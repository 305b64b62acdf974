"""Settings: every tunable of pizco_qt in one frozen object, read from the environment once.

``Settings.from_environment()`` reads ``PZC_KEY`` (HMAC key), ``PZC_OBSERVER_KEY``
(observers' HMAC key), ``PZC_SER``
(serializer), ``PZC_TIMEOUT`` (seconds, may be fractional), ``PZC_HEARTBEAT``
(seconds between heartbeats), ``PZC_REGISTRY`` (registry endpoint),
``PZC_MAX_MESSAGE`` (bytes), ``PZC_SNDHWM`` and ``PZC_RCVHWM`` (a server's queue
lengths, in messages), ``PZC_STATION`` (the station a server belongs to, set by
``pizco-station`` for its children); every other field keeps its default. An ``Agent``, a
``Server`` and a ``Proxy`` read it when they are created (so a test or a program
can change the environment at run time) unless given ``settings=``, and hand it
to their parts; explicit arguments (``timeout=``, ``protocol=``) always win.
``dataclasses.replace(settings, timeout=2.0)`` makes a variant.

The functions below (``timeout()``, ``heartbeat()``...) read one field from the
environment, for code that has no Settings at hand.

Thread affinity: none (a Settings is immutable).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

__all__ = ["Settings", "hmac_key", "observer_key", "serializer", "timeout", "heartbeat", "registry_endpoint", "max_message_size",
           "send_hwm", "receive_hwm", "station", "STATION_ENV"]

#: The environment variable naming the station of a server process (set by pizco-station).
STATION_ENV = "PZC_STATION"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tunable number of pizco_qt (see the module docstring)."""

    #: Shared HMAC key ('' = unsigned). ``PZC_KEY``.
    hmac_key: str = dataclasses.field(default="", repr=False)  # never printed
    #: Observers' HMAC key ('' = none). ``PZC_OBSERVER_KEY``.
    observer_key: str = dataclasses.field(default="", repr=False)
    #: Serializer of requests and notifications. ``PZC_SER``.
    serializer: str = "pickle"
    #: Seconds a synchronous call waits for its reply. ``PZC_TIMEOUT``.
    timeout: float = 10.0
    #: Seconds between a server's heartbeats. ``PZC_HEARTBEAT``.
    heartbeat: float = 1.0
    #: Heartbeats a proxy may miss before it declares its server lost.
    missed_heartbeats: int = 3
    #: The registry's endpoint. ``PZC_REGISTRY``.
    registry: str = "tcp://127.0.0.1:5777"
    #: Largest accepted frame in bytes, enforced by ZMQ. ``PZC_MAX_MESSAGE``.
    max_message: int = 256 * 1024 * 1024
    #: High-water mark of subscribe sockets and non-blocking request queues (messages).
    hwm: int = 100_000
    #: A server's send queue per subscriber (messages). ``PZC_SNDHWM``. The product's
    #: contract sets publish high-water marks at 100,000; lower it on servers whose
    #: emissions are large (see docs/reliability-and-security.md, "Queues and memory").
    send_hwm: int = 100_000
    #: A server's receive queue of requests per peer (messages). ``PZC_RCVHWM``.
    receive_hwm: int = 1_000
    #: Linger of every socket on close (ms): stopping never waits longer for unsent data.
    linger_ms: int = 100
    #: Seconds a new server thread (or the I/O thread) has to start.
    thread_start_timeout: float = 10.0
    #: Seconds between two log lines for the same reason of a rejected request.
    reject_log_interval: float = 1.0
    #: Frames of at least this many bytes travel without copies (out-of-band
    #: buffers, zero-copy sends); smaller messages may travel as one compact frame.
    large_frame: int = 64 * 1024
    #: Most messages one socket hands over per turn of the I/O thread.
    io_batch: int = 1000
    #: Most notifications a proxy's subscribe socket hands over per turn of the I/O thread.
    notification_batch: int = 2000
    #: Most requests a server's worker answers per turn before it polls again.
    request_batch: int = 256
    #: Seconds after its last registration that a registry entry expires.
    registry_expiry: float = 6.0
    #: Seconds between a registered server's registrations.
    registry_refresh: float = 2.0
    #: Deadline of a name reservation (and of an unregistration), in seconds.
    registry_reserve_timeout: float = 0.5
    #: Seconds between two expiry sweeps of a served registry.
    registry_sweep: float = 0.5
    #: Timeout of registry proxies and look-ups, in seconds.
    registry_timeout: float = 3.0
    #: The station this process's servers belong to ('' = none). ``PZC_STATION``.
    station: str = ""
    #: Longest time (s) one turn of a Qt event loop spends on pizco_qt deliveries
    #: before painting, input and timers run (the rest follows next turn).
    turn_budget: float = 0.010
    #: Subscription topics longer than this (utf-8 bytes) are ignored by a server.
    max_topic_bytes: int = 256
    #: Distinct topics an empty server (nothing served yet) keeps counts for.
    max_pending_topics: int = 1024
    #: Watched attributes whose due times are closer than this (s) share one poll request.
    poll_slack: float = 0.02
    #: Shortest time (s) a poll may stay unanswered before it is sent again
    #: (the proxy's timeout when longer).
    poll_resend_floor: float = 1.0
    #: How many stderr lines of a child server process are kept for error messages.
    stderr_tail: int = 40
    #: Seconds ``ChildProcess.stop()`` waits for a clean exit before it kills the child.
    child_stop_timeout: float = 5.0
    #: Default seconds ``serve_in_process`` waits for the child's ready line.
    process_start_timeout: float = 30.0
    #: How many errors raised by served code a server keeps (``Server.recent_errors``).
    recent_errors: int = 50
    #: Answers of futures nobody waits for yet that a proxy keeps (the oldest go first) ...
    max_orphans: int = 256
    #: ... and how long (s) it keeps them once there are more than ``max_orphans``.
    orphan_expiry: float = 30.0
    #: Subscription acknowledgements one turn of a server's publisher answers.
    max_acks: int = 256
    #: Distinct reject reasons a server remembers for rate-limiting its log (then it forgets them all).
    max_reject_reasons: int = 256
    #: Longest time (s) between a proxy's liveness checks (a check runs every
    #: ``min(heartbeat, this)`` until the first heartbeat, then every half period).
    liveness_check_interval: float = 0.5
    #: Shortest time (s) a reconnecting proxy waits for the probe's answer, and
    #: between two fresh subscription connections to the same server.
    liveness_floor: float = 1.0
    #: Seconds exclusive control (the lock) lasts without renewal.
    lock_lease: float = 3.0
    #: Seconds between the renewals of the proxy holding the lock.
    lock_renew: float = 1.0
    #: Longest wait (s) between two attempts of a proxy waiting for a taken lock
    #: (a change of the holder wakes it earlier).
    lock_retry_interval: float = 0.5
    #: Seconds between a server's checks for a lease that ran out.
    lease_check_interval: float = 0.2
    #: Longest time (s) a closing proxy waits to release its lock (its timeout when shorter).
    unlock_timeout: float = 1.0
    #: Longest time (s) ``_proxy_stop_server()`` waits for the server's answer (the proxy's timeout when shorter).
    stop_request_timeout: float = 5.0
    #: How many executed writes a server keeps (``Server.writes``).
    write_log: int = 100

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """The defaults, with what the ``PZC_*`` variables of ``environ`` (default ``os.environ``) set.

        Raises
        ------
        ValueError
            For a variable that is not a valid value (naming it).
        """
        env = os.environ if environ is None else environ
        return cls(**{name: _read(env, name) for name in _ENVIRONMENT})


#: The defaults (what module-level constants derive from).
DEFAULTS = Settings()

# Names other modules and programs used before Settings existed (the defaults).
DEFAULT_TIMEOUT = DEFAULTS.timeout
DEFAULT_HEARTBEAT = DEFAULTS.heartbeat
DEFAULT_REGISTRY = DEFAULTS.registry
DEFAULT_MAX_MESSAGE = DEFAULTS.max_message
DEFAULT_HWM = DEFAULTS.hwm
DEFAULT_SNDHWM = DEFAULTS.send_hwm
DEFAULT_RCVHWM = DEFAULTS.receive_hwm
LINGER_MS = DEFAULTS.linger_ms
THREAD_START_TIMEOUT = DEFAULTS.thread_start_timeout


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


def _key(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, default)  # a key is taken as written


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number of messages") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def _bytes(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    return int(raw) if raw else default


#: The fields the environment sets: field -> (variable, parser).
_ENVIRONMENT: Dict[str, Tuple[str, Callable[[Mapping[str, str], str, Any], Any]]] = {
    "hmac_key": ("PZC_KEY", _key),
    "observer_key": ("PZC_OBSERVER_KEY", _key),
    "serializer": ("PZC_SER", _text),
    "timeout": ("PZC_TIMEOUT", _seconds),
    "heartbeat": ("PZC_HEARTBEAT", _seconds),
    "registry": ("PZC_REGISTRY", _text),
    "max_message": ("PZC_MAX_MESSAGE", _bytes),
    "send_hwm": ("PZC_SNDHWM", _count),
    "receive_hwm": ("PZC_RCVHWM", _count),
    "station": (STATION_ENV, _text),
}


def _read(env: Mapping[str, str], field: str) -> Any:
    variable, parse = _ENVIRONMENT[field]
    return parse(env, variable, getattr(DEFAULTS, field))


# ---------------------------------------------------------------------- one field from the environment
def hmac_key() -> str:
    """The shared HMAC key from ``PZC_KEY`` ('' = unsigned)."""
    return _read(os.environ, "hmac_key")


def observer_key() -> str:
    """The observer HMAC key from ``PZC_OBSERVER_KEY`` ('' = none)."""
    return _read(os.environ, "observer_key")


def serializer() -> str:
    """The serializer from ``PZC_SER``, else ``pickle``."""
    return _read(os.environ, "serializer")


def timeout() -> float:
    """Default synchronous call timeout in seconds (``PZC_TIMEOUT``)."""
    return _read(os.environ, "timeout")


def heartbeat() -> float:
    """Seconds between server heartbeats (``PZC_HEARTBEAT``)."""
    return _read(os.environ, "heartbeat")


def registry_endpoint() -> str:
    """The registry's endpoint (``PZC_REGISTRY``)."""
    return _read(os.environ, "registry")


def send_hwm() -> int:
    """Messages a server queues per subscriber before dropping (``PZC_SNDHWM``, default 100,000)."""
    return _read(os.environ, "send_hwm")


def receive_hwm() -> int:
    """Requests a server queues per peer before ZMQ stops reading it (``PZC_RCVHWM``, default 1,000)."""
    return _read(os.environ, "receive_hwm")


def max_message_size() -> int:
    """Largest accepted frame in bytes (``PZC_MAX_MESSAGE``), enforced by ZMQ."""
    return _read(os.environ, "max_message")


def station() -> str:
    """The name of the station this process's servers belong to (``PZC_STATION``; '' = none)."""
    return _read(os.environ, "station")
