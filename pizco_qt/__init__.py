"""pizco_qt: Python objects across threads, processes and machines over ZeroMQ, Qt-first.

A ``Server`` serves any object; a ``Proxy`` behaves like it: attributes,
properties, methods, dict items, futures, remote exceptions and signals, which
arrive as real Qt signals on the GUI thread.

Importing pizco_qt needs no display and creates no Q(Core)Application.
"""
from __future__ import annotations

from typing import Any

from .access import readonly
from .agent import Agent
from .errors import (AccessDenied, AuthenticationError, BindError, ConnectionLost, InsecureBind, Locked, NameTaken,
                     PizcoError, ProtocolError, ProxyClosed, RemoteError, RemoteTimeout, TooManyOpenFiles)
from .futures import FutureWatcher
from .protocol import Protocol
from .proxy import Proxy
from .server import Server
from .signals import Signal

__version__ = "0.1.0"

__all__ = [
    "Server", "Proxy", "Signal", "Agent", "Protocol", "bind", "watch", "FutureWatcher", "readonly",
    "PizcoError", "RemoteError", "RemoteTimeout", "ProtocolError", "AuthenticationError", "ConnectionLost",
    "ProxyClosed", "BindError", "InsecureBind", "NameTaken", "AccessDenied", "Locked", "TooManyOpenFiles",
    "Station", "__version__",
]


def __getattr__(name: str) -> Any:
    # bind and watch import QtWidgets lazily, only when used
    if name in ("bind", "watch"):
        from . import binding

        return getattr(binding, name)
    if name == "Station":  # the station (subprocesses, TOML) is imported only when used
        from .station import Station

        return Station
    raise AttributeError(f"module 'pizco_qt' has no attribute {name!r}")
