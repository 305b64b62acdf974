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

    # ---- stopping, waiting and polling
    #: Seconds ``stop()`` of a Server, an Agent or the I/O thread, and closing a proxy's
    #: sockets, wait for their threads by default (a worker still inside user code is left behind).
    stop_timeout: float = 2.0
    #: Seconds each agent (server or proxy) still running at interpreter exit gets to stop.
    exit_stop_timeout: float = 1.0
    #: Longest wait (s) of another thread for a command it runs on the I/O thread.
    io_call_timeout: float = 5.0
    #: Longest sleep (s) of a server's worker in one poll (it wakes at once for work and commands).
    worker_poll_interval: float = 1.0
    #: Seconds between the checks of a blocking wait for Ctrl+C or a stop (``serve_forever``,
    #: the command lines, a registry's loop).
    interrupt_check_interval: float = 0.25
    #: Seconds between two looks of a waiting thread at a condition it cannot be woken for
    #: (a child's ready line, a Qt call handed to another thread, a ZAP handler starting).
    poll_interval: float = 0.05
    #: Longest wait (s) for a child process that exited (or was killed) to be reaped.
    reap_timeout: float = 10.0
    #: Longest wait (s) for the rest of a child process's stderr after it exited.
    stderr_drain_timeout: float = 2.0
    #: Longest wait (s) to close a request socket while its owner thread is in a call ...
    owner_wait: float = 0.5
    #: ... after which a background thread closes it when the call ends, waiting at most this (s).
    closer_patience: float = 3600.0
    #: A request that kept the server busy longer than this (s) is credited back to the lock lease.
    lease_credit_after: float = 0.05
    #: Default seconds between two reads of ``watch()``.
    watch_interval: float = 0.5

    # ---- caches and bounds against what the network sends
    #: Distinct client labels a server keeps parsed (senders come from the network).
    client_cache: int = 4096
    #: Distinct (class, name) pairs a process remembers the read-only mark of.
    readonly_cache: int = 4096
    #: Distinct message headers a process keeps parsed.
    header_cache: int = 1024
    #: Server-side futures a server remembers the requesting client of (for cancellation rights).
    max_future_owners: int = 10_000
    #: Seconds a captured signed request is remembered and refused as a replay ...
    replay_window: float = 600.0
    #: ... and at most this many message ids are remembered.
    replay_cache_size: int = 100_000
    #: Longest signature text (characters) a proxy parses to fit slot arguments.
    max_signature_text: int = 4000
    #: Slots a Qt event loop's turn runs between two looks at the clock (``turn_budget``).
    turn_clock_every: int = 16
    #: Items a reply is searched for large bytes (to choose out-of-band buffers), in all ...
    large_bytes_scan: int = 200
    #: ... per list, tuple or dict ...
    large_bytes_scan_each: int = 50
    #: ... and levels deep.
    large_bytes_scan_depth: int = 4

    # ---- file descriptors (estimates used to refuse before libzmq runs out)
    #: Descriptors kept free for the rest of the process.
    fd_reserve: int = 16
    #: Descriptors a new server needs ...
    fd_per_server: int = 16
    #: ... a new proxy ...
    fd_per_proxy: int = 10
    #: ... and the first call of a new thread through a proxy.
    fd_per_connection: int = 4
    #: The command lines raise their soft descriptor limit up to this (within the hard limit).
    fd_limit_target: int = 10240

    # ---- the registry server
    #: Seconds between the registry's probes of each registered server.
    registry_probe_period: float = 1.0
    #: Longest wait (s) for a server's answer to the registry's probe.
    registry_probe_timeout: float = 0.3
    #: Servers the registry keeps a recent probe answer of.
    registry_probe_cache: int = 1024
    #: Send queue (messages) of the registry's probe sockets ...
    registry_probe_hwm: int = 4
    #: ... and the largest probe answer (bytes) it accepts.
    registry_probe_max_message: int = 64 * 1024
    #: Seconds the registry remembers a name whose server went silent (to refuse stale refreshes) ...
    registry_lapsed_memory: float = 600.0
    #: ... and at most this many such names.
    registry_lapsed_entries: int = 10_000
    #: Longest registration token (characters) the registry accepts.
    registry_token_chars: int = 256
    #: Probe answers the registry reads from one server's socket per turn of the I/O thread.
    registry_probe_reads: int = 64
    #: Seconds between two attempts of a short retry loop (sending to a registry whose
    #: handshake is under way, restarting a CURVE authenticator).
    retry_interval: float = 0.01
    #: Seconds the CURVE authenticator (ZAP handler) has to start.
    zap_start_timeout: float = 2.0

    # ---- the station (pizco-station)
    #: Seconds between two looks of the supervision thread at the children.
    supervise_interval: float = 0.05
    #: Automatic restarts: the first delay (s), doubling ...
    restart_delay: float = 0.5
    #: ... up to this (s) ...
    restart_delay_max: float = 30.0
    #: ... reset by a healthy run this long (s).
    restart_healthy_after: float = 60.0
    #: Unexpected exits within ``restart_failure_window`` seconds that mark a server failed.
    restart_failure_limit: int = 5
    #: The window (s) of ``restart_failure_limit``.
    restart_failure_window: float = 60.0
    #: Lines of a failed child's stderr quoted in the station's error.
    station_error_lines: int = 12
    #: Longest wait (s) for the pipes of a child process that already exited.
    reaped_wait: float = 0.5
    #: Longest wait (s) of the station for a registry's answer to its probe.
    station_registry_probe: float = 0.5

    # ---- pizco-monitor
    #: Longest timeout (s) of the monitor's proxies (``timeout`` when shorter) ...
    monitor_timeout: float = 5.0
    #: ... and of its registry connection.
    monitor_registry_timeout: float = 2.0
    #: Seconds between the monitor's attempts to reach a server or registry that did not answer.
    monitor_retry: float = 3.0
    #: Seconds between the monitor's full re-reads of the registry's table.
    monitor_resync: float = 5.0
    #: Seconds a server that left the registry stays listed (greyed) in the monitor.
    monitor_keep_stopped: float = 30.0

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

# The names programs used before Settings existed, kept for them (the package itself reads DEFAULTS).
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
