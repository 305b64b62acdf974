"""Endpoints: the one place that turns what a user passes as an endpoint into a ZMQ endpoint string.

Every public entry point that takes an endpoint (``Server``, ``Agent``,
``Proxy``, the serve helpers, the registry functions) passes it through
:func:`normalize`, so all of them accept the same forms:

* a ZMQ endpoint string: ``tcp://host:port``, ``ipc://path``, ``inproc://name``
  (returned unchanged);
* a ``(host, port)`` tuple or list, meaning ``tcp://host:port`` (an IPv6 host
  is bracketed); port 0 asks for a free port when binding, as with the string
  form.

Thread affinity: none (pure functions).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

__all__ = ["normalize", "normalize_optional", "split_tcp", "is_wildcard", "connectable", "bindable", "resolved",
           "with_port", "fixed_port", "host_of", "WILDCARD_HOSTS"]


def _port(value: Any, given: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"endpoint {given!r}: the port must be an int, not bool")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"endpoint {given!r}: the port must be an int, not {type(value).__name__}")
    if not 0 <= value <= 65535:
        raise ValueError(f"endpoint {given!r}: port {value} is outside 0-65535")
    return value


def normalize(endpoint: Any) -> str:
    """The ZMQ endpoint string for ``endpoint`` (a string, or a ``(host, port)`` tuple or list).

    >>> normalize(("127.0.0.1", 5555))
    'tcp://127.0.0.1:5555'
    >>> normalize(["::1", 0])
    'tcp://[::1]:0'
    >>> normalize("inproc://stage")
    'inproc://stage'

    Raises
    ------
    TypeError
        For anything else (None included: use :func:`normalize_optional` where a default applies).
    ValueError
        For a tuple that is not ``(host, port)``, an empty host or a port outside 0-65535.
    """
    if isinstance(endpoint, str):
        return endpoint
    if isinstance(endpoint, (tuple, list)):
        if len(endpoint) != 2:
            raise ValueError(f"endpoint {endpoint!r}: a tuple endpoint is (host, port)")
        host, port = endpoint
        if not isinstance(host, str) or not host.strip():
            raise ValueError(f"endpoint {endpoint!r}: the host must be a non-empty str")
        host = host.strip()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"tcp://{host}:{_port(port, endpoint)}"
    raise TypeError(f"an endpoint is a str such as 'tcp://127.0.0.1:5555' or a (host, port) tuple, "
                    f"not {type(endpoint).__name__}")


def normalize_optional(endpoint: Any, default: Optional[str] = None) -> Optional[str]:
    """``normalize(endpoint)``, or ``default`` when ``endpoint`` is None or empty."""
    if endpoint is None or (isinstance(endpoint, (str, tuple, list)) and not endpoint):
        return default
    return normalize(endpoint)


# ---------------------------------------------------------------------- tcp endpoints: hosts and ports
#: Hosts that mean "every interface" in a bind (never dialable as such).
WILDCARD_HOSTS = frozenset({"*", "0.0.0.0", "[::]", "::", ""})


def split_tcp(endpoint: str) -> Optional[Tuple[str, str]]:
    """``(host, port)`` of a ``tcp://host:port`` endpoint (both as written), None for other transports.

    >>> split_tcp("tcp://[::1]:5555")
    ('[::1]', '5555')
    """
    if not endpoint.startswith("tcp://"):
        return None
    host, _, port = endpoint[6:].rpartition(":")
    return host, port


def is_wildcard(host: str) -> bool:
    """Whether ``host`` (as :func:`split_tcp` gives it) binds every interface."""
    return host in WILDCARD_HOSTS


def connectable(endpoint: str, dialed: Optional[str] = None) -> str:
    """An endpoint a client can connect to: a wildcard host becomes the host it ``dialed`` (else loopback).

    >>> connectable("tcp://*:5556", "tcp://10.0.0.7:5555")
    'tcp://10.0.0.7:5556'
    """
    parts = split_tcp(endpoint)
    if parts is None or not is_wildcard(parts[0]):
        return endpoint
    dial_host = "127.0.0.1"
    dialed_parts = split_tcp(dialed) if dialed else None
    if dialed_parts is not None and not is_wildcard(dialed_parts[0]):
        dial_host = dialed_parts[0]
    return f"tcp://{dial_host}:{parts[1]}"


def bindable(endpoint: str) -> str:
    """The endpoint to give ZMQ's ``bind()``: port 0 becomes ZMQ's wildcard port ``*``."""
    parts = split_tcp(endpoint)
    if parts is not None and parts[1] == "0":
        return f"tcp://{parts[0]}:*"
    return endpoint


def resolved(requested: str, last_endpoint: str) -> str:
    """The endpoint as bound: a port 0 or ``*`` resolved from ZMQ's ``LAST_ENDPOINT``, the host kept."""
    parts = split_tcp(requested)
    if parts is not None and parts[1] in ("0", "*"):
        return f"tcp://{parts[0]}:{last_endpoint.rpartition(':')[2]}"
    return requested


def with_port(endpoint: str, port: "int | str") -> Optional[str]:
    """The same ``tcp://`` host with another port (``0``: a free one); None for other transports.

    >>> with_port("tcp://127.0.0.1:5555", 0)
    'tcp://127.0.0.1:0'
    """
    parts = split_tcp(endpoint)
    return None if parts is None else f"tcp://{parts[0]}:{port}"


def fixed_port(endpoint: str) -> bool:
    """Whether ``endpoint`` is ``tcp://`` with a given port (not ``0`` nor ``*``)."""
    parts = split_tcp(endpoint)
    return parts is not None and parts[1] not in ("0", "*")


def host_of(endpoint: str) -> Optional[str]:
    """The host of a ``tcp://`` endpoint without IPv6 brackets or a ``source;`` prefix; None otherwise."""
    parts = split_tcp(endpoint)
    if parts is None:
        return None
    host = parts[0]
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.split(";")[-1]
