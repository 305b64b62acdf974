"""Fork safety: objects inherited across ``os.fork()`` refuse to be used in the child.

After a fork only the forking thread exists in the child: the I/O thread, the
dispatcher and every server's worker thread are gone, and the ZMQ context
cannot be used there. A Proxy, Server or Agent remembers the process that
created it (``owner_pid``); used in another process, it raises ``ProxyClosed``
naming that process, at once (never a hang). Modules holding process-wide
state register ``on_fork_child`` hooks that reset it, so new Proxies and
Servers created in the child start fresh threads and a fresh context.

Thread affinity: ``check_owner`` from any thread; the hooks run in the child,
in the forking thread, right after the fork.
"""
from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Callable, List

from .errors import ProxyClosed

logger = logging.getLogger(__name__)

__all__ = ["pid", "check_owner", "inherited", "on_fork_child", "live_set"]

#: This process's id (updated in a forked child; cheaper to read than ``os.getpid()``).
pid = os.getpid()

_hooks: List[Callable[[], None]] = []


def inherited(owner_pid: int) -> bool:
    """Whether an object created by ``owner_pid`` was inherited across a fork."""
    return owner_pid != pid


def check_owner(owner_pid: int, what: str) -> None:
    """Raise ``ProxyClosed`` if ``what`` (e.g. 'this Proxy to tcp://...') belongs to another process."""
    if owner_pid != pid:
        raise ProxyClosed(
            f"{what} was created by process {owner_pid} and was inherited by process {pid} through "
            "os.fork(): it cannot be used here (its threads and sockets stayed in process "
            f"{owner_pid}); create a new one in this process")


def on_fork_child(hook: Callable[[], None]) -> None:
    """Run ``hook()`` in every child forked from now on (reset process-wide state)."""
    _hooks.append(hook)


#: Objects of every ``live_set`` inherited across a fork: kept alive, never stopped nor used in the child
#: (freeing one would touch its parent's threads and sockets).
_inherited: List[Any] = []


def live_set() -> "weakref.WeakSet[Any]":
    """A weak set of live objects (agents, proxy cores) that a forked child starts empty:
    what the parent had is moved to a list that keeps it, unused, for the child's life."""
    live: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def forget() -> None:
        _inherited.extend(live)
        live.clear()

    on_fork_child(forget)
    return live


def _after_fork_in_child() -> None:
    global pid
    pid = os.getpid()
    for hook in _hooks:
        try:
            hook()
        except Exception:  # pragma: no cover - a failing reset must not break the child
            logger.exception("resetting pizco_qt state after fork")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
