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

from typing import Any, Optional

__all__ = ["normalize", "normalize_optional"]


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
