"""Servers of QObjects in this process, so a proxy in the object's own thread calls it inline.

A proxy whose calls would have to be answered in the thread it runs in (the
served QObject's thread, which is blocked waiting for the reply) calls the
server directly instead. Servers add themselves here while they serve a
QObject; the proxy side only needs this module, never the server module.

Thread affinity: any thread.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from . import forking

__all__ = ["add", "discard", "server_for"]

_servers: Dict[str, Any] = {}


def _forget_after_fork() -> None:
    _servers.clear()  # a forked child serves none of its parent's QObjects


forking.on_fork_child(_forget_after_fork)


def add(endpoint: str, server: Any) -> None:
    """``server`` (with ``in_object_thread()`` and ``handle_inline()``) serves a QObject at ``endpoint``."""
    _servers[endpoint] = server


def discard(endpoint: str) -> None:
    """No QObject is served at ``endpoint`` any more."""
    _servers.pop(endpoint, None)


def server_for(endpoint: str) -> Optional[Any]:
    """The server of a QObject at ``endpoint`` if the calling thread is that object's thread."""
    if not _servers:  # the common case: no served QObject in this process
        return None
    server = _servers.get(endpoint)
    if server is not None and server.in_object_thread():
        return server
    return None
