"""Settings taken from the environment; explicit arguments always win.

``PZC_KEY`` (HMAC key), ``PZC_OBSERVER_KEY`` (observers' HMAC key), ``PZC_SER`` (serializer), ``PZC_TIMEOUT`` (seconds, may be
fractional), ``PZC_HEARTBEAT`` (seconds between heartbeats), ``PZC_REGISTRY``
(registry endpoint), ``PZC_MAX_MESSAGE`` (bytes), ``PZC_SNDHWM`` and ``PZC_RCVHWM``
(a server's queue lengths, in messages), ``PZC_STATION`` (the station a server
belongs to, set by ``pizco-station`` for its children). Values are read when an object is
created, so a test or a program can change them at run time.

Thread affinity: none.
"""
from __future__ import annotations

import os

DEFAULT_TIMEOUT = 10.0
DEFAULT_HEARTBEAT = 1.0
DEFAULT_REGISTRY = "tcp://127.0.0.1:5777"
DEFAULT_MAX_MESSAGE = 256 * 1024 * 1024
#: High-water mark of subscribe sockets and other queues (messages).
DEFAULT_HWM = 100_000
#: A server's send queue per subscriber (messages, ``PZC_SNDHWM``).
DEFAULT_SNDHWM = 10_000
#: A server's receive queue of requests per peer (messages, ``PZC_RCVHWM``).
DEFAULT_RCVHWM = 1_000
#: Linger of every socket on close (ms): stopping never waits longer for unsent data.
LINGER_MS = 100
#: Seconds a new server thread (or the I/O thread) has to start before binding fails.
THREAD_START_TIMEOUT = 10.0
#: Seconds between two log lines for the same reason of a rejected request.
REJECT_LOG_INTERVAL = 1.0


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def hmac_key() -> str:
    """The shared HMAC key from ``PZC_KEY`` ('' = unsigned)."""
    return os.environ.get("PZC_KEY", "")


def observer_key() -> str:
    """The observer HMAC key from ``PZC_OBSERVER_KEY`` ('' = none)."""
    return os.environ.get("PZC_OBSERVER_KEY", "")


def serializer() -> str:
    """The serializer from ``PZC_SER``, else ``pickle``."""
    return os.environ.get("PZC_SER", "").strip() or "pickle"


def timeout() -> float:
    """Default synchronous call timeout in seconds (``PZC_TIMEOUT``)."""
    return _float("PZC_TIMEOUT", DEFAULT_TIMEOUT)


def heartbeat() -> float:
    """Seconds between server heartbeats (``PZC_HEARTBEAT``)."""
    return _float("PZC_HEARTBEAT", DEFAULT_HEARTBEAT)


def registry_endpoint() -> str:
    """The registry's endpoint (``PZC_REGISTRY``)."""
    return os.environ.get("PZC_REGISTRY", "").strip() or DEFAULT_REGISTRY


def _count(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number of messages") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def send_hwm() -> int:
    """Messages a server queues per subscriber before dropping (``PZC_SNDHWM``, default 10,000)."""
    return _count("PZC_SNDHWM", DEFAULT_SNDHWM)


def receive_hwm() -> int:
    """Requests a server queues per peer before ZMQ stops reading it (``PZC_RCVHWM``, default 1,000)."""
    return _count("PZC_RCVHWM", DEFAULT_RCVHWM)


#: The environment variable naming the station of a server process (set by pizco-station).
STATION_ENV = "PZC_STATION"


def station() -> str:
    """The name of the station this process's servers belong to (``PZC_STATION``; '' = none)."""
    return os.environ.get(STATION_ENV, "").strip()


def max_message_size() -> int:
    """Largest accepted frame in bytes (``PZC_MAX_MESSAGE``), enforced by ZMQ."""
    raw = os.environ.get("PZC_MAX_MESSAGE", "").strip()
    return int(raw) if raw else DEFAULT_MAX_MESSAGE
