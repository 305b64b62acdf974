"""Exclusive control seen from a proxy: taking, renewing and releasing the server's lock.

The lock part of a proxy's core owns that state: whether this proxy holds the
lock (as far as it knows), who holds it as last heard of ('info' replies and
the ``__lock__`` notifications), the lease renewals, and the slots connected to
``proxy._proxy_lock_changed``. The server side is access.py.

It works through the core's public interface: ``call`` and ``read_reply``, the
server's ``caps`` and ``role``, ``endpoint``, ``timeout``, ``settings``,
``alive``, ``closed``, its ``requester`` (for the renewals and this client's
identity), its ``protocol`` and its ``io`` thread.

Thread affinity: ``take``, ``release``, ``connect`` and ``disconnect`` from any
thread; ``on_frames`` and the renewals on the I/O thread.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .access import holder_id
from .delivery import current_target
from .errors import AccessDenied, Locked, PizcoError
from .protocol import LOCK_TOPIC, Envelope
from .remote_signals import _Connection, _Incoming, _SignalSub

if TYPE_CHECKING:  # pragma: no cover
    from .proxy import _ProxyCore

logger = logging.getLogger(__name__)

__all__ = ["LockClient"]


class LockClient:
    """The exclusive-control part of a proxy's core (see the module docstring)."""

    def __init__(self, core: "_ProxyCore") -> None:
        self.core = core
        #: Whether this proxy holds the lock (as far as it knows: its renewals tell).
        self.held = False
        #: The lock holder as last heard of ('info', lock changes), or None.
        self.holder: Optional[Dict[str, Any]] = None
        self._renewing = False
        self._generation = 0
        self._changed = threading.Event()
        # never 'active' (the subscription is internal); a weak proxy of the core: no cycle
        self._sub = _SignalSub(weakref.proxy(core), LOCK_TOPIC)

    # ---------------------------------------------------------------- what is known
    def on_frames(self, env: Envelope, frames: List[bytes]) -> None:
        """A lock change (I/O thread): note it, wake lock waiters, deliver to the connected slots."""
        try:
            content = self.core.protocol.loads(env.serializer, frames[2], frames[5:])
            holder = content[0] if isinstance(content, (tuple, list)) and content else None
        except Exception:
            return
        holder = holder if isinstance(holder, dict) else None
        self.note_holder(holder, notify=False)
        self._changed.set()
        self._sub.sink(env, frames)

    def note_holder(self, holder: Optional[Dict[str, Any]], notify: bool) -> None:
        """Remember who holds the lock; ``notify``: tell the connected slots of a change learnt
        otherwise than from a lock change (an 'info' reply after a reconnection)."""
        changed = holder != self.holder
        self.holder = holder  # whether this proxy still holds it, its renewals tell
        if changed and notify and self._sub.connections:
            inc = _Incoming(None, None, None, (holder,))  # type: ignore[arg-type]
            for conn in self._sub.connections:
                conn.push(inc)

    @property
    def my_id(self) -> str:
        """The id a lock holder dict shows when this proxy holds the lock."""
        return holder_id(self.core.requester.sender)

    def write_blocked(self) -> Optional[str]:
        """Why this client may not write now (an observer, or another client holds the lock), or None."""
        if self.core.role == "observer":
            return "read-only: you are an observer of this server"
        holder = self.holder
        if holder is not None and holder.get("id") != self.my_id:
            return f"read-only: {holder.get('label', 'another client')} holds exclusive control of this server"
        return None

    # ---------------------------------------------------------------- taking and releasing
    def take(self, timeout: Optional[float]) -> Dict[str, Any]:
        """Take the lock, waiting up to ``timeout`` (None: the proxy's) while another client holds it."""
        core = self.core
        if "lock" not in core.caps:
            raise PizcoError(f"the server at {core.endpoint} does not offer exclusive control")
        wait = core.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + wait
        while True:
            self._changed.clear()
            try:
                info = core.call("lock", {})
            except Locked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                self._changed.wait(min(remaining, core.settings.lock_retry_interval))  # a lock change wakes us early
                continue
            self.held = True
            self._generation += 1
            self.holder = info if isinstance(info, dict) else self.holder
            if not self._renewing:
                self._renewing = True
                core.io.call_later(core.settings.lock_renew, self._renew)
            return info

    def _renew(self) -> None:
        """I/O thread: renew the lease every ``settings.lock_renew`` seconds while this proxy holds it."""
        core = self.core
        if core.closed or not self.held:
            self._renewing = False
            return
        generation = self._generation

        def done(fut: concurrent.futures.Future) -> None:
            try:
                ended = fut.result() is None  # the lease ended (expired, or the server restarted)
            except (Locked, AccessDenied):
                ended = True
            except BaseException:
                return  # a lost server: renewals go on until it answers or the proxy closes
            if ended and generation == self._generation:  # not taken or released since
                self.held = False

        if core.alive:
            fut = core.requester.request_async(core.endpoint, ("PSMessage", "lock", {"renew": True}),
                                               core.read_reply, core.protocol.serializer)
            fut.add_done_callback(done)
        core.io.call_later(core.settings.lock_renew, self._renew)

    def release(self) -> bool:
        """Release the lock; False if this proxy did not hold it (or the server offers none)."""
        core = self.core
        if "lock" not in core.caps:
            return False
        released = bool(core.call("unlock", {}))
        self.held = False
        self._generation += 1
        return released

    def release_on_close(self) -> None:
        """The proxy closes: its exclusive control ends with it (bounded by ``settings.unlock_timeout``)."""
        if not self.held:
            return
        core = self.core
        try:
            if core.alive:
                core.call("unlock", {}, min(core.timeout, core.settings.unlock_timeout))
        except Exception:
            logger.debug("releasing the lock of %s", core.endpoint, exc_info=True)
        self.held = False

    def forget(self) -> None:
        """The server stopped: it ended with its lock."""
        self.held = False

    # ---------------------------------------------------------------- slots of lock changes
    def connect(self, slot: Any) -> None:
        """Call ``slot(holder)`` at each change (connecting the same slot twice does nothing)."""
        sub = self._sub
        with sub.lock:
            if any(c.slot == slot for c in sub.connections):
                return
            sub.connections = sub.connections + (_Connection(slot, current_target(), False, sub),)

    def disconnect(self, slot: Any = None) -> None:
        """Disconnect ``slot`` (TypeError if not connected), or every slot."""
        sub = self._sub
        with sub.lock:
            found = [c for c in sub.connections if slot is None or c.slot == slot]
            if slot is not None and not found:
                raise TypeError(f"{slot!r} is not connected to the lock changes of {self.core.endpoint}")
            for c in found:
                c.kill()
            sub.connections = tuple(c for c in sub.connections if c not in found)
