"""Security defaults: the non-loopback pickle refusal.

Thread affinity: none (pure checks).
"""
from __future__ import annotations

import ipaddress
from typing import Optional

from .errors import PizcoError
from .protocol import Protocol

__all__ = ["is_loopback_endpoint", "check_bind_allowed"]


def _host(endpoint: str) -> Optional[str]:
    if not endpoint.startswith("tcp://"):
        return None  # ipc:// and inproc:// never leave the machine
    rest = endpoint[len("tcp://"):]
    if rest.startswith("["):
        return rest[1:rest.index("]")]
    host = rest.rsplit(":", 1)[0]
    return host.split(";")[-1]


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
    """Refuse to bind a non-loopback address with pickle and no key or CURVE.

    Raises
    ------
    PizcoError
        Naming the risk and the ways out.
    """
    if allow_insecure or secured or protocol.hmac_key or is_loopback_endpoint(endpoint):
        return
    if protocol.serializer == "json":
        return
    raise PizcoError(
        f"refusing to bind {endpoint} with the {protocol.serializer!r} serializer and no key: "
        "pickle lets any peer that can reach this port run code in this process. "
        "Set a shared key (PZC_KEY or Protocol(hmac_key=...)), use CURVE encryption, "
        "use the 'json' serializer, bind 127.0.0.1, or pass allow_insecure=True "
        "if the network is trusted."
    )
